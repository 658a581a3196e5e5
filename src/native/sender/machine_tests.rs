//! The sender's decisions under virtual time: plain `Instant`s advanced by
//! hand, no runtime, no sleeping.

use super::*;
use crate::native::sender::queue::tests::{pkt, Pkt};
use crate::native::sender::queue::Queue;

const MS: Duration = Duration::from_millis(1);
const PACKET_TIMEOUT: Duration = Duration::from_secs(5);
const IDLE: Duration = Duration::from_secs(60);
const LINGER: Duration = Duration::from_millis(100);
const BODY_MAX_AGE: Duration = Duration::from_secs(1);

fn limits() -> SendLimits {
    SendLimits {
        queue_size: 100,
        packet_timeout: PACKET_TIMEOUT,
        max_batch_bytes: 100,
        max_in_flight: 2,
        idle_timeout: IDLE,
        body_linger: LINGER,
        body_max_age: BODY_MAX_AGE,
    }
}

/// Every body ends after its first batch.
fn no_linger() -> SendLimits {
    SendLimits {
        body_linger: Duration::ZERO,
        ..limits()
    }
}

/// A sender and its queue, driven as the shell drives them.
struct Peer {
    sender: PeerSender<u32>,
    queue: Queue<Pkt>,
    expired: Vec<Pkt>,
}

impl Peer {
    /// A peer that had a packet just before `now`, so a new body lingers
    /// (see [`Peer::quiet`] for one that had none).
    fn new(limits: SendLimits, now: Instant) -> Peer {
        let mut peer = Peer::quiet(limits, now);
        peer.sender.sent_recently(now);
        peer
    }

    /// A peer with no packet sent yet.
    fn quiet(limits: SendLimits, now: Instant) -> Peer {
        Peer {
            sender: PeerSender::new(limits, now),
            queue: Queue::default(),
            expired: Vec::new(),
        }
    }

    fn write(&mut self, len: usize, now: Instant) {
        assert!(self.queue.push(pkt(len, now), 100).is_ok());
    }

    fn send(&mut self, len: usize, waiter: u32, now: Instant) {
        let p = Pkt {
            len,
            at: now,
            waiter: Some(waiter),
        };
        assert!(self.queue.push(p, 100).is_ok());
    }

    /// Takes and routes batches while the sender wants them, as the shell's
    /// inner loop does: what went where, by packet length.
    fn pump(&mut self, now: Instant) -> Vec<(Route, Vec<usize>)> {
        let mut sent = Vec::new();
        while let Some(take) = self.sender.wants_batch(now) {
            let mut batch = self.queue.take_batch(&take, &mut self.expired);
            if batch.is_empty() {
                break;
            }
            let route = self.sender.send(now, &mut batch);
            sent.push((route, batch.iter().map(|p| p.len).collect()));
        }
        sent
    }
}

fn open(lane: Lane, timeout: Duration) -> Route {
    Route::Open { lane, timeout }
}

#[test]
fn queued_packets_go_in_batches_up_to_max_batch_bytes() {
    let t0 = Instant::now();
    let mut peer = Peer::new(no_linger(), t0);
    for len in [60, 30, 20, 150, 10] {
        peer.write(len, t0);
    }
    // Two requests in flight at most; each batch its own request.
    assert_eq!(
        peer.pump(t0),
        [
            (open(0, PACKET_TIMEOUT), vec![60, 30]),
            (open(1, PACKET_TIMEOUT), vec![20]),
        ]
    );
    assert_eq!(peer.sender.wants_batch(t0), None, "max_in_flight reached");
    let ledger = peer.sender.request_finished(t0, 0, Outcome::Delivered);
    assert_eq!(ledger.map(|l| l.packets), Some(2));
    assert_eq!(
        peer.pump(t0),
        [(open(2, PACKET_TIMEOUT), vec![150])],
        "an oversize packet goes alone"
    );
}

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

#[test]
fn a_full_body_takes_no_batch_until_it_has_room_and_the_queue_drops_the_oldest() {
    let t0 = Instant::now();
    let mut peer = Peer::new(limits(), t0);
    peer.write(10, t0);
    peer.pump(t0);
    peer.sender.body_full();
    assert!(peer.sender.body_is_full());
    assert_eq!(peer.sender.wants_batch(t0), None);
    // Meanwhile the packets wait in the queue, which drops the oldest.
    let mut dropped = 0;
    for i in 0..150 {
        let pushed = peer.queue.push(pkt(i, t0), 100).unwrap();
        dropped += usize::from(pushed.dropped.is_some());
    }
    assert_eq!(dropped, 50);
    peer.sender.body_has_room();
    // (50 and 51 bytes exceed the batch limit together.)
    let sent = peer.pump(t0 + MS);
    assert_eq!(sent[0], (Route::Push { lane: 0 }, vec![50]));
}

/// Lane 0's body, opened and last written at `t0`.
fn direct_body(t0: Instant) -> DirectBody {
    DirectBody {
        lane: 0,
        until: t0 + BODY_MAX_AGE,
        last_write: t0,
    }
}

fn direct(lane: Lane, packets: u64, last_write: Instant, full: bool) -> DirectWrites {
    DirectWrites {
        lane,
        packets,
        last_write: Some(last_write),
        full,
    }
}

#[test]
fn direct_writes_join_the_open_bodys_ledger_and_count_for_its_linger() {
    let t0 = Instant::now();
    let mut peer = Peer::new(limits(), t0);
    assert_eq!(peer.sender.direct_body(), None, "no body open yet");
    peer.write(10, t0);
    peer.pump(t0);
    assert_eq!(peer.sender.direct_body(), Some(direct_body(t0)));

    // Written straight into the body while the shell slept: the linger
    // runs from the last of them.
    peer.sender
        .wrote_directly(direct(0, 3, t0 + 90 * MS, false));
    assert_eq!(peer.sender.handle_timeout(t0 + LINGER), Timeout::Nothing);
    assert_eq!(peer.sender.open_body(), Some(0));
    assert_eq!(peer.sender.poll_timeout(), t0 + 190 * MS);
    peer.sender.handle_timeout(t0 + 190 * MS);
    assert_eq!(peer.sender.open_body(), None, "quiet for the linger: ended");
    assert_eq!(peer.sender.direct_body(), None);

    let ledger = peer
        .sender
        .request_finished(t0 + 200 * MS, 0, Outcome::Failed);
    assert_eq!(ledger.map(|l| l.packets), Some(4), "its outcome is theirs");
}

#[test]
fn direct_writes_count_as_activity_and_none_leaves_the_body_as_it_was() {
    let t0 = Instant::now();
    let mut peer = Peer::new(limits(), t0);
    peer.write(10, t0);
    peer.pump(t0);
    // Taken back with nothing written: no write, no activity.
    peer.sender.wrote_directly(DirectWrites {
        lane: 0,
        packets: 0,
        last_write: None,
        full: false,
    });
    assert_eq!(peer.sender.direct_body(), Some(direct_body(t0)));
    peer.sender.handle_timeout(t0 + LINGER);
    assert_eq!(peer.sender.open_body(), None);

    // A write long after the body ended keeps the idle clock from
    // retiring the peer on time.
    let mut peer = Peer::new(limits(), t0);
    peer.write(10, t0);
    peer.pump(t0);
    peer.sender
        .wrote_directly(direct(0, 1, t0 + 50 * MS, false));
    peer.sender.handle_timeout(t0 + 150 * MS);
    assert_eq!(peer.sender.open_body(), None);
    peer.sender
        .request_finished(t0 + 150 * MS, 0, Outcome::Delivered);
    assert_eq!(peer.sender.handle_timeout(t0 + IDLE), Timeout::Nothing);
    let next = peer.sender.poll_timeout();
    assert!(next >= t0 + 50 * MS + IDLE);
    assert_eq!(peer.sender.handle_timeout(next), Timeout::Retire);
}

#[test]
fn a_pipe_filled_by_direct_writes_is_full_and_no_fast_path_opens_while_backing_off() {
    let t0 = Instant::now();
    let mut peer = Peer::new(limits(), t0);
    peer.write(10, t0);
    peer.pump(t0);
    peer.sender.wrote_directly(direct(0, 4, t0 + MS, true));
    assert!(peer.sender.body_is_full());
    assert_eq!(peer.sender.wants_batch(t0 + MS), None);
    assert_eq!(peer.sender.direct_body(), None, "not into a full pipe");
    peer.sender.body_has_room();
    let last_direct = DirectBody {
        last_write: t0 + MS,
        ..direct_body(t0)
    };
    assert_eq!(peer.sender.direct_body(), Some(last_direct));

    // Writes for a body that ended meanwhile still count for its request.
    peer.sender.handle_timeout(t0 + 101 * MS);
    assert_eq!(peer.sender.open_body(), None);
    peer.sender
        .wrote_directly(direct(0, 2, t0 + 100 * MS, true));
    assert!(!peer.sender.body_is_full());
    let ledger = peer
        .sender
        .request_finished(t0 + 110 * MS, 0, Outcome::Unreachable);
    assert_eq!(ledger.map(|l| l.packets), Some(7));

    // Backing off: the next body may open (the queue has packets) only
    // after the backoff, and no fast path before it.
    peer.write(10, t0 + 110 * MS);
    assert!(peer.pump(t0 + 110 * MS).is_empty());
    assert_eq!(peer.sender.direct_body(), None);
}

#[test]
fn with_no_linger_requests_in_flight_are_capped_at_max_in_flight() {
    let t0 = Instant::now();
    let mut peer = Peer::new(
        SendLimits {
            max_batch_bytes: 1,
            max_in_flight: 3,
            ..no_linger()
        },
        t0,
    );
    for _ in 0..5 {
        peer.write(1, t0);
    }
    assert_eq!(peer.pump(t0).len(), 3);
    assert_eq!(peer.sender.open_body(), None);
    assert!(peer.pump(t0).is_empty());
    peer.sender.request_finished(t0, 1, Outcome::Failed);
    assert_eq!(peer.pump(t0), [(open(3, PACKET_TIMEOUT), vec![1])]);
}

/// Sends a packet at `t` on a request that ends with `outcome`, then
/// waits out any backoff: returns how long that was.
fn round(sender: &mut PeerSender<u32>, t: Instant, outcome: Outcome) -> Duration {
    assert!(sender.wants_batch(t).is_some());
    let lane = sender.send(t, &mut [pkt(1, t)]).lane();
    sender.request_finished(t, lane, outcome);
    if sender.wants_batch(t).is_some() {
        return Duration::ZERO;
    }
    let retry = sender.poll_timeout();
    sender.handle_timeout(retry - MS);
    assert_eq!(sender.wants_batch(retry - MS), None, "still backing off");
    sender.handle_timeout(retry);
    retry - t
}

#[test]
fn backoff_doubles_from_20_ms_to_250_ms_and_resets_on_anything_but_a_failed_connect() {
    let mut t = Instant::now();
    let mut sender: PeerSender<u32> = PeerSender::new(no_linger(), t);
    let mut rounds = |outcomes: &[Outcome]| -> Vec<u128> {
        outcomes
            .iter()
            .map(|&outcome| {
                let wait = round(&mut sender, t, outcome);
                t += wait;
                wait.as_millis()
            })
            .collect()
    };
    assert_eq!(
        rounds(&[Outcome::Unreachable; 6]),
        [20, 40, 80, 160, 250, 250]
    );
    use Outcome::{Delivered, Failed, Unreachable};
    assert_eq!(
        rounds(&[Failed, Unreachable, Unreachable, Delivered, Unreachable]),
        [0, 20, 40, 0, 20]
    );
}

#[test]
fn requests_failing_together_back_off_once() {
    let t0 = Instant::now();
    let mut sender: PeerSender<u32> = PeerSender::new(no_linger(), t0);
    sender.send(t0, &mut [pkt(1, t0)]);
    sender.send(t0, &mut [pkt(1, t0)]);
    sender.request_finished(t0, 0, Outcome::Unreachable);
    sender.request_finished(t0 + MS, 1, Outcome::Unreachable);
    assert_eq!(sender.poll_timeout(), t0 + 20 * MS);
    sender.handle_timeout(t0 + 20 * MS);
    sender.send(t0 + 20 * MS, &mut [pkt(1, t0)]);
    sender.request_finished(t0 + 20 * MS, 2, Outcome::Unreachable);
    assert_eq!(
        sender.poll_timeout(),
        t0 + 60 * MS,
        "the second wait is 40 ms"
    );
}

#[test]
fn packets_that_waited_out_the_packet_timeout_are_taken_aside() {
    let t0 = Instant::now();
    let mut peer = Peer::new(limits(), t0);
    peer.write(1, t0);
    peer.write(2, t0 + MS);
    peer.write(3, t0 + PACKET_TIMEOUT);
    let sent = peer.pump(t0 + PACKET_TIMEOUT + MS);
    assert_eq!(peer.expired, [pkt(1, t0)], "older than the packet timeout");
    assert_eq!(sent[0].1, [2, 3], "a packet at the limit still goes");
    // Before the clock has run a packet timeout, nothing is stale.
    let fresh = PeerSender::<u32>::new(limits(), t0);
    let take = fresh.wants_batch(t0).unwrap();
    assert!(take.stale_before.is_none_or(|t| t <= t0 - PACKET_TIMEOUT));
}

#[test]
fn a_quiet_peer_retires_after_the_idle_timeout_with_nothing_in_flight() {
    let t0 = Instant::now();
    let mut peer = Peer::new(limits(), t0);
    peer.send(1, 1, t0 + 10 * MS);
    peer.pump(t0 + 10 * MS);
    // Due at the idle timeout after start, but a packet went out since.
    assert_eq!(peer.sender.poll_timeout(), t0 + IDLE);
    assert_eq!(peer.sender.handle_timeout(t0 + IDLE), Timeout::Nothing);
    let next = peer.sender.poll_timeout();
    assert_eq!(next, t0 + IDLE + IDLE / 4, "looks again a quarter later");
    // Quiet long enough, but a request is still in flight.
    assert_eq!(peer.sender.handle_timeout(next), Timeout::Nothing);
    peer.sender.request_finished(next, 0, Outcome::Failed);
    let next = peer.sender.poll_timeout();
    assert_eq!(peer.sender.handle_timeout(next), Timeout::Retire);
    // Should the shell find a packet queued (no retiring), the machine
    // looks again later.
    assert!(peer.sender.poll_timeout() >= next + IDLE / 4);
}

#[test]
fn a_backoff_ending_counts_as_activity() {
    let t0 = Instant::now();
    let mut sender: PeerSender<u32> = PeerSender::new(limits(), t0);
    sender.send(t0, &mut [pkt(1, t0)]);
    sender.request_finished(t0 + IDLE - 10 * MS, 0, Outcome::Unreachable);
    sender.handle_timeout(t0 + IDLE + 10 * MS);
    assert_eq!(sender.poll_timeout(), t0 + 2 * IDLE + 10 * MS);
}

#[test]
fn shutdown_hands_back_every_ledger_in_flight() {
    let t0 = Instant::now();
    let mut peer = Peer::new(no_linger(), t0);
    peer.send(1, 1, t0);
    peer.pump(t0);
    peer.send(1, 2, t0);
    peer.write(1, t0);
    peer.pump(t0);
    let mut ledgers: Vec<_> = peer.sender.into_ledgers().collect();
    ledgers.sort_by_key(|l| l.packets);
    assert_eq!(
        ledgers,
        [
            Ledger {
                packets: 1,
                waiters: vec![1]
            },
            Ledger {
                packets: 2,
                waiters: vec![2]
            }
        ]
    );
}

impl Route {
    fn lane(self) -> Lane {
        match self {
            Route::Open { lane, .. } | Route::Push { lane } => lane,
        }
    }
}
