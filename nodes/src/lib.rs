//! wgraph's built-in node kinds.
//!
//! [`registry()`] returns every kind. Each kind is a unit struct implementing
//! [`NodeKind`](wgraph_engine::node::NodeKind), in its own file (or one file
//! per small family); **to add a kind: write one file, add one line to
//! [`registry()`].**
//!
//! Image tensors are f32 `[1, C, H, W]` (C = 3 RGB or 1 gray) with values in
//! [-1, 1] unless a node's `range = unit` says [0, 1].
//!
//! | file | kinds |
//! |---|---|
//! | `npy.rs` | `npy` — a tensor, or one slice per tick, from a `.npy` file |
//! | `image_file.rs` | `image` — a PNG/JPEG/GIF as an image tensor |
//! | `constant.rs` | `constant` — a tensor of one value |
//! | `noise.rs` | `noise` — reproducible Gaussian noise |
//! | `actions.rs` | `actions` — scripted keys from an action file |
//! | `keys.rs` | `keys` — actions as a multi-hot vector |
//! | `binary.rs` | `add`, `sub`, `mul`, `lerp` — elementwise on two tensors |
//! | `unary.rs` | `scale`, `clamp` — elementwise on one tensor |
//! | `resize.rs` | `resize` — bilinear resize |
//! | `pan.rs` | `pan` — a toy camera scrolled by the keys |
//! | `target_flow.rs` | `target_flow` — exact velocity toward a known target |
//! | `euler.rs` | `euler` — rectified-flow Euler sampler calling a denoiser |
//! | `png.rs`, `gif.rs`, `npy_dump.rs` | `png`, `gif`, `npy_dump` — file sinks |
//! | `display.rs` | `display` — the frames a user watches |
//! | `y4m.rs` | `y4m` — a raw YUV4MPEG2 stream (file or stdout) |
//! | `ddim.rs` | `ddim` — DDIM sampler calling an ε-predicting denoiser |
//! | `start_then.rs` | `start_then` — `start` on tick 0, then `then` |
//! | `concat.rs` | `concat` — joins two tensors along an axis |
//! | `prompt_schedule.rs` | `prompt_schedule` — text changing at given ticks |
//! | `qcm.rs` | `qcm` — Yume's Quantized Camera Motion captions |
//! | `framepack.rs` | `framepack` — Yume's FramePack-like memory |
//! | `tscm.rs` | `tscm` — Yume 1.5's temporal-spatial compressed memory |
//! | `denoiser.rs` | `denoiser`, `controlnet` — a diffusion network as a sampler's callable |
//! | `block_denoiser.rs` | `block_denoiser` — a denoiser run as embed → blocks → head, with Yume's block cache |
//! | `reuse.rs` | `similarity_filter` — skip ticks whose input and condition did not change; `Reusable`, the `reuse` input of every sampler and the decoder |
//! | `samplers/` | `euler`, `sde`, `tts_ode`, `tts_sde`, `self_forcing`, `ddim`, `aam`, `df_window` |
//! | `world_source.rs` | `world` — the ground-truth world (crate `wgraph-world`): RGB, depth, pose |
//!
//! Shared helpers: `common.rs` (port type checks, input access),
//! [`image_io`] (image tensors ↔ pixels), [`rng`] (counter-based RNG),
//! [`action_file`] (action
//! file parsing, also used by the CLI).

mod action_embedder;
pub mod action_file;
mod actions;
mod binary;
pub mod block_denoiser;
mod common;
mod concat;
mod constant;
mod denoiser;
mod display;
mod framepack;
mod gif;
mod image_file;
pub mod image_io;
mod keys;
mod model_io;
mod model_node;
mod noise;
mod npy;
mod npy_dump;
mod pan;
mod png;
pub mod ports;
mod prompt_schedule;
mod qcm;
mod resize;
mod reuse;
pub mod rng;
pub mod samplers;
mod start_then;
mod target_flow;
mod text_encoder;
mod tscm;
mod unary;
mod world_source;
mod y4m;

pub use action_embedder::ActionEmbedder;
pub use actions::ActionsFile;
pub use binary::{Add, Lerp, Mul, Sub};
pub use block_denoiser::{BlockDenoiser, BlockImportance, block_importance};
pub use concat::Concat;
pub use constant::Constant;
pub use denoiser::{ControlNet, Denoiser};
pub use display::Display;
pub use framepack::{FramePack, framepack_tokens};
pub use gif::Gif;
pub use image_file::ImageFile;
pub use keys::Keys;
pub use model_node::{Decoder, Encoder};
pub use noise::Noise;
pub use npy::Npy;
pub use npy_dump::NpyDump;
pub use pan::Pan;
pub use png::Png;
pub use prompt_schedule::PromptSchedule;
pub use qcm::{Qcm, QcmSpeeds, QcmVariant, all_captions, qcm_caption};
pub use resize::Resize;
pub use samplers::ddim::{Ddim, Spacing, ddim_timesteps};
pub use samplers::euler::{Euler, flow_schedule};
pub use start_then::StartThen;
pub use target_flow::TargetFlow;
pub use text_encoder::{TextEncoder, Tokenizer};
pub use tscm::Tscm;
pub use unary::{Clamp, Scale};
pub use world_source::{
    WorldSource, depth_to_signed, frame_depth_tensor, frame_image_tensor, pixel_to_signed,
};
pub use y4m::Y4m;

pub use reuse::{Reusable, SimilarityFilter};
use wgraph_engine::registry::Registry;

/// The kinds that write files a graph names (each has a
/// [`ParamType::OutPath`](wgraph_engine::params::ParamType::OutPath)
/// parameter): what a live world started without `--out` skips
/// ([`OutputConfig::write_sinks`](wgraph_engine::node::OutputConfig::write_sinks)).
pub const FILE_SINKS: &[&str] = &["png", "gif", "y4m", "npy_dump"];

/// Every built-in node kind.
pub fn registry() -> Registry {
    const UNIQUE: &str = "built-in kinds have unique names";
    let mut r = Registry::new();
    r.register(Npy).expect(UNIQUE);
    r.register(ImageFile).expect(UNIQUE);
    r.register(Constant).expect(UNIQUE);
    r.register(Noise).expect(UNIQUE);
    r.register(ActionsFile).expect(UNIQUE);
    r.register(Keys).expect(UNIQUE);
    r.register(Qcm).expect(UNIQUE);
    r.register(PromptSchedule).expect(UNIQUE);
    r.register(Add).expect(UNIQUE);
    r.register(Sub).expect(UNIQUE);
    r.register(Mul).expect(UNIQUE);
    r.register(Lerp).expect(UNIQUE);
    r.register(Scale).expect(UNIQUE);
    r.register(Clamp).expect(UNIQUE);
    r.register(Resize).expect(UNIQUE);
    r.register(Concat).expect(UNIQUE);
    r.register(StartThen).expect(UNIQUE);
    r.register(Pan).expect(UNIQUE);
    r.register(TargetFlow).expect(UNIQUE);
    r.register(Reusable(Euler)).expect(UNIQUE);
    r.register(Reusable(Ddim)).expect(UNIQUE);
    r.register(Reusable(samplers::sde::Sde)).expect(UNIQUE);
    r.register(Reusable(samplers::aam::Aam)).expect(UNIQUE);
    r.register(Reusable(samplers::df_window::DfWindow))
        .expect(UNIQUE);
    r.register(Reusable(samplers::self_forcing::SelfForcing))
        .expect(UNIQUE);
    r.register(Reusable(samplers::tts::TTS_ODE)).expect(UNIQUE);
    r.register(Reusable(samplers::tts::TTS_SDE)).expect(UNIQUE);
    r.register(model_node::AnyModel).expect(UNIQUE);
    r.register(FramePack).expect(UNIQUE);
    r.register(Tscm).expect(UNIQUE);
    r.register(SimilarityFilter).expect(UNIQUE);
    r.register(Png).expect(UNIQUE);
    r.register(Gif).expect(UNIQUE);
    r.register(NpyDump).expect(UNIQUE);
    r.register(Y4m).expect(UNIQUE);
    r.register(Display).expect(UNIQUE);
    r.register(Encoder).expect(UNIQUE);
    r.register(Reusable(Decoder)).expect(UNIQUE);
    r.register(ActionEmbedder).expect(UNIQUE);
    r.register(TextEncoder).expect(UNIQUE);
    r.register(Denoiser).expect(UNIQUE);
    r.register(ControlNet).expect(UNIQUE);
    r.register(BlockDenoiser).expect(UNIQUE);
    r.register(WorldSource).expect(UNIQUE);
    r
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

    #[test]
    fn every_kind_has_consistent_params() {
        let r = super::registry();
        assert_eq!(r.names().count(), 44);
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
