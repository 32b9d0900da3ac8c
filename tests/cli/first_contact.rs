//! First contact: what a new user types first — README's commands verbatim,
//! a graph name from memory, `wgraph new`, `check` on every shipped graph —
//! and the errors they meet first (issue 19, section 4). Broken graphs of
//! this section are fixtures in `tests/fixtures/broken/` (`noise_shape`,
//! `feedback_init`, `names_and_shapes`, `unconnected_types`,
//! `numeric_port`), checked by `check::rejects_broken_graphs_with_located_errors`.

use super::*;

/// `wgraph ARGS` run in `dir`.
fn wgraph_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgraph"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("wgraph runs")
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// README's eval command on a fresh clone: the output directories do not
/// exist yet. They are made; a 4-tick run reports ticks 1-4 only (no "1-8"
/// or "1-32" figure, in print or in the JSON); the plot has its title,
/// axes and labels, the strip its row labels and tick numbers.
#[test]
fn eval_makes_its_output_directories_and_reports_only_the_ticks_that_ran() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out/eval");
    let (j, s, p) = (
        out.join("a/g.json"),
        out.join("b/g-strip.png"),
        out.join("c/g-psnr.png"),
    );
    let o = wgraph(&[
        "eval",
        "examples/world.world",
        "--set",
        "gt.seed=1002",
        "--world-seed",
        "1001",
        "--actions",
        "examples/actions/walk.txt",
        "--frames",
        "4",
        "--json",
        j.to_str().unwrap(),
        "--strip",
        s.to_str().unwrap(),
        "--plot",
        p.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("4 ticks; PSNR ticks 1-4 "), "{text}");
    assert!(
        !text.contains("1-8") && !text.contains("1-32"),
        "only what ran: {text}"
    );
    let v = json(&j);
    assert_eq!(v["frames"], 4);
    for key in ["psnr_mean_1_8", "psnr_mean_1_32", "ssim_mean_1_32"] {
        assert!(v[key].is_null(), "{key} of a 4-tick run: {v}");
    }
    assert!(v["psnr_mean_1_n"].as_f64().is_some(), "{v}");
    assert!(
        v["drift_definition"]
            .as_str()
            .is_some_and(|d| d.contains("ground-truth edges")),
        "{v}"
    );
    // The strip: a header row of tick numbers and a label column.
    let strip = image::open(&s).unwrap().to_rgb8();
    assert_eq!(strip.dimensions(), (88 + 4 * 66 - 2, 18 + 2 * 64 + 2));
    let dark = |img: &image::RgbImage, x0: u32, y0: u32, x1: u32, y1: u32| {
        (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0.iter().all(|c| *c < 128))
            .count()
    };
    assert!(dark(&strip, 0, 18, 88, 82) > 20, "no `ground truth` label");
    assert!(dark(&strip, 0, 84, 88, 148) > 20, "no `generated` label");
    assert!(
        dark(&strip, 88, 0, strip.width(), 18) > 40,
        "no tick numbers"
    );
    // The plot: a title above, numbers left of and under the axes.
    let plot = image::open(&p).unwrap().to_rgb8();
    assert_eq!(plot.dimensions(), (720, 380));
    assert!(dark(&plot, 0, 0, 720, 30) > 100, "no title");
    assert!(dark(&plot, 30, 40, 60, 340) > 30, "no dB numbers");
    assert!(dark(&plot, 60, 337, 660, 350) > 10, "no tick numbers");
}

/// Yan-Sim's frames are brown by tick 3 of README's walk: eval's drift says
/// so (it said "never" while PSNR stayed above 15 dB), and gives its
/// definition. The ground truth against itself never drifts.
#[test]
fn eval_drift_says_what_the_frames_show() {
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("e.json");
    let o = wgraph(&[
        "eval",
        "graphs/yan-sim.world",
        "--world-seed",
        "1001",
        "--actions",
        "docs/eval/seed1001-actions.txt",
        "--frames",
        "6",
        "--json",
        j.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&j);
    let drift = v["drift_tick"].as_u64();
    assert!(drift.is_some_and(|t| t <= 4), "drift {drift:?}: {v}");
    let edges = v["edges_kept_per_tick"].as_array().unwrap();
    assert_eq!(edges.len(), 6);
    assert!(stdout(&o).contains("drift at tick"), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("drift: the first tick whose frame keeps under 50%"),
        "{}",
        stdout(&o)
    );
    let o = wgraph(&[
        "eval",
        "examples/world.world",
        "--set",
        "gt.seed=1001",
        "--world-seed",
        "1001",
        "--actions",
        "examples/actions/walk.txt",
        "--frames",
        "4",
        "--json",
        j.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("no drift in 4 ticks"), "{}", stdout(&o));
    let v = json(&j);
    assert!(v["drift_tick"].is_null());
    assert!(
        v["edges_kept_per_tick"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e.as_f64() == Some(1.0)),
        "{v}"
    );
}

/// `wgraph run sim.world` names the shipped graphs it may mean: from the
/// repository (relative paths) and from anywhere else (wgraph's own
/// source tree, where the binary was built).
#[test]
fn a_missing_graph_suggests_the_nearest_shipped_graphs() {
    let o = wgraph(&["run", "sim.world", "--frames", "1"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("did you mean `graphs/yan-sim.world`?"),
        "{}",
        stderr(&o)
    );
    let o = wgraph(&["check", "yume15"]);
    assert!(
        stderr(&o).contains("did you mean `graphs/yume15.world`?"),
        "{}",
        stderr(&o)
    );
    let dir = tempfile::tempdir().unwrap();
    let o = wgraph_in(dir.path(), &["run", "sim.world"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let shipped = root().join("graphs/yan-sim.world");
    assert!(
        stderr(&o).contains(&format!("did you mean `{}`?", shipped.display())),
        "{}",
        stderr(&o)
    );
    // Nothing close: where the graphs are, and how to start one.
    let o = wgraph(&["check", "qqqq.world"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("the shipped graphs are in graphs/ and examples/"),
        "{err}"
    );
    assert!(err.contains("wgraph new qqqq"), "{err}");
}

/// `wgraph new NAME` writes a commented graph that `check` accepts and
/// `run` runs without models; it never replaces a file.
#[test]
fn new_writes_a_starting_world_that_checks_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let o = wgraph_in(dir.path(), &["new", "mine"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("wrote mine.world"), "{}", stdout(&o));
    let file = dir.path().join("mine.world");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.lines()
            .filter(|l| l.trim_start().starts_with("//"))
            .count()
            >= 10
    );
    assert!(text.contains("name = \"mine\""), "{text}");
    assert!(
        !text.lines().any(|l| l.starts_with("model ")),
        "no model declared: {text}"
    );
    let o = wgraph_in(dir.path(), &["check", "mine.world"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("mine.world: ok ("));
    let o = wgraph_in(
        dir.path(),
        &[
            "run",
            "mine.world",
            "--frames",
            "3",
            "--actions",
            root().join("examples/actions/walk.txt").to_str().unwrap(),
            "--out",
            "out/mine",
            "-q",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(pngs(&dir.path().join("out/mine")).len(), 3);
    // Never over an existing file.
    std::fs::write(&file, "// mine, edited\n").unwrap();
    let o = wgraph_in(dir.path(), &["new", "mine.world"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "// mine, edited\n");
    // Into a directory that does not exist yet.
    let o = wgraph_in(dir.path(), &["new", "worlds/second"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = wgraph_in(dir.path(), &["check", "worlds/second.world"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// README tells a new user how to put `wgraph` on PATH and how to start a
/// world of their own.
#[test]
fn readme_says_how_to_install_and_start_a_world() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(readme.contains("cargo install --path ."), "install");
    assert!(readme.contains("wgraph new "), "new");
}

/// Sizes in a feedback init may say H and W, as README says sizes may; an
/// unknown symbol is an error naming the ones there are.
#[test]
fn a_feedback_init_may_use_h_and_w() {
    let dir = tempfile::tempdir().unwrap();
    let graph = |init: &str| {
        let file = dir.path().join("g.world");
        std::fs::write(
            &file,
            format!(
                "world {{ resolution = 8x6 }}\n\
                 node start: constant {{ shape = [1, 3, H, W] }}\n\
                 node context: start_then {{ }}\n\
                 node dim: scale {{ factor = 0.5 }}\n\
                 start.out -> context.start\n\
                 feedback dim.out -> context.then init {init}\n\
                 context.out -> dim.x\n"
            ),
        )
        .unwrap();
        wgraph(&["check", file.to_str().unwrap()])
    };
    for ok in ["zeros(1x3xHxW)", "fill(0.5, 1x3xHxW)", "zeros(1x3x8x6)"] {
        let o = graph(ok);
        assert_eq!(o.status.code(), Some(0), "{ok}: {}", stderr(&o));
    }
    let o = graph("zeros(1x3xQxW)");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("feedback init: unknown dimension symbol `Q`"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("shapes may use H and W"),
        "{}",
        stderr(&o)
    );
}

/// A sampler's optional inputs (`step_noise`, `reuse`) never make a bare
/// edge into it ambiguous: `n -> s` goes to its one required input,
/// `noise`, as before those inputs existed. A node with two required
/// inputs still asks which.
#[test]
fn a_bare_edge_goes_to_the_one_required_input() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("g.world");
    let text = |sampler: &str, extra: &str| {
        format!(
            "world {{ resolution = 8x8 }}\n\
             node target: constant {{ shape = [1, 4, 8, 8], value = 0.5 }}\n\
             node flow: target_flow {{ }}\n\
             node n: noise {{ shape = [1, 4, 8, 8] }}\n\
             node s: {sampler} {{ steps = 2, denoiser = @flow }}\n\
             node sink: npy_dump {{ }}\n\
             target -> flow\n\
             n -> s\n\
             s -> sink\n\
             {extra}"
        )
    };
    for sampler in ["euler", "sde", "ddim", "tts_ode"] {
        std::fs::write(&file, text(sampler, "")).unwrap();
        let o = wgraph(&["check", file.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{sampler}: {}", stderr(&o));
    }
    std::fs::write(
        &file,
        text(
            "euler",
            "node mix: add { }\nn -> mix\ntarget.out -> mix.b\n",
        ),
    )
    .unwrap();
    let o = wgraph(&["check", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("node `mix` (add) has several inputs; name one as `mix.PORT`"),
        "{}",
        stderr(&o)
    );
}

/// `wgraph kinds` lines up every summary in one column, however long the
/// kind's name (`similarity_filter`).
#[test]
fn kinds_are_listed_in_aligned_columns() {
    let o = wgraph(&["kinds"]);
    assert_eq!(o.status.code(), Some(0));
    let text = stdout(&o);
    let columns: Vec<(usize, &str)> = text
        .lines()
        .map(|l| {
            let name_end = l.find(' ').unwrap_or(l.len());
            let summary = l[name_end..].len() - l[name_end..].trim_start().len() + name_end;
            (summary, l)
        })
        .collect();
    assert!(columns.len() > 20, "{text}");
    assert!(text.contains("similarity_filter"), "{text}");
    let first = columns[0].0;
    for (col, line) in &columns {
        assert_eq!(*col, first, "misaligned: {line:?}\n{text}");
    }
}
