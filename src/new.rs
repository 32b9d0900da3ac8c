//! `wgraph new NAME`: a commented starting world that runs without models.

use crate::Outcome;
use crate::commands::usage;
use std::path::{Path, PathBuf};

/// The graph `wgraph new NAME` writes (`{name}` is replaced): a commented
/// world that runs without models or files, so `check`, `run` and `play`
/// work on it at once.
const NEW_WORLD: &str = r#"// {name}: a new wgraph world. Check it, run it (16 PNG frames; `--out
// {name}.gif` for a GIF), play it in the terminal or in the browser:
//
//   wgraph check {file}
//   wgraph run {file} --frames 16 --out out/{name}
//   wgraph play {file}
//   wgraph serve {file} --watch
//
// Playing, W A S D and the arrows walk and q quits; with --watch, edit this
// file while the world runs and it reloads.
//
// A world is a graph: `node NAME: KIND { params }` declares a node, `a.out -> b.in`
// wires an output to an input, and the graph runs once per tick. `wgraph kinds`
// lists the node kinds, `wgraph kinds lerp` shows one kind's parameters, and
// README.md ("The .world language") has the whole language.

world {
    name = "{name}"
    seed = 1                 // every random source derives from it (--seed replaces it)
    fps = 8                  // ticks per second when played live
    resolution = 64x64       // the frame size; shapes below may say H and W
}

// The player's keys: live from `play`/`serve`, or one line per tick from
// `--actions FILE` (e.g. examples/actions/walk.txt in wgraph's repository).
node keys: actions { }

// A seeded first-person maze the keys walk through (no model needed):
// `image` is the view, `depth` its distance per pixel.
node maze: world { theme = dungeon }    // dungeon | neon | forest

// A motion trail: each frame is half the new view, half the last frame.
node trail: lerp { t = 0.5 }            // out = a + t·(b − a)

// What the player sees: PNGs in --out DIR, a .gif, the browser or the terminal.
node show: display { }

keys.actions -> maze.actions
maze.image -> trail.b
// `feedback` carries the previous tick's value; `init` is tick 0's.
feedback trail.out -> trail.a init zeros(1x3xHxW)
trail.out -> show.image

// Next: a model. `model m = "my.onnx"` declares one, `node net: model { model = m }`
// runs it, and `wgraph check` says which inputs to wire (README: "Bring your own model").
"#;

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
    let text = NEW_WORLD
        .replace("{file}", &file.display().to_string())
        .replace("{name}", &world_name);
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
