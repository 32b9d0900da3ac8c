//! Flags several commands share: small clap groups each command's `*Args`
//! takes with `#[command(flatten)]`, and the value enums behind them.

use clap::ValueEnum;

/// `--provider` and `--backend`: how every model of a graph is loaded.
#[derive(clap::Args, Debug, Clone, Copy, Default)]
pub struct ModelFlags {
    /// Load every model on this execution provider.
    #[arg(long, value_enum)]
    pub provider: Option<ProviderArg>,
    /// Load every model with this backend (`wonnx` needs a build with the `wonnx` feature).
    #[arg(long, value_enum)]
    pub backend: Option<BackendArg>,
}

impl ModelFlags {
    /// `--provider` as the engine takes it.
    pub fn provider(&self) -> Option<wgraph_engine::model::Provider> {
        self.provider.map(Into::into)
    }

    /// `--backend` as the engine takes it.
    pub fn backend_kind(&self) -> Option<wgraph_engine::model::BackendKind> {
        self.backend.map(Into::into)
    }
}

/// `--on-late` and `--degrade`: what a live world does when ticks run late.
#[derive(clap::Args, Debug, Clone)]
pub struct LateFlags {
    /// When ticks run late: drop (start the next at once, never queue) or
    /// degrade (apply --degrade settings in order while behind); default: the graph's `on_late`.
    #[arg(long, value_name = "drop|degrade")]
    pub on_late: Option<String>,
    /// A cheaper setting for --on-late degrade, NODE.PARAM=VALUE (repeatable, in order).
    #[arg(long, value_name = "NODE.PARAM=VALUE")]
    pub degrade: Vec<String>,
}

/// `--keep-last`: how many files per-tick sinks keep.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct KeepLast {
    /// Per-tick file sinks (numbered PNG frames, `png`, `npy_dump`) keep only
    /// their newest N files, removing older ones as they go.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_last: Option<u64>,
}

/// `--seed`: the seed of every random source.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct SeedFlag {
    /// Seed for every random source (replaces the world's seed).
    #[arg(long)]
    pub seed: Option<u64>,
}

/// `--watch`, `--fps`, `--out` and `--keep-last` of the commands that show
/// a live world to a player (`play`, `serve`): the displayed frames go to
/// the player, the graph's file sinks to `--out` or nowhere.
#[derive(clap::Args, Debug, Clone)]
pub struct LiveWorldFlags {
    /// Reload the world when its files change (a graph, an included file, a
    /// model or a data file).
    #[arg(long)]
    pub watch: bool,
    /// Ticks per second (default: the graph's fps, followed across reloads).
    #[arg(long)]
    pub fps: Option<f64>,
    /// Directory for the graph's file sinks (the displayed frames go to the
    /// player); without it they write nothing.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub sinks: KeepLast,
}

/// `--set`: parameter overrides.
#[derive(clap::Args, Debug, Clone)]
pub struct SetFlags {
    /// Override a parameter: NODE.PARAM=VALUE (repeatable).
    #[arg(long = "set", value_name = "NODE.PARAM=VALUE")]
    pub set: Vec<String>,
}

/// Execution providers on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ProviderArg {
    Cpu,
    Cuda,
    Tensorrt,
}

/// Model backends on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum BackendArg {
    /// ONNX Runtime (CPU, CUDA, TensorRT).
    Ort,
    /// wonnx: WebGPU through wgpu (Vulkan, Metal, DX12); static shapes only.
    Wonnx,
    /// A Triton Inference Server over gRPC (`--triton-server HOST:PORT`).
    Triton,
}

impl From<BackendArg> for wgraph_engine::model::BackendKind {
    fn from(b: BackendArg) -> Self {
        match b {
            BackendArg::Ort => Self::Ort,
            BackendArg::Wonnx => Self::Wonnx,
            BackendArg::Triton => Self::Triton,
        }
    }
}

impl From<ProviderArg> for wgraph_engine::model::Provider {
    fn from(p: ProviderArg) -> Self {
        match p {
            ProviderArg::Cpu => Self::Cpu,
            ProviderArg::Cuda => Self::Cuda,
            ProviderArg::Tensorrt => Self::TensorRt,
        }
    }
}
