//! Node declarations (build phases 2–3 for nodes): kind names against the
//! registry, `--set` overrides and kind swaps applied, parameters checked
//! against the kind's table, and each kind's `build` run.

use super::Builder;
use crate::graph::{GraphNode, ModelInfo, NodeId};
use crate::model::ModelTable;
use crate::node::{BuildContext, Node};
use crate::params::{ParamContext, ParamValue, check_params};
use crate::settings::Settings;
use std::sync::Arc;
use wgraph_grammar::ast::{self, Entry, Statement};
use wgraph_grammar::diagnostic::{Diagnostic, closest, did_you_mean};
use wgraph_grammar::source::Span;

/// Where element `index` of list parameter `param` of `decl` was written.
fn item_span(decl: &ast::NodeDecl, param: &str, index: usize) -> Option<Span> {
    match &decl.params.get(param)?.value.kind {
        ast::ValueKind::List(items) => items.get(index).map(|v| v.span),
        _ => None,
    }
}

impl Builder<'_> {
    pub(super) fn nodes(
        &mut self,
        parsed: &ast::Graph,
        settings: &Settings,
        models: &[ModelInfo],
        table: &ModelTable,
    ) {
        let decls: Vec<&ast::NodeDecl> = parsed
            .statements
            .iter()
            .filter_map(|s| match s {
                Statement::Node(n) => Some(n),
                _ => None,
            })
            .collect();
        let names: Vec<&str> = decls.iter().map(|d| d.name.name.as_str()).collect();
        for ov in &self.options.kind_overrides {
            if !names.contains(&ov.node.as_str()) {
                let mut d =
                    Diagnostic::error(ov.span, format!("`--set`: no node named `{}`", ov.node));
                if let Some(h) = did_you_mean(&ov.node, names.iter().copied()) {
                    d = d.with_help(h);
                }
                self.diags.push(d);
            }
        }
        for ov in &self.options.overrides {
            if !names.contains(&ov.node.as_str()) {
                let mut d =
                    Diagnostic::error(ov.span, format!("`--set`: no node named `{}`", ov.node));
                if let Some(h) = did_you_mean(&ov.node, names.iter().copied()) {
                    d = d.with_help(h);
                }
                self.diags.push(d);
            }
        }
        for decl in decls {
            let mut decl = decl.clone();
            self.apply_overrides(&mut decl);
            match self.node(&decl, settings, models, table, &names) {
                Some(node) => {
                    self.by_name
                        .insert(decl.name.name.clone(), NodeId(self.nodes.len()));
                    self.nodes.push((node, decl));
                }
                None => {
                    self.failed.insert(decl.name.name.clone(), decl.span);
                    for e in &decl.params.entries {
                        if let ast::ValueKind::NodeRef(target) = &e.value.kind {
                            self.referenced_by_failed.insert(target.clone());
                        }
                    }
                }
            }
        }
    }

    pub(super) fn apply_overrides(&self, decl: &mut ast::NodeDecl) {
        for ov in self
            .options
            .kind_overrides
            .iter()
            .filter(|o| o.node == decl.name.name)
        {
            decl.kind = ast::Ident {
                name: ov.kind.clone(),
                span: ov.span,
            };
            // Keep what the new kind declares; an unknown kind is reported
            // by `node` at the flag.
            if let Some(kind) = self.options.registry.get(&ov.kind) {
                let declared: Vec<&str> = kind.params().iter().map(|p| p.name).collect();
                decl.params
                    .entries
                    .retain(|e| declared.contains(&e.key.name.as_str()));
            }
        }
        for ov in self
            .options
            .overrides
            .iter()
            .filter(|o| o.node == decl.name.name)
        {
            let entry = Entry {
                key: ast::Ident {
                    name: ov.param.clone(),
                    span: ov.span,
                },
                value: ov.value.clone(),
            };
            match decl
                .params
                .entries
                .iter_mut()
                .find(|e| e.key.name == ov.param)
            {
                Some(existing) => *existing = entry,
                None => decl.params.entries.push(entry),
            }
        }
    }

    /// Static checks, then `build`. None when the node cannot be configured.
    pub(super) fn node(
        &mut self,
        decl: &ast::NodeDecl,
        settings: &Settings,
        models: &[ModelInfo],
        table: &ModelTable,
        node_names: &[&str],
    ) -> Option<GraphNode> {
        let Some(kind) = self.options.registry.get(&decl.kind.name).cloned() else {
            let mut d = Diagnostic::error(
                decl.kind.span,
                format!("unknown node kind `{}`", decl.kind.name),
            )
            .with_label("not a registered kind");
            d = match did_you_mean(&decl.kind.name, self.options.registry.names()) {
                Some(h) => d.with_help(h),
                None => d.with_help("`wgraph kinds` lists every node kind"),
            };
            self.diags.push(d);
            return None;
        };
        let owner = format!("node `{}` ({})", decl.name.name, kind.name());
        let cx = ParamContext {
            sources: self.sources,
            settings: Some(settings),
            owner: owner.clone(),
        };
        let before = self.diags.len();
        let params = check_params(kind.params(), &decl.params, decl.span, &cx, &mut self.diags);
        for (name, value) in params.iter() {
            let span = params.span(name).unwrap_or(decl.span);
            match value {
                ParamValue::NodeRef(target) if !node_names.contains(&target.as_str()) => {
                    let mut d = Diagnostic::error(
                        span,
                        format!("`{name}` of {owner} refers to no node `{target}`"),
                    );
                    if let Some(h) = did_you_mean(target, node_names.iter().copied()) {
                        d = d.with_help(h);
                    }
                    // The node meant is not "uncalled" because of this typo.
                    if let Some(meant) = closest(target, node_names.iter().copied()) {
                        self.referenced_by_failed.insert(meant.to_string());
                    }
                    self.diags.push(d);
                }
                ParamValue::NodeRef(target) if *target == decl.name.name => {
                    self.diags.push(Diagnostic::error(
                        span,
                        format!("{owner} cannot call itself"),
                    ));
                }
                ParamValue::ModelRef(m) if !models.iter().any(|x| &x.name == m) => {
                    let mut d = Diagnostic::error(
                        span,
                        format!("`{name}` of {owner} refers to no model `{m}`"),
                    );
                    if let Some(h) = did_you_mean(m, models.iter().map(|x| x.name.as_str())) {
                        d = d.with_help(h);
                    }
                    self.diags.push(d);
                }
                ParamValue::ModelRefList(list) => {
                    for (i, m) in list.iter().enumerate() {
                        if models.iter().any(|x| &x.name == m) {
                            continue;
                        }
                        let mut d = Diagnostic::error(
                            item_span(decl, name, i).unwrap_or(span),
                            format!("`{name}` of {owner} refers to no model `{m}` (element {i})"),
                        );
                        if let Some(h) = did_you_mean(m, models.iter().map(|x| x.name.as_str())) {
                            d = d.with_help(h);
                        }
                        self.diags.push(d);
                    }
                }
                _ => {}
            }
        }
        if self.diags.len() > before {
            return None;
        }
        let base_dir = self.sources.get(decl.span.file).base_dir();
        let bcx = BuildContext {
            name: &decl.name.name,
            params: &params,
            settings,
            base_dir: &base_dir,
            output: &self.options.output,
            models: table,
        };
        let node: Arc<dyn Node> = match kind.build(&bcx) {
            Ok(n) => Arc::from(n),
            Err(e) if e.consequence => return None,
            Err(e) => {
                let span = e
                    .param
                    .as_deref()
                    .and_then(|p| {
                        e.item
                            .and_then(|i| item_span(decl, p, i))
                            .or_else(|| params.span(p))
                    })
                    .unwrap_or(decl.span);
                self.diags
                    .push(Diagnostic::error(span, format!("{owner}: {}", e.message)));
                return None;
            }
        };
        let inputs = node.inputs();
        let outputs = node.outputs();
        Some(GraphNode {
            name: decl.name.name.clone(),
            kind: kind.name(),
            params,
            input_types: vec![None; inputs.len()],
            output_types: Vec::new(),
            inputs,
            outputs,
            node,
            callees: Vec::new(),
            call_arg_slots: Vec::new(),
            is_callee: false,
            span: decl.span,
            decl: decl.clone(),
        })
    }
}
