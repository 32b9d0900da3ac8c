//! Evaluating one task: `Runner::execute` runs one node for one tick with
//! its gathered inputs and callees (`CallRunner`, the [`Callees`] a caller
//! sees), copies device tensors home for nodes that read elements, and
//! checks what a node returns (finite values, declared dtypes and shapes).

use super::{CallFrame, CallPlan, CallRunner, Done, Runner, Shown, Source, Task};
use crate::node::{Callees, NodeError, TickContext};
use crate::tensor::DType;
use crate::value::Value;
use std::time::Instant;

impl Runner {
    /// Evaluates one task (on any thread).
    pub(super) fn execute(&self, task: Task) -> Done {
        let step = &self.steps[task.step];
        let node = self.graph.node(step.node);
        let mut times = Vec::with_capacity(1 + task.frames.len());
        let mut callees = CallRunner {
            runner: self,
            frames: &task.frames,
            tick: task.tick,
            input: &task.input,
            times: &mut times,
        };
        let mut cx =
            TickContext::new(task.tick, &self.graph.settings, &mut callees).with_input(&task.input);
        let started = Instant::now();
        let result = {
            let mut state = self.states[step.node.0]
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match host_inputs(&*node.node, &task.inputs) {
                Ok(Some(inputs)) => node.node.eval(&mut state, &inputs, &mut cx),
                Ok(None) => node.node.eval(&mut state, &task.inputs, &mut cx),
                Err(e) => Err(e),
            }
        };
        let elapsed = started.elapsed();
        let stop = cx.stop_requested();
        times.push((step.node, elapsed));
        let allow_nonfinite = self.graph.settings.allow_nonfinite;
        let result = result
            .and_then(|values| check_outputs(node, &step.out_types, values))
            .and_then(|values| check_finite(node, values, allow_nonfinite));
        let shown = step.shows.and_then(|spec| {
            Some(Shown {
                node: step.node,
                value: task.inputs.get(spec.input).cloned().flatten()?,
                range: spec.range,
            })
        });
        Done {
            step: task.step,
            tick: task.tick,
            result,
            stop,
            times,
            started,
            shown,
        }
    }
}

impl Callees for CallRunner<'_> {
    fn call(&mut self, index: usize, args: Vec<Value>) -> Result<Vec<Value>, NodeError> {
        let frame = self
            .frames
            .get(index)
            .ok_or_else(|| NodeError::new(format!("internal: no callable #{index}")))?;
        if args.len() != frame.arg_slots.len() {
            return Err(NodeError::new(format!(
                "internal: callable #{index} takes {} arguments, {} given",
                frame.arg_slots.len(),
                args.len()
            )));
        }
        let mut inputs = frame.inputs.clone();
        for (slot, value) in frame.arg_slots.iter().zip(args) {
            inputs[*slot] = Some(value);
        }
        let graph = &*self.runner.graph;
        let node = graph.node(frame.node);
        let mut nested = CallRunner {
            runner: self.runner,
            frames: &frame.children,
            tick: self.tick,
            input: self.input,
            times: &mut *self.times,
        };
        let mut cx =
            TickContext::new(self.tick, &graph.settings, &mut nested).with_input(self.input);
        let started = Instant::now();
        let result = {
            let mut state = self.runner.states[frame.node.0]
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match host_inputs(&*node.node, &inputs) {
                Ok(Some(host)) => node.node.eval(&mut state, &host, &mut cx),
                Ok(None) => node.node.eval(&mut state, &inputs, &mut cx),
                Err(e) => Err(e),
            }
        };
        self.times.push((frame.node, started.elapsed()));
        result
            .and_then(|values| check_finite(node, values, graph.settings.allow_nonfinite))
            .map_err(|e| {
                NodeError::new(format!("in `{}` ({}): {}", node.name, node.kind, e.message))
            })
    }
}

/// The inputs with every device tensor copied to the host, for a node that
/// reads elements; `None` when nothing needs copying (the common case: no
/// allocation).
pub(super) fn host_inputs(
    node: &dyn crate::node::Node,
    inputs: &[Option<Value>],
) -> Result<Option<Vec<Option<Value>>>, NodeError> {
    let on_device = |v: &Option<Value>| matches!(v, Some(Value::Tensor(t)) if !t.is_host());
    if node.accepts_device_inputs() || !inputs.iter().any(on_device) {
        return Ok(None);
    }
    inputs
        .iter()
        .map(|v| match v {
            Some(Value::Tensor(t)) if !t.is_host() => Ok(Some(Value::Tensor(t.to_host()?))),
            other => Ok(other.clone()),
        })
        .collect::<Result<Vec<_>, NodeError>>()
        .map(Some)
}

pub(super) fn gather(
    sources: &[Source],
    cur: &[Option<Vec<Value>>],
    prev: &[Option<Vec<Value>>],
    tick: u64,
) -> Vec<Option<Value>> {
    sources
        .iter()
        .map(|s| match s {
            Source::Empty => None,
            Source::Data { plan, port } => cur.get(*plan)?.as_ref()?.get(*port).cloned(),
            Source::Feedback { plan, port, init } => {
                // Tick 0, or a producer a reload added or reset: the init value.
                let carried = (tick > 0)
                    .then(|| prev.get(*plan)?.as_ref()?.get(*port).cloned())
                    .flatten();
                Some(carried.unwrap_or_else(|| init.clone()))
            }
        })
        .collect()
}

pub(super) fn frames(
    calls: &[CallPlan],
    cur: &[Option<Vec<Value>>],
    prev: &[Option<Vec<Value>>],
    tick: u64,
) -> Vec<CallFrame> {
    calls
        .iter()
        .map(|c| CallFrame {
            node: c.node,
            inputs: gather(&c.inputs, cur, prev, tick),
            arg_slots: c.arg_slots.clone(),
            children: frames(&c.children, cur, prev, tick),
        })
        .collect()
}

/// Refuses non-finite float values (f32, f64, f16) where they are
/// produced: a NaN or an infinity in an output fails the node that made it
/// (naming the output and the models the node runs), not the sink that
/// would have written a black frame. One pass over each float output; the
/// full count is taken only on the error path.
/// `allow` (`world { on_nonfinite = allow }`) passes them on.
pub(super) fn check_finite(
    node: &crate::graph::GraphNode,
    values: Vec<Value>,
    allow: bool,
) -> Result<Vec<Value>, NodeError> {
    if allow {
        return Ok(values);
    }
    for (i, v) in values.iter().enumerate() {
        let Value::Tensor(t) = v else { continue };
        let Some(bad) = t.host().ok().and_then(|d| d.non_finite()) else {
            continue;
        };
        let port = node
            .outputs
            .get(i)
            .map_or_else(|| format!("#{i}"), |p| p.name.clone());
        let models: Vec<String> = node
            .params
            .iter()
            .flat_map(|(_, p)| p.model_names())
            .map(|m| format!("`{m}`"))
            .collect();
        let of_model = match models.len() {
            0 => String::new(),
            1 => format!(" (from model {})", models[0]),
            _ => format!(" (from models {})", models.join(", ")),
        };
        return Err(NodeError::new(format!(
            "output `{port}`{of_model} holds a non-finite value ({}) at element {}; \
             {} of its {} values are NaN or infinite",
            bad.value,
            bad.first,
            bad.count,
            t.len()
        )));
    }
    Ok(values)
}

/// Catches a node producing something other than what it declared.
pub(super) fn check_outputs(
    node: &crate::graph::GraphNode,
    expected: &[Option<(DType, Vec<usize>)>],
    values: Vec<Value>,
) -> Result<Vec<Value>, NodeError> {
    if values.len() != expected.len() {
        return Err(NodeError::new(format!(
            "produced {} outputs, declared {}",
            values.len(),
            expected.len()
        )));
    }
    for ((v, e), port) in values.iter().zip(expected).zip(&node.outputs) {
        if let (Value::Tensor(t), Some((dtype, shape))) = (v, e)
            && (t.dtype() != *dtype || t.shape() != shape.as_slice())
        {
            return Err(NodeError::new(format!(
                "output `{}` is {}{:?} but was declared {}{:?}",
                port.name,
                t.dtype(),
                t.shape(),
                dtype,
                shape
            )));
        }
    }
    Ok(values)
}
