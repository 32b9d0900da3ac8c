//! The nearest shipped graphs, as help for a graph file that is not there:
//! names scored against the `.world` files of the folders the caller
//! searches ([`graph_dirs`] finds wgraph's own).

use std::path::{Path, PathBuf};

/// The directories shipped graphs live in: `graphs/` and `examples/` under
/// the current directory and under `source` (wgraph's source tree, when it
/// is still where the binary was built from, as after `cargo install
/// --path .`), those that exist.
pub fn graph_dirs(source: &Path) -> Vec<PathBuf> {
    let mut roots = vec![PathBuf::new()];
    let same = |a: &Path, b: &Path| {
        a.canonicalize()
            .ok()
            .is_some_and(|a| b.canonicalize().ok() == Some(a))
    };
    if source.is_dir() && !same(Path::new("."), source) {
        roots.push(source.to_path_buf());
    }
    roots
        .iter()
        .flat_map(|r| [r.join("graphs"), r.join("examples")])
        .filter(|d| d.is_dir())
        .collect()
}

/// How close a shipped graph's name is to the name the user typed (0..1):
/// Jaro–Winkler on the names without `.world`, and a high score when one
/// contains the other (`sim` in `yan-sim`), higher the more of it matches.
fn name_score(typed: &str, shipped: &str) -> f64 {
    let (typed, shipped) = (typed.to_lowercase(), shipped.to_lowercase());
    let jw = strsim::jaro_winkler(&typed, &shipped);
    let (short, long) = if typed.len() <= shipped.len() {
        (&typed, &shipped)
    } else {
        (&shipped, &typed)
    };
    let contained = if short.len() >= 3 && long.contains(short.as_str()) {
        0.85 + 0.15 * short.len() as f64 / long.len().max(1) as f64
    } else {
        0.0
    };
    jw.max(contained)
}

/// The graphs in `dirs` closest to `missing` (best first, at most three),
/// as paths the user can type from here.
pub fn nearest_graphs(missing: &Path, dirs: &[PathBuf]) -> Vec<PathBuf> {
    let typed = missing
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut scored: Vec<(f64, PathBuf)> = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|entries| entries.flatten().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "world") && p.is_file())
        .filter_map(|p| {
            let stem = p.file_stem()?.to_string_lossy().into_owned();
            let score = name_score(&typed, &stem);
            (score >= 0.8).then_some((score, p))
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(3).map(|(_, p)| p).collect()
}

/// The help for a graph file that does not exist: the nearest graphs in
/// `dirs`, else where they are and how to start a new one.
pub fn missing_graph_help(missing: &Path, dirs: &[PathBuf]) -> String {
    let quoted = |p: &PathBuf| format!("`{}`", p.display());
    match nearest_graphs(missing, dirs).as_slice() {
        [] => {
            let dirs: Vec<String> = dirs.iter().map(|d| format!("{}/", d.display())).collect();
            let start = format!(
                "start a new world with `wgraph new {}`",
                missing
                    .file_stem()
                    .map_or("my-world".into(), |s| s.to_string_lossy())
            );
            if dirs.is_empty() {
                start
            } else {
                format!(
                    "the shipped graphs are in {}; or {start}",
                    dirs.join(" and ")
                )
            }
        }
        [best] => format!("did you mean {}?", quoted(best)),
        [best, rest @ ..] => format!(
            "did you mean {}? (also close: {})",
            quoted(best),
            rest.iter().map(quoted).collect::<Vec<_>>().join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contained_name_scores_high_and_an_unrelated_one_low() {
        assert!(name_score("sim", "yan-sim") >= 0.85);
        assert!(name_score("yan-sim", "yan-sim") > name_score("sim", "yan-sim"));
        assert!(name_score("xyz", "yan-sim") < 0.8);
    }

    #[test]
    fn the_nearest_graphs_are_named_best_first() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["yan-sim.world", "yan-edit.world", "maze.world", "notes.txt"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let dirs = vec![dir.path().to_path_buf()];
        let found = nearest_graphs(Path::new("yan-sim.world"), &dirs);
        assert_eq!(found.first(), Some(&dir.path().join("yan-sim.world")));
        assert!(!found.contains(&dir.path().join("notes.txt")));
        assert!(missing_graph_help(Path::new("yan-sim.world"), &dirs).starts_with("did you mean"));
    }

    #[test]
    fn with_nothing_close_the_help_names_the_folders_and_wgraph_new() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = vec![dir.path().to_path_buf()];
        let help = missing_graph_help(Path::new("qqq.world"), &dirs);
        assert_eq!(
            help,
            format!(
                "the shipped graphs are in {}/; or start a new world with `wgraph new qqq`",
                dir.path().display()
            )
        );
        assert_eq!(
            missing_graph_help(Path::new("qqq.world"), &[]),
            "start a new world with `wgraph new qqq`"
        );
    }
}
