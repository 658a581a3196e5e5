//! Three transports on 127.0.0.1 exchange packets pairwise and carry 1 MiB
//! through a stream in both directions at once, over h2c and over TLS.

mod common;

use bytes::Bytes;
use common::{tls_pair, Peer};
use gossiphttp::{ClientTls, Options, ServerTls};
use std::collections::HashSet;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

async fn start(tls: Option<(ServerTls, ClientTls)>) -> Peer {
    let mut opts = Options::default();
    if let Some((server, client)) = tls {
        opts.server_tls = Some(server);
        opts.client_tls = Some(client);
    }
    Peer::start(opts).await
}

async fn exchange_packets(peers: &[Peer]) {
    // Every ordered pair (i -> j), several packets each, all confirmed.
    for (i, from) in peers.iter().enumerate() {
        for (j, to) in peers.iter().enumerate() {
            if i == j {
                continue;
            }
            for k in 0..5u8 {
                let payload = Bytes::from(vec![i as u8, j as u8, k]);
                timeout(WAIT, from.transport.send(payload, &to.addr))
                    .await
                    .expect("send timed out")
                    .unwrap_or_else(|e| panic!("{i} -> {j}: {e}"));
            }
        }
    }
    for (j, to) in peers.iter().enumerate() {
        let mut packets = to.transport.packets();
        let mut got = HashSet::new();
        for _ in 0..(peers.len() - 1) * 5 {
            let p = timeout(WAIT, packets.recv()).await.unwrap().unwrap();
            assert_eq!(p.payload[1] as usize, j, "packet for {j} arrived elsewhere");
            assert!(p.from.ip().is_loopback());
            assert!(
                got.insert(p.payload.to_vec()),
                "duplicate packet {:?}",
                p.payload
            );
        }
        assert!(packets.try_recv().is_none(), "peer {j} got extra packets");
    }
}

/// 1 MiB each way through one stream, both directions at the same time.
async fn stream_both_ways(a: &Peer, b: &Peer) {
    const LEN: usize = 1 << 20;
    let data_ab: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
    let data_ba: Vec<u8> = (0..LEN).map(|i| (i % 241) as u8 ^ 0x5a).collect();

    let dialer = a.transport.clone();
    let target = b.addr.clone();
    let mut streams = b.transport.streams();
    let (client, server) = tokio::join!(
        async move { dialer.dial(&target, WAIT).await.unwrap() },
        async move { timeout(WAIT, streams.accept()).await.unwrap().unwrap() },
    );

    async fn pump(conn: gossiphttp::StreamConn, send: Vec<u8>) -> Vec<u8> {
        let (mut rd, mut wr) = tokio::io::split(conn);
        let writer = async move {
            // Odd-sized writes, so frames and reads never line up.
            for chunk in send.chunks(7919) {
                wr.write_all(chunk).await.unwrap();
            }
            wr.shutdown().await.unwrap();
            wr
        };
        let reader = async move {
            let mut got = Vec::new();
            rd.read_to_end(&mut got).await.unwrap();
            got
        };
        let (_wr, got) = tokio::join!(writer, reader);
        got
    }

    let (got_b, got_a) = timeout(Duration::from_secs(60), async {
        tokio::join!(pump(client, data_ab.clone()), pump(server, data_ba.clone()))
    })
    .await
    .expect("stream exchange timed out");
    assert_eq!(got_b.len(), LEN);
    assert!(got_b == data_ba, "a received corrupted bytes from b");
    assert!(got_a == data_ab, "b received corrupted bytes from a");
}

async fn run(tls: bool) {
    let mut peers = Vec::new();
    for _ in 0..3 {
        peers.push(start(tls.then(tls_pair_shared)).await);
    }
    exchange_packets(&peers).await;
    stream_both_ways(&peers[0], &peers[1]).await;
    stream_both_ways(&peers[2], &peers[0]).await;
    for p in peers {
        timeout(WAIT, p.transport.shutdown()).await.unwrap();
        timeout(WAIT, p.server.shutdown()).await.unwrap();
    }
}

/// One certificate shared by all three peers (each trusts it).
fn tls_pair_shared() -> (ServerTls, ClientTls) {
    static PAIR: std::sync::OnceLock<(ServerTls, ClientTls)> = std::sync::OnceLock::new();
    PAIR.get_or_init(tls_pair).clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_peers_over_h2c() {
    run(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_peers_over_tls() {
    run(true).await;
}
