//! Static types of the values on edges, checked when a graph is built.
//!
//! A port carries a [`ValueType`]: a tensor type (dtype and a shape of
//! [`Dim`]s, each known or symbolic), a player's [`Actions`](crate::value::Actions)
//! for one tick, or text. Node kinds compute their output types from their
//! input types in [`Node::infer`](crate::node::Node::infer); symbolic
//! dimensions (for example a model input declared `[batch, 16, h, w]`) are
//! resolved by [`Bindings::unify`] against the shape actually wired in.

use crate::tensor::DType;
use std::collections::BTreeMap;
use std::fmt;

/// One dimension of a tensor type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dim {
    Known(usize),
    /// A named dimension resolved by unification (`batch`, `frames`). A
    /// name starting with `?` is an unnamed one (see [`Dim::unnamed`]).
    Sym(String),
}

/// How an unnamed dimension is shown, and its bare form.
pub const UNNAMED: &str = "?";

impl Dim {
    /// An unnamed dynamic dimension — ONNX's `?`, a size that is neither
    /// fixed nor named — at `axis` of the port that `scope` names
    /// (`"output y"`). Each is its own unknown: two unnamed dimensions never
    /// have to be equal, as two uses of one name (`batch`) do. It shows as
    /// `?`.
    pub fn unnamed(scope: &str, axis: usize) -> Dim {
        Dim::Sym(format!("{UNNAMED}{scope}#{axis}"))
    }

    /// True for an unnamed dimension ([`Dim::unnamed`], or a bare `?`).
    pub fn is_unnamed(&self) -> bool {
        matches!(self, Dim::Sym(s) if s.starts_with(UNNAMED))
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Known(n) => write!(f, "{n}"),
            d if d.is_unnamed() => f.write_str(UNNAMED),
            Dim::Sym(s) => f.write_str(s),
        }
    }
}

/// Dtype and shape of a tensor port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Vec<Dim>,
}

impl TensorType {
    /// A fully known type.
    pub fn known(dtype: DType, shape: &[usize]) -> Self {
        TensorType {
            dtype,
            shape: shape.iter().map(|&d| Dim::Known(d)).collect(),
        }
    }

    /// The shape as numbers, when every dimension is known.
    pub fn known_shape(&self) -> Option<Vec<usize>> {
        self.shape
            .iter()
            .map(|d| match d {
                Dim::Known(n) => Some(*n),
                Dim::Sym(_) => None,
            })
            .collect()
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[", self.dtype)?;
        for (i, d) in self.shape.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// The type of a value on an edge.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ValueType {
    Tensor(TensorType),
    /// The keys held during one tick.
    Actions,
    /// A piece of text (a prompt, a caption).
    Text,
}

impl ValueType {
    pub fn tensor(dtype: DType, shape: &[usize]) -> Self {
        ValueType::Tensor(TensorType::known(dtype, shape))
    }

    pub fn as_tensor(&self) -> Option<&TensorType> {
        match self {
            ValueType::Tensor(t) => Some(t),
            _ => None,
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueType::Tensor(t) => t.fmt(f),
            ValueType::Actions => f.write_str("actions"),
            ValueType::Text => f.write_str("text"),
        }
    }
}

/// Values of symbolic dimensions found so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bindings(BTreeMap<String, usize>);

impl Bindings {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, sym: &str) -> Option<usize> {
        self.0.get(sym).copied()
    }

    /// Matches `actual` against `pattern`, binding its symbols. Fails with a
    /// readable reason when ranks, dtypes or dimensions disagree. Unnamed
    /// dimensions ([`Dim::unnamed`]) are distinct from each other: each
    /// binds alone, and a bare `?` matches any size and binds nothing.
    pub fn unify(&mut self, pattern: &TensorType, actual: &TensorType) -> Result<(), String> {
        if pattern.dtype != actual.dtype {
            return Err(format!(
                "dtype differs: expected {}, found {}",
                pattern.dtype, actual.dtype
            ));
        }
        if pattern.shape.len() != actual.shape.len() {
            return Err(format!(
                "rank differs: expected {} dimensions, found {}",
                pattern.shape.len(),
                actual.shape.len()
            ));
        }
        for (axis, (p, a)) in pattern.shape.iter().zip(&actual.shape).enumerate() {
            let a = match a {
                Dim::Known(n) => *n,
                // An unresolved symbol upstream matches anything.
                Dim::Sym(_) => continue,
            };
            match p {
                Dim::Known(n) if *n != a => {
                    return Err(format!("dimension {axis} differs: expected {n}, found {a}"));
                }
                Dim::Known(_) => {}
                Dim::Sym(s) if s == UNNAMED => {}
                Dim::Sym(s) => match self.0.get(s) {
                    Some(&bound) if bound != a => {
                        return Err(format!(
                            "dimension {axis} (`{p}`) is {a} here but {bound} elsewhere"
                        ));
                    }
                    Some(_) => {}
                    None => {
                        self.0.insert(s.clone(), a);
                    }
                },
            }
        }
        Ok(())
    }

    /// `pattern` with every bound symbol replaced by its value.
    pub fn apply(&self, pattern: &TensorType) -> TensorType {
        TensorType {
            dtype: pattern.dtype,
            shape: pattern
                .shape
                .iter()
                .map(|d| match d {
                    Dim::Sym(s) => self.0.get(s).map_or_else(|| d.clone(), |&n| Dim::Known(n)),
                    known => known.clone(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(dtype: DType, dims: &[&str]) -> TensorType {
        TensorType {
            dtype,
            shape: dims
                .iter()
                .map(|d| {
                    d.parse()
                        .map(Dim::Known)
                        .unwrap_or_else(|_| Dim::Sym(d.to_string()))
                })
                .collect(),
        }
    }

    #[test]
    fn unify_binds_symbols_and_applies_them() {
        let mut b = Bindings::new();
        let pattern = sym(DType::F32, &["batch", "16", "h", "w"]);
        b.unify(&pattern, &TensorType::known(DType::F32, &[2, 16, 4, 8]))
            .unwrap();
        assert_eq!(
            b.apply(&sym(DType::F32, &["batch", "w"])),
            TensorType::known(DType::F32, &[2, 8])
        );
    }

    #[test]
    fn unnamed_dimensions_are_distinct() {
        // ONNX `[?, ?]` giving [2, 5]: two unknowns, not one.
        let pattern = TensorType {
            dtype: DType::F32,
            shape: vec![Dim::unnamed("output y", 0), Dim::unnamed("output y", 1)],
        };
        assert_eq!(pattern.to_string(), "f32[?, ?]");
        let got = TensorType::known(DType::F32, &[2, 5]);
        let mut b = Bindings::new();
        b.unify(&pattern, &got).unwrap();
        assert_eq!(b.apply(&pattern), got);
        // An input's unnamed dimension is not an output's.
        let input = TensorType {
            dtype: DType::F32,
            shape: vec![Dim::unnamed("input x", 0)],
        };
        b.unify(&input, &TensorType::known(DType::F32, &[7]))
            .unwrap();
        assert_eq!(b.apply(&input), TensorType::known(DType::F32, &[7]));
        assert_eq!(b.apply(&pattern), got);
        // A bare `?` matches anything and binds nothing.
        let bare = sym(DType::F32, &["?", "?"]);
        assert!(bare.shape.iter().all(Dim::is_unnamed));
        Bindings::new().unify(&bare, &got).unwrap();
        // A named one still must agree with itself.
        assert!(!Dim::Sym("batch".into()).is_unnamed());
    }

    #[test]
    fn unify_rejects_inconsistent_symbol() {
        let mut b = Bindings::new();
        let p = sym(DType::F32, &["n", "n"]);
        let err = b
            .unify(&p, &TensorType::known(DType::F32, &[3, 4]))
            .unwrap_err();
        assert!(err.contains("is 4 here but 3 elsewhere"), "{err}");
    }

    #[test]
    fn unify_rejects_rank_dtype_and_known_dim() {
        let mut b = Bindings::new();
        let p = sym(DType::F32, &["1", "x"]);
        assert!(
            b.unify(&p, &TensorType::known(DType::F32, &[1]))
                .unwrap_err()
                .contains("rank")
        );
        assert!(
            b.unify(&p, &TensorType::known(DType::I64, &[1, 2]))
                .unwrap_err()
                .contains("dtype")
        );
        assert!(
            b.unify(&p, &TensorType::known(DType::F32, &[2, 2]))
                .unwrap_err()
                .contains("dimension 0")
        );
    }
}
