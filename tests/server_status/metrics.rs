//! The transport metrics after deliveries, refusals and an open stream.

use super::{channel_body, frame, status_with_open_body, H2c, CT};
use crate::common::{metric, metric_type, within, Peer};
use gossiphttp::{Options, STREAM_PATH};
use hyper::{Method, StatusCode};

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
