//! Unit tests of the Triton backend.

use super::*;
use crate::model::{join_rows, rows_of};
use crate::signature::signature_of;
use std::path::Path;
use wgraph_engine::model::{Backend, ModelOptions};
use wgraph_engine::tensor::{HostData, Tensor};
use wgraph_engine::types::Dim;

/// A call of more rows than the server takes is sent in parts and
/// joined back: the parts' rows, in order, equal the whole.
#[test]
fn a_call_splits_into_parts_of_at_most_max_rows_and_joins_back() {
    let x = Tensor::from_host(
        &[5, 2],
        HostData::F32((0..10).map(|v| v as f32).collect::<Vec<_>>().into()),
    )
    .unwrap();
    let t = Tensor::from_host(&[5], HostData::F32(vec![0.1, 0.2, 0.3, 0.4, 0.5].into())).unwrap();
    let parts: Vec<Vec<Tensor>> = (0..5)
        .step_by(2)
        .map(|start| rows_of(&[x.clone(), t.clone()], start..(start + 2).min(5)).unwrap())
        .collect();
    assert_eq!(
        parts.iter().map(|p| p[0].shape()[0]).collect::<Vec<_>>(),
        [2, 2, 1]
    );
    assert_eq!(
        parts[2][0].host().unwrap(),
        &HostData::F32(vec![8.0, 9.0].into())
    );
    assert_eq!(
        parts[1][1].host().unwrap(),
        &HostData::F32(vec![0.3, 0.4].into())
    );
    let joined = join_rows(&parts).unwrap();
    assert_eq!(joined, vec![x, t]);
}

#[test]
fn dtype_names_round_trip() {
    for d in DType::ALL {
        assert_eq!(dtype_of_triton(triton_dtype(d)), Some(d));
        assert_eq!(
            dtype_of_triton(&format!("TYPE_{}", triton_dtype(d))),
            Some(d)
        );
    }
    assert_eq!(dtype_of_triton("BYTES"), None);
    assert_eq!(
        RETRY_BUDGET,
        (0..RETRIES)
            .map(|k| (FIRST_RETRY_PAUSE * 2u32.pow(k)).min(MAX_RETRY_PAUSE))
            .sum()
    );
}

fn meta(name: &str, dtype: &str, shape: &[i64]) -> proto::model_metadata_response::TensorMetadata {
    proto::model_metadata_response::TensorMetadata {
        name: name.into(),
        datatype: dtype.into(),
        shape: shape.to_vec(),
    }
}

/// The server's `-1` takes the local file's dimension name; a
/// differing dtype or fixed size is an error naming both copies.
#[test]
fn the_signature_merges_the_local_file_and_lists_differences() {
    let local = onnx::LocalModel {
        inputs: vec![onnx::LocalPort {
            name: "x".into(),
            dtype: Some(DType::F32),
            dims: vec![
                onnx::LocalDim::Sym(Some("batch".into())),
                onnx::LocalDim::Known(4),
            ],
        }],
        outputs: vec![onnx::LocalPort {
            name: "y".into(),
            dtype: Some(DType::F32),
            dims: vec![onnx::LocalDim::Sym(None), onnx::LocalDim::Known(2)],
        }],
        metadata: [("wgraph.role".to_string(), "vae_decoder".to_string())].into(),
    };
    let mut response = proto::ModelMetadataResponse {
        inputs: vec![meta("x", "FP32", &[-1, 4])],
        outputs: vec![meta("y", "FP32", &[-1, 2])],
        ..Default::default()
    };
    let mut config = proto::ModelConfig::default();
    config.parameters.insert(
        "wgraph.role".into(),
        proto::ModelParameter {
            string_value: "denoiser".into(),
        },
    );
    let (sig, dims) =
        signature_of(&response, Some(&config), Some(&local), Path::new("m.onnx")).unwrap();
    assert_eq!(
        sig.inputs[0].ty.shape,
        [Dim::Sym("batch".into()), Dim::Known(4)]
    );
    assert!(sig.outputs[0].ty.shape[0].is_unnamed());
    assert_eq!(sig.meta("wgraph.role"), Some("denoiser"));
    assert_eq!(dims, [vec![-1, 4]]);
    response.inputs = vec![meta("x", "INT64", &[-1, 5])];
    let err = signature_of(&response, None, Some(&local), Path::new("m.onnx")).unwrap_err();
    assert!(
        err.contains("input `x` is INT64[-1, 5] on the server but FP32[batch, 4] in m.onnx"),
        "{err}"
    );
}

/// `ModelStatistics` read into counts: versions of one model summed, a
/// run's share the difference of two readings, fusion the ratios.
#[test]
fn statistics_give_requests_per_execution() {
    let stats = |name: &str, requests: u64, rows: u64, executions: u64| proto::ModelStatistics {
        name: name.into(),
        inference_count: rows,
        execution_count: executions,
        inference_stats: Some(proto::InferStatistics {
            success: Some(proto::StatisticDuration {
                count: requests,
                ns: 1,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let before = ModelCounts::of_response(&proto::ModelStatisticsResponse {
        model_stats: vec![stats("dit", 10, 10, 10), stats("vae", 0, 0, 0)],
    });
    let after = ModelCounts::of_response(&proto::ModelStatisticsResponse {
        model_stats: vec![
            stats("dit", 40, 70, 15),
            stats("dit", 2, 2, 2),
            stats("vae", 0, 0, 0),
        ],
    });
    let dit = after["dit"].since(&before["dit"]);
    assert_eq!(
        dit,
        ModelCounts {
            requests: 32,
            rows: 62,
            executions: 7
        }
    );
    assert_eq!(dit.requests_per_execution(), Some(32.0 / 7.0));
    assert_eq!(dit.rows_per_execution(), Some(62.0 / 7.0));
    assert_eq!(
        after["vae"].since(&before["vae"]).requests_per_execution(),
        None
    );
    assert_eq!(dit.plus(&dit).requests, 64);
    // A counter that went down (the server restarted) is not negative.
    assert_eq!(before["dit"].since(&after["dit"]).requests, 0);
}

/// A server that is not there: a load error naming the model, the
/// address and what was tried — never a panic, and bounded in time.
#[test]
fn a_server_that_is_down_is_a_clear_load_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let options = ModelOptions {
        backend: wgraph_engine::model::BackendKind::Triton,
        server: Some(format!("127.0.0.1:{port}")),
        remote_name: Some("dit".into()),
        timeout_ms: Some(2000),
        ..ModelOptions::default()
    };
    let err = TritonBackend::new()
        .load(Path::new("/nonexistent/dit.onnx"), &options)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains(&format!(
            "model `dit` on Triton at 127.0.0.1:{port}: cannot reach the server (tried ServerReady"
        )),
        "{err}"
    );
}
