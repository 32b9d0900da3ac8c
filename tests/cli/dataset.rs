//! `wgraph dataset`: ground-truth episodes that replay through the world node.

use super::*;
use wgraph_engine::npy::read_npy;
use wgraph_engine::tensor::Tensor;

fn npy(path: &Path) -> Tensor {
    read_npy(&std::fs::read(path).unwrap()).unwrap()
}

fn generate(out: &Path) -> Output {
    wgraph(&[
        "dataset",
        "--seeds",
        "0..2",
        "--frames",
        "8",
        "--policy",
        "explore",
        out.to_str().unwrap(),
    ])
}

#[test]
fn writes_episodes_that_replay_through_the_world_node() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let o = generate(&a);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("wrote 2 episodes"), "{}", stdout(&o));
    for seed in 0..2 {
        let ep = a.join(format!("dungeon_{seed}"));
        let frames = npy(&ep.join("frames.npy"));
        assert_eq!(frames.shape(), [9, 64, 64, 3]);
        assert!(frames.host_u8().is_ok());
        assert_eq!(npy(&ep.join("depth.npy")).shape(), [9, 64, 64]);
        let actions = npy(&ep.join("actions.npy"));
        assert_eq!(actions.shape(), [8, 9]);
        assert!(
            actions
                .host_f32()
                .unwrap()
                .iter()
                .all(|&v| v == 0.0 || v == 1.0)
        );
        assert_eq!(npy(&ep.join("poses.npy")).shape(), [9, 4]);
        let text = std::fs::read_to_string(ep.join("actions.txt")).unwrap();
        let ticks = wgraph_nodes::action_file::parse_action_file(&text).unwrap();
        assert_eq!(ticks.len(), 8);
        for (t, acts) in ticks.iter().enumerate() {
            let hot = &actions.host_f32().unwrap()[t * 9..][..9];
            assert_eq!(acts.multi_hot(), hot, "tick {t}");
        }
    }
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["seeds"], serde_json::json!([0, 1]));
    assert_eq!(index["frames"], 9);
    assert_eq!(index["policy"], "explore");
    let hist = index["action_histogram"].as_object().unwrap();
    assert_eq!(hist.len(), 9);
    let coverage = index["coverage"].as_f64().unwrap();
    assert!(coverage > 0.0 && coverage < 1.0, "{coverage}");

    // The same arguments write the same bytes.
    assert_eq!(generate(&b).status.code(), Some(0));
    for f in [
        "frames.npy",
        "depth.npy",
        "actions.npy",
        "poses.npy",
        "actions.txt",
    ] {
        let (x, y) = (a.join("dungeon_1").join(f), b.join("dungeon_1").join(f));
        assert_eq!(std::fs::read(x).unwrap(), std::fs::read(y).unwrap(), "{f}");
    }
    assert_eq!(
        std::fs::read(a.join("index.json")).unwrap(),
        std::fs::read(b.join("index.json")).unwrap()
    );

    // The action file drives a graph, and the world node shows the
    // dataset's frames 1..=8 exactly.
    let ep = a.join("dungeon_1");
    let keys = ep.join("actions.txt");
    let shown = dir.path().join("shown");
    let o = wgraph(&[
        "run",
        "examples/pan.world",
        "--frames",
        "8",
        "--actions",
        keys.to_str().unwrap(),
        "--out",
        shown.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = wgraph(&[
        "run",
        "examples/world.world",
        "--frames",
        "8",
        "--seed",
        "1",
        "--actions",
        keys.to_str().unwrap(),
        "--out",
        shown.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let frames = npy(&ep.join("frames.npy"));
    let bytes = frames.host_u8().unwrap();
    let pngs = pngs(&shown);
    assert_eq!(pngs.len(), 8);
    for (t, p) in pngs.iter().enumerate() {
        let img = image::open(p).unwrap().to_rgb8().into_raw();
        assert_eq!(
            img,
            bytes[(t + 1) * 64 * 64 * 3..][..64 * 64 * 3],
            "frame {t}"
        );
    }
    let depth = pngs.len();
    assert_eq!(
        std::fs::read_dir(shown.join("depth")).unwrap().count(),
        depth
    );
}

#[test]
fn all_themes_share_the_walk_and_bad_arguments_fail() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("d");
    let o = wgraph(&[
        "dataset",
        "--seeds",
        "4",
        "--frames",
        "5",
        "--policy",
        "random",
        "--theme",
        "all",
        "--size",
        "32",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let read = |t: &str, f: &str| std::fs::read(out.join(format!("{t}_4")).join(f)).unwrap();
    for t in ["neon", "forest"] {
        assert_eq!(read(t, "depth.npy"), read("dungeon", "depth.npy"));
        let keys = |t: &str| {
            let text = String::from_utf8(read(t, "actions.txt")).unwrap();
            wgraph_nodes::action_file::parse_action_file(&text).unwrap()
        };
        assert_eq!(keys(t), keys("dungeon"));
        assert_eq!(read(t, "actions.npy"), read("dungeon", "actions.npy"));
        assert_ne!(read(t, "frames.npy"), read("dungeon", "frames.npy"));
    }
    assert_eq!(npy(&out.join("neon_4/frames.npy")).shape(), [6, 32, 32, 3]);

    for args in [
        &["--seeds", "3..1", "--frames", "4"][..],
        &["--seeds", "x", "--frames", "4"],
        &["--seeds", "0..1", "--frames", "0"],
        &["--seeds", "0..1", "--frames", "2", "--size", "4"],
        &["--seeds", "0..1", "--frames", "2", "--policy", "sideways"],
    ] {
        let mut all = vec!["dataset"];
        all.extend_from_slice(args);
        all.push(out.to_str().unwrap());
        let o = wgraph(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("error"), "{}", stderr(&o));
    }
    // An output path under a regular file cannot be created.
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let o = wgraph(&[
        "dataset",
        "--seeds",
        "0..1",
        "--frames",
        "2",
        file.join("sub").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot write"), "{}", stderr(&o));
}

#[test]
fn events_and_captions_are_written_and_replay_through_the_world_node() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("d");
    let o = wgraph(&[
        "dataset",
        "--seeds",
        "1000..1002",
        "--frames",
        "20",
        "--events",
        "auto",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["events"], "auto");
    assert_eq!(index["episodes"][0]["held_out"], true);
    let ep = out.join("dungeon_1000");
    let captions: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ep.join("captions.json")).unwrap()).unwrap();
    let world = wgraph_groundtruth::World::new(1000, wgraph_groundtruth::Theme::Dungeon);
    assert_eq!(
        captions["global"],
        wgraph_groundtruth::global_caption(wgraph_groundtruth::Theme::Dungeon, world.layout())
    );
    assert_eq!(index["episodes"][0]["global_caption"], captions["global"]);
    let schedule = wgraph_groundtruth::events::script(1000, 20);
    let events = captions["events"].as_array().unwrap();
    assert_eq!(events.len(), schedule.len());
    let entries: Vec<String> = events
        .iter()
        .map(|e| format!("{}: {}", e["tick"], e["caption"].as_str().unwrap()))
        .collect();
    assert_eq!(
        entries,
        wgraph_groundtruth::events::schedule_entries(&schedule)
    );
    // local.txt: one caption per frame, `-` before the first event.
    let local = std::fs::read_to_string(ep.join("local.txt")).unwrap();
    let lines: Vec<&str> = local.lines().collect();
    assert_eq!(lines.len(), 21);
    let first = schedule[0].tick as usize + 1;
    assert!(lines[..first].iter().all(|l| *l == "-"), "{lines:?}");
    assert_eq!(lines[first], schedule[0].kind.caption());
    // events.npy: the channel of the first event is on from its frame.
    let on = npy(&ep.join("events.npy"));
    assert_eq!(on.shape(), [21, 4]);
    let on = on.host_f32().unwrap();
    let (ch, _) = schedule[0].kind.effect();
    let c = wgraph_groundtruth::Channel::ALL
        .iter()
        .position(|x| *x == ch)
        .unwrap();
    assert_eq!(on[(first - 1) * 4 + c], 0.0);
    assert_eq!(on[first * 4 + c], 1.0);

    // The world node with the same events shows frames 1..=20 exactly.
    let list = format!(
        "gt.events=[{}]",
        entries
            .iter()
            .map(|e| format!("\"{e}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let shown = dir.path().join("shown");
    let o = wgraph(&[
        "run",
        "examples/world.world",
        "--frames",
        "20",
        "--seed",
        "1000",
        "--set",
        &list,
        "--actions",
        ep.join("actions.txt").to_str().unwrap(),
        "--out",
        shown.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let frames = npy(&ep.join("frames.npy"));
    let bytes = frames.host_u8().unwrap();
    let pngs = pngs(&shown);
    assert_eq!(pngs.len(), 20);
    for (t, p) in pngs.iter().enumerate() {
        let img = image::open(p).unwrap().to_rgb8().into_raw();
        assert_eq!(
            img,
            bytes[(t + 1) * 64 * 64 * 3..][..64 * 64 * 3],
            "frame {t}"
        );
    }
    // Without --events the frames are those of a quiet world.
    let quiet = dir.path().join("q");
    let o = wgraph(&[
        "dataset",
        "--seeds",
        "1000",
        "--frames",
        "20",
        quiet.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_ne!(
        std::fs::read(quiet.join("dungeon_1000/frames.npy")).unwrap(),
        std::fs::read(ep.join("frames.npy")).unwrap()
    );
    assert_eq!(
        std::fs::read(quiet.join("dungeon_1000/depth.npy")).unwrap(),
        std::fs::read(ep.join("depth.npy")).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(quiet.join("dungeon_1000/local.txt")).unwrap(),
        "-\n".repeat(21)
    );
}
