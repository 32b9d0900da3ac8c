//! `wgraph bench FILE --swap SPEC...`: every combination of swapped
//! settings, one table of speed and quality. The flags become
//! [`wgraph_lab::swap::SwapOptions`], the lab runs them
//! ([`wgraph_lab::swap::swap`]: what is measured and how is described there)
//! under a progress bar, and this prints the table and writes the plots and
//! the JSON.

use crate::Outcome;
use crate::bench::BenchArgs;
use crate::commands::{lab_failure, lab_models};
use indicatif::{ProgressBar, ProgressStyle};
use wgraph_engine::model::ModelCache;
use wgraph_lab::LabError;
use wgraph_lab::swap::{
    GroundTruth, Quality, Swap, SwapOptions, SwapProgress, parse_swap, plot_svg, truth_plot_path,
};

/// The progress bar: one step per run (the reference, each combination).
struct Bar(ProgressBar);

impl SwapProgress for Bar {
    fn start(&self, runs: u64, message: &str) {
        self.0.set_length(runs);
        self.0.set_message(message.to_string());
    }
    fn message(&self, message: &str) {
        self.0.set_message(message.to_string());
    }
    fn inc(&self) {
        self.0.inc(1);
    }
    fn eval_failed(&self, error: &LabError) {
        self.0.suspend(|| match error {
            LabError::Graph(text) => eprint!("{text}"),
            other => eprintln!(
                "error: {}",
                wgraph_grammar::diagnostic::escape_controls(&other.to_string())
            ),
        });
    }
}

/// `wgraph bench FILE --swap ...`
pub fn bench_swap(args: &BenchArgs) -> Outcome {
    let swaps: Vec<Swap> = match args.swap.iter().map(|s| parse_swap(s)).collect() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::Usage;
        }
    };
    if let Some(path) = &args.plot
        && let Err(e) = wgraph_lab::plot::check_name(path)
    {
        eprintln!("error: --plot: {e}");
        return Outcome::Usage;
    }
    let options = SwapOptions {
        file: args.file.clone(),
        swaps,
        reference: args.reference.clone(),
        frames: args.frames,
        rounds: args.rounds,
        set: args.params.set.clone(),
        workers: args.workers,
        pipeline: args.pipeline,
        ground_truth: match (args.world_seed, &args.actions) {
            (Some(world_seed), Some(actions)) => Some(GroundTruth {
                world_seed,
                actions: actions.clone(),
            }),
            _ => None,
        },
        target_fps: args.target_fps,
        target_psnr: args.target_psnr,
    };
    if let Err(e) = options.validate() {
        return lab_failure(e);
    }
    // One model cache: the combinations share sessions.
    let models = lab_models(ModelCache::new(crate::load::backends()), args.model);
    let bar = Bar(ProgressBar::new(0));
    bar.0.set_style(
        ProgressStyle::with_template("{spinner} {pos}/{len} runs [{bar:30}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let result = wgraph_lab::swap::swap(&options, &models, &bar);
    bar.0.finish_and_clear();
    let report = match result {
        Ok(r) => r,
        Err(e) => return lab_failure(e),
    };
    print!("{}", report.table());
    if let Some(path) = &args.plot {
        let mut plots = vec![(path.clone(), plot_svg(&report, Quality::Reference))];
        if options.ground_truth.is_some() {
            plots.push((
                truth_plot_path(path),
                plot_svg(&report, Quality::GroundTruth),
            ));
        }
        for (path, svg) in plots {
            if let Err(e) = wgraph_lab::plot::save(&path, &svg) {
                return lab_failure(LabError::Runtime(e.to_string()));
            }
        }
    }
    if let Some(path) = &args.json {
        let written = serde_json::to_value(&report)
            .map_err(|e| e.to_string())
            .and_then(|json| crate::eval::write_json(path, json));
        if let Err(e) = written {
            return lab_failure(LabError::Runtime(e));
        }
    }
    Outcome::Ok
}
