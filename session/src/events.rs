//! What a session is told to do besides its graph: `--events` files
//! ([`parse_events`]: parameter changes and keys at given ticks) and the
//! late-tick policy ([`late_policy`]: the graph's `on_late`/`degrade`,
//! replaced by flags).

use std::path::Path;
use wgraph_engine::world::{ParamSet, ScriptedEvent};

/// Parses an `--events` file: one event per line,
///
/// ```text
/// # comments and blank lines are ignored
/// 12: sampler.steps = 8                  # a parameter (graph syntax)
/// 40: style.text = "a snowy village"     # a prompt
/// 50: keys = W+Left                      # hold keys (as in action files)
/// 80: keys = live                        # back to the action file / front end
/// ```
///
/// Errors name the file and line.
pub fn parse_events(path: &Path, text: &str) -> Result<Vec<(u64, ScriptedEvent)>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let at = |msg: String| format!("{}:{}: {msg}", path.display(), i + 1);
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        let (tick, rest) = line.split_once(':').ok_or_else(|| {
            at("expected `TICK: NODE.PARAM = VALUE` or `TICK: keys = KEYS`".into())
        })?;
        let tick: u64 = tick
            .trim()
            .parse()
            .map_err(|_| at(format!("`{}` is not a tick number", tick.trim())))?;
        let (target, value) = rest
            .split_once('=')
            .ok_or_else(|| at("expected `NODE.PARAM = VALUE` after the tick".into()))?;
        let (target, value) = (target.trim(), value.trim());
        let event = if target == "keys" {
            if value == "live" {
                ScriptedEvent::Keys(None)
            } else {
                let keys = wgraph_nodes::action_file::parse_action_file(value)
                    .map_err(|(_, msg)| at(msg))?;
                ScriptedEvent::Keys(Some(keys.first().copied().unwrap_or_default()))
            }
        } else {
            let (node, param) = target
                .split_once('.')
                .filter(|(n, p)| !n.is_empty() && !p.is_empty())
                .ok_or_else(|| at(format!("`{target}` is not NODE.PARAM or `keys`")))?;
            if value.is_empty() {
                return Err(at(format!("no value for `{target}`")));
            }
            ScriptedEvent::Set(ParamSet {
                node: node.into(),
                param: param.into(),
                value: value.into(),
            })
        };
        out.push((tick, event));
    }
    Ok(out)
}

/// The line without a trailing `# comment` (a `#` inside a string stays).
fn strip_comment(line: &str) -> &str {
    let mut in_string = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_string = !in_string,
            '#' if !in_string => return &line[..i],
            _ => {}
        }
    }
    line
}

/// The late-tick policy of a world: the graph's `on_late`/`degrade`
/// settings, replaced by `--on-late`/`--degrade` flags when given. Every
/// degrade entry must name a node of the graph and a parameter of its kind.
pub fn late_policy(
    graph: &wgraph_engine::graph::Graph,
    on_late: Option<&str>,
    degrade: &[String],
) -> Result<(wgraph_engine::settings::LatePolicy, Vec<ParamSet>), String> {
    use wgraph_engine::settings::{LatePolicy, split_setting};
    let policy = match on_late {
        None => graph.settings.on_late,
        Some("drop") => LatePolicy::Drop,
        Some("degrade") => LatePolicy::Degrade,
        Some(other) => return Err(format!("--on-late {other}: expected drop or degrade")),
    };
    let entries: Vec<String> = if degrade.is_empty() {
        graph.settings.degrade.clone()
    } else {
        degrade.to_vec()
    };
    let registry = wgraph_nodes::registry();
    let mut sets = Vec::new();
    for e in &entries {
        let (node, param, value) = split_setting(e)
            .ok_or_else(|| format!("degrade `{e}`: expected NODE.PARAM = VALUE"))?;
        let id = graph
            .find(node)
            .ok_or_else(|| format!("degrade `{e}`: the graph has no node `{node}`"))?;
        let kind = graph.node(id).kind;
        if !registry
            .get(kind)
            .is_some_and(|k| k.params().iter().any(|p| p.name == param))
        {
            return Err(format!(
                "degrade `{e}`: `{node}` ({kind}) has no parameter `{param}`"
            ));
        }
        sets.push(ParamSet {
            node: node.into(),
            param: param.into(),
            value: value.into(),
        });
    }
    if policy == LatePolicy::Degrade && sets.is_empty() {
        return Err("--on-late degrade needs degrade settings (world { degrade = [...] } or --degrade NODE.PARAM=VALUE)".into());
    }
    Ok((policy, sets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wgraph_engine::value::{Actions, Key};

    #[test]
    fn events_parse_with_comments_strings_and_keys() {
        let text = "# intro\n\n3: sampler.steps = 8  # fewer\n5: style.text = \"a # b\"\n\
                    7: keys = W+Left\n9: keys = -\n11: keys = live\n";
        let events = parse_events(Path::new("e.txt"), text).unwrap();
        let set = |n: &str, p: &str, v: &str| {
            ScriptedEvent::Set(ParamSet {
                node: n.into(),
                param: p.into(),
                value: v.into(),
            })
        };
        assert_eq!(
            events,
            vec![
                (3, set("sampler", "steps", "8")),
                (5, set("style", "text", "\"a # b\"")),
                (
                    7,
                    ScriptedEvent::Keys(Some(Actions::none().with(Key::W).with(Key::Left)))
                ),
                (9, ScriptedEvent::Keys(Some(Actions::none()))),
                (11, ScriptedEvent::Keys(None)),
            ]
        );
    }

    #[test]
    fn event_errors_name_the_line() {
        for (text, want) in [
            ("x: a.b = 1", "e.txt:1: `x` is not a tick number"),
            (
                "\n4 a.b = 1",
                "e.txt:2: expected `TICK: NODE.PARAM = VALUE` or `TICK: keys = KEYS`",
            ),
            ("4: ab = 1", "e.txt:1: `ab` is not NODE.PARAM or `keys`"),
            ("4: a.b =", "e.txt:1: no value for `a.b`"),
            (
                "4: keys = Q",
                "e.txt:1: unknown key `Q` (keys: W A S D Left Right Up Down Space)",
            ),
        ] {
            assert_eq!(parse_events(Path::new("e.txt"), text).unwrap_err(), want);
        }
    }
}
