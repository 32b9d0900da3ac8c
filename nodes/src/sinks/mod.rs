//! Sinks: where a world's tensors leave it — numbered PNG and `.npy` files,
//! one animated GIF, a YUV4MPEG2 stream, and the `display` a user watches.
//!
//! | file | kinds |
//! |---|---|
//! | `png.rs` | `png` — a numbered PNG per tick |
//! | `npy_dump.rs` | `npy_dump` — a numbered `.npy` per tick |
//! | `gif.rs` | `gif` — one looping animated GIF |
//! | `y4m.rs` | `y4m` — a raw YUV4MPEG2 stream (file or stdout) |
//! | `display.rs` | `display` — the frames a user watches, written where the run's outputs say |
//!
//! **The shared skeleton.** A sink is its [`Sink`] implementation — how it
//! opens its output, writes one tick's tensor and finishes — and
//! [`SinkNode`] is the rest, the same for every sink: one wired input, no
//! outputs, the per-run state (opened when the run starts, so building
//! creates nothing), hot reload ([`carry_stream`]: a sink writing one file
//! keeps writing it), and [`file_sink`], which swaps a graph's file sink for
//! one that writes nothing in a live world started without `--out`. The two
//! kinds of output have a helper each: [`TickFiles`] for a numbered file per
//! tick (written whole, never through a link, `--keep-last`), and
//! [`create_stream_file`] for the one file a stream sink writes.

pub mod display;
pub mod gif;
pub mod npy_dump;
pub mod png;
pub mod y4m;

use crate::common::*;
use std::fs::File;
use std::num::NonZeroU64;

/// What one sink does that the others do not: open its output when a run
/// starts, write each tick's tensor, finish. The node around it is
/// [`SinkNode`].
pub(crate) trait Sink: Send + Sync + 'static {
    /// What a run holds open: a file and its encoder, or `()` for a sink
    /// that writes each tick's file whole.
    type Open: Send + 'static;

    /// The name of the one input.
    const INPUT: &'static str = "image";

    /// The build-time check of the input: an image, unless the sink says
    /// otherwise.
    fn check(&self, inputs: &[Option<ValueType>]) -> Result<(), TypeError> {
        image_in(inputs, 0).map(drop)
    }

    /// Opens the output when a run starts.
    fn open(&self) -> Result<Self::Open, NodeError>;

    /// Writes tick `tick`'s tensor.
    fn write(&self, open: &mut Self::Open, tensor: &Tensor, tick: u64) -> Result<(), NodeError>;

    /// Finishes the output after the last tick (also after a failed run).
    fn close(&self, open: Self::Open) -> Result<(), NodeError> {
        drop(open);
        Ok(())
    }

    /// A sink writing one file (a stream): that file, which a hot reload
    /// keeps writing ([`carry_stream`]). `None` for a sink writing a file
    /// per tick, which hot reload treats like any node.
    fn stream(&self) -> Option<&Path> {
        None
    }

    /// Whether an open stream holds frames yet (the first fixed its size).
    fn started(_open: &Self::Open) -> bool {
        false
    }
}

/// A [`Sink`] as a graph node.
pub(crate) struct SinkNode<S>(pub(crate) S);

/// A sink's state during a run: its open output (`None` once finished) and
/// the file a stream writes (for hot reload).
struct Running<O> {
    open: Option<O>,
    stream: Option<PathBuf>,
}

impl<S: Sink> Node for SinkNode<S> {
    fn inputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::wired(S::INPUT)]
    }
    fn outputs(&self) -> Vec<PortSpec> {
        Vec::new()
    }
    fn infer(
        &self,
        inputs: &[Option<ValueType>],
        _: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        self.0.check(inputs)?;
        Ok(Vec::new())
    }
    fn init_state(&self) -> Result<State, NodeError> {
        Ok(Box::new(Running {
            open: Some(self.0.open()?),
            stream: self.0.stream().map(Path::to_path_buf),
        }))
    }
    fn carry(&self, old: &State, cx: &CarryContext) -> Carry {
        let Some(path) = self.0.stream() else {
            // Files per tick: what any node does (see `Node::carry`).
            return if cx.unchanged() {
                Carry::Keep
            } else {
                Carry::Fresh
            };
        };
        let old = old.downcast_ref::<Running<S::Open>>().and_then(|r| {
            let open = r.open.as_ref()?;
            Some((r.stream.as_deref()?, S::started(open)))
        });
        carry_stream(old, path, cx)
    }
    fn eval(
        &self,
        state: &mut State,
        inputs: &[Option<Value>],
        cx: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        let open = state_mut::<Running<S::Open>>(state)?
            .open
            .as_mut()
            .ok_or_else(|| NodeError::new("internal: the sink already finished"))?;
        self.0.write(open, tensor_arg(inputs, 0)?, cx.tick)?;
        Ok(Vec::new())
    }
    fn finish(&self, state: &mut State) -> Result<(), NodeError> {
        match state_mut::<Running<S::Open>>(state)?.open.take() {
            Some(open) => self.0.close(open),
            None => Ok(()),
        }
    }
}

/// The error of a failed write to `path`, naming it.
pub(crate) fn write_error(path: &Path, e: impl std::fmt::Display) -> NodeError {
    NodeError::new(format!("cannot write `{}`: {e}", path.display()))
}

/// Numbered files, one per tick — `<dir>/<prefix>_<tick:05>.<ext>` — each
/// written whole under the output directory (never through a link:
/// [`wgraph_engine::output::write_confined`]), keeping only the newest
/// `--keep-last N`.
pub(crate) struct TickFiles {
    pub(crate) dir: PathBuf,
    pub(crate) prefix: String,
    /// The extension, without the dot.
    pub(crate) ext: &'static str,
    /// `--keep-last N`: only the newest N files are kept.
    pub(crate) keep_last: Option<NonZeroU64>,
}

impl TickFiles {
    /// The file of tick `tick`.
    pub(crate) fn path(&self, tick: u64) -> PathBuf {
        self.dir
            .join(format!("{}_{:05}.{}", self.prefix, tick, self.ext))
    }

    /// Creates the directory when a run starts.
    pub(crate) fn create(&self) -> Result<(), NodeError> {
        create_dir(&self.dir)
    }

    /// Writes tick `tick`'s file with the bytes `encode` makes (given the
    /// path, to name it in an error), then applies `--keep-last`.
    pub(crate) fn write(
        &self,
        tick: u64,
        encode: impl FnOnce(&Path) -> Result<Vec<u8>, NodeError>,
    ) -> Result<(), NodeError> {
        let path = self.path(tick);
        let bytes = encode(&path)?;
        wgraph_engine::output::write_confined(&path, &bytes)
            .map_err(|e| write_error(&path, io_message(&e)))?;
        keep_last(self.keep_last, tick, |t| self.path(t))
    }
}

/// Creates the one file a stream sink writes, when the run starts: its
/// folder, then the file — never through a link when the graph named it
/// (`confined`: a link at `path` is replaced, not followed), as given when
/// it is the user's own (`--out x.gif`).
pub(crate) fn create_stream_file(path: &Path, confined: bool) -> Result<File, NodeError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir(parent)?;
    }
    if confined {
        wgraph_engine::output::create_confined(path)
    } else {
        File::create(path)
    }
    .map_err(|e| write_error(path, io_message(&e)))
}

/// Hot reload of a sink writing one file (GIF, y4m): keep writing it when the
/// new node writes the same file with frames of the same type; another
/// file starts fresh; a new frame size in the same file is refused (the
/// file's format fixes it).
fn carry_stream(old: Option<(&Path, bool)>, path: &Path, cx: &CarryContext) -> Carry {
    match old {
        Some((old_path, _)) if old_path != path => Carry::Fresh,
        Some((_, started)) if cx.inputs_changed && started => Carry::Refuse(format!(
            "the frame size changed, but `{}` already holds frames of the old size \
             (write to another file, or restart the run)",
            path.display()
        )),
        Some(_) => Carry::Keep,
        None => Carry::Fresh,
    }
}

/// Creates a directory for a sink when a run starts.
fn create_dir(dir: &Path) -> Result<(), NodeError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        NodeError::new(format!(
            "cannot create `{}`: {}",
            dir.display(),
            io_message(&e)
        ))
    })
}

/// A graph's file sink as the run's outputs say: the sink's node, or — in
/// a live world started without `--out`
/// ([`OutputConfig::write_sinks`](wgraph_engine::node::OutputConfig::write_sinks)
/// false) — a node typed like it that writes nothing.
pub(crate) fn file_sink(cx: &BuildContext<'_>, sink: impl Sink) -> Box<dyn Node> {
    let node = Box::new(SinkNode(sink));
    if cx.output.write_sinks {
        node
    } else {
        Box::new(Skipped(node))
    }
}

/// A file sink that writes nothing: its ports and build-time checks are the
/// sink's; it opens no file and does nothing per tick.
struct Skipped(Box<dyn Node>);

impl Node for Skipped {
    fn inputs(&self) -> Vec<PortSpec> {
        self.0.inputs()
    }
    fn outputs(&self) -> Vec<PortSpec> {
        self.0.outputs()
    }
    fn infer(
        &self,
        inputs: &[Option<ValueType>],
        calls: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        self.0.infer(inputs, calls)
    }
    fn eval(
        &self,
        _: &mut State,
        _: &[Option<Value>],
        _: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        Ok(Vec::new())
    }
}

/// `--keep-last N` for a sink writing one numbered file per tick: once the
/// file of `tick` is written, the file of tick `tick − N` (`path_of`) is
/// removed, so at most N of the sink's files exist. Consecutive ticks make
/// it a ring that survives hot reloads and restored snapshots (it needs no
/// state); a file already gone is fine.
fn keep_last(
    keep: Option<NonZeroU64>,
    tick: u64,
    path_of: impl Fn(u64) -> PathBuf,
) -> Result<(), NodeError> {
    let Some(old) = keep.and_then(|n| tick.checked_sub(n.get())) else {
        return Ok(());
    };
    let path = path_of(old);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(NodeError::new(format!(
            "cannot remove `{}` (--keep-last): {}",
            path.display(),
            io_message(&e)
        ))),
    }
}
