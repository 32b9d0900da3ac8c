//! A world's state in a file (`--save-state`, `--load-state`): a snapshot
//! document written whole or not at all ([`write_json`]) and loaded into a
//! world before its first tick ([`load_state`]).

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
}
