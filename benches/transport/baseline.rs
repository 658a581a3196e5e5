//! The baselines the transport is judged against: UDP datagrams, raw hyper
//! HTTP/2 requests and raw TCP.

use crate::harness::{listen, window_rate, BURST, NOTIFY_EVERY, STALL, YIELD_EVERY};
use crate::report::{group, mb, Row};
use crate::stream::duplex_rates;
use crate::{Cfg, Res};
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Notify;
use tokio::time::{sleep, timeout};

/// Datagrams outstanding in the closed-loop UDP baseline: what fits in the
/// default 208 KiB socket receive buffer (a 1400 B datagram takes ~2.3 KiB
/// of it on loopback).
const UDP_WINDOW: u64 = 64;
/// Concurrent requests on the one connection of the raw h2 baseline.
const H2_CONCURRENCY: usize = 32;

struct UdpOut {
    rate: f64,
    sent: u64,
    received: u64,
}

async fn udp_flow(cfg: &Cfg, window: u64) -> Res<UdpOut> {
    let rx = UdpSocket::bind("127.0.0.1:0").await?;
    let tx = UdpSocket::bind("127.0.0.1:0").await?;
    tx.connect(rx.local_addr()?).await?;
    let notify = Arc::new(Notify::new());
    let received = Arc::new(AtomicU64::new(0));
    let (r, nt) = (received.clone(), notify.clone());
    let consumer = tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        let mut n = 0u64;
        while rx.recv(&mut buf).await.is_ok() {
            n += 1;
            r.store(n, Relaxed);
            if n.is_multiple_of(NOTIFY_EVERY) {
                nt.notify_one();
            }
        }
    });
    let stop = Arc::new(AtomicBool::new(false));
    let (st, r, nt) = (stop.clone(), received.clone(), notify.clone());
    let producer = tokio::spawn(async move {
        let payload = vec![0xA5u8; 1400];
        let (mut sent, mut since_yield) = (0u64, 0u64);
        while !st.load(Relaxed) {
            let out = sent.saturating_sub(r.load(Relaxed));
            let n = window.saturating_sub(out).min(BURST);
            if n == 0 {
                if timeout(STALL, nt.notified()).await.is_err() {
                    sent = r.load(Relaxed);
                }
                continue;
            }
            for _ in 0..n {
                if tx.send(&payload).await.is_err() {
                    return sent;
                }
                sent += 1;
            }
            since_yield += n;
            if since_yield >= YIELD_EVERY {
                since_yield = 0;
                tokio::task::yield_now().await;
            }
        }
        sent
    });
    let rate = window_rate(|| received.load(Relaxed), cfg.warm, cfg.dur).await;
    stop.store(true, Relaxed);
    let sent = producer.await?;
    sleep(Duration::from_millis(50)).await;
    consumer.abort();
    Ok(UdpOut {
        rate,
        sent,
        received: received.load(Relaxed),
    })
}

pub async fn udp_row(cfg: &Cfg) -> Res<(Row, f64)> {
    let closed = udp_flow(cfg, UDP_WINDOW).await?;
    let open = udp_flow(cfg, u64::MAX).await?;
    let best = closed.rate.max(open.rate);
    let lost = |o: &UdpOut| o.sent.saturating_sub(o.received);
    let row = Row {
        name: "baseline: UDP 1400 B",
        result: format!(
            "{} datagrams/s, {:.0} MB/s",
            group(best),
            mb(best * 1400.0)
        ),
        drops: format!(
            "closed loop {} lost, open loop {} of {} lost",
            group(lost(&closed) as f64),
            group(lost(&open) as f64),
            group(open.sent as f64)
        ),
        vs: "-".into(),
        notes: format!(
            "tokio UdpSocket, one sender task, one receiver task; the better of closed loop (≤{UDP_WINDOW} outstanding: {} /s) and open loop ({} /s)",
            group(closed.rate),
            group(open.rate)
        ),
    };
    Ok((row, best))
}

async fn h2_baseline(cfg: &Cfg) -> Res<f64> {
    use http_body_util::Empty;
    use hyper::{Request, Response};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let listener = listen().await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(|_req: Request<hyper::body::Incoming>| async {
                        Ok::<_, std::convert::Infallible>(Response::new(Empty::<Bytes>::new()))
                    });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake::<_, Empty<Bytes>>(TokioIo::new(tcp))
        .await?;
    let driver = tokio::spawn(conn);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let uri = format!("http://{addr}/api/v1/ckit/transport/message");
    let mut loops = Vec::new();
    for _ in 0..H2_CONCURRENCY {
        let (mut s, done, stop, uri) = (sender.clone(), done.clone(), stop.clone(), uri.clone());
        loops.push(tokio::spawn(async move {
            while !stop.load(Relaxed) {
                let req = Request::post(uri.as_str())
                    .header("content-type", "application/x.ckit")
                    .body(Empty::<Bytes>::new())
                    .expect("a request");
                if s.ready().await.is_err() {
                    return;
                }
                match s.send_request(req).await {
                    Ok(resp) => {
                        drop(resp);
                        done.fetch_add(1, Relaxed);
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    let rate = window_rate(|| done.load(Relaxed), cfg.warm, cfg.dur).await;
    stop.store(true, Relaxed);
    for l in loops {
        let _ = l.await;
    }
    drop(sender);
    driver.abort();
    server.abort();
    Ok(rate)
}

async fn tcp_pair() -> Res<(TcpStream, TcpStream)> {
    let l = listen().await?;
    let (a, b) = tokio::join!(TcpStream::connect(l.local_addr()?), l.accept());
    let (a, (b, _)) = (a?, b?);
    a.set_nodelay(true)?;
    b.set_nodelay(true)?;
    Ok((a, b))
}

async fn tcp_baseline(cfg: &Cfg) -> Res<(f64, f64, f64)> {
    let one = tcp_pair().await?;
    let two = tcp_pair().await?;
    duplex_rates(cfg, one, two).await
}

/// The raw h2 baseline's row, and its requests/s.
pub async fn h2_row(cfg: &Cfg) -> Res<(Row, f64)> {
    let rate = h2_baseline(cfg).await?;
    let row = Row {
        name: "baseline: raw h2",
        result: format!("{} req/s", group(rate)),
        drops: "-".into(),
        vs: "-".into(),
        notes: format!(
            "hyper alone: POST, empty body, empty handler; {H2_CONCURRENCY} requests in flight on one h2c connection"
        ),
    };
    Ok((row, rate))
}

/// The TCP baseline's row, and its MB/s one way and both ways.
pub async fn tcp_row(cfg: &Cfg) -> Res<(Row, (f64, f64))> {
    let (one, ab, ba) = tcp_baseline(cfg).await?;
    let row = Row {
        name: "baseline: TCP 64 KiB writes",
        result: format!(
            "{one:.0} MB/s one way; {ab:.0} + {ba:.0} = {:.0} MB/s both ways",
            ab + ba
        ),
        drops: "-".into(),
        vs: "-".into(),
        notes: "tokio TcpStream, write_all 64 KiB chunks, 64 KiB reads".into(),
    };
    Ok((row, (one, ab + ba)))
}
