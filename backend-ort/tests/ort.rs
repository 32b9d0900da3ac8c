//! Integration tests for the ONNX Runtime backend.
//!
//! The models in `tests/data/` are made by `tests/data/make_test_models.py`.
//! The first test to load a model initialises ONNX Runtime for the whole
//! process; on a fresh machine that installs it into wgraph's cache.

use std::path::{Path, PathBuf};
use wgraph_engine::model::{Backend, LoadedModel, ModelError, ModelOptions, Provider};
use wgraph_engine::tensor::{DType, Tensor};
use wgraph_engine::types::Dim;
use wgraph_ort::OrtBackend;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("data")
        .join(name)
}

fn load_with(name: &str, options: &ModelOptions) -> Result<LoadedModel, ModelError> {
    OrtBackend::new().load(&data(name), options)
}

fn load(name: &str) -> LoadedModel {
    match load_with(name, &ModelOptions::default()) {
        Ok(m) => m,
        Err(e) => panic!("loading {name}: {e}"),
    }
}

fn f32s(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_f32(shape, v.to_vec()).unwrap()
}

fn sym(s: &str) -> Dim {
    Dim::Sym(s.into())
}

mod signature {
    use super::*;

    #[test]
    fn add_has_named_ports_symbolic_batch_and_metadata() {
        let loaded = load("add.onnx");
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let m = loaded.model;
        assert_eq!(m.provider(), Provider::Cpu);
        let sig = m.signature();
        let names: Vec<&str> = sig.inputs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["x", "y"]);
        for p in &sig.inputs {
            assert_eq!(p.ty.dtype, DType::F32);
            assert_eq!(p.ty.shape, vec![sym("batch"), Dim::Known(4)]);
        }
        assert_eq!(sig.outputs.len(), 1);
        assert_eq!(sig.outputs[0].name, "out");
        assert_eq!(sig.outputs[0].ty.to_string(), "f32[batch, 4]");
        assert_eq!(sig.meta("wgraph.role"), Some("test"));
        assert_eq!(sig.meta("wgraph.note"), Some("tiny"));
        assert_eq!(sig.metadata.len(), 2);
    }

    #[test]
    fn tokens_takes_i64() {
        let sig = load("tokens.onnx").model.signature().clone();
        assert_eq!(sig.inputs[0].name, "ids");
        assert_eq!(sig.inputs[0].ty.to_string(), "i64[batch, seq]");
        assert_eq!(sig.outputs[0].ty.to_string(), "f32[batch, seq, 3]");
        assert!(sig.metadata.is_empty());
    }

    #[test]
    fn unnamed_dynamic_dimension_is_question_mark() {
        let sig = load("bytes.onnx").model.signature().clone();
        assert_eq!(sig.inputs[0].ty.dtype, DType::U8);
        assert!(sig.inputs[0].ty.shape[0].is_unnamed());
        assert_eq!(sig.inputs[0].ty.shape[1], Dim::Known(3));
        assert_eq!(sig.inputs[0].ty.to_string(), "u8[?, 3]");
        assert_eq!(sig.outputs[0].name, "scaled");
        assert_eq!(sig.outputs[0].ty.dtype, DType::F32);
    }
}

mod run {
    use super::*;

    #[test]
    fn add_adds() {
        let m = load("add.onnx").model;
        let x = f32s(&[2, 4], &[1., 2., 3., 4., 5., 6., 7., 8.]);
        let y = f32s(&[2, 4], &[10., 20., 30., 40., 50., 60., 70., 80.]);
        let out = m.run(&[x, y]).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].shape(), &[2, 4]);
        assert_eq!(
            out[0].host_f32().unwrap(),
            &[11., 22., 33., 44., 55., 66., 77., 88.]
        );
    }

    #[test]
    fn f16_goes_in_and_comes_out_bit_for_bit() {
        use wgraph_engine::tensor::f16;
        let m = load("half.onnx").model;
        assert_eq!(m.signature().inputs[0].ty.to_string(), "f16[2]");
        let h = vec![f16::from_f32(-1.5), f16::from_bits(0x7bff)];
        let out = m
            .run(&[Tensor::from_f16(&[2], h.clone()).unwrap()])
            .unwrap();
        assert_eq!(out[0].host_f16().unwrap(), &h[..]);
        // A wrong dtype is named, not bound.
        let err = m.run(&[f32s(&[2], &[0.; 2])]).unwrap_err().to_string();
        assert!(
            err.contains("input `h` expects f16[2], got f32[2]"),
            "{err}"
        );
    }

    #[test]
    fn tokens_gathers_rows() {
        let m = load("tokens.onnx").model;
        let ids = Tensor::from_i64(&[1, 3], vec![0, 2, 9]).unwrap();
        let out = m.run(&[ids]).unwrap();
        assert_eq!(out[0].shape(), &[1, 3, 3]);
        assert_eq!(
            out[0].host_f32().unwrap(),
            &[0., 0., 0., 2., 20., 200., 9., 90., 900.]
        );
    }

    #[test]
    fn bytes_are_cast_and_scaled() {
        let m = load("bytes.onnx").model;
        let img = Tensor::from_u8(&[2, 3], vec![0, 1, 2, 100, 127, 255]).unwrap();
        let out = m.run(&[img]).unwrap();
        assert_eq!(out[0].shape(), &[2, 3]);
        assert_eq!(out[0].host_f32().unwrap(), &[0., 2., 4., 200., 254., 510.]);
    }

    #[test]
    fn one_model_runs_from_many_threads() {
        let m = load("add.onnx").model;
        std::thread::scope(|s| {
            for t in 0..4 {
                let m = m.clone();
                s.spawn(move || {
                    for i in 0..20 {
                        let v = (t * 100 + i) as f32;
                        let x = f32s(&[1, 4], &[v; 4]);
                        let y = f32s(&[1, 4], &[1.0; 4]);
                        let out = m.run(&[x, y]).unwrap();
                        assert_eq!(out[0].host_f32().unwrap(), &[v + 1.0; 4]);
                    }
                });
            }
        });
    }
}

mod input_errors {
    use super::*;

    fn run_err(name: &str, inputs: &[Tensor]) -> String {
        match load(name).model.run(inputs) {
            Err(ModelError::Run(msg)) => msg,
            other => panic!("expected a Run error, got {other:?}"),
        }
    }

    #[test]
    fn wrong_dtype_names_the_port() {
        let x = f32s(&[1, 4], &[0.; 4]);
        let y = Tensor::from_i64(&[1, 4], vec![0; 4]).unwrap();
        assert_eq!(
            run_err("add.onnx", &[x, y]),
            "input `y` expects f32[batch, 4], got i64[1, 4]"
        );
    }

    #[test]
    fn wrong_known_dimension_names_the_port() {
        let x = f32s(&[1, 5], &[0.; 5]);
        let y = f32s(&[1, 4], &[0.; 4]);
        assert_eq!(
            run_err("add.onnx", &[x, y]),
            "input `x` expects f32[batch, 4], got f32[1, 5]"
        );
    }

    #[test]
    fn wrong_rank_names_the_port() {
        let x = f32s(&[4], &[0.; 4]);
        let y = f32s(&[1, 4], &[0.; 4]);
        assert_eq!(
            run_err("add.onnx", &[x, y]),
            "input `x` expects f32[batch, 4], got f32[4]"
        );
    }

    #[test]
    fn wrong_count_lists_the_ports() {
        let x = f32s(&[1, 4], &[0.; 4]);
        assert_eq!(
            run_err("add.onnx", &[x]),
            "model takes 2 input(s) (`x`, `y`), got 1"
        );
    }

    #[test]
    fn inconsistent_symbolic_dimension_is_named() {
        let x = f32s(&[1, 4], &[0.; 4]);
        let y = f32s(&[2, 4], &[0.; 8]);
        let msg = run_err("add.onnx", &[x, y]);
        assert!(
            msg.starts_with("input `y` expects f32[batch, 4], got f32[2, 4]"),
            "{msg}"
        );
        assert!(msg.contains("`batch` is 1 in input `x`"), "{msg}");
    }

    #[test]
    fn out_of_range_token_is_a_run_error_not_a_panic() {
        let ids = Tensor::from_i64(&[1, 1], vec![99]).unwrap();
        let err = load("tokens.onnx").model.run(&[ids]).unwrap_err();
        assert!(matches!(err, ModelError::Run(_)), "{err:?}");
    }
}

mod load_errors {
    use super::*;

    fn load_err(path: &Path) -> String {
        match OrtBackend::new().load(path, &ModelOptions::default()) {
            Err(ModelError::Load(msg)) => msg,
            Err(other) => panic!("expected a Load error, got {other:?}"),
            Ok(_) => panic!("expected a Load error, got a model"),
        }
    }

    #[test]
    fn missing_file() {
        let path = data("no_such_model.onnx");
        let msg = load_err(&path);
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("does not exist"), "{msg}");
    }

    #[test]
    fn garbage_file() {
        let path = data("not_onnx.onnx");
        let msg = load_err(&path);
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("not an ONNX model"), "{msg}");
    }

    #[test]
    fn directory() {
        let msg = load_err(&data(""));
        assert!(msg.contains("not a regular file (a directory)"), "{msg}");
        #[cfg(unix)]
        {
            let msg = load_err(Path::new("/dev/zero"));
            assert!(
                msg.contains("not a regular file (a character device)"),
                "{msg}"
            );
        }
    }

    #[test]
    fn unsupported_dtype_names_port_and_dtype() {
        let path = data("u64.onnx");
        let msg = load_err(&path);
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("input `w` has dtype u64"), "{msg}");
        assert!(
            msg.contains("supported: f32, f64, f16, i64, i32, i16, i8, u8, u16, u32, bool"),
            "{msg}"
        );
    }
}

mod providers {
    use super::*;

    fn options(provider: Provider, strict: bool) -> ModelOptions {
        ModelOptions {
            provider,
            strict,
            fp16: true,
            engine_cache: Some(std::env::temp_dir().join("wgraph-ort-test-trt-cache")),
            ..ModelOptions::default()
        }
    }

    fn check_fallback(provider: Provider) {
        let loaded = load_with("add.onnx", &options(provider, false)).unwrap();
        if loaded.model.provider() == provider {
            // A GPU runtime on a GPU machine: nothing to fall back from.
            assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
            return;
        }
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        let w = &loaded.warnings[0];
        assert!(w.contains(&format!("provider `{provider}`")), "{w}");
        assert!(w.contains("instead"), "{w}");
        if !wgraph_ort::provider_available(provider).unwrap() {
            assert_eq!(loaded.model.provider(), Provider::Cpu);
            assert!(w.contains("is not available in"), "{w}");
            assert!(w.contains("(this build has: cpu"), "{w}");
        }
        // The fallback model works.
        let x = f32s(&[1, 4], &[1.0; 4]);
        let out = loaded.model.run(&[x.clone(), x]).unwrap();
        assert_eq!(out[0].host_f32().unwrap(), &[2.0; 4]);
    }

    #[test]
    fn cuda_falls_back_with_a_warning() {
        check_fallback(Provider::Cuda);
    }

    #[test]
    fn tensorrt_falls_back_with_a_warning() {
        check_fallback(Provider::TensorRt);
    }

    #[test]
    fn strict_unavailable_provider_is_a_provider_error() {
        for provider in [Provider::Cuda, Provider::TensorRt] {
            if wgraph_ort::provider_available(provider).unwrap() {
                continue;
            }
            match load_with("add.onnx", &options(provider, true)) {
                Err(ModelError::Provider(msg)) => {
                    assert!(
                        msg.contains(&format!("provider `{provider}` is not available in")),
                        "{msg}"
                    );
                    assert!(msg.contains("this build has: cpu"), "{msg}");
                }
                Err(other) => panic!("expected a Provider error, got {other:?}"),
                Ok(_) => panic!("expected a Provider error, got a model"),
            }
        }
    }

    #[test]
    fn threads_option_is_accepted() {
        let opts = ModelOptions {
            threads: Some(1),
            ..ModelOptions::default()
        };
        let m = load_with("add.onnx", &opts).unwrap().model;
        let x = f32s(&[1, 4], &[2.0; 4]);
        assert_eq!(
            m.run(&[x.clone(), x]).unwrap()[0].host_f32().unwrap(),
            &[4.0; 4]
        );
    }

    #[test]
    fn cpu_is_always_available() {
        assert!(wgraph_ort::provider_available(Provider::Cpu).unwrap());
        assert!(
            wgraph_ort::available_providers()
                .unwrap()
                .contains(&Provider::Cpu)
        );
    }
}

mod runtime_info {
    #[test]
    fn runtime_reports_path_version_and_source() {
        let info = wgraph_ort::runtime().unwrap();
        assert!(info.path.is_absolute());
        assert!(info.path.is_file());
        let (major, minor) = {
            let mut it = info.version.split('.');
            (
                it.next().unwrap().parse::<u32>().unwrap(),
                it.next().unwrap().parse::<u32>().unwrap(),
            )
        };
        assert!((major, minor) >= (1, 31), "{}", info.version);
        // Every caller gets the same answer.
        assert!(std::ptr::eq(info, wgraph_ort::runtime().unwrap()));
    }
}

mod doctor {
    #[test]
    fn report_mentions_the_library_and_cpu() {
        let report = wgraph_ort::doctor();
        let info = report.runtime.clone().unwrap();
        let text = report.to_string();
        println!("{text}");
        assert!(text.contains(&info.path.display().to_string()), "{text}");
        assert!(text.contains(&info.version), "{text}");
        assert!(text.contains("cpu"), "{text}");
        assert!(text.contains("GPUs"), "{text}");
        let json = report.to_json();
        assert_eq!(json["runtime"]["version"], info.version.as_str());
        assert_eq!(json["providers"]["cpu"], true);
        assert!(json["gpus"].is_array());
    }
}

/// Runtime initialisation is once per process, so a bad `ORT_DYLIB_PATH` is
/// tested in a child: this test binary re-run with one test selected.
mod bad_runtime {
    use super::*;
    use std::process::Command;

    const CHILD: &str = "WGRAPH_ORT_TEST_CHILD";
    const EXPECT: &str = "WGRAPH_ORT_TEST_EXPECT";

    /// Does nothing unless started by [`run_child`].
    #[test]
    fn child_probe() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        let expect = std::env::var(EXPECT).unwrap();
        let first = wgraph_ort::runtime().unwrap_err();
        let ModelError::Runtime(msg) = &first else {
            panic!("expected a Runtime error, got {first:?}");
        };
        assert!(msg.contains("ORT_DYLIB_PATH"), "{msg}");
        assert!(msg.contains(&expect), "{msg}");
        // The same answer every time, and through every entry point.
        assert_eq!(wgraph_ort::runtime().unwrap_err(), first);
        let err = load_with("add.onnx", &ModelOptions::default())
            .err()
            .unwrap();
        assert_eq!(err, first);
        let report = wgraph_ort::doctor();
        assert!(report.runtime.is_err());
        assert!(report.to_string().contains("not usable"), "{report}");
        println!("CHILD-OK: {msg}");
    }

    fn run_child(dylib: &Path, expect: &str) -> String {
        let exe = std::env::current_exe().unwrap();
        let out = Command::new(exe)
            .args([
                "bad_runtime::child_probe",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .env(EXPECT, expect)
            .env("ORT_DYLIB_PATH", dylib)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success() && stdout.contains("CHILD-OK"),
            "child failed ({:?})\nstdout:\n{stdout}\nstderr:\n{stderr}",
            out.status
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        stdout
    }

    #[test]
    fn text_file_is_a_runtime_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("libonnxruntime.so");
        std::fs::write(&file, "this is a text file, not a library\n").unwrap();
        let out = run_child(&file, "not a loadable shared library");
        assert!(out.contains("libonnxruntime.so"), "{out}");
    }

    #[test]
    fn missing_file_is_a_runtime_error() {
        let dir = tempfile::tempdir().unwrap();
        run_child(&dir.path().join("absent.so"), "cannot be opened");
    }

    #[test]
    fn other_library_is_a_runtime_error() {
        let candidates = [
            "/lib/x86_64-linux-gnu/libm.so.6",
            "/lib/aarch64-linux-gnu/libm.so.6",
            "/usr/lib/libm.so.6",
            "/lib64/libm.so.6",
        ];
        let Some(lib) = candidates.iter().map(Path::new).find(|p| p.is_file()) else {
            return; // not a glibc Linux: nothing to test with
        };
        run_child(lib, "not ONNX Runtime");
    }
}

/// IoBinding and fixed-address buffers, checked on the CPU provider (the
/// same code binds GPU memory on CUDA).
mod binding {
    use super::*;

    fn xy(scale: f32) -> [Tensor; 2] {
        [
            f32s(&[1, 4], &[1., 2., 3., 4.].map(|v| v * scale)),
            f32s(&[1, 4], &[10., 20., 30., 40.]),
        ]
    }

    #[test]
    fn bound_runs_give_what_plain_runs_give() {
        let plain = load("add.onnx").model;
        for options in [
            ModelOptions {
                io_binding: Some(true),
                ..ModelOptions::default()
            },
            ModelOptions {
                cuda_graph: true,
                ..ModelOptions::default()
            },
        ] {
            let m = load_with("add.onnx", &options).unwrap().model;
            for scale in [1.0, -3.0, 0.5] {
                let want = plain.run(&xy(scale)).unwrap();
                let got = m.run(&xy(scale)).unwrap();
                assert_eq!(got, want, "{options:?}");
                assert!(got[0].is_host());
            }
        }
    }

    #[test]
    fn fixed_buffers_do_not_alias_results_and_are_kept_per_shape_set() {
        let loaded = load_with(
            "add.onnx",
            &ModelOptions {
                cuda_graph: true,
                ..ModelOptions::default()
            },
        )
        .unwrap();
        assert!(
            loaded
                .warnings
                .iter()
                .any(|w| w.contains("`cuda_graph` needs the CUDA provider")),
            "{:?}",
            loaded.warnings
        );
        let m = loaded.model;
        m.prepare(&[vec![1, 4], vec![1, 4]]).unwrap();
        let first = m.run(&xy(1.0)).unwrap();
        let second = m.run(&xy(2.0)).unwrap();
        // The second run reused the fixed output buffer; the first result
        // was copied out of it and is unchanged.
        assert_eq!(first[0].host_f32().unwrap(), &[11., 22., 33., 44.]);
        assert_eq!(second[0].host_f32().unwrap(), &[12., 24., 36., 48.]);
        // Another shape set gets buffers of its own (on CUDA: its own graph).
        let x = f32s(&[2, 4], &[1.; 8]);
        let two = m.run(&[x.clone(), x]).unwrap();
        assert_eq!(two[0].host_f32().unwrap(), &[2.; 8]);
        assert_eq!(m.run(&xy(1.0)).unwrap(), first);
        // Up to a bound: eight shape sets, then a plain error.
        for rows in 3..=8 {
            let x = f32s(&[rows, 4], &vec![0.; rows * 4]);
            m.run(&[x.clone(), x]).unwrap();
        }
        let x = f32s(&[9, 4], &[0.; 36]);
        let err = m.run(&[x.clone(), x]).unwrap_err().to_string();
        assert!(
            err.contains("cuda_graph needs fixed shapes, and this model has already been run with 8 input shape sets")
                && err.contains("input `x` is now f32[9, 4]"),
            "{err}"
        );
    }

    #[test]
    fn fixed_buffers_need_output_shapes_the_inputs_fix() {
        // `bytes.onnx`: u8[?, 3] -> f32[?, 3]; an unnamed dimension links nothing.
        let m = load_with(
            "bytes.onnx",
            &ModelOptions {
                cuda_graph: true,
                ..ModelOptions::default()
            },
        )
        .unwrap()
        .model;
        let x = Tensor::from_vec(&[1, 3], vec![1u8, 2, 3]).unwrap();
        let err = m.run(&[x]).unwrap_err().to_string();
        assert!(
            err.contains("cuda_graph needs fixed output shapes, but output `scaled`"),
            "{err}"
        );
    }

    #[test]
    fn the_cpu_provider_copies_nothing_between_host_and_device() {
        let m = load_with(
            "add.onnx",
            &ModelOptions {
                io_binding: Some(true),
                ..ModelOptions::default()
            },
        )
        .unwrap()
        .model;
        let before = wgraph_engine::transfers::totals();
        m.run(&xy(1.0)).unwrap();
        load("add.onnx").model.run(&xy(1.0)).unwrap();
        assert_eq!(
            wgraph_engine::transfers::totals().since(&before).copies(),
            0
        );
    }
}
