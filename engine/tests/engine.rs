//! Engine tests: build-time checks, ordering, parallel branches, feedback,
//! callables, failures. Uses small test-only node kinds defined below so the
//! engine is tested without `wgraph-nodes`.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wgraph_engine::graph::Graph;
use wgraph_engine::load::{LoadOptions, load};
use wgraph_engine::node::*;
use wgraph_engine::params::{Default, ParamSpec, ParamType};
use wgraph_engine::registry::Registry;
use wgraph_engine::schedule::{RunConfig, RunEvent, Runner, TickHooks};
use wgraph_engine::tensor::{DType, Device, DeviceBuffer, HostData, Tensor, TensorError};
use wgraph_engine::types::ValueType;
use wgraph_engine::value::Value;
use wgraph_grammar::MemLoader;

// ---- test kinds ----------------------------------------------------------

fn scalar() -> ValueType {
    ValueType::tensor(DType::F32, &[1])
}

fn read(v: &Option<Value>) -> Result<f32, NodeError> {
    let t = v
        .as_ref()
        .and_then(Value::as_tensor)
        .ok_or_else(|| NodeError::new("missing input"))?;
    Ok(t.host_f32()?[0])
}

fn out(x: f32) -> Vec<Value> {
    vec![Value::Tensor(
        Tensor::from_f32(&[1], vec![x]).expect("one element"),
    )]
}

fn check_scalars(inputs: &[Option<ValueType>]) -> Result<(), TypeError> {
    for (i, t) in inputs.iter().enumerate() {
        if let Some(t) = t
            && *t != scalar()
        {
            return Err(TypeError::input(
                i,
                format!("expected {}, found {t}", scalar()),
            ));
        }
    }
    Ok(())
}

/// A function-style test node: fixed ports, eval from a closure.
struct Fn {
    inputs: Vec<PortSpec>,
    outputs: usize,
    out_type: ValueType,
    #[allow(clippy::type_complexity)]
    f: Arc<
        dyn std::ops::Fn(&[Option<Value>], &mut TickContext<'_>) -> Result<Vec<Value>, NodeError>
            + Send
            + Sync,
    >,
    calls: Vec<CallSpec>,
    /// Takes device tensors as they are (see `Node::accepts_device_inputs`).
    device: bool,
}

impl Node for Fn {
    fn accepts_device_inputs(&self) -> bool {
        self.device
    }
    fn inputs(&self) -> Vec<PortSpec> {
        self.inputs.clone()
    }
    fn outputs(&self) -> Vec<PortSpec> {
        (0..self.outputs).map(|_| PortSpec::output("out")).collect()
    }
    fn calls(&self) -> Vec<CallSpec> {
        self.calls.clone()
    }
    fn infer(
        &self,
        inputs: &[Option<ValueType>],
        calls: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        check_scalars(inputs)?;
        for i in 0..self.calls.len() {
            calls.infer_call(i, &[scalar()])?;
        }
        Ok(vec![self.out_type.clone(); self.outputs])
    }
    fn eval(
        &self,
        _s: &mut State,
        inputs: &[Option<Value>],
        cx: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        (self.f)(inputs, cx)
    }
}

type EvalFn = Arc<
    dyn std::ops::Fn(&[Option<Value>], &mut TickContext<'_>) -> Result<Vec<Value>, NodeError>
        + Send
        + Sync,
>;

struct Kind {
    name: &'static str,
    params: &'static [ParamSpec],
    make: fn(&BuildContext<'_>) -> Result<Fn, BuildError>,
}

impl NodeKind for Kind {
    fn name(&self) -> &'static str {
        self.name
    }
    fn summary(&self) -> &'static str {
        "test kind"
    }
    fn params(&self) -> &'static [ParamSpec] {
        self.params
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        Ok(Box::new((self.make)(cx)?))
    }
}

fn simple(inputs: &[&str], f: EvalFn) -> Fn {
    Fn {
        inputs: inputs.iter().map(|n| PortSpec::wired(*n)).collect(),
        outputs: 1,
        out_type: scalar(),
        f,
        calls: Vec::new(),
        device: false,
    }
}

const BY: &[ParamSpec] = &[ParamSpec::optional(
    "by",
    ParamType::Float,
    Default::Float(1.0),
    "increment",
)];
const AT: &[ParamSpec] = &[ParamSpec::required("at", ParamType::Int, "tick")];
const F: &[ParamSpec] = &[ParamSpec::required("f", ParamType::NodeRef, "callee")];
const MODELS: &[ParamSpec] = &[
    ParamSpec::required("models", ParamType::ModelRefList, "models in order"),
    ParamSpec::optional("pick", ParamType::IntList, Default::Absent, "indices"),
];

static SINK: Mutex<Vec<(String, u64, f32)>> = Mutex::new(Vec::new());
static RENDEZVOUS: AtomicUsize = AtomicUsize::new(0);

fn registry() -> Registry {
    let mut r = Registry::new();
    let kinds = [
        // `tick`: emits the tick index.
        Kind {
            name: "tick",
            params: &[],
            make: |_| Ok(simple(&[], Arc::new(|_, cx| Ok(out(cx.tick as f32))))),
        },
        // `inc`: x + by.
        Kind {
            name: "inc",
            params: BY,
            make: |cx| {
                let by = cx.params.float("by")? as f32;
                Ok(simple(
                    &["x"],
                    Arc::new(move |i, _| Ok(out(read(&i[0])? + by))),
                ))
            },
        },
        Kind {
            name: "sum",
            params: &[],
            make: |_| {
                Ok(simple(
                    &["a", "b"],
                    Arc::new(|i, _| Ok(out(read(&i[0])? + read(&i[1])?))),
                ))
            },
        },
        // `upload`: x moved to a (pretend) device.
        Kind {
            name: "upload",
            params: &[],
            make: |_| {
                let mut n = simple(
                    &["x"],
                    Arc::new(|i, _| {
                        let x = read(&i[0])?;
                        let buf = Arc::new(FakeDevice(vec![x]));
                        Ok(vec![Value::Tensor(Tensor::from_device(&[1], buf)?)])
                    }),
                );
                n.device = false;
                Ok(n)
            },
        },
        // `on_device`: passes a tensor on, checking it is still on the device.
        Kind {
            name: "on_device",
            params: &[],
            make: |_| {
                let mut n = simple(
                    &["x"],
                    Arc::new(|i, _| {
                        let t = i[0]
                            .as_ref()
                            .and_then(Value::as_tensor)
                            .ok_or_else(|| NodeError::new("missing input"))?;
                        if t.is_host() {
                            return Err(NodeError::new("expected a device tensor"));
                        }
                        Ok(vec![Value::Tensor(t.clone())])
                    }),
                );
                n.device = true;
                Ok(n)
            },
        },
        // `record`: remembers (node name, tick, value).
        Kind {
            name: "record",
            params: &[],
            make: |cx| {
                let name = cx.name.to_string();
                let mut n = simple(
                    &["x"],
                    Arc::new(move |i, cx| {
                        let v = read(&i[0])?;
                        SINK.lock().unwrap().push((name.clone(), cx.tick, v));
                        Ok(vec![])
                    }),
                );
                n.outputs = 0;
                Ok(n)
            },
        },
        // `meet`: waits (up to 5 s) until two `meet` nodes are inside eval at once.
        Kind {
            name: "meet",
            params: &[],
            make: |_| {
                Ok(simple(
                    &["x"],
                    Arc::new(|i, _| {
                        RENDEZVOUS.fetch_add(1, Ordering::SeqCst);
                        let start = Instant::now();
                        while RENDEZVOUS.load(Ordering::SeqCst) < 2
                            && start.elapsed() < Duration::from_secs(5)
                        {
                            std::thread::yield_now();
                        }
                        let met = RENDEZVOUS.load(Ordering::SeqCst) >= 2;
                        Ok(out(if met { read(&i[0])? } else { -1.0 }))
                    }),
                ))
            },
        },
        // `fail_at`: fails on tick `at`.
        Kind {
            name: "fail_at",
            params: AT,
            make: |cx| {
                let at = cx.params.int("at")? as u64;
                Ok(simple(
                    &["x"],
                    Arc::new(move |i, cx| {
                        if cx.tick == at {
                            return Err(NodeError::new("boom"));
                        }
                        Ok(out(read(&i[0])?))
                    }),
                ))
            },
        },
        // `nan_at`: passes x through, but NaN on tick `at` (x is a call
        // input: a scheduled `nan_at` gets it wired, a callee from its caller).
        Kind {
            name: "nan_at",
            params: AT,
            make: |cx| {
                let at = cx.params.int("at")? as u64;
                Ok(simple(
                    &["x"],
                    Arc::new(move |i, cx| {
                        Ok(out(if cx.tick == at {
                            f32::NAN
                        } else {
                            read(&i[0])?
                        }))
                    }),
                ))
            },
        },
        Kind {
            name: "nan_call",
            params: AT,
            make: |cx| {
                let at = cx.params.int("at")? as u64;
                let mut n = simple(
                    &[],
                    Arc::new(move |i, cx| {
                        Ok(out(if cx.tick == at {
                            f32::INFINITY
                        } else {
                            read(&i[0])?
                        }))
                    }),
                );
                n.inputs.insert(0, PortSpec::call("x"));
                Ok(n)
            },
        },
        // `stop_at`: asks to stop on tick `at`.
        Kind {
            name: "stop_at",
            params: AT,
            make: |cx| {
                let at = cx.params.int("at")? as u64;
                Ok(simple(
                    &[],
                    Arc::new(move |_, cx| {
                        if cx.tick == at {
                            cx.request_stop();
                        }
                        Ok(out(cx.tick as f32))
                    }),
                ))
            },
        },
        // `double_call`: calls `f` twice: f(f(x)).
        Kind {
            name: "double_call",
            params: F,
            make: |_| {
                let mut n = simple(
                    &["x"],
                    Arc::new(|i, cx| {
                        let x = i[0].clone().ok_or_else(|| NodeError::new("missing"))?;
                        let y = cx.call(0, vec![x])?.remove(0);
                        cx.call(0, vec![y])
                    }),
                );
                n.calls = vec![CallSpec {
                    param: "f".into(),
                    args: vec!["x".into()],
                }];
                Ok(n)
            },
        },
        // `add_k`: callable x + k (k wired).
        Kind {
            name: "add_k",
            params: &[],
            make: |_| {
                let mut n = simple(
                    &["k"],
                    Arc::new(|i, _| Ok(out(read(&i[0])? + read(&i[1])?))),
                );
                n.inputs.insert(0, PortSpec::call("x"));
                Ok(n)
            },
        },
        // `sleep`: waits `at` ms, then emits the tick.
        Kind {
            name: "sleep",
            params: AT,
            make: |cx| {
                let ms = cx.params.int("at")?.max(0) as u64;
                Ok(simple(
                    &[],
                    Arc::new(move |_, cx| {
                        std::thread::sleep(Duration::from_millis(ms));
                        Ok(out(cx.tick as f32))
                    }),
                ))
            },
        },
        // `uses_models`: names a list of models; `pick` indexes it.
        Kind {
            name: "uses_models",
            params: MODELS,
            make: |cx| {
                let models = cx.model_list("models")?;
                if cx.params.get("pick").is_some() {
                    for (k, i) in cx.params.int_list("pick")?.into_iter().enumerate() {
                        if usize::try_from(i).map_or(true, |i| i >= models.len()) {
                            return Err(BuildError::item(
                                "pick",
                                k,
                                format!("no model {i} of {}", models.len()),
                            ));
                        }
                    }
                }
                Ok(simple(&[], Arc::new(|_, cx| Ok(out(cx.tick as f32)))))
            },
        },
        // `text`: emits text (for type mismatches).
        Kind {
            name: "text",
            params: &[],
            make: |_| {
                let mut n = simple(&[], Arc::new(|_, _| Ok(vec![Value::Text("hi".into())])));
                n.out_type = ValueType::Text;
                Ok(n)
            },
        },
    ];
    for k in kinds {
        r.register(k).unwrap();
    }
    r
}

/// Device memory for tests: a host vector that only `download` reads.
#[derive(Debug)]
struct FakeDevice(Vec<f32>);

impl DeviceBuffer for FakeDevice {
    fn device(&self) -> Device {
        Device::Gpu {
            api: "fake",
            index: 0,
        }
    }
    fn dtype(&self) -> DType {
        DType::F32
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn download(&self) -> Result<HostData, TensorError> {
        Ok(HostData::F32(self.0.clone().into()))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

// ---- helpers --------------------------------------------------------------

fn build(text: &str) -> Result<Arc<Graph>, Vec<String>> {
    let loader = MemLoader::new().with("t.world", text);
    let registry = registry();
    load(Path::new("t.world"), &LoadOptions::new(&registry), &loader)
        .map(|l| Arc::new(l.graph))
        .map_err(|e| e.lines())
}

fn errors(text: &str) -> Vec<String> {
    match build(text) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e,
    }
}

fn run(graph: &Arc<Graph>, config: RunConfig) -> Vec<(String, u64, f32)> {
    let names: Vec<String> = graph.nodes.iter().map(|n| n.name.clone()).collect();
    let mut runner = Runner::new(Arc::clone(graph)).unwrap();
    runner.run(&config, &mut |_| {}).unwrap();
    let mut sink = SINK.lock().unwrap();
    let mut mine: Vec<_> = sink
        .iter()
        .filter(|(n, _, _)| names.contains(n))
        .cloned()
        .collect();
    sink.retain(|(n, _, _)| !names.contains(n));
    mine.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    mine
}

fn modes(ticks: u64) -> [RunConfig; 3] {
    [
        RunConfig {
            ticks,
            workers: 0,
            pipeline_depth: 1,
        },
        RunConfig {
            ticks,
            workers: 2,
            pipeline_depth: 1,
        },
        RunConfig {
            ticks,
            workers: 3,
            pipeline_depth: 3,
        },
    ]
}

// ---- running ---------------------------------------------------------------

mod running {
    use super::*;

    #[test]
    fn chain_runs_in_topological_order_even_when_declared_backwards() {
        let g = build(
            "o1_a.out -> o1_s.x\no1_b.out -> o1_a.x\no1_t.out -> o1_b.x\n\
             node o1_s: record\nnode o1_a: inc { by = 10 }\nnode o1_b: inc\nnode o1_t: tick\n",
        )
        .unwrap();
        for config in modes(4) {
            let got = run(&g, config);
            let values: Vec<f32> = got.iter().map(|r| r.2).collect();
            assert_eq!(values, vec![11.0, 12.0, 13.0, 14.0]);
        }
        // A node's state can be read between ticks, by name.
        let runner = Runner::new(Arc::clone(&g)).unwrap();
        assert_eq!(
            runner.inspect_state("o1_a", |s| s.downcast_ref::<()>().is_some()),
            Some(true)
        );
        assert_eq!(runner.inspect_state("nope", |_| ()), None);
    }

    #[test]
    fn independent_branches_run_at_the_same_time() {
        let g = build(
            "node p_t: tick\nnode p_a: meet\nnode p_b: meet\nnode p_s: sum\nnode p_r: record\n\
             p_t -> p_a\np_t -> p_b\np_a -> p_s.a\np_b -> p_s.b\np_s -> p_r\n",
        )
        .unwrap();
        RENDEZVOUS.store(0, Ordering::SeqCst);
        let got = run(
            &g,
            RunConfig {
                ticks: 1,
                workers: 2,
                pipeline_depth: 1,
            },
        );
        // -1 from either branch would mean it waited 5 s alone.
        assert_eq!(got, vec![("p_r".to_string(), 0, 0.0)]);
    }

    #[test]
    fn feedback_carries_previous_tick_and_init_on_tick_zero() {
        // acc(t) = acc(t-1) + 1, acc(-1) = 0.5
        let g = build(
            "node f_acc: inc\nnode f_r: record\nfeedback f_acc.out -> f_acc.x init fill(0.5, 1)\nf_acc -> f_r\n",
        )
        .unwrap();
        for config in modes(5) {
            let values: Vec<f32> = run(&g, config).iter().map(|r| r.2).collect();
            assert_eq!(values, vec![1.5, 2.5, 3.5, 4.5, 5.5]);
        }
    }

    #[test]
    fn feedback_closes_a_loop_through_two_nodes() {
        // x(t) = y(t-1) + 1; y(t) = x(t) + t
        let g = build(
            "node l_t: tick\nnode l_x: inc\nnode l_y: sum\nnode l_r: record\n\
             feedback l_y.out -> l_x.x init zeros(1)\nl_x -> l_y.a\nl_t -> l_y.b\nl_y -> l_r\n",
        )
        .unwrap();
        let expected = vec![1.0, 3.0, 6.0, 10.0, 15.0, 21.0];
        for config in modes(6) {
            let values: Vec<f32> = run(&g, config).iter().map(|r| r.2).collect();
            assert_eq!(values, expected);
        }
    }

    #[test]
    fn callable_runs_with_its_wired_inputs() {
        // k = tick + 1; out = (x + k) + k
        let g = build(
            "node c_t: tick\nnode c_k: inc\nnode c_f: add_k\nnode c_d: double_call { f = @c_f }\nnode c_r: record\n\
             c_t -> c_k\nc_k -> c_f.k\nc_t -> c_d.x\nc_d -> c_r\n",
        )
        .unwrap();
        for config in modes(3) {
            let values: Vec<f32> = run(&g, config).iter().map(|r| r.2).collect();
            assert_eq!(values, vec![2.0, 5.0, 8.0]);
        }
        let mut runner = Runner::new(Arc::clone(&g)).unwrap();
        let report = runner
            .run(
                &RunConfig {
                    ticks: 3,
                    workers: 0,
                    pipeline_depth: 1,
                },
                &mut |_| {},
            )
            .unwrap();
        SINK.lock().unwrap().retain(|r| r.0 != "c_r");
        let callee = g.find("c_f").unwrap();
        assert_eq!(
            report.metrics.node_times[callee.0].count(),
            6,
            "two calls per tick are timed"
        );
    }

    #[test]
    fn failure_reports_node_and_tick_and_keeps_completed_ticks() {
        let g = build("node e_t: tick\nnode e_f: fail_at { at = 2 }\nnode e_r: record\ne_t -> e_f\ne_f -> e_r\n").unwrap();
        for config in modes(5) {
            let mut runner = Runner::new(Arc::clone(&g)).unwrap();
            let mut done = Vec::new();
            let err = runner
                .run(&config, &mut |e| {
                    if let RunEvent::TickDone { tick, .. } = e {
                        done.push(*tick)
                    }
                })
                .unwrap_err();
            assert_eq!(
                (err.node.as_str(), err.tick, err.message.as_str()),
                ("e_f", 2, "boom")
            );
            assert_eq!(err.report.ticks, 2);
            assert_eq!(done, vec![0, 1]);
            let mut sink = SINK.lock().unwrap();
            let mine: Vec<u64> = sink.iter().filter(|r| r.0 == "e_r").map(|r| r.1).collect();
            sink.retain(|r| r.0 != "e_r");
            assert_eq!(mine, vec![0, 1], "ticks before the failure were delivered");
        }
    }

    /// A NaN or infinity fails the node that produced it (scheduled or
    /// called), not whoever would consume it; earlier ticks are delivered.
    #[test]
    fn non_finite_values_fail_the_node_that_made_them() {
        let g = build(
            "node n_t: tick\nnode n_n: nan_at { at = 2 }\nnode n_r: record\nn_t -> n_n\nn_n -> n_r\n",
        )
        .unwrap();
        for config in modes(5) {
            let mut runner = Runner::new(Arc::clone(&g)).unwrap();
            let err = runner.run(&config, &mut |_| {}).unwrap_err();
            assert_eq!((err.node.as_str(), err.tick), ("n_n", 2));
            assert_eq!(
                err.message,
                "output `out` holds a non-finite value (NaN) at element 0; 1 of its 1 values are NaN or infinite"
            );
            let mut sink = SINK.lock().unwrap();
            let mine: Vec<u64> = sink.iter().filter(|r| r.0 == "n_r").map(|r| r.1).collect();
            sink.retain(|r| r.0 != "n_r");
            assert_eq!(mine, vec![0, 1]);
        }
        let g = build(
            "node m_t: tick\nnode m_c: nan_call { at = 1 }\nnode m_d: double_call { f = @m_c }\n\
             node m_r: record\nm_t -> m_d.x\nm_d -> m_r\n",
        )
        .unwrap();
        let mut runner = Runner::new(Arc::clone(&g)).unwrap();
        let err = runner.run(&modes(3)[0], &mut |_| {}).unwrap_err();
        SINK.lock().unwrap().retain(|r| r.0 != "m_r");
        assert_eq!((err.node.as_str(), err.tick), ("m_d", 1));
        assert_eq!(
            err.message,
            "in `m_c` (nan_call): output `out` holds a non-finite value (inf) at element 0; 1 of its 1 values are NaN or infinite"
        );
    }

    #[test]
    fn a_source_can_stop_the_run() {
        let g = build("node s_s: stop_at { at = 2 }\nnode s_r: record\ns_s -> s_r\n").unwrap();
        for config in modes(10) {
            let mut runner = Runner::new(Arc::clone(&g)).unwrap();
            let report = runner.run(&config, &mut |_| {}).unwrap();
            assert_eq!(report.ticks, 3);
            assert_eq!(report.stopped_by.as_deref(), Some("s_s"));
            let mut sink = SINK.lock().unwrap();
            let mine: Vec<u64> = sink.iter().filter(|r| r.0 == "s_r").map(|r| r.1).collect();
            sink.retain(|r| r.0 != "s_r");
            assert_eq!(mine, vec![0, 1, 2]);
        }
    }
}

// ---- build-time errors -----------------------------------------------------

mod build_errors {
    use super::*;

    fn has(errors: &[String], expected: &str) {
        assert!(
            errors.iter().any(|e| e == expected),
            "missing `{expected}` in {errors:#?}"
        );
    }

    #[test]
    fn unknown_kind_suggests_the_closest() {
        let e = errors("node a: tik\n");
        has(&e, "t.world:1:9: unknown node kind `tik`");
    }

    #[test]
    fn cycle_without_feedback_is_rejected() {
        let e = errors("node a: inc\nnode b: inc\na -> b\nb -> a\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("t.world:3:1: cycle without a feedback edge: "),
            "{e:?}"
        );
        assert!(
            e[0].contains("a → b → a") || e[0].contains("b → a → b"),
            "{e:?}"
        );
    }

    #[test]
    fn unknown_port_and_node_are_located() {
        let e = errors("node a: tick\nnode b: inc\na.output -> b.x\na -> c.x\n");
        has(&e, "t.world:3:3: node `a` (tick) has no output `output`");
        has(&e, "t.world:4:6: no node named `c`");
    }

    #[test]
    fn unconnected_and_doubly_connected_inputs() {
        let e = errors("node a: tick\nnode b: tick\nnode s: sum\na -> s.a\nb -> s.a\n");
        has(&e, "t.world:3:1: input `s.b` is not connected");
        has(&e, "t.world:5:6: input `s.a` is already connected");
    }

    #[test]
    fn type_mismatch_names_node_port_and_both_types() {
        let e = errors("node a: text\nnode b: inc\na -> b.x\n");
        has(
            &e,
            "t.world:3:1: type mismatch at input `b.x`: expected f32[1], found text",
        );
    }

    #[test]
    fn parameters_are_checked_statically() {
        let e = errors("node a: inc { by = \"x\", bz = 1 }\nnode f: fail_at\n");
        has(
            &e,
            "t.world:1:20: parameter `by` of node `a` (inc) expects a number, found a string",
        );
        has(
            &e,
            "t.world:1:25: unknown parameter `bz` for node `a` (inc)",
        );
        has(
            &e,
            "t.world:2:1: missing parameter `at` for node `f` (fail_at)",
        );
    }

    #[test]
    fn callables_are_checked() {
        let e = errors(
            "node t: tick\nnode f: add_k\nnode d: double_call { f = @g }\nt -> d.x\nt -> f.k\n",
        );
        has(
            &e,
            "t.world:3:27: `f` of node `d` (double_call) refers to no node `g`",
        );
        has(
            &e,
            "t.world:2:1: node `f` (add_k) takes (x) from a caller, but no node calls it",
        );
        let e = errors(
            "node t: tick\nnode f: add_k\nnode d: double_call { f = @f }\nnode r: record\nt -> d.x\nt -> f.k\nf -> r\n",
        );
        has(
            &e,
            "t.world:7:1: `f` is called by `d`; its outputs go to its caller and cannot be wired",
        );
        let e = errors(
            "node t: tick\nnode f: inc\nnode d: double_call { f = @f }\nt -> d.x\nt -> f.x\n",
        );
        has(
            &e,
            "t.world:3:27: `d` (double_call) calls `f` with (x), but `f` (inc) takes () from its caller",
        );
    }

    #[test]
    fn feedback_init_must_match_the_edge_type() {
        let e = errors("node a: inc\nfeedback a.out -> a.x init zeros(2x2)\n");
        has(
            &e,
            // At the init: tick 0's value is the init, not `a.out`.
            "t.world:2:28: type mismatch at input `a.x`: expected f32[1], found f32[2, 2]",
        );
    }

    #[test]
    fn settings_are_checked() {
        let e = errors("world { fps = 0, resolution = 64, frobs = 1 }\n");
        has(
            &e,
            "t.world:1:15: fps must be between 0.001 and 1000 ticks per second, not 0",
        );
        has(
            &e,
            "t.world:1:31: parameter `resolution` of `world` expects a shape like 1x3x64x64 or [1, 3, H, W], found an integer",
        );
        has(&e, "t.world:1:35: unknown parameter `frobs` for `world`");
        let e = errors("world { resolution = 0x64 }\nworld { seed = 1 }\nworld { seed = 2 }\n");
        has(
            &e,
            "t.world:1:22: resolution must be a size HxW with both sides positive, like 64x64",
        );
        has(&e, "t.world:3:9: setting `seed` is set twice");
    }

    #[test]
    fn every_error_of_a_file_is_reported_at_once() {
        let e = errors("node a: tik\nnode b: inc { by = true }\nnode c: sum\nx -> c.a\n");
        assert!(e.len() >= 4, "{e:#?}");
    }
}

// ---- models ------------------------------------------------------------------

mod models {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use wgraph_engine::model::{
        Backend, LoadedModel, Model, ModelError, ModelOptions, ModelSignature, Provider,
    };

    struct Counting(AtomicUsize);

    struct Empty(ModelSignature);

    impl Model for Empty {
        fn signature(&self) -> &ModelSignature {
            &self.0
        }
        fn provider(&self) -> Provider {
            Provider::Cpu
        }
        fn run(&self, _: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
            Ok(vec![])
        }
    }

    impl Backend for Counting {
        fn load(&self, path: &Path, options: &ModelOptions) -> Result<LoadedModel, ModelError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            if path.extension().is_some_and(|e| e == "bad") {
                return Err(ModelError::Load(format!(
                    "{} is not a model",
                    path.display()
                )));
            }
            let warnings = match options.provider {
                Provider::Cpu => vec![],
                p => vec![format!(
                    "provider `{p}` is not available; loaded on `cpu` instead"
                )],
            };
            Ok(LoadedModel {
                model: Arc::new(Empty(ModelSignature::default())),
                warnings,
            })
        }
    }

    fn build_with(text: &str, backend: &Counting) -> Result<Graph, Vec<String>> {
        let dir = tempfile_dir();
        std::fs::write(dir.join("m.onnx"), b"x").unwrap();
        std::fs::write(dir.join("m.bad"), b"x").unwrap();
        let root = dir.join("t.world");
        std::fs::write(&root, text).unwrap();
        let registry = registry();
        let options = LoadOptions::new(&registry).with_backend(backend);
        load(&root, &options, &wgraph_grammar::FsLoader)
            .map(|l| l.graph)
            .map_err(|e| e.lines())
    }

    fn tempfile_dir() -> std::path::PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "wgraph-engine-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Lists of models and of integers: every element checked, errors at
    /// the element.
    #[test]
    fn model_and_integer_lists_are_checked_at_their_elements() {
        let backend = Counting(AtomicUsize::new(0));
        let g = build_with(
            "model a = \"m.onnx\"\nmodel b = \"m.onnx\"\nnode u: uses_models { models = [a, b, a], pick = [2, 0] }\n",
            &backend,
        )
        .unwrap();
        let u = &g.nodes[g.find("u").unwrap().0];
        assert_eq!(
            u.params
                .iter()
                .flat_map(|(_, v)| v.model_names())
                .collect::<Vec<_>>(),
            ["a", "b", "a"]
        );
        let cases = [
            (
                "node u: uses_models { models = [a, zz] }",
                "t.world:2:36: `models` of node `u` (uses_models) refers to no model `zz` (element 1)",
            ),
            (
                "node u: uses_models { models = [a, 3] }",
                "t.world:2:36: `models` of node `u` (uses_models) is a list of model names; found an integer",
            ),
            (
                "node u: uses_models { models = [a], pick = [0, 4] }",
                "t.world:2:48: node `u` (uses_models): no model 4 of 1",
            ),
            (
                "node u: uses_models { models = [a], pick = [0.5] }",
                "t.world:2:45: `pick` of node `u` (uses_models) is a list of integers; found a number",
            ),
            (
                "node u: uses_models { models = a }",
                "t.world:2:32: parameter `models` of node `u` (uses_models) expects a list of model names like [block0, block1], found",
            ),
        ];
        for (node, want) in cases {
            let e = build_with(&format!("model a = \"m.onnx\"\n{node}\n"), &backend).unwrap_err();
            assert!(e.iter().any(|x| x.contains(want)), "{want}\n{e:#?}");
        }
    }

    #[test]
    fn one_file_declared_twice_is_loaded_once_and_shared() {
        let backend = Counting(AtomicUsize::new(0));
        let g = build_with("model a = \"m.onnx\"\nmodel b = \"m.onnx\"\nmodel c = \"m.onnx\" { provider = cuda }\n", &backend).unwrap();
        assert_eq!(
            backend.0.load(Ordering::SeqCst),
            2,
            "a and b share; c has other options"
        );
        let (a, b) = (
            g.model_table.get("a").unwrap(),
            g.model_table.get("b").unwrap(),
        );
        assert!(Arc::ptr_eq(a, b));
        assert_eq!(
            g.warnings.len(),
            1,
            "the provider fallback is a warning, not an error"
        );
    }

    #[test]
    fn load_errors_point_at_the_model_path() {
        let backend = Counting(AtomicUsize::new(0));
        let e = build_with("model a = \"m.bad\"\n", &backend).unwrap_err();
        assert!(
            e[0].ends_with("t.world:1:11: cannot load model `a`: ")
                || e[0].contains("t.world:1:11: cannot load model `a`:"),
            "{e:?}"
        );
    }
}

mod live {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use wgraph_engine::reload::GraphDiff;
    use wgraph_engine::world::{
        Built, GraphSource, ParamSet, ScriptedEvent, World, WorldConfig, WorldEnd, WorldEvent,
    };

    fn records(name: &str) -> Vec<(u64, f32)> {
        let mut sink = SINK.lock().unwrap();
        let mine = sink
            .iter()
            .filter(|r| r.0 == name)
            .map(|r| (r.1, r.2))
            .collect();
        sink.retain(|r| r.0 != name);
        mine
    }

    const ACC: &str = "node w_acc: inc { by = 1 }\nnode w_r: record\n\
                       feedback w_acc.out -> w_acc.x init zeros(1)\nw_acc -> w_r\n";

    #[test]
    fn a_swap_carries_feedback_values_and_the_tick_counter_in_every_mode() {
        for config in modes(3) {
            let mut runner = Runner::new(build(ACC).unwrap()).unwrap();
            struct Hooks;
            impl TickHooks for Hooks {
                fn tick_done(&mut self, _: &RunEvent) -> std::ops::ControlFlow<()> {
                    std::ops::ControlFlow::Continue(())
                }
            }
            runner.advance(&config, &mut Hooks).unwrap();
            let new = build(&ACC.replace("by = 1", "by = 10")).unwrap();
            let report = runner.swap_graph(new).unwrap();
            assert_eq!(report.diff.summary(), "changed w_acc.by");
            assert_eq!(runner.ticks_done(), 3);
            runner.advance(&config, &mut Hooks).unwrap();
            runner.finish().unwrap();
            let values: Vec<(u64, f32)> = records("w_r");
            assert_eq!(
                values,
                vec![
                    (0, 1.0),
                    (1, 2.0),
                    (2, 3.0),
                    (3, 13.0),
                    (4, 23.0),
                    (5, 33.0)
                ],
                "{config:?}"
            );
        }
    }

    #[test]
    fn a_diff_names_added_removed_rewired_and_kind_changes() {
        let old =
            build("node d_a: tick\nnode d_b: inc\nnode d_r: record\nd_a -> d_b\nd_b -> d_r\n")
                .unwrap();
        let new = build(
            "node d_a: tick\nnode d_b: fail_at { at = 99 }\nnode d_c: inc\nnode d_r: record\n\
             d_a -> d_c\nd_c -> d_b\nd_b -> d_r\n",
        )
        .unwrap();
        let diff = GraphDiff::between(&old, &new);
        assert_eq!(diff.added, vec!["d_c"]);
        assert!(diff.removed.is_empty());
        assert_eq!(diff.changed.len(), 1);
        assert_eq!(diff.changed[0].kind_from.as_deref(), Some("inc"));
        assert_eq!(
            diff.rewired,
            vec![
                "+d_a.out -> d_c.x",
                "+d_c.out -> d_b.x",
                "-d_a.out -> d_b.x"
            ]
        );
        assert!(GraphDiff::between(&old, &old).is_empty());
    }

    /// Builds `ACC`-like graphs with parameter sets applied by text
    /// substitution of `by = 1`, counting builds.
    struct Source {
        builds: AtomicU64,
        prefix: &'static str,
    }

    impl GraphSource for Source {
        fn build(&self, sets: &[ParamSet]) -> Result<Built, String> {
            self.builds.fetch_add(1, Ordering::SeqCst);
            let mut text = ACC.replace("w_", self.prefix);
            for s in sets {
                if s.param != "by" {
                    return Err(format!("no parameter `{}`", s.param));
                }
                text = text.replace("by = 1", &format!("by = {}", s.value));
            }
            let graph = build(&text).map_err(|e| e.join("\n"))?;
            Ok(Built {
                graph: Arc::try_unwrap(graph).map_err(|_| "shared".to_string())?,
                files: Vec::new(),
                provenance: None,
                phases: Vec::new(),
            })
        }
    }

    #[test]
    fn a_world_snapshots_every_n_ticks_and_a_snapshot_restores_where_it_was_taken() {
        let source = Arc::new(Source {
            builds: AtomicU64::new(0),
            prefix: "sn_",
        });
        let graph = Arc::new(source.build(&[]).unwrap().graph);
        let config = WorldConfig {
            max_ticks: Some(10),
            snapshot_every: std::num::NonZeroU64::new(3),
            ..WorldConfig::default()
        };
        let mut world = World::new(Arc::clone(&graph), None, Vec::new(), config.clone()).unwrap();
        let mut taken = Vec::new();
        world
            .run(&mut |e| {
                if let WorldEvent::Snapshot { tick, snapshot } = e {
                    taken.push((*tick, snapshot.clone().unwrap()));
                }
            })
            .unwrap();
        // Before ticks 3, 6 and 9: never before the first, never past the last.
        assert_eq!(
            taken.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
            vec![3, 6, 9]
        );
        // A world restored from the tick-6 snapshot snapshots next at 9, not at 6 again.
        let mut again = World::new(graph, None, Vec::new(), config).unwrap();
        again.restore(&taken[1].1).unwrap();
        let mut later = Vec::new();
        again
            .run(&mut |e| {
                if let WorldEvent::Snapshot { tick, .. } = e {
                    later.push(*tick);
                }
            })
            .unwrap();
        assert_eq!(later, vec![9]);
        assert_eq!(again.ticks_done(), 10);
    }

    #[test]
    fn a_world_applies_scripted_events_at_their_tick_and_reports_failures() {
        let source = Arc::new(Source {
            builds: AtomicU64::new(0),
            prefix: "s_",
        });
        let graph = Arc::new(source.build(&[]).unwrap().graph);
        let config = WorldConfig {
            max_ticks: Some(6),
            ..WorldConfig::default()
        };
        let mut world = World::new(graph, Some(source.clone()), Vec::new(), config).unwrap();
        let set = |param: &str, value: &str| ParamSet {
            node: "s_acc".into(),
            param: param.into(),
            value: value.into(),
        };
        world.script([
            (2, ScriptedEvent::Set(set("by", "5"))),
            (4, ScriptedEvent::Set(set("nope", "1"))),
        ]);
        let events = world.subscribe();
        let mut lines = Vec::new();
        let end = world
            .run(&mut |e| match e {
                WorldEvent::Reloaded(info) => lines.push(info.line()),
                WorldEvent::ReloadFailed { message, .. } => lines.push(message.clone()),
                _ => {}
            })
            .unwrap();
        assert_eq!(end, WorldEnd::TickLimit);
        world.finish().unwrap();
        assert_eq!(
            records("s_r"),
            vec![
                (0, 1.0),
                (1, 2.0),
                (2, 7.0),
                (3, 12.0),
                (4, 17.0),
                (5, 22.0)
            ]
        );
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].starts_with("reloaded at tick 2 (set s_acc.by = 5): changed s_acc.by"),
            "{}",
            lines[0]
        );
        assert_eq!(lines[1], "no parameter `nope`");
        let ticks = events
            .try_iter()
            .filter(|e| matches!(e, WorldEvent::Tick { .. }))
            .count();
        assert_eq!(ticks, 6);
    }

    /// Builds `ACC` (prefixed) from a memory file, counting builds, and makes
    /// a single parameter change in place with the engine's `retune_loaded`.
    struct InPlace {
        builds: AtomicU64,
        text: String,
        sources: Mutex<Option<wgraph_grammar::source::SourceMap>>,
    }

    impl InPlace {
        fn new(prefix: &str) -> Self {
            InPlace {
                builds: AtomicU64::new(0),
                text: ACC.replace("w_", prefix),
                sources: Mutex::new(None),
            }
        }
    }

    impl GraphSource for InPlace {
        fn build(&self, sets: &[ParamSet]) -> Result<Built, String> {
            self.builds.fetch_add(1, Ordering::SeqCst);
            let loader = MemLoader::new().with("t.world", self.text.as_str());
            let registry = registry();
            let mut options = LoadOptions::new(&registry);
            options.changes = sets.to_vec();
            let loaded =
                load(Path::new("t.world"), &options, &loader).map_err(|e| e.lines().join("\n"))?;
            *self.sources.lock().unwrap() = Some(loaded.sources);
            Ok(Built {
                graph: loaded.graph,
                files: Vec::new(),
                provenance: None,
                phases: vec![("parse", Duration::ZERO)],
            })
        }

        fn retune(&self, current: &Graph, set: &ParamSet) -> Option<Result<Built, String>> {
            let registry = registry();
            let mut guard = self.sources.lock().unwrap();
            let sources = guard.as_mut()?;
            match wgraph_engine::load::retune_loaded(
                current,
                sources,
                &LoadOptions::new(&registry),
                &set.node,
                &set.param,
                &set.value,
            ) {
                Ok(graph) => Some(Ok(Built {
                    graph,
                    files: Vec::new(),
                    provenance: None,
                    phases: vec![("node rebuilt", Duration::ZERO)],
                })),
                Err(wgraph_engine::build::RetuneError::NeedsRebuild(_)) => None,
                Err(wgraph_engine::build::RetuneError::Graph(d)) => Some(Err(d
                    .iter()
                    .map(|d| d.short(sources))
                    .collect::<Vec<_>>()
                    .join("\n"))),
            }
        }
    }

    /// A live change builds the node it names and nothing else: no build
    /// of the graph, the other nodes the same objects, the same frames as a
    /// rebuild gives; a bad value fails where it is written, and a change to
    /// no node falls back to a rebuild (which reports it).
    #[test]
    fn a_parameter_change_rebuilds_only_the_node_it_names() {
        let source = Arc::new(InPlace::new("ip_"));
        let graph = Arc::new(source.build(&[]).unwrap().graph);
        let recorder = graph.find("ip_r").unwrap();
        let config = WorldConfig {
            max_ticks: Some(6),
            ..WorldConfig::default()
        };
        let mut world =
            World::new(Arc::clone(&graph), Some(source.clone()), Vec::new(), config).unwrap();
        let set = |node: &str, param: &str, value: &str| ParamSet {
            node: node.into(),
            param: param.into(),
            value: value.into(),
        };
        world.script([
            (2, ScriptedEvent::Set(set("ip_acc", "by", "5"))),
            (3, ScriptedEvent::Set(set("ip_acc", "by", "\"five\""))),
            (4, ScriptedEvent::Set(set("ip_acx", "by", "1"))),
        ]);
        let mut reloads = Vec::new();
        let mut failures = Vec::new();
        world
            .run(&mut |e| match e {
                WorldEvent::Reloaded(info) => {
                    reloads.push((info.line(), info.phases.clone()));
                }
                WorldEvent::ReloadFailed { message, .. } => failures.push(message.clone()),
                _ => {}
            })
            .unwrap();
        let now = Arc::clone(world.graph());
        world.finish().unwrap();
        // The same values as the rebuilding source gives (see the test above).
        assert_eq!(
            records("ip_r"),
            vec![
                (0, 1.0),
                (1, 2.0),
                (2, 7.0),
                (3, 12.0),
                (4, 17.0),
                (5, 22.0)
            ]
        );
        assert_eq!(reloads.len(), 1, "{reloads:?}");
        assert!(
            reloads[0]
                .0
                .starts_with("reloaded at tick 2 (set ip_acc.by = 5): changed ip_acc.by"),
            "{}",
            reloads[0].0
        );
        assert_eq!(reloads[0].1[0].0, "node rebuilt");
        // Only the first build: the change and the bad value were made in
        // place; the unknown node went to a rebuild, which failed.
        assert_eq!(source.builds.load(Ordering::SeqCst), 2);
        assert!(Arc::ptr_eq(
            &graph.node(recorder).node,
            &now.node(recorder).node
        ));
        assert_eq!(failures.len(), 2, "{failures:?}");
        assert!(
            failures[0].contains("--set ip_acc.by:1:1") && failures[0].contains("`by`"),
            "{}",
            failures[0]
        );
        assert!(
            failures[1].contains("no node named `ip_acx`"),
            "{}",
            failures[1]
        );
    }

    /// `retune_loaded` on its own: a callee's parameter changes in place (the
    /// caller keeps calling it), a call's target or a node that is not
    /// there needs a rebuild, a value of the wrong type is an error at it.
    #[test]
    fn retune_changes_one_node_and_knows_when_it_cannot() {
        use wgraph_engine::build::RetuneError;
        use wgraph_engine::load::retune_loaded;
        let text = "node rt_t: tick\nnode rt_k: inc\nnode rt_f: add_k\n\
                    node rt_d: double_call { f = @rt_f }\nnode rt_r: record\n\
                    rt_t -> rt_d.x\nrt_t -> rt_k.x\nrt_k -> rt_f.k\nrt_d -> rt_r\n";
        let loader = MemLoader::new().with("t.world", text);
        let registry = registry();
        let options = LoadOptions::new(&registry);
        let loaded = load(Path::new("t.world"), &options, &loader).unwrap();
        let mut sources = loaded.sources;
        let graph = Arc::new(loaded.graph);
        let retuned = retune_loaded(&graph, &mut sources, &options, "rt_k", "by", "3").unwrap();
        let retuned = Arc::new(retuned);
        let k = retuned.find("rt_k").unwrap();
        assert_eq!(retuned.node(k).params.float("by").unwrap(), 3.0);
        let d = retuned.find("rt_d").unwrap();
        assert_eq!(retuned.node(d).callees, graph.node(d).callees);
        assert!(Arc::ptr_eq(&retuned.node(d).node, &graph.node(d).node));
        // f(f(t)) with f = x + (t + 3): the same as a graph built with by = 3.
        let fresh = build(&text.replace("node rt_k: inc", "node rt_k: inc { by = 3 }")).unwrap();
        let expected = run(&fresh, modes(3)[0].clone());
        assert_eq!(run(&retuned, modes(3)[0].clone()), expected);
        assert!(matches!(
            retune_loaded(&graph, &mut sources, &options, "rt_d", "f", "@rt_k"),
            Err(RetuneError::NeedsRebuild(_))
        ));
        assert!(matches!(
            retune_loaded(&graph, &mut sources, &options, "rt_x", "by", "1"),
            Err(RetuneError::NeedsRebuild(_))
        ));
        match retune_loaded(&graph, &mut sources, &options, "rt_k", "by", "[1, 2]") {
            Err(RetuneError::Graph(d)) => {
                let lines: Vec<String> = d.iter().map(|d| d.short(&sources)).collect();
                assert_eq!(lines.len(), 1, "{lines:?}");
                assert!(lines[0].starts_with("--set rt_k.by:1:1"), "{lines:?}");
            }
            other => panic!("{:?}", other.err()),
        }
    }

    /// A change that fails to build is dropped and the value it would have
    /// replaced — the one the world runs — is kept: a later rebuild does not
    /// fall back to the graph's own value.
    #[test]
    fn a_failed_change_keeps_the_value_the_world_runs() {
        let source = Arc::new(Source {
            builds: AtomicU64::new(0),
            prefix: "fk_",
        });
        let graph = Arc::new(source.build(&[]).unwrap().graph);
        let config = WorldConfig {
            max_ticks: Some(6),
            ..WorldConfig::default()
        };
        let mut world = World::new(graph, Some(source.clone()), Vec::new(), config).unwrap();
        let set = |value: &str| ParamSet {
            node: "fk_acc".into(),
            param: "by".into(),
            value: value.into(),
        };
        world.script([
            (2, ScriptedEvent::Set(set("5"))),
            (3, ScriptedEvent::Set(set("\"five\""))),
            (4, ScriptedEvent::Rebuild),
        ]);
        let mut failures = 0;
        world
            .run(&mut |e| failures += usize::from(matches!(e, WorldEvent::ReloadFailed { .. })))
            .unwrap();
        world.finish().unwrap();
        assert_eq!(failures, 1);
        assert_eq!(
            records("fk_r"),
            vec![
                (0, 1.0),
                (1, 2.0),
                (2, 7.0),
                (3, 12.0),
                (4, 17.0),
                (5, 22.0)
            ]
        );
    }

    /// A shown node: `record` whose input is the frame front ends see.
    struct Shown(Fn);

    impl Node for Shown {
        fn inputs(&self) -> Vec<PortSpec> {
            self.0.inputs()
        }
        fn outputs(&self) -> Vec<PortSpec> {
            self.0.outputs()
        }
        fn infer(
            &self,
            inputs: &[Option<ValueType>],
            calls: &mut dyn InferCalls,
        ) -> Result<Vec<ValueType>, TypeError> {
            self.0.infer(inputs, calls)
        }
        fn eval(
            &self,
            s: &mut State,
            inputs: &[Option<Value>],
            cx: &mut TickContext<'_>,
        ) -> Result<Vec<Value>, NodeError> {
            self.0.eval(s, inputs, cx)
        }
        fn displays(&self) -> Option<DisplaySpec> {
            Some(DisplaySpec {
                input: 0,
                range: PixelRange::Unit,
            })
        }
    }

    #[test]
    fn a_handle_changes_parameters_while_it_runs_inline_and_pooled() {
        for workers in [0, 2] {
            let prefix = if workers == 0 { "p_" } else { "q_" };
            let source = Arc::new(Source {
                builds: AtomicU64::new(0),
                prefix,
            });
            let graph = Arc::new(source.build(&[]).unwrap().graph);
            let config = WorldConfig {
                workers,
                ..WorldConfig::default()
            };
            let mut world = World::new(graph, Some(source.clone()), Vec::new(), config).unwrap();
            let handle = world.handle();
            let mut reloaded_at = None;
            let end = world
                .run(&mut |e| match e {
                    WorldEvent::Tick { tick: 3, .. } => {
                        assert!(handle.set_param(ParamSet {
                            node: format!("{prefix}acc"),
                            param: "by".into(),
                            value: "100".into(),
                        }));
                    }
                    WorldEvent::Tick { tick, .. }
                        if reloaded_at.is_some_and(|at| *tick == at + 5) =>
                    {
                        handle.stop();
                    }
                    WorldEvent::Reloaded(info) => reloaded_at = Some(info.tick),
                    _ => {}
                })
                .unwrap();
            assert_eq!(end, WorldEnd::Stopped);
            world.finish().unwrap();
            // Applied at a tick boundary once rebuilt off the tick thread;
            // every tick before it added 1, every tick after it 100.
            let at = reloaded_at.expect("the change was applied");
            assert!(at > 3, "{at}");
            let values = records(&format!("{prefix}r"));
            assert!(values.len() as u64 >= at + 6, "{}", values.len());
            for (t, v) in values {
                let want = if t < at {
                    (t + 1) as f32
                } else {
                    at as f32 + 100.0 * (t + 1 - at) as f32
                };
                assert_eq!(v, want, "tick {t} (change at {at}, workers {workers})");
            }
        }
    }

    #[test]
    fn frames_of_displaying_nodes_reach_subscribers() {
        struct ShowKind;
        impl NodeKind for ShowKind {
            fn name(&self) -> &'static str {
                "shown"
            }
            fn summary(&self) -> &'static str {
                "test kind"
            }
            fn params(&self) -> &'static [ParamSpec] {
                &[]
            }
            fn build(&self, _: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
                let mut n = simple(&["image"], Arc::new(|_, _| Ok(vec![])));
                n.outputs = 0;
                Ok(Box::new(Shown(n)))
            }
        }
        let mut reg = registry();
        reg.register(ShowKind).unwrap();
        let loader =
            MemLoader::new().with("s.world", "node f_t: tick\nnode f_s: shown\nf_t -> f_s\n");
        let loaded = load(Path::new("s.world"), &LoadOptions::new(&reg), &loader).unwrap();
        let graph = Arc::new(loaded.graph);
        let config = WorldConfig {
            max_ticks: Some(5),
            ..WorldConfig::default()
        };
        let mut world = World::new(graph, None, Vec::new(), config).unwrap();
        let (a, b) = (world.subscribe(), world.subscribe());
        // A key change before tick 0: the first frame carries its time, later ones none.
        let before = Instant::now();
        world
            .handle()
            .set_keys(Some(wgraph_engine::value::Actions::none()));
        world.run(&mut |_| {}).unwrap();
        for rx in [a, b] {
            let frames: Vec<(u64, f32, bool)> = rx
                .try_iter()
                .filter_map(|e| match e {
                    WorldEvent::Frame {
                        tick,
                        image,
                        input_at,
                        ..
                    } => Some((
                        tick,
                        image.host_f32().unwrap()[0],
                        input_at.is_some_and(|t| t >= before),
                    )),
                    _ => None,
                })
                .collect();
            let want: Vec<(u64, f32, bool)> = (0..5).map(|t| (t, t as f32, t == 0)).collect();
            assert_eq!(frames, want);
        }
    }

    /// Builds `node z_s: sleep { at = MS }` with `z_s.at` sets applied.
    struct Sleepy;

    impl GraphSource for Sleepy {
        fn build(&self, sets: &[ParamSet]) -> Result<Built, String> {
            let ms = sets
                .iter()
                .rfind(|s| s.param == "at")
                .map_or("30", |s| s.value.as_str());
            let graph =
                build(&format!("node z_s: sleep {{ at = {ms} }}\n")).map_err(|e| e.join("\n"))?;
            Ok(Built {
                graph: Arc::try_unwrap(graph).map_err(|_| "shared".to_string())?,
                files: Vec::new(),
                provenance: None,
                phases: Vec::new(),
            })
        }
    }

    /// A world behind its clock applies its degrade setting, and undoes it
    /// once it has caught up.
    #[test]
    fn degrade_applies_cheaper_settings_while_behind_and_undoes_them() {
        use wgraph_engine::settings::LatePolicy;
        let source = Arc::new(Sleepy);
        let graph = Arc::new(source.build(&[]).unwrap().graph);
        let config = WorldConfig {
            fps: Some(50.0),
            on_late: LatePolicy::Degrade,
            degrade: vec![ParamSet {
                node: "z_s".into(),
                param: "at".into(),
                value: "0".into(),
            }],
            ..WorldConfig::default()
        };
        let mut world = World::new(graph, Some(source), Vec::new(), config).unwrap();
        let handle = world.handle();
        let mut changes = Vec::new();
        let start = Instant::now();
        world
            .run(&mut |e| {
                if let WorldEvent::Degraded { level, change, .. } = e {
                    changes.push((*level, change.clone()));
                    if *level == 0 {
                        handle.stop();
                    }
                }
                if start.elapsed() > Duration::from_secs(30) {
                    handle.stop();
                }
            })
            .unwrap();
        assert_eq!(
            changes,
            vec![
                (1, "z_s.at = 0".to_string()),
                (0, "undo z_s.at = 0".to_string())
            ]
        );
        assert!(world.late_ticks() >= 1);
    }

    /// A stop ends the wait for the next tick at once, however slow the
    /// clock — 0.01 fps, or a rate no `Duration` holds — inline and with workers.
    #[test]
    fn a_stop_ends_the_wait_between_ticks() {
        for (fps, workers) in [(0.01, 0), (0.01, 2), (1e-300, 0)] {
            let source = Source {
                builds: AtomicU64::new(0),
                prefix: "p_",
            };
            let graph = Arc::new(source.build(&[]).unwrap().graph);
            let config = WorldConfig {
                fps: Some(fps),
                workers,
                ..WorldConfig::default()
            };
            let mut world = World::new(graph, None, Vec::new(), config).unwrap();
            let handle = world.handle();
            let stopper = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                handle.stop();
            });
            let started = Instant::now();
            let end = world.run(&mut |_| {}).unwrap();
            stopper.join().unwrap();
            assert_eq!(end, WorldEnd::Stopped);
            // Tick 0 at once, tick 1 due 100 s later (or never): stopped first.
            assert_eq!(world.ticks_done(), 1, "{fps} fps, {workers} workers");
            assert!(started.elapsed() < Duration::from_secs(10));
            world.finish().unwrap();
            records("p_r");
        }
    }

    /// A snapshot names the parameter values it was taken with: other
    /// values are refused, naming each, unless allowed; a tick past 2^53
    /// (a forged file) is refused, never run as a counter near `u64::MAX`.
    #[test]
    fn a_snapshot_checks_parameter_values_and_its_tick() {
        use wgraph_engine::snapshot::{MAX_TICK, RestoreOptions, param_changes};
        let text = ACC.replace("w_", "k_");
        let mut runner = Runner::new(build(&text).unwrap()).unwrap();
        runner.run(&modes(3)[0], &mut |_| {}).unwrap();
        let snapshot = runner.snapshot().unwrap();
        records("k_r");
        let other = build(&text.replace("by = 1", "by = 2")).unwrap();
        assert_eq!(
            param_changes(&snapshot, &other).unwrap(),
            vec!["k_acc.by 1.0 → 2.0".to_string()]
        );
        let err = Runner::new(Arc::clone(&other))
            .unwrap()
            .restore(&snapshot)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("the snapshot was taken with other parameter values: k_acc.by 1.0 → 2.0"),
            "{err}"
        );
        let allow = RestoreOptions {
            allow_param_changes: true,
        };
        let mut changed = Runner::new(other).unwrap();
        changed.restore_with(&snapshot, allow).unwrap();
        assert_eq!(changed.ticks_done(), 3);
        // The same values load as before.
        let mut same = Runner::new(build(&text).unwrap()).unwrap();
        same.restore(&snapshot).unwrap();
        for (tick, why) in [
            (serde_json::json!(u64::MAX), "is out of range"),
            (serde_json::json!(MAX_TICK + 1), "is out of range"),
            (serde_json::json!(-1), "is not a tick"),
            (serde_json::json!(1.5), "is not a tick"),
        ] {
            let mut forged = snapshot.clone();
            forged["tick"] = tick;
            let err = Runner::new(build(&text).unwrap())
                .unwrap()
                .restore(&forged)
                .unwrap_err();
            assert!(err.to_string().contains(why), "{err}");
        }
    }

    /// ACC under `world { fps = F }`, F set by a parameter change of `fps`.
    struct PacedSource;

    impl GraphSource for PacedSource {
        fn build(&self, sets: &[ParamSet]) -> Result<Built, String> {
            let fps = sets
                .iter()
                .rev()
                .find(|s| s.param == "fps")
                .map_or("1000", |s| s.value.as_str());
            let text = format!("world {{ fps = {fps} }}\n{}", ACC.replace("w_", "f_"));
            let graph = build(&text).map_err(|e| e.join("\n"))?;
            Ok(Built {
                graph: Arc::try_unwrap(graph).map_err(|_| "shared".to_string())?,
                files: Vec::new(),
                provenance: None,
                phases: Vec::new(),
            })
        }
    }

    /// A reload that changes `world { fps }` re-paces a world that follows
    /// its graph's rate (and the reload line names the change); one whose
    /// owner fixed the rate keeps it.
    #[test]
    fn a_reload_changes_the_clock_of_a_world_that_follows_its_graph() {
        for follow in [true, false] {
            let graph = Arc::new(PacedSource.build(&[]).unwrap().graph);
            let config = WorldConfig {
                fps: Some(1000.0),
                follow_graph_fps: follow,
                max_ticks: Some(4),
                ..WorldConfig::default()
            };
            let mut world =
                World::new(graph, Some(Arc::new(PacedSource)), Vec::new(), config).unwrap();
            let set = ParamSet {
                node: "world".into(),
                param: "fps".into(),
                value: "0.01".into(),
            };
            world.script([(1, ScriptedEvent::Set(set))]);
            let handle = world.handle();
            let stopper = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(500));
                handle.stop();
            });
            let mut lines = Vec::new();
            let end = world
                .run(&mut |e| {
                    if let WorldEvent::Reloaded(info) = e {
                        lines.push(info.line());
                    }
                })
                .unwrap();
            stopper.join().unwrap();
            assert!(
                lines[0].contains("world settings changed: fps 1000 → 0.01"),
                "{lines:?}"
            );
            if follow {
                // Tick 1 starts at the swap; tick 2 would be 100 s later.
                assert_eq!(end, WorldEnd::Stopped);
                assert_eq!(world.ticks_done(), 2);
            } else {
                assert_eq!(end, WorldEnd::TickLimit);
                assert_eq!(world.ticks_done(), 4);
            }
            world.finish().unwrap();
            records("f_r");
        }
    }

    #[test]
    fn a_stop_from_a_handle_ends_the_world_and_a_slow_subscriber_never_blocks_it() {
        let source = Arc::new(Source {
            builds: AtomicU64::new(0),
            prefix: "h_",
        });
        let graph = Arc::new(source.build(&[]).unwrap().graph);
        let config = WorldConfig {
            subscriber_capacity: 2,
            ..WorldConfig::default()
        };
        let mut world = World::new(graph, None, Vec::new(), config).unwrap();
        let _never_read = world.subscribe();
        let handle = world.handle();
        let end = world
            .run(&mut |e| {
                if let WorldEvent::Tick { tick: 99, .. } = e {
                    handle.stop();
                }
            })
            .unwrap();
        assert_eq!(end, WorldEnd::Stopped);
        assert_eq!(world.ticks_done(), 100);
        assert_eq!(world.dropped_events(), 98);
        world.finish().unwrap();
        assert_eq!(records("h_r").len(), 100);
    }
}

/// Device tensors pass between nodes that accept them without a copy; a
/// node that reads elements gets a host copy from the scheduler, and every
/// copy is counted per tick — in each scheduling mode.
#[test]
fn device_tensors_are_copied_to_the_host_only_for_nodes_that_read_them() {
    let g = build(
        "node dv_t: tick\nnode dv_up: upload\nnode dv_a: on_device\nnode dv_b: on_device\nnode dv_r: record\n\
         dv_t -> dv_up\ndv_up -> dv_a\ndv_a -> dv_b\ndv_b -> dv_r\n",
    )
    .unwrap();
    for config in modes(5) {
        let mut runner = Runner::new(Arc::clone(&g)).unwrap();
        runner.run(&config, &mut |_| {}).unwrap();
        let copies = runner.metrics().copies;
        let mut sink = SINK.lock().unwrap();
        let got: Vec<f32> = sink
            .iter()
            .filter(|(n, ..)| n == "dv_r")
            .map(|x| x.2)
            .collect();
        sink.retain(|(n, ..)| n != "dv_r");
        drop(sink);
        let mut sorted = got.clone();
        sorted.sort_by(f32::total_cmp);
        assert_eq!(sorted, vec![0.0, 1.0, 2.0, 3.0, 4.0], "{config:?}");
        // One copy per tick: `r` reads; `a` and `b` pass the device tensor on.
        assert_eq!(copies.ticks, 5, "{config:?}");
        assert_eq!(copies.total.device_to_host, 5, "{config:?}");
        assert_eq!(copies.total.device_to_host_bytes, 20, "{config:?}");
        assert_eq!(copies.total.host_to_device, 0, "{config:?}");
        assert_eq!(copies.max_per_tick, 1, "{config:?}");
        let report = runner.metrics().report(&g);
        assert_eq!(report.host_device_copies.per_tick_max, 1);
        assert!(
            report
                .table()
                .contains("host<->device copies per tick: mean 1.0, max 1")
        );
    }
}
