//! Building one ONNX Runtime session for a model on one provider
//! ([`commit`]): threads, execution providers, and the private copy of the
//! model's external data (see `private`).

use crate::providers::execution_providers;
use crate::{private, runtime, tensorrt};
use ort::session::Session;
use ort::session::builder::SessionBuilder;
use std::path::Path;
use wgraph_engine::model::{ModelError, ModelOptions, Provider};

/// A failure to build a session.
pub(crate) enum Failure {
    /// Options could not be set (not the model's fault): final.
    Setup(ModelError),
    /// ONNX Runtime refused to create the session.
    Commit(String),
}

/// Builds a session for `path` on `provider` only.
pub(crate) fn commit(
    rt: &runtime::Runtime,
    path: &Path,
    provider: Provider,
    options: &ModelOptions,
    profile: Option<&tensorrt::Profile>,
) -> Result<Session, Failure> {
    let setup = |e: String| Failure::Setup(ModelError::Runtime(e));
    let mut builder: SessionBuilder = Session::builder(&rt.env).map_err(|e| {
        setup(format!(
            "cannot create an ONNX Runtime session builder: {e}"
        ))
    })?;
    if let Some(threads) = options.threads {
        builder = builder
            .with_intra_threads(threads)
            .map_err(|e| setup(format!("cannot set {threads} intra-op threads: {e}")))?;
    }
    let eps = execution_providers(provider, options, profile).map_err(Failure::Setup)?;
    if !eps.is_empty() {
        builder = builder
            .with_execution_providers(eps)
            .map_err(|e| Failure::Commit(format!("cannot register provider `{provider}`: {e}")))?;
    }
    // ONNX Runtime maps external-data files; a write to a mapped file
    // (an in-place `cp`) would fault the process. It maps a private copy.
    let copy = private::copy(path).map_err(Failure::Setup)?;
    let from = copy.as_ref().map_or(path, |c| c.model.as_path());
    builder.commit_from_file(from).map_err(|e| {
        let message = e.to_string();
        Failure::Commit(match &copy {
            Some(c) => c.unprivate(&message),
            None => message,
        })
    })
}
