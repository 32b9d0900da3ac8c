//! `wgraph new NAME`: a commented starting world that runs without models.

use crate::Outcome;
use crate::commands::usage;
use std::path::{Path, PathBuf};

/// The graph `wgraph new NAME` writes (`{name}` and `{file}` are replaced;
/// `src/new.world`, a graph file itself): a commented
/// world that runs without models or files, so `check`, `run` and `play`
/// work on it at once.
const NEW_WORLD: &str = include_str!("new.world");

/// `wgraph new NAME`: writes NAME.world (`.world` added when missing), a
/// commented starting graph that runs without models; refuses to replace
/// an existing file.
pub fn new_world(name: &Path) -> Outcome {
    let file = if name.extension().is_some_and(|e| e == "world") {
        name.to_path_buf()
    } else {
        let mut os = name.as_os_str().to_owned();
        os.push(".world");
        PathBuf::from(os)
    };
    let Some(stem) = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty() && !s.starts_with('.'))
        // The path is written into the file's comments.
        .filter(|_| !file.display().to_string().contains(char::is_control))
    else {
        return usage(&format!(
            "`{}` is not a file name: try `wgraph new my-world`",
            name.display()
        ));
    };
    // The name as a string value of the graph, and as a word in comments.
    let world_name: String = stem
        .chars()
        .map(|c| {
            if c == '"' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let text = template(&file, &world_name);
    let written = wgraph_engine::output::create_parent(&file).and_then(|()| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&file)?;
        std::io::Write::write_all(&mut f, text.as_bytes())
    });
    match written {
        Ok(()) => {
            println!("wrote {}", file.display());
            println!("  check it: wgraph check {}", file.display());
            println!(
                "  run it:   wgraph run {} --frames 16 --out out/{world_name}",
                file.display()
            );
            println!("  play it:  wgraph play {}", file.display());
            Outcome::Ok
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => usage(&format!(
            "{} already exists; wgraph new never replaces a file (choose another name)",
            file.display()
        )),
        Err(e) => {
            eprintln!(
                "error: cannot write {}: {}",
                file.display(),
                wgraph_grammar::diagnostic::escape_controls(&e.to_string())
            );
            Outcome::RuntimeFailure
        }
    }
}

/// The template with `{file}` and `{name}` (already safe as a string
/// value) replaced.
fn template(file: &Path, world_name: &str) -> String {
    NEW_WORLD
        .replace("{file}", &file.display().to_string())
        .replace("{name}", world_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_with_a_name_is_a_graph_that_checks() {
        let file = Path::new("worlds/mine.world");
        let text = template(file, "mine");
        assert!(!text.contains("{name}") && !text.contains("{file}"));
        let registry = wgraph_nodes::registry();
        let loader = wgraph_grammar::MemLoader::new().with(file, text);
        let loaded = wgraph_engine::load::load(
            file,
            &wgraph_engine::load::LoadOptions::new(&registry),
            &loader,
        );
        let loaded = match loaded {
            Ok(l) => l,
            Err(e) => panic!("the template does not check: {e:?}"),
        };
        assert_eq!(loaded.graph.settings.name, "mine");
        assert!(loaded.graph.nodes.iter().any(|n| n.name == "show"));
    }
}
