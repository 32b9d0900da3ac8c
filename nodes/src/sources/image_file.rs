//! `image`: a still image (PNG, JPEG, or a GIF's first frame) as an image tensor.

use crate::common::*;
use crate::image_io::{RANGE_PARAM, Range, image_to_tensor};
use image::imageops::FilterType;

/// The `image` kind.
pub struct ImageFile;

impl NodeKind for ImageFile {
    fn name(&self) -> &'static str {
        "image"
    }
    fn summary(&self) -> &'static str {
        "a PNG/JPEG/GIF file as an f32[1, 3, H, W] image, the same every tick"
    }
    fn params(&self) -> &'static [ParamSpec] {
        const PARAMS: &[ParamSpec] = &[
            ParamSpec::required("path", ParamType::Path, "the image file"),
            RANGE_PARAM,
            ParamSpec::optional(
                "resize",
                ParamType::Bool,
                ParamDefault::Bool(true),
                "resize to the world resolution",
            ),
        ];
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let path = cx.params.path("path")?;
        let bytes = read_source("path", &path, wgraph_engine::input::DATA)?;
        let mut img = image::load_from_memory(&bytes)
            .map_err(|e| {
                BuildError::param(
                    "path",
                    format!("`{}` is not a readable image: {e}", path.display()),
                )
            })?
            .to_rgb8();
        let (h, w) = (cx.settings.height, cx.settings.width);
        if cx.params.bool("resize")? && (img.height() as usize, img.width() as usize) != (h, w) {
            let too_big = || BuildError::new(format!("world resolution {h}x{w} is too large"));
            let (h, w) = (
                u32::try_from(h).map_err(|_| too_big())?,
                u32::try_from(w).map_err(|_| too_big())?,
            );
            img = image::imageops::resize(&img, w, h, FilterType::Triangle);
        }
        let image = image_to_tensor(&img, Range::from_params(cx)?)
            .map_err(|e| BuildError::param("path", e.message))?;
        Ok(Box::new(ImageNode { image }))
    }
}

struct ImageNode {
    image: Tensor,
}

impl Node for ImageNode {
    fn inputs(&self) -> Vec<PortSpec> {
        vec![]
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::output("image")]
    }
    fn infer(
        &self,
        _: &[Option<ValueType>],
        _: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        Ok(vec![ValueType::Tensor(self.image.tensor_type())])
    }
    fn eval(
        &self,
        _: &mut State,
        _: &[Option<Value>],
        _: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        Ok(vec![self.image.clone().into()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::*;
    use wgraph_engine::params::ParamValue as P;

    #[test]
    fn decodes_and_resizes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("red.png");
        image::RgbImage::from_pixel(8, 4, image::Rgb([255, 0, 0]))
            .save(&path)
            .unwrap();
        let node = build(
            &ImageFile,
            vec![("path", P::Path(path.clone()))],
            dir.path(),
        )
        .unwrap();
        let out = run(&*node, 1, |_| vec![]).unwrap();
        let px = f32s(&out[0].0, 0);
        assert_eq!(px.len(), 3 * 64 * 64);
        assert!(
            px[..64 * 64].iter().all(|&v| v == 1.0) && px[64 * 64..].iter().all(|&v| v == -1.0)
        );
        let params = vec![
            ("path", P::Path(path)),
            ("resize", P::Bool(false)),
            ("range", P::Choice("unit".into())),
        ];
        let node = build(&ImageFile, params, dir.path()).unwrap();
        let out = run(&*node, 1, |_| vec![]).unwrap();
        assert_eq!(out[0].0[0].as_tensor().unwrap().shape(), &[1, 3, 4, 8]);
        assert_eq!(f32s(&out[0].0, 0)[0], 1.0);

        let bad = dir.path().join("bad.png");
        std::fs::write(&bad, b"not an image").unwrap();
        let e = build(&ImageFile, vec![("path", P::Path(bad))], dir.path()).unwrap_err();
        assert!(
            e.message.contains("bad.png` is not a readable image"),
            "{}",
            e.message
        );
    }
}
