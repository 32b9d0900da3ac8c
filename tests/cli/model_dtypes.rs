//! Ports of other dtypes than f32 — bool masks, i32 indices, f64, and the
//! small integers and f16 — through the generic `model` kind: `.npy`
//! inputs of those dtypes in, the model's outputs dumped and compared with
//! the values the network computes (`tests/reference/dtypes.onnx`,
//! `small_types.onnx`, made by `make_models.py`).

use super::*;
use wgraph_engine::npy::{read_npy, write_npy};
use wgraph_engine::tensor::{Tensor, f16};

fn put(dir: &Path, name: &str, t: &Tensor) {
    std::fs::write(dir.join(name), write_npy(t).unwrap()).unwrap();
}

/// `dtypes.onnx` fed from `mask.npy` (one [1, 4] slice per tick),
/// `idx.npy` and `x.npy`, every output dumped under `o/`.
fn dtypes_graph(dir: &Path) -> PathBuf {
    let mut text = format!(
        "model m = \"{}\"\nnode mask: npy {{ path = \"mask.npy\", sequence = true }}\n\
         node idx: npy {{ path = \"idx.npy\" }}\nnode x: npy {{ path = \"x.npy\" }}\n\
         node net: model {{ model = m }}\nmask.out -> net.mask\nidx.out -> net.idx\nx.out -> net.x\n",
        root().join("tests/reference/dtypes.onnx").display()
    );
    for o in ["picked", "inverted", "shifted", "counted", "recip"] {
        text += &format!(
            "node d_{o}: npy_dump {{ dir = \"o\", prefix = \"{o}\" }}\nnet.{o} -> d_{o}.tensor\n"
        );
    }
    let file = dir.join("g.world");
    std::fs::write(&file, text).unwrap();
    file
}

fn run(file: &Path, frames: &str) -> (Output, PathBuf) {
    let out = file.parent().unwrap().join("run");
    let o = wgraph(&[
        "run",
        file.to_str().unwrap(),
        "--frames",
        frames,
        "--out",
        out.to_str().unwrap(),
    ]);
    (o, out.join("o"))
}

fn dumped(dir: &Path, name: &str) -> Tensor {
    read_npy(&std::fs::read(dir.join(name)).unwrap()).unwrap()
}

#[test]
fn bool_i32_and_f64_ports_run_through_the_model_kind() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let masks = [true, false, false, true, false, false, true, true];
    put(
        d,
        "mask.npy",
        &Tensor::from_bool(&[2, 1, 4], masks.to_vec()).unwrap(),
    );
    let idx = [0, -3, 7, i32::MAX - 10];
    put(
        d,
        "idx.npy",
        &Tensor::from_i32(&[1, 4], idx.to_vec()).unwrap(),
    );
    // Values f32 cannot hold: f64 must travel as f64.
    let x = [0.1, -2.5, 1e-300, 4.000000000000001];
    put(d, "x.npy", &Tensor::from_f64(&[1, 4], x.to_vec()).unwrap());
    let file = dtypes_graph(d);
    let o = wgraph(&["check", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = wgraph(&["graph", file.to_str().unwrap(), "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let json = stdout(&o);
    for ty in ["\"bool[1, 4]\"", "\"i32[1, 4]\"", "\"f64[1, 4]\""] {
        assert!(json.contains(ty), "{ty} in {json}");
    }
    let (o, out) = run(&file, "2");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for tick in 0..2 {
        let mask = &masks[tick * 4..tick * 4 + 4];
        let f = |name: &str| dumped(&out, &format!("{name}_{tick:05}.npy"));
        let picked: Vec<f64> = (0..4).map(|i| if mask[i] { x[i] } else { -x[i] }).collect();
        let picked_t = f("picked");
        assert_eq!(picked_t.shape(), &[1, 4]);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(picked_t.host_f64().unwrap()),
            bits(&picked),
            "tick {tick}"
        );
        let inverted: Vec<bool> = mask.iter().map(|m| !m).collect();
        assert_eq!(f("inverted").host_bool().unwrap(), &inverted[..]);
        let shifted: Vec<i32> = idx.iter().map(|i| i + 10).collect();
        assert_eq!(f("shifted").host_i32().unwrap(), &shifted[..]);
        let counted: Vec<i32> = (0..4).map(|i| idx[i] + i32::from(mask[i])).collect();
        assert_eq!(f("counted").host_i32().unwrap(), &counted[..]);
        let recip: Vec<f64> = x.iter().map(|v| 1.0 / v).collect();
        assert_eq!(bits(f("recip").host_f64().unwrap()), bits(&recip));
    }
}

#[test]
fn wrong_dtypes_are_check_errors_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    put(
        d,
        "mask.npy",
        &Tensor::from_bool(&[1, 1, 4], vec![true; 4]).unwrap(),
    );
    put(
        d,
        "idx.npy",
        &Tensor::from_i32(&[1, 4], vec![1; 4]).unwrap(),
    );
    put(
        d,
        "x.npy",
        &Tensor::from_f64(&[1, 4], vec![1.0; 4]).unwrap(),
    );
    let file = dtypes_graph(d);
    // An f32 mask where the model takes bool.
    put(
        d,
        "mask.npy",
        &Tensor::from_f32(&[1, 1, 4], vec![1.0; 4]).unwrap(),
    );
    let o = wgraph(&["check", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("model input `mask` expects bool[1, 4], found f32[1, 4]"),
        "{}",
        stderr(&o)
    );
    // A node that computes on floats keeps asking for f32.
    put(
        d,
        "mask.npy",
        &Tensor::from_bool(&[1, 1, 4], vec![true; 4]).unwrap(),
    );
    let mut text = std::fs::read_to_string(&file).unwrap();
    text += "node s: scale { factor = 2.0 }\nnet.inverted -> s.x\nnode s_out: npy_dump { dir = \"o\" }\ns.out -> s_out.tensor\n";
    std::fs::write(&file, text).unwrap();
    let o = wgraph(&["check", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("expected an f32 tensor, found bool[1, 4]"),
        "{}",
        stderr(&o)
    );
}

/// 1/0 in an f64 output fails the model node, as a NaN in f32 does.
#[test]
fn a_non_finite_f64_output_fails_the_node_that_made_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    put(
        d,
        "mask.npy",
        &Tensor::from_bool(&[1, 1, 4], vec![true; 4]).unwrap(),
    );
    put(
        d,
        "idx.npy",
        &Tensor::from_i32(&[1, 4], vec![1; 4]).unwrap(),
    );
    put(
        d,
        "x.npy",
        &Tensor::from_f64(&[1, 4], vec![1.0, 2.0, 0.0, 0.0]).unwrap(),
    );
    let (o, _) = run(&dtypes_graph(d), "1");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "output `recip` (from model `m`) holds a non-finite value (inf) at element 2; 2 of its 4 values are NaN or infinite"
        ),
        "{}",
        stderr(&o)
    );
    // An f64 .npy holding NaN is refused when it loads.
    put(
        d,
        "x.npy",
        &Tensor::from_f64(&[1, 4], vec![1.0, f64::NAN, 1.0, 1.0]).unwrap(),
    );
    let o = wgraph(&["check", dtypes_graph(d).to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("holds a non-finite value at element 1"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn small_int_and_f16_ports_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let h = [f16::from_f32(0.5), f16::from_f32(-2.0), f16::MAX];
    let inputs = [
        ("a", Tensor::from_i8(&[3], vec![-128, 0, 127]).unwrap()),
        (
            "b",
            Tensor::from_i16(&[3], vec![i16::MIN, -2, i16::MAX]).unwrap(),
        ),
        ("c", Tensor::from_u16(&[3], vec![0, 1, u16::MAX]).unwrap()),
        ("d", Tensor::from_u32(&[3], vec![0, 7, u32::MAX]).unwrap()),
        ("e", Tensor::from_f16(&[3], h.to_vec()).unwrap()),
    ];
    let mut text = format!(
        "model m = \"{}\"\nnode net: model {{ model = m }}\n",
        root().join("tests/reference/small_types.onnx").display()
    );
    for (n, t) in &inputs {
        put(d, &format!("{n}.npy"), t);
        text += &format!(
            "node {n}: npy {{ path = \"{n}.npy\" }}\n{n}.out -> net.{n}\n\
             node d_{n}: npy_dump {{ dir = \"o\", prefix = \"{n}\" }}\nnet.{n}_out -> d_{n}.tensor\n"
        );
    }
    text +=
        "node d_wide: npy_dump { dir = \"o\", prefix = \"wide\" }\nnet.e_f32 -> d_wide.tensor\n";
    let file = d.join("g.world");
    std::fs::write(&file, text).unwrap();
    let (o, out) = run(&file, "1");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for (n, t) in &inputs {
        assert_eq!(&dumped(&out, &format!("{n}_00000.npy")), t, "{n}");
    }
    assert_eq!(
        dumped(&out, "wide_00000.npy").host_f32().unwrap(),
        &[0.5, -2.0, 65504.0]
    );
}
