//! In-process tests of [`super::evaluate`] on the ground-truth graph
//! (`examples/world.world` renders the ground truth itself: no models).

use super::*;
use wgraph_engine::model::{Backend, LoadedModel, ModelError, ModelOptions};

/// A backend for graphs without models: every load fails.
pub(crate) struct NoModels;

impl Backend for NoModels {
    fn load(&self, path: &Path, _: &ModelOptions) -> Result<LoadedModel, ModelError> {
        Err(ModelError::Load(format!(
            "{}: no models here",
            path.display()
        )))
    }
}

/// The workspace root (the tests run in `lab/`).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `examples/world.world` walked by `examples/actions/walk.txt`.
pub(crate) fn world_options(world_seed: u64, frames: u64) -> EvalOptions {
    EvalOptions {
        file: root().join("examples/world.world"),
        world_seed,
        actions: root().join("examples/actions/walk.txt"),
        frames,
        set: vec![format!("gt.seed={world_seed}")],
        ..EvalOptions::default()
    }
}

fn usage_of(options: &EvalOptions) -> String {
    match options.validate() {
        Err(LabError::Usage(m)) => m,
        other => panic!("expected a usage error, got {other:?}"),
    }
}

#[test]
fn options_are_checked_before_anything_runs() {
    assert!(EvalOptions::default().validate().is_ok());
    let training = EvalOptions {
        world_seed: FIRST_HELD_OUT_SEED - 1,
        ..EvalOptions::default()
    };
    assert!(usage_of(&training).contains("held-out seeds start at 1000"));
    assert!(
        EvalOptions {
            allow_training_seed: true,
            ..training
        }
        .validate()
        .is_ok()
    );
    let none = EvalOptions {
        frames: 0,
        ..EvalOptions::default()
    };
    assert!(usage_of(&none).contains("--frames must be at least 1"));
    let mut share = EvalOptions::default();
    share.drift.fraction = 1.5;
    assert!(usage_of(&share).contains("expected a share between 0 and 1"));
    let jpeg = EvalOptions {
        plot: Some("plot.jpg".into()),
        ..EvalOptions::default()
    };
    assert!(usage_of(&jpeg).contains("use a .png or .svg file name"));
    // evaluate() refuses the same options before reading any file.
    let err = evaluate(&jpeg, &Models::new(Arc::new(NoModels))).unwrap_err();
    assert!(matches!(err, LabError::Usage(_)), "{err:?}");
}

/// The ground truth against itself, in memory: frames come from the run's
/// events (no PNG directory), every figure is perfect, and the report
/// serializes as eval's JSON and prints its summary.
#[test]
fn the_ground_truth_scores_perfectly_in_memory() {
    let report = evaluate(&world_options(1001, 4), &Models::new(Arc::new(NoModels))).unwrap();
    assert_eq!(report.frames, 4);
    assert_eq!(report.psnr_per_tick, [100.0; 4]);
    assert_eq!(report.psnr_mean_1_n, Some(100.0));
    assert_eq!(report.psnr_mean_1_8, None, "only 4 ticks ran");
    assert_eq!(report.drift_tick, None);
    let depth = report.depth_error_per_tick.as_deref().unwrap();
    assert!(depth.iter().all(|d| *d < 1e-4), "{depth:?}");
    assert_eq!(report.depth_error_problem, None);
    assert_eq!(report.action_accuracy, None, "no inverse-dynamics model");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["psnr_per_tick"].as_array().map(Vec::len), Some(4));
    assert!(json["psnr_mean_1_32"].is_null());
    assert!(json.get("instruction_following").is_none());
    let summary = report.summary();
    assert!(
        summary.contains("4 ticks; PSNR ticks 1-4 100.00 dB"),
        "{summary}"
    );
    assert!(summary.contains("no drift in 4 ticks"), "{summary}");
    assert!(summary.starts_with(&format!("{}: depth error", report.graph)));
    // Another world seed is another maze.
    let mut other = world_options(1002, 4);
    other.set = vec!["gt.seed=1001".into()];
    let far = evaluate(&other, &Models::new(Arc::new(NoModels))).unwrap();
    assert!(far.psnr_mean_1_n.unwrap() < 30.0, "{:?}", far.psnr_per_tick);
}
