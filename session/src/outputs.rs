//! What a run may write: the [`OutputConfig`] of a batch run ([`run`]) and
//! of a live world ([`front_end`]), and the note that a live world's file
//! sinks are skipped ([`skipped_note`]).
//!
//! A batch run (`run` without `--watch`, `replay`) writes under `--out`
//! (default `out`), as README documents. A live world (`serve`, `play`,
//! `run --watch`) runs until stopped, so a per-tick sink would fill the disk
//! without being asked: it writes files only when `--out` is given — the
//! graph's file sinks ([`wgraph_nodes::FILE_SINKS`]) and, for `run --watch`,
//! the displayed frames are skipped otherwise — and `--keep-last N` bounds
//! each per-tick sink to its newest N files.

use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use wgraph_engine::graph::Graph;
use wgraph_engine::node::{DisplayTarget, OutputConfig, UnknownOutput};

/// The output directory when `--out` is not given.
const DEFAULT_OUT: &str = "out";

/// The outputs of a front end's live world (`serve`, `play`): the frames go
/// to the browser or the terminal; the graph's file sinks write under
/// `out` when it is given, and nowhere otherwise.
pub fn front_end(out: Option<&Path>, keep_last: Option<u64>) -> OutputConfig {
    OutputConfig {
        dir: out.map_or_else(|| PathBuf::from(DEFAULT_OUT), Path::to_path_buf),
        display: DisplayTarget::Discard,
        write_sinks: out.is_some(),
        keep_last: keep_last.and_then(NonZeroU64::new),
    }
}

/// The outputs of `wgraph run`: `--out` as given (a directory, a GIF, a
/// y4m stream), else `out/` — except a live run (`--watch`) without
/// `--out`, which writes nothing.
pub fn run(
    out: Option<&Path>,
    live: bool,
    keep_last: Option<u64>,
) -> Result<OutputConfig, UnknownOutput> {
    let keep_last = keep_last.and_then(NonZeroU64::new);
    match out {
        None if live => Ok(OutputConfig {
            dir: PathBuf::from(DEFAULT_OUT),
            display: DisplayTarget::Discard,
            write_sinks: false,
            keep_last,
        }),
        _ => Ok(OutputConfig {
            keep_last,
            ..OutputConfig::for_path(out.unwrap_or(Path::new(DEFAULT_OUT)))?
        }),
    }
}

/// The note, to say once, of what a live world without `--out` does not
/// write (`label` names the world): `None` when it writes everything or has
/// nothing to write.
pub fn skipped_note(
    label: &str,
    graph: &Graph,
    output: &OutputConfig,
    frames_skipped: bool,
) -> Option<String> {
    if output.write_sinks {
        return None;
    }
    let sinks: Vec<String> = graph
        .nodes
        .iter()
        .filter(|n| wgraph_nodes::FILE_SINKS.contains(&n.kind))
        .map(|n| format!("`{}` ({})", n.name, n.kind))
        .collect();
    let frames_skipped = frames_skipped && graph.nodes.iter().any(|n| n.node.displays().is_some());
    let skipped = match (frames_skipped, sinks.is_empty()) {
        (false, true) => return None,
        (true, true) => "the displayed frames".to_string(),
        (false, false) => format!("the file sinks {}", sinks.join(", ")),
        (true, false) => format!(
            "the displayed frames and the file sinks {}",
            sinks.join(", ")
        ),
    };
    Some(format!(
        "note: {label}: a live world writes files only under --out: {skipped} are skipped \
         (--out DIR writes them; --keep-last N keeps each one's newest N files)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_world_writes_only_under_an_explicit_out() {
        let live = run(None, true, None).unwrap();
        assert!(!live.write_sinks);
        assert_eq!(live.display, DisplayTarget::Discard);
        let batch = run(None, false, Some(3)).unwrap();
        assert!(batch.write_sinks);
        assert_eq!(batch.display, DisplayTarget::PngDir(PathBuf::from("out")));
        assert_eq!(batch.keep_last, NonZeroU64::new(3));
        let gif = run(Some(Path::new("w.gif")), true, None).unwrap();
        assert!(gif.write_sinks);
        assert_eq!(gif.display, DisplayTarget::Gif(PathBuf::from("w.gif")));
        assert!(run(Some(Path::new("x.mp4")), true, None).is_err());
        assert!(!front_end(None, None).write_sinks);
        let served = front_end(Some(Path::new("o")), Some(2));
        assert!(served.write_sinks);
        assert_eq!(served.dir, PathBuf::from("o"));
        assert_eq!(served.keep_last, NonZeroU64::new(2));
    }
}
