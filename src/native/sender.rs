//! Per-peer packet delivery.
//!
//! Every peer gets its own bounded queue and its own task, so a slow or dead
//! peer only ever delays its own packets (the reference sends every packet
//! from one goroutine, so one dead peer stalls all of them). A task sends
//! what has queued up as one chunk of frames in a `/message` body (the
//! contract lets a body carry any number of frames), keeps that body open a
//! little for the next packets, keeps a few requests in flight on the
//! peer's one HTTP/2 connection, and retires itself when the peer goes
//! quiet.
//!
//! Transports handed one [`Client`](crate::Client) share its senders as
//! they share its connections: the packets of every cluster member of a
//! process to one peer wait in one queue and ride the same `/message`
//! bodies, each packet still counted in its own transport's metrics
//! ([`Outgoing::metrics`]): see [`Client`](crate::Client) for why and
//! what it measured.
//!
//! A peer that cannot be connected to (a closed port, a failed handshake) is
//! retried after a backoff that doubles from
//! [`RECONNECT_BACKOFF_MIN`](machine::RECONNECT_BACKOFF_MIN) to
//! [`RECONNECT_BACKOFF_MAX`](machine::RECONNECT_BACKOFF_MAX): its packets
//! wait in its queue meanwhile (oldest dropped when full, as always),
//! instead of every batch burning a connect attempt, which would take CPU
//! from the healthy peers.
//!
//! The rules live in two runtime-free parts, tested with virtual time:
//! [`queue`] (drop-oldest, batches, expiry) and [`machine`] (when and where
//! a batch goes, bodies, backoff, retirement). [`direct`] is the fast path
//! (`write_to` pushing into an open body while the task sleeps). This file
//! is their shell: the shared queues, the tasks, timers and channels,
//! encoding; [`request`] is one `/message` request over HTTP.

mod direct;
mod machine;
mod queue;
mod request;

use super::answers::AnswerTo;
use super::body::FrameBody;
use super::connector::Connector;
use super::metrics::Metrics;
use super::write_buffers::{WriteBuffer, WriteBuffers};
use crate::codec::{encoded_len, frame_header};
use crate::{Error, Options, PeerAddr};
use bytes::Bytes;
use direct::Shared;
use futures_util::stream::{FuturesUnordered, StreamExt};
use machine::{Lane, Ledger, Outcome, PeerSender, Route, Timeout};
use queue::Queued;
use request::answer_for;
pub(crate) use request::MessageSink;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) use machine::SendLimits;

/// The limits a sender built from `options` delivers within. Over
/// HTTP/1.1 (`http1`) a body holds a whole connection, and the worker
/// runtimes it is for may read a body whole before delivering any of it:
/// bodies end after their first batch there.
pub(crate) fn limits_from(options: &Options, http1: bool) -> SendLimits {
    SendLimits {
        queue_size: options.peer_queue_size,
        packet_timeout: options.packet_timeout,
        max_batch_bytes: options.max_batch_bytes,
        max_in_flight: options.max_in_flight_per_peer,
        idle_timeout: options.idle_peer_timeout,
        body_linger: if http1 {
            Duration::ZERO
        } else {
            options.message_body_linger
        },
        body_max_age: options.message_body_max_age,
    }
}

/// Chunks (batches) queued for a `/message` body beyond what HTTP/2 flow
/// control lets out; past it, packets wait in the peer's queue, where
/// drop-oldest applies.
const BODY_CHUNKS: usize = 4;

/// Whoever waits to hear how a packet's request ended.
type Waiter = oneshot::Sender<Result<(), Error>>;

/// A queued packet, with the caller waiting for its outcome if any.
pub(crate) struct Outgoing {
    pub payload: Bytes,
    pub done: Option<Waiter>,
    /// When `write_to` took it: a packet that waited `packet_timeout` in the
    /// queue fails rather than going out stale.
    pub queued_at: Instant,
    /// The metrics of the transport that queued it, which count it (sent,
    /// dropped, failed, waiting) whoever's sender carries it.
    pub metrics: Arc<Metrics>,
    /// The peer answers it at once: where the answer goes, if its request
    /// asks for it in the response (see `answers`).
    pub answer_to: Option<AnswerTo>,
}

/// What a packet leaves in its request's ledger: the counters its outcome
/// goes to, and the caller waiting for it, if any.
pub(crate) struct Settle {
    metrics: Arc<Metrics>,
    done: Option<Waiter>,
}

impl Queued for Outgoing {
    type Waiter = Settle;

    fn wire_len(&self) -> usize {
        encoded_len(self.payload.len())
    }

    fn queued_at(&self) -> Instant {
        self.queued_at
    }

    fn awaited(&self) -> bool {
        self.done.is_some()
    }

    fn take_waiter(&mut self) -> Option<Settle> {
        Some(Settle {
            metrics: self.metrics.clone(),
            done: self.done.take(),
        })
    }
}

/// What a packet that waited out `packet_timeout` in its queue fails with.
pub(crate) const QUEUE_WAIT: &str = "packet waiting in the send queue";

type PeerMap = Mutex<HashMap<String, Arc<PeerQueue>, foldhash::fast::RandomState>>;

/// Every peer's queue and delivery task, over a connection layer `S`: a
/// transport's own, or a shared client's (cheap to clone).
pub(crate) struct Senders<S = Connector> {
    ctx: Arc<SendCtx<S>>,
}

impl<S> Clone for Senders<S> {
    fn clone(&self) -> Self {
        Senders {
            ctx: self.ctx.clone(),
        }
    }
}

struct SendCtx<S> {
    peers: PeerMap,
    /// Buffers batches are encoded into, reused (see `write_buffers`).
    bodies: Arc<WriteBuffers>,
    sink: Arc<S>,
    limits: SendLimits,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

struct PeerQueue {
    key: String,
    addr: PeerAddr,
    state: Mutex<Shared>,
    /// Wakes the task when it waits for packets (see `Queue`).
    wake: Notify,
}

impl<S: MessageSink> Senders<S> {
    pub(crate) fn new(
        sink: Arc<S>,
        limits: SendLimits,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Self {
        Senders {
            ctx: Arc::new(SendCtx {
                peers: Mutex::new(HashMap::default()),
                bodies: WriteBuffers::new(limits.max_batch_bytes),
                sink,
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
    /// peer's task is idle waiting for packets. A packet for a peer whose
    /// task sleeps on an open body with nothing queued skips the queue and
    /// the task: it is encoded here and pushed into the body (see
    /// [`direct`]).
    pub(crate) fn enqueue(&self, addr: &str, out: Outgoing) -> Result<(), Error> {
        let pushed;
        let queue_addr;
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
            let out = match state.write_direct(out, |payload| self.ctx.encode_one(payload)) {
                Ok(()) => return Ok(()),
                Err(out) => out,
            };
            // Only shutdown closes a queue that is still in the map (a
            // retiring task removes its queue under the map lock).
            pushed = state
                .queue
                .push(out, self.ctx.limits.queue_size)
                .map_err(|_| Error::Shutdown)?;
            // Counted before the task can take it (and count it out); a
            // dropped packet is counted out below.
            if let Some(queued) = state.queue.newest() {
                queued.metrics.tx_packet_queue_length.inc();
            }
            if pushed.wake {
                queue.wake.notify_one();
            }
            queue_addr = pushed
                .dropped
                .as_ref()
                .and_then(|d| d.done.as_ref())
                .map(|_| queue.addr.to_string());
        }
        if let Some(old) = pushed.dropped {
            old.metrics.tx_packet_queue_length.dec();
            old.metrics.tx_packets_dropped.inc();
            if let Some(n) = pushed.log_drops {
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
            state: Mutex::new(Shared::default()),
            wake: Notify::new(),
        });
        self.ctx
            .tasks
            .spawn(run_peer(self.ctx.clone(), queue.clone()));
        Ok(peers.entry(addr.to_string()).or_insert(queue))
    }

    /// The limits it delivers within.
    pub(crate) fn limits(&self) -> &SendLimits {
        &self.ctx.limits
    }

    /// Peers with a live queue right now.
    pub(crate) fn peer_count(&self) -> usize {
        self.ctx.peers.lock().unwrap().len()
    }
}

impl<S: MessageSink> SendCtx<S> {
    /// Removes an idle peer's queue, unless a packet arrived meanwhile.
    fn try_retire(&self, queue: &Arc<PeerQueue>) -> bool {
        let mut peers = self.peers.lock().unwrap();
        if !queue.state.lock().unwrap().queue.close_if_empty() {
            return false;
        }
        if peers.get(&queue.key).is_some_and(|q| Arc::ptr_eq(q, queue)) {
            peers.remove(&queue.key);
        }
        true
    }

    /// Fails packets that were queued (counting them out of the queue),
    /// telling whoever waits on them why.
    fn fail(&self, items: impl IntoIterator<Item = Outgoing>, err: &Error) {
        let mut ledger = Ledger::default();
        for mut item in items {
            item.metrics.tx_packet_queue_length.dec();
            ledger.packets += 1;
            ledger.waiters.extend(item.take_waiter());
        }
        settle(ledger, Err(err));
    }

    /// Encodes a batch (its waiters already in a ledger) as one chunk of
    /// frames.
    fn encode(&self, items: Vec<Outgoing>) -> Bytes {
        let mut body = self.bodies.take(items.iter().map(Queued::wire_len).sum());
        for item in &items {
            item.metrics.tx_packet_queue_length.dec();
            item.metrics.tx_packets.inc();
            item.metrics.tx_bytes.inc_by(item.payload.len() as u64);
            push_frame(&mut body, &item.payload);
        }
        body.freeze()
    }

    /// Encodes one packet as a chunk of one frame (the fast path, which
    /// counts it).
    fn encode_one(&self, payload: &Bytes) -> Bytes {
        let mut body = self.bodies.take(encoded_len(payload.len()));
        push_frame(&mut body, payload);
        body.freeze()
    }

    /// Sends one `/message` request whose body is whatever arrives on
    /// `body` until it closes (see [`request::exchange`]).
    async fn send_body(
        &self,
        addr: &PeerAddr,
        lane: Lane,
        body: mpsc::Receiver<Bytes>,
        timeout: Duration,
        answer: Option<AnswerTo>,
    ) -> (Lane, Result<(), Error>) {
        let body = FrameBody::channel(body, self.shutdown.clone().cancelled_owned());
        let result = request::exchange(&*self.sink, addr, body, timeout, answer).await;
        (lane, result)
    }
}

/// Appends `payload` to `body` as one frame.
fn push_frame(body: &mut WriteBuffer, payload: &[u8]) {
    // Payloads over 4 GiB were refused by write_to, so the header always
    // fits.
    let (header, len) = frame_header(payload.len());
    body.extend_from_slice(&header[..len]);
    body.extend_from_slice(payload);
}

/// Tells a request's waiters how it ended; a failure counts every packet it
/// carried as failed, each in its own transport's metrics (HTTP gives no
/// per-frame answer, so a failed body's packets are not known to have
/// arrived). The metrics are counted before anyone is told, so a caller
/// that saw its `send` fail also sees it counted.
fn settle(ledger: Ledger<Settle>, result: Result<(), &Error>) {
    if result.is_err() {
        for packet in &ledger.waiters {
            packet.metrics.tx_packets_failed.inc();
        }
    }
    for done in ledger.waiters.into_iter().filter_map(|packet| packet.done) {
        let _ = done.send(result.map_err(Error::duplicate));
    }
}

/// What woke a peer's task.
enum Event {
    Shutdown,
    Finished(Lane, Result<(), Error>),
    BodyHasRoom,
    Timer,
    Packets,
}

/// A peer's delivery task: the shell around its [`PeerSender`], which
/// decides everything; this carries it out with tokio and hyper.
async fn run_peer<S: MessageSink>(ctx: Arc<SendCtx<S>>, queue: Arc<PeerQueue>) {
    let limits = &ctx.limits;
    let mut sender = PeerSender::new(limits.clone(), Instant::now());
    // Requests are boxed: `FuturesUnordered::new` allocates a node the size
    // of its future type (its stub), and a request's future is 3,680 bytes
    // (measured, release). A task per peer and member held that much with
    // nothing in flight: 122 MB for 400 members in one process (heaptrack).
    let mut in_flight = FuturesUnordered::new();
    // The pipe into the open body, while the machine keeps one open.
    let mut body: Option<(Lane, mpsc::Sender<Bytes>)> = None;
    // Whether the open body is published for the fast path (see `direct`).
    let mut published = false;
    let mut armed = sender.poll_timeout();
    let timer = tokio::time::sleep_until(armed.into());
    tokio::pin!(timer);
    let mut expired = Vec::new();
    loop {
        loop {
            let now = Instant::now();
            let Some(take) = sender.wants_batch(now) else {
                break;
            };
            let mut batch = {
                let mut shared = queue.state.lock().unwrap();
                let batch = shared.queue.take_batch(&take, &mut expired);
                // Nothing queued: open the fast path into the body, if the
                // machine allows it, under the lock that found the queue
                // empty.
                if let (true, Some(direct), Some((lane, pipe))) =
                    (batch.is_empty(), sender.direct_body(), &body)
                {
                    if direct.lane == *lane {
                        shared.publish(direct, pipe);
                        published = true;
                    }
                }
                batch
            };
            if !expired.is_empty() {
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
            let route = sender.send(now, &mut batch);
            // Answers are asked for on a request ended with its first
            // chunk: a lingering body's answer would wait for its end.
            let answer = match route {
                Route::Open { lane, .. } if sender.open_body() != Some(lane) => answer_for(&batch),
                _ => None,
            };
            let chunk = ctx.encode(batch);
            if let Route::Open { lane, timeout } = route {
                let (tx, rx) = mpsc::channel(BODY_CHUNKS);
                let request = ctx.send_body(&queue.addr, lane, rx, timeout, answer);
                in_flight.push(Box::pin(request));
                body = Some((lane, tx));
            }
            if let Some((_, tx)) = &body {
                // Room was checked (`wants_batch`) and only this task
                // sends. A body whose request already ended drops the
                // chunk: its packets are in the ledger, which that
                // request's outcome settles.
                let _ = tx.try_send(chunk);
            }
            match &body {
                Some((lane, tx)) if sender.open_body() == Some(*lane) => {
                    if tx.capacity() == 0 {
                        sender.body_full();
                    }
                }
                // The machine ended the body: dropping the pipe ends it.
                _ => body = None,
            }
        }
        // Waits for room in a full open body; its own future, so the select
        // below borrows nothing it changes.
        let full_body = body
            .as_ref()
            .filter(|_| sender.body_is_full())
            .map(|(_, tx)| tx.clone());
        let next = sender.poll_timeout();
        if next != armed || timer.is_elapsed() {
            armed = next;
            timer.as_mut().reset(next.into());
        }
        let event = tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => Event::Shutdown,
            Some((lane, result)) = in_flight.next(), if !in_flight.is_empty() => {
                Event::Finished(lane, result)
            }
            Some(_) = async { full_body?.reserve_owned().await.ok() }, if full_body.is_some() => {
                Event::BodyHasRoom
            }
            () = &mut timer => Event::Timer,
            _ = queue.wake.notified() => Event::Packets,
        };
        // Whatever woke the task, the fast path closes first, and what went
        // through it joins the machine's books before anything is decided.
        if std::mem::take(&mut published) {
            if let Some(direct) = queue.state.lock().unwrap().take_back() {
                sender.wrote_directly(direct);
            }
        }
        match event {
            Event::Shutdown => break,
            Event::Finished(lane, result) => {
                let outcome = match &result {
                    Ok(()) => Outcome::Delivered,
                    Err(Error::Connect { .. }) => Outcome::Unreachable,
                    Err(_) => Outcome::Failed,
                };
                if let Some(ledger) = sender.request_finished(Instant::now(), lane, outcome) {
                    if let Err(e) = &result {
                        tracing::debug!(peer = %queue.addr, packets = ledger.packets, error = %e, "packet delivery failed");
                    }
                    settle(ledger, result.as_ref().map(|_| ()));
                }
            }
            Event::BodyHasRoom => sender.body_has_room(),
            Event::Timer => {
                if sender.handle_timeout(Instant::now()) == Timeout::Retire
                    && ctx.try_retire(&queue)
                {
                    return;
                }
            }
            Event::Packets => {}
        }
        // A body the machine ended (its request finished, or it lingered
        // out) ends when its pipe is dropped.
        if body.as_ref().map(|(lane, _)| *lane) != sender.open_body() {
            body = None;
        }
    }
    // Shutdown: whatever is queued or in flight fails, loudly.
    drop(in_flight);
    drop(body);
    let left = queue.state.lock().unwrap().queue.close();
    for ledger in sender.into_ledgers() {
        settle(ledger, Err(&Error::Shutdown));
    }
    ctx.fail(left, &Error::Shutdown);
}

#[cfg(test)]
#[path = "sender/shell_tests.rs"]
mod tests;
