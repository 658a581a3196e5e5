//! Slow loris (issue 7): hundreds of connections trickling their first
//! bytes do not stop a healthy peer's packets, and are cut off after
//! `header_read_timeout`; `max_connections` closes the extras at once.

mod common;

use bytes::Bytes;
use common::metric;
use gossiphttp::{Options, Transport};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{sleep, timeout};

/// Bound on every single network wait.
const WAIT: Duration = Duration::from_secs(10);

/// The tests here open hundreds of sockets each: one at a time, so that a
/// default 1024 file-descriptor limit is enough.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const H1_REQUEST: &[u8] =
    b"POST /api/v1/ckit/transport/message HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";

/// Counters shared by the trickling connections.
#[derive(Default)]
struct Trickles {
    /// Connected and sent their first byte.
    started: AtomicUsize,
    /// Saw the server close the connection (read 0 or an error).
    closed: AtomicUsize,
}

/// Connects and sends `bytes` one every `every`, until the server closes
/// the connection; returns then. Sending never finishes before the
/// server's deadline: that is the point.
async fn trickle(
    addr: std::net::SocketAddr,
    bytes: &'static [u8],
    every: Duration,
    t: Arc<Trickles>,
) {
    let tcp = timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connect hung")
        .expect("connect failed");
    let (mut r, mut w) = tcp.into_split();
    let writer = async {
        for (i, b) in bytes.iter().enumerate() {
            if w.write_all(std::slice::from_ref(b)).await.is_err() {
                break;
            }
            if i == 0 {
                t.started.fetch_add(1, Ordering::SeqCst);
            }
            sleep(every).await;
        }
        std::future::pending::<()>().await
    };
    let reader = async {
        let mut buf = [0u8; 1024];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // a response (say, 408) before the close
            }
        }
    };
    tokio::select! {
        _ = writer => unreachable!(),
        _ = reader => {}
    }
    t.closed.fetch_add(1, Ordering::SeqCst);
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    timeout(limit, async {
        while !done() {
            sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_connections_do_not_stop_a_healthy_peer() {
    const H2_TRICKLES: usize = 300;
    const H1_TRICKLES: usize = 100;
    const PACKETS: usize = 500;
    let _serial = SERIAL.lock().await;

    let header_read_timeout = Duration::from_secs(2);
    let mut opts = Options::default();
    opts.header_read_timeout = header_read_timeout;
    let (b, _) = Transport::new(opts).unwrap();
    let b_server = b
        .serve(TcpListener::bind("127.0.0.1:0").await.unwrap())
        .unwrap();
    let b_addr = b_server.local_addr();

    let trickles = Arc::new(Trickles::default());
    let mut tricklers = Vec::new();
    for i in 0..H2_TRICKLES + H1_TRICKLES {
        let bytes = if i < H2_TRICKLES {
            H2_PREFACE
        } else {
            H1_REQUEST
        };
        tricklers.push(tokio::spawn(trickle(
            b_addr,
            bytes,
            Duration::from_millis(500),
            trickles.clone(),
        )));
    }
    let total = H2_TRICKLES + H1_TRICKLES;
    wait_for("the trickling connections to start", WAIT, || {
        trickles.started.load(Ordering::SeqCst) == total
    })
    .await;

    // While they trickle, a healthy peer sends, from 10 tasks at once.
    let (a, _) = Transport::new(Options::default()).unwrap();
    let addr = b_addr.to_string();
    let mut senders = Vec::new();
    for t in 0..10usize {
        let (a, addr) = (a.clone(), addr.clone());
        senders.push(tokio::spawn(async move {
            for k in 0..PACKETS / 10 {
                let id = (t * (PACKETS / 10) + k) as u32;
                timeout(WAIT, a.send(Bytes::from(id.to_be_bytes().to_vec()), &addr))
                    .await
                    .expect("send hung")
                    .unwrap_or_else(|e| panic!("send {id} failed: {e}"));
            }
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
    let open_while_sending = total - trickles.closed.load(Ordering::SeqCst);
    let mut packets = b.packets();
    let mut got = HashSet::new();
    for _ in 0..PACKETS {
        let p = timeout(WAIT, packets.recv()).await.unwrap().unwrap();
        got.insert(u32::from_be_bytes(p.payload[..].try_into().unwrap()));
    }
    assert_eq!(got.len(), PACKETS);

    // The trickling connections are all cut off, soon after the deadline
    // (at 2 bytes a second none of them ever completes its first 24).
    wait_for(
        "the server to close the trickling connections",
        header_read_timeout + WAIT,
        || trickles.closed.load(Ordering::SeqCst) == total,
    )
    .await;
    for t in tricklers {
        timeout(WAIT, t).await.unwrap().unwrap();
    }
    eprintln!(
        "slowloris: {total} trickling connections, {open_while_sending} still open when {PACKETS} packets had been delivered, all closed by the server"
    );

    // The healthy peer still gets through afterwards.
    timeout(WAIT, a.send(Bytes::from_static(b"after"), &addr))
        .await
        .unwrap()
        .unwrap();
    timeout(WAIT, a.shutdown()).await.unwrap();
    timeout(WAIT, b.shutdown()).await.unwrap();
    timeout(WAIT, b_server.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_closes_the_extras_at_once() {
    const LIMIT: usize = 50;
    const IDLE: usize = 100;
    let _serial = SERIAL.lock().await;

    let mut opts = Options::default();
    opts.max_connections = LIMIT;
    // Long enough that the held connections stay held during the test.
    opts.header_read_timeout = Duration::from_secs(60);
    let (b, b_metrics) = Transport::new(opts).unwrap();
    let b_server = b
        .serve(TcpListener::bind("127.0.0.1:0").await.unwrap())
        .unwrap();
    let b_addr = b_server.local_addr();
    let refused = || {
        metric(
            &b_metrics,
            r#"cluster_transport_requests_refused_total{reason="connections"}"#,
        ) as usize
    };

    // 100 idle connections, each watched for the server closing it.
    let closed = Arc::new(AtomicUsize::new(0));
    let mut idle = Vec::new();
    for _ in 0..IDLE {
        let tcp = timeout(WAIT, TcpStream::connect(b_addr))
            .await
            .unwrap()
            .unwrap();
        let (mut r, w) = tcp.into_split();
        let closed = closed.clone();
        let watcher = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            if let Ok(0) | Err(_) = r.read(&mut buf).await {
                closed.fetch_add(1, Ordering::SeqCst);
            }
        });
        idle.push((w, watcher));
    }
    wait_for("the extra connections to be closed", WAIT, || {
        closed.load(Ordering::SeqCst) >= IDLE - LIMIT
    })
    .await;
    assert_eq!(refused(), IDLE - LIMIT);
    // The first 50 stay open: give the server a moment to (wrongly) close more.
    sleep(Duration::from_millis(300)).await;
    assert_eq!(closed.load(Ordering::SeqCst), IDLE - LIMIT);

    // While the limit is taken, a newcomer is refused too, quickly.
    let (a, _) = Transport::new(Options::default()).unwrap();
    let addr = b_addr.to_string();
    let r = timeout(WAIT, a.send(Bytes::from_static(b"refused"), &addr))
        .await
        .expect("send to a full server hung");
    assert!(r.is_err(), "a connection beyond max_connections was served");
    assert!(refused() > IDLE - LIMIT);

    // Once the idle connections go, a healthy peer gets through (the server
    // frees their slots as it notices them close).
    for (w, watcher) in idle {
        drop(w);
        watcher.abort();
    }
    let mut attempts = 0;
    timeout(WAIT, async {
        loop {
            attempts += 1;
            match a.send(Bytes::from_static(b"healthy"), &addr).await {
                Ok(()) => return,
                Err(_) => sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await
    .expect("a healthy peer never got through after the idle connections closed");
    let p = timeout(WAIT, b.packets().recv()).await.unwrap().unwrap();
    assert_eq!(&p.payload[..], b"healthy");
    eprintln!(
        "max_connections: {} refused, healthy peer through after {attempts} attempt(s)",
        refused()
    );

    timeout(WAIT, a.shutdown()).await.unwrap();
    timeout(WAIT, b.shutdown()).await.unwrap();
    timeout(WAIT, b_server.shutdown()).await.unwrap();
}

/// A peer that sends the HTTP/2 preface at once and then trickles its first
/// `HEADERS` frame (past the first-bytes check) is cut off once
/// `header_read_timeout` passes without a whole request; a peer that sends
/// real requests on its connection is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_first_request_is_cut_off() {
    let _serial = SERIAL.lock().await;
    let mut opts = Options::default();
    opts.header_read_timeout = Duration::from_millis(800);
    let (t, registry) = Transport::new(opts).unwrap();
    let server = t
        .serve(TcpListener::bind("127.0.0.1:0").await.unwrap())
        .unwrap();
    let addr = server.local_addr();

    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(H2_PREFACE).await.unwrap();
    // An empty SETTINGS frame, then a HEADERS frame announcing 64 bytes.
    tcp.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    tcp.write_all(&[0, 0, 64, 1, 4, 0, 0, 0, 1]).await.unwrap();
    let started = std::time::Instant::now();
    let (mut r, mut w) = tcp.into_split();
    let trickler = tokio::spawn(async move {
        for _ in 0..64 {
            if w.write_all(b"\x82").await.is_err() {
                return;
            }
            sleep(Duration::from_millis(100)).await;
        }
    });
    let closed = timeout(WAIT, async {
        let mut buf = [0u8; 256];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // the server's SETTINGS, a GOAWAY
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the trickling connection was never closed");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );
    trickler.abort();
    assert_eq!(
        metric(
            &registry,
            "cluster_transport_requests_refused_total{reason=\"header_timeout\"}"
        ),
        1.0
    );

    // A real client that waits longer than the deadline between requests
    // keeps its connection: the deadline is for the first request only.
    let (c, _) = Transport::new(Options::default()).unwrap();
    let mut packets = t.packets();
    c.send(Bytes::from_static(b"one"), &addr.to_string())
        .await
        .unwrap();
    sleep(Duration::from_millis(1000)).await;
    c.send(Bytes::from_static(b"two"), &addr.to_string())
        .await
        .unwrap();
    for want in [&b"one"[..], b"two"] {
        let p = timeout(WAIT, packets.recv()).await.unwrap().unwrap();
        assert_eq!(&p.payload[..], want);
    }
    assert_eq!(
        metric(
            &registry,
            "cluster_transport_requests_refused_total{reason=\"header_timeout\"}"
        ),
        1.0
    );
    timeout(WAIT, c.shutdown()).await.unwrap();
    timeout(WAIT, t.shutdown()).await.unwrap();
    timeout(WAIT, server.shutdown()).await.unwrap();
}
