//! The accept loop: bounded connections, bounded waits.
//!
//! axum's own `serve` accepts every connection and waits for headers as
//! long as a client likes; 20k idle sockets then exhaust the process's file
//! descriptors and the *world* dies (it cannot open a file). Here:
//!
//! - [`Limits`] — at most `max_connections` open at once, at most
//!   `max_per_address` from one IP address; a connection over either cap is
//!   closed at once. A WebSocket counts for as long as it is open (its
//!   [`Slot`] travels with it in the request's extensions).
//! - Request headers must arrive within `header_timeout` (slowloris), the
//!   first request's and, on a kept-alive connection, the next one's (the
//!   timer runs from when hyper starts reading a head), so an idle socket
//!   holds its slot for `header_timeout` at most.
//! - An accept error (EMFILE, ENFILE…) is logged once per second at most
//!   and retried after a pause, never spun on.

use crate::log::ViewerLog;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tower_service::Service;

/// Connection limits (`serve --max-connections`, `--max-per-address`,
/// `--header-timeout`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub max_per_address: usize,
    pub header_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            max_per_address: 32,
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// Open connections, in all and per address.
#[derive(Default)]
struct Counts {
    total: AtomicUsize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection's place under the limits; freed when dropped (the
/// last clone: a WebSocket holds one for its whole life).
pub struct Slot {
    counts: Arc<Counts>,
    ip: IpAddr,
}

impl Slot {
    /// The address the connection came from.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }
}

impl Counts {
    fn take(self: &Arc<Self>, ip: IpAddr, limits: &Limits) -> Option<Slot> {
        let mut per = self.per_address.lock().unwrap_or_else(|p| p.into_inner());
        let mine = per.get(&ip).copied().unwrap_or(0);
        if mine >= limits.max_per_address
            || self.total.load(Ordering::SeqCst) >= limits.max_connections
        {
            return None;
        }
        per.insert(ip, mine + 1);
        self.total.fetch_add(1, Ordering::SeqCst);
        Some(Slot {
            counts: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per = self
            .counts
            .per_address
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = per.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per.remove(&self.ip);
            }
        }
        self.counts.total.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves `app` on `listener` under `limits` until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    log: ViewerLog,
    shutdown: impl Future<Output = ()>,
) {
    let counts = Arc::new(Counts::default());
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    tokio::pin!(shutdown);
    let mut refused: u64 = 0;
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors (or similar): the limits should keep
                // this from happening; if it does, pause instead of spinning.
                log.line(&format!("web: cannot accept a connection: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(slot) = counts.take(peer.ip(), &limits) else {
            refused += 1;
            if refused.is_power_of_two() {
                log.line(&format!(
                    "web: connection limit reached ({} in all, {} per address); {refused} connections refused so far",
                    limits.max_connections, limits.max_per_address
                ));
            }
            drop(stream);
            continue;
        };
        let slot = Arc::new(slot);
        let app = app.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(Arc::clone(&slot));
                    let mut app = app.clone();
                    async move { app.call(request).await }
                });
            // Errors here are the client's (a timeout, a reset): nothing to do.
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_in_all_and_per_address_and_freed_on_drop() {
        let counts = Arc::new(Counts::default());
        let limits = Limits {
            max_connections: 3,
            max_per_address: 2,
            header_timeout: Duration::from_secs(1),
        };
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = counts.take(a, &limits).unwrap();
        let _a2 = counts.take(a, &limits).unwrap();
        assert!(counts.take(a, &limits).is_none(), "per address");
        let _b1 = counts.take(b, &limits).unwrap();
        assert!(counts.take(b, &limits).is_none(), "in all");
        drop(a1);
        let _b2 = counts.take(b, &limits).unwrap();
        assert_eq!(counts.total.load(Ordering::SeqCst), 3);
        assert_eq!(counts.per_address.lock().unwrap().get(&a), Some(&1));
    }
}
