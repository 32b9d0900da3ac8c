//! Ctrl-C and SIGTERM for the commands that run a world (`run`, `replay`).
//!
//! The handler is installed before the graph is loaded. Until a world is
//! attached nothing has been written, so a signal exits at once (130).
//! Once one is, the first signal stops the world — at once when it is
//! waiting for its next tick, after the tick when one is running — and the
//! command finishes every sink and prints its summary, naming the signal;
//! a second exits at once — which loses nothing either: every sink keeps
//! its file valid after each frame (PNG and `.npy` frames are renamed into
//! place whole, a GIF ends with its trailer after every frame, a y4m stream
//! is written a whole frame at a time, a recording is replayable up to its
//! last whole tick).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use wgraph_engine::world::WorldHandle;

/// What a signal stops.
#[derive(Default)]
pub struct Interrupt {
    world: Mutex<Option<WorldHandle>>,
    signals: AtomicU32,
    /// The first signal's name, for the summary.
    first: Mutex<Option<&'static str>>,
}

static INTERRUPT: OnceLock<Arc<Interrupt>> = OnceLock::new();

impl Interrupt {
    /// Installs the handler (once per process) and returns its state.
    pub fn install() -> Arc<Interrupt> {
        Arc::clone(INTERRUPT.get_or_init(|| {
            let state = Arc::new(Interrupt::default());
            listen(Arc::clone(&state));
            state
        }))
    }

    fn signal(&self, name: &'static str) {
        let first = self.signals.fetch_add(1, Ordering::SeqCst) == 0;
        if first {
            *self.first.lock().unwrap_or_else(|p| p.into_inner()) = Some(name);
        }
        let world = self.world.lock().unwrap_or_else(|p| p.into_inner());
        match (first, world.as_ref()) {
            (true, Some(w)) => w.stop(),
            _ => std::process::exit(130),
        }
    }

    /// From now on a signal stops `world` (see the module docs).
    pub fn attach(&self, world: WorldHandle) {
        let mut slot = self.world.lock().unwrap_or_else(|p| p.into_inner());
        if self.signals.load(Ordering::SeqCst) > 0 {
            world.stop();
        }
        *slot = Some(world);
    }

    /// The first signal received, as a summary names it (`Ctrl-C`,
    /// `SIGTERM`); `None` before any.
    pub fn signal_name(&self) -> Option<&'static str> {
        *self.first.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Delivers SIGINT and SIGTERM to `state` from a thread of their own.
#[cfg(unix)]
fn listen(state: Arc<Interrupt>) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    // Fails only when signals cannot be registered: then the default
    // disposition rules (the process ends at once).
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("wgraph-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                state.signal(if sig == SIGTERM { "SIGTERM" } else { "Ctrl-C" });
            }
        });
}

/// Delivers Ctrl-C (and the platform's termination request) to `state`.
#[cfg(not(unix))]
fn listen(state: Arc<Interrupt>) {
    // Fails only when another handler is installed: then that one rules.
    let _ = ctrlc::set_handler(move || state.signal("Ctrl-C"));
}
