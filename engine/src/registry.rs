//! The table of node kinds.
//!
//! A [`Registry`] maps kind names (as written after `node x:`) to their
//! [`NodeKind`]. The `wgraph-nodes` crate fills one with every built-in kind;
//! a program embedding wgraph may add its own.

use crate::node::NodeKind;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Clone, Default)]
pub struct Registry {
    kinds: BTreeMap<&'static str, Arc<dyn NodeKind>>,
}

/// Two kinds registered under one name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("node kind `{0}` is registered twice")]
pub struct DuplicateKind(pub &'static str);

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a kind; a second kind with the same name is refused.
    pub fn register(&mut self, kind: impl NodeKind) -> Result<(), DuplicateKind> {
        let name = kind.name();
        if self.kinds.contains_key(name) {
            return Err(DuplicateKind(name));
        }
        self.kinds.insert(name, Arc::new(kind));
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn NodeKind>> {
        self.kinds.get(name)
    }

    /// Kind names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.kinds.keys().copied()
    }

    pub fn kinds(&self) -> impl Iterator<Item = &Arc<dyn NodeKind>> {
        self.kinds.values()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.kinds.keys()).finish()
    }
}
