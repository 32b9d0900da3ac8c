//! `qcm`: Yume's Quantized Camera Motion — the keys held in a tick become a
//! caption from a fixed vocabulary, fed to the text encoder.
//!
//! Keys: W/S move forward/back, A/D left/right, Left/Right turn the camera
//! (← →), Up/Down tilt it (↑ ↓); opposite keys cancel; Space is ignored.
//! That gives 9 motions × 9 camera moves = 81 captions ([`all_captions`]),
//! so a text encoder can precompute them (Yume 1.5's cached action
//! descriptions).
//!
//! - `yume` (Yume 1.0, `fastvideo` training code): `This video depicts a
//!   city walk scene with a first-person view (FPV).` + motion sentence
//!   (`Person moves forward (W).`, … `Person stands still (·).`) + camera
//!   sentence (`Camera turns right (→).`, … `Camera remains still (·).`),
//!   joined with no spaces, then the speed sentence (training form)
//!   `Actual distance moved:{v} at 100 meters per second.Angular change
//!   rate (turn speed):{d}.View rotation speed:{r}.`
//! - `yume15` (Yume 1.5): `First-person perspective.` + `The camera pushes
//!   forward (W).`, … + `The camera pans to the right (→).`, …, the still
//!   forms `The camera's movement direction remains stationary (·).` and
//!   `The rotation direction of the camera remains stationary (·).`, and the
//!   speed sentence, sentences separated by one space — as in the Yume
//!   repository's `caption_re.txt`. Combined moves use the combined
//!   sentences of Yume 1.5's `webapp_single_gpu.py` (`The camera pushes
//!   forward and moves to the left (W+A).`, `The camera tilts up and pans to
//!   the right (↑→).`, …).
//!
//! Numbers are written as Rust's `{}` of an f64: the shortest form that
//! reads back exactly, without a trailing `.0` (4.0 → `4`, 4.5 → `4.5`),
//! as Yume's own captions write them (`moved:4 at`).

use crate::common::*;
use std::sync::Arc;

/// The `qcm` kind.
pub struct Qcm;

/// The choices of `variant`.
const VARIANTS: &[&str] = &["yume", "yume15"];

impl NodeKind for Qcm {
    fn name(&self) -> &'static str {
        "qcm"
    }
    fn summary(&self) -> &'static str {
        "Yume's Quantized Camera Motion: the keys held as a caption from a fixed vocabulary (for the text encoder)"
    }
    fn params(&self) -> &'static [ParamSpec] {
        const PARAMS: &[ParamSpec] = &[
            ParamSpec::optional(
                "variant",
                ParamType::Choice(VARIANTS),
                ParamDefault::Choice("yume"),
                "vocabulary: yume (Yume 1.0, `Person moves forward (W).`) or yume15 (Yume 1.5, `The camera pushes forward (W).`)",
            ),
            ParamSpec::optional(
                "speed",
                ParamType::Float,
                ParamDefault::Float(4.0),
                "the speed sentence's `Actual distance moved` (>= 0)",
            ),
            ParamSpec::optional(
                "turn",
                ParamType::Float,
                ParamDefault::Float(2.0),
                "the speed sentence's `Angular change rate (turn speed)` (>= 0)",
            ),
            ParamSpec::optional(
                "rotate",
                ParamType::Float,
                ParamDefault::Float(2.0),
                "the speed sentence's `View rotation speed` (>= 0)",
            ),
            ParamSpec::optional(
                "speed_sentence",
                ParamType::Bool,
                ParamDefault::Bool(true),
                "append the speed sentence",
            ),
        ];
        PARAMS
    }
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Node>, BuildError> {
        let variant = if cx.params.choice("variant")? == "yume15" {
            QcmVariant::Yume15
        } else {
            QcmVariant::Yume
        };
        let get = |name: &str| {
            let v = finite_param(cx, name)?;
            if v < 0.0 {
                return Err(BuildError::param(
                    name,
                    format!("`{name}` must not be negative, found {v}"),
                ));
            }
            Ok(v)
        };
        let speeds = QcmSpeeds {
            distance: get("speed")?,
            turn: get("turn")?,
            rotate: get("rotate")?,
        };
        let speeds = cx.params.bool("speed_sentence")?.then_some(speeds);
        let captions = all_captions(variant, speeds.as_ref())
            .into_iter()
            .map(Arc::from)
            .collect();
        Ok(Box::new(QcmNode { captions }))
    }
}

/// Which Yume's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QcmVariant {
    /// Yume 1.0.
    Yume,
    /// Yume 1.5.
    Yume15,
}

/// The numbers of the speed sentence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QcmSpeeds {
    /// `Actual distance moved`.
    pub distance: f64,
    /// `Angular change rate (turn speed)`.
    pub turn: f64,
    /// `View rotation speed`.
    pub rotate: f64,
}

impl Default for QcmSpeeds {
    /// The `qcm` kind's defaults: distance 4, turn 2, rotate 2.
    fn default() -> Self {
        QcmSpeeds {
            distance: 4.0,
            turn: 2.0,
            rotate: 2.0,
        }
    }
}

/// Motion sentences, indexed by [`motion_index`]: still, W, A, S, D, W+A,
/// W+D, S+D, S+A.
const MOTION: [[&str; 9]; 2] = [
    [
        "Person stands still (·).",
        "Person moves forward (W).",
        "Person moves left (A).",
        "Person moves backward (S).",
        "Person moves right (D).",
        "Person moves forward and left (W+A).",
        "Person moves forward and right (W+D).",
        "Person moves backward and right (S+D).",
        "Person moves backward and left (S+A).",
    ],
    [
        "The camera's movement direction remains stationary (·).",
        "The camera pushes forward (W).",
        "The camera moves to the left (A).",
        "The camera pulls back (S).",
        "The camera moves to the right (D).",
        "The camera pushes forward and moves to the left (W+A).",
        "The camera pushes forward and moves to the right (W+D).",
        "The camera pulls back and moves to the right (S+D).",
        "The camera pulls back and moves to the left (S+A).",
    ],
];

/// Camera sentences, indexed by [`camera_index`]: still, →, ←, ↑, ↓, ↑→,
/// ↑←, ↓→, ↓←.
const CAMERA: [[&str; 9]; 2] = [
    [
        "Camera remains still (·).",
        "Camera turns right (→).",
        "Camera turns left (←).",
        "Camera tilts up (↑).",
        "Camera tilts down (↓).",
        "Camera tilts up and turns right (↑→).",
        "Camera tilts up and turns left (↑←).",
        "Camera tilts down and turns right (↓→).",
        "Camera tilts down and turns left (↓←).",
    ],
    [
        "The rotation direction of the camera remains stationary (·).",
        "The camera pans to the right (→).",
        "The camera pans to the left (←).",
        "The camera tilts up (↑).",
        "The camera tilts down (↓).",
        "The camera tilts up and pans to the right (↑→).",
        "The camera tilts up and pans to the left (↑←).",
        "The camera tilts down and pans to the right (↓→).",
        "The camera tilts down and pans to the left (↓←).",
    ],
];

/// `+1`, `-1` or `0` for a pair of opposite keys.
fn axis(a: Actions, plus: Key, minus: Key) -> i8 {
    i8::from(a.contains(plus)) - i8::from(a.contains(minus))
}

/// Index into [`MOTION`] of the W/A/S/D keys held.
fn motion_index(a: Actions) -> usize {
    match (axis(a, Key::W, Key::S), axis(a, Key::D, Key::A)) {
        (0, 0) => 0,
        (1, 0) => 1,
        (0, -1) => 2,
        (-1, 0) => 3,
        (0, 1) => 4,
        (1, -1) => 5,
        (1, 1) => 6,
        (-1, 1) => 7,
        _ => 8,
    }
}

/// Index into [`CAMERA`] of the arrow keys held.
fn camera_index(a: Actions) -> usize {
    match (axis(a, Key::Up, Key::Down), axis(a, Key::Right, Key::Left)) {
        (0, 0) => 0,
        (0, 1) => 1,
        (0, -1) => 2,
        (1, 0) => 3,
        (-1, 0) => 4,
        (1, 1) => 5,
        (1, -1) => 6,
        (-1, 1) => 7,
        _ => 8,
    }
}

/// The caption for motion `m` and camera move `c` (indices of the tables).
fn caption(variant: QcmVariant, m: usize, c: usize, speeds: Option<&QcmSpeeds>) -> String {
    let v = variant as usize;
    let (prefix, sep) = match variant {
        QcmVariant::Yume => (
            "This video depicts a city walk scene with a first-person view (FPV).",
            "",
        ),
        QcmVariant::Yume15 => ("First-person perspective.", " "),
    };
    let mut parts = vec![
        prefix.to_string(),
        MOTION[v][m].to_string(),
        CAMERA[v][c].to_string(),
    ];
    if let Some(s) = speeds {
        parts.push(format!(
            "Actual distance moved:{} at 100 meters per second.",
            s.distance
        ));
        parts.push(format!("Angular change rate (turn speed):{}.", s.turn));
        parts.push(format!("View rotation speed:{}.", s.rotate));
    }
    parts.join(sep)
}

/// The caption `qcm` emits for the keys `actions`; `speeds: None` leaves
/// out the speed sentence.
pub fn qcm_caption(variant: QcmVariant, actions: Actions, speeds: Option<&QcmSpeeds>) -> String {
    caption(
        variant,
        motion_index(actions),
        camera_index(actions),
        speeds,
    )
}

/// Every caption `qcm` can emit with these settings (81, distinct): motion
/// still, W, A, S, D, W+A, W+D, S+D, S+A, each with camera still, →, ←, ↑,
/// ↓, ↑→, ↑←, ↓→, ↓← (index `9·motion + camera`).
pub fn all_captions(variant: QcmVariant, speeds: Option<&QcmSpeeds>) -> Vec<String> {
    (0..9)
        .flat_map(|m| (0..9).map(move |c| caption(variant, m, c, speeds)))
        .collect()
}

struct QcmNode {
    /// [`all_captions`], shared so each tick's text is a pointer copy.
    captions: Vec<Arc<str>>,
}

impl Node for QcmNode {
    fn inputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::wired("actions")]
    }
    fn input_type(&self, _port: usize) -> Option<String> {
        Some(ValueType::Actions.to_string())
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::output("text")]
    }
    fn infer(
        &self,
        inputs: &[Option<ValueType>],
        _: &mut dyn InferCalls,
    ) -> Result<Vec<ValueType>, TypeError> {
        actions_in(inputs, 0)?;
        Ok(vec![ValueType::Text])
    }
    fn eval(
        &self,
        _: &mut State,
        inputs: &[Option<Value>],
        _: &mut TickContext<'_>,
    ) -> Result<Vec<Value>, NodeError> {
        let a = actions_arg(inputs, 0)?;
        let text = self
            .captions
            .get(9 * motion_index(a) + camera_index(a))
            .ok_or_else(|| NodeError::new("internal: caption table"))?;
        Ok(vec![Value::Text(text.clone())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::testing::*;
    use wgraph_engine::params::ParamValue as P;

    fn keys(ks: &[Key]) -> Actions {
        ks.iter().fold(Actions::none(), |a, &k| a.with(k))
    }

    fn text(params: Vec<(&'static str, P)>, a: Actions) -> String {
        let dir = tempfile::tempdir().unwrap();
        let node = build(&Qcm, params, dir.path()).unwrap();
        match &run(&*node, 1, |_| vec![Value::Actions(a)]).unwrap()[0].0[0] {
            Value::Text(t) => t.to_string(),
            v => panic!("{v:?}"),
        }
    }

    const FPV: &str = "This video depicts a city walk scene with a first-person view (FPV).";
    const SPEED: &str = "Actual distance moved:4 at 100 meters per second.Angular change rate (turn speed):2.View rotation speed:2.";

    #[test]
    fn yume_captions_are_exact() {
        assert_eq!(
            text(vec![], keys(&[Key::W])),
            format!("{FPV}Person moves forward (W).Camera remains still (·).{SPEED}")
        );
        assert_eq!(
            text(vec![], keys(&[Key::W, Key::A])),
            format!("{FPV}Person moves forward and left (W+A).Camera remains still (·).{SPEED}")
        );
        assert_eq!(
            text(vec![], Actions::none()),
            format!("{FPV}Person stands still (·).Camera remains still (·).{SPEED}")
        );
        assert_eq!(
            text(vec![], keys(&[Key::Left, Key::Up])),
            format!("{FPV}Person stands still (·).Camera tilts up and turns left (↑←).{SPEED}")
        );
        // Opposite keys cancel; Space means nothing here.
        assert_eq!(
            text(
                vec![],
                keys(&[Key::W, Key::S, Key::D, Key::Right, Key::Left, Key::Space])
            ),
            format!("{FPV}Person moves right (D).Camera remains still (·).{SPEED}")
        );
        let p = vec![
            ("speed", P::Float(4.5)),
            ("turn", P::Float(0.0)),
            ("rotate", P::Float(0.25)),
        ];
        assert_eq!(
            text(p, keys(&[Key::S, Key::A, Key::Down, Key::Right])),
            format!(
                "{FPV}Person moves backward and left (S+A).Camera tilts down and turns right (↓→).\
                 Actual distance moved:4.5 at 100 meters per second.Angular change rate (turn speed):0.View rotation speed:0.25."
            )
        );
        assert_eq!(
            text(vec![("speed_sentence", P::Bool(false))], keys(&[Key::Up])),
            format!("{FPV}Person stands still (·).Camera tilts up (↑).")
        );
    }

    #[test]
    fn yume15_captions_are_exact() {
        let v15 = || vec![("variant", P::Choice("yume15".into()))];
        assert_eq!(
            text(v15(), keys(&[Key::W, Key::Right])),
            "First-person perspective. The camera pushes forward (W). The camera pans to the right (→). \
             Actual distance moved:4 at 100 meters per second. Angular change rate (turn speed):2. View rotation speed:2."
        );
        let mut p = v15();
        p.push(("speed_sentence", P::Bool(false)));
        assert_eq!(
            text(p.clone(), Actions::none()),
            "First-person perspective. The camera's movement direction remains stationary (·). \
             The rotation direction of the camera remains stationary (·)."
        );
        assert_eq!(
            text(p, keys(&[Key::S, Key::D, Key::Up, Key::Left])),
            "First-person perspective. The camera pulls back and moves to the right (S+D). \
             The camera tilts up and pans to the left (↑←)."
        );
    }

    #[test]
    fn all_captions_cover_every_input() {
        for variant in [QcmVariant::Yume, QcmVariant::Yume15] {
            let speeds = QcmSpeeds::default();
            let all = all_captions(variant, Some(&speeds));
            assert_eq!(all.len(), 81);
            let distinct: std::collections::BTreeSet<_> = all.iter().collect();
            assert_eq!(distinct.len(), 81);
            // Every one of the 2^8 combinations of movement keys maps into the set.
            for bits in 0u32..256 {
                let held = Key::ALL[..8]
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| bits & (1 << i) != 0)
                    .map(|(_, &k)| k)
                    .collect::<Vec<_>>();
                let c = qcm_caption(variant, keys(&held), Some(&speeds));
                assert!(all.contains(&c), "{c}");
            }
        }
        // The node's default captions are `all_captions(.., Some(&default()))`.
        let w = text(vec![], keys(&[Key::W]));
        assert_eq!(
            all_captions(QcmVariant::Yume, Some(&QcmSpeeds::default()))[9],
            w
        );
        let dir = tempfile::tempdir().unwrap();
        let e = build(&Qcm, vec![("turn", P::Float(-1.0))], dir.path()).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("turn"));
        let node = build(&Qcm, vec![], dir.path()).unwrap();
        let e = infer(&*node, &[ValueType::Text]).unwrap_err();
        assert_eq!(e.message, "expected actions, found text");
    }
}
