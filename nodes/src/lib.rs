//! wgraph's built-in node kinds.
//!
//! [`KINDS`] lists every kind and [`registry()`] returns them. Each kind is
//! a unit struct implementing [`NodeKind`], in its own file (or one file
//! per small family), in the folder of its family; **to add a kind: write
//! one file, add one entry to [`KINDS`].**
//!
//! Image tensors are f32 `[1, C, H, W]` (C = 3 RGB or 1 gray) with values in
//! [-1, 1] unless a node's `range = unit` says [0, 1].
//!
//! | folder | what | kinds |
//! |---|---|---|
//! | `sources/` | what enters a world: files, noise, keys, prompts, worlds | `npy`, `image`, `constant`, `noise`, `actions`, `keys`, `qcm`, `prompt_schedule`, `pan`, `world` |
//! | `math/` | tensor operations | `add`, `sub`, `mul`, `lerp`, `scale`, `clamp`, `concat`, `resize`, `start_then` |
//! | `models/` | model-backed kinds (not denoisers) and their shared code | `encoder`, `decoder`, `model`, `text_encoder`, `action_embedder` |
//! | `denoiser/` | the callables samplers call | `denoiser`, `controlnet`, `block_denoiser`, `target_flow` |
//! | `samplers/` | schedules and step rules calling a denoiser | `euler`, `sde`, `tts_ode`, `tts_sde`, `self_forcing`, `ddim`, `aam`, `df_window` |
//! | `memory/` | the world's compressed memory of past latents | `framepack`, `tscm` |
//! | `sinks/` | where tensors leave: files, streams, the display | `png`, `gif`, `npy_dump`, `y4m`, `display` |
//! | `reuse.rs` | skipping unchanged ticks | `similarity_filter`; `Reusable`, the `reuse` input of every sampler and the decoder |
//!
//! Each folder's `mod.rs` lists its files. Crate-wide helpers stay at the
//! top: `common.rs` (engine re-exports, port type checks, input access,
//! parameter checks), [`image_io`] (image tensors ↔ pixels), [`rng`]
//! (counter-based RNG), [`ports`] (a kind's ports, for `wgraph kinds`).
//! [`action_file`] (action file parsing) is also used by the CLI.

mod common;
mod denoiser;
pub mod image_io;
mod math;
mod memory;
mod models;
pub mod ports;
mod reuse;
pub mod rng;
pub mod samplers;
mod sinks;
mod sources;

/// The block-split denoiser (`denoiser/blocks.rs`), under its former path.
pub use denoiser::blocks as block_denoiser;
/// Action files (`sources/action_file.rs`), re-exported for the CLI.
pub use sources::action_file;

pub use denoiser::Denoiser;
pub use denoiser::blocks::{BlockDenoiser, BlockImportance, block_importance};
pub use denoiser::controlnet::ControlNet;
pub use denoiser::target_flow::TargetFlow;
pub use math::binary::{Add, Lerp, Mul, Sub};
pub use math::concat::Concat;
pub use math::resize::Resize;
pub use math::start_then::StartThen;
pub use math::unary::{Clamp, Scale};
pub use memory::framepack::{FramePack, framepack_tokens};
pub use memory::tscm::Tscm;
pub use models::action_embedder::ActionEmbedder;
pub use models::model::{Decoder, Encoder};
pub use models::text_encoder::{TextEncoder, Tokenizer};
pub use reuse::{Reusable, SimilarityFilter};
pub use samplers::ddim::{Ddim, Spacing, ddim_timesteps};
pub use samplers::euler::{Euler, flow_schedule};
pub use sinks::display::Display;
pub use sinks::gif::Gif;
pub use sinks::npy_dump::NpyDump;
pub use sinks::png::Png;
pub use sinks::y4m::Y4m;
pub use sources::actions::ActionsFile;
pub use sources::constant::Constant;
pub use sources::image_file::ImageFile;
pub use sources::keys::Keys;
pub use sources::noise::Noise;
pub use sources::npy::Npy;
pub use sources::pan::Pan;
pub use sources::prompt_schedule::PromptSchedule;
pub use sources::qcm::{Qcm, QcmSpeeds, QcmVariant, all_captions, qcm_caption};
pub use sources::world::{
    WorldSource, depth_to_signed, frame_depth_tensor, frame_image_tensor, pixel_to_signed,
};

use wgraph_engine::node::{BuildContext, BuildError, Node, NodeKind};
use wgraph_engine::params::ParamSpec;
use wgraph_engine::registry::Registry;

/// The kinds that write files a graph names (each has a
/// [`ParamType::OutPath`](wgraph_engine::params::ParamType::OutPath)
/// parameter): what a live world started without `--out` skips
/// ([`OutputConfig::write_sinks`](wgraph_engine::node::OutputConfig::write_sinks)).
pub const FILE_SINKS: &[&str] = &["png", "gif", "y4m", "npy_dump"];

/// Every built-in node kind, by family: **registering a kind is one entry
/// here.** Names are unique (tested); [`registry()`] holds exactly these.
/// Samplers and the decoder are wrapped in [`Reusable`] (their `reuse`
/// input).
pub static KINDS: &[&dyn NodeKind] = &[
    // sources/
    &Npy,
    &ImageFile,
    &Constant,
    &Noise,
    &ActionsFile,
    &Keys,
    &Qcm,
    &PromptSchedule,
    &Pan,
    &WorldSource,
    // math/
    &Add,
    &Sub,
    &Mul,
    &Lerp,
    &Scale,
    &Clamp,
    &Resize,
    &Concat,
    &StartThen,
    // models/
    &models::model::AnyModel,
    &Encoder,
    &Reusable(Decoder),
    &TextEncoder,
    &ActionEmbedder,
    // denoiser/
    &Denoiser,
    &ControlNet,
    &BlockDenoiser,
    &TargetFlow,
    // samplers/
    &Reusable(Euler),
    &Reusable(Ddim),
    &Reusable(samplers::sde::Sde),
    &Reusable(samplers::aam::Aam),
    &Reusable(samplers::df_window::DfWindow),
    &Reusable(samplers::self_forcing::SelfForcing),
    &Reusable(samplers::tts::TTS_ODE),
    &Reusable(samplers::tts::TTS_SDE),
    &Reusable(samplers::kdiffusion::EULER_ANCESTRAL),
    &Reusable(samplers::kdiffusion::HEUN),
    &Reusable(samplers::kdiffusion::DPMPP_2M),
    &Reusable(samplers::kdiffusion::DPMPP_2M_SDE),
    &Reusable(samplers::kdiffusion::DPMPP_3M_SDE),
    &Reusable(samplers::kdiffusion::UNI_PC),
    &Reusable(samplers::vp::Ddpm),
    &Reusable(samplers::vp::Lcm),
    // memory/
    &FramePack,
    &Tscm,
    // reuse.rs
    &SimilarityFilter,
    // sinks/
    &Png,
    &Gif,
    &NpyDump,
    &Y4m,
    &Display,
];

/// Every built-in node kind ([`KINDS`]).
pub fn registry() -> Registry {
    let mut r = Registry::new();
    for &kind in KINDS {
        r.register(Builtin(kind))
            .expect("KINDS has unique names (tested)");
    }
    r
}

/// An entry of [`KINDS`] as the registry takes a kind (by value).
struct Builtin(&'static dyn NodeKind);

impl NodeKind for Builtin {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn summary(&self) -> &'static str {
        self.0.summary()
    }
    fn params(&self) -> &'static [ParamSpec] {
        self.0.params()
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        self.0.build(cx)
    }
}

#[cfg(test)]
mod tests {
    use crate::common::testing::{build_in, run, t32};
    use std::num::NonZeroU64;
    use wgraph_engine::node::OutputConfig;
    use wgraph_engine::params::{Default, ParamType, ParamValue as P};
    use wgraph_engine::settings::Settings;

    /// The files under `dir`, relative, sorted.
    fn files(dir: &std::path::Path) -> Vec<String> {
        let mut all = Vec::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    todo.push(p);
                } else {
                    let rel = p.strip_prefix(dir).unwrap();
                    all.push(rel.display().to_string());
                }
            }
        }
        all.sort();
        all
    }

    /// `FILE_SINKS` are exactly the kinds with an output path.
    #[test]
    fn file_sinks_are_the_kinds_that_name_output_paths() {
        let r = super::registry();
        for kind in r.kinds() {
            let names_output = kind.params().iter().any(|p| p.ty == ParamType::OutPath);
            assert_eq!(
                names_output,
                super::FILE_SINKS.contains(&kind.name()),
                "{}",
                kind.name()
            );
        }
    }

    /// A live world without `--out`: every file sink checks its input and
    /// writes nothing, not even a directory.
    #[test]
    fn skipped_sinks_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutputConfig {
            dir: dir.path().to_path_buf(),
            write_sinks: false,
            ..OutputConfig::default()
        };
        let r = super::registry();
        for name in super::FILE_SINKS {
            let kind = r.get(name).unwrap();
            let node = build_in(&**kind, vec![], &out, &Settings::default()).unwrap();
            run(&*node, 3, |_| vec![t32(&[1, 3, 2, 2], vec![0.5; 12])]).unwrap();
        }
        assert_eq!(files(dir.path()), Vec::<String>::new());
    }

    /// `--keep-last 2`: each per-tick sink keeps its newest two files; the
    /// single-file sinks are unaffected.
    #[test]
    fn keep_last_keeps_the_newest_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutputConfig {
            dir: dir.path().to_path_buf(),
            keep_last: NonZeroU64::new(2),
            ..OutputConfig::default()
        };
        let r = super::registry();
        for (name, prefix) in [("png", "frame"), ("npy_dump", "d")] {
            let kind = r.get(name).unwrap();
            let given = vec![("prefix", P::Str(prefix.into()))];
            let node = build_in(&**kind, given, &out, &Settings::default()).unwrap();
            run(&*node, 5, |_| vec![t32(&[1, 3, 2, 2], vec![0.5; 12])]).unwrap();
        }
        let display = build_in(
            &super::Display,
            vec![],
            &OutputConfig {
                display: wgraph_engine::node::DisplayTarget::PngDir(dir.path().join("shown")),
                ..out.clone()
            },
            &Settings::default(),
        )
        .unwrap();
        run(&*display, 4, |_| vec![t32(&[1, 3, 2, 2], vec![0.5; 12])]).unwrap();
        assert_eq!(
            files(dir.path()),
            [
                "frames/frame_00003.png",
                "frames/frame_00004.png",
                "shown/frame_00002.png",
                "shown/frame_00003.png",
                "tensors/d_00003.npy",
                "tensors/d_00004.npy",
            ]
        );
    }

    /// Every entry of `KINDS` is registered under its own name: no two
    /// share one.
    #[test]
    fn kinds_have_unique_names() {
        let mut names: Vec<&str> = super::KINDS.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        for pair in names.windows(2) {
            assert_ne!(pair[0], pair[1], "two kinds are named `{}`", pair[0]);
        }
        let r = super::registry();
        assert_eq!(r.names().collect::<Vec<_>>(), names);
    }

    #[test]
    fn every_kind_has_consistent_params() {
        let r = super::registry();
        for kind in r.kinds() {
            let params = kind.params();
            for (i, p) in params.iter().enumerate() {
                assert!(
                    params[..i].iter().all(|q| q.name != p.name),
                    "{}: {}",
                    kind.name(),
                    p.name
                );
                let ok = match (p.ty, p.default) {
                    (_, None) | (_, Some(Default::Absent)) => true,
                    (ParamType::Int, Some(Default::Int(_))) => true,
                    (ParamType::Float, Some(Default::Float(_))) => true,
                    (ParamType::Bool, Some(Default::Bool(_))) => true,
                    (ParamType::Str, Some(Default::Str(_))) => true,
                    (ParamType::OutPath, Some(Default::Str(d))) => {
                        wgraph_engine::output::check_relative(std::path::Path::new(d)).is_ok()
                    }
                    (ParamType::FileName, Some(Default::Str(d))) => {
                        wgraph_engine::output::check_name_part(d).is_ok()
                    }
                    (ParamType::Choice(c), Some(Default::Choice(d))) => c.contains(&d),
                    _ => false,
                };
                assert!(
                    ok,
                    "{}: default of `{}` does not fit its type",
                    kind.name(),
                    p.name
                );
                assert!(!p.doc.is_empty());
            }
            assert!(!kind.summary().is_empty());
        }
    }
}
