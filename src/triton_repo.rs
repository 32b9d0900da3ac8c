//! `wgraph triton-repo FILE.world DIR`: a Triton model repository for a
//! graph's models, so its `backend = triton` models (or the whole graph with
//! `--backend triton`) find them on a server started on `DIR`.
//!
//! The graph is loaded and checked as `wgraph check` would, every model on
//! ONNX Runtime (what is written must be models wgraph can run); then each
//! `model` declaration becomes a folder named after it (the name the
//! backend asks the server for): `config.pbtxt`, `1/model.onnx` and its
//! external data, and for `--platform python` `1/model.py`
//! (`wgraph_triton::repo`). Two declarations of one name cannot exist, so
//! folders never collide. A non-empty `DIR` is refused unless `--force`
//! (which replaces the folders of this graph's models only).

use crate::Outcome;
use crate::commands::usage;
use crate::load::{LoadConfig, Loaded, load};
use clap::ValueEnum;
use std::path::PathBuf;
use wgraph_engine::model::{BackendKind, model_files};
use wgraph_engine::node::OutputConfig;
use wgraph_triton::repo::{Platform, RepoOptions, write_model};

/// Which Triton backend serves the models.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum PlatformArg {
    /// Triton's ONNX Runtime backend (GPU servers; TensorRT through it).
    Onnxruntime,
    /// Triton's python backend running the ONNX file with onnxruntime on the
    /// CPU (what the `nvidia-pytriton` wheel runs).
    Python,
}

/// `wgraph triton-repo` flags.
#[derive(clap::Args, Debug)]
pub struct TritonRepoArgs {
    /// The graph whose models to write.
    pub file: PathBuf,
    /// The repository folder (created; must be empty unless `--force`).
    pub dir: PathBuf,
    /// Which Triton backend runs the models.
    #[arg(long, value_enum, default_value_t = PlatformArg::Onnxruntime)]
    pub platform: PlatformArg,
    /// Dynamic batching's wait for more requests, in µs (a lone stream waits this long per call).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub max_queue_delay_us: u64,
    /// Instances of each model on the server.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub instances: u32,
    /// `max_batch_size` of models with a batch axis.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_batch: u32,
    /// Write into a non-empty DIR (this graph's model folders are replaced).
    #[arg(long)]
    pub force: bool,
}

/// `wgraph triton-repo FILE DIR`
pub fn triton_repo(args: &TritonRepoArgs) -> Outcome {
    let non_empty = std::fs::read_dir(&args.dir).is_ok_and(|mut d| d.next().is_some());
    if non_empty && !args.force {
        return usage(&format!(
            "{} is not empty: pick an empty folder, or add --force to replace this graph's model folders in it",
            args.dir.display()
        ));
    }
    if args.dir.exists() && !args.dir.is_dir() {
        return usage(&format!("{} is not a folder", args.dir.display()));
    }
    let backend = crate::load::backends();
    let config = LoadConfig {
        set: &[],
        seed: None,
        paths: Vec::new(),
        output: OutputConfig::default(),
        provider: None,
        backend_kind: Some(BackendKind::Ort),
        backend: &backend,
    };
    let graph = match load(&args.file, &config) {
        Loaded::Graph(g) => g,
        Loaded::Errors => return Outcome::GraphErrors,
        Loaded::Usage(u) => return usage(&u),
    };
    let options = RepoOptions {
        platform: match args.platform {
            PlatformArg::Onnxruntime => Platform::OnnxRuntime,
            PlatformArg::Python => Platform::Python,
        },
        max_queue_delay_us: args.max_queue_delay_us,
        instances: args.instances,
        max_batch: args.max_batch,
    };
    if let Err(e) = std::fs::create_dir_all(&args.dir) {
        eprintln!("error: cannot create {}: {e}", args.dir.display());
        return Outcome::RuntimeFailure;
    }
    for model in &graph.models {
        let folder = args.dir.join(&model.name);
        if folder.exists()
            && let Err(e) = std::fs::remove_dir_all(&folder)
        {
            eprintln!("error: cannot replace {}: {e}", folder.display());
            return Outcome::RuntimeFailure;
        }
        match write_model(&args.dir, &model.name, &model_files(&model.path), &options) {
            Ok(files) => eprintln!(
                "model `{}`: {} ({} files)",
                model.name,
                folder.display(),
                files.len()
            ),
            Err(e) => {
                eprintln!("error: {e}");
                return Outcome::RuntimeFailure;
            }
        }
    }
    eprintln!(
        "wrote {} model(s) to {}; serve them with tritonserver --model-repository={}",
        graph.models.len(),
        args.dir.display(),
        args.dir.display()
    );
    Outcome::Ok
}
