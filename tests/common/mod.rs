//! Helpers shared by the integration tests (each uses a subset).
#![allow(dead_code)]

pub mod go_peer;
pub mod metrics;
pub mod ports;
pub mod tls;
// Each test crate uses some of these.
#[allow(unused_imports)]
pub use metrics::{metric, metric_type};
#[allow(unused_imports)]
pub use tls::tls_pair;

use gossiphttp::{MetricsRegistry, Options, Server, Transport};
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;

/// The bound on every network wait: generous, only reached when something
/// hangs.
pub const WAIT: Duration = Duration::from_secs(5);

/// Awaits `fut` for at most [`WAIT`], panicking with `what` when it hangs.
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    within_for(WAIT, what, fut).await
}

/// Awaits `fut` for at most `limit`, panicking with `what` when it hangs.
pub async fn within_for<F: Future>(limit: Duration, what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no result within {limit:?}"),
    }
}

/// A transport served on a fresh loopback port.
pub struct Peer {
    pub transport: Transport,
    pub registry: MetricsRegistry,
    pub server: Server,
    pub addr: String,
}

impl Peer {
    pub async fn start(options: Options) -> Peer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Peer::serve_on(options, listener).await
    }

    /// A transport served on `listener` (say, one bound again to the port
    /// of a peer that crashed).
    pub async fn serve_on(options: Options, listener: TcpListener) -> Peer {
        let (transport, registry) = Transport::new(options).expect("valid options");
        let server = transport.serve(listener).expect("serve");
        let addr = server.local_addr().to_string();
        Peer {
            transport,
            registry,
            server,
            addr,
        }
    }

    pub async fn stop(self) {
        within(
            "transport and server shutdown",
            self.server.shutdown_with(&self.transport),
        )
        .await;
    }
}

/// A transport served on a fresh loopback port, with its server and
/// address.
pub async fn served(options: Options) -> (Transport, Server, String) {
    let peer = Peer::start(options).await;
    (peer.transport, peer.server, peer.addr)
}

/// Polls `cond` until it holds or `limit` passes; true if it held. Used to
/// wait for background work, never as an assertion about timing.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
