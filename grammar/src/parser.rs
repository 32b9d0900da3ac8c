//! Text to spanned AST: the pest grammar (`world.pest`) and one `parse_<rule>`
//! function per grammar rule turning pest pairs into [`crate::ast`] nodes.
//!
//! # The language
//!
//! ```text
//! // line comments with //
//! world {
//!     seed = 42
//!     fps = 8
//!     resolution = 64x64
//!     frames_per_tick = 1
//!     provider = cpu
//! }
//!
//! include "parts/sim.world"
//!
//! model vae = "models/vae.onnx" { provider = cuda, device_id = 0 }
//!
//! node start: image { path = "start.png" }
//! node noise: noise { shape = [1, 3, H, W], seed = 7, mean = -0.5, std = 1e-1 }
//! node sampler: euler {
//!     steps = 4
//!     shift = 7.0
//!     denoiser = @flow            // uses node `flow` as a callable
//!     guidance = { scale = 5.0, conditions = ["text", "action"] }
//! }
//!
//! start.image -> mix.a          // edge: node.port -> node.port
//! noise -> mix.b                // a bare node name means "its only port"
//! feedback mix.out -> blend.prev init zeros(1x3x64x64)
//! feedback sampler.latent -> mem.latent init fill(0.5, 1x16x2x2)
//! feedback a.x -> b.y init npy("start.npy")
//! ```
//!
//! Statements, separated by whitespace (no semicolons):
//! - `world RECORD`: global settings;
//! - `include "path"`: splice another file in (see [`crate::load_graph`]);
//! - `model NAME = "path" RECORD?`: a model file and its options;
//! - `node NAME: KIND RECORD?`: a node and its parameters;
//! - `PORT -> PORT`: an edge, where `PORT` is `node.port` or a bare `node`;
//! - `feedback PORT -> PORT init INIT`: an edge into the next tick, with its
//!   first value `zeros(SHAPE)`, `fill(NUMBER, SHAPE)` or `npy("file.npy")`;
//!   `SHAPE` is one or more dimensions joined by `x` (`16`, `1x4xHxW`).
//!
//! Keywords are not reserved: a node may be called `world` or `node`.
//! Whitespace is spaces, tabs, newlines (and a byte-order mark); comments run
//! from `//` to the end of the line.
//!
//! Records are `{ key = value ... }`, entries separated by newlines and/or
//! commas (a trailing comma is fine); a key may appear only once. Values:
//! - integers `4`, `-1`; floats `7.0`, `-0.5`, `1e-3`, `2.5E+4` (a digit is
//!   required on both sides of the `.`); booleans `true`, `false`;
//! - strings `"..."` on one line, with escapes `\"`, `\\`, `\n`, `\t`;
//! - sizes `64x64`, `1x3xHxW`: two or more dimensions, each digits or an
//!   upper-case symbol `[A-Z][A-Z0-9_]*`;
//! - bare identifiers `cpu`, `H`; node references `@flow`;
//! - lists `[1, 2, 3]` (commas required, a trailing one allowed) and records.
//!
//! `[`/`{` may nest at most [`MAX_NESTING`] levels deep; deeper input is
//! rejected before parsing, so that no input can overflow the stack.

use crate::ast::*;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::source::{FileId, SourceMap, Span};
use pest::Parser as _;
use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pair;

/// How deep `[` and `{` may nest.
pub const MAX_NESTING: usize = 64;

// In a private module so that the generated `Rule` enum stays private.
mod generated {
    #[derive(pest_derive::Parser)]
    #[grammar = "world.pest"]
    pub(super) struct WorldParser;
}
use generated::{Rule, WorldParser};

/// Parses one `.world` file of `sources`.
///
/// `include` statements are kept as [`Statement::Include`]; use
/// [`crate::load_graph`] to resolve them. On error, returns every problem
/// found: at most one syntax error, or all errors of the AST-building step
/// (duplicate keys, bad escapes, out-of-range numbers).
pub fn parse_file(sources: &SourceMap, file: FileId) -> Result<WorldFile, Diagnostics> {
    match parse_file_partial(sources, file) {
        (Some(parsed), diags) if !diags.has_errors() => Ok(parsed),
        (_, diags) => Err(diags),
    }
}

/// Parses a file whose whole text is one value (such as the `VALUE` of a
/// `--set node.param=VALUE` flag, added to `sources` as a pseudo-file).
pub fn parse_value(sources: &SourceMap, file: FileId) -> Result<Value, Diagnostics> {
    let mut builder = AstBuilder::new(file);
    let value = builder
        .run(Rule::value_file, &sources.get(file).text)
        .and_then(|pair| builder.parse_value_file(pair));
    match value {
        Some(value) if !builder.diags.has_errors() => Ok(value),
        _ => Err(builder.diags),
    }
}

/// Like [`parse_file`], but keeps what could be built next to the errors, so
/// that the loader can still follow the includes of a file with, say, a
/// duplicate key. `None` after a syntax error.
pub(crate) fn parse_file_partial(
    sources: &SourceMap,
    file: FileId,
) -> (Option<WorldFile>, Diagnostics) {
    let mut builder = AstBuilder::new(file);
    let parsed = builder
        .run(Rule::file, &sources.get(file).text)
        .map(|pair| builder.parse_file(pair));
    (parsed, builder.diags)
}

/// Turns pest pairs of one file into AST nodes, collecting diagnostics.
struct AstBuilder {
    file: FileId,
    diags: Diagnostics,
}

/// Punctuation and keywords: rules only so that errors can name them.
fn is_token(rule: Rule) -> bool {
    use Rule::*;
    matches!(
        rule,
        arrow
            | dot
            | eq
            | colon
            | comma
            | lparen
            | rparen
            | lbrace
            | rbrace
            | lbracket
            | rbracket
            | kw_world
            | kw_include
            | kw_model
            | kw_node
            | kw_feedback
            | kw_init
            | kw_zeros
            | kw_fill
            | kw_npy
            | EOI
    )
}

/// The children of a pair that carry meaning (no punctuation or keywords).
fn children<'i>(pair: Pair<'i, Rule>) -> impl Iterator<Item = Pair<'i, Rule>> {
    pair.into_inner().filter(|p| !is_token(p.as_rule()))
}

/// The first meaningful child, which the grammar guarantees.
fn child<'i>(pair: Pair<'i, Rule>) -> Pair<'i, Rule> {
    let rule = pair.as_rule();
    children(pair)
        .next()
        .unwrap_or_else(|| panic!("grammar invariant: rule {rule:?} has an inner rule"))
}

impl AstBuilder {
    fn new(file: FileId) -> Self {
        AstBuilder {
            file,
            diags: Diagnostics::new(),
        }
    }

    fn error(&mut self, span: Span, message: impl Into<String>) {
        self.diags.push(Diagnostic::error(span, message));
    }

    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let s = pair.as_span();
        Span::new(self.file, s.start(), s.end())
    }

    /// From the first to the last inner token: unlike the pair's own span,
    /// this leaves out whitespace that pest skipped before a missing
    /// optional element (`node a: b` followed by no record).
    fn tight_span(&self, pair: &Pair<'_, Rule>) -> Span {
        let mut inner = pair.clone().into_inner();
        match (inner.next(), inner.last()) {
            (Some(first), Some(last)) => self.span(&first).to(self.span(&last)),
            (Some(only), None) => self.span(&only),
            _ => self.span(pair),
        }
    }

    /// Checks nesting depth and strings, then runs pest. On failure pushes one
    /// diagnostic and returns `None`.
    fn run<'i>(&mut self, rule: Rule, text: &'i str) -> Option<Pair<'i, Rule>> {
        if let Some(diag) = prescan(self.file, text) {
            self.diags.push(diag);
            return None;
        }
        match WorldParser::parse(rule, text) {
            Ok(mut pairs) => Some(pairs.next().expect("pest returns the entry rule's pair")),
            Err(err) => {
                self.diags.push(syntax_error(self.file, text, &err));
                None
            }
        }
    }

    // ---- statements ------------------------------------------------------

    fn parse_file(&mut self, pair: Pair<'_, Rule>) -> WorldFile {
        let statements = children(pair)
            .filter_map(|p| self.parse_statement(p))
            .collect();
        WorldFile {
            file: self.file,
            statements,
        }
    }

    fn parse_value_file(&mut self, pair: Pair<'_, Rule>) -> Option<Value> {
        self.parse_value(child(pair))
    }

    fn parse_statement(&mut self, pair: Pair<'_, Rule>) -> Option<Statement> {
        let inner = child(pair);
        Some(match inner.as_rule() {
            Rule::settings => Statement::Settings(self.parse_settings(inner)?),
            Rule::include => Statement::Include(self.parse_include(inner)?),
            Rule::model => Statement::Model(self.parse_model(inner)?),
            Rule::node => Statement::Node(self.parse_node(inner)?),
            Rule::feedback => Statement::Feedback(self.parse_feedback(inner)?),
            Rule::edge => Statement::Edge(self.parse_edge(inner)),
            other => unreachable!("grammar invariant: {other:?} is not a statement"),
        })
    }

    fn parse_settings(&mut self, pair: Pair<'_, Rule>) -> Option<Record> {
        self.parse_record(child(pair))
    }

    fn parse_include(&mut self, pair: Pair<'_, Rule>) -> Option<Include> {
        let span = self.tight_span(&pair);
        let path = self.parse_string(child(pair))?;
        Some(Include { path, span })
    }

    fn parse_model(&mut self, pair: Pair<'_, Rule>) -> Option<ModelDecl> {
        let span = self.tight_span(&pair);
        let mut inner = children(pair);
        let name = self.parse_ident(inner.next().expect("model has a name"));
        let path_pair = inner.next().expect("model has a path");
        let path_span = self.span(&path_pair);
        let path = self.parse_string(path_pair);
        let options = self.parse_optional_record(inner.next(), span)?;
        Some(ModelDecl {
            name,
            path: path?,
            path_span,
            options,
            span,
        })
    }

    fn parse_node(&mut self, pair: Pair<'_, Rule>) -> Option<NodeDecl> {
        let span = self.tight_span(&pair);
        let mut inner = children(pair);
        let name = self.parse_ident(inner.next().expect("node has a name"));
        let kind = self.parse_ident(inner.next().expect("node has a kind"));
        let params = self.parse_optional_record(inner.next(), span)?;
        Some(NodeDecl {
            name,
            kind,
            params,
            span,
        })
    }

    /// A declaration's record, or an empty one at the end of `decl` when it
    /// has none.
    fn parse_optional_record(
        &mut self,
        pair: Option<Pair<'_, Rule>>,
        decl: Span,
    ) -> Option<Record> {
        match pair {
            Some(pair) => self.parse_record(pair),
            None => Some(Record {
                entries: Vec::new(),
                span: Span {
                    start: decl.end,
                    ..decl
                },
            }),
        }
    }

    fn parse_edge(&mut self, pair: Pair<'_, Rule>) -> Edge {
        let span = self.tight_span(&pair);
        let mut inner = children(pair);
        let from = self.parse_port_ref(inner.next().expect("edge has a source"));
        let to = self.parse_port_ref(inner.next().expect("edge has a target"));
        Edge { from, to, span }
    }

    fn parse_feedback(&mut self, pair: Pair<'_, Rule>) -> Option<Feedback> {
        let span = self.tight_span(&pair);
        let mut inner = children(pair);
        let from = self.parse_port_ref(inner.next().expect("feedback has a source"));
        let to = self.parse_port_ref(inner.next().expect("feedback has a target"));
        let init = self.parse_init(inner.next().expect("feedback has an init"))?;
        Some(Feedback {
            from,
            to,
            init,
            span,
        })
    }

    fn parse_port_ref(&mut self, pair: Pair<'_, Rule>) -> PortRef {
        let span = self.span(&pair);
        let mut inner = children(pair);
        let node = self.parse_ident(inner.next().expect("port ref has a node"));
        let port = inner.next().map(|p| {
            if p.as_rule() == Rule::string {
                // A quoted port name: `enc."input.1"`.
                let span = self.span(&p);
                let name = self.parse_string(p).unwrap_or_default();
                Ident { name, span }
            } else {
                self.parse_ident(p)
            }
        });
        PortRef { node, port, span }
    }

    fn parse_init(&mut self, pair: Pair<'_, Rule>) -> Option<Init> {
        let inner = child(pair);
        let span = self.span(&inner);
        match inner.as_rule() {
            Rule::zeros => {
                let shape = self.parse_shape(child(inner))?;
                Some(Init::Zeros { shape, span })
            }
            Rule::fill => {
                let mut args = children(inner);
                let value = self.parse_number(args.next().expect("fill has a value"));
                let shape = self.parse_shape(args.next().expect("fill has a shape"));
                Some(Init::Fill {
                    value: value?,
                    shape: shape?,
                    span,
                })
            }
            Rule::npy => {
                let path = self.parse_string(child(inner))?;
                Some(Init::Npy { path, span })
            }
            other => unreachable!("grammar invariant: {other:?} is not an init"),
        }
    }

    fn parse_shape(&mut self, pair: Pair<'_, Rule>) -> Option<Vec<DimExpr>> {
        let span = self.span(&pair);
        self.parse_dims(pair.as_str(), span)
    }

    // ---- values ----------------------------------------------------------

    fn parse_record(&mut self, pair: Pair<'_, Rule>) -> Option<Record> {
        let span = self.span(&pair);
        let mut entries: Vec<Entry> = Vec::new();
        let mut ok = true;
        for entry in children(pair) {
            let Some(entry) = self.parse_entry(entry) else {
                ok = false;
                continue;
            };
            if let Some(first) = entries.iter().find(|e| e.key.name == entry.key.name) {
                let diag = Diagnostic::error(
                    entry.key.span,
                    format!("duplicate key `{}`", entry.key.name),
                )
                .with_label("defined again here")
                .with_secondary(first.key.span, "first defined here");
                self.diags.push(diag);
                ok = false;
            } else {
                entries.push(entry);
            }
        }
        ok.then_some(Record { entries, span })
    }

    fn parse_entry(&mut self, pair: Pair<'_, Rule>) -> Option<Entry> {
        let mut inner = children(pair);
        let key = self.parse_ident(inner.next().expect("entry has a key"));
        let value = self.parse_value(inner.next().expect("entry has a value"))?;
        Some(Entry { key, value })
    }

    fn parse_value(&mut self, pair: Pair<'_, Rule>) -> Option<Value> {
        let inner = child(pair);
        let span = self.span(&inner);
        let kind = match inner.as_rule() {
            Rule::size => ValueKind::Size(self.parse_size(inner)?),
            Rule::float => ValueKind::Float(self.parse_float(inner)?),
            Rule::int => ValueKind::Int(self.parse_int(inner)?),
            Rule::bool => ValueKind::Bool(self.parse_bool(inner)),
            Rule::string => ValueKind::Str(self.parse_string(inner)?),
            Rule::node_ref => ValueKind::NodeRef(self.parse_node_ref(inner)),
            Rule::list => ValueKind::List(self.parse_list(inner)?),
            Rule::record => ValueKind::Record(self.parse_record(inner)?),
            Rule::ident => ValueKind::Ident(inner.as_str().to_owned()),
            other => unreachable!("grammar invariant: {other:?} is not a value"),
        };
        Some(Value { kind, span })
    }

    fn parse_list(&mut self, pair: Pair<'_, Rule>) -> Option<Vec<Value>> {
        // Convert every element (to report all errors) before giving up.
        let values: Vec<Option<Value>> = children(pair).map(|p| self.parse_value(p)).collect();
        values.into_iter().collect()
    }

    fn parse_node_ref(&mut self, pair: Pair<'_, Rule>) -> String {
        child(pair).as_str().to_owned()
    }

    fn parse_size(&mut self, pair: Pair<'_, Rule>) -> Option<Vec<DimExpr>> {
        let span = self.span(&pair);
        self.parse_dims(pair.as_str(), span)
    }

    /// `1x3xHxW` (already checked by the grammar) into dimensions.
    fn parse_dims(&mut self, text: &str, span: Span) -> Option<Vec<DimExpr>> {
        let mut dims = Vec::new();
        let mut offset = span.start as usize;
        let mut ok = true;
        // Dimensions are digits or upper case, so `x` only ever separates them.
        for dim in text.split('x') {
            if dim.starts_with(|c: char| c.is_ascii_digit()) {
                match dim.parse::<u64>() {
                    Ok(n) => dims.push(DimExpr::Known(n)),
                    Err(_) => {
                        let at = Span::new(self.file, offset, offset + dim.len());
                        self.error(at, "size dimension out of range");
                        ok = false;
                    }
                }
            } else {
                dims.push(DimExpr::Symbol(dim.to_owned()));
            }
            offset += dim.len() + 1;
        }
        ok.then_some(dims)
    }

    fn parse_int(&mut self, pair: Pair<'_, Rule>) -> Option<i64> {
        match pair.as_str().parse() {
            Ok(n) => Some(n),
            Err(_) => {
                self.error(self.span(&pair), "integer literal out of range");
                None
            }
        }
    }

    fn parse_float(&mut self, pair: Pair<'_, Rule>) -> Option<f64> {
        match pair.as_str().parse::<f64>() {
            Ok(x) if x.is_finite() => Some(x),
            _ => {
                self.error(self.span(&pair), "number literal out of range");
                None
            }
        }
    }

    /// An `int` or `float` pair as a float (`fill(1, ...)` is fine).
    fn parse_number(&mut self, pair: Pair<'_, Rule>) -> Option<f64> {
        self.parse_float(pair)
    }

    fn parse_bool(&mut self, pair: Pair<'_, Rule>) -> bool {
        pair.as_str() == "true"
    }

    /// A string literal without its quotes, escapes resolved; every unknown
    /// escape is reported.
    fn parse_string(&mut self, pair: Pair<'_, Rule>) -> Option<String> {
        let raw = pair.as_str();
        let body = &raw[1..raw.len() - 1]; // the grammar guarantees both quotes
        let body_start = pair.as_span().start() + 1;
        let mut out = String::with_capacity(body.len());
        let mut ok = true;
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            let (_, escaped) = chars.next().expect("the grammar forbids a trailing `\\`");
            match escaped {
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                'n' => out.push('\n'),
                't' => out.push('\t'),
                other => {
                    let at = body_start + i;
                    let span = Span::new(self.file, at, at + 1 + other.len_utf8());
                    let diag = Diagnostic::error(
                        span,
                        format!("unknown escape `\\{}` in string", other.escape_debug()),
                    )
                    .with_help(r#"the escapes are `\"`, `\\`, `\n` and `\t`"#);
                    self.diags.push(diag);
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    fn parse_ident(&mut self, pair: Pair<'_, Rule>) -> Ident {
        Ident {
            name: pair.as_str().to_owned(),
            span: self.span(&pair),
        }
    }
}

// ---- checks before pest ------------------------------------------------------

/// Rejects `[`/`{` nesting deeper than [`MAX_NESTING`] (pest recurses once
/// per level) and unterminated strings (which get a clearer message here
/// than from pest). Skips strings and `//` comments as the grammar does.
fn prescan(file: FileId, text: &str) -> Option<Diagnostic> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let start = i;
                i += 1;
                loop {
                    match bytes.get(i) {
                        None | Some(b'\n') => {
                            return Some(
                                Diagnostic::error(
                                    Span::new(file, start, start + 1),
                                    "unterminated string",
                                )
                                .with_label("this string has no closing `\"` on its line"),
                            );
                        }
                        Some(b'"') => break,
                        Some(b'\\') if bytes.get(i + 1).is_some_and(|&b| b != b'\n') => i += 2,
                        Some(_) => i += 1,
                    }
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(Diagnostic::error(
                        Span::new(file, i, i + 1),
                        format!("nesting deeper than {MAX_NESTING} levels"),
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

// ---- syntax errors -------------------------------------------------------------

const STATEMENT: &str =
    "a statement: `node`, `model`, `include`, `world`, `feedback` or an edge `a.out -> b.in`";
const VALUE: &str = "a value (number, string, size like 64x64, list, record, identifier or @node)";
const INIT: &str =
    r#"an initial value: `zeros(SHAPE)`, `fill(NUMBER, SHAPE)` or `npy("file.npy")`"#;

/// What a rule is, for "expected ..." messages.
fn describe_rule(rule: Rule) -> &'static str {
    use Rule::*;
    match rule {
        file | statement => STATEMENT,
        value_file | value => VALUE,
        EOI => "end of file",
        settings | kw_world => "`world`",
        include | kw_include => "`include`",
        model | kw_model => "`model`",
        node | kw_node => "`node`",
        feedback | kw_feedback => "`feedback`",
        kw_init => "`init`",
        edge | port_ref => "a port `node.port` or `node`",
        init | zeros | fill | npy | kw_zeros | kw_fill | kw_npy => INIT,
        shape => "a shape like 1x3x64x64",
        record => "a record `{ key = value }`",
        entry => "an entry `key = value`",
        list => "a list `[...]`",
        node_ref => "a node reference `@name`",
        size => "a size like 64x64",
        float | int | number | exponent => "a number",
        dim => "a dimension",
        bool => "`true` or `false`",
        string => "a string",
        key => "a key",
        ident | ident_char => "an identifier",
        WHITESPACE | COMMENT => "whitespace",
        arrow => "`->`",
        dot => "`.`",
        eq => "`=`",
        colon => "`:`",
        comma => "`,`",
        lparen => "`(`",
        rparen => "`)`",
        lbrace => "`{`",
        rbrace => "`}`",
        lbracket => "`[`",
        rbracket => "`]`",
    }
}

/// "expected A, B or C" from pest's positive attempts.
fn expected_message(positives: &[Rule]) -> String {
    let mut names: Vec<&str> = Vec::new();
    let statement_expected = positives.contains(&Rule::statement);
    for &rule in positives {
        // "end of file" is implied when a statement could come.
        if rule == Rule::EOI && statement_expected {
            continue;
        }
        let name = describe_rule(rule);
        if !names.contains(&name) {
            names.push(name);
        }
    }
    match names.split_last() {
        None => "syntax error".to_owned(),
        Some((last, [])) => format!("expected {last}"),
        Some((last, rest)) => format!("expected {} or {last}", rest.join(", ")),
    }
}

/// What stands at `pos`, for "..., found X".
fn describe_found(text: &str, pos: usize) -> String {
    let rest = text.get(pos..).unwrap_or("");
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    match rest.chars().next() {
        None => "end of file".to_owned(),
        Some('\n' | '\r') => "end of line".to_owned(),
        Some(c) if c.is_whitespace() => "a space".to_owned(),
        Some('"') => "a string".to_owned(),
        Some(c) if is_word(c) => {
            let word: String = rest.chars().take_while(|&c| is_word(c)).take(40).collect();
            format!("`{word}`")
        }
        Some(_) if rest.starts_with("->") => "`->`".to_owned(),
        Some(c) => format!("`{}`", c.escape_debug()),
    }
}

fn syntax_error(file: FileId, text: &str, err: &pest::error::Error<Rule>) -> Diagnostic {
    let pos = match err.location {
        InputLocation::Pos(pos) => pos,
        InputLocation::Span((start, _)) => start,
    };
    let expected = match &err.variant {
        ErrorVariant::ParsingError { positives, .. } => expected_message(positives),
        ErrorVariant::CustomError { message } => message.clone(),
    };
    let len = text
        .get(pos..)
        .and_then(|s| s.chars().next())
        .map_or(0, char::len_utf8);
    let d = Diagnostic::error(
        Span::new(file, pos, pos + len),
        format!("{expected}, found {}", describe_found(text, pos)),
    );
    match quote_port_hint(text, pos) {
        Some(quoted) => d.with_help(format!(
            "a port name that is not an identifier is quoted: `{quoted}`"
        )),
        None => d,
    }
}

/// `net."35"` for a syntax error at the `.` of `net.35` (or the second `.`
/// of `enc.input.1`): a port name that is not an identifier, written
/// unquoted. None when the error is not at such a dot.
fn quote_port_hint(text: &str, pos: usize) -> Option<String> {
    // pest stops at the dot, or just after it (inside `node.port`).
    let pos = match text.get(..pos) {
        Some(b) if b.ends_with('.') => pos - 1,
        _ => pos,
    };
    let after = text.get(pos..)?.strip_prefix('.')?;
    let before = text.get(..pos)?;
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    if !before.ends_with(is_word) {
        return None;
    }
    let start = before
        .char_indices()
        .rev()
        .take_while(|&(_, c)| is_word(c) || c == '.')
        .last()
        .map_or(pos, |(i, _)| i);
    let written = before.get(start..)?;
    let (node, head) = match written.split_once('.') {
        Some((node, head)) => (node, Some(head)),
        None => (written, None),
    };
    // The port's rest: up to a space, an arrow or the end of the line.
    let end = after
        .char_indices()
        .find(|&(i, c)| c.is_whitespace() || after[i..].starts_with("->"))
        .map_or(after.len(), |(i, _)| i);
    let tail = &after[..end];
    if node.is_empty()
        || tail.is_empty()
        || tail.starts_with('"')
        || !node.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
    {
        return None;
    }
    let port = match head {
        Some(head) => format!("{head}.{tail}"),
        None => tail.to_string(),
    };
    Some(format!("{node}.{}", crate::diagnostic::port_syntax(&port)))
}
