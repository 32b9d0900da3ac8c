//! Pipeline settings: the `world { }` block.

use crate::params::{Default, ParamSpec, ParamType, Params};

/// Execution providers a graph may ask for.
pub const PROVIDERS: &[&str] = &["cpu", "cuda", "tensorrt"];

/// Model backends a graph may ask for (see [`crate::model::BackendKind`]).
pub const BACKENDS: &[&str] = &["ort", "wonnx", "triton"];

/// The `world { }` settings table.
pub const SETTINGS: &[ParamSpec] = &[
    ParamSpec::optional(
        "name",
        ParamType::Str,
        Default::Str(""),
        "a title for this world",
    ),
    ParamSpec::optional(
        "seed",
        ParamType::Int,
        Default::Int(0),
        "seed of every random source",
    ),
    ParamSpec::optional(
        "fps",
        ParamType::Float,
        Default::Float(8.0),
        "frames per second to play at",
    ),
    ParamSpec::optional(
        "resolution",
        ParamType::Shape,
        Default::Str("64x64"),
        "frame size HxW; shapes may say H and W",
    ),
    ParamSpec::optional(
        "frames_per_tick",
        ParamType::Int,
        Default::Int(1),
        "frames produced per tick; shapes may say F",
    ),
    ParamSpec::optional(
        "provider",
        ParamType::Choice(PROVIDERS),
        Default::Choice("cpu"),
        "default execution provider of models",
    ),
    ParamSpec::optional(
        "backend",
        ParamType::Choice(BACKENDS),
        Default::Choice("ort"),
        "default backend of models: ort (ONNX Runtime), wonnx (WebGPU; static shapes, a build with the `wonnx` feature) or triton (a Triton Inference Server over gRPC)",
    ),
    ParamSpec::optional(
        "triton_server",
        ParamType::Str,
        Default::Str(""),
        "default HOST:PORT (gRPC) of `backend = triton` models without their own `server` (empty: 127.0.0.1:8001)",
    ),
    ParamSpec::optional(
        "on_late",
        ParamType::Choice(&["drop", "degrade"]),
        Default::Choice("drop"),
        "when ticks run late: drop (start the next tick at once, never queue) or degrade (apply `degrade` settings in order while behind)",
    ),
    ParamSpec::optional(
        "degrade",
        ParamType::StrList,
        Default::Absent,
        "cheaper settings for on_late = degrade, applied in order while behind and undone when caught up, e.g. [\"sampler.steps = 2\"]",
    ),
    ParamSpec::optional(
        "on_nonfinite",
        ParamType::Choice(&["fail", "allow"]),
        Default::Choice("fail"),
        "a NaN or infinity in a node's output: fail (the node that made it, named) or allow (pass it on, e.g. a model whose NaN is its answer)",
    ),
];

/// The slowest clock a world may tick on (ticks per second): one tick in
/// about 17 minutes.
pub const MIN_FPS: f64 = 0.001;
/// The fastest clock a world may tick on (ticks per second).
pub const MAX_FPS: f64 = 1000.0;

/// Checks a world's tick rate (`world { fps }`, `--fps`): a number from
/// [`MIN_FPS`] to [`MAX_FPS`]. Outside that range a period is either
/// shorter than a tick can be timed or too long to wait for (1e-300 fps is
/// a period no clock holds).
pub fn check_fps(fps: f64) -> Result<f64, String> {
    if (MIN_FPS..=MAX_FPS).contains(&fps) {
        Ok(fps)
    } else {
        Err(format!(
            "fps must be between {MIN_FPS} and {MAX_FPS} ticks per second, not {}",
            number(fps)
        ))
    }
}

/// A number as people write it: `8`, `0.25`, `1e-300` (not 300 zeros).
fn number(v: f64) -> String {
    if v == 0.0 || (1e-4..1e15).contains(&v.abs()) {
        v.to_string()
    } else {
        format!("{v:e}")
    }
}

/// What a paced world does when ticks run late.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LatePolicy {
    /// Start the next tick at once; never burst to catch up, never queue.
    #[default]
    Drop,
    /// Apply the `degrade` settings in order while behind.
    Degrade,
}

/// `NODE.PARAM = VALUE` of a `degrade` entry, split; `None` if malformed.
pub fn split_setting(entry: &str) -> Option<(&str, &str, &str)> {
    let (target, value) = entry.split_once('=')?;
    let (node, param) = target.trim().split_once('.')?;
    let (node, param, value) = (node.trim(), param.trim(), value.trim());
    (!node.is_empty() && !param.is_empty() && !value.is_empty()).then_some((node, param, value))
}

/// Checked pipeline settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub name: String,
    pub seed: u64,
    pub fps: f64,
    pub height: usize,
    pub width: usize,
    pub frames_per_tick: usize,
    pub provider: String,
    /// Default backend of models (`ort`, `wonnx`, `triton`).
    pub backend: String,
    /// Default gRPC address of `backend = triton` models (empty: the backend's default).
    pub triton_server: String,
    pub on_late: LatePolicy,
    /// `NODE.PARAM = VALUE` entries, checked for form.
    pub degrade: Vec<String>,
    /// `on_nonfinite = allow`: NaN and infinities pass through nodes.
    pub allow_nonfinite: bool,
}

impl std::default::Default for Settings {
    fn default() -> Self {
        Settings {
            name: String::new(),
            seed: 0,
            fps: 8.0,
            height: 64,
            width: 64,
            frames_per_tick: 1,
            provider: "cpu".into(),
            backend: "ort".into(),
            triton_server: String::new(),
            on_late: LatePolicy::Drop,
            degrade: Vec::new(),
            allow_nonfinite: false,
        }
    }
}

impl Settings {
    /// Builds settings from checked parameters; values out of range keep
    /// their default and return a message naming the setting.
    pub fn from_params(p: &Params) -> (Settings, Vec<(&'static str, String)>) {
        let mut s = Settings::default();
        let mut problems = Vec::new();
        if let Ok(n) = p.string("name") {
            s.name = n;
        }
        if let Ok(seed) = p.int("seed") {
            match u64::try_from(seed) {
                Ok(v) => s.seed = v,
                Err(_) => problems.push(("seed", "the seed must not be negative".to_string())),
            }
        }
        if let Ok(fps) = p.float("fps") {
            match check_fps(fps) {
                Ok(fps) => s.fps = fps,
                Err(why) => problems.push(("fps", why)),
            }
        }
        if let Ok(res) = p.shape("resolution") {
            match res.as_slice() {
                [h, w] if *h > 0 && *w > 0 => {
                    s.height = *h;
                    s.width = *w;
                }
                _ => problems.push((
                    "resolution",
                    "resolution must be a size HxW with both sides positive, like 64x64"
                        .to_string(),
                )),
            }
        }
        if let Ok(f) = p.int("frames_per_tick") {
            match usize::try_from(f) {
                Ok(v) if v > 0 => s.frames_per_tick = v,
                _ => problems.push((
                    "frames_per_tick",
                    "frames_per_tick must be at least 1".to_string(),
                )),
            }
        }
        // Frames are tensors: an RGB frame (and F of them) must fit the
        // tensor size limit, or the first image allocated would abort.
        let frame = [3, s.height, s.width];
        if let Err(e) = crate::tensor::checked_elements(&frame) {
            problems.push((
                "resolution",
                format!(
                    "resolution {}x{} is too large: an RGB frame of {e}",
                    s.height, s.width
                ),
            ));
            (s.height, s.width) = (Settings::default().height, Settings::default().width);
        } else if let Err(e) =
            crate::tensor::checked_elements(&[s.frames_per_tick, 3, s.height, s.width])
        {
            problems.push((
                "frames_per_tick",
                format!(
                    "frames_per_tick = {} is too large at {}x{}: {e}",
                    s.frames_per_tick, s.height, s.width
                ),
            ));
            s.frames_per_tick = 1;
        }
        if let Ok(b) = p.choice("backend") {
            s.backend = b;
        }
        if let Ok(server) = p.string("triton_server") {
            s.triton_server = server;
        }
        if let Ok(pv) = p.choice("provider") {
            s.provider = pv;
        }
        if let Ok(policy) = p.choice("on_late") {
            s.on_late = if policy == "degrade" {
                LatePolicy::Degrade
            } else {
                LatePolicy::Drop
            };
        }
        if let Ok(policy) = p.choice("on_nonfinite") {
            s.allow_nonfinite = policy == "allow";
        }
        if let Ok(list) = p.str_list("degrade") {
            match list.iter().find(|e| split_setting(e).is_none()) {
                Some(bad) => {
                    problems.push(("degrade", format!("`{bad}` is not `NODE.PARAM = VALUE`")))
                }
                None => s.degrade = list,
            }
        }
        if s.on_late == LatePolicy::Degrade && s.degrade.is_empty() && problems.is_empty() {
            problems.push((
                "on_late",
                "on_late = degrade needs a `degrade` list of cheaper settings".to_string(),
            ));
        }
        (s, problems)
    }

    /// The settings that differ in `new`, each as `NAME OLD → NEW` (`fps 8
    /// → 4`, `resolution 64x64 → 32x32`), in the table's order.
    pub fn changes(&self, new: &Settings) -> Vec<String> {
        let mut out = Vec::new();
        let mut diff = |name: &str, old: String, new: String| {
            if old != new {
                out.push(format!("{name} {old} → {new}"));
            }
        };
        diff(
            "name",
            format!("{:?}", self.name),
            format!("{:?}", new.name),
        );
        diff("seed", self.seed.to_string(), new.seed.to_string());
        diff("fps", number(self.fps), number(new.fps));
        diff(
            "resolution",
            format!("{}x{}", self.height, self.width),
            format!("{}x{}", new.height, new.width),
        );
        diff(
            "frames_per_tick",
            self.frames_per_tick.to_string(),
            new.frames_per_tick.to_string(),
        );
        diff("provider", self.provider.clone(), new.provider.clone());
        diff("backend", self.backend.clone(), new.backend.clone());
        diff(
            "triton_server",
            self.triton_server.clone(),
            new.triton_server.clone(),
        );
        let late = |p: LatePolicy| match p {
            LatePolicy::Drop => "drop".to_string(),
            LatePolicy::Degrade => "degrade".to_string(),
        };
        diff("on_late", late(self.on_late), late(new.on_late));
        diff(
            "degrade",
            format!("{:?}", self.degrade),
            format!("{:?}", new.degrade),
        );
        let nonfinite = |allow: bool| if allow { "allow" } else { "fail" }.to_string();
        diff(
            "on_nonfinite",
            nonfinite(self.allow_nonfinite),
            nonfinite(new.allow_nonfinite),
        );
        if out.is_empty() && self != new {
            // A setting this list does not spell out yet.
            out.push("(other settings)".into());
        }
        out
    }

    /// Value of a dimension symbol usable in shapes.
    pub fn dim(&self, symbol: &str) -> Option<usize> {
        match symbol {
            "H" => Some(self.height),
            "W" => Some(self.width),
            "F" => Some(self.frames_per_tick),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_name_each_setting() {
        let old = Settings::default();
        assert!(old.changes(&old).is_empty());
        let new = Settings {
            fps: 4.0,
            height: 32,
            ..Settings::default()
        };
        assert_eq!(
            old.changes(&new),
            vec![
                "fps 8 → 4".to_string(),
                "resolution 64x64 → 32x64".to_string()
            ]
        );
    }

    #[test]
    fn fps_is_bounded() {
        assert_eq!(check_fps(8.0), Ok(8.0));
        assert_eq!(check_fps(MIN_FPS), Ok(MIN_FPS));
        assert_eq!(check_fps(MAX_FPS), Ok(MAX_FPS));
        for bad in [0.0, -1.0, 1e-300, 1e-4, 1001.0, f64::INFINITY, f64::NAN] {
            let err = check_fps(bad).unwrap_err();
            assert!(err.contains("between 0.001 and 1000"), "{bad}: {err}");
        }
        assert!(check_fps(1e-300).unwrap_err().ends_with("not 1e-300"));
    }
}
