//! Loading a graph: read the root file, parse it, and splice in its includes.

use crate::ast::{Graph, Include, Statement};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::parser::parse_file_partial;
use crate::source::{FileId, SourceMap, Span};
use std::collections::HashMap;
use std::io;
use std::path::{Component, Path, PathBuf};

/// How deep `include`s may nest (a guard against runaway recursion that
/// cycle detection cannot see, such as symbolic-link loops).
pub const MAX_INCLUDE_DEPTH: usize = 64;

/// How many `include`s one graph may expand in all. A file included from
/// several places is read and spliced each time, so a few lines that
/// include a file twice at each of 30 levels would otherwise expand 2³⁰
/// times.
pub const MAX_INCLUDES: usize = 1000;

/// How many bytes of graph text one graph may expand to in all (the root
/// file and every include, counted each time it is spliced in).
pub const MAX_EXPANDED_BYTES: usize = 16 << 20;

/// Where [`load_graph`] reads files from.
pub trait FileLoader {
    /// The bytes of the file at `path`.
    fn load(&self, path: &Path) -> io::Result<Vec<u8>>;
}

/// Reads files from disk.
#[derive(Debug, Clone, Copy, Default)]
pub struct FsLoader;

impl FileLoader for FsLoader {
    fn load(&self, path: &Path) -> io::Result<Vec<u8>> {
        crate::input::read(path, crate::input::GRAPH)
    }
}

/// Files held in memory, for tests. Paths are looked up exactly as
/// [`load_graph`] asks for them: joined and normalized, such as
/// `graphs/parts/b.world`.
#[derive(Debug, Clone, Default)]
pub struct MemLoader(pub HashMap<PathBuf, Vec<u8>>);

impl MemLoader {
    /// An empty set of files.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a file.
    pub fn with(mut self, path: impl Into<PathBuf>, bytes: impl Into<Vec<u8>>) -> Self {
        self.0.insert(path.into(), bytes.into());
        self
    }
}

impl FileLoader for MemLoader {
    fn load(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    }
}

/// Reads and parses `root` and, recursively, the files it includes.
///
/// An include's path is relative to the directory of the including file; its
/// statements replace the `include` statement. Every file is added to
/// `sources` (named by its path, as given or joined) so that diagnostics can
/// point into it. All errors of all files are collected: unreadable files,
/// text that is not UTF-8, include cycles, syntax errors (one per file) and
/// AST errors such as duplicate keys. Name checks are [`crate::validate()`]'s.
pub fn load_graph(
    root: &Path,
    sources: &mut SourceMap,
    loader: &dyn FileLoader,
) -> Result<Graph, Diagnostics> {
    let root = normalize(root);
    let name = root.display().to_string();
    let bytes = match loader.load(&root) {
        Ok(bytes) => bytes,
        Err(err) => {
            let file = sources.add(name.clone(), Some(root), String::new());
            let message = format!("cannot read `{name}`: {err}");
            return Err(Diagnostic::error(Span::new(file, 0, 0), message).into());
        }
    };
    let root_file = match String::from_utf8(bytes) {
        Ok(text) => sources.add(name, Some(root.clone()), text),
        Err(err) => {
            let offset = err.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(err.as_bytes()).into_owned();
            let file = sources.add(name, Some(root), text);
            // The invalid byte became U+FFFD, which starts at the same offset.
            let span = Span::new(
                file,
                offset,
                offset + char::REPLACEMENT_CHARACTER.len_utf8(),
            );
            return Err(Diagnostic::error(span, not_utf8(offset)).into());
        }
    };

    let expanded = sources.get(root_file).text.len();
    let mut loading = Loading {
        sources,
        loader,
        diags: Diagnostics::new(),
        stack: vec![root],
        includes: 0,
        expanded,
        over: false,
    };
    let mut statements = Vec::new();
    loading.expand(root_file, &mut statements);
    if loading.diags.has_errors() {
        Err(loading.diags)
    } else {
        Ok(Graph {
            root: Some(root_file),
            statements,
        })
    }
}

fn not_utf8(offset: usize) -> String {
    format!("file is not valid UTF-8 text (invalid byte at offset {offset})")
}

struct Loading<'a> {
    sources: &'a mut SourceMap,
    loader: &'a dyn FileLoader,
    diags: Diagnostics,
    /// The files being expanded, root first, to detect cycles.
    stack: Vec<PathBuf>,
    /// Includes expanded so far, and bytes of text (see [`MAX_INCLUDES`]).
    includes: usize,
    expanded: usize,
    /// A limit was hit (reported once, at the include that hit it).
    over: bool,
}

impl Loading<'_> {
    /// Parses `file` and appends its statements to `out`, includes expanded.
    fn expand(&mut self, file: FileId, out: &mut Vec<Statement>) {
        let (parsed, diags) = parse_file_partial(self.sources, file);
        self.diags.extend(diags);
        let Some(parsed) = parsed else { return };
        let base = self.sources.get(file).base_dir();
        for statement in parsed.statements {
            match statement {
                Statement::Include(include) => self.include(&base, &include, out),
                other => out.push(other),
            }
        }
    }

    fn include(&mut self, base: &Path, include: &Include, out: &mut Vec<Statement>) {
        let path = normalize(&base.join(&include.path));
        if let Some(at) = self.stack.iter().position(|p| *p == path) {
            let chain: Vec<String> = self.stack[at..]
                .iter()
                .chain([&path])
                .map(|p| p.display().to_string())
                .collect();
            let message = format!("include cycle: {}", chain.join(" -> "));
            self.diags.push(Diagnostic::error(include.span, message));
            return;
        }
        if self.over {
            return;
        }
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            let message = format!("includes nested deeper than {MAX_INCLUDE_DEPTH} levels");
            self.diags.push(Diagnostic::error(include.span, message));
            return;
        }
        self.includes += 1;
        if self.includes > MAX_INCLUDES {
            self.over = true;
            let message = format!(
                "this graph expands more than {MAX_INCLUDES} includes; the expansion stops here"
            );
            let help = "a file included from several places is spliced in each time: \
                        include shared parts once, from the root file";
            self.diags
                .push(Diagnostic::error(include.span, message).with_help(help));
            return;
        }
        let text = self
            .loader
            .load(&path)
            .map_err(|err| err.to_string())
            .and_then(|bytes| {
                String::from_utf8(bytes).map_err(|err| not_utf8(err.utf8_error().valid_up_to()))
            });
        let text = match text {
            Ok(text) => text,
            Err(why) => {
                let message = format!("cannot read include `{}`: {why}", include.path);
                let help = format!("looked for `{}`", path.display());
                self.diags
                    .push(Diagnostic::error(include.span, message).with_help(help));
                return;
            }
        };
        self.expanded = self.expanded.saturating_add(text.len());
        if self.expanded > MAX_EXPANDED_BYTES {
            self.over = true;
            let message = format!(
                "this graph expands to more than {} of text with its includes; the expansion stops here",
                crate::input::human_size(MAX_EXPANDED_BYTES as u64)
            );
            let help = "a file included from several places is spliced in each time: \
                        include shared parts once, from the root file";
            self.diags
                .push(Diagnostic::error(include.span, message).with_help(help));
            return;
        }
        let file = self
            .sources
            .add(path.display().to_string(), Some(path.clone()), text);
        self.stack.push(path);
        self.expand(file, out);
        self.stack.pop();
    }
}

/// Removes `.` and resolves `..` lexically (`a/b/../c` → `a/c`), so that the
/// same file reached two ways has one name and cycles are found. Unlike
/// `canonicalize`, works for in-memory files and keeps paths relative.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => out.push(".."),
            },
            other => out.push(other),
        }
    }
    out
}
