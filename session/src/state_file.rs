//! A world's state in a file (`--save-state`, `--load-state`): a snapshot
//! document written whole or not at all ([`write_json`]) and loaded into a
//! world before its first tick ([`load_state`]); when a run saves it
//! ([`SavePlan`]: before a tick mid-run, or at the end).

use std::path::Path;
use wgraph_engine::world::World;

/// Loads the snapshot at `path` into `world` (before its first tick). A
/// snapshot taken with other parameter values is refused unless
/// `allow_param_changes`; then the values that differ are returned (to be
/// named to the user), otherwise none.
pub fn load_state(
    world: &mut World,
    path: &Path,
    allow_param_changes: bool,
) -> Result<Vec<String>, String> {
    let text = wgraph_engine::input::read_to_string(path, wgraph_engine::input::DATA)
        .map_err(|e| e.to_string())?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("not a JSON snapshot: {e}"))?;
    let changes = wgraph_engine::snapshot::param_changes(&json, world.graph()).unwrap_or_default();
    let options = wgraph_engine::snapshot::RestoreOptions {
        allow_param_changes,
    };
    match world.restore_with(&json, options) {
        Err(e) if !changes.is_empty() && !allow_param_changes => Err(format!(
            "{e} (pass --allow-param-changes to load it and continue with this run's values)"
        )),
        Err(e) => Err(e.to_string()),
        Ok(()) => Ok(changes),
    }
}

/// Writes a JSON document (one line), whole or not at all (temporary file
/// + rename).
pub fn write_json(path: &Path, json: &serde_json::Value) -> Result<(), String> {
    let text = serde_json::to_string(json).map_err(|e| e.to_string())?;
    wgraph_engine::output::write_file(path, (text + "\n").as_bytes()).map_err(|e| e.to_string())
}

/// When `--save-state` saves: mid-run (a scripted snapshot before tick
/// `--save-at`), or at the end of the run (no `--save-at`, or the run's
/// last tick + 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SavePlan {
    /// `--save-at`.
    pub save_at: Option<u64>,
    /// The tick a scripted snapshot is taken before, when it is not the
    /// run's end.
    pub mid_run: Option<u64>,
}

/// What is left to do about `--save-state` once a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndSave {
    /// The run stopped at `ticks`, before tick `save_at`: no state saved.
    Missed { ticks: u64, save_at: u64 },
    /// The state at the end is the one asked for: save it now.
    SaveNow,
    /// The state was saved (or failed to be) mid-run.
    SavedMidRun,
}

impl SavePlan {
    /// The plan for `--save-at` in a run of `max_ticks` (`None`: no end).
    pub fn new(save_at: Option<u64>, max_ticks: Option<u64>) -> Self {
        SavePlan {
            save_at,
            mid_run: save_at.filter(|&at| Some(at) != max_ticks),
        }
    }

    /// Once the run ended after `ticks` ticks: was the state `--save-at`
    /// asked for taken? Mid-run it is a scripted snapshot
    /// (`snapshot_taken`); at the run's last tick, the state at the end.
    pub fn at_end(&self, snapshot_taken: bool, ticks: u64) -> EndSave {
        let missed = match self.save_at {
            Some(_) if self.mid_run.is_some() => !snapshot_taken,
            Some(at) => ticks != at,
            None => false,
        };
        if missed {
            EndSave::Missed {
                ticks,
                save_at: self.save_at.unwrap_or_default(),
            }
        } else if self.mid_run.is_none() {
            EndSave::SaveNow
        } else {
            EndSave::SavedMidRun
        }
    }
}

/// Writes `world`'s state now to `path` (a JSON document, whole or not at
/// all).
pub fn save_state(world: &World, path: &Path) -> Result<(), String> {
    let snapshot = world.snapshot().map_err(|e| e.to_string())?;
    write_json(path, &snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_document_is_written_whole_on_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_json(&path, &serde_json::json!({ "tick": 3 })).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"tick\":3}\n");
    }

    #[test]
    fn a_save_at_the_runs_end_is_saved_at_the_end() {
        let plan = SavePlan::new(Some(16), Some(16));
        assert_eq!(plan.mid_run, None);
        assert_eq!(plan.at_end(false, 16), EndSave::SaveNow);
        assert_eq!(
            plan.at_end(false, 9),
            EndSave::Missed {
                ticks: 9,
                save_at: 16
            }
        );
        assert_eq!(SavePlan::new(None, None).at_end(false, 3), EndSave::SaveNow);
    }

    #[test]
    fn a_save_mid_run_is_missed_only_without_its_snapshot() {
        let plan = SavePlan::new(Some(4), Some(16));
        assert_eq!(plan.mid_run, Some(4));
        assert_eq!(plan.at_end(true, 16), EndSave::SavedMidRun);
        assert_eq!(
            plan.at_end(false, 2),
            EndSave::Missed {
                ticks: 2,
                save_at: 4
            }
        );
        assert_eq!(SavePlan::new(Some(4), None).mid_run, Some(4));
    }
}
