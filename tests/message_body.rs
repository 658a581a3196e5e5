//! `/message` bodies that stay open for more packets
//! (`Options::message_body_linger`), seen from a bare HTTP/2 server that
//! knows only the contract: the first packet after a quiet spell is a
//! request of its own; the next packets ride one request as frames, each
//! arriving as it is sent; a body ends when it has been quiet for the
//! linger, when it is `message_body_max_age` old, or at once when a caller
//! waits on one of its packets; with the defaults, packets seconds apart
//! (gossip at rest) share a body; a failed body's packets count as failed
//! and the next packets go on a new request; an address no request can be
//! made for fails its packets with `InvalidAddress`.

mod common;

use bytes::{Buf, Bytes};
use common::{metric, within, within_for, Peer};
use gossiphttp::{Error, Options, Transport};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

#[derive(Debug, PartialEq)]
enum Event {
    /// A frame's payload, and the request (numbered from 0) it came on.
    Packet(u64, Vec<u8>),
    /// The request's body ended.
    End(u64),
}

/// Serves h2c `/message` like a minimal contract reader: reports each
/// frame as soon as it is whole and each body's end, and answers `200`
/// after the body (or `refuse` at once, for the request numbered
/// `refuse_request`).
async fn raw_message_peer(refuse_request: Option<u64>) -> (String, mpsc::UnboundedReceiver<Event>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::unbounded_channel();
    let requests = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let (tx, requests) = (tx.clone(), requests.clone());
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let tx = tx.clone();
                let id = requests.fetch_add(1, Ordering::SeqCst);
                async move {
                    assert_eq!(req.uri().path(), "/api/v1/ckit/transport/message");
                    if refuse_request == Some(id) {
                        let mut resp = Response::new(Empty::<Bytes>::new());
                        *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                        return Ok::<_, Infallible>(resp);
                    }
                    let mut body = req.into_body();
                    let mut held = Vec::new();
                    while let Some(Ok(frame)) = body.frame().await {
                        if let Ok(data) = frame.into_data() {
                            held.extend_from_slice(&data);
                        }
                        // Only short frames are sent for small payloads.
                        while held.len() >= 3 {
                            assert_eq!(held[0], 0xCC, "frame magic");
                            let len = (&held[1..3]).get_u16() as usize;
                            if held.len() < 3 + len {
                                break;
                            }
                            let _ = tx.send(Event::Packet(id, held[3..3 + len].to_vec()));
                            held.drain(..3 + len);
                        }
                    }
                    assert!(held.is_empty(), "a partial frame at the end of the body");
                    let _ = tx.send(Event::End(id));
                    Ok(Response::new(Empty::<Bytes>::new()))
                }
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(sock), service),
            );
        }
    });
    (addr, rx)
}

/// A sender whose bodies linger `linger` and end a second old.
fn sender(linger: Duration) -> Transport {
    let mut opts = Options::default();
    opts.message_body_linger = linger;
    opts.message_body_max_age = Duration::from_secs(1);
    Transport::new(opts).unwrap().0
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Event>) -> Event {
    within("the peer's next event", rx.recv())
        .await
        .expect("peer running")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_packet_after_a_quiet_spell_is_a_request_of_its_own() {
    let (addr, mut rx) = raw_message_peer(None).await;
    let mut opts = Options::default();
    opts.message_body_linger = Duration::from_secs(60);
    opts.message_body_max_age = Duration::from_secs(60);
    let t = Transport::new(opts).unwrap().0;
    // Ended with its chunk: its end comes long before any linger or max
    // age (`next` waits 5 s at most).
    t.write_to(Bytes::from_static(b"first"), &addr).unwrap();
    assert_eq!(next(&mut rx).await, Event::Packet(0, b"first".to_vec()));
    assert_eq!(next(&mut rx).await, Event::End(0));
    // The peer is busy now: the next packet's body stays open.
    t.write_to(Bytes::from_static(b"second"), &addr).unwrap();
    assert_eq!(next(&mut rx).await, Event::Packet(1, b"second".to_vec()));
    let more = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await;
    assert!(more.is_err(), "the lingering body ended: {more:?}");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_ride_one_open_body_each_arriving_as_it_is_sent() {
    let (addr, mut rx) = raw_message_peer(None).await;
    let t = sender(Duration::from_secs(60));
    // The first is a request of its own (see above); the rest share one.
    t.write_to(Bytes::from(vec![0; 5]), &addr).unwrap();
    assert_eq!(next(&mut rx).await, Event::Packet(0, vec![0; 5]));
    assert_eq!(next(&mut rx).await, Event::End(0));
    let opened = Instant::now();
    for i in 1..10u8 {
        t.write_to(Bytes::from(vec![i; 5]), &addr).unwrap();
        // The frame arrives while its body is still open: the next packet
        // is only written once the peer has this one.
        assert_eq!(next(&mut rx).await, Event::Packet(1, vec![i; 5]));
    }
    // Nothing more comes until the body is a second old; then it ends.
    assert_eq!(next(&mut rx).await, Event::End(1));
    assert!(opened.elapsed() >= Duration::from_secs(1));
    // The next packet opens a new request.
    t.write_to(Bytes::from_static(b"again"), &addr).unwrap();
    assert_eq!(next(&mut rx).await, Event::Packet(2, b"again".to_vec()));
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_defaults_packets_a_second_apart_share_one_body() {
    // memberlist's LAN defaults send a peer a ping or an ack every second
    // or so at rest: each would otherwise be a request of its own (headers,
    // a stream and a task on both ends, an end of body, an answer).
    let (addr, mut rx) = raw_message_peer(None).await;
    let t = Transport::new(Options::default()).unwrap().0;
    t.write_to(Bytes::from_static(b"first"), &addr).unwrap();
    assert_eq!(next(&mut rx).await, Event::Packet(0, b"first".to_vec()));
    assert_eq!(next(&mut rx).await, Event::End(0));
    for i in 1..4u8 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        t.write_to(Bytes::from(vec![i]), &addr).unwrap();
        assert_eq!(next(&mut rx).await, Event::Packet(1, vec![i]));
    }
    // Quiet for the linger (3 s), the body ends; the next packet, after a
    // spell that quiet, is a request of its own.
    let end = within_for(Duration::from_secs(15), "the body's end", rx.recv()).await;
    assert_eq!(end, Some(Event::End(1)));
    t.write_to(Bytes::from_static(b"later"), &addr).unwrap();
    assert_eq!(next(&mut rx).await, Event::Packet(2, b"later".to_vec()));
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_body_ends_after_the_linger() {
    let (addr, mut rx) = raw_message_peer(None).await;
    let linger = Duration::from_millis(200);
    let mut opts = Options::default();
    opts.message_body_linger = linger;
    opts.message_body_max_age = Duration::from_secs(10);
    let t = Transport::new(opts).unwrap().0;
    for round in 0..3u64 {
        // A request of its own (the peer was quiet), then a packet within
        // the linger, whose body lingers.
        t.write_to(Bytes::from_static(b"x"), &addr).unwrap();
        assert_eq!(next(&mut rx).await, Event::Packet(2 * round, b"x".to_vec()));
        assert_eq!(next(&mut rx).await, Event::End(2 * round));
        let start = Instant::now();
        t.write_to(Bytes::from_static(b"y"), &addr).unwrap();
        let open = 2 * round + 1;
        assert_eq!(next(&mut rx).await, Event::Packet(open, b"y".to_vec()));
        assert_eq!(next(&mut rx).await, Event::End(open));
        // Ended by the linger, not by the max age (50× the linger: only a
        // stalled machine could blur the two).
        let lasted = start.elapsed();
        assert!(
            lasted >= linger && lasted < Duration::from_secs(5),
            "round {round}: the body lasted {lasted:?}"
        );
        // Quiet for longer than the linger: the next round starts quiet.
        tokio::time::sleep(2 * linger).await;
    }
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_linger_every_packet_is_a_request_of_its_own() {
    let (addr, mut rx) = raw_message_peer(None).await;
    let t = sender(Duration::ZERO);
    for i in 0..3u64 {
        t.write_to(Bytes::from(vec![i as u8]), &addr).unwrap();
        assert_eq!(next(&mut rx).await, Event::Packet(i, vec![i as u8]));
        assert_eq!(next(&mut rx).await, Event::End(i));
    }
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_ends_its_body_at_once_rather_than_after_the_linger() {
    let (addr, mut rx) = raw_message_peer(None).await;
    let t = sender(Duration::from_secs(60));
    t.write_to(Bytes::from_static(b"zero"), &addr).unwrap();
    assert_eq!(next(&mut rx).await, Event::Packet(0, b"zero".to_vec()));
    assert_eq!(next(&mut rx).await, Event::End(0));
    t.write_to(Bytes::from_static(b"one"), &addr).unwrap();
    assert_eq!(next(&mut rx).await, Event::Packet(1, b"one".to_vec()));
    // The open body takes the awaited packet too, and ends with it: the
    // answer comes well before the body's one-second cap.
    let start = Instant::now();
    within("send", t.send(Bytes::from_static(b"two"), &addr))
        .await
        .unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "send took {:?}",
        start.elapsed()
    );
    assert_eq!(next(&mut rx).await, Event::Packet(1, b"two".to_vec()));
    assert_eq!(next(&mut rx).await, Event::End(1));
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_body_fails_its_packets_and_the_next_ones_go_on_a_new_request() {
    // The first request is answered 500 before its body is read.
    let (addr, mut rx) = raw_message_peer(Some(0)).await;
    let (t, registry) = Transport::new(Options::default()).unwrap();
    let err = within("send", t.send(Bytes::from_static(b"lost"), &addr))
        .await
        .expect_err("the peer refused the body");
    assert!(err.to_string().contains("500"), "{err}");
    assert_eq!(
        metric(&registry, "cluster_transport_tx_packets_failed_total"),
        1.0
    );
    t.write_to(Bytes::from_static(b"next"), &addr).unwrap();
    assert_eq!(next(&mut rx).await, Event::Packet(1, b"next".to_vec()));
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_on_an_open_body_are_stamped_when_they_arrive() {
    let receiver = Peer::start(Options::default()).await;
    let t = sender(Duration::from_secs(60));
    let mut packets = receiver.transport.packets();
    for i in 0..3u8 {
        let sent_at = t.write_to(Bytes::from(vec![i]), &receiver.addr).unwrap();
        let p = within("packet", packets.recv()).await.unwrap();
        assert_eq!(&p.payload[..], &[i]);
        // Not the time the request began: the third packet rides a body
        // opened (by the second) before it was written.
        assert!(
            p.received_at >= sent_at,
            "packet {i} stamped before it was sent"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    t.shutdown().await;
    receiver.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_no_request_can_be_made_for_fails_as_invalid_not_as_a_panic() {
    let t = Transport::new(Options::default()).unwrap().0;
    for addr in ["a b:80", "http://a b:80", "a\"b:80"] {
        let err = within("send", t.send(Bytes::from_static(b"x"), addr))
            .await
            .expect_err("no request can name this peer");
        assert!(
            matches!(err, Error::InvalidAddress { .. }),
            "{addr:?}: {err}"
        );
    }
    // The transport is still up and delivers to a good address.
    let (addr, mut rx) = raw_message_peer(None).await;
    t.write_to(Bytes::from_static(b"fine"), &addr).unwrap();
    assert_eq!(next(&mut rx).await, Event::Packet(0, b"fine".to_vec()));
    t.shutdown().await;
}
