//! The stream row: 64 KiB writes one way and both ways over `StreamConn`s,
//! and the byte pumps the TCP baseline shares.

use crate::harness::{close, served, window_rate};
use crate::report::{mb, Baselines, Row};
use crate::{Cfg, Res};
use gossiphttp::{Options, StreamConn, Transport};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout};

/// Stream write size.
const CHUNK: usize = 64 << 10;

/// Writes 64 KiB chunks until `stop`, then ends its side.
fn writer<W>(mut w: W, stop: Arc<AtomicBool>) -> JoinHandle<()>
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let chunk = vec![0x5Au8; CHUNK];
        while !stop.load(Relaxed) {
            if w.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = w.shutdown().await;
    })
}

/// Reads until end of stream, counting bytes.
pub fn reader<R>(mut r: R) -> (Arc<AtomicU64>, JoinHandle<()>)
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK];
        let mut n = 0u64;
        while let Ok(k) = r.read(&mut buf).await {
            if k == 0 {
                break;
            }
            n += k as u64;
            c.store(n, Relaxed);
        }
    });
    (count, task)
}

/// One-way MB/s over the first pair of connected ends, then both ways at
/// once over the second (a→b and b→a MB/s).
pub async fn duplex_rates<A, B>(cfg: &Cfg, one_way: (A, B), two_way: (A, B)) -> Res<(f64, f64, f64)>
where
    A: AsyncRead + AsyncWrite + Send + 'static,
    B: AsyncRead + AsyncWrite + Send + 'static,
{
    let settle = Duration::from_secs(5);
    let (a, b) = one_way;
    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(Box::pin(a), stop.clone());
    let (count, r) = reader(Box::pin(b));
    let one = mb(window_rate(|| count.load(Relaxed), cfg.warm, cfg.dur).await);
    stop.store(true, Relaxed);
    let _ = timeout(settle, w).await;
    let _ = timeout(settle, r).await;

    let (a, b) = two_way;
    let (ar, aw) = tokio::io::split(a);
    let (br, bw) = tokio::io::split(b);
    let stop = Arc::new(AtomicBool::new(false));
    let wa = writer(aw, stop.clone());
    let wb = writer(bw, stop.clone());
    let (to_b, rb) = reader(br);
    let (to_a, ra) = reader(ar);
    sleep(cfg.warm).await;
    let (ab0, ba0, t0) = (to_b.load(Relaxed), to_a.load(Relaxed), Instant::now());
    sleep(cfg.dur).await;
    let (ab1, ba1, dt) = (to_b.load(Relaxed), to_a.load(Relaxed), t0.elapsed());
    stop.store(true, Relaxed);
    for t in [wa, wb, rb, ra] {
        let _ = timeout(settle, t).await;
    }
    let secs = dt.as_secs_f64();
    Ok((
        one,
        mb((ab1 - ab0) as f64 / secs),
        mb((ba1 - ba0) as f64 / secs),
    ))
}

async fn stream_pair(a: &Transport, b: &Transport, addr: &str) -> Res<(StreamConn, StreamConn)> {
    let mut streams = b.streams();
    let (dialed, accepted) = tokio::join!(a.dial(addr, Duration::from_secs(5)), streams.accept());
    Ok((dialed?, accepted.ok_or("no stream accepted")?))
}

pub async fn stream_row(cfg: &Cfg, base: &Baselines) -> Res<Row> {
    let (b, _reg, server, addr) = served(Options::default()).await?;
    let (a, _) = Transport::new(Options::default())?;
    let one = stream_pair(&a, &b, &addr).await?;
    let two = stream_pair(&a, &b, &addr).await?;
    let (one, ab, ba) = duplex_rates(cfg, one, two).await?;
    close(&[&a, &b], vec![server]).await;
    let vs = base.tcp.map_or("-".into(), |(t1, t2)| {
        format!(
            "{:.2}× TCP one way, {:.2}× TCP both ways",
            one / t1,
            (ab + ba) / t2
        )
    });
    Ok(Row {
        name: "stream 64 KiB writes",
        result: format!(
            "{one:.0} MB/s one way; {ab:.0} + {ba:.0} = {:.0} MB/s both ways",
            ab + ba
        ),
        drops: "-".into(),
        vs,
        notes: "dial, write_all 64 KiB chunks, read 64 KiB on the other side; both ways on a second stream of the same connection; default Options (1 MiB stream / 4 MiB connection windows)".into(),
    })
}
