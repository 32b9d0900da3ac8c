//! The one tokio runtime of the Triton backend, per process.
//!
//! The engine calls `Model::run` synchronously from its tick threads; each
//! call blocks its thread on a future run by this runtime (two worker
//! threads: gRPC's connection tasks). Made on first use, shared by every
//! model and server, never dropped.

use std::future::Future;
use std::sync::OnceLock;
use tokio::runtime::Runtime;
use wgraph_engine::model::ModelError;

/// The process's runtime for gRPC calls, made on first use.
pub fn runtime() -> Result<&'static Runtime, ModelError> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("wgraph-triton")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the Triton client's runtime: {e}"))
        })
        .as_ref()
        .map_err(|e| ModelError::Runtime(e.clone()))
}

/// Runs `future` to its end on [`runtime`], blocking this thread. Called
/// from a thread that is itself inside a tokio runtime (where `block_on`
/// would panic), the future is spawned on ours and awaited through a channel.
pub(crate) fn block_on<F>(future: F) -> Result<F::Output, ModelError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let rt = runtime()?;
    if tokio::runtime::Handle::try_current().is_err() {
        return Ok(rt.block_on(future));
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    rt.spawn(async move {
        let _ = tx.send(future.await);
    });
    rx.recv()
        .map_err(|_| ModelError::Runtime("the Triton client's task ended without an answer".into()))
}
