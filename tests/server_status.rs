//! What the served endpoints answer, request by request, to raw HTTP
//! clients (PROTOCOL.md, "What the reference does, observed"): `505` for
//! HTTP/1.1, `400` for a wrong content type or a malformed body (frames
//! before the bad one delivered), `200` with every frame delivered
//! byte-exact, `405`/`404` for other methods and paths, `503` after
//! shutdown; `/stream` answers its headers before the client writes a byte;
//! and the metrics count what happened.

mod common;

use bytes::{Buf, Bytes, BytesMut};
use common::{metric, metric_type, within, Peer};
use gossiphttp::{Options, MESSAGE_PATH, STREAM_PATH};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http2::SendRequest;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const CT: &str = "application/x.ckit";

type ReqBody = BoxBody<Bytes, Infallible>;

/// A body of fixed bytes.
fn full(bytes: &[u8]) -> ReqBody {
    Full::new(Bytes::copy_from_slice(bytes)).boxed()
}

/// A body that stays open while the returned sender lives, and sends what
/// is sent on it.
fn channel_body() -> (mpsc::Sender<Bytes>, ReqBody) {
    let (tx, mut rx) = mpsc::channel::<Bytes>(16);
    let frames = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|b| b.map(|b| Ok::<_, Infallible>(Frame::data(b))))
    });
    (tx, StreamBody::new(frames).boxed())
}

/// `payload` as one frame, with the header a conforming writer uses.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 5);
    if payload.len() <= u16::MAX as usize {
        out.push(0xCC);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    } else {
        out.push(0xCD);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

/// One h2c (prior knowledge) connection from a raw hyper client.
struct H2c {
    send: SendRequest<ReqBody>,
    /// The client's end of the TCP connection: what the server must report
    /// as the packets' source.
    local: SocketAddr,
    authority: String,
}

impl H2c {
    async fn connect(addr: &str) -> H2c {
        let tcp = within("tcp connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        let local = tcp.local_addr().unwrap();
        let (send, conn) = within(
            "h2 handshake",
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)),
        )
        .await
        .expect("h2 handshake");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        H2c {
            send,
            local,
            authority: addr.to_string(),
        }
    }

    /// Sends a request and returns the response head (the body unread).
    async fn request(
        &mut self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: ReqBody,
    ) -> Response<Incoming> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{}", self.authority, path));
        if let Some(ct) = content_type {
            req = req.header(hyper::header::CONTENT_TYPE, ct);
        }
        let req = req.body(body).unwrap();
        within("h2 connection ready", self.send.ready())
            .await
            .expect("connection usable");
        within("response headers", self.send.send_request(req))
            .await
            .expect("a response")
    }

    /// Sends a request and returns its status, after reading the (empty)
    /// response body.
    async fn status(
        &mut self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: ReqBody,
    ) -> StatusCode {
        let resp = self.request(method, path, content_type, body).await;
        let status = resp.status();
        let body = within("response body", resp.into_body().collect())
            .await
            .expect("response body")
            .to_bytes();
        assert!(body.is_empty(), "{status}: unexpected body {body:?}");
        status
    }

    /// `POST /message` with the right content type.
    async fn post_message(&mut self, body: &[u8]) -> StatusCode {
        self.status(Method::POST, MESSAGE_PATH, Some(CT), full(body))
            .await
    }
}

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

/// Sends `head` and then `filler` bytes on a body that stays open, and
/// returns the status: only a server that decides from the header alone
/// can answer before the body ends.
async fn status_with_open_body(c: &mut H2c, head: &[u8], filler: usize) -> StatusCode {
    let (tx, body) = channel_body();
    tx.send(Bytes::copy_from_slice(head)).await.unwrap();
    for chunk in vec![0x5Au8; filler].chunks(1024) {
        tx.send(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    let resp = c.request(Method::POST, MESSAGE_PATH, Some(CT), body).await;
    let status = resp.status();
    drop(tx);
    status
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

/// Reads `want` payload bytes from a response body of frames (the
/// boundaries carry no meaning on a stream), keeping any excess in `buf`.
async fn read_stream_bytes(body: &mut Incoming, buf: &mut BytesMut, want: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        // Decode whole frames from what has arrived.
        while buf.len() >= 3 {
            let (hdr, len) = match buf[0] {
                0xCC => (3, u16::from_be_bytes([buf[1], buf[2]]) as usize),
                0xCD if buf.len() >= 5 => (
                    5,
                    u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize,
                ),
                0xCD => break,
                m => panic!("bad magic {m:#x} from the server"),
            };
            if buf.len() < hdr + len {
                break;
            }
            buf.advance(hdr);
            out.extend_from_slice(&buf.split_to(len));
        }
        if out.len() >= want {
            assert_eq!(out.len(), want, "more bytes than written");
            return out;
        }
        let frame = within("stream response frame", body.frame())
            .await
            .expect("the response body ended early")
            .expect("response body error");
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
        }
    }
}

#[tokio::test]
async fn stream_headers_arrive_before_the_client_writes() {
    let peer = Peer::start(Options::default()).await;
    let mut streams = peer.transport.streams();
    let mut c = H2c::connect(&peer.addr).await;

    // Nothing written yet, the body open: the response must still come
    // (a Go dialer waits for it before memberlist writes anything).
    let (tx, body) = channel_body();
    let resp = c.request(Method::POST, STREAM_PATH, Some(CT), body).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()
            .get(hyper::header::CONTENT_TYPE)
            .map(|v| v.as_bytes()),
        Some(CT.as_bytes())
    );
    assert!(
        resp.headers()
            .get(hyper::header::CONTENT_ENCODING)
            .is_none(),
        "responses are never compressed"
    );
    let mut resp_body = resp.into_body();

    let mut conn = within("accept the stream", streams.accept())
        .await
        .expect("an incoming stream");
    assert_eq!(conn.remote_addr(), c.local);

    // Server to client: bytes arrive as frames on the response body.
    let greeting = b"hello from the server side".to_vec();
    within("server write", conn.write_all(&greeting))
        .await
        .unwrap();
    within("server flush", conn.flush()).await.unwrap();
    let mut buf = BytesMut::new();
    assert_eq!(
        read_stream_bytes(&mut resp_body, &mut buf, greeting.len()).await,
        greeting
    );
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let writer = tokio::spawn({
        let big = big.clone();
        async move {
            conn.write_all(&big).await.unwrap();
            conn.flush().await.unwrap();
            conn
        }
    });
    assert_eq!(
        read_stream_bytes(&mut resp_body, &mut buf, big.len()).await,
        big
    );
    let mut conn = within("server writer", writer).await.unwrap();

    // Client to server: frame boundaries do not matter to the reader.
    let mut wire = frame(b"ping ");
    wire.extend_from_slice(&frame(b""));
    wire.extend_from_slice(&[0xCD, 0, 0, 0, 4]);
    wire.extend_from_slice(b"pong");
    let (first, rest) = wire.split_at(4);
    tx.send(Bytes::copy_from_slice(first)).await.unwrap();
    tx.send(Bytes::copy_from_slice(rest)).await.unwrap();
    let mut got = [0u8; 9];
    within("server read", conn.read_exact(&mut got))
        .await
        .unwrap();
    assert_eq!(&got, b"ping pong");

    // The client ends its body: the server reads end of stream.
    drop(tx);
    let mut rest = Vec::new();
    within("server reads to the end", conn.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(rest.is_empty());

    // The server ends its side: the response body ends.
    within("server shutdown write", conn.shutdown())
        .await
        .unwrap();
    loop {
        match within("response end", resp_body.frame()).await {
            None => break,
            Some(Ok(f)) => assert!(
                f.data_ref().is_none_or(|d| d.is_empty()),
                "unexpected bytes after the end: {f:?}"
            ),
            Some(Err(e)) => panic!("the response body failed instead of ending: {e}"),
        }
    }
    drop(conn);
    peer.stop().await;
}

#[tokio::test]
async fn metrics_count_deliveries_and_refusals() {
    let peer = Peer::start(Options::default()).await;
    let reg = &peer.registry;
    let mut c = H2c::connect(&peer.addr).await;

    // Five packets delivered (one of them from a body refused later on).
    let mut three = frame(b"one");
    three.extend_from_slice(&frame(b"two"));
    three.extend_from_slice(&frame(b""));
    assert_eq!(c.post_message(&three).await, StatusCode::OK);
    assert_eq!(c.post_message(&frame(b"four")).await, StatusCode::OK);
    assert_eq!(c.post_message(b"").await, StatusCode::OK);
    assert_eq!(
        c.post_message(&[0xCC, 0x00, 0x01, 0x78, 0x00, 0x00, 0x01, 0x79])
            .await,
        StatusCode::BAD_REQUEST
    );
    // Two more refused bodies.
    assert_eq!(
        c.post_message(&[0xCC, 0x00, 0x05, 0x68, 0x65]).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        status_with_open_body(&mut c, &[0xCD, 0xFF, 0xFF, 0xFF, 0xFF], 1024).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // An open stream.
    let (tx, body) = channel_body();
    let resp = c.request(Method::POST, STREAM_PATH, Some(CT), body).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let conn = within("accept", peer.transport.streams().accept())
        .await
        .unwrap();

    let text = reg.encode_text();
    println!("{text}");

    // Counted once each (the reference counts received packets twice).
    assert_eq!(metric(reg, "cluster_transport_rx_packets_total"), 5.0);
    assert_eq!(
        metric(reg, "cluster_transport_rx_bytes_total"),
        // "one", "two", "", "four", and 0x78 from the refused body.
        11.0
    );
    assert_eq!(
        metric(reg, "cluster_transport_rx_packets_failed_total"),
        3.0
    );
    // Refusals by reason (the malformed ones and the oversized one).
    assert_eq!(
        metric(
            reg,
            "cluster_transport_requests_refused_total{reason=\"malformed\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            reg,
            "cluster_transport_requests_refused_total{reason=\"packet_size\"}"
        ),
        1.0
    );
    assert_eq!(metric(reg, "cluster_transport_streams"), 1.0);
    // Nobody has taken the packets yet.
    assert_eq!(metric(reg, "cluster_transport_rx_packet_queue_length"), 5.0);
    let mut packets = peer.transport.packets();
    for _ in 0..5 {
        packets.try_recv().expect("a queued packet");
    }
    assert_eq!(metric(reg, "cluster_transport_rx_packet_queue_length"), 0.0);
    assert_eq!(metric(reg, "cluster_transport_tx_packet_queue_length"), 0.0);

    // Counters are counters, the rest gauges.
    for family in [
        "rx_packets",
        "rx_bytes",
        "rx_packets_failed",
        "tx_packets",
        "tx_bytes",
        "tx_packets_failed",
        "tx_packets_dropped",
        "stream_rx_packets",
        "stream_rx_bytes",
        "stream_rx_packets_failed",
        "stream_tx_packets",
        "stream_tx_bytes",
        "stream_tx_packets_failed",
    ] {
        let family = format!("cluster_transport_{family}");
        assert_eq!(
            metric_type(reg, &family).as_deref(),
            Some("counter"),
            "{family} in\n{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("{family}_total "))),
            "no {family}_total sample in\n{text}"
        );
    }
    for family in [
        "cluster_transport_streams",
        "cluster_transport_rx_packet_queue_length",
        "cluster_transport_tx_packet_queue_length",
    ] {
        assert_eq!(
            metric_type(reg, family).as_deref(),
            Some("gauge"),
            "{family} in\n{text}"
        );
    }

    drop(conn);
    drop(tx);
    assert_eq!(metric(reg, "cluster_transport_streams"), 0.0);
    peer.stop().await;
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

/// A stream's reader puts the byte pipe back together however the peer's
/// body chunks cut the frames: headers split across chunks (one byte at a
/// time too), empty frames, `0xCD` frames, several frames in one chunk.
#[tokio::test]
async fn stream_reads_reassemble_frames_cut_anywhere() {
    use tokio::io::AsyncReadExt;
    let peer = Peer::start(Options::default()).await;
    let mut streams = peer.transport.streams();
    let mut c = H2c::connect(&peer.addr).await;
    let payloads: Vec<Vec<u8>> = vec![
        b"hello".to_vec(),
        Vec::new(),
        (0..70_000u32).map(|i| (i % 253) as u8).collect(),
        b"x".to_vec(),
        Vec::new(),
        (0..300u32).map(|i| (i % 7) as u8).collect(),
    ];
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        if i % 2 == 1 {
            // The long form, legal for any length.
            wire.push(0xCD);
            wire.extend_from_slice(&(p.len() as u32).to_be_bytes());
            wire.extend_from_slice(p);
        } else {
            wire.extend_from_slice(&frame(p));
        }
        expected.extend_from_slice(p);
    }
    for cut in [1usize, 2, 3, 4, 5, 6, 7, 13, 4096, wire.len()] {
        let (tx, body) = channel_body();
        let resp = c.request(Method::POST, STREAM_PATH, Some(CT), body).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let mut conn = within("accept", streams.accept()).await.unwrap();
        let chunks: Vec<Bytes> = wire.chunks(cut).map(Bytes::copy_from_slice).collect();
        let writer = tokio::spawn(async move {
            for chunk in chunks {
                tx.send(chunk).await.unwrap();
            }
        });
        let mut got = Vec::new();
        within("read to end", conn.read_to_end(&mut got))
            .await
            .unwrap();
        assert!(
            got == expected,
            "cut every {cut} bytes: {} bytes back",
            got.len()
        );
        writer.await.unwrap();
    }
    peer.stop().await;
}
