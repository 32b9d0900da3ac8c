//! Located errors, collected rather than thrown.
//!
//! Every check in wgraph (syntax, names, parameters, wiring, shapes, files)
//! reports a [`Diagnostic`]: a message in the user's words, a primary [`Label`]
//! pointing at the offending text, optional secondary labels (for example the
//! first definition of a duplicated name) and an optional help line (a "did you
//! mean"). Checks push into a [`Diagnostics`] list so that one run reports all
//! errors of a file. [`render`] prints them with source snippets and carets via
//! `codespan-reporting`.

use crate::source::{SourceMap, Span};
use codespan_reporting::diagnostic as cs;
use codespan_reporting::files::{Error as FilesError, Files};
use codespan_reporting::term;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// A pointer at source text with a short note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

/// One located problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    pub primary: Label,
    pub secondary: Vec<Label>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            primary: Label {
                span,
                message: String::new(),
            },
            secondary: Vec::new(),
            help: None,
        }
    }

    pub fn warning(span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(span, message)
        }
    }

    /// A note under the caret of the primary label.
    pub fn with_label(mut self, message: impl Into<String>) -> Self {
        self.primary.message = message.into();
        self
    }

    pub fn with_secondary(mut self, span: Span, message: impl Into<String>) -> Self {
        self.secondary.push(Label {
            span,
            message: message.into(),
        });
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:col: message`, one line, for logs and tests.
    pub fn short(&self, sources: &SourceMap) -> String {
        format!("{}: {}", sources.location(self.primary.span), self.message)
    }
}

/// A list of diagnostics that checks append to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }
    /// Sorted by file and position, for stable output.
    pub fn sorted(mut self) -> Self {
        self.0.sort_by_key(|d| {
            (
                d.primary.span.file,
                d.primary.span.start,
                d.primary.span.end,
            )
        });
        self
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

/// "did you mean `x`?" for the closest candidate, when one is close enough.
/// A port name as it is written in a graph: bare when it is an identifier,
/// else quoted (`"input.1"`), so help texts suggest syntax that parses.
pub fn port_syntax(name: &str) -> String {
    let ident = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name != "true"
        && name != "false";
    if ident {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// "did you mean `x`?" for the candidate closest to `word`, if one is close.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    closest(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// The candidate closest to `word` (Jaro–Winkler above 0.8), if any.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

struct CsFiles<'a>(&'a SourceMap);

impl<'a> Files<'a> for CsFiles<'a> {
    type FileId = crate::source::FileId;
    type Name = &'a str;
    type Source = &'a str;

    fn name(&'a self, id: Self::FileId) -> Result<Self::Name, FilesError> {
        Ok(&self.0.get(id).name)
    }
    fn source(&'a self, id: Self::FileId) -> Result<Self::Source, FilesError> {
        Ok(&self.0.get(id).text)
    }
    fn line_index(&'a self, id: Self::FileId, byte_index: usize) -> Result<usize, FilesError> {
        Ok(self.0.get(id).line_col(byte_index).0 - 1)
    }
    fn line_range(
        &'a self,
        id: Self::FileId,
        line_index: usize,
    ) -> Result<std::ops::Range<usize>, FilesError> {
        let text = &self.0.get(id).text;
        let starts: Vec<usize> = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let start = *starts.get(line_index).ok_or(FilesError::LineTooLarge {
            given: line_index,
            max: starts.len() - 1,
        })?;
        let end = starts.get(line_index + 1).copied().unwrap_or(text.len());
        Ok(start..end)
    }
}

/// Renders diagnostics with snippets and carets. `color` adds ANSI colours.
pub fn render(sources: &SourceMap, diagnostics: &Diagnostics, color: bool) -> String {
    use term::termcolor::{Buffer, WriteColor};
    let mut buffer = if color {
        Buffer::ansi()
    } else {
        Buffer::no_color()
    };
    let config = term::Config::default();
    let files = CsFiles(sources);
    for d in diagnostics.iter() {
        let mut labels = vec![
            cs::Label::primary(d.primary.span.file, d.primary.span.range())
                .with_message(d.primary.message.clone()),
        ];
        labels.extend(d.secondary.iter().map(|l| {
            cs::Label::secondary(l.span.file, l.span.range()).with_message(l.message.clone())
        }));
        let mut cd = match d.severity {
            Severity::Error => cs::Diagnostic::error(),
            Severity::Warning => cs::Diagnostic::warning(),
        }
        .with_message(d.message.clone())
        .with_labels(labels);
        if let Some(help) = &d.help {
            cd = cd.with_notes(vec![format!("help: {help}")]);
        }
        // Rendering into a memory buffer only fails on invalid spans; fall
        // back to the one-line form rather than losing the error.
        if term::emit(&mut buffer, &config, &files, &cd).is_err() {
            let _ = std::io::Write::write_all(
                &mut buffer,
                format!("error: {}\n", d.short(sources)).as_bytes(),
            );
        }
        let _ = buffer.reset();
    }
    String::from_utf8_lossy(buffer.as_slice()).into_owned()
}
