//! The file watcher: [`Watcher`] tells a world's reloader which of its
//! files changed (dora's pattern: a typed message, nothing else); parsing,
//! checking and model loading happen on the reloader's thread, and the
//! world swaps at a tick boundary.

use notify_debouncer_full::notify::{EventKind, RecursiveMode, event::AccessKind};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use wgraph_engine::world::WorldHandle;

/// Watches a world's files (`notify`, debounced) and tells the world's
/// reloader which of them changed. It watches their *directories*, so an
/// editor that saves by writing a temporary file and renaming it over the
/// original (vim, JetBrains, VS Code) is seen like one that writes in place.
pub struct Watcher {
    debouncer: Debouncer<notify_debouncer_full::notify::RecommendedWatcher, RecommendedCache>,
    files: Arc<std::sync::Mutex<BTreeSet<PathBuf>>>,
    dirs: BTreeSet<PathBuf>,
}

/// How long a burst of file events is gathered before one reload.
const DEBOUNCE: Duration = Duration::from_millis(100);

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

impl Watcher {
    /// Starts watching `files` for `handle`'s world.
    pub fn start(handle: WorldHandle, files: &[PathBuf]) -> Result<Watcher, String> {
        let watched: Arc<std::sync::Mutex<BTreeSet<PathBuf>>> = Arc::default();
        let shared = Arc::clone(&watched);
        let debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
            let Ok(events) = result else { return };
            let files = shared.lock().unwrap_or_else(|p| p.into_inner());
            let mut changed: Vec<PathBuf> = Vec::new();
            for event in &events {
                // Reading a file (ours included, while rebuilding) is not a change.
                if matches!(
                    event.kind,
                    EventKind::Access(
                        AccessKind::Open(_) | AccessKind::Read | AccessKind::Close(_)
                    )
                ) && !matches!(
                    event.kind,
                    EventKind::Access(AccessKind::Close(
                        notify_debouncer_full::notify::event::AccessMode::Write
                    ))
                ) {
                    continue;
                }
                for p in &event.paths {
                    let p = absolute(p);
                    if files.contains(&p) && !changed.contains(&p) {
                        changed.push(p);
                    }
                }
            }
            if !changed.is_empty() {
                handle.files_changed(changed);
            }
        })
        .map_err(|e| format!("cannot watch files: {e}"))?;
        let mut w = Watcher {
            debouncer,
            files: watched,
            dirs: BTreeSet::new(),
        };
        w.watch(files)?;
        Ok(w)
    }

    /// Watches `files` (a reloaded graph's) from now on.
    pub fn watch(&mut self, files: &[PathBuf]) -> Result<(), String> {
        let files: BTreeSet<PathBuf> = files.iter().map(|p| absolute(p)).collect();
        for f in &files {
            let Some(dir) = f.parent() else { continue };
            if self.dirs.insert(dir.to_path_buf()) {
                self.debouncer
                    .watch(dir, RecursiveMode::NonRecursive)
                    .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
            }
        }
        *self.files.lock().unwrap_or_else(|p| p.into_inner()) = files;
        Ok(())
    }
}
