//! The node traits: a kind's metadata, a configured node's type check, its
//! per-tick evaluation, and its state — each a separate concern.
//!
//! - [`NodeKind`] is a row of the [registry](crate::registry): the name used
//!   in graph files, a summary, the parameter table, and `build`, which turns
//!   checked parameters into a configured [`Node`]. `build` may open files
//!   (an image, a `.npy` header, a model) — that is the filesystem phase,
//!   kept apart from the static parameter check.
//! - [`Node`] is immutable configuration. [`Node::inputs`] / [`Node::outputs`]
//!   name the ports; [`Node::infer`] checks input types and computes output
//!   types when the graph is built, so bad wiring fails before anything runs;
//!   [`Node::eval`] runs one tick.
//! - [`State`] is what a node carries from tick to tick (an RNG position, an
//!   open GIF encoder, later a KV cache). It is created by
//!   [`Node::init_state`] and owned by the scheduler, not by the node, so a
//!   hot reload can keep a node's state while replacing its configuration.
//!
//! A node may *call* another node (a sampler calls its denoiser many times
//! per tick). The caller declares its [`CallSpec`]s; the callee marks the
//! inputs its caller supplies with [`PortRole::Call`]; everything else the
//! callee needs is wired in the graph as usual and handed over by the engine.

use crate::model::{Model, ModelTable};
use crate::params::{ParamAccessError, ParamSpec, Params};
use crate::settings::Settings;
use crate::snapshot::SavedState;
use crate::tensor::TensorError;
use crate::types::ValueType;
use crate::value::{Actions, Value};
use std::any::Any;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Who supplies an input port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortRole {
    /// Fed by an edge of the graph.
    Wired,
    /// Fed by an edge, but may be left unconnected.
    Optional,
    /// Supplied by the node that calls this one (see [`CallSpec`]).
    Call,
}

/// A named port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub name: String,
    pub role: PortRole,
}

impl PortSpec {
    pub fn wired(name: impl Into<String>) -> Self {
        PortSpec {
            name: name.into(),
            role: PortRole::Wired,
        }
    }
    pub fn optional(name: impl Into<String>) -> Self {
        PortSpec {
            name: name.into(),
            role: PortRole::Optional,
        }
    }
    pub fn call(name: impl Into<String>) -> Self {
        PortSpec {
            name: name.into(),
            role: PortRole::Call,
        }
    }
    /// An output port.
    pub fn output(name: impl Into<String>) -> Self {
        PortSpec::wired(name)
    }
}

/// A callable this node uses: the parameter that names the callee (`denoiser
/// = @dit`) and the inputs the caller supplies, in the order
/// [`TickContext::call`] passes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSpec {
    pub param: String,
    pub args: Vec<String>,
}

/// Per-tick state of a node. `Box<()>` for stateless nodes.
pub type State = Box<dyn Any + Send>;

/// Downcasts a node's state; a mismatch is an engine bug, reported as an error.
pub fn state_mut<T: 'static>(state: &mut State) -> Result<&mut T, NodeError> {
    state
        .downcast_mut::<T>()
        .ok_or_else(|| NodeError::new("internal: node state has an unexpected type"))
}

/// A failure while running a node.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct NodeError {
    pub message: String,
}

impl NodeError {
    pub fn new(message: impl Into<String>) -> Self {
        NodeError {
            message: message.into(),
        }
    }
}

impl From<TensorError> for NodeError {
    fn from(e: TensorError) -> Self {
        NodeError::new(e.to_string())
    }
}

/// A failure while building a node from its parameters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct BuildError {
    /// The parameter at fault, if any: the error points at its value.
    pub param: Option<String>,
    /// The element of a list parameter at fault (`blocks = [a, b]`): the
    /// error points at that element.
    pub item: Option<usize>,
    pub message: String,
    /// The consequence of an error reported elsewhere (a model that did not
    /// load): the node fails without a second error.
    pub consequence: bool,
}

impl BuildError {
    pub fn new(message: impl Into<String>) -> Self {
        BuildError {
            param: None,
            item: None,
            message: message.into(),
            consequence: false,
        }
    }
    /// An error located at the value of parameter `param`.
    pub fn param(param: &str, message: impl Into<String>) -> Self {
        BuildError {
            param: Some(param.to_string()),
            item: None,
            message: message.into(),
            consequence: false,
        }
    }
    /// An error located at element `index` of list parameter `param`.
    pub fn item(param: &str, index: usize, message: impl Into<String>) -> Self {
        BuildError {
            item: Some(index),
            ..BuildError::param(param, message)
        }
    }
}

impl From<ParamAccessError> for BuildError {
    fn from(e: ParamAccessError) -> Self {
        BuildError::param(&e.0, format!("internal: {e}"))
    }
}

/// A type error found by [`Node::infer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeError {
    /// Index of the input port at fault (into [`Node::inputs`]), if one is.
    pub input: Option<usize>,
    pub message: String,
    /// A consequence of an error already reported elsewhere (e.g. a node
    /// feeding a callee failed): not reported again.
    pub consequence: bool,
}

impl TypeError {
    /// An error about input `input`.
    pub fn input(input: usize, message: impl Into<String>) -> Self {
        TypeError {
            input: Some(input),
            message: message.into(),
            consequence: false,
        }
    }
    /// An error about the node as a whole.
    pub fn node(message: impl Into<String>) -> Self {
        TypeError {
            input: None,
            message: message.into(),
            consequence: false,
        }
    }
    /// A consequence of an error reported elsewhere (see [`TypeError::consequence`]).
    pub fn consequence_of(message: impl Into<String>) -> Self {
        TypeError {
            consequence: true,
            ..TypeError::node(message)
        }
    }
}

/// A model with the name of its `model` declaration.
pub type NamedModel = (String, Arc<dyn Model>);

/// What a kind's `build` gets.
pub struct BuildContext<'a> {
    /// The node's name in the graph.
    pub name: &'a str,
    pub params: &'a Params,
    pub settings: &'a Settings,
    /// Directory of the file that declares the node.
    pub base_dir: &'a Path,
    /// Where this run's outputs go.
    pub output: &'a OutputConfig,
    /// The graph's loaded models, by declared name.
    pub models: &'a ModelTable,
}

impl BuildContext<'_> {
    /// The model named by parameter `param` (declared `ParamType::ModelRef`).
    pub fn model(&self, param: &str) -> Result<Arc<dyn Model>, BuildError> {
        let name = self.params.model_ref(param)?;
        self.models.get(&name).cloned().ok_or_else(|| BuildError {
            consequence: true,
            ..BuildError::param(
                param,
                format!("model `{name}` could not be loaded (see the error at its declaration)"),
            )
        })
    }

    /// Where a sink's path parameter `param` (declared
    /// [`ParamType::OutPath`](crate::params::ParamType::OutPath)) points:
    /// inside the run's output directory. The checker refused any other
    /// value already; this checks again for nodes built without it.
    pub fn output_path(&self, param: &str) -> Result<PathBuf, BuildError> {
        let rel = self.params.string(param)?;
        crate::output::check_relative(Path::new(&rel)).map_err(|why| {
            BuildError::param(
                param,
                format!("`{param}` must stay inside the run's output directory, but `{rel}` {why}"),
            )
        })?;
        Ok(self.output.dir.join(rel))
    }

    /// A sink's file name part `param` (declared
    /// [`ParamType::FileName`](crate::params::ParamType::FileName)), checked
    /// again to name no directory.
    pub fn file_name_part(&self, param: &str) -> Result<String, BuildError> {
        let part = self.params.string(param)?;
        crate::output::check_name_part(&part).map_err(|c| {
            BuildError::param(
                param,
                format!("`{param}` is part of a file name and may not contain {c:?}"),
            )
        })?;
        Ok(part)
    }

    /// The models named by list parameter `param` (declared
    /// `ParamType::ModelRefList`), with their names, in order.
    pub fn model_list(&self, param: &str) -> Result<Vec<NamedModel>, BuildError> {
        let names = self.params.model_ref_list(param)?;
        names
            .into_iter()
            .enumerate()
            .map(|(i, name)| match self.models.get(&name) {
                Some(m) => Ok((name, Arc::clone(m))),
                None => Err(BuildError {
                    consequence: true,
                    ..BuildError::item(
                        param,
                        i,
                        format!(
                            "model `{name}` could not be loaded (see the error at its declaration)"
                        ),
                    )
                }),
            })
            .collect()
    }
}

/// Where a run writes: sinks resolve relative paths against `dir`; the
/// `display` sink writes the frames a user watches to `display`.
/// Building a node never creates files; sinks create them when a run starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputConfig {
    /// The output directory; every path a graph's sinks name is inside it
    /// ([`ParamType::OutPath`](crate::params::ParamType::OutPath)).
    pub dir: PathBuf,
    pub display: DisplayTarget,
    /// Whether the graph's file sinks (`png`, `gif`, `y4m`, `npy_dump`)
    /// write. False for a live world started without `--out`: they check
    /// their input as usual and write nothing.
    pub write_sinks: bool,
    /// Sinks that write a numbered file per tick (`png`, `npy_dump`, the
    /// display's PNG frames) keep only their newest N files, removing the
    /// file of tick `t − N` after writing tick `t` (`--keep-last N`).
    pub keep_last: Option<NonZeroU64>,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            dir: PathBuf::from("out"),
            display: DisplayTarget::PngDir(PathBuf::from("out")),
            write_sinks: true,
            keep_last: None,
        }
    }
}

impl OutputConfig {
    /// Outputs for `--out PATH`: a `.gif` path makes the display a GIF, a
    /// `.y4m` path (or `-`, standard output) a raw video stream (other sinks
    /// write next to it); a path without an extension, an existing
    /// directory or one ending in `/` is a directory of PNG frames. Any other
    /// extension (`x.mp4`) is an error naming the outputs wgraph writes,
    /// rather than a directory of PNGs the user did not ask for.
    pub fn for_path(path: &Path) -> Result<Self, UnknownOutput> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        let dir_like = path.as_os_str().to_string_lossy().ends_with('/') || path.is_dir();
        if let Some(ext) = ext
            .as_deref()
            .filter(|e| !dir_like && !["gif", "y4m"].contains(e))
        {
            return Err(UnknownOutput {
                path: path.display().to_string(),
                ext: ext.to_string(),
            });
        }
        let parent = || {
            path.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
        };
        Ok(match ext.as_deref() {
            _ if path.as_os_str() == "-" => OutputConfig {
                dir: PathBuf::from("."),
                display: DisplayTarget::Y4m(path.to_path_buf()),
                ..OutputConfig::default()
            },
            Some("gif") => OutputConfig {
                dir: parent(),
                display: DisplayTarget::Gif(path.to_path_buf()),
                ..OutputConfig::default()
            },
            Some("y4m") => OutputConfig {
                dir: parent(),
                display: DisplayTarget::Y4m(path.to_path_buf()),
                ..OutputConfig::default()
            },
            _ => OutputConfig {
                dir: path.to_path_buf(),
                display: DisplayTarget::PngDir(path.to_path_buf()),
                ..OutputConfig::default()
            },
        })
    }
}

/// `--out x.mp4`: an output wgraph does not write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{path}`: wgraph does not write .{ext} files; --out takes a directory (PNG frames), \
     a .gif file, a .y4m file, or - (y4m on standard output, e.g. `--out - | ffmpeg -i - out.{ext}`)"
)]
pub struct UnknownOutput {
    pub path: String,
    pub ext: String,
}

/// Where the `display` sink puts frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisplayTarget {
    /// `frame_00000.png`, `frame_00001.png`, ... in a directory.
    PngDir(PathBuf),
    /// One animated GIF.
    Gif(PathBuf),
    /// A raw YUV4MPEG2 stream (`-`: standard output), e.g. to pipe to ffmpeg.
    Y4m(PathBuf),
    /// Frames are checked (shape, finite values) and dropped: for benchmarks
    /// that measure the engine, not PNG compression.
    Discard,
}

/// A registered node kind: metadata and construction.
pub trait NodeKind: Send + Sync + 'static {
    /// The name written after `node x:` in graph files.
    fn name(&self) -> &'static str;
    /// One line for `wgraph kinds` and errors.
    fn summary(&self) -> &'static str;
    /// Parameters, checked statically before `build` runs.
    fn params(&self) -> &'static [ParamSpec];
    /// Builds a configured node. May read files named by parameters.
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError>;
}

/// The noise process a denoiser was trained on, for samplers that convert
/// between processes (a flow sampler running a VP model).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum NoiseProcess {
    /// Rectified flow: `x = (1 − σ)·x₀ + σ·ε`, the model called at t = 1000σ.
    Flow,
    /// Variance preserving (DDPM): `x = √ᾱₜ·x₀ + √(1−ᾱₜ)·ε` at integer
    /// timesteps t < `train_steps`, ᾱ from betas (`scaled`: scaled-linear).
    Vp {
        beta_start: f64,
        beta_end: f64,
        train_steps: usize,
        scaled: bool,
    },
    /// Variance exploding, k-diffusion's own convention: `x = x₀ + σ·ε` for
    /// σ in [`sigma_min`, `sigma_max`], the model called with σ itself (a
    /// k-diffusion denoiser `D(x, σ)`, or an ε model on the same terms).
    Ve { sigma_min: f64, sigma_max: f64 },
}

/// What a denoiser predicts, and under which noise process.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// `epsilon`, `velocity` or `sample`.
    pub output: String,
    pub process: NoiseProcess,
}

/// Build-time type inference for callables.
pub trait InferCalls {
    /// What callable `index` predicts, when it says ([`Node::prediction`]).
    fn callee_prediction(&self, _index: usize) -> Option<Prediction> {
        None
    }

    /// Names of the outputs of callable `index` (e.g. `velocity` or
    /// `epsilon` for a denoiser), so a caller can check what it is given.
    /// Empty when unknown.
    fn callee_outputs(&self, _index: usize) -> Vec<String> {
        Vec::new()
    }

    /// Output types of callable `index` (of [`Node::calls`]) given the types
    /// of the arguments the caller will pass.
    fn infer_call(&mut self, index: usize, args: &[ValueType])
    -> Result<Vec<ValueType>, TypeError>;
}

/// A configured node.
pub trait Node: Send + Sync + 'static {
    fn inputs(&self) -> Vec<PortSpec>;
    fn outputs(&self) -> Vec<PortSpec>;

    /// Callables this node uses (empty for most nodes).
    fn calls(&self) -> Vec<CallSpec> {
        Vec::new()
    }

    /// Checks the types arriving at the inputs (in [`Node::inputs`] order;
    /// `None` for an unconnected optional input) and returns the output
    /// types. Runs once, when the graph is built.
    fn infer(
        &self,
        inputs: &[Option<ValueType>],
        calls: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError>;

    /// Whether this node takes tensors that live on a device as they are.
    ///
    /// The default, `false`, is right for every node that reads elements:
    /// before its `eval` the scheduler copies device inputs to the host
    /// ([`Tensor::to_host`](crate::tensor::Tensor::to_host), counted in
    /// [`crate::transfers`]). Nodes that only pass tensors on to a model
    /// return `true`, so one model's device output feeds the next model
    /// without a host copy.
    fn accepts_device_inputs(&self) -> bool {
        false
    }

    /// What input `port` takes, for help texts ("connect it: … (takes
    /// f32[1, 64])"): a model input's type, `actions`, an image. None when
    /// the node only knows once its other inputs are typed.
    fn input_type(&self, _port: usize) -> Option<String> {
        None
    }

    /// The parameter that alone fixes the type of output `port`, if one
    /// does (a `noise` or `constant` node's `shape`). A type error that
    /// value causes downstream — at the input it feeds, or in a callee its
    /// consumer calls with it — is reported at that parameter, where the
    /// mistake is, rather than at the nodes that received the value.
    fn output_set_by(&self, _port: usize) -> Option<&'static str> {
        None
    }

    /// Fresh state for a run.
    fn init_state(&self) -> Result<State, NodeError> {
        Ok(Box::new(()))
    }

    /// Runs one tick: inputs in [`Node::inputs`] order (`None` for an
    /// unconnected optional input), outputs in [`Node::outputs`] order.
    fn eval(
        &self,
        state: &mut State,
        inputs: &[Option<Value>],
        cx: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError>;

    /// Called once after the last tick (also after a failed run, and for a
    /// state a hot reload drops), so sinks can finish files.
    fn finish(&self, _state: &mut State) -> Result<(), NodeError> {
        Ok(())
    }

    /// Hot reload: whether this node continues from `old`, the state of the
    /// node of the same name and kind in the graph being replaced.
    ///
    /// The default keeps the state when nothing about the node changed and
    /// otherwise starts fresh (right for caches derived from parameters and
    /// models). Nodes whose state is the world's memory (histories, poses,
    /// open output files) override this to keep what still fits and say why
    /// they cannot when it does not.
    fn carry(&self, _old: &State, cx: &CarryContext) -> Carry {
        if cx.unchanged() {
            Carry::Keep
        } else {
            Carry::Fresh
        }
    }

    /// A prompt a front end may edit while the world runs: the parameter to
    /// set and the text in force now. `None` for most nodes.
    fn live_prompt(&self) -> Option<(&'static str, String)> {
        None
    }

    /// For a denoiser: what it predicts under which noise process (from its
    /// model's metadata), so samplers can convert at build time.
    fn prediction(&self) -> Option<Prediction> {
        None
    }

    /// Snapshots: the part of `state` that cannot be recomputed (memory,
    /// poses). The default saves nothing — right for stateless nodes and
    /// for caches, which start fresh and give the same results.
    fn save_state(&self, _state: &State) -> Result<Option<SavedState>, NodeError> {
        Ok(None)
    }

    /// Snapshots: a state from what [`Node::save_state`] wrote; checks that
    /// it fits this node's configuration.
    fn load_state(&self, _saved: &SavedState) -> Result<State, NodeError> {
        self.init_state()
    }

    /// The input port carrying the frames a player watches (the `display`
    /// sink's image) and the range of its values: the scheduler hands its
    /// value to the run's observer so front ends can show it. `None` for
    /// every other node.
    fn displays(&self) -> Option<DisplaySpec> {
        None
    }
}

/// What a hot reload tells [`Node::carry`] about the node being replaced
/// (same name, same kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CarryContext {
    /// The node's parameters differ from the old node's.
    pub params_changed: bool,
    /// A model the node uses was reloaded (its file or options changed), or
    /// the node now uses another model.
    pub models_changed: bool,
    /// The types arriving at the node's inputs changed.
    pub inputs_changed: bool,
    /// The types leaving the node's outputs changed.
    pub outputs_changed: bool,
}

impl CarryContext {
    /// Nothing about the node changed.
    pub fn unchanged(&self) -> bool {
        !self.params_changed
            && !self.models_changed
            && !self.inputs_changed
            && !self.outputs_changed
    }
}

/// What a hot reload does with the state of the node a new node replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Carry {
    /// The new node continues from the old state.
    Keep,
    /// The old state is only derived data (a cache): finish it, start fresh,
    /// say nothing.
    Fresh,
    /// The old state cannot continue: finish it, start fresh, and log why.
    Reset(String),
    /// The old state can neither continue nor be dropped (an output file
    /// whose format the new graph would break): the reload is refused and
    /// the old graph keeps running; the message says why.
    Refuse(String),
}

/// Which input of a node is the frame a player watches, and how its values
/// map to pixels (see [`crate::frame`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisplaySpec {
    pub input: usize,
    pub range: PixelRange,
}

/// How an image tensor's values map to pixel intensities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PixelRange {
    /// -1 is black, 1 is white (the models' convention).
    #[default]
    Signed,
    /// 0 is black, 1 is white.
    Unit,
}

/// Live input of one tick, sampled from outside the graph when the tick
/// starts (a front end's key state). Nodes read it with
/// [`TickContext::input`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct TickInput {
    /// The keys a live player holds; `None` when no front end drives the world.
    pub actions: Option<Actions>,
}

impl TickInput {
    /// No live input.
    pub const NONE: TickInput = TickInput { actions: None };

    /// Live input with these keys held.
    pub fn with_actions(actions: Actions) -> Self {
        TickInput {
            actions: Some(actions),
        }
    }
}

/// Runs a callee for a caller (implemented by the scheduler).
pub trait Callees {
    fn call(&mut self, index: usize, args: Vec<Value>) -> Result<Vec<Value>, NodeError>;
}

/// What [`Node::eval`] gets besides inputs and state.
pub struct TickContext<'a> {
    /// Index of the tick being computed, from 0.
    pub tick: u64,
    pub settings: &'a Settings,
    pub(crate) callees: &'a mut dyn Callees,
    pub(crate) stop: bool,
    pub(crate) input: &'a TickInput,
}

impl<'a> TickContext<'a> {
    /// A context for running a node outside the scheduler (tests, tools).
    pub fn new(tick: u64, settings: &'a Settings, callees: &'a mut dyn Callees) -> Self {
        TickContext {
            tick,
            settings,
            callees,
            stop: false,
            input: &TickInput::NONE,
        }
    }

    /// The same context with live input (see [`TickInput`]).
    pub fn with_input(mut self, input: &'a TickInput) -> Self {
        self.input = input;
        self
    }

    /// This tick's live input.
    pub fn input(&self) -> &TickInput {
        self.input
    }

    /// Calls callable `index` of [`Node::calls`] with its arguments in the
    /// order of that [`CallSpec`]; returns the callee's outputs.
    pub fn call(&mut self, index: usize, args: Vec<Value>) -> Result<Vec<Value>, NodeError> {
        self.callees.call(index, args)
    }

    /// Asks the scheduler to stop after this tick (a source ran dry).
    pub fn request_stop(&mut self) {
        self.stop = true;
    }

    pub fn stop_requested(&self) -> bool {
        self.stop
    }
}

/// A [`Callees`] for nodes that call nothing.
pub struct NoCallees;

impl Callees for NoCallees {
    fn call(&mut self, index: usize, _args: Vec<Value>) -> Result<Vec<Value>, NodeError> {
        Err(NodeError::new(format!("internal: no callable #{index}")))
    }
}

/// An [`InferCalls`] for nodes that call nothing.
pub struct NoInferCalls;

impl InferCalls for NoInferCalls {
    fn infer_call(
        &mut self,
        index: usize,
        _args: &[ValueType],
    ) -> Result<Vec<ValueType>, TypeError> {
        Err(TypeError::node(format!("internal: no callable #{index}")))
    }
}
