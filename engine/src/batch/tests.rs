//! The batcher's unit tests: fusing, splitting back, failures, the lone caller.

use super::*;
use crate::model::ModelPort;
use crate::tensor::DType;
use crate::types::TensorType;
use std::sync::atomic::AtomicUsize;
use std::sync::{Barrier, Mutex};

/// y = 2x + row index within the call (so a wrong split shows), counting calls.
struct Doubler {
    signature: ModelSignature,
    calls: AtomicUsize,
    largest: AtomicUsize,
    fail_batches: bool,
    /// When set, the first call waits for a message here.
    gate: Mutex<Option<Receiver<()>>>,
    /// The names of the threads the model ran in, in order.
    threads: Mutex<Vec<Option<String>>>,
}

fn port(name: &str, first: Dim) -> ModelPort {
    ModelPort {
        name: name.into(),
        ty: TensorType {
            dtype: DType::F32,
            shape: vec![first, Dim::Known(3)],
        },
    }
}

fn doubler(first: Dim, fail_batches: bool) -> Arc<Doubler> {
    Arc::new(Doubler {
        signature: ModelSignature {
            inputs: vec![port("x", first.clone())],
            outputs: vec![port("y", first)],
            metadata: Default::default(),
        },
        calls: AtomicUsize::new(0),
        largest: AtomicUsize::new(0),
        fail_batches,
        gate: Mutex::new(None),
        threads: Mutex::new(Vec::new()),
    })
}

impl Model for Doubler {
    fn signature(&self) -> &ModelSignature {
        &self.signature
    }
    fn provider(&self) -> Provider {
        Provider::Cpu
    }
    fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
        let x = inputs[0]
            .host_f32()
            .map_err(|e| ModelError::Run(e.to_string()))?;
        let rows = inputs[0].shape()[0];
        let gate = self.gate.lock().unwrap().take();
        if let Some(gate) = gate {
            gate.recv().unwrap();
        }
        self.calls.fetch_add(1, Ordering::SeqCst);
        let thread = std::thread::current().name().map(str::to_owned);
        self.threads.lock().unwrap().push(thread);
        self.largest.fetch_max(rows, Ordering::SeqCst);
        if self.fail_batches && rows > 1 {
            return Err(ModelError::Run("no batches here".into()));
        }
        if x.iter().any(|v| v.is_nan()) {
            return Err(ModelError::Run("NaN input".into()));
        }
        let y = x.iter().map(|v| v * 2.0).collect();
        Ok(vec![
            Tensor::from_f32(inputs[0].shape(), y).map_err(|e| ModelError::Run(e.to_string()))?,
        ])
    }
}

fn input(value: f32) -> Tensor {
    Tensor::from_f32(&[1, 3], vec![value, value + 1.0, value + 2.0]).unwrap()
}

/// `threads` callers at once, each `rounds` calls; every answer checked.
fn hammer(model: &Arc<dyn Model>, threads: usize, rounds: usize) {
    let barrier = Arc::new(Barrier::new(threads));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (model, barrier) = (Arc::clone(model), Arc::clone(&barrier));
            std::thread::spawn(move || {
                for r in 0..rounds {
                    barrier.wait();
                    let v = (t * 1000 + r) as f32;
                    let out = model.run(&[input(v)]).unwrap();
                    assert_eq!(out[0].shape(), &[1, 3]);
                    assert_eq!(
                        out[0].host_f32().unwrap(),
                        &[2.0 * v, 2.0 * (v + 1.0), 2.0 * (v + 2.0)]
                    );
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}

#[test]
fn calls_queued_while_the_model_runs_are_fused_and_split_back_row_for_row() {
    let inner = doubler(Dim::Sym("batch".into()), false);
    let (open, gate) = crossbeam_channel::bounded(1);
    *inner.gate.lock().unwrap() = Some(gate);
    // The held first call must be the executor's, not run inline.
    let policy = BatchPolicy {
        max_rows: 8,
        wait: Duration::ZERO,
        inline_lone_caller: false,
        ..BatchPolicy::default()
    };
    let model = Arc::new(BatchedModel::new(inner.clone(), policy.clone()));
    let call = |v: f32| {
        let model = Arc::clone(&model);
        std::thread::spawn(move || model.run(&[input(v)]).unwrap())
    };
    // The first call holds the model; three more queue behind it.
    let first = call(0.0);
    while inner.gate.lock().unwrap().is_some() {
        std::thread::yield_now();
    }
    let rest: Vec<_> = [10.0, 20.0, 30.0]
        .into_iter()
        .map(|v| (v, call(v)))
        .collect();
    while model.queued() < 3 {
        std::thread::yield_now();
    }
    open.send(()).unwrap();
    assert_eq!(
        first.join().unwrap()[0].host_f32().unwrap(),
        &[0.0, 2.0, 4.0]
    );
    for (v, t) in rest {
        let out = t.join().unwrap();
        assert_eq!(out[0].shape(), &[1, 3]);
        assert_eq!(
            out[0].host_f32().unwrap(),
            &[2.0 * v, 2.0 * v + 2.0, 2.0 * v + 4.0]
        );
    }
    // Two model calls: the first alone, then the three queued as one.
    assert_eq!(inner.calls.load(Ordering::SeqCst), 2);
    assert_eq!(inner.largest.load(Ordering::SeqCst), 3);
    let summary = policy.stats.summary();
    assert_eq!((summary.calls, summary.batches), (4, 2));
    assert_eq!(summary.sizes, vec![1, 0, 1]);
    assert_eq!(summary.mean_batch(), 2.0);
}

#[test]
fn many_callers_get_their_own_rows_back() {
    let inner = doubler(Dim::Sym("batch".into()), false);
    let policy = BatchPolicy {
        max_rows: 3,
        wait: Duration::from_millis(5),
        ..BatchPolicy::default()
    };
    let model = batched(inner.clone(), &policy);
    hammer(&model, 4, 20);
    assert_eq!(policy.stats.summary().calls, 80);
    assert!(inner.largest.load(Ordering::SeqCst) <= 3);
}

/// The executor waits for as many calls as threads called lately:
/// distinct threads, within [`ACTIVE`], from a fixed-size record.
#[test]
fn active_callers_are_the_distinct_threads_of_the_last_second() {
    let mut callers = Callers::new();
    let t0 = Instant::now();
    let me = std::thread::current().id();
    let other = std::thread::spawn(|| std::thread::current().id())
        .join()
        .unwrap();
    assert_eq!(callers.active(t0), 0);
    for _ in 0..3 {
        callers.record(me, t0);
    }
    callers.record(other, t0 + Duration::from_millis(10));
    assert_eq!(callers.active(t0 + Duration::from_millis(20)), 2);
    // `me` last called more than ACTIVE ago.
    let later = t0 + ACTIVE + Duration::from_millis(5);
    assert_eq!(callers.active(later), 1);
    // The record is bounded: old calls are overwritten.
    for _ in 0..CALLERS {
        callers.record(me, later);
    }
    assert_eq!(callers.active(later), 1);
}

#[test]
fn a_lone_caller_runs_unfused() {
    let inner = doubler(Dim::Sym("batch".into()), false);
    let policy = BatchPolicy::default();
    let model = batched(inner.clone(), &policy);
    hammer(&model, 1, 10);
    assert_eq!(inner.largest.load(Ordering::SeqCst), 1);
    assert_eq!(policy.stats.summary().mean_batch(), 1.0);
    assert_eq!(policy.stats.summary().calls, 10);
}

/// A lone caller's calls run in its own thread (no hand-off); once a
/// second thread calls, calls go through the executor, and with the
/// option off every call does.
#[test]
fn a_lone_caller_runs_in_its_own_thread_until_a_second_one_calls() {
    let inner = doubler(Dim::Sym("batch".into()), false);
    let policy = BatchPolicy::default();
    let model = batched(inner.clone(), &policy);
    let ran_in = |inner: &Doubler| inner.threads.lock().unwrap().clone();
    // One player thread: three calls, then (once the test has closed the
    // model's gate) a fourth, held inside the model.
    let (ready, is_ready) = crossbeam_channel::bounded(1);
    let (go, goes) = crossbeam_channel::bounded(1);
    let m = Arc::clone(&model);
    let lone = std::thread::Builder::new()
        .name("lone player".into())
        .spawn(move || {
            for v in 0..3 {
                m.run(&[input(v as f32)]).unwrap();
            }
            ready.send(()).unwrap();
            goes.recv().unwrap();
            m.run(&[input(3.0)]).unwrap();
        })
        .unwrap();
    is_ready.recv().unwrap();
    assert_eq!(ran_in(&inner), vec![Some("lone player".to_owned()); 3]);
    let (open, gate) = crossbeam_channel::bounded(1);
    *inner.gate.lock().unwrap() = Some(gate);
    go.send(()).unwrap();
    while inner.gate.lock().unwrap().is_some() {
        std::thread::yield_now();
    }
    // The lone call is inside the model: another thread's call is not
    // alone in flight, so the executor runs it.
    let m = Arc::clone(&model);
    std::thread::spawn(move || m.run(&[input(7.0)]).unwrap())
        .join()
        .unwrap();
    open.send(()).unwrap();
    lone.join().unwrap();
    let threads = ran_in(&inner);
    assert_eq!(threads[3].as_deref(), Some("wgraph-batch"));
    assert_eq!(threads[4].as_deref(), Some("lone player"));
    let summary = policy.stats.summary();
    assert_eq!((summary.calls, summary.batches), (5, 5));

    let inner = doubler(Dim::Sym("batch".into()), false);
    let through = BatchPolicy {
        inline_lone_caller: false,
        ..BatchPolicy::default()
    };
    hammer(&batched(inner.clone(), &through), 1, 3);
    assert_eq!(ran_in(&inner), vec![Some("wgraph-batch".to_owned()); 3]);
}

#[test]
fn a_model_fixed_to_batch_one_is_not_wrapped() {
    let fixed = doubler(Dim::Known(1), false);
    let wrapped = batched(fixed.clone(), &BatchPolicy::default());
    assert!(std::ptr::addr_eq(
        Arc::as_ptr(&wrapped),
        Arc::as_ptr(&fixed)
    ));
    // Two names for the first axis are two batches: not stackable.
    let mut two = doubler(Dim::Sym("a".into()), false);
    Arc::get_mut(&mut two).unwrap().signature.outputs[0]
        .ty
        .shape[0] = Dim::Sym("b".into());
    assert!(!is_batchable(&two.signature));
    assert!(is_batchable(
        &doubler(Dim::unnamed("input x", 0), false).signature
    ));
}

/// `inner` behind a batcher whose first call waits until `values`'
/// calls have queued behind it: the answers, in `values`' order.
fn fused_behind_a_held_call(
    inner: &Arc<Doubler>,
    values: &[f32],
    policy: &BatchPolicy,
) -> Vec<Result<Vec<Tensor>, ModelError>> {
    let (open, gate) = crossbeam_channel::bounded(1);
    *inner.gate.lock().unwrap() = Some(gate);
    let model = Arc::new(BatchedModel::new(inner.clone(), policy.clone()));
    let call = |x: Tensor| {
        let model = Arc::clone(&model);
        std::thread::spawn(move || model.run(&[x]))
    };
    let first = call(input(0.0));
    while inner.gate.lock().unwrap().is_some() {
        std::thread::yield_now();
    }
    let rest: Vec<_> = values
        .iter()
        .map(|&v| {
            call(if v.is_nan() {
                Tensor::from_f32(&[1, 3], vec![v; 3]).unwrap()
            } else {
                input(v)
            })
        })
        .collect();
    while model.queued() < values.len() {
        std::thread::yield_now();
    }
    open.send(()).unwrap();
    assert!(first.join().unwrap().is_ok());
    rest.into_iter().map(|t| t.join().unwrap()).collect()
}

#[test]
fn a_failing_fused_call_is_retried_alone_and_errors_stay_with_their_caller() {
    let policy = BatchPolicy {
        max_rows: 8,
        wait: Duration::ZERO,
        inline_lone_caller: false,
        ..BatchPolicy::default()
    };
    // A model that refuses batches: each call is run again alone, and answered.
    let refuses = doubler(Dim::Sym("batch".into()), true);
    let answers = fused_behind_a_held_call(&refuses, &[1.0, 2.0], &policy);
    assert_eq!(
        answers[0].as_ref().unwrap()[0].host_f32().unwrap(),
        &[2.0, 4.0, 6.0]
    );
    assert_eq!(
        answers[1].as_ref().unwrap()[0].host_f32().unwrap(),
        &[4.0, 6.0, 8.0]
    );
    assert_eq!(policy.stats.summary().split_retries, 1);
    // A bad input among good ones fails its own call only.
    let answers = fused_behind_a_held_call(
        &doubler(Dim::Sym("batch".into()), false),
        &[1.0, f32::NAN, 3.0],
        &policy,
    );
    assert!(answers[0].is_ok() && answers[2].is_ok());
    assert!(answers[1].is_err());
}

#[test]
fn calls_of_other_shapes_are_not_stacked() {
    let inner = doubler(Dim::Sym("batch".into()), false);
    let policy = BatchPolicy {
        max_rows: 8,
        wait: Duration::from_millis(20),
        ..BatchPolicy::default()
    };
    let model = batched(inner, &policy);
    let (m1, m2) = (Arc::clone(&model), Arc::clone(&model));
    let a = std::thread::spawn(move || m1.run(&[input(1.0)]).unwrap());
    let b = std::thread::spawn(move || {
        m2.run(&[Tensor::from_f32(&[2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap()])
            .unwrap()
    });
    assert_eq!(a.join().unwrap()[0].shape(), &[1, 3]);
    assert_eq!(
        b.join().unwrap()[0].host_f32().unwrap(),
        &[2.0, 4.0, 6.0, 8.0]
    );
}
