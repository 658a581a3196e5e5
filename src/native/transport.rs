//! The transport: options, sending, receiving, dialing, shutting down.

use super::connector::Connector;
use super::metrics::{Metrics, MetricsRegistry};
use super::sender::{Outgoing, SendLimits, Senders};
use super::stream::{write_channel, StreamConn, MAX_WRITE_ENCODED};
use super::tls::{ClientTls, ServerTls};
use super::write_buffers::WriteBuffers;
use crate::codec::{DEFAULT_MAX_PACKET_SIZE, MAX_FRAME_PAYLOAD};
use crate::contract::{Cors, Token};
use crate::{Error, Packet, PeerAddr, CONTENT_TYPE, STREAM_PATH};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{Method, Request, StatusCode};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How a [`Transport`] behaves. Start from `Options::default()` and change
/// what you need; every field has a safe default.
///
/// ```
/// use std::time::Duration;
/// let mut opts = gossiphttp::Options::default();
/// opts.packet_timeout = Duration::from_secs(2);
/// opts.peer_queue_size = 256;
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// How long one packet delivery (connect, request, response) may take
    /// before its packets count as failed. Default 5 s, as the reference.
    ///
    /// It also bounds a packet's wait in its peer's queue: a packet still
    /// queued this long after `write_to` (its peer's requests all stuck, or
    /// the peer unreachable) fails instead of being sent late, so
    /// [`Transport::send`] answers within about twice this, and a peer that
    /// comes back gets fresh gossip rather than a backlog of stale packets.
    pub packet_timeout: Duration,
    /// Client TLS: when set, `host:port` peers are reached over `https`
    /// (ALPN `h2`) trusting what this says; when `None`, over h2c.
    pub client_tls: Option<ClientTls>,
    /// Server TLS for [`Transport::serve`]: when set, it serves h2 over TLS;
    /// when `None`, h2c.
    pub server_tls: Option<ServerTls>,
    /// The largest packet accepted on `/message` (checked from the frame
    /// header, before anything is allocated) and sent by `write_to`.
    /// Default 1 MiB.
    pub max_packet_size: usize,
    /// Packets queued per peer before the oldest is dropped (and counted in
    /// `cluster_transport_tx_packets_dropped_total`). Default 1000.
    ///
    /// It is the slack for bursts and stalls: size it to the peak rate to
    /// one peer times the longest stall to ride out. Gossip rarely needs
    /// more than the default, but at 200,000 packets/s to one peer 1000 is
    /// 5 ms: on a shared 2-vCPU VM the benchmark's paced row loses up to
    /// about 1% of its packets at that rate to the machine's stalls.
    pub peer_queue_size: usize,
    /// Received packets held for [`Transport::packets`] before the server
    /// stops reading request bodies (HTTP/2 flow control then slows the
    /// senders down; nothing answered `200` is ever dropped). Default 1000.
    pub packet_queue_size: usize,
    /// Incoming streams waiting in [`Transport::streams`]; beyond this a
    /// new stream is refused with `503`. Default 64.
    pub stream_queue_size: usize,
    /// Frames sent to one peer in one `/message` body, up to this many
    /// bytes. Default 256 KiB.
    pub max_batch_bytes: usize,
    /// `/message` requests in flight to one peer at once. Default 4.
    pub max_in_flight_per_peer: usize,
    /// How long a `/message` request body stays open after its last packet,
    /// so that the next packets to the same peer ride it as more frames
    /// instead of starting a new request: on an open HTTP/2 stream a packet
    /// is one `DATA` frame away, about half the latency of a new request.
    /// A body is ended after 1 s in all whatever the traffic (receivers
    /// limit how long a body may take: keep a peer's
    /// [`body_read_timeout`](Options::body_read_timeout) well above 1 s;
    /// `Transport::new` warns when its own is 2 s or less), and at once
    /// when it carries a packet given to [`Transport::send`], whose caller
    /// waits for the answer. The contract
    /// has the receiver deliver each frame as it arrives, and Go peers do.
    /// Zero: every batch is a request of its own, ended at once. Not used
    /// with [`client_http1`](Options::client_http1). Default 100 ms.
    pub message_body_linger: Duration,
    /// A peer with nothing to send for this long loses its send task (a
    /// new one starts with its next packet). Default 60 s.
    pub idle_peer_timeout: Duration,
    /// How long a `/message` body may take to arrive, in all (time the
    /// server spends waiting for room in its own packet queue does not
    /// count). A peer that is silent, or trickles bytes, is cut off with
    /// `408`. Go peers send one packet per request within their 5 s packet
    /// timeout. Default 10 s.
    pub body_read_timeout: Duration,
    /// The address [`Transport::final_advertise_addr`] falls back to when
    /// it is given no IP.
    pub advertise_addr: Option<SocketAddr>,
    /// Whether the served handler also answers `GET /metrics` with the
    /// Prometheus text of this transport's metrics. Default false.
    pub serve_metrics: bool,
    /// Browser origins (`https://app.example.com`) allowed to call the
    /// endpoints: preflights from them are answered and their responses
    /// carry `Access-Control-Allow-Origin`; requests from other origins get
    /// `403`. `"*"` allows any origin. Empty (the default): CORS is off and
    /// `Origin` is ignored, as the reference does.
    pub cors_allowed_origins: Vec<String>,
    /// **Extension, off by default**: accept HTTP/1.1 on the endpoints (the
    /// reference answers `505`). For clients whose `fetch` cannot speak
    /// HTTP/2, such as Node's built-in `fetch` and Cloudflare workerd; Go
    /// peers never need it.
    pub accept_http1: bool,
    /// **Extension, off by default**: speak HTTP/1.1 (chunked bodies, a few
    /// keep-alive connections per peer) instead of HTTP/2 when sending to
    /// peers. For peers that only take HTTP/1.1, such as a local workerd
    /// running a worker that uses [the npm package](https://www.npmjs.com/package/gossiphttp);
    /// Go peers answer it `505`, and Rust peers only with
    /// [`accept_http1`](Options::accept_http1).
    pub client_http1: bool,
    /// Most TCP connections the server keeps at once; beyond, new ones are
    /// closed at once (counted as `requests_refused{reason="connections"}`).
    /// Default 10,000.
    pub max_connections: usize,
    /// Most incoming streams open at once over all peers; beyond, a new
    /// stream is answered `503` (`reason="streams"`). Default 1024.
    pub max_streams: usize,
    /// Most concurrent HTTP/2 streams (requests) one connection may open
    /// (the `SETTINGS_MAX_CONCURRENT_STREAMS` the server advertises).
    /// Default 256.
    pub max_concurrent_streams_per_connection: u32,
    /// How long a new connection may take to finish its TLS handshake, send
    /// its first bytes (the HTTP/2 preface), and complete its first
    /// request's headers; every HTTP/1 request's headers get as long. A peer
    /// that trickles them is cut off (`requests_refused{reason=
    /// "header_timeout"}`). Default 10 s.
    pub header_read_timeout: Duration,
    /// Largest request header block accepted; larger ones are refused
    /// (`431` on HTTP/1.1, a stream error on HTTP/2). Default 16 KiB.
    pub max_header_list_size: u32,
    /// A stream with no bytes read or written for this long fails with
    /// `TimedOut` on read, which frees it. Default 60 s.
    pub stream_idle_timeout: Duration,
    /// **Extension, off by default**: a shared secret. When set, requests
    /// must carry `Authorization: Bearer <token>` (answered `401` otherwise,
    /// nothing delivered) and this transport sends it on its own requests.
    /// Go peers send no token, so they cannot join a cluster that sets one.
    pub auth_token: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            packet_timeout: Duration::from_secs(5),
            client_tls: None,
            server_tls: None,
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            peer_queue_size: 1000,
            packet_queue_size: 1000,
            stream_queue_size: 64,
            max_batch_bytes: 256 << 10,
            max_in_flight_per_peer: 4,
            message_body_linger: Duration::from_millis(100),
            idle_peer_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(10),
            advertise_addr: None,
            serve_metrics: false,
            cors_allowed_origins: Vec::new(),
            accept_http1: false,
            client_http1: false,
            auth_token: None,
            max_connections: 10_000,
            max_streams: 1024,
            max_concurrent_streams_per_connection: 256,
            header_read_timeout: Duration::from_secs(10),
            max_header_list_size: 16 << 10,
            stream_idle_timeout: Duration::from_secs(60),
        }
    }
}

impl Options {
    fn validate(&self) -> Result<(), Error> {
        let positive = [
            ("peer_queue_size", self.peer_queue_size),
            ("packet_queue_size", self.packet_queue_size),
            ("stream_queue_size", self.stream_queue_size),
            ("max_batch_bytes", self.max_batch_bytes),
            ("max_in_flight_per_peer", self.max_in_flight_per_peer),
            ("max_connections", self.max_connections),
            ("max_streams", self.max_streams),
            (
                "max_concurrent_streams_per_connection",
                self.max_concurrent_streams_per_connection as usize,
            ),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(Error::Config(format!("{name} must be at least 1")));
            }
        }
        if self.max_packet_size > MAX_FRAME_PAYLOAD {
            return Err(Error::Config(format!(
                "max_packet_size {} exceeds the largest frame ({MAX_FRAME_PAYLOAD} bytes)",
                self.max_packet_size
            )));
        }
        for (name, d) in [
            ("packet_timeout", self.packet_timeout),
            ("idle_peer_timeout", self.idle_peer_timeout),
            ("body_read_timeout", self.body_read_timeout),
            ("header_read_timeout", self.header_read_timeout),
            ("stream_idle_timeout", self.stream_idle_timeout),
        ] {
            if d.is_zero() {
                return Err(Error::Config(format!("{name} must be longer than zero")));
            }
        }
        if let Some(token) = &self.auth_token {
            Token::validate(token).map_err(Error::Config)?;
        }
        for origin in &self.cors_allowed_origins {
            if origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(Error::Config(format!(
                    "CORS origin {origin:?} must look like https://host[:port] (or be \"*\")"
                )));
            }
        }
        Ok(())
    }
}

/// A gossip transport over HTTP/2: the Rust counterpart of ckit's
/// `gossiphttp.Transport` (a memberlist `NodeAwareTransport`).
///
/// Cheap to clone; clones share one transport. Send with
/// [`write_to`](Self::write_to), receive from [`packets`](Self::packets),
/// open streams with [`dial`](Self::dial), accept them from
/// [`streams`](Self::streams). Serve it with [`serve`](Self::serve) or mount
/// [`handler`](Self::handler) in your own HTTP server.
#[derive(Clone)]
pub struct Transport {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) options: Options,
    pub(crate) metrics: Metrics,
    pub(crate) registry: MetricsRegistry,
    pub(crate) packets_tx: async_channel::Sender<Packet>,
    packets_rx: async_channel::Receiver<Packet>,
    pub(crate) streams_tx: async_channel::Sender<StreamConn>,
    streams_rx: async_channel::Receiver<StreamConn>,
    senders: Senders,
    connector: Arc<Connector>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tasks: TaskTracker,
    pub(crate) advertise: Mutex<Option<SocketAddr>>,
    pub(crate) cors: Option<Cors>,
    pub(crate) token: Option<Token>,
    /// One permit per incoming stream that may be open.
    pub(crate) stream_permits: Arc<Semaphore>,
    /// Buffers large stream writes are encoded into, reused.
    pub(crate) write_buffers: Arc<WriteBuffers>,
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
        // Over HTTP/1.1 a body holds a whole connection, and the worker
        // runtimes it is for may read a body whole before delivering any of
        // it: bodies end after their first batch there.
        let body_linger = if options.client_http1 {
            Duration::ZERO
        } else {
            options.message_body_linger
        };
        if !body_linger.is_zero() && options.body_read_timeout <= 2 * super::sender::BODY_MAX_AGE {
            // Not an error: it is the peers' setting that matters, but a
            // cluster is usually configured alike.
            tracing::warn!(
                body_read_timeout = ?options.body_read_timeout,
                "body_read_timeout is 2 s or less: peers configured alike answer this \
                 transport's open /message bodies (up to 1 s) with 408; raise it, or set \
                 message_body_linger to zero"
            );
        }
        let metrics = Metrics::default();
        let registry = MetricsRegistry::new(&metrics);
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let token = options.auth_token.as_deref().map(Token::new);
        let connector = Arc::new(Connector::new(
            options.client_tls.clone(),
            token.clone(),
            options.client_http1,
            shutdown.clone(),
            tasks.clone(),
        ));
        let senders = Senders::new(
            connector.clone(),
            metrics.clone(),
            SendLimits {
                queue_size: options.peer_queue_size,
                packet_timeout: options.packet_timeout,
                max_batch_bytes: options.max_batch_bytes,
                max_in_flight: options.max_in_flight_per_peer,
                idle_timeout: options.idle_peer_timeout,
                body_linger,
            },
            shutdown.clone(),
            tasks.clone(),
        );
        let (packets_tx, packets_rx) = async_channel::bounded(options.packet_queue_size);
        let (streams_tx, streams_rx) = async_channel::bounded(options.stream_queue_size);
        let inner = Inner {
            advertise: Mutex::new(options.advertise_addr),
            cors: Cors::new(&options.cors_allowed_origins),
            token,
            stream_permits: Arc::new(Semaphore::new(options.max_streams)),
            write_buffers: WriteBuffers::new(MAX_WRITE_ENCODED),
            options,
            metrics,
            registry: registry.clone(),
            packets_tx,
            packets_rx,
            streams_tx,
            streams_rx,
            senders,
            connector,
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
    pub fn write_to(&self, payload: Bytes, addr: &str) -> Result<Instant, Error> {
        let now = Instant::now();
        self.enqueue(payload, addr, None, now)?;
        Ok(now)
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
    pub async fn send(&self, payload: Bytes, addr: &str) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(payload, addr, Some(tx), Instant::now())?;
        rx.await.unwrap_or(Err(Error::Shutdown))
    }

    fn enqueue(
        &self,
        payload: Bytes,
        addr: &str,
        done: Option<oneshot::Sender<Result<(), Error>>>,
        queued_at: Instant,
    ) -> Result<(), Error> {
        if payload.len() > self.inner.options.max_packet_size {
            return Err(Error::Frame(crate::codec::FrameError::TooLarge {
                len: payload.len() as u64,
                max: self.inner.options.max_packet_size,
            }));
        }
        self.inner.senders.enqueue(
            addr,
            Outgoing {
                payload,
                done,
                queued_at,
            },
        )
    }

    /// Packets received from peers, in arrival order. Every handle receives
    /// from the same queue (each packet goes to one of them). Ends after
    /// [`shutdown`](Self::shutdown) once the queue is drained.
    pub fn packets(&self) -> Packets {
        Packets {
            rx: self.inner.packets_rx.clone(),
            metrics: self.inner.metrics.clone(),
        }
    }

    /// Stream connections opened by peers. Ends after shutdown.
    pub fn streams(&self) -> Streams {
        Streams {
            rx: self.inner.streams_rx.clone(),
        }
    }

    /// Opens a stream connection to `addr`, like memberlist's `DialTimeout`.
    /// Returns once the peer answered the request's headers (as a Go peer
    /// does at once) or fails after `timeout`.
    pub async fn dial(&self, addr: &str, timeout: Duration) -> Result<StreamConn, Error> {
        if self.inner.shutdown.is_cancelled() {
            return Err(Error::Shutdown);
        }
        let peer: PeerAddr = addr.parse()?;
        let (writer, body) = write_channel(&self.inner.shutdown);
        let req = Request::builder()
            .method(Method::POST)
            .uri(self.inner.connector.uri(&peer, STREAM_PATH))
            .header(hyper::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(body)
            .expect("a valid request");
        let resp = tokio::time::timeout(timeout, self.inner.connector.request(&peer, req))
            .await
            .map_err(|_| Error::Timeout {
                what: "stream dial",
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
        let remote = match peer.host().parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, peer.port()),
            Err(_) => tokio::net::lookup_host((peer.host(), peer.port()))
                .await
                .ok()
                .and_then(|mut a| a.next())
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], peer.port()))),
        };
        let body = resp
            .into_body()
            .map_err(crate::BoxError::from)
            .boxed_unsync();
        Ok(StreamConn::new(body, writer, remote, None, &self.inner))
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

    /// Peers that currently have a send task (for diagnostics).
    pub fn active_peers(&self) -> usize {
        self.inner.senders.peer_count()
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
        self.inner.packets_tx.close();
        self.inner.streams_tx.close();
        self.inner.connector.clear();
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
#[derive(Clone, Debug)]
pub struct Packets {
    rx: async_channel::Receiver<Packet>,
    metrics: Metrics,
}

impl Packets {
    /// The next packet, or `None` once the transport is shut down and the
    /// queue drained.
    pub async fn recv(&mut self) -> Option<Packet> {
        let p = self.rx.recv().await.ok();
        self.metrics
            .rx_packet_queue_length
            .set(self.rx.len() as i64);
        p
    }

    /// The next packet if one is waiting.
    pub fn try_recv(&mut self) -> Option<Packet> {
        let p = self.rx.try_recv().ok();
        self.metrics
            .rx_packet_queue_length
            .set(self.rx.len() as i64);
        p
    }
}

/// The receiving end of [`Transport::streams`]; clones share one queue.
#[derive(Clone, Debug)]
pub struct Streams {
    rx: async_channel::Receiver<StreamConn>,
}

impl Streams {
    /// The next incoming stream, or `None` once the transport is shut down.
    pub async fn accept(&mut self) -> Option<StreamConn> {
        self.rx.recv().await.ok()
    }
}
