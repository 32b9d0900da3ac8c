//! Yan-Edit restyled and re-themed while it runs (scripted events).

use super::*;

fn npys(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "npy"))
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// A live theme change of the ground-truth world keeps the player where
/// it is: the depth stream equals a run without the change, the frames
/// change from that tick on.
#[test]
fn a_live_theme_change_keeps_the_players_pose() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.txt");
    std::fs::write(&events, "5: gt.theme = neon\n").unwrap();
    let run = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut args = vec![
            "run",
            "examples/world.world",
            "--frames",
            "10",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = wgraph(&args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(!stderr(&o).contains("reset"), "{}", stderr(&o));
        out
    };
    let plain = run("plain", &[]);
    let live = run("live", &["--events", events.to_str().unwrap()]);
    assert_eq!(npys(&plain.join("depth")), npys(&live.join("depth")));
    let (a, b) = (pngs(&plain), pngs(&live));
    for i in 0..10 {
        let same = std::fs::read(&a[i]).unwrap() == std::fs::read(&b[i]).unwrap();
        assert_eq!(same, i < 5, "frame {i}");
    }
}

/// A style change mid-run restyles the renderer's frames from its tick
/// on and leaves the simulator's depth latents bit-identical.
#[test]
fn a_live_restyle_changes_the_frames_and_not_the_geometry() {
    let dir = tempfile::tempdir().unwrap();
    let graph = dir.path().join("edit.world");
    std::fs::write(
        &graph,
        format!(
            "include \"{}\"\nnode latents: npy_dump {{ dir = \"latents\" }}\nsimulate.latent -> latents.tensor\n",
            root().join("graphs/yan-edit.world").display()
        ),
    )
    .unwrap();
    let events = dir.path().join("events.txt");
    std::fs::write(&events, "4: style.text = \"a snowy forest\"\n").unwrap();
    let run = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut args = vec![
            "run",
            graph.to_str().unwrap(),
            "--frames",
            "8",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = wgraph(&args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        (o, out)
    };
    let (_, plain) = run("plain", &[]);
    let (o, live) = run("live", &["--events", events.to_str().unwrap()]);
    assert!(
        stderr(&o).contains(
            "reloaded at tick 4 (set style.text = \"a snowy forest\"): changed style.text"
        ),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        npys(&plain.join("latents")),
        npys(&live.join("latents")),
        "depth latents bit-identical"
    );
    let (a, b) = (pngs(&plain), pngs(&live));
    assert_eq!((a.len(), b.len()), (8, 8));
    for i in 0..8 {
        let same = std::fs::read(&a[i]).unwrap() == std::fs::read(&b[i]).unwrap();
        assert_eq!(same, i < 4, "frame {i}: restyled from tick 4 on");
    }
}
