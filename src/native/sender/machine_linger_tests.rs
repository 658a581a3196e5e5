//! The sender's lingering bodies under virtual time: when a body stays
//! open for more batches, when it ends (quiet for the linger, its max age,
//! a waiter), and which peers get one (a busy peer's, not a lone packet
//! after a quiet spell).

use super::tests::{limits, open, Peer, BODY_MAX_AGE, IDLE, LINGER, MS, PACKET_TIMEOUT};
use super::*;

#[test]
fn a_body_lingers_for_more_batches_and_ends_when_quiet_for_the_linger() {
    let t0 = Instant::now();
    let mut peer = Peer::new(limits(), t0);
    peer.write(10, t0);
    let opened = open(0, PACKET_TIMEOUT + BODY_MAX_AGE);
    assert_eq!(peer.pump(t0), [(opened, vec![10])]);
    assert_eq!(peer.sender.open_body(), Some(0));
    assert_eq!(peer.sender.poll_timeout(), t0 + LINGER);

    peer.write(20, t0 + 50 * MS);
    assert_eq!(
        peer.pump(t0 + 50 * MS),
        [(Route::Push { lane: 0 }, vec![20])]
    );
    // Due at the linger after the body opened, the check finds a write
    // since and looks again at the linger after that write.
    assert_eq!(peer.sender.handle_timeout(t0 + LINGER), Timeout::Nothing);
    assert_eq!(peer.sender.open_body(), Some(0));
    assert_eq!(peer.sender.poll_timeout(), t0 + 150 * MS);
    assert_eq!(peer.sender.handle_timeout(t0 + 150 * MS), Timeout::Nothing);
    assert_eq!(peer.sender.open_body(), None, "quiet for the linger: ended");

    // The next batch, after a spell as quiet as the linger, is a request
    // of its own (the old one is still in flight); the one after it,
    // within the linger, lingers again.
    peer.write(30, t0 + 160 * MS);
    assert_eq!(
        peer.pump(t0 + 160 * MS),
        [(open(1, PACKET_TIMEOUT), vec![30])]
    );
    assert_eq!(peer.sender.open_body(), None);
    let ledger = peer
        .sender
        .request_finished(t0 + 165 * MS, 1, Outcome::Delivered);
    assert_eq!(ledger.map(|l| l.packets), Some(1));
    peer.write(40, t0 + 170 * MS);
    let reopened = open(2, PACKET_TIMEOUT + BODY_MAX_AGE);
    assert_eq!(peer.pump(t0 + 170 * MS), [(reopened, vec![40])]);
    let ledger = peer
        .sender
        .request_finished(t0 + 180 * MS, 0, Outcome::Delivered);
    assert_eq!(ledger.map(|l| l.packets), Some(2));
    assert_eq!(
        peer.sender.open_body(),
        Some(2),
        "another lane's end leaves it"
    );
}

#[test]
fn a_body_lingers_only_for_a_peer_that_had_a_packet_within_the_linger() {
    let t0 = Instant::now();
    let mut peer = Peer::quiet(limits(), t0);
    // The first packet: a request of its own, ended with its chunk (no
    // linger timer, no longer deadline).
    peer.write(1, t0);
    assert_eq!(peer.pump(t0), [(open(0, PACKET_TIMEOUT), vec![1])]);
    assert_eq!(peer.sender.open_body(), None);
    assert_eq!(peer.sender.poll_timeout(), t0 + IDLE);
    // The next within the linger: the peer is busy, its body lingers.
    peer.write(2, t0 + LINGER / 2);
    assert_eq!(
        peer.pump(t0 + LINGER / 2),
        [(open(1, PACKET_TIMEOUT + BODY_MAX_AGE), vec![2])]
    );
    assert_eq!(peer.sender.open_body(), Some(1));
    peer.sender.handle_timeout(t0 + LINGER / 2 + LINGER);
    assert_eq!(peer.sender.open_body(), None);
    for lane in [0, 1] {
        peer.sender
            .request_finished(t0 + 2 * LINGER, lane, Outcome::Delivered);
    }
    // After a quiet spell longer than the linger, a request of its own
    // again, though its last body lingered.
    let later = t0 + 10 * LINGER;
    peer.write(3, later);
    assert_eq!(peer.pump(later), [(open(2, PACKET_TIMEOUT), vec![3])]);
    assert_eq!(peer.sender.open_body(), None);
    peer.sender.request_finished(later, 2, Outcome::Delivered);
    // A burst after a quiet spell lingers: more are likely to follow.
    let burst = later + 10 * LINGER;
    peer.write(4, burst);
    peer.write(5, burst);
    assert_eq!(
        peer.pump(burst),
        [(open(3, PACKET_TIMEOUT + BODY_MAX_AGE), vec![4, 5])]
    );
    assert_eq!(peer.sender.open_body(), Some(3));
}

#[test]
fn a_direct_write_counts_as_a_recent_packet_for_the_next_body() {
    let t0 = Instant::now();
    let mut peer = Peer::new(limits(), t0);
    peer.write(1, t0);
    peer.pump(t0);
    // Packets written straight into the body keep the peer busy past the
    // linger after the last batch.
    let direct = DirectWrites {
        lane: 0,
        packets: 1,
        waiters: Vec::<u32>::new(),
        last_write: Some(t0 + LINGER),
        full: false,
    };
    peer.sender.wrote_directly(direct);
    peer.sender
        .request_finished(t0 + LINGER, 0, Outcome::Failed);
    let next = t0 + LINGER + LINGER / 2;
    peer.write(1, next);
    assert_eq!(
        peer.pump(next),
        [(open(1, PACKET_TIMEOUT + BODY_MAX_AGE), vec![1])]
    );
}

#[test]
fn at_gossip_s_resting_pace_a_body_stays_open_across_packets_seconds_apart() {
    // Gossip at rest: a packet to a peer every second or two. With the
    // transport's default linger and max age, they ride one body until it
    // is the max age old, not a request each.
    const SECOND: Duration = Duration::from_secs(1);
    let rest = SendLimits {
        body_linger: 3 * SECOND,
        body_max_age: 6 * SECOND,
        ..limits()
    };
    let t0 = Instant::now();
    let mut peer = Peer::new(rest, t0);
    peer.write(1, t0);
    assert_eq!(
        peer.pump(t0),
        [(open(0, PACKET_TIMEOUT + 6 * SECOND), vec![1])],
        "a lingering body's request has its max age on top of the packet timeout"
    );
    let mut t = t0;
    for gap in [2, 1, 2] {
        t += gap * SECOND;
        while peer.sender.poll_timeout() <= t {
            assert_eq!(peer.sender.handle_timeout(t), Timeout::Nothing);
        }
        assert_eq!(peer.sender.open_body(), Some(0), "open at {:?}", t - t0);
        peer.write(1, t);
        assert_eq!(peer.pump(t), [(Route::Push { lane: 0 }, vec![1])]);
    }
    // Past the max age the body ends, however recent its last packet, and
    // the next packet opens a new request.
    t = t0 + 6 * SECOND;
    assert!(peer.sender.poll_timeout() <= t);
    peer.sender.handle_timeout(t);
    assert_eq!(peer.sender.open_body(), None);
    peer.write(1, t);
    assert_eq!(peer.pump(t)[0].0.lane(), 1);
    let ledger = peer.sender.request_finished(t, 0, Outcome::Delivered);
    assert_eq!(ledger.map(|l| l.packets), Some(4));
}

#[test]
fn a_busy_body_ends_at_its_max_age() {
    let t0 = Instant::now();
    let mut peer = Peer::new(limits(), t0);
    let mut t = t0;
    while t < t0 + BODY_MAX_AGE {
        peer.write(1, t);
        let sent = peer.pump(t);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0.lane(), 0, "one body while it is young");
        while peer.sender.poll_timeout() <= t {
            assert_eq!(peer.sender.handle_timeout(t), Timeout::Nothing);
        }
        assert_eq!(peer.sender.open_body(), Some(0));
        t += 40 * MS;
    }
    // Its check falls due at the max age, however busy it is.
    assert!(peer.sender.poll_timeout() <= t0 + BODY_MAX_AGE);
    peer.sender.handle_timeout(t0 + BODY_MAX_AGE);
    assert_eq!(peer.sender.open_body(), None);
    peer.write(1, t);
    assert_eq!(peer.pump(t)[0].0.lane(), 1);
}

#[test]
fn a_batch_pushed_into_a_body_at_its_max_age_ends_it() {
    let t0 = Instant::now();
    let mut peer = Peer::new(
        SendLimits {
            body_linger: 2 * BODY_MAX_AGE,
            ..limits()
        },
        t0,
    );
    peer.write(1, t0);
    peer.pump(t0);
    peer.write(1, t0 + BODY_MAX_AGE);
    assert_eq!(
        peer.pump(t0 + BODY_MAX_AGE),
        [(Route::Push { lane: 0 }, vec![1])]
    );
    assert_eq!(peer.sender.open_body(), None);
}

#[test]
fn a_send_ends_its_body_at_once() {
    let t0 = Instant::now();
    let mut peer = Peer::new(limits(), t0);
    // A waiter in a new body: it neither lingers nor gets the longer
    // deadline.
    peer.send(10, 7, t0);
    assert_eq!(peer.pump(t0), [(open(0, PACKET_TIMEOUT), vec![10])]);
    assert_eq!(peer.sender.open_body(), None);
    assert_eq!(peer.sender.poll_timeout(), t0 + IDLE, "no linger timer");

    // A waiter in an open body ends it.
    peer.write(10, t0 + MS);
    assert_eq!(peer.pump(t0 + MS)[0].0.lane(), 1);
    peer.send(10, 8, t0 + 2 * MS);
    assert_eq!(
        peer.pump(t0 + 2 * MS),
        [(Route::Push { lane: 1 }, vec![10])]
    );
    assert_eq!(peer.sender.open_body(), None);

    let first = peer
        .sender
        .request_finished(t0, 0, Outcome::Failed)
        .unwrap();
    assert_eq!(first.waiters, [7]);
    let second = peer
        .sender
        .request_finished(t0, 1, Outcome::Delivered)
        .unwrap();
    assert_eq!(
        second,
        Ledger {
            packets: 2,
            waiters: vec![8]
        }
    );
}
