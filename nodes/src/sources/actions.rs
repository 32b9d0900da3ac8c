//! `actions`: the keys a player holds — live from a front end, or scripted
//! by an action file.
//!
//! When the world has live input (a front end holds keys, or an `--events`
//! line set them), the live keys win; otherwise the action file plays, one
//! line per tick. Without a `path`, a world with no live input gets no keys.

use super::action_file::parse_action_file;
use crate::common::*;

/// The `actions` kind.
pub struct ActionsFile;

const ON_END: &[&str] = &["idle", "loop", "stop"];

impl NodeKind for ActionsFile {
    fn name(&self) -> &'static str {
        "actions"
    }
    fn summary(&self) -> &'static str {
        "player input: live keys from a front end, else one line per tick of an action file"
    }
    fn params(&self) -> &'static [ParamSpec] {
        const PARAMS: &[ParamSpec] = &[
            ParamSpec::optional(
                "path",
                ParamType::Path,
                ParamDefault::Absent,
                "action file: one line per tick, keys like `W+Left`, `-` for none, `#` comments (none: live input only)",
            ),
            ParamSpec::optional(
                "on_end",
                ParamType::Choice(ON_END),
                ParamDefault::Choice("idle"),
                "past the last line: no keys, loop, or stop the run",
            ),
        ];
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let Ok(path) = cx.params.path("path") else {
            return Ok(Box::new(ActionsNode {
                script: Vec::new(),
                on_end: cx.params.choice("on_end")?,
            }));
        };
        let bytes = read_source("path", &path, wgraph_engine::input::TEXT)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            BuildError::param("path", format!("`{}` is not UTF-8 text", path.display()))
        })?;
        let script = parse_action_file(text).map_err(|(line, msg)| {
            BuildError::param(
                "path",
                format!("line {line} of `{}`: {msg}", path.display()),
            )
        })?;
        Ok(Box::new(ActionsNode {
            script,
            on_end: cx.params.choice("on_end")?,
        }))
    }
}

struct ActionsNode {
    script: Vec<Actions>,
    on_end: String,
}

impl Node for ActionsNode {
    fn inputs(&self) -> Vec<PortSpec> {
        vec![]
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::output("actions")]
    }
    fn infer(
        &self,
        _: &[Option<ValueType>],
        _: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        Ok(vec![ValueType::Actions])
    }
    fn eval(
        &self,
        _: &mut State,
        _: &[Option<Value>],
        cx: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        if let Some(live) = cx.input().actions {
            return Ok(vec![Value::Actions(live)]);
        }
        let n = self.script.len();
        let t = usize::try_from(cx.tick).unwrap_or(usize::MAX);
        if self.on_end == "stop" && t + 1 >= n {
            cx.request_stop();
        }
        let a = match self.on_end.as_str() {
            "loop" if n > 0 => self.script[t % n],
            _ => self.script.get(t).copied().unwrap_or_default(),
        };
        Ok(vec![Value::Actions(a)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::*;
    use wgraph_engine::params::ParamValue as P;

    #[test]
    fn plays_the_script_then_idles_loops_or_stops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "# script\nW\nd+space\n").unwrap();
        let (w, d) = (
            Actions::none().with(Key::W),
            Actions::none().with(Key::D).with(Key::Space),
        );
        let idle = Actions::none();
        for (on_end, want, stop_at) in [
            ("idle", [w, d, idle, idle], 9),
            ("loop", [w, d, w, d], 9),
            ("stop", [w, d, idle, idle], 1),
        ] {
            let params = vec![
                ("path", P::Path(path.clone())),
                ("on_end", P::Choice(on_end.into())),
            ];
            let node = build(&ActionsFile, params, dir.path()).unwrap();
            let out = run(&*node, 4, |_| vec![]).unwrap();
            for (i, (o, stop)) in out.iter().enumerate() {
                assert_eq!(o[0], Value::Actions(want[i]), "{on_end} tick {i}");
                assert_eq!(*stop, i >= stop_at, "{on_end} tick {i}");
            }
        }
    }

    #[test]
    fn live_keys_win_over_the_script_and_no_path_means_live_only() {
        use wgraph_engine::node::{NoCallees, TickInput};
        use wgraph_engine::settings::Settings;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "W\nW\n").unwrap();
        let scripted = build(&ActionsFile, vec![("path", P::Path(path))], dir.path()).unwrap();
        let live_only = build(&ActionsFile, vec![], dir.path()).unwrap();
        let settings = Settings::default();
        let d = Actions::none().with(Key::D);
        let live = TickInput::with_actions(d);
        let eval = |node: &dyn Node, input: &TickInput| {
            let mut none = NoCallees;
            let mut cx = TickContext::new(0, &settings, &mut none).with_input(input);
            let mut state: State = Box::new(());
            node.eval(&mut state, &[], &mut cx).unwrap()
        };
        assert_eq!(eval(&*scripted, &live), vec![Value::Actions(d)]);
        assert_eq!(
            eval(&*scripted, &TickInput::NONE),
            vec![Value::Actions(Actions::none().with(Key::W))]
        );
        assert_eq!(eval(&*live_only, &live), vec![Value::Actions(d)]);
        assert_eq!(
            eval(&*live_only, &TickInput::NONE),
            vec![Value::Actions(Actions::none())]
        );
    }

    #[test]
    fn bad_line_is_reported_with_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "W\nA\nQ\n").unwrap();
        let e = build(
            &ActionsFile,
            vec![("path", P::Path(path.clone()))],
            dir.path(),
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            format!(
                "line 3 of `{}`: unknown key `Q` (keys: W A S D Left Right Up Down Space)",
                path.display()
            )
        );
    }
}
