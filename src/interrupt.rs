//! Ctrl-C and SIGTERM for the commands that run a world (`run`, `replay`).
//!
//! The handler is installed before the graph is loaded. Until a world is
//! attached nothing has been written, so a signal exits at once (130).
//! Once one is, the first signal stops the world at the next tick boundary
//! and the command finishes every sink and prints its summary; a second
//! exits at once — which loses nothing either: every sink keeps its file
//! valid after each frame (PNG and `.npy` frames are renamed into place
//! whole, a GIF ends with its trailer after every frame, a y4m stream is
//! written a whole frame at a time).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use wgraph_engine::world::WorldHandle;

/// What a signal stops.
#[derive(Default)]
pub struct Interrupt {
    world: Mutex<Option<WorldHandle>>,
    signals: AtomicU32,
}

static INTERRUPT: OnceLock<Arc<Interrupt>> = OnceLock::new();

impl Interrupt {
    /// Installs the handler (once per process) and returns its state.
    pub fn install() -> Arc<Interrupt> {
        Arc::clone(INTERRUPT.get_or_init(|| {
            let state = Arc::new(Interrupt::default());
            let handler = Arc::clone(&state);
            // Fails only when another handler is installed: then that one rules.
            let _ = ctrlc::set_handler(move || handler.signal());
            state
        }))
    }

    fn signal(&self) {
        let first = self.signals.fetch_add(1, Ordering::SeqCst) == 0;
        let world = self.world.lock().unwrap_or_else(|p| p.into_inner());
        match (first, world.as_ref()) {
            (true, Some(w)) => w.stop(),
            _ => std::process::exit(130),
        }
    }

    /// From now on a signal stops `world` at a tick boundary.
    pub fn attach(&self, world: WorldHandle) {
        let mut slot = self.world.lock().unwrap_or_else(|p| p.into_inner());
        if self.signals.load(Ordering::SeqCst) > 0 {
            world.stop();
        }
        *slot = Some(world);
    }
}
