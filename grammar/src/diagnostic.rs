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
        let line = format!("{}: {}", sources.location(self.primary.span), self.message);
        escape_controls(&line).into_owned()
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

/// Replaces the characters a terminal would act on instead of showing —
/// C0 controls but tab and line ends, DEL, C1 controls — by visible ones:
/// the Unicode control pictures (`\x1b` becomes `␛`, `\0` `␀`, DEL `␡`),
/// U+FFFD for C1. A `\r` is kept only before `\n` (CRLF files). One
/// character becomes one character, so columns stay right.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.char_indices().any(|(i, c)| needs_escape(text, i, c)) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.char_indices()
            .map(|(i, c)| {
                if needs_escape(text, i, c) {
                    visible(c)
                } else {
                    c
                }
            })
            .collect(),
    )
}

/// Text from outside (a network client's prompt or message type) made safe
/// to print on one terminal line: like [`escape_controls`], but line ends
/// and tabs are shown too (no forged log lines), and bidirectional
/// overrides become U+FFFD (nothing reorders what is shown).
pub fn escape_line(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(acts_on_a_line) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| if acts_on_a_line(c) { visible(c) } else { c })
            .collect(),
    )
}

/// Characters a terminal acts on, or that reorder the text around them.
pub fn acts_on_a_line(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn needs_escape(text: &str, i: usize, c: char) -> bool {
    match c {
        '\t' | '\n' => false,
        '\r' => !text[i + 1..].starts_with('\n'),
        c => c.is_control(),
    }
}

fn visible(c: char) -> char {
    match c as u32 {
        n @ 0..=0x1f => char::from_u32(0x2400 + n).unwrap_or(char::REPLACEMENT_CHARACTER),
        0x7f => '\u{2421}',
        _ => char::REPLACEMENT_CHARACTER,
    }
}

/// A file as shown in snippets: its text with [`escape_controls`] applied,
/// and where its byte offsets moved (each replaced character may change
/// length: `(original offset after it, bytes added so far)`).
struct Shown {
    name: String,
    text: String,
    line_starts: Vec<usize>,
    shifts: Vec<(usize, isize)>,
}

impl Shown {
    fn new(name: &str, text: &str) -> Self {
        let mut shown = String::with_capacity(text.len());
        let mut shifts = Vec::new();
        let mut added = 0isize;
        for (i, c) in text.char_indices() {
            if needs_escape(text, i, c) {
                let v = visible(c);
                shown.push(v);
                added += v.len_utf8() as isize - c.len_utf8() as isize;
                shifts.push((i + c.len_utf8(), added));
            } else {
                shown.push(c);
            }
        }
        let line_starts = std::iter::once(0)
            .chain(shown.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Shown {
            name: escape_controls(name).into_owned(),
            text: shown,
            line_starts,
            shifts,
        }
    }

    /// The shown offset of an original byte offset.
    fn offset(&self, original: usize) -> usize {
        let i = self.shifts.partition_point(|(at, _)| *at <= original);
        let added = if i == 0 { 0 } else { self.shifts[i - 1].1 };
        (original as isize + added).max(0) as usize
    }

    fn range(&self, span: Span) -> std::ops::Range<usize> {
        self.offset(span.start as usize)..self.offset(span.end as usize)
    }
}

struct CsFiles(Vec<Shown>);

impl<'a> Files<'a> for CsFiles {
    type FileId = crate::source::FileId;
    type Name = &'a str;
    type Source = &'a str;

    fn name(&'a self, id: Self::FileId) -> Result<Self::Name, FilesError> {
        Ok(&self.get(id)?.name)
    }
    fn source(&'a self, id: Self::FileId) -> Result<Self::Source, FilesError> {
        Ok(&self.get(id)?.text)
    }
    fn line_index(&'a self, id: Self::FileId, byte_index: usize) -> Result<usize, FilesError> {
        let starts = &self.get(id)?.line_starts;
        Ok(starts
            .partition_point(|&s| s <= byte_index)
            .saturating_sub(1))
    }
    fn line_range(
        &'a self,
        id: Self::FileId,
        line_index: usize,
    ) -> Result<std::ops::Range<usize>, FilesError> {
        let file = self.get(id)?;
        let starts = &file.line_starts;
        let start = *starts.get(line_index).ok_or(FilesError::LineTooLarge {
            given: line_index,
            max: starts.len() - 1,
        })?;
        let end = starts
            .get(line_index + 1)
            .copied()
            .unwrap_or(file.text.len());
        Ok(start..end)
    }
}

impl CsFiles {
    fn get(&self, id: crate::source::FileId) -> Result<&Shown, FilesError> {
        self.0.get(id.0 as usize).ok_or(FilesError::FileMissing)
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
    let files = CsFiles(
        sources
            .files()
            .map(|(_, f)| Shown::new(&f.name, &f.text))
            .collect(),
    );
    let esc = |s: &str| escape_controls(s).into_owned();
    let range = |span: Span| {
        files
            .get(span.file)
            .map_or_else(|_| span.range(), |f| f.range(span))
    };
    for d in diagnostics.iter() {
        let mut labels = vec![
            cs::Label::primary(d.primary.span.file, range(d.primary.span))
                .with_message(esc(&d.primary.message)),
        ];
        labels.extend(d.secondary.iter().map(|l| {
            cs::Label::secondary(l.span.file, range(l.span)).with_message(esc(&l.message))
        }));
        let mut cd = match d.severity {
            Severity::Error => cs::Diagnostic::error(),
            Severity::Warning => cs::Diagnostic::warning(),
        }
        .with_message(esc(&d.message))
        .with_labels(labels);
        if let Some(help) = &d.help {
            cd = cd.with_notes(vec![format!("help: {}", esc(help))]);
        }
        // Rendering into a memory buffer only fails on invalid spans; fall
        // back to the one-line form rather than losing the error.
        if term::emit(&mut buffer, &config, &files, &cd).is_err() {
            let _ = std::io::Write::write_all(
                &mut buffer,
                format!("error: {}\n", esc(&d.short(sources))).as_bytes(),
            );
        }
        let _ = buffer.reset();
    }
    String::from_utf8_lossy(buffer.as_slice()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bytes_are_shown_not_sent_to_the_terminal() {
        assert_eq!(
            escape_controls("a\x1b[31mb\0\x7f\u{9b}"),
            "a\u{241b}[31mb\u{2400}\u{2421}\u{fffd}"
        );
        assert_eq!(escape_controls("tab\tcrlf\r\n"), "tab\tcrlf\r\n");
        assert_eq!(escape_controls("bare\rcr"), "bare\u{240d}cr");
        let mut sources = SourceMap::new();
        let text = "node \x1b[2J\x1b[31m: x { }\nnode b: \x1b y { }\n".to_string();
        let file = sources.add("g\x07.world", None, text.clone());
        let at = text.find(" y").unwrap() + 1;
        let d = Diagnostic::error(Span::new(file, at, at + 1), "unknown kind `\x1b[31m`")
            .with_label("here \x1b")
            .with_help("\x1b");
        let out = render(&sources, &Diagnostics::from(d.clone()), false);
        assert!(!out.contains('\x1b') && !out.contains('\x07'), "{out:?}");
        assert!(out.contains("unknown kind `\u{241b}[31m`"), "{out}");
        // The location counts characters of the original line; the caret
        // sits under `y` in the shown line.
        assert!(out.contains("g\u{2407}.world:2:11"), "{out}");
        let line = out.lines().find(|l| l.contains("node b:")).unwrap();
        let caret = out.lines().find(|l| l.contains('^')).unwrap();
        assert_eq!(
            line.chars().position(|c| c == 'y'),
            caret.chars().position(|c| c == '^'),
            "{out}"
        );
        assert!(!d.short(&sources).contains('\x1b'));
    }
}
