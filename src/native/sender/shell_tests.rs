//! The shell with a fake connection layer: no network, the machine's
//! decisions carried out end to end.

use super::*;
use http_body_util::BodyExt;
use hyper::{Response, StatusCode};
use std::net::SocketAddr;

/// Answers each `/message` with its answer once the body has ended,
/// keeping what each body carried and whom it asked answers for; a request
/// that asks gets the packet `ack` in its `200`.
struct FakeSink {
    answer: fn(&PeerAddr) -> Result<StatusCode, Error>,
    bodies: Mutex<Vec<Bytes>>,
    reply_to: Mutex<Vec<Option<SocketAddr>>>,
}

impl MessageSink for FakeSink {
    type Answer = FrameBody;

    async fn post_message(
        &self,
        peer: &PeerAddr,
        body: FrameBody,
        reply_to: Option<SocketAddr>,
    ) -> Result<Response<FrameBody>, Error> {
        let bytes = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(never) => match never {},
        };
        self.bodies.lock().unwrap().push(bytes);
        self.reply_to.lock().unwrap().push(reply_to);
        let status = (self.answer)(peer)?;
        let body = match reply_to {
            Some(_) => FrameBody::once(Bytes::from_static(b"\xcc\x00\x03ack")),
            None => FrameBody::empty(),
        };
        let mut resp = Response::new(body);
        *resp.status_mut() = status;
        Ok(resp)
    }
}

fn senders(
    answer: fn(&PeerAddr) -> Result<StatusCode, Error>,
) -> (Senders<FakeSink>, Arc<FakeSink>, Arc<Metrics>) {
    let sink = Arc::new(FakeSink {
        answer,
        bodies: Mutex::new(Vec::new()),
        reply_to: Mutex::new(Vec::new()),
    });
    let metrics = Arc::new(Metrics::default());
    let limits = SendLimits {
        queue_size: 16,
        packet_timeout: Duration::from_secs(5),
        max_batch_bytes: 1 << 10,
        max_in_flight: 2,
        idle_timeout: Duration::from_secs(60),
        body_linger: Duration::from_secs(60),
        body_max_age: Duration::from_secs(1),
    };
    let senders = Senders::new(
        sink.clone(),
        limits,
        CancellationToken::new(),
        TaskTracker::new(),
    );
    (senders, sink, metrics)
}

/// A packet queued by the transport whose metrics are `metrics`.
fn packet(metrics: &Arc<Metrics>, payload: &'static [u8], done: Option<Waiter>) -> Outgoing {
    Outgoing {
        payload: Bytes::from_static(payload),
        done,
        queued_at: Instant::now(),
        metrics: metrics.clone(),
        answer_to: None,
    }
}

fn frames(payloads: &[&[u8]]) -> Bytes {
    let mut out = Vec::new();
    for p in payloads {
        let (header, len) = frame_header(p.len());
        out.extend_from_slice(&header[..len]);
        out.extend_from_slice(p);
    }
    out.into()
}

async fn send(
    senders: &Senders<FakeSink>,
    metrics: &Arc<Metrics>,
    addr: &str,
    payload: &'static [u8],
) -> Result<(), Error> {
    let (tx, rx) = oneshot::channel();
    senders.enqueue(addr, packet(metrics, payload, Some(tx)))?;
    rx.await.unwrap_or(Err(Error::Shutdown))
}

#[tokio::test]
async fn queued_packets_and_a_send_share_one_body_that_the_send_ends() {
    let (senders, sink, metrics) = senders(|_| Ok(StatusCode::OK));
    // The peer's task first runs when this test awaits: all three are
    // queued by then.
    senders
        .enqueue("peer:1", packet(&metrics, b"a", None))
        .unwrap();
    senders
        .enqueue("peer:1", packet(&metrics, b"bb", None))
        .unwrap();
    send(&senders, &metrics, "peer:1", b"ccc").await.unwrap();
    let bodies = sink.bodies.lock().unwrap().clone();
    assert_eq!(bodies, [frames(&[b"a", b"bb", b"ccc"])]);
    assert_eq!(metrics.tx_packets.get(), 3);
    assert_eq!(metrics.tx_bytes.get(), 6);
    assert_eq!(metrics.tx_packets_failed.get(), 0);
    assert_eq!(metrics.tx_packet_queue_length.get(), 0);
}

#[tokio::test]
async fn a_failed_request_fails_its_packets_and_the_peer_task_goes_on() {
    let (senders, _sink, metrics) = senders(|peer| {
        Err(Error::InvalidAddress {
            addr: peer.to_string(),
            reason: "refused by the test".into(),
        })
    });
    for round in 1..=2u64 {
        let err = send(&senders, &metrics, "peer:1", b"x").await.unwrap_err();
        assert!(matches!(err, Error::InvalidAddress { .. }), "{err}");
        assert_eq!(metrics.tx_packets_failed.get(), round);
    }
    assert_eq!(senders.peer_count(), 1);
}

/// Sends `addr` a first packet, `b"0"`, and waits for its request (one of
/// its own: the peer had no packet before it) to be answered, so that the
/// next packet finds a busy peer and opens a lingering body.
/// Its outcome is the test sink's answer; its body is not kept.
async fn make_busy(
    senders: &Senders<FakeSink>,
    metrics: &Arc<Metrics>,
    sink: &FakeSink,
    addr: &str,
) {
    let _ = send(senders, metrics, addr, b"0").await;
    assert_eq!(sink.bodies.lock().unwrap().remove(0), frames(&[b"0"]));
}

/// Lets the peer's task run until it sleeps on an open body it published
/// for the fast path, then lets the body be quiet long enough for it.
async fn until_published(senders: &Senders<FakeSink>, addr: &str) {
    for _ in 0..100 {
        tokio::task::yield_now().await;
        let published = senders
            .ctx
            .peers
            .lock()
            .unwrap()
            .get(addr)
            .is_some_and(|q| q.state.lock().unwrap().is_published());
        if published {
            tokio::time::sleep(2 * direct::DIRECT_QUIET).await;
            return;
        }
    }
    panic!("the peer's task never published its open body");
}

#[tokio::test]
async fn a_packet_written_while_a_body_is_open_and_nothing_queued_goes_straight_into_it() {
    let (senders, sink, metrics) = senders(|_| Ok(StatusCode::OK));
    make_busy(&senders, &metrics, &sink, "peer:1").await;
    senders
        .enqueue("peer:1", packet(&metrics, b"a", None))
        .unwrap();
    until_published(&senders, "peer:1").await;
    // No await from here on: the peer's task cannot run (one thread), so
    // what counts as sent went into the body by `enqueue`'s own hand.
    senders
        .enqueue("peer:1", packet(&metrics, b"bb", None))
        .unwrap();
    assert_eq!(metrics.tx_packets.get(), 3);
    assert_eq!(metrics.tx_bytes.get(), 4);
    assert_eq!(metrics.tx_packet_queue_length.get(), 0);
    // A send goes through the task, after it, and ends the body.
    send(&senders, &metrics, "peer:1", b"ccc").await.unwrap();
    let bodies = sink.bodies.lock().unwrap().clone();
    assert_eq!(bodies, [frames(&[b"a", b"bb", b"ccc"])]);
    assert_eq!(metrics.tx_packets.get(), 4);
    assert_eq!(metrics.tx_packets_failed.get(), 0);
    assert_eq!(metrics.tx_packet_queue_length.get(), 0);
}

#[tokio::test]
async fn a_burst_after_a_direct_write_queues_and_goes_out_in_order() {
    let (senders, sink, metrics) = senders(|_| Ok(StatusCode::OK));
    let payloads: [&'static [u8]; 6] = [b"0", b"1", b"2", b"3", b"4", b"5"];
    make_busy(&senders, &metrics, &sink, "peer:1").await;
    senders
        .enqueue("peer:1", packet(&metrics, payloads[0], None))
        .unwrap();
    until_published(&senders, "peer:1").await;
    // The first goes direct; the body has not read it when the next come,
    // so they queue (and wake the task) to go out as a batch.
    for p in &payloads[1..5] {
        senders
            .enqueue("peer:1", packet(&metrics, p, None))
            .unwrap();
    }
    assert_eq!(metrics.tx_packets.get(), 3);
    assert_eq!(metrics.tx_packet_queue_length.get(), 3);
    send(&senders, &metrics, "peer:1", payloads[5])
        .await
        .unwrap();
    let bodies = sink.bodies.lock().unwrap().clone();
    assert_eq!(bodies, [frames(&payloads)]);
    assert_eq!(metrics.tx_packets.get(), 7);
    assert_eq!(metrics.tx_packet_queue_length.get(), 0);
}

#[tokio::test]
async fn a_failed_body_fails_the_packets_written_straight_into_it() {
    let (senders, sink, metrics) = senders(|peer| {
        Err(Error::InvalidAddress {
            addr: peer.to_string(),
            reason: "refused by the test".into(),
        })
    });
    make_busy(&senders, &metrics, &sink, "peer:1").await;
    senders
        .enqueue("peer:1", packet(&metrics, b"a", None))
        .unwrap();
    until_published(&senders, "peer:1").await;
    senders
        .enqueue("peer:1", packet(&metrics, b"b", None))
        .unwrap();
    senders
        .enqueue("peer:1", packet(&metrics, b"c", None))
        .unwrap();
    let err = send(&senders, &metrics, "peer:1", b"d").await.unwrap_err();
    assert!(matches!(err, Error::InvalidAddress { .. }), "{err}");
    // The first packet's own request failed too.
    assert_eq!(metrics.tx_packets_failed.get(), 5);
}

#[tokio::test]
async fn shutdown_fails_the_packets_written_straight_into_an_open_body() {
    let (senders, sink, metrics) = senders(|_| Ok(StatusCode::OK));
    make_busy(&senders, &metrics, &sink, "peer:1").await;
    senders
        .enqueue("peer:1", packet(&metrics, b"a", None))
        .unwrap();
    until_published(&senders, "peer:1").await;
    senders
        .enqueue("peer:1", packet(&metrics, b"b", None))
        .unwrap();
    assert_eq!(metrics.tx_packets.get(), 3);
    senders.ctx.shutdown.cancel();
    senders.ctx.tasks.close();
    senders.ctx.tasks.wait().await;
    assert_eq!(metrics.tx_packets_failed.get(), 2);
    let late = senders.enqueue("peer:1", packet(&metrics, b"c", None));
    assert!(matches!(late, Err(Error::Shutdown)), "{late:?}");
}

/// Transports sharing a client share its senders: their packets to one
/// peer ride one body (queued, written straight in, and awaited alike),
/// and each is counted in its own transport's metrics, sent and failed.
#[tokio::test]
async fn packets_of_transports_sharing_a_sender_share_a_body_and_count_apart() {
    for fails in [false, true] {
        let (senders, sink, a) = if fails {
            senders(|peer| {
                Err(Error::InvalidAddress {
                    addr: peer.to_string(),
                    reason: "refused by the test".into(),
                })
            })
        } else {
            senders(|_| Ok(StatusCode::OK))
        };
        let b = Arc::new(Metrics::default());
        make_busy(&senders, &a, &sink, "peer:1").await;
        senders.enqueue("peer:1", packet(&b, b"b1", None)).unwrap();
        until_published(&senders, "peer:1").await;
        // Straight into the open body, then queued behind each other.
        senders.enqueue("peer:1", packet(&a, b"a1", None)).unwrap();
        senders.enqueue("peer:1", packet(&b, b"b2", None)).unwrap();
        senders.enqueue("peer:1", packet(&b, b"b3", None)).unwrap();
        let result = send(&senders, &a, "peer:1", b"a2").await;
        assert_eq!(result.is_err(), fails, "{result:?}");
        if !fails {
            let bodies = sink.bodies.lock().unwrap().clone();
            assert_eq!(bodies, [frames(&[b"b1", b"a1", b"b2", b"b3", b"a2"])]);
        }
        // `a`'s first packet (from `make_busy`) went in a request of its own.
        assert_eq!((a.tx_packets.get(), b.tx_packets.get()), (3, 3));
        assert_eq!((a.tx_bytes.get(), b.tx_bytes.get()), (5, 6));
        let failed = (a.tx_packets_failed.get(), b.tx_packets_failed.get());
        assert_eq!(failed, if fails { (3, 3) } else { (0, 0) });
        assert_eq!(a.tx_packet_queue_length.get(), 0);
        assert_eq!(b.tx_packet_queue_length.get(), 0);
    }
}

/// A full queue drops its oldest packet, counted by the transport that
/// queued that one, not by the one whose packet pushed it out.
#[tokio::test]
async fn a_dropped_packet_counts_for_the_transport_that_queued_it() {
    let (senders, _sink, a) = senders(|_| Ok(StatusCode::OK));
    let b = Arc::new(Metrics::default());
    let queue_size = senders.limits().queue_size;
    // No await: the peer's task has not run, so everything queues.
    senders.enqueue("peer:1", packet(&a, b"a", None)).unwrap();
    for _ in 1..queue_size {
        senders.enqueue("peer:1", packet(&b, b"b", None)).unwrap();
    }
    assert_eq!(a.tx_packet_queue_length.get(), 1);
    senders.enqueue("peer:1", packet(&b, b"b", None)).unwrap();
    assert_eq!(
        (a.tx_packets_dropped.get(), b.tx_packets_dropped.get()),
        (1, 0)
    );
    assert_eq!(a.tx_packet_queue_length.get(), 0);
    assert_eq!(b.tx_packet_queue_length.get(), queue_size as i64);
}

/// Where a test transport's answers go, and its queue of received packets.
fn answer_to() -> (AnswerTo, async_channel::Receiver<crate::Packet>) {
    let (tx, rx) = async_channel::bounded(8);
    let inbox = super::super::inbox::Inbox::new(tx, Metrics::default(), CancellationToken::new());
    let to = AnswerTo {
        reply_to: "127.0.0.1:7000".parse().unwrap(),
        inbox: Arc::new(inbox),
        max_packet_size: 1024,
    };
    (to, rx)
}

#[tokio::test]
async fn a_packet_awaiting_an_answer_asks_for_it_on_a_request_of_its_own() {
    let (senders, sink, metrics) = senders(|_| Ok(StatusCode::OK));
    let (to, answers) = answer_to();
    // A quiet peer: the ping is a request of its own, ended with it.
    let ping = Outgoing {
        answer_to: Some(to),
        ..packet(&metrics, b"ping", None)
    };
    senders.enqueue("127.0.0.1:9", ping).unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), answers.recv())
        .await
        .expect("the answer was delivered")
        .unwrap();
    assert_eq!(&answer.payload[..], b"ack");
    assert_eq!(answer.from, "127.0.0.1:9".parse().unwrap());
    assert_eq!(
        *sink.reply_to.lock().unwrap(),
        [Some("127.0.0.1:7000".parse().unwrap())]
    );
    assert_eq!(sink.bodies.lock().unwrap()[0], frames(&[b"ping"]));
}

#[tokio::test]
async fn a_lingering_body_asks_for_no_answer() {
    let (senders, sink, metrics) = senders(|_| Ok(StatusCode::OK));
    let (to, answers) = answer_to();
    make_busy(&senders, &metrics, &sink, "127.0.0.1:9").await;
    // A busy peer: the ping opens a body that stays open for more, whose
    // answer would come only at its end; the send ends it.
    let ping = Outgoing {
        answer_to: Some(to),
        ..packet(&metrics, b"ping", None)
    };
    senders.enqueue("127.0.0.1:9", ping).unwrap();
    until_published(&senders, "127.0.0.1:9").await;
    send(&senders, &metrics, "127.0.0.1:9", b"x").await.unwrap();
    assert_eq!(*sink.reply_to.lock().unwrap(), [None, None]);
    assert_eq!(sink.bodies.lock().unwrap()[0], frames(&[b"ping", b"x"]));
    assert!(answers.try_recv().is_err());
}
