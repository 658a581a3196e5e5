//! The fast path: while a peer's task keeps a `/message` body open and has
//! nothing queued, `write_to` pushes an un-awaited packet straight into
//! that body instead of queueing it and waking the task, which saves the
//! packet a task hop and a wake-up on its way out.
//!
//! The task publishes the body's pipe here when it finds the queue empty
//! and the machine says the body may take packets
//! ([`PeerSender::direct_body`](super::machine::PeerSender::direct_body)),
//! and takes the publication back, with what went through it, before it
//! acts on anything it wakes for. So the fast path is open only while the
//! task sleeps with an empty queue: packets keep `write_to` order (a packet
//! goes direct only when none is queued).
//!
//! A packet goes direct only after a quiet spell ([`DIRECT_QUIET`] since
//! the body's last packet) and into a body that has read everything before
//! it (an empty pipe): that is the packet latency is about. Under load the
//! packets queue (the first of them wakes the task) and go out in batches
//! as before: a direct write is one packet per chunk, per `DATA` frame and
//! per wake-up of the body's reader, and letting a burst through one by one
//! measured at half the throughput of batching it.

use super::machine::{DirectBody, DirectWrites, Lane};
use super::queue::{Queue, Queued};
use super::{Outgoing, Settle};
use crate::native::write_buffers::POOLED_WRITE_MIN;
use bytes::Bytes;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long a body must have gone without a packet for the next to go
/// into it directly: far below gossip's pace per peer (memberlist sends a
/// peer a few packets a second), far above a saturated sender's (a packet
/// every microsecond or so), so bursts keep their batches.
pub(super) const DIRECT_QUIET: Duration = Duration::from_micros(100);

/// Packets of this many wire bytes or more go through the task: the fast
/// path copies a packet into its chunk under the peer map's lock, which
/// every `write_to` takes, so only small ones (gossip's are about 1.4 KB),
/// whose chunks need no pooled buffer and so no pool lock either.
pub(super) const DIRECT_MAX_WIRE_LEN: usize = POOLED_WRITE_MIN;

/// A peer's queue and the body published for the fast path, under one
/// lock shared by `write_to` and the peer's task.
#[derive(Default)]
pub(super) struct Shared {
    pub queue: Queue<Outgoing>,
    direct: Option<Published>,
}

/// An open body published for the fast path, and what went into it.
struct Published {
    lane: Lane,
    /// The body's pipe; `None` once a direct write filled it (or found the
    /// request ended): later packets queue, and the task is woken by the
    /// next push as it would be without the fast path. (With a pipe of one
    /// chunk, every direct write fills it.)
    pipe: Option<mpsc::Sender<Bytes>>,
    /// The body's max age: later packets go through the task.
    until: Instant,
    /// When a packet last went into the body, directly or not.
    quiet_since: Instant,
    /// What each packet written into it leaves for its request's ledger.
    waiters: Vec<Settle>,
    last_write: Option<Instant>,
    filled: bool,
}

impl Shared {
    /// Opens the fast path into `body`, whose pipe is `pipe`. The task
    /// calls this only right after finding the queue empty, under the same
    /// lock.
    pub(super) fn publish(&mut self, body: DirectBody, pipe: &mpsc::Sender<Bytes>) {
        self.direct = Some(Published {
            lane: body.lane,
            pipe: Some(pipe.clone()),
            until: body.until,
            quiet_since: body.last_write,
            waiters: Vec::new(),
            last_write: None,
            filled: false,
        });
    }

    /// Whether the fast path is open (the task sleeps on a published body).
    #[cfg(test)]
    pub(super) fn is_published(&self) -> bool {
        self.direct.is_some()
    }

    /// Closes the fast path and hands back what went through it, for the
    /// machine ([`PeerSender::wrote_directly`](super::machine::PeerSender::wrote_directly)).
    pub(super) fn take_back(&mut self) -> Option<DirectWrites<Settle>> {
        let published = self.direct.take()?;
        Some(DirectWrites {
            lane: published.lane,
            packets: published.waiters.len() as u64,
            waiters: published.waiters,
            last_write: published.last_write,
            full: published.filled,
        })
    }

    /// Writes `out` straight into the published body, as the chunk
    /// `encode` makes of its payload, when the fast path is open for it: no
    /// one waits on its outcome (a `send` ends its body, which is the
    /// task's to do), it is small ([`DIRECT_MAX_WIRE_LEN`]), nothing is
    /// queued ahead of it, the body has been quiet for [`DIRECT_QUIET`] and
    /// has read every chunk before it (see the module's doc), and is
    /// younger than its max age, and counts it sent. Hands the packet back
    /// otherwise, to be queued.
    pub(super) fn write_direct(
        &mut self,
        mut out: Outgoing,
        encode: impl FnOnce(&Bytes) -> Bytes,
    ) -> Result<(), Outgoing> {
        let Some(published) = self.direct.as_mut() else {
            return Err(out);
        };
        let open = out.done.is_none()
            && out.wire_len() < DIRECT_MAX_WIRE_LEN
            && out.queued_at < published.until
            && out
                .queued_at
                .saturating_duration_since(published.quiet_since)
                >= DIRECT_QUIET
            && self.queue.is_empty()
            && published
                .pipe
                .as_ref()
                .is_some_and(|p| p.capacity() == p.max_capacity());
        let Some(pipe) = published.pipe.as_ref().filter(|_| open) else {
            return Err(out);
        };
        if pipe.try_send(encode(&out.payload)).is_err() {
            // The request ended (its body was dropped): the task hears of
            // it; this packet queues for the next request.
            published.pipe = None;
            return Err(out);
        }
        out.metrics.tx_packets.inc();
        out.metrics.tx_bytes.inc_by(out.payload.len() as u64);
        published.waiters.extend(out.take_waiter());
        published.last_write = published.last_write.max(Some(out.queued_at));
        published.quiet_since = published.quiet_since.max(out.queued_at);
        if pipe.capacity() == 0 {
            published.pipe = None;
            published.filled = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: Duration = DIRECT_QUIET;

    fn packet(payload: &'static [u8], at: Instant) -> Outgoing {
        Outgoing {
            payload: Bytes::from_static(payload),
            done: None,
            queued_at: at,
            metrics: Default::default(),
            answer_to: None,
        }
    }

    fn encode(payload: &Bytes) -> Bytes {
        payload.clone()
    }

    /// `lane`'s body, last written at `t0`, a second from its max age.
    fn body(lane: Lane, t0: Instant) -> DirectBody {
        DirectBody {
            lane,
            until: t0 + Duration::from_secs(1),
            last_write: t0,
        }
    }

    #[test]
    fn nothing_goes_direct_until_a_body_is_published_and_after_it_is_taken_back() {
        let t0 = Instant::now();
        let (tx, mut rx) = mpsc::channel(4);
        let mut shared = Shared::default();
        assert!(shared.write_direct(packet(b"a", t0 + Q), encode).is_err());
        assert!(shared.take_back().is_none());
        shared.publish(body(7, t0), &tx);
        assert!(shared.write_direct(packet(b"b", t0 + Q), encode).is_ok());
        assert_eq!(rx.try_recv().unwrap(), "b");
        assert!(shared
            .write_direct(packet(b"c", t0 + 2 * Q), encode)
            .is_ok());
        let back = shared.take_back().unwrap();
        assert_eq!(
            (back.lane, back.packets, back.last_write, back.full),
            (7, 2, Some(t0 + 2 * Q), false)
        );
        assert_eq!(back.waiters.len(), 2, "each leaves its counters");
        assert_eq!(shared.take_back().map(|b| b.lane), None);
        assert!(shared
            .write_direct(packet(b"d", t0 + 3 * Q), encode)
            .is_err());
        assert_eq!(rx.try_recv().unwrap(), "c");
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn only_a_quiet_body_that_read_everything_takes_a_packet_directly() {
        let t0 = Instant::now();
        let (tx, mut rx) = mpsc::channel(4);
        let mut shared = Shared::default();
        shared.publish(body(0, t0), &tx);
        assert!(
            shared
                .write_direct(packet(b"a", t0 + Q / 2), encode)
                .is_err(),
            "too soon after the body's last packet"
        );
        assert!(shared.write_direct(packet(b"b", t0 + Q), encode).is_ok());
        // A burst: the rest queue, to go out as a batch.
        assert!(shared
            .write_direct(packet(b"c", t0 + 2 * Q), encode)
            .is_err());
        assert_eq!(rx.try_recv().unwrap(), "b");
        assert!(shared
            .write_direct(packet(b"d", t0 + 3 * Q / 2), encode)
            .is_err());
        assert!(shared
            .write_direct(packet(b"e", t0 + 2 * Q), encode)
            .is_ok());
        let back = shared.take_back().unwrap();
        assert_eq!((back.packets, back.full), (2, false));
    }

    #[test]
    fn a_packet_with_a_waiter_a_queued_packet_or_the_max_age_shut_the_fast_path() {
        let t0 = Instant::now();
        let (tx, _rx) = mpsc::channel(4);
        let mut shared = Shared::default();
        shared.publish(body(0, t0), &tx);
        let (done, _) = tokio::sync::oneshot::channel();
        let awaited = Outgoing {
            done: Some(done),
            ..packet(b"a", t0 + Q)
        };
        assert!(shared.write_direct(awaited, encode).is_err());
        let at_max_age = t0 + Duration::from_secs(1);
        assert!(shared
            .write_direct(packet(b"b", at_max_age), encode)
            .is_err());
        assert!(shared.queue.push(packet(b"c", t0 + Q), 8).is_ok());
        assert!(shared.write_direct(packet(b"d", t0 + Q), encode).is_err());
        assert_eq!(shared.take_back().map(|d| d.packets), Some(0));
    }

    #[test]
    fn a_large_packet_goes_through_the_task() {
        let t0 = Instant::now();
        let (tx, _rx) = mpsc::channel(4);
        let mut shared = Shared::default();
        shared.publish(body(0, t0), &tx);
        let large = Outgoing {
            payload: Bytes::from(vec![0; DIRECT_MAX_WIRE_LEN]),
            ..packet(b"", t0 + Q)
        };
        assert!(shared.write_direct(large, encode).is_err());
        let small = Outgoing {
            payload: Bytes::from(vec![0; DIRECT_MAX_WIRE_LEN - 8]),
            ..packet(b"", t0 + Q)
        };
        assert!(shared.write_direct(small, encode).is_ok());
    }

    #[test]
    fn a_write_that_fills_the_pipe_closes_the_fast_path_and_says_so() {
        let t0 = Instant::now();
        let (tx, mut rx) = mpsc::channel(1);
        let mut shared = Shared::default();
        shared.publish(body(0, t0), &tx);
        assert!(shared.write_direct(packet(b"a", t0 + Q), encode).is_ok());
        assert_eq!(rx.try_recv().unwrap(), "a");
        assert!(
            shared
                .write_direct(packet(b"b", t0 + 2 * Q), encode)
                .is_err(),
            "closed once full, even after the body read it"
        );
        let back = shared.take_back().unwrap();
        assert_eq!((back.packets, back.full), (1, true));
    }

    #[test]
    fn a_body_whose_request_ended_takes_nothing_and_is_not_full() {
        let t0 = Instant::now();
        let (tx, rx) = mpsc::channel(2);
        let mut shared = Shared::default();
        shared.publish(body(0, t0), &tx);
        drop(rx);
        assert!(shared.write_direct(packet(b"a", t0 + Q), encode).is_err());
        let back = shared.take_back().unwrap();
        assert_eq!((back.packets, back.full), (0, false));
    }
}
