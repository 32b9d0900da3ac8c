//! Writing wgraph's plots: an SVG the program draws, saved as is (`.svg`) or
//! rasterised to PNG (`.png`) by resvg with DejaVu Sans embedded (the
//! `dejavu` crate), so a PNG plot has its labels on a machine without fonts.

use std::path::Path;
use std::sync::Arc;

/// Saves `svg` to `path`: `.svg` as text, `.png` rasterised; any other
/// extension is an error naming the ones that work.
pub fn save(path: &Path, svg: &str) -> Result<(), String> {
    let bytes = match check_name(path)? {
        Format::Svg => svg.as_bytes().to_vec(),
        Format::Png => svg_to_png(svg)?,
    };
    wgraph_engine::output::write_file(path, &bytes)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Saves an image in the format its extension names, whole or not at all
/// ([`wgraph_engine::output::write_file`]).
pub fn save_image(img: &image::RgbImage, path: &Path) -> Result<(), String> {
    let format = image::ImageFormat::from_path(path).map_err(|e| e.to_string())?;
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, format)
        .map_err(|e| e.to_string())?;
    wgraph_engine::output::write_file(path, bytes.get_ref()).map_err(|e| e.to_string())
}

/// The formats a plot can be saved in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Svg,
    Png,
}

/// The format `path`'s extension asks for, or an error naming the ones that
/// work (checked before any work is done).
pub fn check_name(path: &Path) -> Result<Format, String> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("svg") => Ok(Format::Svg),
        Some("png") => Ok(Format::Png),
        _ => Err(format!(
            "cannot write a plot to {}: use a .png or .svg file name",
            path.display()
        )),
    }
}

/// Rasterises `svg` at its own size (1 SVG unit = 1 pixel) to PNG bytes.
pub fn svg_to_png(svg: &str) -> Result<Vec<u8>, String> {
    let mut fonts = resvg::usvg::fontdb::Database::new();
    fonts.load_font_data(dejavu::sans::regular().to_vec());
    fonts.set_sans_serif_family("DejaVu Sans");
    let options = resvg::usvg::Options {
        font_family: "DejaVu Sans".into(),
        fontdb: Arc::new(fonts),
        ..Default::default()
    };
    let tree = resvg::usvg::Tree::from_str(svg, &options)
        .map_err(|e| format!("internal plot is not valid SVG: {e}"))?;
    let size = tree.size().to_int_size();
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| format!("plot size {}x{} is empty", size.width(), size.height()))?;
    pixmap.fill(resvg::tiny_skia::Color::WHITE);
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::default(),
        &mut pixmap.as_mut(),
    );
    pixmap
        .encode_png()
        .map_err(|e| format!("cannot encode the plot as PNG: {e}"))
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
        let e = save(&dir.path().join("plot.jpg"), "<svg/>").unwrap_err();
        assert!(e.contains("use a .png or .svg file name"), "{e}");
        assert!(!dir.path().join("plot.jpg").exists());
    }
}
