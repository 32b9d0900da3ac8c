//! `wgraph check`: every shipped graph and example passes, every broken
//! fixture fails with its located errors, and no input panics.

use super::*;

#[test]
fn accepts_every_shipped_graph_and_example() {
    // graphs/yan-sim-wonnx.world is checked on wonnx (with the feature):
    // that needs a WebGPU adapter, installed here if this test runs first.
    ensure_vulkan();
    let mut files = Vec::new();
    world_files(&root().join("graphs"), &mut files);
    world_files(&root().join("examples"), &mut files);
    assert!(files.len() >= 4, "{files:?}");
    for f in files {
        // A graph on the wonnx backend is accepted without the feature
        // too, with a note (tests/cli/wonnx.rs).
        let o = wgraph(&["check", f.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}: {}", f.display(), stderr(&o));
        assert!(stdout(&o).contains(": ok ("));
    }
}

/// Each file in tests/fixtures/broken states the diagnostics it must
/// produce as `// expect: TEXT` lines; TEXT starting with `L:C:` must
/// appear as `FILE:L:C:` in the rendered output.
#[test]
fn rejects_broken_graphs_with_located_errors() {
    let mut files = Vec::new();
    world_files(&root().join("tests/fixtures/broken"), &mut files);
    files.sort();
    assert!(files.len() >= 8);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let rel = f
            .strip_prefix(root())
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let o = wgraph(&["check", &rel]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{rel}: {err}");
        assert!(!err.contains("panicked"), "{rel}: {err}");
        let expectations: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("// expect: "))
            .collect();
        assert!(!expectations.is_empty(), "{rel} has no expectations");
        // `// not: TEXT`: a consequence of an error already reported must
        // not be reported again (one mistake, one error).
        for absent in text.lines().filter_map(|l| l.strip_prefix("// not: ")) {
            assert!(
                !err.contains(absent),
                "{rel}: `{absent}` must not appear in:\n{err}"
            );
        }
        // Located expectations are the errors, exactly and in order;
        // unlocated ones (notes, help) must appear somewhere.
        let mut located_count = 0;
        let mut cursor = 0;
        for exp in expectations {
            let (loc, msg) = match exp.split_once(": ") {
                Some((loc, msg)) if loc.split(':').all(|p| p.parse::<u32>().is_ok()) => {
                    (Some(loc), msg)
                }
                _ => (None, exp),
            };
            assert!(err.contains(msg), "{rel}: expected `{msg}` in:\n{err}");
            if let Some(loc) = loc {
                located_count += 1;
                let located = format!("{rel}:{loc}");
                let at = err[cursor..].find(&located).map(|i| i + cursor);
                assert!(
                    at.is_some(),
                    "{rel}: expected location `{located}` after byte {cursor} (errors in the order of the expectations) in:\n{err}"
                );
                cursor = at.unwrap_or(cursor) + located.len();
            }
        }
        let summary = format!("{rel}: {located_count} error");
        assert!(
            err.contains(&format!("{summary}\n")) || err.contains(&format!("{summary}s\n")),
            "{rel}: expected exactly {located_count} errors (one per located `// expect:`) in:\n{err}"
        );
    }
}

#[test]
fn reports_every_file_and_fails_if_any_fails() {
    let o = wgraph(&[
        "check",
        "examples/pan.world",
        "tests/fixtures/broken/cycle.world",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("examples/pan.world: ok"));
    assert!(stderr(&o).contains("cycle without a feedback edge"));
}

#[test]
fn arbitrary_bytes_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let seed_text = std::fs::read(root().join("examples/trail.world")).unwrap();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..24 {
        let mut bytes = seed_text.clone();
        for _ in 0..(1 + next() % 12) {
            let pos = (next() as usize) % bytes.len();
            match next() % 3 {
                0 => bytes[pos] = next() as u8,
                1 => {
                    bytes.remove(pos);
                }
                _ => bytes.insert(pos, b"{}[]()\"@.->=x\n\xff"[(next() % 15) as usize]),
            }
        }
        let path = dir.path().join(format!("m{i}.world"));
        std::fs::write(&path, &bytes).unwrap();
        let o = wgraph(&["check", path.to_str().unwrap()]);
        let err = stderr(&o);
        assert!(matches!(o.status.code(), Some(0 | 1)), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
