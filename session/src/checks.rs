//! Checks of a run's flags against the graph they run, made before its
//! first tick (`wgraph run`):
//!
//! - [`check_events`] — every scripted parameter change (`--events`) names
//!   a node of the graph and a parameter of its kind.
//! - [`short_action_files`] — the warnings for `actions` nodes whose file
//!   (`on_end = idle`) runs out before the run does.
//! - [`RunSpan`] — the ticks a run covers, checked against a loaded state
//!   and `--save-at`.

use std::path::Path;
use wgraph_engine::graph::Graph;
use wgraph_engine::world::ScriptedEvent;

/// Every scripted parameter change names a node of the graph and a
/// parameter of its kind (a typo is a usage error before anything runs);
/// `path` is the events file, for the message.
pub fn check_events(
    graph: &Graph,
    script: &[(u64, ScriptedEvent)],
    path: Option<&Path>,
) -> Result<(), String> {
    let registry = wgraph_nodes::registry();
    let file = path.map_or_else(String::new, |p| p.display().to_string());
    for (tick, e) in script {
        let ScriptedEvent::Set(set) = e else { continue };
        let Some(id) = graph.find(&set.node) else {
            return Err(format!(
                "--events {file}: tick {tick}: the graph has no node `{}`",
                set.node
            ));
        };
        let kind = graph.node(id).kind;
        let known = registry
            .get(kind)
            .is_some_and(|k| k.params().iter().any(|p| p.name == set.param));
        if !known {
            return Err(format!(
                "--events {file}: tick {tick}: `{}` ({kind}) has no parameter `{}` (see `wgraph kinds {kind}`)",
                set.node, set.param
            ));
        }
    }
    Ok(())
}

/// The warnings, one per `actions` node whose file (`on_end = idle`) has
/// fewer lines than the run's `ticks`: from then on it holds no keys.
pub fn short_action_files(graph: &Graph, ticks: u64) -> Vec<String> {
    let mut warnings = Vec::new();
    for n in graph.nodes.iter().filter(|n| n.kind == "actions") {
        let (Ok(path), Ok(on_end)) = (n.params.path("path"), n.params.choice("on_end")) else {
            continue;
        };
        if on_end != "idle" {
            continue;
        }
        let lines = wgraph_engine::input::read_to_string(&path, wgraph_engine::input::TEXT)
            .ok()
            .and_then(|t| wgraph_nodes::action_file::parse_action_file(&t).ok())
            .map(|a| a.len() as u64);
        if let Some(lines) = lines.filter(|&l| l < ticks) {
            warnings.push(format!(
                "warning: action file `{}` has {lines} tick{} of keys but the run has {ticks} ticks: \
                 `{}` holds no keys from tick {lines} on (set `on_end = loop` or `stop`, or run fewer frames)",
                path.display(),
                if lines == 1 { "" } else { "s" },
                n.name
            ));
        }
    }
    warnings
}

/// The ticks a run covers: from the world's first tick (a loaded state's)
/// to `max_ticks` (`--frames`, counted from the world's first tick).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSpan {
    /// The world's first tick (0, or a loaded state's).
    pub first_tick: u64,
    /// The tick the run ends at (`None`: it runs until stopped).
    pub max_ticks: Option<u64>,
    /// `--frames` as given (`None`: the default, 16).
    pub frames: Option<u64>,
    /// Frames per tick (the graph's).
    pub per_tick: u64,
}

impl RunSpan {
    /// The run has a tick to run, and `save_at` (`--save-at`) is a tick it
    /// reaches (at its last tick + 1: the state at the end); the error
    /// says what to pass instead.
    pub fn check(&self, save_at: Option<u64>) -> Result<(), String> {
        let first_tick = self.first_tick;
        if let Some(ticks) = self.max_ticks
            && ticks <= first_tick
        {
            let frames = match self.frames {
                Some(f) => format!("--frames {f}"),
                None => "--frames 16 (the default)".to_string(),
            };
            return Err(format!(
                "the loaded state continues at tick {first_tick}, and {frames} ends the run at tick {ticks} \
                 (--frames counts from the world's first tick): nothing would run; \
                 pass --frames {} or more",
                first_tick.saturating_mul(self.per_tick).saturating_add(1)
            ));
        }
        // `--save-at` names a tick the run reaches; at the run's last tick
        // it is the state at the end.
        if let Some(at) = save_at {
            if at < first_tick {
                return Err(format!(
                    "--save-at {at}: the loaded state starts at tick {first_tick}, so tick {at} has already passed"
                ));
            }
            if let Some(ticks) = self.max_ticks
                && at > ticks
            {
                return Err(format!(
                    "--save-at {at} is past the end of the run: it runs ticks {first_tick} to {}, \
                     so the last state it can save is before tick {ticks}, its end \
                     (--frames counts from the world's first tick)",
                    ticks - 1
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_span_must_have_a_tick_to_run_and_reach_save_at() {
        let span = RunSpan {
            first_tick: 10,
            max_ticks: Some(16),
            frames: None,
            per_tick: 1,
        };
        assert_eq!(span.check(None), Ok(()));
        assert_eq!(span.check(Some(10)), Ok(()));
        assert_eq!(span.check(Some(16)), Ok(()), "the state at the end");
        assert!(
            span.check(Some(9))
                .unwrap_err()
                .contains("has already passed")
        );
        assert!(
            span.check(Some(17))
                .unwrap_err()
                .contains("past the end of the run")
        );
        let nothing = RunSpan {
            first_tick: 16,
            frames: Some(32),
            per_tick: 2,
            ..span
        };
        let e = nothing.check(None).unwrap_err();
        assert!(e.contains("--frames 32 ends the run at tick 16"), "{e}");
        assert!(e.contains("pass --frames 33 or more"), "{e}");
        let endless = RunSpan {
            max_ticks: None,
            ..span
        };
        assert_eq!(endless.check(Some(1000)), Ok(()));
    }
}
