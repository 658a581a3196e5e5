//! Shutdown under load loses nothing that was confirmed.

use super::WAIT;
use crate::common::metric;
use gossiphttp::{Error, Options, Transport};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::{sleep, timeout};

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
