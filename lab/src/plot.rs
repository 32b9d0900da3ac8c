//! Writing wgraph's plots: an SVG the program draws, saved as is (`.svg`) or
//! rasterised to PNG (`.png`) by resvg with DejaVu Sans embedded (the
//! `dejavu` crate), so a PNG plot has its labels on a machine without fonts.
//!
//! Main items: [`save`] (a plot, by its file name's [`Format`]),
//! [`save_image`] (a picture), [`check_name`] (a plot's name, checked before
//! any work), [`svg_to_png`]; every failure is a [`PlotError`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a plot or a picture was not written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlotError {
    /// A plot's file name whose extension is neither `.png` nor `.svg`.
    #[error("cannot write a plot to {}: use a .png or .svg file name", .0.display())]
    Name(PathBuf),
    /// The SVG wgraph drew did not parse (a bug).
    #[error("internal plot is not valid SVG: {0}")]
    Svg(String),
    /// The SVG has no area to rasterise.
    #[error("plot size {width}x{height} is empty")]
    Empty {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// PNG encoding failed.
    #[error("cannot encode the plot as PNG: {0}")]
    Encode(String),
    /// A plot could not be written to `path`.
    #[error("cannot write {}: {message}", path.display())]
    Write {
        /// The plot's file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A picture could not be encoded, drawn or written (the message says which).
    #[error("{0}")]
    Image(String),
}

/// Saves `svg` to `path`: `.svg` as text, `.png` rasterised; any other
/// extension is an error naming the ones that work.
pub fn save(path: &Path, svg: &str) -> Result<(), PlotError> {
    let bytes = match check_name(path)? {
        Format::Svg => svg.as_bytes().to_vec(),
        Format::Png => svg_to_png(svg)?,
    };
    wgraph_engine::output::write_file(path, &bytes).map_err(|e| PlotError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Saves an image in the format its extension names, whole or not at all
/// ([`wgraph_engine::output::write_file`]).
pub fn save_image(img: &image::RgbImage, path: &Path) -> Result<(), PlotError> {
    let image_error = |e: &dyn std::fmt::Display| PlotError::Image(e.to_string());
    let format = image::ImageFormat::from_path(path).map_err(|e| image_error(&e))?;
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, format)
        .map_err(|e| image_error(&e))?;
    wgraph_engine::output::write_file(path, bytes.get_ref()).map_err(|e| image_error(&e))
}

/// The formats a plot can be saved in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The SVG text as drawn.
    Svg,
    /// Rasterised at the SVG's own size.
    Png,
}

/// The format `path`'s extension asks for, or an error naming the ones that
/// work (checked before any work is done).
pub fn check_name(path: &Path) -> Result<Format, PlotError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("svg") => Ok(Format::Svg),
        Some("png") => Ok(Format::Png),
        _ => Err(PlotError::Name(path.to_path_buf())),
    }
}

/// Rasterises `svg` at its own size (1 SVG unit = 1 pixel) to PNG bytes.
pub fn svg_to_png(svg: &str) -> Result<Vec<u8>, PlotError> {
    let mut fonts = resvg::usvg::fontdb::Database::new();
    fonts.load_font_data(dejavu::sans::regular().to_vec());
    fonts.set_sans_serif_family("DejaVu Sans");
    let options = resvg::usvg::Options {
        font_family: "DejaVu Sans".into(),
        fontdb: Arc::new(fonts),
        ..Default::default()
    };
    let tree =
        resvg::usvg::Tree::from_str(svg, &options).map_err(|e| PlotError::Svg(e.to_string()))?;
    let size = tree.size().to_int_size();
    let mut pixmap =
        resvg::tiny_skia::Pixmap::new(size.width(), size.height()).ok_or(PlotError::Empty {
            width: size.width(),
            height: size.height(),
        })?;
    pixmap.fill(resvg::tiny_skia::Color::WHITE);
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::default(),
        &mut pixmap.as_mut(),
    );
    pixmap
        .encode_png()
        .map_err(|e| PlotError::Encode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text is drawn with the embedded font: a label's pixels are dark.
    #[test]
    fn labels_are_rendered_with_the_embedded_font() {
        let blank = r#"<svg xmlns="http://www.w3.org/2000/svg" width="80" height="30"></svg>"#;
        let text = r#"<svg xmlns="http://www.w3.org/2000/svg" width="80" height="30" font-family="sans-serif" font-size="20"><text x="2" y="22">PSNR</text></svg>"#;
        let dark = |png: Vec<u8>| {
            let img = image::load_from_memory(&png).unwrap().to_rgb8();
            img.pixels().filter(|p| p.0[0] < 128).count()
        };
        assert_eq!(dark(svg_to_png(blank).unwrap()), 0);
        assert!(dark(svg_to_png(text).unwrap()) > 50);
    }

    #[test]
    fn unknown_extensions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = save(&dir.path().join("plot.jpg"), "<svg/>")
            .unwrap_err()
            .to_string();
        assert!(e.contains("use a .png or .svg file name"), "{e}");
        assert!(!dir.path().join("plot.jpg").exists());
    }
}
