//! Per-peer packet delivery.
//!
//! Every peer gets its own bounded queue and its own task, so a slow or dead
//! peer only ever delays its own packets (the reference sends every packet
//! from one goroutine, so one dead peer stalls all of them). A task sends
//! what has queued up as one chunk of frames in a `/message` body (the
//! contract lets a body carry any number of frames), keeps that body open a
//! little for the next packets (see `run_peer`), keeps a few requests in
//! flight on the peer's one HTTP/2 connection, and retires itself when the
//! peer goes quiet.
//!
//! A peer that cannot be connected to (a closed port, a failed handshake) is
//! retried after a backoff that doubles from [`RECONNECT_BACKOFF_MIN`] to
//! [`RECONNECT_BACKOFF_MAX`]: its packets wait in its queue meanwhile
//! (oldest dropped when full, as always), instead of every batch burning a
//! connect attempt, which would take CPU from the healthy peers.

use super::body::FrameBody;
use super::connector::Connector;
use super::metrics::Metrics;
use super::write_buffers::WriteBuffers;
use crate::codec::{encoded_len, frame_header};
use crate::{Error, PeerAddr, MESSAGE_PATH};
use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use hyper::StatusCode;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The first wait after a failed connect before the next attempt.
pub(crate) const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(20);
/// The longest wait between connect attempts to an unreachable peer.
pub(crate) const RECONNECT_BACKOFF_MAX: Duration = Duration::from_millis(250);

/// How long a lingering `/message` body may stay open in all: well inside
/// a receiver's body-read limit (ours defaults to 10 s), and short enough
/// that a failed body leaves little in doubt.
pub(crate) const BODY_MAX_AGE: Duration = Duration::from_secs(1);

/// Chunks (batches) queued for a `/message` body beyond what HTTP/2 flow
/// control lets out; past it, packets wait in the peer's queue, where
/// drop-oldest applies.
const BODY_CHUNKS: usize = 4;

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
}

/// A queued packet, with the caller waiting for its outcome if any.
pub(crate) struct Outgoing {
    pub payload: Bytes,
    pub done: Option<oneshot::Sender<Result<(), Error>>>,
    /// When `write_to` took it: a packet that waited `packet_timeout` in the
    /// queue fails rather than going out stale.
    pub queued_at: Instant,
}

/// What a packet that waited out `packet_timeout` in its queue fails with.
pub(crate) const QUEUE_WAIT: &str = "packet waiting in the send queue";

type PeerMap = Mutex<HashMap<String, Arc<PeerQueue>, foldhash::fast::RandomState>>;

pub(crate) struct Senders {
    ctx: Arc<SendCtx>,
}

struct SendCtx {
    peers: PeerMap,
    /// Buffers batches are encoded into, reused (see `write_buffers`).
    bodies: Arc<WriteBuffers>,
    connector: Arc<Connector>,
    metrics: Metrics,
    limits: SendLimits,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

struct PeerQueue {
    key: String,
    addr: PeerAddr,
    state: Mutex<QueueState>,
    wake: Notify,
}

#[derive(Default)]
struct QueueState {
    items: VecDeque<Outgoing>,
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

impl Senders {
    pub(crate) fn new(
        connector: Arc<Connector>,
        metrics: Metrics,
        limits: SendLimits,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Self {
        Senders {
            ctx: Arc::new(SendCtx {
                peers: Mutex::new(HashMap::default()),
                bodies: WriteBuffers::new(limits.max_batch_bytes),
                connector,
                metrics,
                limits,
                shutdown,
                tasks,
            }),
        }
    }

    /// Queues a packet for `addr`. When the queue is full the oldest packet
    /// is dropped (and counted): fresh gossip is worth more than stale.
    ///
    /// This is the per-packet hot path, and with a dead peer in the set it
    /// runs for packets that will never leave: one map lookup and two
    /// uncontended locks, no allocation, no clone, and no wake-up unless the
    /// peer's task is idle waiting for packets.
    pub(crate) fn enqueue(&self, addr: &str, out: Outgoing) -> Result<(), Error> {
        let dropped;
        let queue_addr;
        let mut log_drops = None;
        {
            let mut peers = self.ctx.peers.lock().unwrap();
            let queue = match peers.get(addr) {
                Some(q) => q,
                None => {
                    if self.ctx.shutdown.is_cancelled() {
                        return Err(Error::Shutdown);
                    }
                    self.new_queue(&mut peers, addr)?
                }
            };
            // Lock order: the peer map, then a queue (as `try_retire`).
            let mut state = queue.state.lock().unwrap();
            if state.closed {
                // Only shutdown closes a queue that is still in the map (a
                // retiring task removes its queue under the map lock).
                return Err(Error::Shutdown);
            }
            // The caller's clock reading, so the drop path reads no clock.
            let now = out.queued_at;
            state.items.push_back(out);
            dropped = if state.items.len() > self.ctx.limits.queue_size {
                log_drops = state.drops.record(now);
                state.items.pop_front()
            } else {
                // Counted before the task can take it (and count it out).
                self.ctx.metrics.tx_packet_queue_length.inc();
                None
            };
            if std::mem::take(&mut state.task_waiting) {
                queue.wake.notify_one();
            }
            queue_addr = dropped
                .as_ref()
                .and_then(|d| d.done.as_ref())
                .map(|_| queue.addr.to_string());
        }
        // One in, one out: the queue length gauge is unchanged.
        if let Some(old) = dropped {
            self.ctx.metrics.tx_packets_dropped.inc();
            if let Some(n) = log_drops {
                tracing::warn!(
                    peer = addr,
                    dropped = n,
                    queue_size = self.ctx.limits.queue_size,
                    "send queue full (peer slow or unreachable): dropped the oldest packets"
                );
            }
            if let (Some(done), Some(addr)) = (old.done, queue_addr) {
                let _ = done.send(Err(Error::Dropped { addr }));
            }
        }
        Ok(())
    }

    /// Makes the queue and task for a peer not in the map.
    fn new_queue<'m>(
        &self,
        peers: &'m mut HashMap<String, Arc<PeerQueue>, foldhash::fast::RandomState>,
        addr: &str,
    ) -> Result<&'m Arc<PeerQueue>, Error> {
        let queue = Arc::new(PeerQueue {
            key: addr.to_string(),
            addr: addr.parse()?,
            state: Mutex::new(QueueState::default()),
            wake: Notify::new(),
        });
        self.ctx
            .tasks
            .spawn(run_peer(self.ctx.clone(), queue.clone()));
        Ok(peers.entry(addr.to_string()).or_insert(queue))
    }

    /// Peers with a live queue right now.
    pub(crate) fn peer_count(&self) -> usize {
        self.ctx.peers.lock().unwrap().len()
    }
}

impl PeerQueue {
    /// Takes queued packets up to the batch limit (at least one if any),
    /// moving those queued before `stale_before` to `expired` instead.
    /// An empty batch means the task waits for the next packet's wake-up.
    fn take_batch(
        &self,
        max_bytes: usize,
        stale_before: Option<Instant>,
        expired: &mut Vec<Outgoing>,
    ) -> Vec<Outgoing> {
        let mut state = self.state.lock().unwrap();
        // The queue is in `write_to` order, so the stale ones are in front.
        if let Some(limit) = stale_before {
            while state.items.front().is_some_and(|o| o.queued_at < limit) {
                expired.extend(state.items.pop_front());
            }
        }
        if state.items.is_empty() {
            state.task_waiting = true;
            return Vec::new();
        }
        let mut bytes = 0;
        let mut batch = Vec::new();
        while let Some(front) = state.items.front() {
            let len = encoded_len(front.payload.len());
            if !batch.is_empty() && bytes + len > max_bytes {
                break;
            }
            bytes += len;
            batch.push(state.items.pop_front().expect("front exists"));
        }
        batch
    }

    /// Closes the queue and hands back what it still held.
    fn close(&self) -> VecDeque<Outgoing> {
        let mut state = self.state.lock().unwrap();
        state.closed = true;
        std::mem::take(&mut state.items)
    }
}

impl SendCtx {
    /// Removes an idle peer's queue, unless a packet arrived meanwhile.
    fn try_retire(&self, queue: &Arc<PeerQueue>) -> bool {
        let mut peers = self.peers.lock().unwrap();
        let mut state = queue.state.lock().unwrap();
        if !state.items.is_empty() {
            return false;
        }
        state.closed = true;
        if peers.get(&queue.key).is_some_and(|q| Arc::ptr_eq(q, queue)) {
            peers.remove(&queue.key);
        }
        true
    }

    fn fail(&self, items: impl IntoIterator<Item = Outgoing>, err: &Error) {
        fail(&self.metrics, items, err)
    }

    /// Encodes a batch as one chunk of frames, moving its waiters to
    /// `ledger`.
    fn encode(&self, items: Vec<Outgoing>, ledger: &mut Ledger) -> Bytes {
        let mut body = self
            .bodies
            .take(items.iter().map(|o| encoded_len(o.payload.len())).sum());
        let mut payload_bytes = 0u64;
        for item in &items {
            payload_bytes += item.payload.len() as u64;
            // Payloads over 4 GiB were refused by write_to, so the header
            // always fits.
            let (header, len) = frame_header(item.payload.len());
            body.extend_from_slice(&header[..len]);
            body.extend_from_slice(&item.payload);
        }
        self.metrics.tx_packets.inc_by(items.len() as u64);
        self.metrics.tx_bytes.inc_by(payload_bytes);
        ledger.packets += items.len() as u64;
        ledger
            .waiters
            .extend(items.into_iter().filter_map(|item| item.done));
        body.freeze()
    }

    /// Sends one `/message` request whose body is whatever arrives on
    /// `body` until it closes; `lingers` says whether it may stay open
    /// after its first chunk (which lengthens its deadline by
    /// [`BODY_MAX_AGE`]).
    async fn send_body(
        &self,
        addr: &PeerAddr,
        lane: u64,
        body: mpsc::Receiver<Bytes>,
        lingers: bool,
    ) -> (u64, Result<(), Error>) {
        let body = FrameBody::channel(body, self.shutdown.clone().cancelled_owned());
        let req = match self.connector.post(addr, MESSAGE_PATH, body) {
            Ok(req) => req,
            Err(e) => return (lane, Err(e)),
        };
        let timeout = self.limits.packet_timeout
            + if lingers {
                BODY_MAX_AGE
            } else {
                Duration::ZERO
            };
        let result = match tokio::time::timeout(timeout, self.connector.request(addr, req)).await {
            Err(_) => Err(Error::Timeout {
                what: "packet delivery",
                after: timeout,
            }),
            Ok(Err(e)) => Err(e),
            Ok(Ok(resp)) if resp.status() == StatusCode::OK => Ok(()),
            Ok(Ok(resp)) => Err(Error::Status {
                addr: addr.to_string(),
                status: resp.status().as_u16(),
            }),
        };
        (lane, result)
    }
}

/// Fails packets, telling whoever waits on them why. The metric is counted
/// first, so a caller that saw its `send` fail also sees it counted.
fn fail(metrics: &Metrics, items: impl IntoIterator<Item = Outgoing>, err: &Error) {
    let mut ledger = Ledger::default();
    for item in items {
        ledger.packets += 1;
        ledger.waiters.extend(item.done);
    }
    ledger.settle(metrics, Err(err));
}

/// What one `/message` request carries: how many packets, and the callers
/// waiting to hear how it went.
#[derive(Default)]
struct Ledger {
    packets: u64,
    waiters: Vec<oneshot::Sender<Result<(), Error>>>,
}

impl Ledger {
    /// Tells the waiters how the request ended; a failure counts every
    /// packet it carried as failed (HTTP gives no per-frame answer, so a
    /// failed body's packets are not known to have arrived). The metric is
    /// counted before anyone is told.
    fn settle(self, metrics: &Metrics, result: Result<(), &Error>) {
        if result.is_err() {
            metrics.tx_packets_failed.inc_by(self.packets);
        }
        for done in self.waiters {
            let _ = done.send(result.map_err(Error::duplicate));
        }
    }
}

/// The `/message` request whose body is still open for more batches.
struct OpenBody {
    lane: u64,
    tx: mpsc::Sender<Bytes>,
    opened: Instant,
    last_write: Instant,
}

impl OpenBody {
    /// When the body is to be ended: after `linger` without a batch, or
    /// [`BODY_MAX_AGE`] after it opened, whichever comes first.
    fn ends_at(&self, linger: Duration) -> Instant {
        (self.last_write + linger).min(self.opened + BODY_MAX_AGE)
    }
}

/// A peer's delivery task.
///
/// Each batch of queued packets becomes a chunk of frames. With a linger
/// (the default), the chunk goes into the peer's open `/message` body when
/// there is one, and a body stays open for more until it has been quiet
/// for the linger or is [`BODY_MAX_AGE`] old: on an open HTTP/2 stream a
/// packet is one `DATA` frame away from the peer, about half the latency of
/// a new request (which costs headers, a new stream and a task on each
/// side). The receiver delivers each frame as it arrives, as the contract
/// says. A body carrying a packet someone waits on (`send`) is ended at
/// once, so the answer does not wait for the linger.
async fn run_peer(ctx: Arc<SendCtx>, queue: Arc<PeerQueue>) {
    let limits = &ctx.limits;
    let mut in_flight = FuturesUnordered::new();
    // Requests in flight, by lane, with what they carry.
    let mut ledgers: Vec<(u64, Ledger)> = Vec::new();
    let mut open: Option<OpenBody> = None;
    let mut next_lane = 0u64;
    let mut last_active = Instant::now();
    let idle = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(idle);
    let end_body = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(end_body);
    // Set while the peer is unreachable: no new batch before it fires.
    let mut backoff = RECONNECT_BACKOFF_MIN;
    let retry = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(retry);
    let mut waiting_to_retry = false;
    let mut expired = Vec::new();
    loop {
        loop {
            let room = match &open {
                Some(body) => body.tx.capacity() > 0,
                None => in_flight.len() < limits.max_in_flight,
            };
            if waiting_to_retry || !room {
                break;
            }
            let now = Instant::now();
            let batch = queue.take_batch(
                limits.max_batch_bytes,
                now.checked_sub(limits.packet_timeout),
                &mut expired,
            );
            if !expired.is_empty() {
                ctx.metrics
                    .tx_packet_queue_length
                    .dec_by(expired.len() as i64);
                tracing::debug!(peer = %queue.addr, packets = expired.len(), "packets waited out the packet timeout in the send queue");
                ctx.fail(
                    expired.drain(..),
                    &Error::Timeout {
                        what: QUEUE_WAIT,
                        after: limits.packet_timeout,
                    },
                );
            }
            if batch.is_empty() {
                break;
            }
            ctx.metrics
                .tx_packet_queue_length
                .dec_by(batch.len() as i64);
            last_active = now;
            let awaited = batch.iter().any(|o| o.done.is_some());
            let body = match open.take() {
                Some(body) => body,
                None => {
                    let (tx, rx) = mpsc::channel(BODY_CHUNKS);
                    let lane = next_lane;
                    next_lane += 1;
                    ledgers.push((lane, Ledger::default()));
                    let lingers = !limits.body_linger.is_zero() && !awaited;
                    in_flight.push(ctx.send_body(&queue.addr, lane, rx, lingers));
                    if lingers {
                        end_body
                            .as_mut()
                            .reset((now + limits.body_linger.min(BODY_MAX_AGE)).into());
                    }
                    OpenBody {
                        lane,
                        tx,
                        opened: now,
                        last_write: now,
                    }
                }
            };
            let ledger = ledgers
                .iter_mut()
                .find(|(lane, _)| *lane == body.lane)
                .map(|(_, l)| l)
                .expect("an open body has a ledger");
            let chunk = ctx.encode(batch, ledger);
            // Room was checked above and only this task sends. A body whose
            // request already ended drops the chunk: its packets are in
            // the ledger, which that request's outcome settles.
            let _ = body.tx.try_send(chunk);
            if !awaited && !limits.body_linger.is_zero() && now < body.opened + BODY_MAX_AGE {
                open = Some(OpenBody {
                    last_write: now,
                    ..body
                });
            }
        }
        // Waits for room in a full open body; its own future, so the select
        // below borrows nothing it changes.
        let full_body = open
            .as_ref()
            .filter(|b| b.tx.capacity() == 0)
            .map(|b| b.tx.clone());
        tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => break,
            Some((lane, result)) = in_flight.next(), if !in_flight.is_empty() => {
                if open.as_ref().is_some_and(|b| b.lane == lane) {
                    open = None;
                }
                if let Some(i) = ledgers.iter().position(|(l, _)| *l == lane) {
                    let (_, ledger) = ledgers.swap_remove(i);
                    if let Err(e) = &result {
                        tracing::debug!(peer = %queue.addr, packets = ledger.packets, error = %e, "packet delivery failed");
                    }
                    ledger.settle(&ctx.metrics, result.as_ref().map(|_| ()));
                }
                match result {
                    Err(Error::Connect { .. }) if !waiting_to_retry => {
                        waiting_to_retry = true;
                        retry.as_mut().reset((Instant::now() + backoff).into());
                        backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
                    }
                    Err(Error::Connect { .. }) => {}
                    _ => backoff = RECONNECT_BACKOFF_MIN,
                }
            }
            _ = &mut retry, if waiting_to_retry => {
                waiting_to_retry = false;
                last_active = Instant::now();
            }
            _ = async { full_body.expect("checked").reserve().await.map(drop) }, if full_body.is_some() => {}
            _ = &mut end_body, if open.is_some() => {
                let ends_at = open.as_ref().map(|b| b.ends_at(limits.body_linger));
                match ends_at {
                    // Ending the body lets its request finish with the
                    // peer's answer.
                    Some(t) if t <= Instant::now() => open = None,
                    Some(t) => end_body.as_mut().reset(t.into()),
                    None => {}
                }
            }
            _ = queue.wake.notified() => {}
            _ = &mut idle => {
                if in_flight.is_empty()
                    && last_active.elapsed() >= limits.idle_timeout
                    && ctx.try_retire(&queue)
                {
                    return;
                }
                let next = (last_active + limits.idle_timeout).max(Instant::now() + limits.idle_timeout / 4);
                idle.as_mut().reset(next.into());
            }
        }
    }
    // Shutdown: whatever is queued or in flight fails, loudly.
    drop(in_flight);
    drop(open);
    for (_, ledger) in ledgers {
        ledger.settle(&ctx.metrics, Err(&Error::Shutdown));
    }
    let left = queue.close();
    ctx.metrics.tx_packet_queue_length.dec_by(left.len() as i64);
    ctx.fail(left, &Error::Shutdown);
}

#[cfg(test)]
mod tests {
    use super::*;

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
