//! Load (issue 7): 200 concurrent streams echoing through one server for
//! `GOSSIPHTTP_LOAD_SECS` seconds (default 20), with packets flowing beside
//! them: no errors, and the process's memory stays bounded.

mod common;

use bytes::Bytes;
use common::metric;
use gossiphttp::{Options, Transport};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::{sleep, timeout};

const STREAMS: usize = 200;
/// Client transports the streams are spread over (one HTTP/2 connection
/// each, so 50 streams share every connection).
const CLIENTS: usize = 4;
const CHUNK: usize = 4096;
/// Bound on every single network wait.
const WAIT: Duration = Duration::from_secs(30);

/// Ceiling on RSS growth over the steady state. What the transport may hold
/// by design is far below it: per HTTP/2 connection at most the 4 MiB
/// connection window of unread data each way (5 connections: 40 MiB), per
/// stream 4 queued writes each way (200 × 2 × 4 × 4 KiB ≈ 6 MiB), and the
/// packet queues (1000 × 64 B each side). A leak of even a few bytes per
/// round trip (hundreds of thousands of them) or per packet would show.
const RSS_GROWTH_CEILING: u64 = 256 << 20;

fn load_secs() -> u64 {
    std::env::var("GOSSIPHTTP_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
}

/// This process's resident set size in bytes, from /proc/self/status.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}

const MIB: u64 = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_and_packets_under_load_stay_bounded() {
    let secs = load_secs();

    // The server: echoes every stream, counts every packet.
    let (server, server_metrics) = Transport::new(Options::default()).unwrap();
    let http = server
        .serve(TcpListener::bind("127.0.0.1:0").await.unwrap())
        .unwrap();
    let addr = http.local_addr().to_string();
    let echo_errors = Arc::new(AtomicU64::new(0));
    let acceptor = tokio::spawn({
        let mut streams = server.streams();
        let echo_errors = echo_errors.clone();
        async move {
            let mut echoes = Vec::new();
            while let Some(conn) = streams.accept().await {
                let echo_errors = echo_errors.clone();
                echoes.push(tokio::spawn(async move {
                    let (mut r, mut w) = tokio::io::split(conn);
                    if tokio::io::copy(&mut r, &mut w).await.is_err() {
                        echo_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = w.shutdown().await;
                }));
            }
            echoes
        }
    });
    let delivered = Arc::new(AtomicU64::new(0));
    let drain = tokio::spawn({
        let mut packets = server.packets();
        let delivered = delivered.clone();
        async move {
            while let Some(p) = packets.recv().await {
                assert_eq!(p.payload.len(), 64);
                delivered.fetch_add(1, Ordering::Relaxed);
            }
        }
    });

    // The streams, all open before the clock starts.
    let clients: Vec<Transport> = (0..CLIENTS)
        .map(|_| Transport::new(Options::default()).unwrap().0)
        .collect();
    let mut conns = Vec::new();
    for i in 0..STREAMS {
        let conn = timeout(WAIT, clients[i % CLIENTS].dial(&addr, WAIT))
            .await
            .expect("dial hung")
            .expect("dial failed");
        conns.push(conn);
    }

    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut workers = Vec::new();
    for (i, mut conn) in conns.into_iter().enumerate() {
        workers.push(tokio::spawn(async move {
            let mut out = vec![0u8; CHUNK];
            let mut back = vec![0u8; CHUNK];
            let (mut bytes, mut rounds) = (0u64, 0u64);
            while Instant::now() < deadline {
                out[..8].copy_from_slice(&(i as u64).to_be_bytes());
                out[8..16].copy_from_slice(&rounds.to_be_bytes());
                timeout(WAIT, conn.write_all(&out))
                    .await
                    .map_err(|_| format!("stream {i}: write hung"))?
                    .map_err(|e| format!("stream {i}: write: {e}"))?;
                timeout(WAIT, conn.read_exact(&mut back))
                    .await
                    .map_err(|_| format!("stream {i}: read hung"))?
                    .map_err(|e| format!("stream {i}: read: {e}"))?;
                if back != out {
                    return Err(format!("stream {i}: echo differs in round {rounds}"));
                }
                bytes += CHUNK as u64;
                rounds += 1;
            }
            // End our side; the echo ends its side after the last byte.
            conn.shutdown().await.map_err(|e| e.to_string())?;
            let mut rest = Vec::new();
            timeout(WAIT, conn.read_to_end(&mut rest))
                .await
                .map_err(|_| format!("stream {i}: end hung"))?
                .map_err(|e| format!("stream {i}: end: {e}"))?;
            if !rest.is_empty() {
                return Err(format!("stream {i}: {} unexpected bytes", rest.len()));
            }
            Ok::<_, String>((bytes, rounds))
        }));
    }

    // Packets beside the streams: 64-byte packets at a steady ~10,000/s.
    let (sender, sender_metrics) = Transport::new(Options::default()).unwrap();
    let blaster = tokio::spawn({
        let sender = sender.clone();
        let addr = addr.clone();
        async move {
            let mut queued = 0u64;
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            while Instant::now() < deadline {
                tick.tick().await;
                for _ in 0..10 {
                    let mut p = vec![0u8; 64];
                    p[..8].copy_from_slice(&queued.to_be_bytes());
                    sender.write_to(Bytes::from(p), &addr).unwrap();
                    queued += 1;
                }
            }
            queued
        }
    });

    // Memory: the steady state starts once every stream has done a round
    // trip (let the first second pass); sample until the end.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = tokio::spawn({
        let sampling = sampling.clone();
        async move {
            sleep(Duration::from_secs(1).min(Duration::from_secs(secs) / 4)).await;
            let rss_start = rss_bytes();
            let mut rss_max = rss_start;
            while sampling.load(Ordering::Relaxed) {
                rss_max = rss_max.max(rss_bytes());
                sleep(Duration::from_millis(100)).await;
            }
            (rss_start, rss_max.max(rss_bytes()))
        }
    });

    let mut errors = Vec::new();
    let (mut total_bytes, mut total_rounds) = (0u64, 0u64);
    for w in workers {
        match timeout(Duration::from_secs(secs) + WAIT, w)
            .await
            .expect("a stream worker hung")
            .unwrap()
        {
            Ok((bytes, rounds)) => {
                if bytes == 0 {
                    errors.push("a stream echoed nothing".to_string());
                }
                total_bytes += bytes;
                total_rounds += rounds;
            }
            Err(e) => errors.push(e),
        }
    }
    let queued = timeout(WAIT, blaster).await.unwrap().unwrap();
    sampling.store(false, Ordering::Relaxed);
    let (rss_start, rss_max) = timeout(WAIT, sampler).await.unwrap().unwrap();

    // Every queued packet is either delivered or counted dropped (a full
    // per-peer queue keeps the newest); none failed.
    let settled = timeout(WAIT, async {
        loop {
            let sent = metric(&sender_metrics, "cluster_transport_tx_packets_total") as u64;
            let dropped = metric(
                &sender_metrics,
                "cluster_transport_tx_packets_dropped_total",
            ) as u64;
            if sent + dropped == queued && delivered.load(Ordering::Relaxed) == sent {
                return (sent, dropped);
            }
            sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let failed = metric(&sender_metrics, "cluster_transport_tx_packets_failed_total");
    let delivered = delivered.load(Ordering::Relaxed);
    let (sent, dropped) = settled.unwrap_or_else(|_| {
        panic!(
            "packets did not settle: queued {queued}, sent {}, dropped {}, delivered {delivered}, failed {failed}",
            metric(&sender_metrics, "cluster_transport_tx_packets_total"),
            metric(&sender_metrics, "cluster_transport_tx_packets_dropped_total"),
        )
    });

    println!(
        "load: {STREAMS} streams for {secs}s, {total_rounds} round trips, {} MiB echoed; \
         packets queued {queued}, delivered {delivered}, dropped {dropped}, failed {failed}; \
         RSS start {} MiB, max {} MiB (+{} MiB)",
        total_bytes / MIB,
        rss_start / MIB,
        rss_max / MIB,
        rss_max.saturating_sub(rss_start) / MIB,
    );

    assert!(errors.is_empty(), "stream errors: {errors:?}");
    assert_eq!(echo_errors.load(Ordering::Relaxed), 0, "echo errors");
    assert_eq!(
        metric(
            &server_metrics,
            "cluster_transport_stream_rx_packets_failed_total"
        ),
        0.0
    );
    assert_eq!(failed, 0.0, "failed packets");
    assert!(delivered > 0, "no packet delivered");
    assert_eq!(delivered, sent);
    assert!(
        rss_max.saturating_sub(rss_start) < RSS_GROWTH_CEILING,
        "RSS grew from {} MiB to {} MiB",
        rss_start / MIB,
        rss_max / MIB
    );

    // Everything winds down in bounded time.
    for c in &clients {
        timeout(WAIT, c.shutdown()).await.unwrap();
    }
    timeout(WAIT, sender.shutdown()).await.unwrap();
    timeout(WAIT, server.shutdown()).await.unwrap();
    timeout(WAIT, http.shutdown()).await.unwrap();
    let echoes = timeout(WAIT, acceptor).await.unwrap().unwrap();
    assert_eq!(echoes.len(), STREAMS);
    for e in echoes {
        timeout(WAIT, e).await.unwrap().unwrap();
    }
    timeout(WAIT, drain).await.unwrap().unwrap();
}
