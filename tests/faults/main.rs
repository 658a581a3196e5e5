//! Faults (issue 7): every peer can die at any moment. The transport
//! recovers (reconnects on the next send), reports errors on the affected
//! operations only, and leaks no tasks. Shutdown under load loses nothing
//! silently: every packet answered `200` reaches `packets()`.
//!
//! `crashes`: peers that crash, stall, reset or restart; `handshakes`: TLS
//! handshakes that stall on either side; `shutdown`: shutdown under load;
//! `connections`: no task leak after many peers, one connection per peer.

#[path = "../common/mod.rs"]
mod common;
mod connections;
mod crashes;
mod handshakes;
mod shutdown;

use bytes::Bytes;
use common::ports::rebind;
use common::Peer;
use gossiphttp::Options;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::time::{sleep, timeout};

/// The bound on every network wait: generous, only hit when something hangs.
const WAIT: Duration = Duration::from_secs(10);

/// A runtime of its own for a peer that will crash: shutting it down drops
/// every task, socket and transport of the peer at once, as a killed
/// process would (no GOAWAY, no graceful close).
fn doomed_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// A served peer living in its own runtime, so that it can crash.
struct CrashablePeer {
    rt: tokio::runtime::Runtime,
    addr: String,
}

impl CrashablePeer {
    /// Serves a transport that echoes every stream it accepts and keeps the
    /// packets it receives in `received`.
    async fn start(bind: SocketAddr, received: Arc<Mutex<Vec<Bytes>>>) -> CrashablePeer {
        let rt = doomed_runtime();
        let (ready_tx, ready_rx) = oneshot::channel();
        rt.spawn(async move {
            let listener = rebind(bind).await;
            let peer = Peer::serve_on(Options::default(), listener).await;
            let mut packets = peer.transport.packets();
            tokio::spawn(async move {
                while let Some(p) = packets.recv().await {
                    received.lock().unwrap().push(p.payload);
                }
            });
            let _ = ready_tx.send(peer.addr.clone());
            let mut streams = peer.transport.streams();
            while let Some(conn) = streams.accept().await {
                tokio::spawn(echo(conn));
            }
            // Keep the server alive until the runtime goes.
            drop(peer);
        });
        let addr = timeout(WAIT, ready_rx).await.unwrap().unwrap();
        CrashablePeer { rt, addr }
    }

    fn crash(self) {
        self.rt.shutdown_background();
    }
}

async fn echo(conn: gossiphttp::StreamConn) {
    let (mut r, mut w) = tokio::io::split(conn);
    let _ = tokio::io::copy(&mut r, &mut w).await;
    let _ = w.shutdown().await;
}

/// Writes until a write fails (the first few may still be queued locally
/// after the peer went), panicking if one hangs or none ever fails.
async fn writes_fail(conn: &mut gossiphttp::StreamConn) -> std::io::Error {
    for _ in 0..500 {
        match timeout(WAIT, conn.write_all(b"after the crash")).await {
            Err(_) => panic!("a write on a stream to a crashed peer hung"),
            Ok(Err(e)) => return e,
            Ok(Ok(())) => sleep(Duration::from_millis(10)).await,
        }
    }
    panic!("writes never failed after the crash");
}

/// Writes `msg` and reads it back from an echoing peer.
async fn round_trip(conn: &mut gossiphttp::StreamConn, msg: &[u8]) {
    timeout(WAIT, conn.write_all(msg)).await.unwrap().unwrap();
    let mut back = vec![0u8; msg.len()];
    timeout(WAIT, conn.read_exact(&mut back))
        .await
        .expect("echo hung")
        .unwrap();
    assert_eq!(back, msg);
}
