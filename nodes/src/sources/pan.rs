//! `pan`: a toy camera that scrolls an image with the keys, so a world
//! visibly responds to input without any model.

use crate::common::*;

/// The `pan` kind.
pub struct Pan;

impl NodeKind for Pan {
    fn name(&self) -> &'static str {
        "pan"
    }
    fn summary(&self) -> &'static str {
        "scrolls (wrapping) an image by an offset that Left/Right/Up/Down or A/D/W/S move"
    }
    fn params(&self) -> &'static [ParamSpec] {
        const PARAMS: &[ParamSpec] = &[ParamSpec::optional(
            "speed",
            ParamType::Int,
            ParamDefault::Int(2),
            "pixels moved per tick a key is held",
        )];
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let speed = cx.params.int("speed")?;
        if speed.unsigned_abs() > 1 << 20 {
            return Err(BuildError::param(
                "speed",
                "`speed` must be within ±1048576 pixels",
            ));
        }
        Ok(Box::new(PanNode { speed }))
    }
}

struct PanNode {
    speed: i64,
}

/// The camera offset (x, y) in pixels.
#[derive(Default)]
struct Offset(i64, i64);

impl Node for PanNode {
    fn inputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::wired("image"), PortSpec::wired("actions")]
    }
    fn input_type(&self, port: usize) -> Option<String> {
        Some(match port {
            0 => "an f32[1, 3, H, W] image in [-1, 1]".to_string(),
            _ => ValueType::Actions.to_string(),
        })
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::output("image")]
    }
    fn infer(
        &self,
        inputs: &[Option<ValueType>],
        _: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        let image = image_in(inputs, 0)?.clone();
        actions_in(inputs, 1)?;
        Ok(vec![ValueType::Tensor(image)])
    }
    fn init_state(&self) -> Result<State, NodeError> {
        Ok(Box::new(Offset::default()))
    }
    fn carry(&self, _: &State, _: &CarryContext) -> Carry {
        // The offset is where the player has scrolled to: it outlives any edit.
        Carry::Keep
    }
    fn save_state(&self, state: &State) -> Result<Option<SavedState>, NodeError> {
        let off = state
            .downcast_ref::<Offset>()
            .ok_or_else(|| NodeError::new("internal: node state has an unexpected type"))?;
        let mut saved = SavedState::new();
        saved.put_ints("offset", &[off.0, off.1]);
        Ok(Some(saved))
    }
    fn load_state(&self, saved: &SavedState) -> Result<State, NodeError> {
        match saved.ints("offset")?[..] {
            [x, y] => Ok(Box::new(Offset(x, y))),
            _ => Err(NodeError::new("the snapshot's `offset` is malformed")),
        }
    }
    fn eval(
        &self,
        state: &mut State,
        inputs: &[Option<Value>],
        _: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        let (img, keys) = (tensor_arg(inputs, 0)?, actions_arg(inputs, 1)?);
        let [1, c, h, w] = *img.shape() else {
            return Err(NodeError::new(format!(
                "expected an f32[1, C, H, W] image, found {}",
                img.tensor_type()
            )));
        };
        if h * w == 0 {
            return Ok(vec![img.clone().into()]);
        }
        let held = |ks: [Key; 2]| i64::from(ks.iter().any(|&k| keys.contains(k)));
        let off = state_mut::<Offset>(state)?;
        let dx = held([Key::Right, Key::D]) - held([Key::Left, Key::A]);
        let dy = held([Key::Down, Key::S]) - held([Key::Up, Key::W]);
        let (h64, w64) = (h as i64, w as i64);
        // Kept reduced, so it never overflows however long the run.
        off.0 = (off.0 + dx * self.speed).rem_euclid(w64);
        off.1 = (off.1 + dy * self.speed).rem_euclid(h64);
        let (ox, oy) = (off.0 as usize, off.1 as usize);
        let data = img.host_f32()?;
        let mut out = vec![0.0f32; data.len()];
        for (src, dst) in data.chunks_exact(h * w).zip(out.chunks_exact_mut(h * w)) {
            for y in 0..h {
                let row = &src[((y + h - oy) % h) * w..][..w];
                let drow = &mut dst[y * w..][..w];
                drow[ox..].copy_from_slice(&row[..w - ox]);
                drow[..ox].copy_from_slice(&row[w - ox..]);
            }
        }
        f32_out(&[1, c, h, w], out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::*;
    use wgraph_engine::params::ParamValue as P;

    #[test]
    fn keys_scroll_the_image() {
        let dir = tempfile::tempdir().unwrap();
        let node = build(&Pan, vec![("speed", P::Int(1))], dir.path()).unwrap();
        // A 1x1x3x4 image with a single bright pixel at (x=0, y=0).
        let mut px = vec![0.0; 12];
        px[0] = 1.0;
        let img = t32(&[1, 1, 3, 4], px);
        let none = Actions::none();
        let script = [
            none.with(Key::D),
            none.with(Key::Right),
            none.with(Key::Down),
            none.with(Key::A).with(Key::W),
            none,
        ];
        let out = run(&*node, 5, |t| {
            vec![img.clone(), Value::Actions(script[t as usize])]
        })
        .unwrap();
        let bright: Vec<usize> = out
            .iter()
            .map(|(o, _)| f32s(o, 0).iter().position(|&v| v == 1.0).unwrap())
            .collect();
        // (x, y): (1, 0), (2, 0), (2, 1), (1, 0), (1, 0)
        assert_eq!(bright, [1, 2, 4 + 2, 1, 1]);
        let left = run(&*node, 1, |_| {
            vec![img.clone(), Value::Actions(none.with(Key::Left))]
        })
        .unwrap();
        assert_eq!(f32s(&left[0].0, 0)[3], 1.0, "wraps around");
        let e = infer(
            &*node,
            &[ValueType::tensor(DType::F32, &[2, 3]), ValueType::Actions],
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "expected f32[1, 3, H, W] image (or 1 channel), found f32[2, 3]"
        );
    }
}
