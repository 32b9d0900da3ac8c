//! Values on edges: tensors, a tick's actions, text.

use crate::tensor::Tensor;
use crate::types::ValueType;
use std::fmt;
use std::sync::Arc;

/// One of the keys a player can hold during a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    W,
    A,
    S,
    D,
    Left,
    Right,
    Up,
    Down,
    Space,
}

impl Key {
    /// Every key, in the order of [`Actions::multi_hot`].
    pub const ALL: [Key; 9] = [
        Key::W,
        Key::A,
        Key::S,
        Key::D,
        Key::Left,
        Key::Right,
        Key::Up,
        Key::Down,
        Key::Space,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Key::W => "W",
            Key::A => "A",
            Key::S => "S",
            Key::D => "D",
            Key::Left => "Left",
            Key::Right => "Right",
            Key::Up => "Up",
            Key::Down => "Down",
            Key::Space => "Space",
        }
    }

    /// Parses a key name as written in action files (case-insensitive).
    pub fn parse(s: &str) -> Option<Key> {
        Key::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// The set of keys held during one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Actions {
    bits: u16,
}

impl Actions {
    pub fn none() -> Self {
        Self::default()
    }

    pub fn with(mut self, key: Key) -> Self {
        self.bits |= key.bit();
        self
    }

    pub fn contains(self, key: Key) -> bool {
        self.bits & key.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.bits == 0
    }

    pub fn keys(self) -> impl Iterator<Item = Key> {
        Key::ALL.into_iter().filter(move |k| self.contains(*k))
    }

    /// One float per key of [`Key::ALL`]: 1.0 when held.
    pub fn multi_hot(self) -> [f32; 9] {
        Key::ALL.map(|k| if self.contains(k) { 1.0 } else { 0.0 })
    }
}

impl fmt::Display for Actions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("-");
        }
        let names: Vec<&str> = self.keys().map(Key::name).collect();
        f.write_str(&names.join("+"))
    }
}

/// A value carried by an edge for one tick. Cloning is cheap (shared data).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Tensor(Tensor),
    Actions(Actions),
    Text(Arc<str>),
}

impl Value {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::Tensor(t) => ValueType::Tensor(t.tensor_type()),
            Value::Actions(_) => ValueType::Actions,
            Value::Text(_) => ValueType::Text,
        }
    }

    pub fn as_tensor(&self) -> Option<&Tensor> {
        match self {
            Value::Tensor(t) => Some(t),
            _ => None,
        }
    }
}

impl From<Tensor> for Value {
    fn from(t: Tensor) -> Self {
        Value::Tensor(t)
    }
}
