use super::*;
use crate::native::metrics::Metrics;
use crate::Packet;
use http_body_util::Full;
use tokio_util::sync::CancellationToken;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn the_header_is_honoured_only_for_the_requests_own_ip() {
    let remote = addr("10.0.0.7:51234");
    assert_eq!(
        reply_to(b"10.0.0.7:7946", remote),
        Some(addr("10.0.0.7:7946"))
    );
    // Another IP: a client may not ask for packets meant for someone else,
    // and a request through a proxy asks for nothing.
    assert_eq!(reply_to(b"10.0.0.8:7946", remote), None);
    // IPv4 as the request came over an IPv6 socket.
    let mapped = addr("[::ffff:10.0.0.7]:51234");
    assert_eq!(
        reply_to(b"10.0.0.7:7946", mapped),
        Some(addr("10.0.0.7:7946"))
    );
    let v6 = addr("[fd00::1]:5000");
    assert_eq!(
        reply_to(b"[fd00::1]:7946", v6),
        Some(addr("[fd00::1]:7946"))
    );
    for bad in [
        &b"10.0.0.7"[..],
        b"10.0.0.7:0",
        b"node-1:7946",
        b"10.0.0.7:7946 ",
        b"\xff\xfe",
        b"",
    ] {
        assert_eq!(reply_to(bad, remote), None, "{bad:?}");
    }
    let long = format!("10.0.0.7:7946{}", " ".repeat(100));
    assert_eq!(reply_to(long.as_bytes(), remote), None);
}

#[tokio::test]
async fn a_packet_for_an_open_mailbox_rides_the_answer() {
    let answers = Answers::default();
    let ack = Bytes::from_static(b"ack");
    // Nothing open: the usual way.
    assert!(!answers.offer("10.0.0.7:7946", &ack, 1 << 10));
    let held = answers.open(addr("10.0.0.7:7946")).unwrap();
    // One mailbox per address at a time.
    assert!(answers.open(addr("10.0.0.7:7946")).is_none());
    assert!(!answers.offer("10.0.0.8:7946", &ack, 1 << 10));
    assert!(!answers.offer("not an address", &ack, 1 << 10));
    assert!(answers.offer("10.0.0.7:7946", &ack, 1 << 10));
    let frames = held
        .collect(Duration::from_secs(3600), &CancellationToken::new())
        .await;
    assert_eq!(&frames[..], b"\xcc\x00\x03ack");
    // Closed: later packets take the usual way, and it may open again.
    assert!(!answers.offer("10.0.0.7:7946", &ack, 1 << 10));
    assert_eq!(answers.open.load(Ordering::Relaxed), 0);
    assert!(answers.open(addr("10.0.0.7:7946")).is_some());
}

#[tokio::test]
async fn a_mailbox_holds_at_most_its_packets_and_bytes() {
    let answers = Answers::default();
    let held = answers.open(addr("10.0.0.7:7946")).unwrap();
    let packet = Bytes::from_static(&[7; 10]);
    // 13 bytes a frame: two fit in 30.
    assert!(answers.offer("10.0.0.7:7946", &packet, 30));
    assert!(answers.offer("10.0.0.7:7946", &packet, 30));
    assert!(!answers.offer("10.0.0.7:7946", &packet, 30));
    drop(held);
    let held = answers.open(addr("10.0.0.7:7946")).unwrap();
    for _ in 0..MAX_ANSWER_PACKETS {
        assert!(answers.offer("10.0.0.7:7946", &packet, 1 << 20));
    }
    assert!(!answers.offer("10.0.0.7:7946", &packet, 1 << 20));
    let frames = held
        .collect(Duration::ZERO, &CancellationToken::new())
        .await;
    assert_eq!(frames.len(), MAX_ANSWER_PACKETS * 13);
}

#[tokio::test]
async fn a_mailbox_dropped_uncollected_is_closed() {
    let answers = Answers::default();
    let held = answers.open(addr("10.0.0.7:7946")).unwrap();
    assert!(answers.offer("10.0.0.7:7946", &Bytes::from_static(b"x"), 1 << 10));
    drop(held);
    assert_eq!(answers.open.load(Ordering::Relaxed), 0);
    assert!(!answers.offer("10.0.0.7:7946", &Bytes::from_static(b"y"), 1 << 10));
}

#[tokio::test(start_paused = true)]
async fn the_answer_waits_for_the_first_packet_and_no_longer_than_told() {
    let answers = Arc::new(Answers::default());
    // Nothing comes: empty after the wait, in virtual time.
    let start = tokio::time::Instant::now();
    let held = answers.open(addr("10.0.0.7:7946")).unwrap();
    assert!(held
        .collect(ANSWER_WAIT, &CancellationToken::new())
        .await
        .is_empty());
    assert_eq!(start.elapsed(), ANSWER_WAIT);
    // Shutdown ends it at once.
    let start = tokio::time::Instant::now();
    let shutdown = CancellationToken::new();
    shutdown.cancel();
    let held = answers.open(addr("10.0.0.7:7946")).unwrap();
    assert!(held.collect(ANSWER_WAIT, &shutdown).await.is_empty());
    assert_eq!(start.elapsed(), Duration::ZERO);
    // A packet 5 ms in ends the wait then.
    let start = tokio::time::Instant::now();
    let later = answers.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(later.offer("10.0.0.7:7946", &Bytes::from_static(b"ack"), 1 << 10));
    });
    let held = answers.open(addr("10.0.0.7:7946")).unwrap();
    assert_eq!(
        &held.collect(ANSWER_WAIT, &CancellationToken::new()).await[..],
        b"\xcc\x00\x03ack"
    );
    assert_eq!(start.elapsed(), Duration::from_millis(5));
}

fn answer_to(max_packet_size: usize) -> (AnswerTo, async_channel::Receiver<Packet>, Metrics) {
    let (tx, rx) = async_channel::bounded(64);
    let metrics = Metrics::default();
    let inbox = Inbox::new(tx, metrics.clone(), CancellationToken::new());
    let to = AnswerTo {
        reply_to: addr("127.0.0.1:7000"),
        inbox: Arc::new(inbox),
        max_packet_size,
    };
    (to, rx, metrics)
}

#[tokio::test]
async fn answers_are_delivered_as_packets_from_the_peer() {
    let (to, rx, metrics) = answer_to(1024);
    let from = addr("127.0.0.1:8000");
    let body = Full::new(Bytes::from_static(b"\xcc\x00\x01a\xcc\x00\x02bc"));
    read_answers(body, &to, from).await.unwrap();
    let got: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert_eq!(got.len(), 2);
    assert_eq!((&got[0].payload[..], got[0].from), (&b"a"[..], from));
    assert_eq!(&got[1].payload[..], b"bc");
    assert_eq!(metrics.rx_packets.get(), 2);
    assert_eq!(metrics.rx_packets_in_answers.get(), 2);
    // An empty body (a Go peer's answer) is no answer, and no error.
    read_answers(Full::new(Bytes::new()), &to, from)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_hostile_answer_is_cut_off_with_its_reason() {
    let (to, rx, _) = answer_to(4);
    let from = addr("127.0.0.1:8000");
    // A good frame, then a bad magic byte.
    let bad = Full::new(Bytes::from_static(b"\xcc\x00\x01a\x00"));
    assert!(read_answers(bad, &to, from).await.is_err());
    assert_eq!(rx.try_recv().unwrap().payload, Bytes::from_static(b"a"));
    // Over the packet size, announced before any of it is read.
    let large = Full::new(Bytes::from_static(b"\xcd\xff\xff\xff\xff"));
    assert!(read_answers(large, &to, from).await.is_err());
    // Truncated.
    let short = Full::new(Bytes::from_static(b"\xcc\x00\x03ab"));
    assert!(read_answers(short, &to, from).await.is_err());
    // More packets than an answer carries.
    let many = Bytes::from(b"\xcc\x00\x01z".repeat(MAX_ANSWER_PACKETS + 1));
    let err = read_answers(Full::new(many), &to, from).await.unwrap_err();
    assert!(err.contains("more than"), "{err}");
    assert!(rx.try_recv().is_ok());
}
