//! Driving ticks: `Runner::run_inline` evaluates a tick's steps in
//! topological order on the calling thread (`workers = 0`);
//! `Runner::run_pool` has a coordinator hand ready tasks `(step, tick)` to
//! worker threads over crossbeam channels, admitting ticks into the
//! pipeline window (`Runner::admit`) as earlier ones finish.

use super::eval::{frames, gather};
use super::{Done, RunConfig, RunEvent, RunState, Runner, Task, TickHooks, TickSlot};
use crate::node::TickInput;
use crate::value::Value;
use crossbeam_channel::unbounded;
use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

impl Runner {
    pub(super) fn run_inline(
        &mut self,
        config: &RunConfig,
        run: &mut RunState,
        hooks: &mut dyn TickHooks,
    ) {
        let first = self.completed;
        let mut prev = std::mem::take(&mut self.prev);
        prev.resize(self.steps.len(), None);
        for tick in first..first.saturating_add(config.ticks) {
            if hooks.before_tick(tick).is_break() {
                run.paused = true;
                break;
            }
            let input = hooks.input(tick);
            let tick_start = Instant::now();
            let copies_at_start = crate::transfers::totals();
            let mut cur: Vec<Option<Vec<Value>>> = vec![None; self.steps.len()];
            let mut shown = Vec::new();
            let mut stop = false;
            for (s, step) in self.steps.iter().enumerate() {
                let task = Task {
                    step: s,
                    tick,
                    input,
                    inputs: gather(&step.inputs, &cur, &prev, tick),
                    frames: frames(&step.calls, &cur, &prev, tick),
                };
                let done = self.execute(task);
                for (id, d) in &done.times {
                    self.metrics.record(*id, *d);
                }
                match done.result {
                    Ok(values) => cur[s] = Some(values),
                    Err(e) => {
                        run.error = Some((step.node.0, tick, e.message));
                        self.prev = prev;
                        return;
                    }
                }
                if let Some(v) = done.shown {
                    shown.push(v);
                }
                if done.stop && run.stopped_by.is_none() {
                    run.stopped_by = Some(step.node.0);
                    stop = true;
                }
            }
            let latency = tick_start.elapsed();
            self.metrics.tick_latency.record(latency);
            self.metrics
                .copies
                .record(crate::transfers::totals().since(&copies_at_start));
            self.completed = tick + 1;
            prev = cur;
            let flow = hooks.tick_done(&RunEvent::TickDone {
                tick,
                latency,
                shown,
            });
            if stop {
                break;
            }
            if flow.is_break() {
                run.paused = true;
                break;
            }
        }
        self.prev = prev;
    }

    pub(super) fn run_pool(
        &mut self,
        config: &RunConfig,
        run: &mut RunState,
        hooks: &mut dyn TickHooks,
    ) {
        let depth = config.pipeline_depth.max(1) as u64;
        let first = self.completed;
        let end = first.saturating_add(config.ticks);
        let mut ticks: BTreeMap<u64, TickSlot> = BTreeMap::new();
        if let Some(last) = first.checked_sub(1) {
            // The previous call's last tick, as feedback edges see it.
            let mut values = std::mem::take(&mut self.prev);
            values.resize(self.steps.len(), None);
            ticks.insert(
                last,
                TickSlot {
                    values,
                    pending: vec![0; self.steps.len()],
                    remaining: 0,
                    first_start: Instant::now(),
                    input: TickInput::NONE,
                    shown: Vec::new(),
                },
            );
        }
        let mut metrics = std::mem::take(&mut self.metrics);
        // Ticks overlap here: copies count towards the tick that completes next.
        let mut copies_mark = crate::transfers::totals();
        let this = &*self;
        let mut completed = first;
        let (task_tx, task_rx) = unbounded::<Task>();
        let (done_tx, done_rx) = unbounded::<Done>();
        std::thread::scope(|scope| {
            for _ in 0..config.workers {
                let rx = task_rx.clone();
                let tx = done_tx.clone();
                scope.spawn(move || {
                    for task in rx {
                        if tx.send(this.execute(task)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(done_tx);
            let mut ready: VecDeque<(usize, u64)> = VecDeque::new();
            let mut next_tick = first;
            let mut in_flight = 0usize;
            let mut stop_at: Option<u64> = None;
            let limit = |stop_at: Option<u64>| stop_at.map_or(end, |s| (s + 1).min(end));
            loop {
                while next_tick < limit(stop_at)
                    && next_tick < completed + depth
                    && run.error.is_none()
                    && !run.paused
                {
                    if hooks.before_tick(next_tick).is_break() {
                        run.paused = true;
                        break;
                    }
                    let input = hooks.input(next_tick);
                    this.admit(next_tick, input, &mut ticks, &mut ready);
                    next_tick += 1;
                }
                while run.error.is_none() {
                    let Some((s, t)) = ready.pop_front() else {
                        break;
                    };
                    if t >= limit(stop_at) {
                        continue;
                    }
                    let step = &this.steps[s];
                    let slot = &ticks[&t];
                    let empty = Vec::new();
                    let prev = t
                        .checked_sub(1)
                        .and_then(|p| ticks.get(&p))
                        .map_or(&empty, |p| &p.values);
                    let task = Task {
                        step: s,
                        tick: t,
                        input: slot.input,
                        inputs: gather(&step.inputs, &slot.values, prev, t),
                        frames: frames(&step.calls, &slot.values, prev, t),
                    };
                    if task_tx.send(task).is_err() {
                        break;
                    }
                    in_flight += 1;
                }
                if in_flight == 0 {
                    break;
                }
                let Ok(done) = done_rx.recv() else { break };
                in_flight -= 1;
                for (id, d) in &done.times {
                    metrics.record(*id, *d);
                }
                let (s, t) = (done.step, done.tick);
                let values = match done.result {
                    Ok(v) => v,
                    Err(e) => {
                        if run.error.is_none() {
                            run.error = Some((this.steps[s].node.0, t, e.message));
                        }
                        continue;
                    }
                };
                if done.stop && stop_at.is_none_or(|x| t < x) {
                    stop_at = Some(t);
                    run.stopped_by = Some(this.steps[s].node.0);
                }
                let Some(slot) = ticks.get_mut(&t) else {
                    continue;
                };
                slot.values[s] = Some(values);
                if let Some(v) = done.shown {
                    slot.shown.push(v);
                }
                slot.first_start = slot.first_start.min(done.started);
                slot.remaining -= 1;
                for &q in &this.steps[s].succ {
                    slot.pending[q] -= 1;
                    if slot.pending[q] == 0 {
                        ready.push_back((q, t));
                    }
                }
                let complete = slot.remaining == 0;
                if let Some(next) = ticks.get_mut(&(t + 1)) {
                    for &q in &this.steps[s].prev_succ {
                        next.pending[q] -= 1;
                        if next.pending[q] == 0 {
                            ready.push_back((q, t + 1));
                        }
                    }
                }
                if complete {
                    // Ticks complete in order: (n, t) waits for (n, t - 1).
                    let latency = ticks[&t].first_start.elapsed();
                    metrics.tick_latency.record(latency);
                    let now = crate::transfers::totals();
                    metrics.copies.record(now.since(&copies_mark));
                    copies_mark = now;
                    completed = t + 1;
                    let shown = ticks
                        .get_mut(&t)
                        .map(|slot| std::mem::take(&mut slot.shown))
                        .unwrap_or_default();
                    let flow = hooks.tick_done(&RunEvent::TickDone {
                        tick: t,
                        latency,
                        shown,
                    });
                    if flow.is_break() && stop_at.is_none() {
                        // Run what has started; admit nothing more.
                        run.paused = true;
                        stop_at = Some(next_tick.saturating_sub(1));
                    }
                    if t > 0 {
                        ticks.remove(&(t - 1));
                    }
                }
            }
            drop(task_tx);
        });
        self.metrics = metrics;
        self.completed = completed;
        self.prev = completed
            .checked_sub(1)
            .and_then(|last| ticks.remove(&last))
            .map(|slot| slot.values)
            .unwrap_or_else(|| vec![None; self.steps.len()]);
    }

    /// Opens tick `t`: counts each step's unmet prerequisites.
    pub(super) fn admit(
        &self,
        t: u64,
        input: TickInput,
        ticks: &mut BTreeMap<u64, TickSlot>,
        ready: &mut VecDeque<(usize, u64)>,
    ) {
        // A completed slot (remaining 0) satisfies every previous-tick
        // prerequisite, also where it holds no value (a step added by a reload).
        let prev_done: Option<Vec<bool>> = t.checked_sub(1).and_then(|p| ticks.get(&p)).map(|p| {
            p.values
                .iter()
                .map(|v| p.remaining == 0 || v.is_some())
                .collect()
        });
        let mut pending = Vec::with_capacity(self.steps.len());
        for (s, step) in self.steps.iter().enumerate() {
            let prev_unmet = match &prev_done {
                Some(done) => step.prev_deps.iter().filter(|&&d| !done[d]).count(),
                None => 0,
            };
            let n = step.deps.len() + prev_unmet;
            if n == 0 {
                ready.push_back((s, t));
            }
            pending.push(n);
        }
        ticks.insert(
            t,
            TickSlot {
                values: vec![None; self.steps.len()],
                pending,
                remaining: self.steps.len(),
                first_start: Instant::now(),
                input,
                shown: Vec::new(),
            },
        );
    }
}
