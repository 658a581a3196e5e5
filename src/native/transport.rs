//! The transport: sending, receiving, dialing, shutting down.

use super::answers::{AnswerTo, Answers};
use super::client::Client;
use super::inbox::Inbox;
use super::metrics::{Metrics, MetricsRegistry};
use super::options::{Options, BODY_AGE_MARGIN};
use super::sender::{limits_from, Outgoing, Senders};
use super::stream::{write_channel, StreamConn, StreamContext};
use crate::contract::{Cors, Token};
use crate::{Error, Packet, PeerAddr, STREAM_PATH};
use bytes::Bytes;
use futures_util::Stream;
use http_body_util::BodyExt;
use hyper::StatusCode;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What a stream dial over HTTP/1.1 that gets no answer most likely means:
/// a Go peer answers HTTP/1.1 with `505`, but only once the request body
/// ends, which a stream's body does not.
const DIAL_HTTP1: &str = "stream dial over HTTP/1.1 (no answer to the stream request: the \
     peer may speak only HTTP/2, as Go peers do: drop client_http1 / --http1)";

/// A gossip transport over HTTP/2: the Rust counterpart of ckit's
/// `gossiphttp.Transport` (a memberlist `NodeAwareTransport`).
///
/// Cheap to clone; clones share one transport. Send with
/// [`write_to`](Self::write_to), receive from [`packets`](Self::packets),
/// open streams with [`dial`](Self::dial), accept them from
/// [`streams`](Self::streams). Serve it with [`serve`](Self::serve) or mount
/// [`handler`](Self::handler) in your own HTTP server.
///
/// # Panics
///
/// Creating a transport needs no runtime, but using one does: methods that
/// start background work ([`write_to`](Self::write_to), [`send`](Self::send),
/// [`dial`](Self::dial), [`serve`](Self::serve)) panic when called outside a
/// tokio runtime, as `tokio::spawn` does.
#[derive(Clone)]
pub struct Transport {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) options: Options,
    pub(crate) metrics: Metrics,
    pub(crate) registry: MetricsRegistry,
    /// Where received packets go. Its channel is not boxed, unlike the
    /// streams below: a box per packet made the 64-byte packet row 7%
    /// slower (benches/RESULTS.md), for 88 KB per transport.
    pub(crate) inbox: Arc<Inbox>,
    /// Packets for peers whose requests are being answered (see `answers`).
    pub(crate) answers: Answers,
    packets_rx: async_channel::Receiver<Packet>,
    // Boxed: `async_channel::bounded` allocates and writes every slot up
    // front, and a `StreamConn` is about 500 bytes: a cluster member's 1024
    // slots were half a MB, 250 MB for 500 members in one process.
    pub(crate) streams_tx: async_channel::Sender<Box<StreamConn>>,
    streams_rx: async_channel::Receiver<Box<StreamConn>>,
    senders: Senders,
    /// `metrics`, as every packet this transport queues carries them.
    send_metrics: Arc<Metrics>,
    client: Client,
    /// The client came from [`Options::client`]: other transports use
    /// its connections too, so this one leaves them alone.
    shares_client: bool,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tasks: TaskTracker,
    advertise: Arc<Mutex<Option<SocketAddr>>>,
    pub(crate) cors: Option<Cors>,
    pub(crate) token: Option<Token>,
    /// One permit per incoming stream that may be open.
    pub(crate) stream_permits: Arc<Semaphore>,
    /// What the transport's streams share.
    pub(crate) stream_ctx: StreamContext,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: stop background work.
        self.shutdown.cancel();
    }
}

impl Transport {
    /// Creates a transport and the registry holding its metrics.
    ///
    /// Nothing runs until the transport is used; background tasks need a
    /// tokio runtime then.
    pub fn new(options: Options) -> Result<(Transport, MetricsRegistry), Error> {
        options.validate()?;
        let metrics = Metrics::default();
        let registry = MetricsRegistry::new(&metrics);
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let token = options.auth_token.as_deref().map(Token::new);
        let shares_client = options.client.is_some();
        let client = match &options.client {
            Some(client) => {
                client.check_agrees_with(&options)?;
                client.clone()
            }
            None => Client::owned_by_transport(&options, shutdown.clone(), tasks.clone())?,
        };
        // A shared client's senders carry every sharing transport's
        // packets, with the client's limits; a transport's own client gets
        // senders of the transport's.
        let senders = client.shared_senders().cloned().unwrap_or_else(|| {
            Senders::new(
                client.connector().clone(),
                limits_from(&options, client.is_http1()),
                shutdown.clone(),
                tasks.clone(),
            )
        });
        let body_max_age = senders.limits().body_max_age;
        if !senders.limits().body_linger.is_zero()
            && options.body_read_timeout < body_max_age + BODY_AGE_MARGIN
        {
            // Not an error: it is the peers' setting that matters, but a
            // cluster is usually configured alike.
            tracing::warn!(
                body_read_timeout = ?options.body_read_timeout,
                message_body_max_age = ?body_max_age,
                "body_read_timeout is less than 4 s above message_body_max_age: peers configured \
                 alike may answer this transport's open /message bodies with 408; raise it, or \
                 lower message_body_max_age"
            );
        }
        let (packets_tx, packets_rx) = async_channel::bounded(options.packet_queue_size);
        let (streams_tx, streams_rx) = async_channel::bounded(options.stream_queue_size);
        let advertise = Arc::new(Mutex::new(options.advertise_addr));
        let stream_ctx = StreamContext::new(
            metrics.clone(),
            options.stream_idle_timeout,
            shutdown.clone(),
            advertise.clone(),
        );
        let inbox = Arc::new(Inbox::new(packets_tx, metrics.clone(), shutdown.clone()));
        let inner = Inner {
            send_metrics: Arc::new(metrics.clone()),
            advertise,
            stream_ctx,
            cors: Cors::new(&options.cors_allowed_origins),
            token,
            stream_permits: Arc::new(Semaphore::new(options.max_streams)),
            options,
            metrics,
            registry: registry.clone(),
            inbox,
            answers: Answers::default(),
            packets_rx,
            streams_tx,
            streams_rx,
            senders,
            client,
            shares_client,
            shutdown,
            tasks,
        };
        Ok((
            Transport {
                inner: Arc::new(inner),
            },
            registry,
        ))
    }

    /// The transport's options.
    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    /// The registry holding this transport's metrics.
    pub fn metrics(&self) -> &MetricsRegistry {
        &self.inner.registry
    }

    /// Queues `payload` for delivery to `addr` (`host:port`, or a URL) in the
    /// background and returns when it was queued, like memberlist's
    /// `WriteTo`. Delivery failures are counted in the metrics and logged at
    /// debug level; use [`send`](Self::send) to wait for the outcome.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, when it starts the peer's send task.
    pub fn write_to(&self, payload: Bytes, addr: &str) -> Result<Instant, Error> {
        let now = Instant::now();
        self.enqueue(payload, addr, None, None, now)?;
        Ok(now)
    }

    /// [`write_to`](Self::write_to) for a packet the peer answers at once,
    /// such as a memberlist probe's ping: a gossiphttp peer may then put
    /// its answer in the response to the request carrying this packet
    /// instead of a request of its own ([`Options::answers_in_responses`]),
    /// which halves the requests a probe costs. The answer is received as
    /// any packet is, from [`packets`](Self::packets). With a Go peer, over
    /// HTTP/1.1, or before [`final_advertise_addr`](Self::final_advertise_addr)
    /// set the address to name, the same as `write_to`.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, when it starts the peer's send task.
    pub fn write_to_awaiting_answer(&self, payload: Bytes, addr: &str) -> Result<Instant, Error> {
        let now = Instant::now();
        let answer_to = self.answer_to();
        self.enqueue(payload, addr, None, answer_to, now)?;
        Ok(now)
    }

    /// Where this transport's answers go, if it asks for them.
    fn answer_to(&self) -> Option<AnswerTo> {
        let inner = &self.inner;
        if !inner.options.answers_in_responses || inner.client.is_http1() {
            return None;
        }
        Some(AnswerTo {
            reply_to: (*inner.advertise.lock().unwrap())?,
            inbox: inner.inbox.clone(),
            max_packet_size: inner.options.max_packet_size,
        })
    }

    /// [`write_to`](Self::write_to) for memberlist's `NodeAwareTransport`:
    /// the node name travels alongside for logs; the address decides.
    pub fn write_to_address(
        &self,
        payload: Bytes,
        addr: &str,
        name: &str,
    ) -> Result<Instant, Error> {
        tracing::trace!(node = name, addr, "queueing packet");
        self.write_to(payload, addr)
    }

    /// Sends `payload` to `addr` and waits until the peer answered `200` for
    /// the request that carried it (it may share that request with other
    /// queued packets).
    ///
    /// Cancel safety: the packet is queued at the first poll; dropping the
    /// future afterwards does not take it back, only the outcome is lost.
    pub async fn send(&self, payload: Bytes, addr: &str) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(payload, addr, Some(tx), None, Instant::now())?;
        rx.await.unwrap_or(Err(Error::Shutdown))
    }

    fn enqueue(
        &self,
        payload: Bytes,
        addr: &str,
        done: Option<oneshot::Sender<Result<(), Error>>>,
        answer_to: Option<AnswerTo>,
        queued_at: Instant,
    ) -> Result<(), Error> {
        if payload.len() > self.inner.options.max_packet_size {
            return Err(Error::PacketTooLarge {
                len: payload.len(),
                max: self.inner.options.max_packet_size,
            });
        }
        // A shared client's senders outlive this transport.
        if self.inner.shutdown.is_cancelled() {
            return Err(Error::Shutdown);
        }
        // A packet for a peer whose request is being answered goes in the
        // answer; not one whose caller waits for a delivery outcome, which
        // an answer does not give.
        let max_answer = self.inner.options.max_batch_bytes;
        if done.is_none() && self.inner.answers.offer(addr, &payload, max_answer) {
            let metrics = &self.inner.metrics;
            metrics.tx_packets.inc();
            metrics.tx_bytes.inc_by(payload.len() as u64);
            metrics.tx_packets_in_answers.inc();
            return Ok(());
        }
        self.inner.senders.enqueue(
            addr,
            Outgoing {
                payload,
                done,
                queued_at,
                metrics: self.inner.send_metrics.clone(),
                answer_to,
            },
        )
    }

    /// Packets received from peers, in arrival order. Every handle receives
    /// from the same queue (each packet goes to one of them). Ends after
    /// [`shutdown`](Self::shutdown) once the queue is drained.
    pub fn packets(&self) -> Packets {
        Packets::new(self.inner.packets_rx.clone(), self.inner.metrics.clone())
    }

    /// Stream connections opened by peers. Ends after shutdown.
    pub fn streams(&self) -> Streams {
        Streams {
            rx: Box::pin(self.inner.streams_rx.clone()),
        }
    }

    /// Opens a stream connection to `addr`, like memberlist's `DialTimeout`.
    /// Returns once the peer answered the request's headers (as a Go peer
    /// does at once) or fails after `timeout`.
    ///
    /// Cancel safety: dropping the future before it returns abandons the
    /// stream request (the peer sees it reset); nothing else is lost.
    pub async fn dial(&self, addr: &str, timeout: Duration) -> Result<StreamConn, Error> {
        if self.inner.shutdown.is_cancelled() {
            return Err(Error::Shutdown);
        }
        let peer: PeerAddr = addr.parse()?;
        let (writer, body) = write_channel(&self.inner.shutdown);
        let req = self
            .inner
            .client
            .connector()
            .post(&peer, STREAM_PATH, body)?;
        let resp = tokio::time::timeout(timeout, self.inner.client.connector().request(&peer, req))
            .await
            .map_err(|_| Error::Timeout {
                what: if self.inner.client.is_http1() {
                    DIAL_HTTP1
                } else {
                    "stream dial"
                },
                after: timeout,
            })??;
        if resp.status() != StatusCode::OK {
            return Err(Error::Status {
                addr: peer.to_string(),
                status: resp.status().as_u16(),
            });
        }
        // The remote address is the dialed one when it is an IP literal;
        // for a host name, the first address it resolves to.
        let remote = match peer.ip_socket_addr() {
            Some(addr) => addr,
            None => tokio::net::lookup_host((peer.host(), peer.port()))
                .await
                .ok()
                .and_then(|mut a| a.next())
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], peer.port()))),
        };
        let body = resp.into_body().boxed_unsync();
        Ok(StreamConn::new(
            body,
            writer,
            remote,
            None,
            &self.inner.stream_ctx,
        ))
    }

    /// The address to advertise to other members, as the reference's
    /// `FinalAdvertiseAddr`: `ip` parsed (IPv4-mapped IPv6 becomes IPv4),
    /// with `port`. An empty `ip` falls back to
    /// [`Options::advertise_addr`]; with neither, or with port 0, it fails.
    pub fn final_advertise_addr(&self, ip: &str, port: u16) -> Result<(IpAddr, u16), Error> {
        let addr = if ip.is_empty() {
            self.inner
                .options
                .advertise_addr
                .ok_or_else(|| Error::Config("no configured advertise address".into()))?
        } else {
            if port == 0 {
                return Err(Error::Config("missing real listen port".into()));
            }
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| Error::Config(format!("failed to parse advertise ip {ip:?}")))?;
            SocketAddr::new(ip.to_canonical(), port)
        };
        if addr.port() == 0 {
            return Err(Error::Config("missing real listen port".into()));
        }
        *self.inner.advertise.lock().unwrap() = Some(addr);
        Ok((addr.ip(), addr.port()))
    }

    /// Peers that currently have a send task (for diagnostics): for a
    /// transport sharing a [`Client`], the client's, which every
    /// transport sharing it sends through.
    pub fn active_peers(&self) -> usize {
        self.inner.senders.peer_count()
    }

    /// The peers this transport's client finds gone from now on: a
    /// connect that failed, or a connection that ended in an error, as the
    /// `host:port` dialed. Hints for a cluster member's probes.
    #[cfg(feature = "cluster")]
    pub(crate) fn lost_peers(&self) -> tokio::sync::broadcast::Receiver<std::sync::Arc<str>> {
        self.inner.client.connector().lost_peers()
    }

    /// Lets go of every pooled connection to peers (each closes once its
    /// requests under way end), so new ones can be opened at once within
    /// `max_peer_connections`: a leaving cluster member, about to tell
    /// every member goodbye, needs none of the old ones. A shared
    /// [`Client`]'s connections stay: other transports still send on them.
    #[cfg(feature = "cluster")]
    pub(crate) fn release_connections(&self) {
        if !self.inner.shares_client {
            self.inner.client.connector().clear();
        }
    }

    /// True once [`shutdown`](Self::shutdown) has begun.
    pub fn is_shutdown(&self) -> bool {
        self.inner.shutdown.is_cancelled()
    }

    /// Shuts the transport down: the endpoints answer `503` from now on,
    /// queued and in-flight packets fail with [`Error::Shutdown`] (counted in
    /// `cluster_transport_tx_packets_failed_total`), open streams end, and
    /// it returns once every background task has finished. Packets already
    /// received stay readable from [`packets`](Self::packets).
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.inbox.close();
        self.inner.streams_tx.close();
        if !self.inner.shares_client {
            self.inner.client.connector().clear();
        }
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("options", &self.inner.options)
            .field("shut_down", &self.is_shutdown())
            .finish()
    }
}

/// The receiving end of [`Transport::packets`]; clones share one queue.
///
/// Also a [`Stream`] of packets, ending as [`recv`](Self::recv) does.
#[derive(Debug)]
pub struct Packets {
    // Boxed: the channel's receiver is `!Unpin`, and `Packets` need not be.
    rx: Pin<Box<async_channel::Receiver<Packet>>>,
    metrics: Metrics,
}

impl Packets {
    fn new(rx: async_channel::Receiver<Packet>, metrics: Metrics) -> Self {
        Packets {
            rx: Box::pin(rx),
            metrics,
        }
    }

    /// The next packet, or `None` once the transport is shut down and the
    /// queue drained.
    ///
    /// Cancel safety: cancel safe. A packet is taken from the queue only
    /// when the future completes, so dropping it (in a `select!`) loses
    /// nothing.
    pub async fn recv(&mut self) -> Option<Packet> {
        let p = self.rx.recv().await.ok();
        self.count_queue();
        p
    }

    /// The next packet if one is waiting.
    pub fn try_recv(&mut self) -> Option<Packet> {
        let p = self.rx.try_recv().ok();
        self.count_queue();
        p
    }

    fn count_queue(&self) {
        self.metrics
            .rx_packet_queue_length
            .set(self.rx.len() as i64);
    }
}

impl Clone for Packets {
    fn clone(&self) -> Self {
        Packets::new((*self.rx).clone(), self.metrics.clone())
    }
}

impl Stream for Packets {
    type Item = Packet;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Packet>> {
        let this = self.get_mut();
        let p = ready!(this.rx.as_mut().poll_next(cx));
        this.count_queue();
        Poll::Ready(p)
    }
}

/// The receiving end of [`Transport::streams`]; clones share one queue.
///
/// Also a [`Stream`] of stream connections, ending as
/// [`accept`](Self::accept) does.
#[derive(Debug)]
pub struct Streams {
    // Boxed: the channel's receiver is `!Unpin`, and `Streams` need not be.
    rx: Pin<Box<async_channel::Receiver<Box<StreamConn>>>>,
}

impl Streams {
    /// The next incoming stream, or `None` once the transport is shut down.
    ///
    /// Cancel safety: cancel safe. A stream is taken from the queue only
    /// when the future completes.
    pub async fn accept(&mut self) -> Option<StreamConn> {
        self.rx.recv().await.ok().map(|conn| *conn)
    }
}

impl Clone for Streams {
    fn clone(&self) -> Self {
        Streams {
            rx: Box::pin((*self.rx).clone()),
        }
    }
}

impl Stream for Streams {
    type Item = StreamConn;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamConn>> {
        let conn = ready!(self.get_mut().rx.as_mut().poll_next(cx));
        Poll::Ready(conn.map(|conn| *conn))
    }
}
