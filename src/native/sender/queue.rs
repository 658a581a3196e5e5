//! A peer's send queue, without locks or a runtime: drop-oldest when full,
//! batches cut at a byte limit, and packets that waited out the packet
//! timeout taken aside. The shell keeps it under a mutex shared by
//! `write_to` (which pushes) and the peer's task (which takes).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What the queue and the sender need to know about a queued packet.
pub(crate) trait Queued {
    /// Whoever waits to hear how the packet's request ended.
    type Waiter;
    /// Bytes the packet takes in a `/message` body, frame header included.
    fn wire_len(&self) -> usize;
    /// When `write_to` took it.
    fn queued_at(&self) -> Instant;
    /// Whether a caller waits on this packet's outcome (`send`): its
    /// request's body ends at once, not after a linger.
    fn awaited(&self) -> bool;
    /// Takes what the packet leaves in its request's ledger, to be settled
    /// with the request's outcome.
    fn take_waiter(&mut self) -> Option<Self::Waiter>;
}

/// How to take the next batch (see [`Queue::take_batch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Take {
    /// The batch's size limit; a batch holds at least one packet however
    /// large.
    pub max_bytes: usize,
    /// Packets queued before this have waited out the packet timeout.
    pub stale_before: Option<Instant>,
}

/// What a push did.
pub(crate) struct Pushed<T> {
    /// The oldest packet, dropped because the queue was full.
    pub dropped: Option<T>,
    /// How many drops to log now, if it is time (see [`DropLog`]).
    pub log_drops: Option<u64>,
    /// Whether the peer's task waits for this packet and is to be woken.
    pub wake: bool,
}

/// The queue was closed: its task retired or shut down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

pub(crate) struct Queue<T> {
    items: VecDeque<T>,
    /// Set when the peer's task has retired or shut down: the next packet
    /// for this peer starts a new queue.
    closed: bool,
    /// Set when the task found the queue empty with room to send: only then
    /// does a new packet need to wake it. A task that is blocked (all its
    /// requests in flight, or backing off from an unreachable peer) comes
    /// back to the queue by itself, so packets for a dead peer cost no
    /// wake-up and no scheduling at all.
    task_waiting: bool,
    drops: DropLog,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Queue {
            items: VecDeque::new(),
            closed: false,
            task_waiting: false,
            drops: DropLog::default(),
        }
    }
}

impl<T: Queued> Queue<T> {
    /// Queues `item`; past `capacity` the oldest packet is dropped: fresh
    /// gossip is worth more than stale.
    #[inline]
    pub(crate) fn push(&mut self, item: T, capacity: usize) -> Result<Pushed<T>, Closed> {
        if self.closed {
            return Err(Closed);
        }
        // The caller's clock reading, so the drop path reads no clock.
        let now = item.queued_at();
        self.items.push_back(item);
        let (dropped, log_drops) = if self.items.len() > capacity {
            (self.items.pop_front(), self.drops.record(now))
        } else {
            (None, None)
        };
        Ok(Pushed {
            dropped,
            log_drops,
            wake: std::mem::take(&mut self.task_waiting),
        })
    }

    /// The packet queued last (the one a `push` just queued).
    pub(crate) fn newest(&self) -> Option<&T> {
        self.items.back()
    }

    /// Whether no packet is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Takes queued packets up to `take.max_bytes` (at least one if any),
    /// moving those queued before `take.stale_before` to `expired` instead.
    /// An empty batch means the task is to wait for the next push's wake-up.
    pub(crate) fn take_batch(&mut self, take: &Take, expired: &mut Vec<T>) -> Vec<T> {
        // The queue is in `write_to` order, so the stale ones are in front.
        if let Some(limit) = take.stale_before {
            while self.items.front().is_some_and(|o| o.queued_at() < limit) {
                expired.extend(self.items.pop_front());
            }
        }
        if self.items.is_empty() {
            self.task_waiting = true;
            return Vec::new();
        }
        let mut bytes = 0;
        let mut batch = Vec::new();
        while let Some(front) = self.items.front() {
            let len = front.wire_len();
            if !batch.is_empty() && bytes + len > take.max_bytes {
                break;
            }
            bytes += len;
            batch.extend(self.items.pop_front());
        }
        batch
    }

    /// Closes the queue if it is empty (the task is retiring), so the next
    /// packet starts a new one; a queue a packet reached meanwhile stays.
    pub(crate) fn close_if_empty(&mut self) -> bool {
        if !self.items.is_empty() {
            return false;
        }
        self.closed = true;
        true
    }

    /// Closes the queue and hands back what it still held.
    pub(crate) fn close(&mut self) -> VecDeque<T> {
        self.closed = true;
        std::mem::take(&mut self.items)
    }
}

/// Rate-limits the log line for a peer's drop-oldest: the first drop is
/// logged at once, later ones at most once a second, with how many there
/// were, so a dead peer under load is visible without flooding the log.
#[derive(Default)]
struct DropLog {
    unlogged: u64,
    logged_at: Option<Instant>,
}

impl DropLog {
    /// Records a drop at `now`; returns how many drops to log, if it is time.
    fn record(&mut self, now: Instant) -> Option<u64> {
        self.unlogged += 1;
        if self
            .logged_at
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1))
        {
            return None;
        }
        self.logged_at = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A packet of `len` wire bytes, maybe with a waiter numbered `waiter`.
    #[derive(Debug, PartialEq, Eq)]
    pub(crate) struct Pkt {
        pub len: usize,
        pub at: Instant,
        pub waiter: Option<u32>,
    }

    impl Queued for Pkt {
        type Waiter = u32;
        fn wire_len(&self) -> usize {
            self.len
        }
        fn queued_at(&self) -> Instant {
            self.at
        }
        fn awaited(&self) -> bool {
            self.waiter.is_some()
        }
        fn take_waiter(&mut self) -> Option<u32> {
            self.waiter.take()
        }
    }

    pub(crate) fn pkt(len: usize, at: Instant) -> Pkt {
        Pkt {
            len,
            at,
            waiter: None,
        }
    }

    fn take(max_bytes: usize) -> Take {
        Take {
            max_bytes,
            stale_before: None,
        }
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts_it() {
        let t0 = Instant::now();
        let mut q = Queue::default();
        for i in 0..3 {
            let p = q.push(pkt(i, t0), 3).unwrap();
            assert!(p.dropped.is_none() && p.log_drops.is_none());
        }
        let p = q.push(pkt(3, t0), 3).unwrap();
        assert_eq!(p.dropped, Some(pkt(0, t0)), "the oldest goes");
        assert_eq!(p.log_drops, Some(1), "the first drop is logged at once");
        let p = q.push(pkt(4, t0), 3).unwrap();
        assert_eq!(p.dropped, Some(pkt(1, t0)));
        assert_eq!(p.log_drops, None, "then at most once a second");
        let p = q.push(pkt(5, t0 + Duration::from_secs(1)), 3).unwrap();
        assert_eq!(p.log_drops, Some(2), "with the count since the last");
        let lens: Vec<usize> = q
            .take_batch(&take(100), &mut Vec::new())
            .iter()
            .map(|p| p.len)
            .collect();
        assert_eq!(lens, [3, 4, 5], "the newest stay, in order");
    }

    #[test]
    fn only_a_task_that_found_the_queue_empty_is_woken() {
        let t0 = Instant::now();
        let mut q = Queue::default();
        assert!(
            !q.push(pkt(1, t0), 8).unwrap().wake,
            "the task has not looked yet"
        );
        assert_eq!(q.take_batch(&take(100), &mut Vec::new()).len(), 1);
        assert!(q.take_batch(&take(100), &mut Vec::new()).is_empty());
        assert!(
            q.push(pkt(1, t0), 8).unwrap().wake,
            "it found the queue empty"
        );
        assert!(
            !q.push(pkt(1, t0), 8).unwrap().wake,
            "one wake-up is enough"
        );
    }

    #[test]
    fn batches_are_cut_at_the_byte_limit_but_hold_at_least_one_packet() {
        let t0 = Instant::now();
        let mut q = Queue::default();
        for len in [40, 40, 30, 200, 10] {
            q.push(pkt(len, t0), 8).unwrap();
        }
        let mut none = Vec::new();
        let lens = |b: Vec<Pkt>| b.iter().map(|p| p.len).collect::<Vec<_>>();
        assert_eq!(lens(q.take_batch(&take(100), &mut none)), [40, 40]);
        assert_eq!(lens(q.take_batch(&take(100), &mut none)), [30]);
        assert_eq!(
            lens(q.take_batch(&take(100), &mut none)),
            [200],
            "oversize goes alone"
        );
        assert_eq!(lens(q.take_batch(&take(100), &mut none)), [10]);
        assert!(none.is_empty());
    }

    #[test]
    fn packets_queued_before_the_stale_limit_are_taken_aside() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut q = Queue::default();
        for at in [0, 10, 20, 30] {
            q.push(pkt(1, t0 + ms(at)), 8).unwrap();
        }
        let mut expired = Vec::new();
        let stale = Take {
            max_bytes: 100,
            stale_before: Some(t0 + ms(20)),
        };
        let batch = q.take_batch(&stale, &mut expired);
        assert_eq!(expired, [pkt(1, t0), pkt(1, t0 + ms(10))]);
        assert_eq!(batch, [pkt(1, t0 + ms(20)), pkt(1, t0 + ms(30))]);
    }

    #[test]
    fn a_closed_queue_takes_nothing_and_retiring_needs_it_empty() {
        let t0 = Instant::now();
        let mut q = Queue::default();
        q.push(pkt(1, t0), 8).unwrap();
        assert!(!q.close_if_empty(), "a packet arrived: no retiring");
        assert!(q.push(pkt(2, t0), 8).is_ok());
        assert_eq!(q.close().len(), 2);
        assert!(q.push(pkt(3, t0), 8).is_err());
        let mut empty: Queue<Pkt> = Queue::default();
        assert!(empty.close_if_empty());
        assert!(empty.push(pkt(1, t0), 8).is_err());
    }

    #[test]
    fn drop_logs_are_limited_to_one_a_second_with_the_count() {
        let mut log = DropLog::default();
        let t0 = Instant::now();
        assert_eq!(log.record(t0), Some(1), "the first drop is logged at once");
        for i in 1..=99u64 {
            assert_eq!(log.record(t0 + Duration::from_millis(i * 9)), None);
        }
        assert_eq!(log.record(t0 + Duration::from_millis(1000)), Some(100));
        assert_eq!(log.record(t0 + Duration::from_millis(1001)), None);
        // A clock reading from before the last log (callers race) waits too.
        assert_eq!(log.record(t0), None);
        assert_eq!(log.record(t0 + Duration::from_secs(5)), Some(3));
    }
}
