//! The `.world` graph language.
//!
//! - [`parser`]: the grammar (documented there) and text → spanned [`ast`];
//! - [`load_graph`]: a root file plus its includes → one [`ast::Graph`];
//! - [`validate()`]: name checks that need no node registry;
//! - [`diagnostic`] and [`source`]: located errors and the files they point into;
//! - [`input`]: reading user-named files (regular files only, size limits).
pub mod ast;
pub mod diagnostic;
pub mod input;
pub mod load;
pub mod parser;
pub mod source;
pub mod validate;

pub use load::{FileLoader, FsLoader, MemLoader, load_graph};
pub use parser::{parse_file, parse_value};
pub use validate::validate;
