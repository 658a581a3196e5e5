//! The sender's decisions under virtual time: plain `Instant`s advanced by
//! hand, no runtime, no sleeping.

use super::*;
use crate::native::sender::queue::tests::{pkt, Pkt};
use crate::native::sender::queue::Queue;

pub(super) const MS: Duration = Duration::from_millis(1);
pub(super) const PACKET_TIMEOUT: Duration = Duration::from_secs(5);
pub(super) const IDLE: Duration = Duration::from_secs(60);
pub(super) const LINGER: Duration = Duration::from_millis(100);
pub(super) const BODY_MAX_AGE: Duration = Duration::from_secs(1);

pub(super) fn limits() -> SendLimits {
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
pub(super) fn no_linger() -> SendLimits {
    SendLimits {
        body_linger: Duration::ZERO,
        ..limits()
    }
}

/// A sender and its queue, driven as the shell drives them.
pub(super) struct Peer {
    pub(super) sender: PeerSender<u32>,
    queue: Queue<Pkt>,
    expired: Vec<Pkt>,
}

impl Peer {
    /// A peer that had a packet just before `now`, so a new body lingers
    /// (see [`Peer::quiet`] for one that had none).
    pub(super) fn new(limits: SendLimits, now: Instant) -> Peer {
        let mut peer = Peer::quiet(limits, now);
        peer.sender.sent_recently(now);
        peer
    }

    /// A peer with no packet sent yet.
    pub(super) fn quiet(limits: SendLimits, now: Instant) -> Peer {
        Peer {
            sender: PeerSender::new(limits, now),
            queue: Queue::default(),
            expired: Vec::new(),
        }
    }

    pub(super) fn write(&mut self, len: usize, now: Instant) {
        assert!(self.queue.push(pkt(len, now), 100).is_ok());
    }

    pub(super) fn send(&mut self, len: usize, waiter: u32, now: Instant) {
        let p = Pkt {
            len,
            at: now,
            waiter: Some(waiter),
        };
        assert!(self.queue.push(p, 100).is_ok());
    }

    /// Takes and routes batches while the sender wants them, as the shell's
    /// inner loop does: what went where, by packet length.
    pub(super) fn pump(&mut self, now: Instant) -> Vec<(Route, Vec<usize>)> {
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

pub(super) fn open(lane: Lane, timeout: Duration) -> Route {
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

fn direct(lane: Lane, packets: u64, last_write: Instant, full: bool) -> DirectWrites<u32> {
    DirectWrites {
        lane,
        packets,
        waiters: Vec::new(),
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
    // runs from the last of them, and what they left joins the ledger.
    peer.sender.wrote_directly(DirectWrites {
        waiters: vec![7, 8, 9],
        ..direct(0, 3, t0 + 90 * MS, false)
    });
    assert_eq!(peer.sender.handle_timeout(t0 + LINGER), Timeout::Nothing);
    assert_eq!(peer.sender.open_body(), Some(0));
    assert_eq!(peer.sender.poll_timeout(), t0 + 190 * MS);
    peer.sender.handle_timeout(t0 + 190 * MS);
    assert_eq!(peer.sender.open_body(), None, "quiet for the linger: ended");
    assert_eq!(peer.sender.direct_body(), None);

    let ledger = peer
        .sender
        .request_finished(t0 + 200 * MS, 0, Outcome::Failed);
    let ledger = ledger.unwrap();
    assert_eq!(ledger.packets, 4, "its outcome is theirs");
    assert_eq!(ledger.waiters, [7, 8, 9]);
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
        waiters: Vec::new(),
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
    pub(super) fn lane(self) -> Lane {
        match self {
            Route::Open { lane, .. } | Route::Push { lane } => lane,
        }
    }
}
