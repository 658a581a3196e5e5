//! No task leak after talking to many peers; one connection per peer.

use super::WAIT;
use crate::common::Peer;
use bytes::Bytes;
use gossiphttp::{Options, Transport};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{sleep, timeout};

/// 6. No task leak: a transport that talked to 50 peers (packets and
/// streams) shuts down in bounded time, and the runtime's live tasks return
/// to where they were before.
#[tokio::test]
async fn no_task_leak_after_talking_to_many_peers() {
    let tasks = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    let baseline = tasks();

    let (a, _) = Transport::new(Options::default()).unwrap();
    let mut peers = Vec::new();
    for _ in 0..50 {
        peers.push(Peer::start(Options::default()).await);
    }
    for (i, peer) in peers.iter().enumerate() {
        for k in 0..3u8 {
            a.write_to(Bytes::from(vec![i as u8, k]), &peer.addr)
                .unwrap();
        }
        timeout(WAIT, a.send(Bytes::from(vec![i as u8, 0xFF]), &peer.addr))
            .await
            .unwrap()
            .unwrap();
    }
    // Streams to a few peers, left open across the shutdown.
    let mut conns = Vec::new();
    for peer in peers.iter().take(10) {
        let mut conn = timeout(WAIT, a.dial(&peer.addr, WAIT))
            .await
            .unwrap()
            .unwrap();
        conn.write_all(b"hi").await.unwrap();
        let mut accepted = timeout(WAIT, peer.transport.streams().accept())
            .await
            .unwrap()
            .unwrap();
        let mut buf = [0u8; 2];
        timeout(WAIT, accepted.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        conns.push((conn, accepted));
    }
    for (i, peer) in peers.iter().enumerate() {
        let mut packets = peer.transport.packets();
        for _ in 0..4 {
            let p = timeout(WAIT, packets.recv()).await.unwrap().unwrap();
            assert_eq!(p.payload[0], i as u8);
        }
    }
    assert_eq!(a.active_peers(), 50);
    assert!(tasks() > baseline + 50, "expected per-peer tasks");

    timeout(WAIT, a.shutdown())
        .await
        .expect("shutdown with 50 peers hung");
    drop(conns);
    for peer in peers {
        peer.stop().await;
    }
    drop(a);
    let settled = timeout(WAIT, async {
        loop {
            let n = tasks();
            if n <= baseline {
                return n;
            }
            sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        settled.is_ok(),
        "{} tasks still alive after shutdown (baseline {baseline})",
        tasks()
    );
}

/// Requests that find no pooled connection to a peer at once share one
/// connect: one TCP (and TLS, and HTTP/2) connection per peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_use_of_a_peer_opens_one_connection() {
    let b = Peer::start(Options::default()).await;
    let upstream: SocketAddr = b.addr.parse().unwrap();
    // A TCP proxy in front of B that counts the connections made to it.
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = proxy.local_addr().unwrap().to_string();
    let opened = Arc::new(AtomicUsize::new(0));
    let proxying = tokio::spawn({
        let opened = opened.clone();
        async move {
            loop {
                let (mut down, _) = proxy.accept().await.unwrap();
                opened.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut up = TcpStream::connect(upstream).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                });
            }
        }
    });

    let (a, _) = Transport::new(Options::default()).unwrap();
    let dials: Vec<_> = (0..20)
        .map(|_| {
            let (a, addr) = (a.clone(), proxy_addr.clone());
            tokio::spawn(async move { a.dial(&addr, WAIT).await })
        })
        .collect();
    let mut conns = Vec::new();
    for d in dials {
        conns.push(timeout(WAIT, d).await.unwrap().unwrap().unwrap());
    }
    assert_eq!(
        opened.load(Ordering::SeqCst),
        1,
        "20 concurrent dials to a new peer opened several connections"
    );
    drop(conns);
    proxying.abort();
    timeout(WAIT, a.shutdown()).await.unwrap();
    b.stop().await;
}
