//! The status each request to `/message` and `/stream` is answered with.

use super::{channel_body, frame, full, status_with_open_body, H2c, ReqBody, CT};
use crate::common::{metric, within, Peer};
use bytes::Bytes;
use gossiphttp::{Options, MESSAGE_PATH, STREAM_PATH};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends one HTTP/1.1 `POST` with the right content type on a new
/// connection and returns the status.
async fn http1_post(addr: &str, path: &str, body: &[u8]) -> StatusCode {
    let tcp = within("tcp connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    let (mut send, conn) = within(
        "http1 handshake",
        hyper::client::conn::http1::handshake::<_, ReqBody>(TokioIo::new(tcp)),
    )
    .await
    .expect("http1 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(hyper::header::HOST, addr)
        .header(hyper::header::CONTENT_TYPE, CT)
        .body(full(body))
        .unwrap();
    let resp = within("http1 response", send.send_request(req))
        .await
        .expect("an http1 response");
    assert_eq!(resp.version(), hyper::Version::HTTP_11);
    resp.status()
}

#[tokio::test]
async fn http1_is_answered_505() {
    let peer = Peer::start(Options::default()).await;
    let hello = frame(b"hello");
    assert_eq!(
        http1_post(&peer.addr, MESSAGE_PATH, &hello).await,
        StatusCode::HTTP_VERSION_NOT_SUPPORTED
    );
    assert_eq!(
        http1_post(&peer.addr, STREAM_PATH, &hello).await,
        StatusCode::HTTP_VERSION_NOT_SUPPORTED
    );

    // The same bytes, written by hand: the answer does not depend on
    // hyper's client.
    let mut tcp = within("tcp connect", TcpStream::connect(&peer.addr))
        .await
        .unwrap();
    let mut req = format!(
        "POST {MESSAGE_PATH} HTTP/1.1\r\nHost: {}\r\nContent-Type: {CT}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        peer.addr,
        hello.len()
    )
    .into_bytes();
    req.extend_from_slice(&hello);
    within("raw write", tcp.write_all(&req)).await.unwrap();
    let mut answer = Vec::new();
    within("raw read", tcp.read_to_end(&mut answer))
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 505"),
        "unexpected answer: {answer:?}"
    );

    // Nothing was delivered.
    assert!(peer.transport.packets().try_recv().is_none());
    peer.stop().await;
}

#[tokio::test]
async fn h2c_statuses_and_byte_exact_delivery() {
    let peer = Peer::start(Options::default()).await;
    let mut packets = peer.transport.packets();
    let mut c = H2c::connect(&peer.addr).await;
    let hello = frame(b"hello");

    // The content type must match exactly.
    for ct in [
        Some("text/plain"),
        Some("application/x.ckit; charset=utf-8"),
        Some("application/x.CKIT"),
        None,
    ] {
        assert_eq!(
            c.status(Method::POST, MESSAGE_PATH, ct, full(&hello)).await,
            StatusCode::BAD_REQUEST,
            "content type {ct:?}"
        );
    }
    assert!(packets.try_recv().is_none(), "a refused body was delivered");

    // Valid frames: short header, long header for a small payload (readers
    // must accept both), an empty payload, and every byte value.
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let mut body = frame(b"hello");
    body.extend_from_slice(&[0xCD, 0, 0, 0, 3, b'a', b'b', b'c']);
    body.extend_from_slice(&[0xCC, 0, 0]);
    body.extend_from_slice(&frame(&all_bytes));
    assert_eq!(c.post_message(&body).await, StatusCode::OK);
    let expected: [&[u8]; 4] = [b"hello", b"abc", b"", &all_bytes];
    for want in expected {
        let p = within("packet", packets.recv()).await.expect("a packet");
        assert_eq!(&p.payload[..], want);
        assert_eq!(p.from, c.local, "the source is the client's TCP address");
    }

    // Empty body: 200, nothing delivered (every packet of a body is queued
    // before its 200, so nothing can still be on its way).
    assert_eq!(c.post_message(b"").await, StatusCode::OK);
    assert!(packets.try_recv().is_none());

    // A lone empty frame is an empty packet.
    assert_eq!(c.post_message(&[0xCC, 0, 0]).await, StatusCode::OK);
    let p = packets.try_recv().expect("the empty packet");
    assert!(p.payload.is_empty());
    assert_eq!(p.from, c.local);

    // Other methods.
    let resp = c
        .request(Method::GET, MESSAGE_PATH, Some(CT), full(b""))
        .await;
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        resp.headers()
            .get(hyper::header::ALLOW)
            .map(|v| v.as_bytes()),
        Some(&b"POST"[..])
    );
    assert_eq!(
        c.status(Method::PUT, STREAM_PATH, Some(CT), full(&hello))
            .await,
        StatusCode::METHOD_NOT_ALLOWED
    );

    // The content type is checked first, as the reference does: a GET
    // without one is a 400 there too.
    assert_eq!(
        c.status(Method::GET, MESSAGE_PATH, None, full(b"")).await,
        StatusCode::BAD_REQUEST
    );

    // Other paths under (and at) the base route.
    for path in [
        "/api/v1/ckit/transport/nope",
        "/api/v1/ckit/transport/",
        "/api/v1/ckit/transport/message/extra",
        "/",
    ] {
        assert_eq!(
            c.status(Method::POST, path, Some(CT), full(&hello)).await,
            StatusCode::NOT_FOUND,
            "path {path}"
        );
    }
    assert!(packets.try_recv().is_none());

    // A second connection is told apart by its own address.
    let mut c2 = H2c::connect(&peer.addr).await;
    assert_ne!(c2.local, c.local);
    assert_eq!(c2.post_message(&frame(b"second")).await, StatusCode::OK);
    let p = packets.try_recv().expect("the second connection's packet");
    assert_eq!((&p.payload[..], p.from), (&b"second"[..], c2.local));

    peer.stop().await;
}

#[tokio::test]
async fn malformed_bodies_are_400_after_delivering_what_came_before() {
    let peer = Peer::start(Options::default()).await;
    let mut packets = peer.transport.packets();
    let mut c = H2c::connect(&peer.addr).await;

    // A valid frame, then a bad magic byte.
    assert_eq!(
        c.post_message(&[0xCC, 0x00, 0x01, 0x78, 0x00, 0x00, 0x01, 0x79])
            .await,
        StatusCode::BAD_REQUEST
    );
    let p = packets.try_recv().expect("the frame before the bad one");
    assert_eq!(&p.payload[..], &[0x78]);
    assert_eq!(p.from, c.local);
    assert!(packets.try_recv().is_none());

    // A truncated frame.
    assert_eq!(
        c.post_message(&[0xCC, 0x00, 0x05, 0x68, 0x65]).await,
        StatusCode::BAD_REQUEST
    );
    // A truncated header.
    assert_eq!(
        c.post_message(&[0xCD, 0x00, 0x00]).await,
        StatusCode::BAD_REQUEST
    );
    // A bad magic byte first.
    assert_eq!(
        c.post_message(&[0x00, 0x00, 0x01, 0x79]).await,
        StatusCode::BAD_REQUEST
    );
    assert!(packets.try_recv().is_none());

    // The connection is still good.
    assert_eq!(c.post_message(&frame(b"after")).await, StatusCode::OK);
    assert_eq!(&packets.try_recv().unwrap().payload[..], b"after");
    peer.stop().await;
}

/// The process's peak virtual memory size (`VmPeak`), in KiB.
#[cfg(target_os = "linux")]
fn vm_peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmPeak:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmPeak in /proc/self/status")
}

#[tokio::test]
async fn oversized_frames_are_refused_from_the_header() {
    let peer = Peer::start(Options::default()).await;
    let mut packets = peer.transport.packets();
    let mut c = H2c::connect(&peer.addr).await;

    // A frame announcing 4 GiB, with a few KiB following and the body
    // still open: refused at once (the body read timeout is 30 s, the
    // response wait 5 s), without reserving the announced size.
    #[cfg(target_os = "linux")]
    let peak_before = vm_peak_kib();
    assert_eq!(
        status_with_open_body(&mut c, &[0xCD, 0xFF, 0xFF, 0xFF, 0xFF], 4096).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    #[cfg(target_os = "linux")]
    {
        let grown = vm_peak_kib().saturating_sub(peak_before);
        assert!(
            grown < 2 << 20,
            "peak virtual memory grew by {grown} KiB while refusing a 4 GiB frame"
        );
    }

    // 2 MiB, over the default 1 MiB limit.
    assert_eq!(
        status_with_open_body(&mut c, &[0xCD, 0x00, 0x20, 0x00, 0x00], 4096).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert!(packets.try_recv().is_none());

    // The server is still fine: a new connection gets 200.
    let mut fresh = H2c::connect(&peer.addr).await;
    assert_eq!(fresh.post_message(&frame(b"alive")).await, StatusCode::OK);
    assert_eq!(&packets.try_recv().unwrap().payload[..], b"alive");
    // And so is the old one.
    assert_eq!(c.post_message(&frame(b"still")).await, StatusCode::OK);
    assert_eq!(&packets.try_recv().unwrap().payload[..], b"still");
    assert_eq!(
        metric(&peer.registry, "cluster_transport_rx_packets_failed_total"),
        2.0
    );
    peer.stop().await;

    // A smaller configured limit: exactly the limit passes, one more fails.
    let mut opts = Options::default();
    opts.max_packet_size = 4096;
    let peer = Peer::start(opts).await;
    let mut packets = peer.transport.packets();
    let mut c = H2c::connect(&peer.addr).await;
    let big: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(
        c.post_message(&frame(&big)).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(
        c.post_message(&frame(&big[..4097])).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert!(packets.try_recv().is_none());
    assert_eq!(c.post_message(&frame(&big[..4096])).await, StatusCode::OK);
    let p = packets.try_recv().expect("the 4096-byte packet");
    assert_eq!(&p.payload[..], &big[..4096]);
    peer.stop().await;
}

#[tokio::test]
async fn endpoints_answer_503_after_transport_shutdown() {
    let peer = Peer::start(Options::default()).await;
    let mut before = H2c::connect(&peer.addr).await;
    assert_eq!(before.post_message(&frame(b"x")).await, StatusCode::OK);

    within("transport shutdown", peer.transport.shutdown()).await;

    // The server still runs: a new connection is answered, with 503.
    let mut c = H2c::connect(&peer.addr).await;
    assert_eq!(
        c.post_message(&frame(b"late")).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let (tx, body) = channel_body();
    let resp = c.request(Method::POST, STREAM_PATH, Some(CT), body).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    drop(tx);
    // A connection made before shutdown gets the same answer.
    assert_eq!(
        before.post_message(&frame(b"late")).await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // What was received before shutdown stays readable; nothing after.
    let mut packets = peer.transport.packets();
    assert_eq!(&packets.try_recv().unwrap().payload[..], b"x");
    assert!(within("packets end", packets.recv()).await.is_none());
    within("server shutdown", peer.server.shutdown()).await;
}

/// `body_read_timeout` bounds a `/message` body in all: a peer that keeps
/// trickling a byte every 50 ms (never silent for long) is still cut off
/// with `408`, and a healthy request on the same connection is served.
#[tokio::test]
async fn a_trickled_body_is_cut_off_with_408() {
    let mut opts = Options::default();
    opts.body_read_timeout = Duration::from_millis(600);
    let peer = Peer::start(opts).await;
    let mut c = H2c::connect(&peer.addr).await;
    let (tx, body) = channel_body();
    let trickle = tokio::spawn(async move {
        // A frame announcing 1000 bytes, then a byte at a time.
        if tx
            .send(Bytes::from_static(&[0xCC, 0x03, 0xE8]))
            .await
            .is_err()
        {
            return 0;
        }
        let mut sent = 0;
        while tx.send(Bytes::from_static(b"x")).await.is_ok() && sent < 1000 {
            sent += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        sent
    });
    let started = std::time::Instant::now();
    let resp = c.request(Method::POST, MESSAGE_PATH, Some(CT), body).await;
    assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500),
        "cut off after {took:?}, before the budget"
    );
    let sent = within("trickler stops", trickle).await.unwrap();
    assert!(sent < 100, "the trickler got to send {sent} bytes");
    assert_eq!(
        metric(
            &peer.registry,
            "cluster_transport_requests_refused_total{reason=\"body_timeout\"}"
        ),
        1.0
    );
    let mut fresh = H2c::connect(&peer.addr).await;
    assert_eq!(fresh.post_message(&frame(b"ok")).await, StatusCode::OK);
    peer.stop().await;
}
