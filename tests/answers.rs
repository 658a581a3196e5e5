//! Answers in responses, between two real transports on loopback: a ping
//! sent with `write_to_awaiting_answer` gets its ack back in the response
//! to its own request, and the peer makes no request of its own for it;
//! an ack that comes too late (past the server's hold of a second), or a
//! peer that does not answer so, takes the usual way and is delivered all
//! the same.

mod common;

use bytes::Bytes;
use common::metrics::metric;
use common::{within, Peer};
use gossiphttp::Options;
use std::time::Duration;

/// A peer whose advertised address is its listening one.
async fn peer(options: Options) -> Peer {
    let peer = Peer::start(options).await;
    let port = peer.addr.rsplit(':').next().unwrap().parse().unwrap();
    peer.transport
        .final_advertise_addr("127.0.0.1", port)
        .unwrap();
    peer
}

/// Acks every ping `peer` receives to `to`, after `delay`.
fn ack_pings(peer: &Peer, to: String, delay: Duration) {
    let transport = peer.transport.clone();
    let mut packets = peer.transport.packets();
    tokio::spawn(async move {
        while let Some(p) = packets.recv().await {
            if &p.payload[..] == b"ping" {
                tokio::time::sleep(delay).await;
                transport.write_to(Bytes::from_static(b"ack"), &to).unwrap();
            }
        }
    });
}

/// Pings `b` from `a` and waits for the ack.
async fn probe(a: &Peer, b: &Peer) {
    let mut packets = a.transport.packets();
    a.transport
        .write_to_awaiting_answer(Bytes::from_static(b"ping"), &b.addr)
        .unwrap();
    let ack = within("the ack", packets.recv()).await.unwrap();
    assert_eq!(&ack.payload[..], b"ack");
    // The sender's TCP address: its listening one when the ack rode the
    // answer on our connection to it, an ephemeral one otherwise.
    assert!(ack.from.ip().is_loopback());
}

/// Pings `b` from `a`, and checks the ack came the usual way: a request
/// of `b`'s own, nothing in an answer.
async fn probe_the_usual_way(a: Peer, b: Peer) {
    probe(&a, &b).await;
    for (peer, series) in [
        (&b, "cluster_transport_tx_packets_in_answers_total"),
        (&a, "cluster_transport_rx_packets_in_answers_total"),
    ] {
        assert_eq!(metric(&peer.registry, series), 0.0, "{series}");
    }
    assert_eq!(b.transport.active_peers(), 1);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_probe_between_gossiphttp_peers_is_one_request() {
    // A peer that had a packet within the linger gets a lingering body,
    // whose answer would wait for its end: such a body asks for none.
    let mut short_linger = Options::default();
    short_linger.message_body_linger = Duration::from_millis(100);
    let (a, b) = (peer(short_linger).await, peer(Options::default()).await);
    ack_pings(&b, a.addr.clone(), Duration::ZERO);
    for round in 1..=3 {
        probe(&a, &b).await;
        // Every ack rode an answer: `b` never had a packet to send `a`.
        for (peer, series) in [
            (&b, "cluster_transport_tx_packets_in_answers_total"),
            (&a, "cluster_transport_rx_packets_in_answers_total"),
            (&b, "cluster_transport_tx_packets_total"),
            (&a, "cluster_transport_rx_packets_total"),
        ] {
            assert_eq!(metric(&peer.registry, series), round as f64, "{series}");
        }
        assert_eq!(b.transport.active_peers(), 0);
        // Spaced past the linger, so that each ping finds `b` quiet and
        // goes in a request of its own.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_late_ack_takes_the_usual_way() {
    let (a, b) = (
        peer(Options::default()).await,
        peer(Options::default()).await,
    );
    // The server holds its answer a second at most.
    ack_pings(&b, a.addr.clone(), Duration::from_millis(1300));
    probe_the_usual_way(a, b).await;
}

#[tokio::test]
async fn either_side_can_turn_it_off() {
    let mut off = Options::default();
    off.answers_in_responses = false;
    for (a_options, b_options) in [(off.clone(), Options::default()), (Options::default(), off)] {
        let (a, b) = (peer(a_options).await, peer(b_options).await);
        ack_pings(&b, a.addr.clone(), Duration::ZERO);
        probe_the_usual_way(a, b).await;
    }
}

#[tokio::test]
async fn a_transport_with_no_advertised_address_asks_for_nothing() {
    let a = Peer::start(Options::default()).await;
    let b = peer(Options::default()).await;
    ack_pings(&b, a.addr.clone(), Duration::ZERO);
    probe_the_usual_way(a, b).await;
}
