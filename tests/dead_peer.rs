//! A dead peer in the set of destinations does not slow packets to a live
//! peer (the reference sends every packet from one goroutine, so a peer that
//! accepts TCP and never answers holds every other peer for the whole 5 s
//! packet timeout). Asserted with delivery counts within a window well
//! below the packet timeout, not with measured times. Also: a dead peer's
//! queue drops its oldest packets when full, and shutdown fails what is
//! pending for it at once.

mod common;

use bytes::Bytes;
use common::ports::{rebind, restartable_addr};
use common::{eventually, metric, within, within_for, Peer};
use gossiphttp::{Error, Options, Transport};
use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A peer that accepts TCP connections and then never reads from them nor
/// answers: every request to it hangs until the sender gives up.
struct HangingPeer {
    addr: String,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl HangingPeer {
    async fn start() -> HangingPeer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            // Held open, never read, until the test ends.
            let mut held = Vec::new();
            loop {
                match listener.accept().await {
                    Ok((socket, _)) => {
                        count.fetch_add(1, Ordering::SeqCst);
                        held.push(socket);
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        });
        HangingPeer {
            addr,
            accepted,
            task,
        }
    }
}

impl Drop for HangingPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback port nothing listens on: connecting is refused at once.
async fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    addr
}

/// Polls `fut` exactly once (so a `send` queues its packet) and says
/// whether it is still pending, without yielding to the runtime.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> bool {
    std::future::poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut *fut).poll(cx).is_pending()))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_peer_does_not_slow_a_live_one() {
    const N: u32 = 2000;
    let live = Peer::start(Options::default()).await;
    let hanging = HangingPeer::start().await;
    let refused = closed_port().await;

    let mut opts = Options::default();
    assert_eq!(opts.packet_timeout, Duration::from_secs(5));
    // Room for every packet: the N writes below do not yield, and a full
    // queue drops its oldest packets by design (see
    // `a_full_peer_queue_drops_the_oldest`), which would muddle the counts.
    opts.peer_queue_size = 2 * N as usize;
    let (a, a_metrics) = Transport::new(opts).unwrap();

    // The dead peers come first in every round, so a sender that served
    // peers in order would hold the live peer's packets behind them.
    for i in 0..N {
        let payload = Bytes::copy_from_slice(&i.to_be_bytes());
        a.write_to(payload.clone(), &hanging.addr).unwrap();
        a.write_to(payload.clone(), &refused).unwrap();
        a.write_to(payload, &live.addr).unwrap();
    }

    // Every live packet arrives within 3 s: well below one 5 s packet
    // timeout, where a sender queued behind the hanging peer would need
    // that much for its first request alone (the reference: N × 5 s).
    let mut packets = live.transport.packets();
    let mut seen = HashSet::new();
    within_for(
        Duration::from_secs(3),
        "all packets to the live peer",
        async {
            while seen.len() < N as usize {
                let p = packets.recv().await.expect("the live transport runs");
                let i = u32::from_be_bytes(p.payload[..].try_into().expect("4-byte payload"));
                assert!(i < N && seen.insert(i), "unexpected or repeated packet {i}");
            }
        },
    )
    .await;

    // The hanging peer's requests are still pending (it got a connection,
    // and nothing has timed out yet), and a waited-for send to the live
    // peer completes all the same.
    assert!(
        eventually(Duration::from_secs(2), || hanging
            .accepted
            .load(Ordering::SeqCst)
            >= 1)
        .await,
        "the hanging peer was never connected to"
    );
    let pending_dead = tokio::spawn({
        let a = a.clone();
        let addr = hanging.addr.clone();
        async move { a.send(Bytes::from_static(b"dead"), &addr).await }
    });
    within_for(
        Duration::from_secs(2),
        "a send to the live peer",
        a.send(Bytes::from_static(b"sync"), &live.addr),
    )
    .await
    .expect("the live peer answers 200");
    let p = within("the sync packet", packets.recv()).await.unwrap();
    assert_eq!(&p.payload[..], b"sync");
    assert!(
        !pending_dead.is_finished(),
        "a send to the hanging peer finished before any packet timeout"
    );
    assert!(packets.try_recv().is_none(), "a packet arrived twice");
    assert_eq!(
        metric(&live.registry, "cluster_transport_rx_packets_total"),
        (N + 1) as f64
    );

    // The refused peer's packets all fail quickly; the live peer's never
    // count as failed, and no queue overflowed.
    let failed = || metric(&a_metrics, "cluster_transport_tx_packets_failed_total");
    assert!(
        eventually(Duration::from_secs(3), || failed() >= N as f64).await,
        "the refused peer's packets did not all fail: {} failed",
        failed()
    );
    assert!(failed() <= (2 * N) as f64, "{} failed", failed());
    assert_eq!(
        metric(&a_metrics, "cluster_transport_tx_packets_dropped_total"),
        0.0
    );

    within("sender shutdown", a.shutdown()).await;
    let dead = within("the pending send after shutdown", pending_dead)
        .await
        .unwrap();
    assert!(matches!(dead, Err(Error::Shutdown)), "got {dead:?}");
    // Every packet to a dead peer is now accounted for, and none to the
    // live one.
    assert_eq!(failed(), (2 * N + 1) as f64);

    live.stop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_full_peer_queue_drops_the_oldest() {
    let hanging = HangingPeer::start().await;
    let mut opts = Options::default();
    opts.peer_queue_size = 10;
    let (a, m) = Transport::new(opts).unwrap();
    let dropped = || metric(&m, "cluster_transport_tx_packets_dropped_total");
    let queued = || metric(&m, "cluster_transport_tx_packet_queue_length");
    let sent = || metric(&m, "cluster_transport_tx_packets_total");
    let failed = || metric(&m, "cluster_transport_tx_packets_failed_total");

    // The batching math: the peer's task takes everything queued as one
    // batch when it runs, but on this current-thread runtime it cannot run
    // while the test does not yield. So of 100 packets queued without
    // yielding, the queue keeps the newest 10 and drops exactly 90,
    // however the task batches later.
    let mut early = Box::pin(a.send(Bytes::from_static(b"early"), &hanging.addr));
    assert!(
        poll_once(&mut early).await,
        "the early send finished at once"
    );
    for i in 1..100u32 {
        a.write_to(Bytes::copy_from_slice(&i.to_be_bytes()), &hanging.addr)
            .unwrap();
    }
    assert_eq!(dropped(), 90.0);
    assert_eq!(queued(), 10.0);
    let early = within("the early send", early).await;
    assert!(
        matches!(&early, Err(Error::Dropped { addr }) if *addr == hanging.addr),
        "got {early:?}"
    );

    // The task then takes the 10 survivors as one batch, whose request
    // hangs.
    assert!(
        eventually(Duration::from_secs(3), || sent() == 10.0 && queued() == 0.0).await,
        "sent {} queued {}",
        sent(),
        queued()
    );
    // With that batch in flight in a body left open for more, and quiet a
    // moment, another 100 without yielding: the first goes straight into
    // the open body (write_to's fast path while the task sleeps with
    // nothing queued), then again the newest 10 stay queued.
    tokio::time::sleep(Duration::from_millis(5)).await;
    for i in 100..200u32 {
        a.write_to(Bytes::copy_from_slice(&i.to_be_bytes()), &hanging.addr)
            .unwrap();
    }
    assert_eq!(sent(), 11.0);
    assert_eq!(dropped(), 179.0);
    assert_eq!(queued(), 10.0);
    assert_eq!(failed(), 0.0, "nothing has timed out yet");

    // Shutdown fails the rest; every packet is accounted for.
    within_for(Duration::from_secs(2), "shutdown", a.shutdown()).await;
    assert_eq!(failed(), 21.0);
    assert_eq!(dropped() + failed(), 200.0);
    assert_eq!(queued(), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_fails_sends_pending_for_a_dead_peer() {
    const SENDS: usize = 20;
    let hanging = HangingPeer::start().await;
    let (a, m) = Transport::new(Options::default()).unwrap();

    let sends: Vec<_> = (0..SENDS)
        .map(|i| {
            let a = a.clone();
            let addr = hanging.addr.clone();
            tokio::spawn(async move { a.send(Bytes::from(vec![i as u8; 8]), &addr).await })
        })
        .collect();
    // Wait until all are queued or in flight (at least one request out).
    assert!(
        eventually(Duration::from_secs(3), || {
            metric(&m, "cluster_transport_tx_packets_total")
                + metric(&m, "cluster_transport_tx_packet_queue_length")
                == SENDS as f64
                && metric(&m, "cluster_transport_tx_packets_total") >= 1.0
        })
        .await,
        "the sends were not all queued"
    );
    assert!(sends.iter().all(|s| !s.is_finished()));

    // Shutdown returns well within the 5 s packet timeout, and every
    // pending send fails with Shutdown right away.
    within_for(Duration::from_secs(2), "shutdown", a.shutdown()).await;
    for s in sends {
        let r = within_for(Duration::from_secs(1), "a pending send", s)
            .await
            .unwrap();
        assert!(matches!(r, Err(Error::Shutdown)), "got {r:?}");
    }
    assert_eq!(
        metric(&m, "cluster_transport_tx_packets_failed_total"),
        SENDS as f64
    );
    assert_eq!(metric(&m, "cluster_transport_tx_packet_queue_length"), 0.0);

    // After shutdown nothing is queued any more.
    let late = a.send(Bytes::from_static(b"late"), &hanging.addr).await;
    assert!(matches!(late, Err(Error::Shutdown)), "got {late:?}");
    assert!(matches!(
        a.write_to(Bytes::from_static(b"late"), &hanging.addr),
        Err(Error::Shutdown)
    ));
}

/// An unreachable peer is retried with a backoff (20 ms doubling to 250 ms),
/// not once per batch: a steady stream of packets to a peer whose TLS
/// handshake always fails makes a handful of connection attempts, every
/// packet is accounted for (failed or dropped, never lost), and once the
/// peer answers again the next packets get through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_peer_is_retried_with_backoff() {
    // Accepts TCP and closes it at once: every TLS handshake fails.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let refuser = tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    });
    let mut opts = Options::default();
    opts.client_tls = Some(gossiphttp::ClientTls::from_roots(Vec::new()).unwrap());
    let (t, registry) = Transport::new(opts).unwrap();
    let target = addr.to_string();
    let mut sent = 0u64;
    let start = tokio::time::Instant::now();
    while start.elapsed() < Duration::from_millis(1200) {
        for _ in 0..50 {
            t.write_to(Bytes::from_static(b"gossip"), &target).unwrap();
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let attempts = accepted.load(Ordering::SeqCst);
    // 20+40+80+160+250+250+250 ms ≈ 1.05 s: about 8 attempts; a connect per
    // batch would make hundreds.
    assert!(
        (2..=20).contains(&attempts),
        "{attempts} connection attempts in 1.2 s of steady sending"
    );
    assert!(
        eventually(Duration::from_secs(5), || {
            metric(&registry, "cluster_transport_tx_packets_failed_total")
                + metric(&registry, "cluster_transport_tx_packets_dropped_total")
                == sent as f64
        })
        .await,
        "every packet to the unreachable peer is failed or dropped, counted"
    );
    refuser.abort();
    within("shutdown", t.shutdown()).await;

    // Recovery: a peer that was down and comes back on the same address
    // gets the packets sent after it is up (within the backoff bound).
    let live = Peer::start(Options::default()).await;
    let (c, _) = Transport::new(Options::default()).unwrap();
    // A port no outgoing connection can take while it is down.
    let down = restartable_addr();
    let _ = within(
        "send to a closed port",
        c.send(Bytes::from_static(b"x"), &down),
    )
    .await;
    let listener = rebind(&down).await;
    let server = live.transport.serve(listener).unwrap();
    let mut packets = live.transport.packets();
    within_for(
        Duration::from_secs(5),
        "a send after the peer came back",
        async {
            loop {
                if c.send(Bytes::from_static(b"back"), &down).await.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        },
    )
    .await;
    let p = within("the packet", packets.recv()).await.unwrap();
    assert_eq!(&p.payload[..], b"back");
    within("shutdown", c.shutdown()).await;
    within("server shutdown", server.shutdown()).await;
    live.stop().await;
}

/// A packet that waits out `packet_timeout` in its peer's queue (here the
/// peer is unreachable and its task is backing off longer than that) fails
/// with a timeout instead of going out stale, so `send` answers within about
/// twice the packet timeout, and every packet is counted as failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packet_that_waits_out_the_packet_timeout_in_the_queue_fails() {
    let mut opts = Options::default();
    opts.packet_timeout = Duration::from_millis(50);
    let (t, registry) = Transport::new(opts).unwrap();
    let down = closed_port().await;
    // Each refused connect doubles the backoff (20, 40, 80, 160, 250 ms); a
    // packet sent right after a refusal waits out the backoff, which soon
    // exceeds the 50 ms packet timeout.
    let (mut refused, mut waited_out) = (0, 0);
    for _ in 0..10 {
        match within(
            "a send to a closed port",
            t.send(Bytes::from_static(b"p"), &down),
        )
        .await
        {
            Err(Error::Connect { .. }) => refused += 1,
            Err(Error::Timeout { after, .. }) => {
                assert_eq!(after, Duration::from_millis(50));
                waited_out += 1;
            }
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert!(refused >= 2, "{refused} refused");
    assert!(
        waited_out >= 2,
        "{waited_out} packets waited out the timeout"
    );
    assert_eq!(
        metric(&registry, "cluster_transport_tx_packets_failed_total"),
        10.0
    );
    assert_eq!(
        metric(&registry, "cluster_transport_tx_packet_queue_length"),
        0.0
    );
    within("shutdown", t.shutdown()).await;
}
