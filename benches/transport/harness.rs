//! What every row builds on: served transports, consumers counting what
//! arrives, payloads, dead peers, and this process's resource numbers.

use crate::metrics;
use crate::Res;
use bytes::Bytes;
use gossiphttp::{MetricsRegistry, Options, Server, Transport};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout};

/// Packets written per receiver before the producer looks at the others.
pub const BURST: u64 = 32;
/// Writes between two `yield_now` of the producer.
pub const YIELD_EVERY: u64 = 64;
/// A consumer wakes a waiting producer every this many packets.
pub const NOTIFY_EVERY: u64 = 16;
/// Distinct payload buffers a producer cycles through (see `Producer`).
pub const PAYLOADS: usize = 4096;
/// How long a producer waits for any delivery before it counts what is
/// outstanding as lost (UDP loses datagrams) and goes on.
pub const STALL: Duration = Duration::from_millis(20);

/// This process's resident set size in bytes.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

pub fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

/// A series' value, read by the tests' strict reader: a name that is no
/// metric of the transport's fails the run instead of reading 0.
pub fn metric(registry: &MetricsRegistry, series: &str) -> u64 {
    metrics::metric(registry, series) as u64
}

/// The rate of `count()` over `dur`, after `warm`.
pub async fn window_rate(count: impl Fn() -> u64, warm: Duration, dur: Duration) -> f64 {
    sleep(warm).await;
    let (c0, t0) = (count(), Instant::now());
    sleep(dur).await;
    let (c1, dt) = (count(), t0.elapsed());
    (c1 - c0) as f64 / dt.as_secs_f64()
}

pub async fn listen() -> Res<TcpListener> {
    Ok(TcpListener::bind("127.0.0.1:0").await?)
}

/// A transport serving on a fresh loopback port.
pub async fn served(opts: Options) -> Res<(Transport, MetricsRegistry, Server, String)> {
    let (t, reg) = Transport::new(opts)?;
    let server = t.serve(listen().await?)?;
    let addr = server.local_addr().to_string();
    Ok((t, reg, server, addr))
}

/// Shuts clients down first (their connections close), then servers.
pub async fn close(transports: &[&Transport], servers: Vec<Server>) {
    for t in transports {
        let _ = timeout(Duration::from_secs(5), t.shutdown()).await;
    }
    for s in servers {
        let _ = timeout(Duration::from_secs(6), s.shutdown()).await;
    }
}

/// Counts packets taken from a transport, waking the producer now and then.
pub fn consume(t: &Transport, notify: Arc<Notify>) -> (Arc<AtomicU64>, JoinHandle<()>) {
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    let mut packets = t.packets();
    let task = tokio::spawn(async move {
        let mut n = 0u64;
        while packets.recv().await.is_some() {
            n += 1;
            c.store(n, Relaxed);
            if n.is_multiple_of(NOTIFY_EVERY) {
                notify.notify_one();
            }
        }
        notify.notify_one();
    });
    (count, task)
}

/// `PAYLOADS` distinct buffers of `size` bytes (see `Producer`).
pub fn payload_pool(size: usize) -> Vec<Bytes> {
    (0..PAYLOADS)
        .map(|_| Bytes::from(vec![0xA5u8; size]))
        .collect()
}

/// When `wanted`, two dead peers: a listener that accepts TCP and never
/// reads or answers (kept by the returned task), and a closed port; when
/// not, none.
pub async fn dead_peers(wanted: bool) -> Res<(Vec<String>, Option<JoinHandle<()>>)> {
    if !wanted {
        return Ok((Vec::new(), None));
    }
    let l = listen().await?;
    let mut dead = vec![l.local_addr()?.to_string()];
    let blackhole = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    let closed = listen().await?;
    dead.push(closed.local_addr()?.to_string());
    drop(closed);
    Ok((dead, Some(blackhole)))
}
