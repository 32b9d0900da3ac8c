//! A world seen by a front end that draws its frames itself (`wgraph
//! play`): the world ticks on a thread of its own ([`spawn_viewed`]) and
//! leaves what the front end shows in a [`View`] — the newest frame as
//! 8-bit RGB with the time of the key change it first reflects, late
//! ticks, the last reload (or failure, or degrade step), and whether the
//! world has ended and why.

use crate::Session;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use wgraph_engine::frame::RgbFrame;
use wgraph_engine::model::Backend;
use wgraph_engine::world::WorldEvent;

/// What the world thread hands the front end (see the module docs).
#[derive(Debug, Default)]
pub struct View {
    /// The newest displayed frame not yet taken: its tick, the image, and
    /// when the key change it first reflects was made.
    pub frame: Option<(u64, RgbFrame, Option<Instant>)>,
    /// Why the world ended, when on an error (`error: …`).
    pub status: String,
    /// Ticks that started later than the graph's clock allowed.
    pub late_ticks: u64,
    /// The last reload, failed reload or degrade step, for a HUD.
    pub last_reload: String,
    /// The world has ended.
    pub done: bool,
}

impl View {
    /// Takes in one of the world's events.
    pub fn on_event(&mut self, event: &WorldEvent) {
        match event {
            WorldEvent::Frame {
                tick,
                image,
                range,
                input_at,
            } => {
                if let Ok(f) = RgbFrame::from_tensor(image, *range) {
                    // An unseen key change stays with the next frame drawn.
                    let input_at = input_at.or(self.frame.as_ref().and_then(|f| f.2));
                    self.frame = Some((*tick, f, input_at));
                }
            }
            WorldEvent::Tick { late, .. } => self.late_ticks += u64::from(*late),
            WorldEvent::Reloaded(info) => {
                self.last_reload = format!("reloaded at tick {}", info.tick);
            }
            WorldEvent::ReloadFailed { cause, .. } => {
                self.last_reload = format!("reload failed ({cause}); old graph runs");
            }
            WorldEvent::Degraded { level, change, .. } => {
                self.last_reload = format!("degrade {level}: {change}");
            }
            _ => {}
        }
    }
}

/// Runs `session` on a thread of its own until it ends, its events into
/// `view`; the thread returns (ended well, ticks run). The world's sinks
/// are finished when it ends; `view.done` is set then.
pub fn spawn_viewed<B: Backend + 'static>(
    mut session: Session<B>,
    view: Arc<Mutex<View>>,
) -> std::thread::JoinHandle<(bool, u64)> {
    std::thread::spawn(move || {
        let lock = || view.lock().unwrap_or_else(|p| p.into_inner());
        let result = session.run(&mut |event| lock().on_event(event));
        let world = &mut session.world;
        let finished = world.finish();
        let mut v = lock();
        v.done = true;
        if let Err(e) = &result {
            v.status = format!("error: {e}");
        }
        (result.is_ok() && finished.is_ok(), world.ticks_done())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use wgraph_engine::node::TickInput;

    #[test]
    fn a_view_counts_late_ticks_and_says_the_last_reload() {
        let mut v = View::default();
        let tick = |late| WorldEvent::Tick {
            tick: 0,
            input: TickInput::NONE,
            latency: Duration::ZERO,
            late,
        };
        v.on_event(&tick(true));
        v.on_event(&tick(false));
        v.on_event(&tick(true));
        assert_eq!(v.late_ticks, 2);
        v.on_event(&WorldEvent::ReloadFailed {
            cause: "g.world changed".into(),
            message: String::new(),
        });
        assert_eq!(
            v.last_reload,
            "reload failed (g.world changed); old graph runs"
        );
        assert!(v.frame.is_none() && !v.done);
    }
}
