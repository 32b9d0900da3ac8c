//! Memory: kinds whose state is the world's long-term memory of past
//! latents (not a cache), compressed so the context stays a fixed size
//! however long the run. Both keep their history across hot reloads unless
//! the latent's shape changed, and save it in snapshots.
//!
//! | file | kinds |
//! |---|---|
//! | `framepack.rs` | `framepack` — Yume's FramePack-like memory |
//! | `tscm.rs` | `tscm` — Yume 1.5's temporal-spatial compressed memory |
//!
//! Shared here: the latent shape check, its snapshot form and the hot
//! reload rule.

pub mod framepack;
pub mod tscm;

use crate::common::*;

/// The `(C, H, W)` of a memory node's f32[1, C, H, W] latent, with H and W
/// multiples of `multiple`, and the same on every tick: `seen` holds the
/// first tick's dims (a memory of mixed shapes cannot be pooled together).
pub(crate) fn memory_latent_dims(
    latent: &Tensor,
    multiple: usize,
    seen: &mut Option<(usize, usize, usize)>,
) -> Result<(usize, usize, usize), NodeError> {
    let dims = match *latent.shape() {
        [1, c, h, w] if h % multiple == 0 && w % multiple == 0 && h > 0 && w > 0 => (c, h, w),
        _ => {
            return Err(NodeError::new(format!(
                "expected an f32[1, C, H, W] latent with H and W multiples of {multiple}, found {}",
                latent.tensor_type()
            )));
        }
    };
    if let Some((c, h, w)) = seen.filter(|s| *s != dims) {
        return Err(NodeError::new(format!(
            "`latent` is {} but was f32[1, {c}, {h}, {w}] on earlier ticks",
            latent.tensor_type()
        )));
    }
    *seen = Some(dims);
    Ok(dims)
}

/// Snapshots of a memory node: the latent shape `(C, H, W)` it holds, if any.
pub(crate) fn save_shape(saved: &mut SavedState, shape: Option<(usize, usize, usize)>) {
    if let Some((c, h, w)) = shape {
        saved.put_ints("shape", &[c as i64, h as i64, w as i64]);
    }
}

/// The inverse of [`save_shape`]; every latent must have `C·H·W` elements.
pub(crate) fn load_shape(
    saved: &SavedState,
    latents: &[&[f32]],
) -> Result<Option<(usize, usize, usize)>, NodeError> {
    if !saved.has("shape") {
        return Ok(None);
    }
    let dims: Vec<usize> = saved
        .ints("shape")?
        .into_iter()
        .map(|d| usize::try_from(d).unwrap_or(0))
        .collect();
    let [c, h, w] = dims[..] else {
        return Err(NodeError::new("the snapshot's latent shape is malformed"));
    };
    if let Some(l) = latents.iter().find(|l| l.len() != c * h * w) {
        return Err(NodeError::new(format!(
            "the snapshot holds a latent of {} values where [{c}, {h}, {w}] needs {}",
            l.len(),
            c * h * w
        )));
    }
    Ok(Some((c, h, w)))
}

/// Hot reload of a memory node (history of latents): keep the history unless
/// the latent arriving at it changed type.
pub(crate) fn carry_memory(held: usize, cx: &CarryContext) -> Carry {
    if cx.inputs_changed && held > 0 {
        Carry::Reset(format!(
            "its input latent changed shape; {held} remembered latent{} dropped",
            if held == 1 { "" } else { "s" }
        ))
    } else {
        Carry::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latent(shape: &[usize]) -> Tensor {
        Tensor::from_f32(shape, vec![0.0; shape.iter().product()]).unwrap()
    }

    #[test]
    fn a_memory_latent_keeps_its_first_shape() {
        let mut seen = None;
        assert_eq!(
            memory_latent_dims(&latent(&[1, 16, 4, 4]), 4, &mut seen).unwrap(),
            (16, 4, 4)
        );
        let e = memory_latent_dims(&latent(&[1, 16, 8, 8]), 4, &mut seen).unwrap_err();
        assert!(
            e.to_string()
                .contains("is f32[1, 16, 8, 8] but was f32[1, 16, 4, 4] on earlier ticks"),
            "{e}"
        );
        let e = memory_latent_dims(&latent(&[1, 16, 6, 4]), 4, &mut None).unwrap_err();
        assert!(e.to_string().contains("multiples of 4"), "{e}");
    }
}
