//! One gRPC call with a deadline: [`call`], [`request`], and [`CallError`]
//! (a timeout, or the server's status, with whether it is worth a retry).

use std::time::{Duration, Instant};

/// How a gRPC call went wrong.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    #[error("timed out after {0} ms")]
    Timeout(u64),
    #[error("{}", describe_status(.0))]
    Status(tonic::Status),
}

impl CallError {
    /// The server is not there (down, restarting, refusing): worth a retry.
    pub(crate) fn server_gone(&self) -> bool {
        match self {
            CallError::Timeout(_) => false,
            CallError::Status(s) => {
                matches!(
                    s.code(),
                    tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
                ) && !s.message().contains("unknown model")
            }
        }
    }
}

fn describe_status(s: &tonic::Status) -> String {
    use std::error::Error;
    let mut text = format!("{:?}: {}", s.code(), s.message());
    let mut source = s.source();
    while let Some(e) = source {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = e.source();
    }
    text
}

/// Runs one call with a deadline (sent to the server too, as `grpc-timeout`).
pub(crate) async fn call<T, F, Fut>(timeout: Duration, f: F) -> Result<T, CallError>
where
    F: FnOnce(Duration) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    let started = Instant::now();
    match tokio::time::timeout(timeout, f(timeout)).await {
        Err(_) => Err(CallError::Timeout(ms)),
        // The server's deadline, or tonic's own (`Cancelled: Timeout expired`).
        Ok(Err(s)) if s.code() == tonic::Code::DeadlineExceeded || started.elapsed() >= timeout => {
            Err(CallError::Timeout(ms))
        }
        Ok(Err(s)) => Err(CallError::Status(s)),
        Ok(Ok(r)) => Ok(r.into_inner()),
    }
}

pub(crate) fn request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(timeout);
    r
}
