//! The transport keeps a bounded number of connections to peers: past
//! `max_peer_connections` the least recently used one is closed, and so is
//! one left unused for `idle_peer_timeout` (a cluster member talks with
//! every other in turn; unbounded, a large cluster runs out of files).

mod common;

use common::within;
use gossiphttp::{Options, Transport};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// A bare HTTP/2 server that answers every request `200` once its body
/// ended, and counts its open connections.
struct CountingPeer {
    addr: String,
    open: Arc<AtomicUsize>,
}

impl CountingPeer {
    async fn start() -> CountingPeer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let open = Arc::new(AtomicUsize::new(0));
        let counter = open.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let counter = counter.clone();
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Ok(mut conn) = h2::server::handshake(tcp).await {
                        while let Some(Ok((req, mut respond))) = conn.accept().await {
                            tokio::spawn(async move {
                                let mut body = req.into_body();
                                while let Some(Ok(chunk)) = body.data().await {
                                    let _ = body.flow_control().release_capacity(chunk.len());
                                }
                                let resp = http::Response::builder().status(200).body(()).unwrap();
                                let _ = respond.send_response(resp, true);
                            });
                        }
                    }
                    counter.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        CountingPeer { addr, open }
    }

    fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    async fn wait_open(&self, n: usize, what: &str) {
        within(what, async {
            while self.open() != n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }
}

fn client(max_peer_connections: usize, idle: Duration) -> Transport {
    let mut options = Options::default();
    options.max_peer_connections = max_peer_connections;
    options.idle_peer_timeout = idle;
    options.message_body_linger = Duration::ZERO;
    Transport::new(options).unwrap().0
}

#[tokio::test]
async fn past_the_limit_the_least_recently_used_connection_is_closed() {
    let peers = [
        CountingPeer::start().await,
        CountingPeer::start().await,
        CountingPeer::start().await,
    ];
    let transport = client(2, Duration::from_secs(60));
    for peer in &peers[..2] {
        within("send", transport.send("a".into(), &peer.addr))
            .await
            .unwrap();
    }
    peers[0]
        .wait_open(1, "a connection to the first peer")
        .await;
    peers[1]
        .wait_open(1, "a connection to the second peer")
        .await;
    // Using the first again makes the second the least recently used.
    within("send", transport.send("b".into(), &peers[0].addr))
        .await
        .unwrap();
    within("send", transport.send("c".into(), &peers[2].addr))
        .await
        .unwrap();
    peers[1]
        .wait_open(0, "the least recently used connection closed")
        .await;
    assert_eq!((peers[0].open(), peers[2].open()), (1, 1));
    // A peer whose connection was closed is reached again on a new one.
    within("send", transport.send("d".into(), &peers[1].addr))
        .await
        .unwrap();
    peers[1]
        .wait_open(1, "a new connection to the second peer")
        .await;
    transport.shutdown().await;
}

#[tokio::test]
async fn a_connection_unused_for_the_idle_timeout_is_closed() {
    let peers = [CountingPeer::start().await, CountingPeer::start().await];
    let transport = client(100, Duration::from_millis(200));
    within("send", transport.send("a".into(), &peers[0].addr))
        .await
        .unwrap();
    peers[0]
        .wait_open(1, "a connection to the first peer")
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The next new connection sweeps the idle ones out.
    within("send", transport.send("b".into(), &peers[1].addr))
        .await
        .unwrap();
    peers[0].wait_open(0, "the idle connection closed").await;
    transport.shutdown().await;
}
