//! Tests of `block_denoiser`: small fake embed, block and head models
//! (h = x + cond, h ← a·h + c, velocity = h + 0.5·x) checked against a
//! reference that runs the blocks in turn, with and without the cache.

use super::*;
use crate::models::io::fake::{FakeModel, build_with, fake};
use wgraph_engine::node::{NoCallees, NoInferCalls};
use wgraph_engine::params::ParamValue;
use wgraph_engine::settings::Settings;

const SCALES: [f32; 3] = [1.1, 0.9, 1.3];

fn f32s(t: &Tensor) -> Vec<f32> {
    t.host_f32().unwrap().to_vec()
}

/// embed: h = x + cond, c = t/1000 (one per row).
fn embed() -> Arc<FakeModel> {
    embed_with("batch")
}

/// [`embed`] with batch dimension `b` (`"batch"`: free, `"1"`: fixed).
fn embed_with(b: &str) -> Arc<FakeModel> {
    fake(
        &[
            &format!("x:f32:{b},4"),
            &format!("t:f32:{b}"),
            &format!("cond:f32:{b},4"),
        ],
        &[&format!("h:f32:{b},4"), &format!("c:f32:{b},1")],
        &[("wgraph.role", "denoiser_embed")],
        |ins| {
            let (x, t, cond) = (f32s(&ins[0]), f32s(&ins[1]), f32s(&ins[2]));
            let n = ins[0].shape()[0];
            let h = x.iter().zip(&cond).map(|(a, b)| a + b).collect();
            let c = t.iter().map(|t| t / 1000.0).collect();
            vec![
                Tensor::from_f32(&[n, 4], h).unwrap(),
                Tensor::from_f32(&[n, 1], c).unwrap(),
            ]
        },
    )
}

/// block: h ← a·h + c.
fn block(a: f32) -> Arc<FakeModel> {
    block_with(a, "batch")
}

/// [`block`] with batch dimension `b`.
fn block_with(a: f32, b: &str) -> Arc<FakeModel> {
    fake(
        &[&format!("h:f32:{b},4"), &format!("c:f32:{b},1")],
        &[&format!("h_out:f32:{b},4")],
        &[("wgraph.role", "denoiser_block")],
        move |ins| {
            let (h, c) = (f32s(&ins[0]), f32s(&ins[1]));
            let out = h
                .iter()
                .enumerate()
                .map(|(i, v)| a * v + c[i / 4])
                .collect();
            vec![Tensor::from_f32(ins[0].shape(), out).unwrap()]
        },
    )
}

/// head: velocity = h + 0.5·x (x: the denoiser's own input).
fn head() -> Arc<FakeModel> {
    head_with("batch")
}

/// [`head`] with batch dimension `b`.
fn head_with(b: &str) -> Arc<FakeModel> {
    fake(
        &[&format!("h:f32:{b},4"), &format!("x:f32:{b},4")],
        &[&format!("velocity:f32:{b},4")],
        &[
            ("wgraph.role", "denoiser_head"),
            ("wgraph.prediction", "velocity"),
            ("wgraph.schedule", "rectified_flow"),
        ],
        |ins| {
            let (h, x) = (f32s(&ins[0]), f32s(&ins[1]));
            let out = h.iter().zip(&x).map(|(a, b)| a + 0.5 * b).collect();
            vec![Tensor::from_f32(ins[0].shape(), out).unwrap()]
        },
    )
}

struct Models {
    blocks: Vec<Arc<FakeModel>>,
}

fn build(extra: Vec<(&'static str, ParamValue)>) -> (Result<Box<dyn Node>, BuildError>, Models) {
    build_batch("batch", extra)
}

/// [`build`] with parts of batch dimension `b`.
fn build_batch(
    b: &str,
    extra: Vec<(&'static str, ParamValue)>,
) -> (Result<Box<dyn Node>, BuildError>, Models) {
    let blocks: Vec<Arc<FakeModel>> = SCALES.iter().map(|&a| block_with(a, b)).collect();
    let mut models: Vec<(&str, Arc<dyn Model>)> =
        vec![("e", embed_with(b) as Arc<dyn Model>), ("hd", head_with(b))];
    let names = ["b0", "b1", "b2"];
    for (n, b) in names.iter().zip(&blocks) {
        models.push((n, Arc::clone(b) as Arc<dyn Model>));
    }
    let mut params = vec![
        ("embed", ParamValue::ModelRef("e".into())),
        (
            "blocks",
            ParamValue::ModelRefList(names.iter().map(|s| s.to_string()).collect()),
        ),
        ("head", ParamValue::ModelRef("hd".into())),
    ];
    params.extend(extra);
    (
        build_with(&BlockDenoiser, params, models),
        Models { blocks },
    )
}

fn call(node: &dyn Node, state: &mut State, tick: u64, x: &[f32], t: f32) -> Vec<f32> {
    let settings = Settings::default();
    let mut none = NoCallees;
    let mut cx = TickContext::new(tick, &settings, &mut none);
    let rows = x.len() / 4;
    let ins = [
        Some(Tensor::from_f32(&[rows, 4], x.to_vec()).unwrap().into()),
        Some(Tensor::full_f32(&[rows], t).unwrap().into()),
        Some(Tensor::full_f32(&[rows, 4], 0.25).unwrap().into()),
    ];
    let out = node.eval(state, &ins, &mut cx).unwrap();
    out[0].as_tensor().unwrap().host_f32().unwrap().to_vec()
}

/// The reference: the blocks in turn, `cached[i]` = Some(residual) to
/// reuse; returns (output, the residuals each block would store).
fn reference(x: &[f32], t: f32, reuse: &[Option<Vec<f32>>]) -> (Vec<f32>, Vec<Vec<f32>>) {
    reference_cond(x, 0.25, t, reuse)
}

/// [`reference`] with the condition `cond` everywhere (0: the null
/// condition of an unconditional pass).
fn reference_cond(
    x: &[f32],
    cond: f32,
    t: f32,
    reuse: &[Option<Vec<f32>>],
) -> (Vec<f32>, Vec<Vec<f32>>) {
    let c = t / 1000.0;
    let mut h: Vec<f32> = x.iter().map(|v| v + cond).collect();
    let mut residuals = Vec::new();
    for (a, r) in SCALES.iter().zip(reuse) {
        let out: Vec<f32> = match r {
            Some(r) => h.iter().zip(r).map(|(v, r)| v + r).collect(),
            None => h.iter().map(|v| a * v + c).collect(),
        };
        residuals.push(
            out.iter()
                .zip(&h)
                .map(|(o, v)| bf16::from_f32(o - v).to_f32())
                .collect(),
        );
        h = out;
    }
    let y = h.iter().zip(x).map(|(v, x)| v + 0.5 * x).collect();
    (y, residuals)
}

#[test]
fn ports_prediction_and_types_come_from_the_parts() {
    let (node, _) = build(vec![]);
    let node = node.unwrap();
    let ports: Vec<_> = node
        .inputs()
        .iter()
        .map(|p| (p.name.clone(), p.role))
        .collect();
    assert_eq!(ports[0], ("x".into(), wgraph_engine::node::PortRole::Call));
    assert_eq!(ports[1], ("t".into(), wgraph_engine::node::PortRole::Call));
    assert_eq!(
        ports[2],
        ("cond".into(), wgraph_engine::node::PortRole::Wired)
    );
    assert_eq!(node.outputs()[0].name, "velocity");
    assert_eq!(node.prediction().unwrap().output, "velocity");
    let types = [
        Some(ValueType::tensor(DType::F32, &[1, 4])),
        Some(ValueType::tensor(DType::F32, &[1])),
        Some(ValueType::tensor(DType::F32, &[1, 4])),
    ];
    assert_eq!(
        node.infer(&types, &mut NoInferCalls).unwrap(),
        vec![ValueType::tensor(DType::F32, &[1, 4])]
    );
    let mut bad = types.clone();
    bad[2] = Some(ValueType::tensor(DType::F32, &[1, 5]));
    let e = node.infer(&bad, &mut NoInferCalls).unwrap_err();
    assert_eq!(e.input, Some(2));
    assert!(e.message.contains("model input `cond`"), "{}", e.message);
}

/// Without a cache every call runs every block: the split computes the
/// blocks in turn.
#[test]
fn without_a_cache_every_call_runs_every_block() {
    let (node, models) = build(vec![]);
    let node = node.unwrap();
    let mut state = node.init_state().unwrap();
    let x = [0.5, -1.0, 2.0, 0.1];
    for t in [1000.0, 750.0, 500.0] {
        let got = call(&*node, &mut state, 0, &x, t);
        let (want, _) = reference(&x, t, &[None, None, None]);
        assert_eq!(got, want);
    }
    for b in &models.blocks {
        assert_eq!(b.calls.lock().unwrap().len(), 3);
    }
}

/// cache = [1, 2], cache_steps = 2: full, cached, cached, full, … within a
/// tick; the residuals of the full call, rounded to bf16, replace blocks
/// 1 and 2; a new tick starts with a full call.
#[test]
fn cached_blocks_reuse_the_bf16_residual_of_the_last_full_call() {
    let (node, models) = build(vec![
        ("cache", ParamValue::IntList(vec![2, 1])),
        ("cache_steps", ParamValue::Int(2)),
    ]);
    let node = node.unwrap();
    let mut state = node.init_state().unwrap();
    let x = [0.3, -0.7, 1.9, 0.2];
    let mut stored: Vec<Option<Vec<f32>>> = vec![None, None, None];
    for (tick, calls) in [(0u64, 5usize), (1, 2)] {
        for k in 0..calls {
            let t = 1000.0 - 150.0 * k as f32;
            let full = k % 3 == 0;
            let reuse: Vec<Option<Vec<f32>>> = if full {
                vec![None, None, None]
            } else {
                vec![None, stored[1].clone(), stored[2].clone()]
            };
            let (want, residuals) = reference(&x, t, &reuse);
            if full {
                stored = residuals.into_iter().map(Some).collect();
            }
            let got = call(&*node, &mut state, tick, &x, t);
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 1e-6,
                    "tick {tick} call {k}: {got:?} vs {want:?}"
                );
            }
            if !full {
                // Reused, not exact: the residual is from another t (and bf16).
                let (exact, _) = reference(&x, t, &[None, None, None]);
                assert!(got.iter().zip(&exact).any(|(g, e)| (g - e).abs() > 1e-3));
            }
        }
    }
    // Block 0 runs every call; blocks 1 and 2 on full calls only
    // (calls 0 and 3 of tick 0, call 0 of tick 1).
    let runs: Vec<usize> = models
        .blocks
        .iter()
        .map(|b| b.calls.lock().unwrap().len())
        .collect();
    assert_eq!(runs, [7, 3, 3]);
}

/// A call whose batch differs from the cache's runs in full.
#[test]
fn a_call_of_another_shape_runs_in_full() {
    let (node, models) = build(vec![("cache", ParamValue::IntList(vec![1]))]);
    let node = node.unwrap();
    let mut state = node.init_state().unwrap();
    call(&*node, &mut state, 0, &[1.0; 4], 1000.0);
    let x2 = [0.5; 8];
    let got = call(&*node, &mut state, 0, &x2, 500.0);
    let (want, _) = reference(&x2[..4], 500.0, &[None, None, None]);
    assert_eq!(&got[..4], &want[..]);
    assert_eq!(models.blocks[1].calls.lock().unwrap().len(), 2);
    // That call took the cache at the new shape: the next one reuses it.
    call(&*node, &mut state, 0, &x2, 250.0);
    assert_eq!(models.blocks[1].calls.lock().unwrap().len(), 2);
}

/// Importance mode: every call in full (the output is exact); the call
/// `cache_steps` after a full one scores each block alone replaced by
/// its bf16 residual from that full call.
#[test]
fn importance_scores_each_block_ablated_alone() {
    for cache_steps in [1usize, 2] {
        let (node, _) = build(vec![
            ("importance", ParamValue::Bool(true)),
            ("cache_steps", ParamValue::Int(cache_steps as i64)),
            ("cache", ParamValue::IntList(vec![0])),
        ]);
        let node = node.unwrap();
        let mut state = node.init_state().unwrap();
        let x = [0.3, -0.7, 1.9, 0.2];
        let ts = [1000.0, 900.0, 700.0, 400.0, 100.0];
        let mut want = [0.0f64; 3];
        let mut segments = 0;
        let mut residuals = Vec::new();
        for (k, &t) in ts.iter().enumerate() {
            let got = call(&*node, &mut state, 0, &x, t);
            let (exact, r) = reference(&x, t, &[None, None, None]);
            assert_eq!(got, exact, "importance mode outputs the uncached result");
            let phase = k % (cache_steps + 1);
            if phase == 0 {
                residuals = r;
            } else if phase == cache_steps {
                segments += 1;
                for (i, w) in want.iter_mut().enumerate() {
                    let mut reuse = vec![None, None, None];
                    reuse[i] = Some(residuals[i].clone());
                    let (ablated, _) = reference(&x, t, &reuse);
                    *w += ablated
                        .iter()
                        .zip(&exact)
                        .map(|(a, b)| f64::from(a - b).powi(2))
                        .sum::<f64>()
                        / 4.0;
                }
            }
        }
        let imp = block_importance(&state).unwrap();
        assert_eq!(imp.segments, segments);
        assert_eq!(segments, if cache_steps == 1 { 2 } else { 1 });
        let scores = imp.scores().unwrap();
        for (g, w) in scores.iter().zip(&want) {
            let w = w / segments as f64;
            assert!(
                (g - w).abs() <= 1e-9 * w.abs().max(1e-6),
                "{scores:?} vs {want:?}"
            );
            assert!(*g > 0.0);
        }
    }
    assert!(block_importance(&(Box::new(()) as State)).is_none());
}

fn build_error(extra: Vec<(&'static str, ParamValue)>) -> BuildError {
    build(extra).0.err().unwrap()
}

#[test]
fn bad_cache_parameters_name_the_element() {
    let e = build_error(vec![("cache", ParamValue::IntList(vec![0, 3]))]);
    assert_eq!((e.param.as_deref(), e.item), (Some("cache"), Some(1)));
    assert!(
        e.message
            .contains("block 3 does not exist: `blocks` has 3 (indices 0..=2)"),
        "{}",
        e.message
    );
    let e = build_error(vec![("cache", ParamValue::IntList(vec![-1]))]);
    assert_eq!(e.item, Some(0));
    let e = build_error(vec![("cache", ParamValue::IntList(vec![1, 1]))]);
    assert!(e.message.contains("listed twice"), "{}", e.message);
    let e = build_error(vec![("cache_steps", ParamValue::Int(0))]);
    assert_eq!(e.param.as_deref(), Some("cache_steps"));
}

/// Models that do not fit their place are refused at build time, at the
/// parameter (and list element) that names them.
#[test]
fn wrong_models_are_refused_naming_the_parameter() {
    let with = |blocks: Vec<Arc<FakeModel>>, head: Arc<FakeModel>| {
        let mut models: Vec<(&str, Arc<dyn Model>)> =
            vec![("e", embed() as Arc<dyn Model>), ("hd", head)];
        let names = ["b0", "b1", "b2"];
        for (n, b) in names.iter().zip(blocks) {
            models.push((n, b as Arc<dyn Model>));
        }
        build_with(
            &BlockDenoiser,
            vec![
                ("embed", ParamValue::ModelRef("e".into())),
                (
                    "blocks",
                    ParamValue::ModelRefList(names.iter().map(|s| s.to_string()).collect()),
                ),
                ("head", ParamValue::ModelRef("hd".into())),
            ],
            models,
        )
    };
    let renamed = fake(
        &["hidden:f32:batch,4", "c:f32:batch,1"],
        &["h_out:f32:batch,4"],
        &[("wgraph.role", "denoiser_block")],
        |ins| vec![ins[0].clone()],
    );
    let e = with(vec![block(1.0), renamed, block(1.0)], head())
        .err()
        .unwrap();
    assert_eq!((e.param.as_deref(), e.item), (Some("blocks"), Some(1)));
    assert!(
        e.message.contains("`blocks` element 1 (model `b1`) input `hidden` is neither `h` nor an output of the embed (outputs: h, c)"),
        "{}",
        e.message
    );
    let e = with(vec![block(1.0), block(1.0), head()], head())
        .err()
        .unwrap();
    assert_eq!(e.item, Some(2));
    assert!(
        e.message.contains("has role `denoiser_head`"),
        "{}",
        e.message
    );
    let e = with(vec![block(1.0), block(1.0), block(1.0)], block(1.0))
        .err()
        .unwrap();
    assert_eq!(e.param.as_deref(), Some("head"));
    // A block that changes h's type fails the type check.
    let widen = fake(
        &["h:f32:batch,4", "c:f32:batch,1"],
        &["h_out:f32:batch,8"],
        &[("wgraph.role", "denoiser_block")],
        |ins| vec![Tensor::full_f32(&[ins[0].shape()[0], 8], 0.0).unwrap()],
    );
    // A block whose output disagrees with its own signature at run time.
    let liar = fake(
        &["h:f32:batch,4", "c:f32:batch,1"],
        &["h_out:f32:batch,4"],
        &[("wgraph.role", "denoiser_block")],
        |ins| vec![Tensor::full_f32(&[ins[0].shape()[0], 8], 0.0).unwrap()],
    );
    let node = with(vec![block(1.0), liar, block(1.0)], head()).unwrap();
    let settings = Settings::default();
    let mut none = NoCallees;
    let mut cx = TickContext::new(0, &settings, &mut none);
    let mut state = node.init_state().unwrap();
    let ins = [
        Some(Tensor::full_f32(&[1, 4], 0.5).unwrap().into()),
        Some(Tensor::full_f32(&[1], 500.0).unwrap().into()),
        Some(Tensor::full_f32(&[1, 4], 0.5).unwrap().into()),
    ];
    let e = node.eval(&mut state, &ins, &mut cx).err().unwrap();
    assert_eq!(e.message, "block `b1` turned h: f32[1, 4] into f32[1, 8]");
    let node = with(vec![block(1.0), widen, block(1.0)], head()).unwrap();
    let types = [
        Some(ValueType::tensor(DType::F32, &[1, 4])),
        Some(ValueType::tensor(DType::F32, &[1])),
        Some(ValueType::tensor(DType::F32, &[1, 4])),
    ];
    let e = node.infer(&types, &mut NoInferCalls).unwrap_err();
    assert!(
        e.message
            .contains("`blocks` element 1 (model `b1`) turns h: f32[1, 4] into f32[1, 8]"),
        "{}",
        e.message
    );
}

/// `guidance = { cond = scale }` as the graph writes it.
fn guidance(scale: f64) -> ParamValue {
    use wgraph_engine::params::{AstEntry, AstIdent, AstRecord, AstValue, AstValueKind};
    let span = Default::default();
    ParamValue::Record(AstRecord {
        entries: vec![AstEntry {
            key: AstIdent {
                name: "cond".into(),
                span,
            },
            value: AstValue {
                kind: AstValueKind::Float(scale),
                span,
            },
        }],
        span,
    })
}

/// The whole split as one `denoiser` model (batch dimension `b`): embed,
/// the blocks in turn and the head, the same fakes' arithmetic.
fn monolithic(b: &str) -> Arc<FakeModel> {
    let (e, hd) = (embed_with(b), head_with(b));
    let blocks: Vec<Arc<FakeModel>> = SCALES.iter().map(|&a| block_with(a, b)).collect();
    fake(
        &[
            &format!("x:f32:{b},4"),
            &format!("t:f32:{b}"),
            &format!("cond:f32:{b},4"),
        ],
        &[&format!("velocity:f32:{b},4")],
        &[
            ("wgraph.role", "denoiser"),
            ("wgraph.prediction", "velocity"),
            ("wgraph.schedule", "rectified_flow"),
        ],
        move |ins| {
            let mut out = (e.f)(ins);
            let c = out.swap_remove(1);
            let mut h = out.swap_remove(0);
            for block in &blocks {
                h = (block.f)(&[h, c.clone()]).swap_remove(0);
            }
            (hd.f)(&[h, ins[0].clone()])
        },
    )
}

/// With no block skipped (no cache, or the full call of a cached
/// segment), a guided `block_denoiser` is the guided `denoiser` on the
/// same network, number for number: passes stacked (free batch) or run
/// one by one (batch 1), at every call of a tick.
#[test]
fn guided_block_network_equals_the_guided_denoiser_when_no_block_is_skipped() {
    for b in ["batch", "1"] {
        let plain = build_with(
            &super::super::Denoiser,
            vec![
                ("model", ParamValue::ModelRef("m".into())),
                ("guidance", guidance(1.5)),
            ],
            vec![("m", monolithic(b) as Arc<dyn Model>)],
        )
        .unwrap();
        let (split, _) = build_batch(b, vec![("guidance", guidance(1.5))]);
        let split = split.unwrap();
        let (cached, models) = build_batch(
            b,
            vec![
                ("guidance", guidance(1.5)),
                ("cache", ParamValue::IntList(vec![1])),
                ("cache_steps", ParamValue::Int(1)),
            ],
        );
        let cached = cached.unwrap();
        let mut states = [&plain, &split, &cached].map(|n| n.init_state().unwrap());
        let x = [0.3, -0.7, 1.9, 0.2];
        for (k, t) in [1000.0, 750.0, 500.0].into_iter().enumerate() {
            let want = call(&*plain, &mut states[0], 0, &x, t);
            // CFG really acts: 1.5 × (conditional − unconditional) moves it.
            let (p1, _) = reference_cond(&x, 0.25, t, &[None, None, None]);
            assert!(want.iter().zip(&p1).all(|(w, p)| (w - p).abs() > 1e-3));
            let got = call(&*split, &mut states[1], 0, &x, t);
            assert_eq!(got, want, "{b}: call {k}, no cache");
            let got = call(&*cached, &mut states[2], 0, &x, t);
            if k != 1 {
                // Calls 0 and 2 are full (cache_steps = 1).
                assert_eq!(got, want, "{b}: call {k}, the full call");
            }
        }
        // Block 1 ran on the full calls only: stacked once per call, or
        // once per pass.
        let passes = if b == "batch" { 1 } else { 2 };
        assert_eq!(models.blocks[1].calls.lock().unwrap().len(), 2 * passes);
        assert_eq!(models.blocks[0].calls.lock().unwrap().len(), 3 * passes);
    }
}

/// Under guidance each pass reuses its own residuals: the cached call is
/// CFG of the unconditional pass with the unconditional full call's
/// residual and the conditional pass with the conditional one's — the same
/// whether the passes are stacked or run one by one.
#[test]
fn each_guidance_pass_reuses_its_own_residuals() {
    for b in ["batch", "1"] {
        let (node, _) = build_batch(
            b,
            vec![
                ("guidance", guidance(1.5)),
                ("cache", ParamValue::IntList(vec![1, 2])),
                ("cache_steps", ParamValue::Int(1)),
            ],
        );
        let node = node.unwrap();
        let mut state = node.init_state().unwrap();
        let x = [0.3, -0.7, 1.9, 0.2];
        call(&*node, &mut state, 0, &x, 1000.0);
        let got = call(&*node, &mut state, 0, &x, 600.0);
        let none = [None, None, None];
        let (_, r0) = reference_cond(&x, 0.0, 1000.0, &none);
        let (_, r1) = reference_cond(&x, 0.25, 1000.0, &none);
        assert_ne!(r0[1], r1[1], "the passes' residuals differ");
        let reuse = |r: &[Vec<f32>]| [None, Some(r[1].clone()), Some(r[2].clone())];
        let (p0, _) = reference_cond(&x, 0.0, 600.0, &reuse(&r0));
        let (p1, _) = reference_cond(&x, 0.25, 600.0, &reuse(&r1));
        for ((g, u), c) in got.iter().zip(&p0).zip(&p1) {
            let want = u + 1.5 * (c - u);
            assert!((g - want).abs() <= 1e-5, "{b}: {got:?} vs {p0:?}, {p1:?}");
        }
    }
}
