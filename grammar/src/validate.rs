//! Static checks on a loaded [`Graph`] that need no node registry.

use crate::ast::{Graph, Ident, Statement};
use crate::diagnostic::{Diagnostic, Diagnostics};
use std::collections::HashMap;
use std::collections::hash_map::Entry;

/// Checks that node and model names are unique across all files of the
/// graph: a duplicate node, a duplicate model, or a node and a model with the
/// same name. Each error points at the later definition, with a secondary
/// label on the first.
pub fn validate(graph: &Graph) -> Diagnostics {
    let mut diags = Diagnostics::new();
    let mut seen: HashMap<&str, (&str, &Ident)> = HashMap::new();
    for statement in &graph.statements {
        let (what, name) = match statement {
            Statement::Node(node) => ("node", &node.name),
            Statement::Model(model) => ("model", &model.name),
            _ => continue,
        };
        match seen.entry(&name.name) {
            Entry::Vacant(slot) => {
                slot.insert((what, name));
            }
            Entry::Occupied(slot) => {
                let (first_what, first) = *slot.get();
                let message = if first_what == what {
                    format!("duplicate {what} `{}`", name.name)
                } else {
                    format!(
                        "{what} `{0}` has the same name as {first_what} `{0}`",
                        name.name
                    )
                };
                diags.push(
                    Diagnostic::error(name.span, message)
                        .with_label("defined again here")
                        .with_secondary(first.span, "first defined here"),
                );
            }
        }
    }
    diags
}
