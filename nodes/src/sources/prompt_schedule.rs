//! `prompt_schedule`: text that changes at given ticks — Yan-Gen's local
//! caption (current events) and Yume 1.5's text-triggered events
//! ("12: a ghost appears").
//!
//! `schedule` lists entries `"TICK: text"`: TICK a non-negative integer,
//! strictly increasing, the first 0. At tick `t` the output is the text of
//! the last entry whose TICK ≤ t. Whitespace around TICK and the text is
//! trimmed; the text may contain `:` and may be empty.
//!
//! `text`, when set, replaces the schedule: the prompt a front end's text
//! box (or an `--events` line, or a file edit) sets while the world runs.

use crate::common::*;
use std::sync::Arc;

/// The `prompt_schedule` kind.
pub struct PromptSchedule;

impl NodeKind for PromptSchedule {
    fn name(&self) -> &'static str {
        "prompt_schedule"
    }
    fn summary(&self) -> &'static str {
        "text that changes at given ticks (Yan-Gen's local caption, Yume 1.5's text-triggered events)"
    }
    fn params(&self) -> &'static [ParamSpec] {
        const PARAMS: &[ParamSpec] = &[
            ParamSpec::required(
                "schedule",
                ParamType::StrList,
                "entries \"TICK: text\", TICK increasing from 0, e.g. [\"0: a quiet street\", \"12: a ghost appears\"]",
            ),
            ParamSpec::optional(
                "text",
                ParamType::Str,
                ParamDefault::Absent,
                "a live prompt: when set, this text replaces the schedule",
            ),
        ];
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let mut entries = parse_schedule(&cx.params.str_list("schedule")?)
            .map_err(|m| BuildError::param("schedule", m))?;
        if let Ok(text) = cx.params.string("text") {
            entries = vec![(0, text.trim().into())];
        }
        Ok(Box::new(PromptScheduleNode { entries }))
    }
}

/// Parses `"TICK: text"` entries into (tick, text); errors name the entry
/// (counted from 1).
fn parse_schedule(list: &[String]) -> Result<Vec<(u64, Arc<str>)>, String> {
    if list.is_empty() {
        return Err("the schedule is empty; give at least \"0: <text>\"".into());
    }
    let mut out: Vec<(u64, Arc<str>)> = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let n = i + 1;
        let Some((tick, text)) = entry.split_once(':') else {
            return Err(format!(
                "entry {n}: `{entry}` is not \"TICK: text\" (e.g. \"12: a ghost appears\")"
            ));
        };
        let tick = tick.trim();
        let tick: u64 = tick.parse().map_err(|_| {
            format!("entry {n}: `{tick}` is not a tick (a non-negative integer) in `{entry}`")
        })?;
        match out.last() {
            None if tick != 0 => {
                return Err(format!(
                    "entry {n}: the first entry must be at tick 0, found {tick}"
                ));
            }
            Some(&(prev, _)) if tick <= prev => {
                return Err(format!(
                    "entry {n}: tick {tick} is not after the previous entry's tick {prev}"
                ));
            }
            _ => {}
        }
        out.push((tick, text.trim().into()));
    }
    Ok(out)
}

struct PromptScheduleNode {
    /// (tick, text), ticks strictly increasing from 0.
    entries: Vec<(u64, Arc<str>)>,
}

impl Node for PromptScheduleNode {
    fn live_prompt(&self) -> Option<(&'static str, String)> {
        // `text` replaces the schedule; shown with the text of tick 0.
        self.entries.first().map(|(_, t)| ("text", t.to_string()))
    }
    fn inputs(&self) -> Vec<PortSpec> {
        vec![]
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::output("text")]
    }
    fn infer(
        &self,
        _: &[Option<ValueType>],
        _: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        Ok(vec![ValueType::Text])
    }
    fn eval(
        &self,
        _: &mut State,
        _: &[Option<Value>],
        cx: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        let i = self.entries.partition_point(|(t, _)| *t <= cx.tick);
        let (_, text) = self
            .entries
            .get(i.wrapping_sub(1))
            .ok_or_else(|| NodeError::new("internal: empty schedule"))?;
        Ok(vec![Value::Text(text.clone())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::*;
    use wgraph_engine::params::ParamValue as P;

    fn schedule(entries: &[&str]) -> Vec<(&'static str, P)> {
        vec![(
            "schedule",
            P::StrList(entries.iter().map(|s| s.to_string()).collect()),
        )]
    }

    #[test]
    fn the_entry_in_force_at_each_tick() {
        let dir = tempfile::tempdir().unwrap();
        let p = schedule(&["0: a quiet street", " 3 :a ghost appears: boo ", "5:"]);
        let node = build(&PromptSchedule, p, dir.path()).unwrap();
        let out = run(&*node, 7, |_| vec![]).unwrap();
        let texts: Vec<_> = out
            .iter()
            .map(|(o, _)| match &o[0] {
                Value::Text(t) => t.to_string(),
                v => panic!("{v:?}"),
            })
            .collect();
        let (a, b) = ("a quiet street", "a ghost appears: boo");
        assert_eq!(texts, [a, a, a, b, b, "", ""]);
    }

    #[test]
    fn a_live_text_replaces_the_schedule() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = schedule(&["0: a quiet street", "3: a ghost appears"]);
        p.push(("text", P::Str("  snow falls ".into())));
        let node = build(&PromptSchedule, p, dir.path()).unwrap();
        let out = run(&*node, 5, |_| vec![]).unwrap();
        assert!(
            out.iter()
                .all(|(o, _)| o[0] == Value::Text("snow falls".into()))
        );
    }

    #[test]
    fn bad_entries_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = |entries: &[&str]| {
            let e = build(&PromptSchedule, schedule(entries), dir.path()).unwrap_err();
            assert_eq!(e.param.as_deref(), Some("schedule"));
            e.message
        };
        assert_eq!(
            err(&["0: a", "a ghost"]),
            "entry 2: `a ghost` is not \"TICK: text\" (e.g. \"12: a ghost appears\")"
        );
        assert_eq!(
            err(&["0: a", "-2: b"]),
            "entry 2: `-2` is not a tick (a non-negative integer) in `-2: b`"
        );
        assert_eq!(
            err(&["1: a"]),
            "entry 1: the first entry must be at tick 0, found 1"
        );
        assert_eq!(
            err(&["0: a", "4: b", "4: c"]),
            "entry 3: tick 4 is not after the previous entry's tick 4"
        );
        assert_eq!(
            err(&[]),
            "the schedule is empty; give at least \"0: <text>\""
        );
    }
}
