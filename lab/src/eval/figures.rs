//! The figures of [`super::evaluate`] that need more than two frames: the
//! depth error of a graph's `depth_dump` stream ([`depth_errors`]), the VAE
//! round trip of the ground truth ([`reconstruction_psnr`]) and action
//! accuracy through an inverse-dynamics model ([`load_idm`],
//! [`action_accuracy`]); and [`graph_resolution`], read before a build.

use crate::quality::psnr;
use image::RgbImage;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wgraph_engine::graph::Graph;
use wgraph_engine::model::{Backend, Model, ModelOptions};
use wgraph_engine::value::Actions;
use wgraph_groundtruth::{Keys, MAX_DEPTH, signed_to_depth};
use wgraph_nodes::image_io::{Range, image_to_tensor, tensor_to_image};

use super::DEPTH_SINK;

/// The inverse-dynamics model eval uses when none is named, if it is there.
pub(super) const DEFAULT_IDM: &str = "models-onnx/trained/idm.onnx";

/// Keys scored by action accuracy: W A S D Left Right Up Down. Space is left
/// out: the ground-truth world raises the eye while Space is held, so two
/// identical frames are as likely "Space held" as "no key" — no model can tell.
const SCORED_KEYS: usize = 8;

/// The ground truth's keys for a tick's actions.
pub(super) fn keys_of(a: Actions) -> Keys {
    let bits = a
        .multi_hot()
        .iter()
        .enumerate()
        .filter(|(_, v)| **v > 0.5)
        .fold(0u16, |b, (i, _)| b | (1 << i));
    Keys::from_bits(bits)
}

/// Mean absolute depth error per tick (maze cells) of the graph's depth
/// stream (`depth_dump`'s files in `dir`, signed depth) against the ground
/// truth (cells); `None` when the graph has no depth stream.
pub(super) fn depth_errors(dir: &Path, truth: &[Vec<f32>]) -> Result<Option<Vec<f64>>, String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(None);
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "npy"))
        .collect();
    files.sort();
    if files.len() < truth.len() {
        return Err(format!(
            "`{DEPTH_SINK}` wrote {} depth maps for {} ticks",
            files.len(),
            truth.len()
        ));
    }
    let mut errors = Vec::with_capacity(truth.len());
    for (t, (file, gt)) in files.iter().zip(truth).enumerate() {
        let tensor = wgraph_engine::npy::read_npy_file(file)
            .map_err(|e| format!("`{DEPTH_SINK}` tick {t}: {e}"))?;
        let generated = tensor
            .host_f32()
            .map_err(|e| format!("`{DEPTH_SINK}` tick {t}: {e}"))?;
        if generated.len() != gt.len() {
            return Err(format!(
                "`{DEPTH_SINK}` tick {t}: a depth map of {} ({} values) for a {}-pixel frame; expected f32[1, 1, H, W] at the world resolution",
                tensor.tensor_type(),
                generated.len(),
                gt.len()
            ));
        }
        let total: f64 = generated
            .iter()
            .zip(gt)
            .map(|(g, d)| f64::from((signed_to_depth(*g) - d.clamp(0.0, MAX_DEPTH)).abs()))
            .sum();
        errors.push(total / gt.len().max(1) as f64);
    }
    Ok(Some(errors))
}

/// The `world { resolution = HxW }` of a graph, read without building it
/// (the start frame must be rendered at that size before the build reads it).
pub(super) fn graph_resolution(file: &Path) -> Option<(usize, usize)> {
    use wgraph_grammar::ast::{DimExpr, Statement, ValueKind};
    let mut sources = wgraph_grammar::source::SourceMap::new();
    let parsed = wgraph_grammar::load_graph(file, &mut sources, &wgraph_grammar::FsLoader).ok()?;
    parsed.statements.iter().rev().find_map(|s| match s {
        Statement::Settings(r) => match &r.get("resolution")?.value.kind {
            ValueKind::Size(d) => match d.as_slice() {
                [DimExpr::Known(h), DimExpr::Known(w)] => Some((*h as usize, *w as usize)),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    })
}

/// The graph's RGB encoder and decoder (by role metadata), if it has both.
fn rgb_vae(graph: &Graph) -> Option<(Arc<dyn Model>, Arc<dyn Model>)> {
    let find = |role: &str| {
        graph.model_table.iter().map(|(_, m)| m).find(|m| {
            let s = m.signature();
            s.meta("wgraph.role") == Some(role)
                && s.meta("wgraph.modality").is_none_or(|x| x == "rgb")
        })
    };
    Some((
        Arc::clone(find("vae_encoder")?),
        Arc::clone(find("vae_decoder")?),
    ))
}

/// Mean PSNR of the ground truth through the graph's RGB encoder and
/// decoder; `None` when it has no such pair (or a call fails).
pub(super) fn reconstruction_psnr(graph: &Graph, truth: &[RgbImage]) -> Option<f64> {
    let (enc, dec) = rgb_vae(graph)?;
    let mut total = 0.0;
    for frame in truth {
        let x = image_to_tensor(frame, Range::Signed).ok()?;
        let z = enc.run(&[x]).ok()?.into_iter().next()?;
        let y = dec.run(&[z]).ok()?.into_iter().next()?;
        total += psnr(frame, &tensor_to_image(&y, Range::Signed).ok()?.to_rgb8());
    }
    Some(total / truth.len().max(1) as f64)
}

/// The inverse-dynamics model at `path` (default: [`DEFAULT_IDM`] when it
/// is there; `None` when it is not), checked to be one.
pub(super) fn load_idm(
    backend: &dyn Backend,
    path: Option<&Path>,
) -> Result<Option<Arc<dyn Model>>, String> {
    let default = PathBuf::from(DEFAULT_IDM);
    let path = match path {
        Some(p) => p.to_path_buf(),
        None if default.is_file() => default,
        None => return Ok(None),
    };
    let loaded = backend
        .load(&path, &ModelOptions::default())
        .map_err(|e| e.to_string())?;
    if loaded.model.signature().meta("wgraph.role") != Some("idm") {
        return Err(format!(
            "{} is not an inverse-dynamics model (wgraph.role = idm)",
            path.display()
        ));
    }
    Ok(Some(loaded.model))
}

/// Fraction of ticks whose movement and camera keys the model reads back
/// exactly from (frame before, frame after).
pub(super) fn action_accuracy(
    idm: &dyn Model,
    start: &RgbImage,
    frames: &[RgbImage],
    actions: &[Actions],
) -> Result<f64, String> {
    let mut right = 0usize;
    for (t, frame) in frames.iter().enumerate() {
        let before = match t.checked_sub(1) {
            Some(p) => &frames[p],
            None => start,
        };
        let a = image_to_tensor(before, Range::Signed).map_err(|e| e.to_string())?;
        let b = image_to_tensor(frame, Range::Signed).map_err(|e| e.to_string())?;
        let logits = idm.run(&[a, b]).map_err(|e| e.to_string())?;
        let logits = logits
            .first()
            .ok_or("no output")?
            .host_f32()
            .map_err(|e| e.to_string())?
            .to_vec();
        let truth = actions.get(t).copied().unwrap_or_default().multi_hot();
        if logits.len() == truth.len()
            && logits.len() >= SCORED_KEYS
            && logits[..SCORED_KEYS]
                .iter()
                .zip(&truth[..SCORED_KEYS])
                .all(|(l, k)| (*l > 0.0) == (*k > 0.5))
        {
            right += 1;
        }
    }
    Ok(right as f64 / frames.len().max(1) as f64)
}
