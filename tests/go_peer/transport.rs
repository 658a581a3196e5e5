//! Our side of the wire with Go peers: our `Transport` relays their
//! traffic, `gossiphttp send` reaches them, and they answer as the
//! contract says.

use crate::common::go_peer::{self, GoPeerConfig};
use crate::common::Peer;
use crate::CONVERGE;
use gossiphttp::Options;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// memberlist's message types (its `messageType`, 0 ping .. 13 err).
const LAST_MESSAGE_TYPE: u8 = 13;
/// memberlist v0.5's label header type.
const LABEL_HEADER: u8 = 0xF4;

/// The memberlist message behind `label`'s header; panics naming what is
/// wrong if `bytes` are not a memberlist message labelled so.
fn memberlist_message<'a>(bytes: &'a [u8], label: Option<&str>) -> &'a [u8] {
    let message = match label {
        None => bytes,
        Some(label) => {
            let header = [&[LABEL_HEADER, label.len() as u8], label.as_bytes()].concat();
            assert!(
                bytes.starts_with(&header),
                "no label header {header:02x?}: {bytes:02x?}"
            );
            &bytes[header.len()..]
        }
    };
    assert!(
        message.first().is_some_and(|t| *t <= LAST_MESSAGE_TYPE),
        "not a memberlist message (type byte 0..={LAST_MESSAGE_TYPE}): {bytes:02x?}"
    );
    message
}

/// A Go peer x advertises the address of one of our `Transport`s, which
/// relays everything to x: another Go peer a then reaches x only through
/// our transport, both its packets (probes, gossip) and its streams
/// (push-pull). Every packet and stream must start as memberlist messages
/// do, and a must keep x alive, which it would not if our transport lost
/// or mangled what it carries.
async fn go_traffic_through_our_transport(label: Option<&str>) {
    let relay = Peer::start(Options::default()).await;
    // ckit's preset: no TCP-ping fallback, so that a's probes of x are
    // answered only if our transport relays the packets both ways.
    let labelled = |c: GoPeerConfig| {
        let c = c.preset("ckit");
        match label {
            Some(l) => c.label(l),
            None => c,
        }
    };
    let mut a = labelled(GoPeerConfig::fast("a")).spawn().await;
    let mut x = labelled(GoPeerConfig::fast("x"))
        .advertise(&relay.addr)
        .join([&a.addr])
        .spawn()
        .await;

    let packets = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    let stream_starts = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    let forward_packets = {
        let transport = relay.transport.clone();
        let mut inbox = relay.transport.packets();
        let packets = packets.clone();
        let to = x.bind.clone();
        tokio::spawn(async move {
            while let Some(packet) = inbox.recv().await {
                packets.lock().unwrap().push(packet.payload.to_vec());
                transport
                    .send(packet.payload, &to)
                    .await
                    .expect("relay a packet to x");
            }
        })
    };
    let start_len = label.map_or(0, |l| 2 + l.len()) + 1;
    let forward_streams = {
        let transport = relay.transport.clone();
        let mut streams = relay.transport.streams();
        let starts = stream_starts.clone();
        let to = x.bind.clone();
        tokio::spawn(async move {
            while let Some(mut from_a) = streams.accept().await {
                let mut to_x = transport
                    .dial(&to, Duration::from_secs(5))
                    .await
                    .expect("dial x");
                let starts = starts.clone();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    // Enough for the label header and the message type.
                    let mut first = vec![0u8; start_len];
                    if from_a.read_exact(&mut first).await.is_err() {
                        return;
                    }
                    starts.lock().unwrap().push(first.clone());
                    if to_x.write_all(&first).await.is_ok() {
                        let _ = tokio::io::copy_bidirectional(&mut from_a, &mut to_x).await;
                    }
                });
            }
        })
    };

    x.wait_event("joined", CONVERGE, |e| e["event"] == "joined")
        .await;
    // a's probes and gossip to x, and a's periodic push-pull with x (every
    // 2 s), all go through the relay.
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let (seen, streams) = (
            packets.lock().unwrap().len(),
            stream_starts.lock().unwrap().len(),
        );
        if seen >= 20 && streams >= 1 {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "our transport relayed {seen} packets and {streams} streams from a within {CONVERGE:?} (want 20 and 1)\n{}\n{}",
                a.report(),
                x.report()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    for packet in packets.lock().unwrap().iter() {
        memberlist_message(packet, label);
    }
    for start in stream_starts.lock().unwrap().iter() {
        memberlist_message(start, label);
    }
    let row = a.member("x").await.expect("a knows x");
    assert_eq!(row.address(), relay.addr, "a reaches x at our transport");
    assert_eq!(row.state, "alive", "{}", a.report());
    assert!(
        !a.events()
            .iter()
            .any(|e| e["event"] == "leave" && e["name"] == "x"),
        "a declared x dead while our transport relayed: {}",
        a.report()
    );

    forward_packets.abort();
    forward_streams.abort();
    relay.stop().await;
}

#[tokio::test]
async fn our_transport_carries_go_memberlist_packets_and_streams() {
    if !go_peer::available() {
        return;
    }
    go_traffic_through_our_transport(None).await;
}

#[tokio::test]
async fn our_transport_carries_labelled_go_memberlist_traffic() {
    if !go_peer::available() {
        return;
    }
    go_traffic_through_our_transport(Some("alloy-cluster")).await;
}

/// Runs `gossiphttp send` with `args`, asserting it succeeded.
fn gossiphttp_send(to: &str, payload: &[u8]) {
    let out = Command::new(env!("CARGO_BIN_EXE_gossiphttp"))
        .args(["send", "--to", to, "--hex", &hex::encode(payload)])
        .output()
        .expect("run gossiphttp send");
    assert!(
        out.status.success(),
        "gossiphttp send to {to}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// memberlist's user message type: the rest of the packet goes to the
/// delegate's NotifyMsg.
const USER_MSG: u8 = 8;

fn user_message(label: Option<&str>, body: &str) -> Vec<u8> {
    let mut packet = Vec::new();
    if let Some(label) = label {
        packet.extend([LABEL_HEADER, label.len() as u8]);
        packet.extend(label.as_bytes());
    }
    packet.push(USER_MSG);
    packet.extend(body.as_bytes());
    packet
}

#[tokio::test]
async fn gossiphttp_send_reaches_a_go_peer() {
    if !go_peer::available() {
        return;
    }
    let mut go = GoPeerConfig::fast("go").spawn().await;
    let body = r#"{"from":"rust","k":"greeting","v":"hello"}"#;
    gossiphttp_send(&go.addr, &user_message(None, body));
    let msg = go
        .wait_event("the user message", CONVERGE, |e| {
            e["event"] == "user_msg" && e["from"] == "rust"
        })
        .await;
    assert_eq!(msg["data"], body);
}

#[tokio::test]
async fn a_go_peer_takes_packets_with_its_label_only() {
    if !go_peer::available() {
        return;
    }
    let mut go = GoPeerConfig::fast("go").label("alpha").spawn().await;
    // The transport answers 200 either way (labels are memberlist's
    // business); the peer drops the packets that do not carry its label.
    gossiphttp_send(
        &go.addr,
        &user_message(Some("beta"), r#"{"from":"beta","k":"k","v":"v"}"#),
    );
    gossiphttp_send(
        &go.addr,
        &user_message(None, r#"{"from":"none","k":"k","v":"v"}"#),
    );
    gossiphttp_send(
        &go.addr,
        &user_message(Some("alpha"), r#"{"from":"alpha","k":"k","v":"v"}"#),
    );
    go.wait_event("the labelled user message", CONVERGE, |e| {
        e["event"] == "user_msg" && e["from"] == "alpha"
    })
    .await;
    go.wait_log(r#"packet with unacceptable label "beta""#, CONVERGE)
        .await;
    go.wait_log(r#"packet with unacceptable label """#, CONVERGE)
        .await;
    let delivered: Vec<_> = go
        .events()
        .iter()
        .filter(|e| e["event"] == "user_msg")
        .map(|e| e["from"].clone())
        .collect();
    assert_eq!(delivered, ["alpha"], "{}", go.report());
}

/// One request to a Go peer's transport routes, over HTTP/2 with prior
/// knowledge or HTTP/1.1, with a body that ends (`Some`) or stays open
/// (`None`); returns the answer's status and headers once they arrived.
async fn contract_request(
    addr: &str,
    http1: bool,
    path: &str,
    content_type: Option<&str>,
    body: Option<&[u8]>,
) -> (hyper::StatusCode, hyper::HeaderMap) {
    use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    type Body = BoxBody<bytes::Bytes, std::convert::Infallible>;

    let body: Body = match body {
        Some(bytes) => Full::new(bytes::Bytes::copy_from_slice(bytes)).boxed(),
        None => StreamBody::new(futures_util::stream::pending()).boxed(),
    };
    // HTTP/1.1 needs Host (Go answers 400 without it); h2 takes the URI's.
    let mut req = hyper::Request::post(format!("http://{addr}{path}"));
    if http1 {
        req = req.header(hyper::header::HOST, addr);
    }
    if let Some(ct) = content_type {
        req = req.header(hyper::header::CONTENT_TYPE, ct);
    }
    let req = req.body(body).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let exchange = async {
        let resp = if http1 {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .expect("HTTP/1.1 handshake");
            tokio::spawn(conn);
            sender.send_request(req).await
        } else {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                    .await
                    .expect("h2c handshake");
            tokio::spawn(conn);
            sender.send_request(req).await
        };
        let resp = resp.expect("an answer");
        (resp.status(), resp.headers().clone())
    };
    match tokio::time::timeout(go_peer::PEER_WAIT, exchange).await {
        Ok(answer) => answer,
        Err(_) => panic!("POST {path}: no answer within {:?}", go_peer::PEER_WAIT),
    }
}

/// One request of the contract check: what it is, whether over HTTP/1.1,
/// path, content type, body in hex, and the status it must get.
type Row = (
    &'static str,
    bool,
    &'static str,
    Option<&'static str>,
    &'static str,
    u16,
);

/// The Go peer speaks the contract as ../shared/PROTOCOL.md records the
/// reference's answers (what our own tests against it rely on).
#[tokio::test]
async fn the_go_peer_keeps_the_transport_contract() {
    if !go_peer::available() {
        return;
    }
    const MESSAGE: &str = "/api/v1/ckit/transport/message";
    const STREAM: &str = "/api/v1/ckit/transport/stream";
    const CT: Option<&str> = Some("application/x.ckit");
    let go = GoPeerConfig::fast("go").spawn().await;
    let rows: &[Row] = &[
        (
            "two frames",
            false,
            MESSAGE,
            CT,
            "cc0002087bcd00000002087d",
            200,
        ),
        ("an empty body", false, MESSAGE, CT, "", 200),
        ("a zero-length frame", false, MESSAGE, CT, "cc0000", 200),
        (
            "bad magic after a frame",
            false,
            MESSAGE,
            CT,
            "cc00010899",
            400,
        ),
        ("a truncated frame", false, MESSAGE, CT, "cc000908", 400),
        (
            "a 4 GiB 0xCD header",
            false,
            MESSAGE,
            CT,
            "cdffffffff08",
            413,
        ),
        (
            "a charset",
            false,
            MESSAGE,
            Some("application/x.ckit; charset=utf-8"),
            "cc000108",
            400,
        ),
        ("no content type", false, MESSAGE, None, "cc000108", 400),
        (
            "an unknown path",
            false,
            "/api/v1/ckit/transport/nope",
            CT,
            "",
            404,
        ),
        ("HTTP/1.1 /message", true, MESSAGE, CT, "cc000108", 505),
        ("HTTP/1.1 /stream", true, STREAM, CT, "", 505),
        ("a half-duplex /stream", false, STREAM, CT, "", 200),
    ];
    for (what, http1, path, ct, body, status) in rows {
        let body = hex::decode(body).unwrap();
        let (got, _) = contract_request(&go.addr, *http1, path, *ct, Some(&body)).await;
        assert_eq!(got.as_u16(), *status, "{what}");
    }
    // /stream answers its headers while the request body is still open:
    // a Go dialer waits for them before memberlist writes anything.
    let (got, headers) = contract_request(&go.addr, false, STREAM, CT, None).await;
    assert_eq!(got, hyper::StatusCode::OK);
    assert_eq!(headers[hyper::header::CONTENT_TYPE], "application/x.ckit");
}
