//! Scheduler overhead per node: an N-node chain of trivial nodes.
//!
//! Each node passes its input through (an `Arc` clone), so the measured time
//! is the engine's: gathering inputs, locking state, timing, storing outputs,
//! and (with workers) the channel round trip. Throughput is reported in
//! node-evaluations, so criterion's "time per element" is ns per node per tick.
//!
//! Run: `cargo bench -p wgraph-engine --bench scheduler`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::path::Path;
use wgraph_engine::load::{LoadOptions, load};
use wgraph_engine::node::*;
use wgraph_engine::params::ParamSpec;
use wgraph_engine::registry::Registry;
use wgraph_engine::schedule::{RunConfig, Runner};
use wgraph_engine::tensor::{DType, Tensor};
use wgraph_engine::types::ValueType;
use wgraph_engine::value::Value;
use wgraph_grammar::MemLoader;

const TICKS: u64 = 200;

struct Pass {
    source: bool,
}

impl Node for Pass {
    fn inputs(&self) -> Vec<PortSpec> {
        if self.source {
            vec![]
        } else {
            vec![PortSpec::wired("x")]
        }
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::output("out")]
    }
    fn infer(
        &self,
        _: &[Option<ValueType>],
        _: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        Ok(vec![ValueType::tensor(DType::F32, &[1])])
    }
    fn eval(
        &self,
        _: &mut State,
        inputs: &[Option<Value>],
        _: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        match inputs.first() {
            Some(Some(v)) => Ok(vec![v.clone()]),
            _ => Ok(vec![Value::Tensor(Tensor::scalar_f32(1.0).reshape(&[1])?)]),
        }
    }
}

struct PassKind(&'static str, bool);

impl NodeKind for PassKind {
    fn name(&self) -> &'static str {
        self.0
    }
    fn summary(&self) -> &'static str {
        "bench node"
    }
    fn params(&self) -> &'static [ParamSpec] {
        &[]
    }
    fn build(&self, _: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        Ok(Box::new(Pass { source: self.1 }))
    }
}

fn chain(n: usize) -> wgraph_engine::graph::Graph {
    let mut text = String::from("node n0: src\n");
    for i in 1..n {
        text.push_str(&format!("node n{i}: pass\nn{}.out -> n{i}.x\n", i - 1));
    }
    let mut registry = Registry::new();
    registry.register(PassKind("src", true)).expect("unique");
    registry.register(PassKind("pass", false)).expect("unique");
    let loader = MemLoader::new().with("chain.world", text);
    load(
        Path::new("chain.world"),
        &LoadOptions::new(&registry),
        &loader,
    )
    .expect("chain builds")
    .graph
}

fn overhead(c: &mut Criterion) {
    let mut group = c.benchmark_group("chain");
    for n in [10usize, 100] {
        let graph = std::sync::Arc::new(chain(n));
        group.throughput(Throughput::Elements(n as u64 * TICKS));
        for (label, workers, depth) in
            [("inline", 0, 1), ("pool2", 2, 1), ("pool2_pipelined", 2, 4)]
        {
            group.bench_with_input(BenchmarkId::new(label, n), &graph, |b, graph| {
                let config = RunConfig {
                    ticks: TICKS,
                    workers,
                    pipeline_depth: depth,
                };
                b.iter(|| {
                    let mut runner = Runner::new(std::sync::Arc::clone(graph)).expect("states");
                    runner.run(&config, &mut |_| {}).expect("run")
                });
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_secs(1)).measurement_time(std::time::Duration::from_secs(3));
    targets = overhead
}
criterion_main!(benches);
