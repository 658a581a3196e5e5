//! Locked doors: CORS allowlist, the shared-secret token, mutual TLS, and
//! the HTTP/1.1 opt-in for runtimes whose fetch cannot speak HTTP/2.

mod common;

use bytes::Bytes;
use common::{metric, served};
use gossiphttp::{ClientTls, Error, Options, ServerTls, Transport, MESSAGE_PATH, STREAM_PATH};
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

/// One request over a fresh h2c (or, with `http1`, HTTP/1.1) connection.
async fn request(
    addr: &str,
    http1: bool,
    req: Request<Full<Bytes>>,
) -> (StatusCode, hyper::HeaderMap, Bytes) {
    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let resp = if http1 {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        send.send_request(req).await.unwrap()
    } else {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(conn);
        send.send_request(req).await.unwrap()
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = timeout(WAIT, resp.into_body().collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    (status, headers, body)
}

/// Asserts that `to`'s next packet carries `payload`.
async fn assert_next_packet(to: &Transport, payload: &[u8]) {
    let p = timeout(WAIT, to.packets().recv()).await.unwrap().unwrap();
    assert_eq!(&p.payload[..], payload);
}

/// Sends `payload` from `from` to `addr` (served by `to`) and asserts that
/// it arrives there.
async fn assert_delivered(from: &Transport, to: &Transport, addr: &str, payload: &'static [u8]) {
    from.send(Bytes::from_static(payload), addr).await.unwrap();
    assert_next_packet(to, payload).await;
}

fn post(addr: &str, path: &str, body: &'static [u8]) -> hyper::http::request::Builder {
    Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/x.ckit")
        .header("host", addr)
        .header("x-body-len", body.len())
}

#[tokio::test]
async fn cors_allows_listed_origins_only() {
    let mut opts = Options::default();
    opts.cors_allowed_origins = vec!["https://app.example".into()];
    let (t, _server, addr) = served(opts).await;

    // Preflight from the allowed origin.
    let req = Request::options(format!("http://{addr}{MESSAGE_PATH}"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .body(Full::default())
        .unwrap();
    let (status, h, _) = request(&addr, false, req).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(h["access-control-allow-origin"], "https://app.example");
    assert_eq!(h["access-control-allow-methods"], "POST");
    assert!(h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("content-type"));

    // The real request from it is served and readable by the page.
    let req = post(&addr, MESSAGE_PATH, b"")
        .header("origin", "https://app.example")
        .body(Full::new(Bytes::from_static(b"\xcc\x00\x02hi")))
        .unwrap();
    let (status, h, _) = request(&addr, false, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h["access-control-allow-origin"], "https://app.example");
    assert_next_packet(&t, b"hi").await;

    // Another origin is refused, preflight and request alike, and nothing
    // is delivered.
    for method in ["OPTIONS", "POST"] {
        let req = post(&addr, MESSAGE_PATH, b"")
            .method(method)
            .header("origin", "https://evil.example")
            .body(Full::new(Bytes::from_static(b"\xcc\x00\x01x")))
            .unwrap();
        let (status, h, _) = request(&addr, false, req).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method}");
        assert!(!h.contains_key("access-control-allow-origin"));
    }
    assert!(t.packets().try_recv().is_none());
    assert_eq!(
        metric(
            t.metrics(),
            "cluster_transport_requests_refused_total{reason=\"origin\"}"
        ),
        2.0
    );
}

#[tokio::test]
async fn without_cors_configured_origin_is_ignored_and_no_cors_headers_are_sent() {
    let (_t, _server, addr) = served(Options::default()).await;
    let req = post(&addr, MESSAGE_PATH, b"")
        .header("origin", "https://any.example")
        .body(Full::default())
        .unwrap();
    let (status, h, _) = request(&addr, false, req).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!h.contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn the_shared_secret_is_required_when_set() {
    let mut opts = Options::default();
    opts.auth_token = Some("s3cret".into());
    let (t, _server, addr) = served(opts.clone()).await;

    for auth in [None, Some("Bearer wrong"), Some("s3cret")] {
        let mut req = post(&addr, MESSAGE_PATH, b"");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let (status, _, _) = request(
            &addr,
            false,
            req.body(Full::new(Bytes::from_static(b"\xcc\x00\x01x")))
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
    }
    assert!(
        t.packets().try_recv().is_none(),
        "a refused request delivered a packet"
    );

    // A transport with the same token gets through; one without is refused.
    let (good, _) = Transport::new(opts).unwrap();
    assert_delivered(&good, &t, &addr, b"ok").await;
    let (bad, _) = Transport::new(Options::default()).unwrap();
    assert!(matches!(
        bad.send(Bytes::from_static(b"no"), &addr).await,
        Err(Error::Status { status: 401, .. })
    ));
    assert!(matches!(
        bad.dial(&addr, WAIT).await,
        Err(Error::Status { status: 401, .. })
    ));
    let mut opts = Options::default();
    opts.auth_token = Some("has space".into());
    assert!(matches!(Transport::new(opts), Err(Error::Config(_))));
}

#[tokio::test]
async fn http1_is_refused_by_default_and_accepted_when_opted_in() {
    let (_t, _server, addr) = served(Options::default()).await;
    let req = post(&addr, MESSAGE_PATH, b"")
        .body(Full::default())
        .unwrap();
    assert_eq!(
        request(&addr, true, req).await.0,
        StatusCode::HTTP_VERSION_NOT_SUPPORTED
    );

    let mut opts = Options::default();
    opts.accept_http1 = true;
    let (t, _server, addr) = served(opts).await;
    let req = post(&addr, MESSAGE_PATH, b"")
        .body(Full::new(Bytes::from_static(
            b"\xcc\x00\x03one\xcc\x00\x03two",
        )))
        .unwrap();
    assert_eq!(request(&addr, true, req).await.0, StatusCode::OK);
    let mut packets = t.packets();
    assert_eq!(&packets.recv().await.unwrap().payload[..], b"one");
    assert_eq!(&packets.recv().await.unwrap().payload[..], b"two");

    // A half-duplex stream exchange over HTTP/1.1: the request body ends,
    // then the server's frames come back.
    let mut streams = t.streams();
    let echo = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut conn = streams.accept().await.unwrap();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).await.unwrap();
        conn.write_all(&got).await.unwrap();
        conn.shutdown().await.unwrap();
    });
    let req = post(&addr, STREAM_PATH, b"")
        .body(Full::new(Bytes::from_static(b"\xcc\x00\x04ping")))
        .unwrap();
    let (status, _, body) = request(&addr, true, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], b"\xcc\x00\x04ping");
    echo.await.unwrap();
}

/// The HTTP/1.1 client extension: packets (many, so several requests run
/// on pooled keep-alive connections) and a stream reach a server that
/// accepts HTTP/1.1, over cleartext and TLS; a server that does not answers
/// `505`, reported as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_client_reaches_a_server_that_accepts_http1() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut client = Options::default();
    client.client_http1 = true;
    let (a, _) = Transport::new(client).unwrap();

    let mut opts = Options::default();
    opts.accept_http1 = true;
    let (b, b_server, b_addr) = served(opts).await;
    let mut packets = b.packets();
    for i in 0..300u32 {
        a.write_to(Bytes::from(i.to_be_bytes().to_vec()), &b_addr)
            .unwrap();
    }
    let big = Bytes::from(vec![7u8; 200_000]);
    a.send(big.clone(), &b_addr).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 301 {
        let p = timeout(WAIT, packets.recv()).await.unwrap().unwrap();
        got.push(p.payload);
    }
    let mut small: Vec<u32> = got
        .iter()
        .filter(|p| p.len() == 4)
        .map(|p| u32::from_be_bytes(p[..].try_into().unwrap()))
        .collect();
    small.sort();
    assert_eq!(small, (0..300).collect::<Vec<_>>());
    assert!(got.contains(&big));

    // A stream: what goes out comes back, while the request is still open.
    let mut streams = b.streams();
    let echo = tokio::spawn(async move {
        let mut conn = streams.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        loop {
            let n = conn.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            conn.write_all(&buf[..n]).await.unwrap();
        }
        conn.shutdown().await.unwrap();
    });
    let mut conn = a.dial(&b_addr, WAIT).await.unwrap();
    conn.write_all(b"ping").await.unwrap();
    conn.flush().await.unwrap();
    let mut back = [0u8; 4];
    timeout(WAIT, conn.read_exact(&mut back))
        .await
        .expect("no echo while the HTTP/1.1 request body is open")
        .unwrap();
    assert_eq!(&back, b"ping");
    conn.shutdown().await.unwrap();
    let mut rest = Vec::new();
    timeout(WAIT, conn.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.is_empty());
    timeout(WAIT, echo).await.unwrap().unwrap();

    // The same over TLS (ALPN http/1.1).
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let mut tls = Options::default();
    tls.accept_http1 = true;
    tls.server_tls = Some(
        ServerTls::from_der(
            vec![cert.cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der())),
        )
        .unwrap(),
    );
    let (c, c_server, c_addr) = served(tls).await;
    let mut client = Options::default();
    client.client_http1 = true;
    client.client_tls = Some(ClientTls::from_roots(vec![cert.cert.der().clone()]).unwrap());
    let (a_tls, _) = Transport::new(client).unwrap();
    assert_delivered(&a_tls, &c, &c_addr, b"over tls").await;

    // On the wire: origin-form request line and a Host header, as HTTP/1.1
    // servers (workerd among them) require.
    let raw = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let raw_addr = raw.local_addr().unwrap().to_string();
    let head = tokio::spawn(async move {
        let (mut conn, _) = raw.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed inside the request head");
            head.extend_from_slice(&buf[..n]);
        }
        conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        String::from_utf8_lossy(&head).to_lowercase()
    });
    a.send(Bytes::from_static(b"raw"), &raw_addr).await.unwrap();
    let head = timeout(WAIT, head).await.unwrap().unwrap();
    assert!(
        head.starts_with("post /api/v1/ckit/transport/message http/1.1\r\n"),
        "{head}"
    );
    assert!(
        head.contains(&format!("\r\nhost: {raw_addr}\r\n")),
        "{head}"
    );

    // A server without the opt-in answers 505, as the reference does.
    let (d, d_server, d_addr) = served(Options::default()).await;
    match a.send(Bytes::from_static(b"x"), &d_addr).await {
        Err(Error::Status { status: 505, .. }) => {}
        other => panic!("expected 505, got {other:?}"),
    }

    for t in [a, a_tls, b, c, d] {
        timeout(WAIT, t.shutdown()).await.unwrap();
    }
    for s in [b_server, c_server, d_server] {
        timeout(WAIT, s.shutdown()).await.unwrap();
    }
}

struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

fn ca(name: &str) -> Ca {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca { cert, key }
}

fn leaf(ca: &Ca, name: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (
        vec![CertificateDer::from(cert.der().to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

/// Asserts that a packet from `from` to `addr` fails while connecting (the
/// server's TLS handshake refused the client).
async fn assert_refused_at_handshake(from: &Transport, addr: &str) {
    let err = from.send(Bytes::from_static(b"x"), addr).await.unwrap_err();
    assert!(
        matches!(err, Error::Connect { .. } | Error::Http { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn mutual_tls_refuses_clients_without_a_good_certificate() {
    let server_ca = ca("server ca");
    let client_ca = ca("client ca");
    let other_ca = ca("other ca");
    let server_root = CertificateDer::from(server_ca.cert.der().to_vec());
    let client_root = CertificateDer::from(client_ca.cert.der().to_vec());

    let (chain, key) = leaf(&server_ca, "127.0.0.1");
    let mut opts = Options::default();
    opts.server_tls =
        Some(ServerTls::from_der_with_client_auth(chain, key, vec![client_root]).unwrap());
    let (t, _server, addr) = served(opts).await;

    let client = |tls: ClientTls| {
        let mut o = Options::default();
        o.client_tls = Some(tls);
        o.packet_timeout = Duration::from_secs(3);
        Transport::new(o).unwrap().0
    };

    // No client certificate: refused at the handshake.
    let none = client(ClientTls::from_roots(vec![server_root.clone()]).unwrap());
    assert_refused_at_handshake(&none, &addr).await;

    // A certificate from another CA: refused.
    let (c, k) = leaf(&other_ca, "intruder");
    let other =
        client(ClientTls::from_roots_with_client_cert(vec![server_root.clone()], c, k).unwrap());
    assert_refused_at_handshake(&other, &addr).await;
    assert!(t.packets().try_recv().is_none());

    // A good one: packets and streams work.
    let (c, k) = leaf(&client_ca, "peer");
    let good = client(ClientTls::from_roots_with_client_cert(vec![server_root], c, k).unwrap());
    assert_delivered(&good, &t, &addr, b"welcome").await;
    good.dial(&addr, WAIT).await.unwrap();
}
