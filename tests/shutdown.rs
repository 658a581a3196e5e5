//! Shutdown: endpoints refuse, open streams end on both sides, sends fail
//! loudly, received packets stay readable, and it all finishes promptly.

mod common;

use bytes::Bytes;
use common::served;
use gossiphttp::{Error, Options, Transport};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn shutdown_closes_streams_on_both_sides() {
    let (a, a_server, _) = served(Options::default()).await;
    let (b, b_server, b_addr) = served(Options::default()).await;
    let mut streams = b.streams();
    let mut dialed = a.dial(&b_addr, WAIT).await.unwrap();
    dialed.write_all(b"hello").await.unwrap();
    let mut accepted = timeout(WAIT, streams.accept()).await.unwrap().unwrap();
    let mut buf = [0u8; 5];
    accepted.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hello");

    // B shuts down: its side of the stream fails, and A's side sees the end.
    timeout(WAIT, b.shutdown()).await.expect("shutdown hung");
    let err = accepted.write_all(b"late").await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionAborted);
    assert!(accepted.read(&mut buf).await.is_err());
    let mut rest = Vec::new();
    let end = timeout(WAIT, dialed.read_to_end(&mut rest))
        .await
        .expect("dialer never saw the end");
    assert!(rest.is_empty(), "unexpected bytes {rest:?} ({end:?})");

    // New streams and packets to B are refused with 503.
    match a.dial(&b_addr, WAIT).await {
        Err(Error::Status { status: 503, .. }) => {}
        other => panic!("expected 503, got {other:?}"),
    }
    match a.send(Bytes::from_static(b"x"), &b_addr).await {
        Err(Error::Status { status: 503, .. }) => {}
        other => panic!("expected 503, got {other:?}"),
    }
    assert!(
        b.streams().accept().await.is_none(),
        "streams() must end after shutdown"
    );

    a.shutdown().await;
    a_server.shutdown().await;
    timeout(WAIT, b_server.shutdown())
        .await
        .expect("server shutdown hung");
}

#[tokio::test]
async fn after_shutdown_sends_fail_and_received_packets_stay_readable() {
    let (a, a_server, a_addr) = served(Options::default()).await;
    let (b, b_server, _) = served(Options::default()).await;
    for i in 0..3u8 {
        b.send(Bytes::from(vec![i]), &a_addr).await.unwrap();
    }
    timeout(WAIT, a.shutdown()).await.unwrap();
    let mut packets = a.packets();
    for i in 0..3u8 {
        assert_eq!(&packets.recv().await.unwrap().payload[..], &[i]);
    }
    assert!(
        packets.recv().await.is_none(),
        "packets() must end once drained"
    );
    assert!(matches!(
        a.write_to(Bytes::from_static(b"x"), &a_addr),
        Err(Error::Shutdown)
    ));
    assert!(matches!(a.dial(&a_addr, WAIT).await, Err(Error::Shutdown)));
    b.shutdown().await;
    a_server.shutdown().await;
    b_server.shutdown().await;
}

#[tokio::test]
async fn write_to_refuses_bad_input_clearly() {
    let mut opts = Options::default();
    opts.max_packet_size = 16;
    let (t, _) = Transport::new(opts).unwrap();
    assert!(matches!(
        t.write_to(Bytes::from(vec![0; 17]), "127.0.0.1:1"),
        Err(Error::PacketTooLarge { len: 17, max: 16 })
    ));
    for bad in ["nohost", "127.0.0.1", "[::1", "ftp://x:1", "h:99999"] {
        assert!(
            matches!(
                t.write_to(Bytes::new(), bad),
                Err(Error::InvalidAddress { .. })
            ),
            "{bad} accepted"
        );
    }
    let mut bad = Options::default();
    bad.peer_queue_size = 0;
    assert!(matches!(Transport::new(bad), Err(Error::Config(_))));
}

/// A count past any real deployment is refused with an error naming it,
/// never a panic or an allocation failure (`max_peer_connections =
/// usize::MAX` reached a tokio semaphore, which panics past 2^61 permits;
/// `packet_queue_size = 2^30` allocated 94 GB up front).
#[tokio::test]
async fn absurd_counts_are_refused_not_panicked_on() {
    type Set = fn(&mut Options, usize);
    let counts: [(&str, Set); 8] = [
        ("peer_queue_size", |o, v| o.peer_queue_size = v),
        ("packet_queue_size", |o, v| o.packet_queue_size = v),
        ("stream_queue_size", |o, v| o.stream_queue_size = v),
        ("max_in_flight_per_peer", |o, v| {
            o.max_in_flight_per_peer = v
        }),
        ("max_connections", |o, v| o.max_connections = v),
        ("max_accepted_connections", |o, v| {
            o.max_accepted_connections = v
        }),
        ("max_peer_connections", |o, v| o.max_peer_connections = v),
        ("max_streams", |o, v| o.max_streams = v),
    ];
    for (name, set) in counts {
        let mut options = Options::default();
        set(&mut options, usize::MAX);
        match Transport::new(options.clone()) {
            Err(Error::Config(why)) => assert!(why.contains(name), "{name}: {why}"),
            other => panic!("{name} = usize::MAX: {:?}", other.map(|_| ())),
        }
        assert!(
            matches!(gossiphttp::Client::new(&options), Err(Error::Config(_))),
            "{name}"
        );
        // The largest accepted value builds.
        set(&mut options, 1 << 20);
        assert!(Transport::new(options).is_ok(), "{name} = 2^20");
    }
    // A byte budget, not a count: any size builds (buffers are taken as
    // packets need them).
    let mut options = Options::default();
    options.max_batch_bytes = usize::MAX;
    assert!(Transport::new(options).is_ok());
}

/// `Server::shutdown_with` shuts the transport down first, so an open
/// stream and an open `/message` body end at once instead of holding the
/// server's graceful close (up to 5 s) open; then the server closes.
#[tokio::test]
async fn shutdown_with_ends_open_exchanges_and_then_the_server() {
    let (a, a_server, _) = served(Options::default()).await;
    let (b, b_server, b_addr) = served(Options::default()).await;
    let mut streams = b.streams();
    let mut dialed = a.dial(&b_addr, WAIT).await.unwrap();
    dialed.write_all(b"hi").await.unwrap();
    let mut accepted = timeout(WAIT, streams.accept()).await.unwrap().unwrap();
    // The application reads its stream until it fails, then drops it.
    let app = tokio::spawn(async move {
        let mut buf = [0u8; 64];
        loop {
            match accepted.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.kind()),
            }
        }
    });
    // A /message body left open (as a lingering sender's is), one packet in.
    let (mut open_body, body_status) = open_message_body(&b_addr).await;
    open_body
        .send_data(Bytes::from_static(b"\xcc\x00\x01!"), false)
        .unwrap();
    let mut packets = b.packets();
    let first = timeout(WAIT, packets.recv()).await.unwrap().unwrap();
    assert_eq!(&first.payload[..], b"!");

    let started = std::time::Instant::now();
    timeout(WAIT, b_server.shutdown_with(&b))
        .await
        .expect("shutdown_with hung");
    let took = started.elapsed();
    assert!(b.is_shutdown());
    assert_eq!(
        timeout(WAIT, body_status).await.unwrap(),
        Some(503),
        "the open /message body is answered 503"
    );
    let mut rest = Vec::new();
    timeout(WAIT, dialed.read_to_end(&mut rest))
        .await
        .expect("the dialer never saw the stream end")
        .ok();
    assert!(rest.is_empty(), "unexpected bytes {rest:?}");
    assert!(
        timeout(WAIT, app).await.unwrap().unwrap().is_err(),
        "the accepted stream's reader was not told of the shutdown"
    );
    assert!(
        tokio::net::TcpStream::connect(&b_addr).await.is_err(),
        "the listener still accepts"
    );
    // The graceful close waits up to 5 s for open requests: the transport
    // going first ended them, so nothing was left to wait for.
    assert!(
        took < Duration::from_secs(4),
        "shutdown_with waited out the graceful close ({took:?}): open exchanges held it"
    );
    a.shutdown().await;
    a_server.shutdown().await;
}

/// A `/message` request whose body stays open: its sender, and the status
/// it is answered (`None` if the stream broke instead).
async fn open_message_body(
    addr: &str,
) -> (
    h2::SendStream<Bytes>,
    impl std::future::Future<Output = Option<u16>>,
) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut client = client.ready().await.unwrap();
    let req = http::Request::post(format!("http://{addr}{}", gossiphttp::MESSAGE_PATH))
        .header("content-type", gossiphttp::CONTENT_TYPE)
        .body(())
        .unwrap();
    let (response, send) = client.send_request(req, false).unwrap();
    (send, async move {
        response.await.ok().map(|r| r.status().as_u16())
    })
}
