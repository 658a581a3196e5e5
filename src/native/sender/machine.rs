//! A peer's sender as a state machine: every decision about when a batch
//! goes out, on which request, when a body ends, when to retry an
//! unreachable peer and when to retire, with no runtime, no I/O and no
//! clock of its own. The shell (`run_peer`) feeds it what happened and the
//! time, and carries out what it decides: opening requests, pushing chunks
//! into bodies, ending them, settling ledgers, sleeping until
//! [`PeerSender::poll_timeout`].
//!
//! Each batch of queued packets becomes a chunk of frames. With a linger
//! (the default), the chunk goes into the peer's open `/message` body when
//! there is one, and a body stays open for more until it has been quiet for
//! the linger or is [`SendLimits::body_max_age`] old: on an open HTTP/2
//! stream a packet is one `DATA` frame away from the peer, about half the
//! latency and a third of the CPU of a new request (which costs headers, a
//! new stream, a task on each side, an end of body and an answer). A body
//! carrying a packet someone waits on (`send`) is ended at once, so the
//! answer does not wait for the linger.
//!
//! A new body lingers only for a busy peer, one that had a packet within
//! the linger before it or has several queued together (a burst): the
//! first packet after a quiet spell goes as a request of its own, ended
//! with its chunk. In a large cluster at rest a member sends
//! a given peer a packet a minute or so (memberlist probes members in
//! turn), so a lingering body would carry nothing more and only cost a
//! separate end of body, timer and wake-ups on both ends, measured at a
//! sixth of the CPU per packet; a peer that gets packets seconds apart (a
//! small cluster, or any peer under load) gets a lingering body from its
//! second packet on.

use super::queue::{Queued, Take};
use std::time::{Duration, Instant};

/// The first wait after a failed connect before the next attempt.
pub(crate) const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(20);
/// The longest wait between connect attempts to an unreachable peer.
pub(crate) const RECONNECT_BACKOFF_MAX: Duration = Duration::from_millis(250);

/// What bounds a peer's delivery.
#[derive(Debug, Clone)]
pub(crate) struct SendLimits {
    pub queue_size: usize,
    pub packet_timeout: Duration,
    pub max_batch_bytes: usize,
    pub max_in_flight: usize,
    pub idle_timeout: Duration,
    /// How long a `/message` body stays open for more packets after the
    /// last; zero ends every body after its first batch.
    pub body_linger: Duration,
    /// How long a lingering body may stay open in all, however busy: inside
    /// a receiver's body-read limit, and short enough that a failed body
    /// leaves little in doubt.
    pub body_max_age: Duration,
}

/// One `/message` request of a peer; never reused.
pub(crate) type Lane = u64;

/// How a `/message` request ended, as far as the sender's decisions go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The peer answered `200`.
    Delivered,
    /// The peer could not be connected to: back off before the next try.
    Unreachable,
    /// Anything else (a status, a broken stream, a timeout).
    Failed,
}

/// Where a batch goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// On a new request, which fails if it has not been answered within
    /// `timeout`.
    Open { lane: Lane, timeout: Duration },
    /// Into the open body of `lane`.
    Push { lane: Lane },
}

/// What a timer asked for, beyond what [`PeerSender::open_body`] and
/// [`PeerSender::wants_batch`] show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timeout {
    Nothing,
    /// The peer has been quiet for the idle timeout with nothing in
    /// flight: retire its task unless a packet is queued.
    Retire,
}

/// What `write_to` pushed straight into the open body while the shell
/// waited (the fast path), for the machine's bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DirectWrites<W> {
    /// The body they went into.
    pub lane: Lane,
    pub packets: u64,
    /// What they leave in that body's ledger.
    pub waiters: Vec<W>,
    /// When the last of them was written, if any was.
    pub last_write: Option<Instant>,
    /// They filled the body's pipe.
    pub full: bool,
}

/// The open body the shell may publish for `write_to`'s fast path (see
/// [`PeerSender::direct_body`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DirectBody {
    pub lane: Lane,
    /// Its max age: no packet goes into it directly from then on.
    pub until: Instant,
    /// When a packet last went into it.
    pub last_write: Instant,
}

/// What one `/message` request carries: how many packets, and what they
/// left to be settled with its outcome (the callers waiting to hear how it
/// went, and in the shell every packet's counters).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Ledger<W> {
    pub packets: u64,
    pub waiters: Vec<W>,
}

impl<W> Default for Ledger<W> {
    fn default() -> Self {
        Ledger {
            packets: 0,
            waiters: Vec::new(),
        }
    }
}

/// The `/message` request whose body is still open for more batches.
#[derive(Debug)]
struct OpenBody {
    lane: Lane,
    opened: Instant,
    last_write: Instant,
    /// When to look at whether the body is due to end. Set when the body
    /// opens and moved when it fires, not on every batch, so a busy body
    /// costs no timer reset per batch.
    check_at: Instant,
    /// The body's pipe holds all the chunks it may: no batch until it has
    /// room, so packets wait in the queue, where drop-oldest applies.
    full: bool,
}

/// A peer's sender. `W` is whoever waits on a packet's outcome.
pub(crate) struct PeerSender<W> {
    limits: SendLimits,
    /// Requests in flight, by lane, with what they carry.
    lanes: Vec<(Lane, Ledger<W>)>,
    open: Option<OpenBody>,
    next_lane: Lane,
    /// When a batch last went out (or a backoff ended): the idle clock.
    last_active: Instant,
    /// When a packet last went to the peer (a batch, or a direct write):
    /// a new body lingers only if that was within the linger.
    last_sent: Option<Instant>,
    idle_check_at: Instant,
    /// The wait after the next failed connect.
    backoff: Duration,
    /// Set while the peer is unreachable: no new batch before it.
    retry_at: Option<Instant>,
}

impl<W> PeerSender<W> {
    pub(crate) fn new(limits: SendLimits, now: Instant) -> Self {
        PeerSender {
            idle_check_at: now + limits.idle_timeout,
            limits,
            lanes: Vec::new(),
            open: None,
            next_lane: 0,
            last_active: now,
            last_sent: None,
            backoff: RECONNECT_BACKOFF_MIN,
            retry_at: None,
        }
    }

    /// Whether to take a batch from the queue now, and how: not while
    /// backing off from an unreachable peer, nor without room (an open body
    /// with room in its pipe, or else fewer than `max_in_flight` requests).
    pub(crate) fn wants_batch(&self, now: Instant) -> Option<Take> {
        let room = match &self.open {
            Some(body) => !body.full,
            None => self.lanes.len() < self.limits.max_in_flight,
        };
        (room && self.retry_at.is_none()).then(|| Take {
            max_bytes: self.limits.max_batch_bytes,
            stale_before: now.checked_sub(self.limits.packet_timeout),
        })
    }

    /// Sends a batch (not empty) taken at `now` as
    /// [`wants_batch`](Self::wants_batch) said: moves its waiters to the
    /// ledger of the request that carries it and says which that is. The
    /// body stays open afterwards (see [`open_body`](Self::open_body)) only
    /// with a linger, no waiter in the batch, the body younger than its max
    /// age, and (for a new body) a busy peer: a packet sent to it within
    /// the linger before this batch, or several in the batch.
    pub(crate) fn send<T: Queued<Waiter = W>>(&mut self, now: Instant, batch: &mut [T]) -> Route {
        self.last_active = now;
        // A burst (packets queued together) or a packet within the linger
        // before this batch: more are likely to follow.
        let busy = batch.len() > 1
            || self
                .last_sent
                .is_some_and(|at| now.saturating_duration_since(at) < self.limits.body_linger);
        self.last_sent = Some(now);
        let open_index = self
            .open
            .as_ref()
            .and_then(|body| self.lanes.iter().position(|(lane, _)| *lane == body.lane));
        let index = open_index.unwrap_or_else(|| {
            // An open body's lane is always in flight; without one, a new
            // request.
            self.open = None;
            self.lanes.push((self.next_lane, Ledger::default()));
            self.next_lane += 1;
            self.lanes.len() - 1
        });
        let (lane, ledger) = &mut self.lanes[index];
        let lane = *lane;
        ledger.packets += batch.len() as u64;
        let awaited = batch.iter().any(Queued::awaited);
        ledger
            .waiters
            .extend(batch.iter_mut().filter_map(Queued::take_waiter));
        let lingers = !self.limits.body_linger.is_zero() && !awaited;
        if open_index.is_none() {
            let mut timeout = self.limits.packet_timeout;
            if lingers && busy {
                self.open = Some(OpenBody {
                    lane,
                    opened: now,
                    last_write: now,
                    check_at: now + self.limits.body_linger.min(self.limits.body_max_age),
                    full: false,
                });
                // A lingering body is answered only after it ends.
                timeout += self.limits.body_max_age;
            }
            return Route::Open { lane, timeout };
        }
        match &mut self.open {
            Some(body) if lingers && now < body.opened + self.limits.body_max_age => {
                body.last_write = now
            }
            _ => self.open = None,
        }
        Route::Push { lane }
    }

    /// The lane whose body is open for more batches; the shell ends any
    /// other body it holds.
    pub(crate) fn open_body(&self) -> Option<Lane> {
        self.open.as_ref().map(|b| b.lane)
    }

    /// The open body's pipe is full (after a push).
    pub(crate) fn body_full(&mut self) {
        if let Some(body) = &mut self.open {
            body.full = true;
        }
    }

    /// The open body's pipe has room again.
    pub(crate) fn body_has_room(&mut self) {
        if let Some(body) = &mut self.open {
            body.full = false;
        }
    }

    /// Whether the shell is to wait for room in the open body's pipe.
    pub(crate) fn body_is_full(&self) -> bool {
        self.open.as_ref().is_some_and(|b| b.full)
    }

    /// The open body `write_to` may push un-awaited packets into itself
    /// while the shell waits with an empty queue, and until when (its max
    /// age): one with room in its pipe, not while backing off. The shell
    /// publishes it only after finding the queue empty, and takes it back
    /// (see [`wrote_directly`](Self::wrote_directly)) before acting on
    /// anything, so packets stay in `write_to` order and batching under
    /// load is unchanged (a queued packet keeps the fast path shut).
    pub(crate) fn direct_body(&self) -> Option<DirectBody> {
        let body = self.open.as_ref().filter(|b| !b.full)?;
        self.retry_at.is_none().then_some(DirectBody {
            lane: body.lane,
            until: body.opened + self.limits.body_max_age,
            last_write: body.last_write,
        })
    }

    /// Folds in what `write_to` pushed into the open body while the shell
    /// waited: the packets join that request's ledger (its outcome is
    /// theirs), the last one counts as a write for the linger and as
    /// activity for the idle clock, and a pipe they filled is full.
    pub(crate) fn wrote_directly(&mut self, direct: DirectWrites<W>) {
        if let Some((_, ledger)) = self.lanes.iter_mut().find(|(l, _)| *l == direct.lane) {
            ledger.packets += direct.packets;
            ledger.waiters.extend(direct.waiters);
        }
        if let Some(at) = direct.last_write {
            self.last_active = self.last_active.max(at);
            self.last_sent = self.last_sent.max(Some(at));
        }
        let Some(body) = self.open.as_mut().filter(|b| b.lane == direct.lane) else {
            return;
        };
        if let Some(at) = direct.last_write {
            body.last_write = body.last_write.max(at);
        }
        body.full |= direct.full;
    }

    /// A request ended: returns its ledger, for the shell to settle with
    /// the request's result. A failed connect starts a backoff that doubles
    /// from [`RECONNECT_BACKOFF_MIN`] to [`RECONNECT_BACKOFF_MAX`] (one per
    /// round of failures: requests that were in flight together fail
    /// together); anything else resets it.
    pub(crate) fn request_finished(
        &mut self,
        now: Instant,
        lane: Lane,
        outcome: Outcome,
    ) -> Option<Ledger<W>> {
        if self.open_body() == Some(lane) {
            self.open = None;
        }
        match outcome {
            Outcome::Unreachable if self.retry_at.is_none() => {
                self.retry_at = Some(now + self.backoff);
                self.backoff = (self.backoff * 2).min(RECONNECT_BACKOFF_MAX);
            }
            Outcome::Unreachable => {}
            Outcome::Delivered | Outcome::Failed => self.backoff = RECONNECT_BACKOFF_MIN,
        }
        let index = self.lanes.iter().position(|(l, _)| *l == lane)?;
        Some(self.lanes.swap_remove(index).1)
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    pub(crate) fn poll_timeout(&self) -> Instant {
        let mut at = self.idle_check_at;
        if let Some(retry) = self.retry_at {
            at = at.min(retry);
        }
        if let Some(body) = &self.open {
            at = at.min(body.check_at);
        }
        at
    }

    /// Acts on the timers due at `now`: a backoff ends, a body that has
    /// been quiet for the linger (or is its max age old) ends (ending
    /// it lets its request finish with the peer's answer), and an idle
    /// peer is due to retire.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Timeout {
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
            self.last_active = now;
        }
        if let Some(body) = self.open.as_mut().filter(|b| b.check_at <= now) {
            let ends_at = (body.last_write + self.limits.body_linger)
                .min(body.opened + self.limits.body_max_age);
            if ends_at <= now {
                self.open = None;
            } else {
                body.check_at = ends_at;
            }
        }
        if self.idle_check_at > now {
            return Timeout::Nothing;
        }
        let idle = self.limits.idle_timeout;
        let quiet = now.saturating_duration_since(self.last_active) >= idle;
        // Should retiring fail (a packet came), look again a little later.
        self.idle_check_at = (self.last_active + idle).max(now + idle / 4);
        if quiet && self.lanes.is_empty() {
            Timeout::Retire
        } else {
            Timeout::Nothing
        }
    }

    /// Records a packet sent to the peer at `at`, as if a batch had gone
    /// out then: tests of lingering bodies start from a peer with traffic.
    #[cfg(test)]
    pub(crate) fn sent_recently(&mut self, at: Instant) {
        self.last_sent = Some(at);
    }

    /// Shutdown: the ledgers of every request still in flight, to fail.
    pub(crate) fn into_ledgers(self) -> impl Iterator<Item = Ledger<W>> {
        self.lanes.into_iter().map(|(_, ledger)| ledger)
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "machine_linger_tests.rs"]
mod linger_tests;
