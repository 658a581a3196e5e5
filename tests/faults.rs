//! Faults (issue 7): every peer can die at any moment. The transport
//! recovers (reconnects on the next send), reports errors on the affected
//! operations only, and leaks no tasks. Shutdown under load loses nothing
//! silently: every packet answered `200` reaches `packets()`.

mod common;

use bytes::Bytes;
use common::ports::{rebind, restartable_addr};
use common::{metric, tls_pair, Peer};
use gossiphttp::{ClientTls, Error, Options, Transport};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
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

/// 1. A peer crashes mid-stream: the stream to it fails (reads end, writes
/// error) in bounded time, the stream gauge returns to 0, and packets to
/// another live peer keep flowing.
#[tokio::test]
async fn peer_crash_mid_stream_fails_only_that_peer() {
    let (a, a_metrics) = Transport::new(Options::default()).unwrap();
    let c = Peer::start(Options::default()).await;
    let mut c_streams = c.transport.streams();
    tokio::spawn(async move {
        while let Some(conn) = c_streams.accept().await {
            tokio::spawn(echo(conn));
        }
    });
    let b = CrashablePeer::start("127.0.0.1:0".parse().unwrap(), Default::default()).await;
    let b_addr = b.addr.clone();

    let mut to_b = timeout(WAIT, a.dial(&b_addr, WAIT)).await.unwrap().unwrap();
    let mut to_c = timeout(WAIT, a.dial(&c.addr, WAIT)).await.unwrap().unwrap();
    for round in 0..3u8 {
        round_trip(&mut to_b, &[round; 32]).await;
        round_trip(&mut to_c, &[round; 32]).await;
    }
    assert_eq!(metric(&a_metrics, "cluster_transport_streams"), 2.0);
    timeout(WAIT, a.send(Bytes::from_static(b"before"), &c.addr))
        .await
        .unwrap()
        .unwrap();

    b.crash();

    // Reads end (EOF or error), never hang; writes fail soon.
    let mut buf = [0u8; 64];
    let read = timeout(WAIT, to_b.read(&mut buf))
        .await
        .expect("a read on a stream to a crashed peer hung");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "read after the crash returned {read:?}"
    );
    writes_fail(&mut to_b).await;

    // Only the crashed peer's operations fail: the stream to C still
    // echoes, C still gets packets, B refuses them with an error (not a
    // hang).
    round_trip(&mut to_c, b"still here").await;
    for i in 0..10u8 {
        timeout(WAIT, a.send(Bytes::from(vec![i]), &c.addr))
            .await
            .expect("send to the live peer hung")
            .expect("send to the live peer failed");
    }
    let sent_to_b = timeout(WAIT, a.send(Bytes::from_static(b"x"), &b_addr))
        .await
        .expect("send to the crashed peer hung");
    assert!(sent_to_b.is_err(), "send to a crashed peer succeeded");
    let mut packets = c.transport.packets();
    for _ in 0..11 {
        timeout(WAIT, packets.recv()).await.unwrap().unwrap();
    }

    drop(to_b);
    assert_eq!(metric(&a_metrics, "cluster_transport_streams"), 1.0);
    drop(to_c);
    assert_eq!(metric(&a_metrics, "cluster_transport_streams"), 0.0);
    timeout(WAIT, a.shutdown()).await.unwrap();
    c.stop().await;
}

/// 1b. The dialer crashes mid-stream: the accepting side's reads end and
/// writes fail, and once it drops the stream its `max_streams` slot and
/// gauge are free again (a new dial gets through).
#[tokio::test]
async fn dialer_crash_mid_stream_frees_the_accepted_stream() {
    let mut opts = Options::default();
    opts.max_streams = 1;
    let (b, b_metrics) = Transport::new(opts).unwrap();
    let b_server = b
        .serve(TcpListener::bind("127.0.0.1:0").await.unwrap())
        .unwrap();
    let b_addr = b_server.local_addr().to_string();
    let mut streams = b.streams();

    let rt = doomed_runtime();
    let (wrote_tx, wrote_rx) = oneshot::channel();
    rt.spawn({
        let b_addr = b_addr.clone();
        async move {
            let (a, _) = Transport::new(Options::default()).unwrap();
            let mut conn = a.dial(&b_addr, WAIT).await.unwrap();
            conn.write_all(b"hello").await.unwrap();
            let _ = wrote_tx.send(());
            // Hold the stream until the crash.
            std::future::pending::<()>().await;
            drop((a, conn));
        }
    });
    timeout(WAIT, wrote_rx).await.unwrap().unwrap();
    let mut accepted = timeout(WAIT, streams.accept()).await.unwrap().unwrap();
    let mut buf = [0u8; 5];
    timeout(WAIT, accepted.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"hello");
    assert_eq!(metric(&b_metrics, "cluster_transport_streams"), 1.0);

    // The one stream slot is taken.
    let (c, _) = Transport::new(Options::default()).unwrap();
    match timeout(WAIT, c.dial(&b_addr, WAIT)).await.unwrap() {
        Err(Error::Status { status: 503, .. }) => {}
        other => panic!("expected 503 while max_streams is taken, got {other:?}"),
    }

    rt.shutdown_background();

    let read = timeout(WAIT, accepted.read(&mut buf))
        .await
        .expect("a read on a stream from a crashed dialer hung");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "read after the crash returned {read:?}"
    );
    writes_fail(&mut accepted).await;
    drop(accepted);
    assert_eq!(metric(&b_metrics, "cluster_transport_streams"), 0.0);

    // The slot is free again.
    let mut conn = timeout(WAIT, c.dial(&b_addr, WAIT))
        .await
        .unwrap()
        .expect("the crashed dialer's stream slot was never freed");
    conn.write_all(b"again").await.unwrap();
    let mut accepted = timeout(WAIT, streams.accept()).await.unwrap().unwrap();
    timeout(WAIT, accepted.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"again");

    drop((conn, accepted));
    timeout(WAIT, c.shutdown()).await.unwrap();
    timeout(WAIT, b.shutdown()).await.unwrap();
    timeout(WAIT, b_server.shutdown()).await.unwrap();
}

/// 1c. A peer that goes silent on an open stream without closing it (hung,
/// partitioned): reads fail with `TimedOut` after `stream_idle_timeout`,
/// which frees the stream.
#[tokio::test]
async fn a_silent_stream_times_out() {
    let mut opts = Options::default();
    opts.stream_idle_timeout = Duration::from_secs(1);
    let (a, a_metrics) = Transport::new(opts).unwrap();
    let b = Peer::start(Options::default()).await;
    let mut conn = timeout(WAIT, a.dial(&b.addr, WAIT)).await.unwrap().unwrap();
    // B accepts and then never reads or writes.
    let accepted = timeout(WAIT, b.transport.streams().accept())
        .await
        .unwrap()
        .unwrap();
    let mut buf = [0u8; 8];
    let err = timeout(WAIT, conn.read(&mut buf))
        .await
        .expect("a read on a silent stream hung")
        .expect_err("a silent stream returned data or EOF");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    drop(conn);
    assert_eq!(metric(&a_metrics, "cluster_transport_streams"), 0.0);
    drop(accepted);
    timeout(WAIT, a.shutdown()).await.unwrap();
    b.stop().await;
}

/// 1d. A frozen peer (accepts TCP, never answers) only delays its own
/// packets: they fail with a timeout, while packets to a live peer sent
/// meanwhile are all delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_peer_only_delays_its_own_packets() {
    let frozen = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let frozen_addr = frozen.local_addr().unwrap().to_string();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (tcp, _) = frozen.accept().await.unwrap();
            held.push(tcp);
        }
    });
    let c = Peer::start(Options::default()).await;

    let mut opts = Options::default();
    // Long against loopback round trips, short enough to wait out.
    opts.packet_timeout = Duration::from_secs(4);
    let (a, a_metrics) = Transport::new(opts).unwrap();
    let to_frozen: Vec<_> = (0..20u8)
        .map(|i| {
            let (a, addr) = (a.clone(), frozen_addr.clone());
            tokio::spawn(async move { a.send(Bytes::from(vec![i]), &addr).await })
        })
        .collect();
    let dial_frozen = tokio::spawn({
        let (a, addr) = (a.clone(), frozen_addr.clone());
        async move { a.dial(&addr, Duration::from_secs(4)).await.map(|_| ()) }
    });
    for i in 0..50u8 {
        timeout(WAIT, a.send(Bytes::from(vec![i]), &c.addr))
            .await
            .expect("send to the live peer hung")
            .expect("send to the live peer failed");
    }
    // The live peer's packets did not wait for the frozen peer's timeout.
    let waiting = to_frozen.iter().filter(|h| !h.is_finished()).count();
    assert_eq!(
        waiting, 20,
        "packets to the frozen peer finished early (or the live ones waited)"
    );
    for h in to_frozen {
        let r = timeout(WAIT, h).await.expect("send to a frozen peer hung");
        assert!(
            matches!(r, Ok(Err(Error::Timeout { .. }))),
            "send to a frozen peer: {r:?}"
        );
    }
    let r = timeout(WAIT, dial_frozen).await.unwrap();
    assert!(
        matches!(r, Ok(Err(Error::Timeout { .. }))),
        "dial to a frozen peer: {r:?}"
    );
    assert_eq!(
        metric(&a_metrics, "cluster_transport_tx_packets_failed_total"),
        20.0
    );
    let mut packets = c.transport.packets();
    for _ in 0..50 {
        timeout(WAIT, packets.recv()).await.unwrap().unwrap();
    }
    holder.abort();
    timeout(WAIT, a.shutdown()).await.unwrap();
    c.stop().await;
}

/// Reads what a client sends until it has sent the HEADERS frame of its
/// first request (after the 24-byte preface, frames are 9-byte headers and
/// payloads).
async fn read_until_first_request(tcp: &mut TcpStream) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = timeout(WAIT, tcp.read(&mut buf))
            .await
            .expect("the client sent no request")
            .unwrap();
        assert!(n > 0, "the client closed before its request");
        data.extend_from_slice(&buf[..n]);
        let mut at = 24;
        while data.len() >= at + 9 {
            let len = u32::from_be_bytes([0, data[at], data[at + 1], data[at + 2]]) as usize;
            if data[at + 3] == 0x1 {
                return; // HEADERS
            }
            at += 9 + len;
        }
    }
}

/// 2. A peer that resets the TCP connection on the first request: the send
/// fails with an error (not a hang, not a timeout), and the next send to a
/// real peer restarted on that same address succeeds.
#[tokio::test]
async fn connection_reset_fails_the_send_and_the_next_send_reconnects() {
    let mut opts = Options::default();
    opts.packet_timeout = Duration::from_secs(5);
    let (a, _) = Transport::new(opts).unwrap();

    let listener = TcpListener::bind(restartable_addr()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let resets = Arc::new(AtomicUsize::new(0));
    let fake = tokio::spawn({
        let resets = resets.clone();
        async move {
            loop {
                let (mut tcp, _) = listener.accept().await.unwrap();
                let resets = resets.clone();
                tokio::spawn(async move {
                    read_until_first_request(&mut tcp).await;
                    tcp.set_zero_linger().unwrap();
                    drop(tcp); // RST
                    resets.fetch_add(1, Ordering::SeqCst);
                });
            }
        }
    });

    for attempt in 0..2 {
        let r = timeout(WAIT, a.send(Bytes::from_static(b"lost"), &addr.to_string()))
            .await
            .expect("send to a resetting peer hung");
        match r {
            Err(Error::Timeout { .. }) => {
                panic!("attempt {attempt}: a reset surfaced as a timeout")
            }
            Err(_) => {}
            Ok(()) => panic!("attempt {attempt}: send to a resetting peer succeeded"),
        }
    }
    assert!(resets.load(Ordering::SeqCst) >= 2);

    // The fake goes; a real peer takes its address.
    fake.abort();
    let _ = fake.await;
    let b = Peer::serve_on(Options::default(), rebind(addr).await).await;
    assert_eq!(b.addr, addr.to_string());
    timeout(WAIT, a.send(Bytes::from_static(b"found"), &b.addr))
        .await
        .expect("send after the reset hung")
        .expect("the first send to the restarted peer failed");
    let p = timeout(WAIT, b.transport.packets().recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&p.payload[..], b"found");

    timeout(WAIT, a.shutdown()).await.unwrap();
    b.stop().await;
}

/// 3a. A peer shut down cleanly and restarted on the same address: the
/// pooled connection is replaced and the first send after the restart
/// succeeds.
#[tokio::test]
async fn peer_restart_on_same_address_graceful() {
    let (a, _) = Transport::new(Options::default()).unwrap();
    let listener = TcpListener::bind(restartable_addr()).await.unwrap();
    let b = Peer::serve_on(Options::default(), listener).await;
    let addr: SocketAddr = b.addr.parse().unwrap();
    timeout(WAIT, a.send(Bytes::from_static(b"one"), &b.addr))
        .await
        .unwrap()
        .unwrap();
    b.stop().await;

    let b2 = Peer::serve_on(Options::default(), rebind(addr).await).await;
    timeout(WAIT, a.send(Bytes::from_static(b"two"), &b2.addr))
        .await
        .expect("send after the restart hung")
        .expect("the first send after a graceful restart failed");
    let p = timeout(WAIT, b2.transport.packets().recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&p.payload[..], b"two");
    timeout(WAIT, a.shutdown()).await.unwrap();
    b2.stop().await;
}

/// 3b. A peer crashes and restarts on the same address at once, before the
/// sender noticed: at most the first send after the restart fails (the
/// connector retries a request that never left once, on a fresh
/// connection), the second must succeed, and the new peer gets it.
#[tokio::test]
async fn peer_restart_on_same_address_after_crash() {
    let (a, _) = Transport::new(Options::default()).unwrap();
    let bind = restartable_addr().parse().unwrap();
    let b = CrashablePeer::start(bind, Default::default()).await;
    let addr: SocketAddr = b.addr.parse().unwrap();
    timeout(WAIT, a.send(Bytes::from_static(b"one"), &b.addr))
        .await
        .unwrap()
        .unwrap();
    b.crash();

    let received = Arc::new(Mutex::new(Vec::new()));
    let b2 = CrashablePeer::start(addr, received.clone()).await;
    let first = timeout(WAIT, a.send(Bytes::from_static(b"two"), &b2.addr))
        .await
        .expect("send after the restart hung");
    if let Err(e) = &first {
        eprintln!("note: the first send after a crash-restart failed: {e}");
    }
    timeout(WAIT, a.send(Bytes::from_static(b"three"), &b2.addr))
        .await
        .expect("send after the restart hung")
        .expect("the second send after a crash-restart failed");

    let want: Vec<&[u8]> = if first.is_ok() {
        vec![b"two", b"three"]
    } else {
        vec![b"three"]
    };
    let got = timeout(WAIT, async {
        loop {
            let got = received.lock().unwrap().clone();
            if got.len() >= want.len() {
                return got;
            }
            sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the restarted peer did not receive the packets");
    let got: Vec<&[u8]> = got.iter().map(|b| &b[..]).collect();
    assert_eq!(got, want);

    timeout(WAIT, a.shutdown()).await.unwrap();
    b2.crash();
}

/// 4a. A peer that accepts TCP and never speaks TLS: sends and dials fail
/// with a timeout, not a hang.
#[tokio::test]
async fn tls_handshake_stall_on_the_client_side_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            held.push(tcp);
        }
    });

    let mut opts = Options::default();
    opts.client_tls = Some(ClientTls::insecure());
    opts.packet_timeout = Duration::from_secs(1);
    let (a, a_metrics) = Transport::new(opts).unwrap();
    let r = timeout(WAIT, a.send(Bytes::from_static(b"x"), &addr))
        .await
        .expect("send to a silent TLS peer hung");
    assert!(
        matches!(r, Err(Error::Timeout { .. })),
        "send to a silent TLS peer: {r:?}"
    );
    assert_eq!(
        metric(&a_metrics, "cluster_transport_tx_packets_failed_total"),
        1.0
    );
    let r = timeout(WAIT, a.dial(&addr, Duration::from_secs(1)))
        .await
        .expect("dial to a silent TLS peer hung");
    assert!(
        matches!(r, Err(Error::Timeout { .. })),
        "dial to a silent TLS peer: {r:?}"
    );
    silent.abort();
    timeout(WAIT, a.shutdown()).await.unwrap();
}

/// 4b. A client that connects to a TLS server and never sends a ClientHello
/// is cut off after `header_read_timeout`, counted as
/// `tls_handshake_timeout`; a real TLS peer still gets through.
#[tokio::test]
async fn tls_handshake_stall_on_the_server_side_is_cut_off() {
    let (server_tls, client_tls) = tls_pair();
    let mut opts = Options::default();
    opts.server_tls = Some(server_tls);
    opts.header_read_timeout = Duration::from_secs(1);
    let (b, b_metrics) = Transport::new(opts).unwrap();
    let b_server = b
        .serve(TcpListener::bind("127.0.0.1:0").await.unwrap())
        .unwrap();
    let b_addr = b_server.local_addr();

    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(
            timeout(WAIT, TcpStream::connect(b_addr))
                .await
                .unwrap()
                .unwrap(),
        );
    }
    for tcp in &mut silent {
        let mut buf = [0u8; 16];
        let r = timeout(WAIT, tcp.read(&mut buf))
            .await
            .expect("a silent client was never cut off");
        assert!(matches!(r, Ok(0) | Err(_)), "server sent {r:?}");
    }
    let series = r#"cluster_transport_requests_refused_total{reason="tls_handshake_timeout"}"#;
    assert_eq!(metric(&b_metrics, series), 3.0);

    let mut opts = Options::default();
    opts.client_tls = Some(client_tls);
    let (a, _) = Transport::new(opts).unwrap();
    timeout(
        WAIT,
        a.send(Bytes::from_static(b"tls"), &b_addr.to_string()),
    )
    .await
    .unwrap()
    .unwrap();
    let p = timeout(WAIT, b.packets().recv()).await.unwrap().unwrap();
    assert_eq!(&p.payload[..], b"tls");
    timeout(WAIT, a.shutdown()).await.unwrap();
    timeout(WAIT, b.shutdown()).await.unwrap();
    timeout(WAIT, b_server.shutdown()).await.unwrap();
}

/// 5. Shutdown under load: many tasks send confirmed packets while the
/// receiver shuts down. Every send returns; every packet confirmed `Ok`
/// was delivered to `packets()` (readable after shutdown), exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_shutdown_under_load_loses_nothing_confirmed() {
    shutdown_under_load(Side::Receiver).await;
}

/// 5b. The same with the sender shutting down mid-load: queued and
/// in-flight packets fail with an error, and what was confirmed arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_shutdown_under_load_loses_nothing_confirmed() {
    shutdown_under_load(Side::Sender).await;
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Side {
    Sender,
    Receiver,
}

async fn shutdown_under_load(side: Side) {
    const SENDERS: usize = 48;
    let (a, a_metrics) = Transport::new(Options::default()).unwrap();
    // A short receive queue, drained with pauses: requests are often
    // waiting for room in it (part of their body delivered) when the
    // shutdown comes.
    let mut b_opts = Options::default();
    b_opts.packet_queue_size = 16;
    let (b_transport, b_metrics) = Transport::new(b_opts).unwrap();
    let b_server = b_transport
        .serve(TcpListener::bind("127.0.0.1:0").await.unwrap())
        .unwrap();
    let b_addr = b_server.local_addr().to_string();

    // Drain B concurrently, as an application would.
    let received_count = Arc::new(AtomicUsize::new(0));
    let drain = tokio::spawn({
        let mut packets = b_transport.packets();
        let received_count = received_count.clone();
        async move {
            let mut got = Vec::new();
            while let Some(p) = packets.recv().await {
                got.push(u64::from_be_bytes(p.payload[..8].try_into().unwrap()));
                if received_count
                    .fetch_add(1, Ordering::Relaxed)
                    .is_multiple_of(64)
                {
                    sleep(Duration::from_millis(1)).await;
                }
            }
            got
        }
    });

    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (a, addr, next, stop) = (a.clone(), b_addr.clone(), next.clone(), stop.clone());
        senders.push(tokio::spawn(async move {
            let (mut oks, mut errs) = (Vec::new(), Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let id = next.fetch_add(1, Ordering::Relaxed);
                let mut payload = id.to_be_bytes().to_vec();
                payload.extend_from_slice(&[0xAB; 56]);
                match timeout(WAIT, a.send(payload.into(), &addr)).await {
                    Err(_) => panic!("send {id} never returned"),
                    Ok(Ok(())) => oks.push(id),
                    Ok(Err(e)) => {
                        errs.push((id, e));
                        assert!(errs.len() < 100_000, "sends kept failing");
                        // A send to a shut-down transport fails without
                        // awaiting anything: do not spin the workers.
                        sleep(Duration::from_millis(1)).await;
                    }
                }
            }
            (oks, errs)
        }));
    }

    // Let the load build up, then shut one side down in the middle of it.
    timeout(WAIT, async {
        while received_count.load(Ordering::Relaxed) < 2000 {
            sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the load never got going");
    let shutting = match side {
        Side::Receiver => &b_transport,
        Side::Sender => &a,
    };
    timeout(WAIT, shutting.shutdown())
        .await
        .expect("shutdown under load hung");
    // Keep sending a little after the shutdown: those must fail, loudly.
    sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);

    let (mut oks, mut errs) = (Vec::new(), Vec::new());
    for s in senders {
        let (o, e) = timeout(WAIT, s).await.unwrap().unwrap();
        oks.extend(o);
        errs.extend(e);
    }
    // packets() ends once B is shut down and drained.
    timeout(WAIT, b_transport.shutdown()).await.unwrap();
    let received = timeout(WAIT, drain)
        .await
        .expect("packets() did not end after shutdown")
        .unwrap();

    let attempted = next.load(Ordering::Relaxed) as usize;
    assert_eq!(
        oks.len() + errs.len(),
        attempted,
        "some sends vanished without an outcome"
    );
    let unique: HashSet<u64> = received.iter().copied().collect();
    assert_eq!(unique.len(), received.len(), "a packet was delivered twice");
    let lost: Vec<u64> = oks
        .iter()
        .copied()
        .filter(|id| !unique.contains(id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} packets confirmed Ok were never delivered: {:?}",
        lost.len(),
        &lost[..lost.len().min(20)]
    );
    assert!(!errs.is_empty(), "no send failed after the shutdown");
    for (id, e) in &errs {
        assert!(
            !matches!(e, Error::Timeout { .. }),
            "send {id} timed out instead of failing: {e}"
        );
    }
    // The metrics account for everything too.
    assert_eq!(
        metric(&b_metrics, "cluster_transport_rx_packets_total") as usize,
        received.len()
    );
    assert_eq!(
        metric(&a_metrics, "cluster_transport_tx_packet_queue_length"),
        0.0
    );
    if side == Side::Receiver {
        // Every failure was a delivery that failed (none refused up front).
        assert_eq!(
            metric(&a_metrics, "cluster_transport_tx_packets_failed_total") as usize,
            errs.len()
        );
    }
    if side == Side::Sender {
        assert!(
            errs.iter().all(|(_, e)| matches!(e, Error::Shutdown)),
            "a send failed otherwise than with Shutdown"
        );
    }
    eprintln!(
        "{side:?} shutdown under load: {attempted} sends, {} ok, {} failed, {} delivered ({} delivered though not confirmed)",
        oks.len(),
        errs.len(),
        received.len(),
        received.len() - oks.len()
    );

    timeout(WAIT, a.shutdown()).await.unwrap();
    timeout(WAIT, b_server.shutdown()).await.unwrap();
}

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
