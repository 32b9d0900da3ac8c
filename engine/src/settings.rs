//! Pipeline settings: the `world { }` block.

use crate::params::{Default, ParamSpec, ParamType, Params};

/// Execution providers a graph may ask for.
pub const PROVIDERS: &[&str] = &["cpu", "cuda", "tensorrt"];

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
];

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
            if fps > 0.0 && fps.is_finite() {
                s.fps = fps;
            } else {
                problems.push(("fps", "fps must be a positive number".to_string()));
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
        if let Ok(pv) = p.choice("provider") {
            s.provider = pv;
        }
        (s, problems)
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
