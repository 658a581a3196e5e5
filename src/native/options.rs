//! The transport's options: what each one does, its default, and the
//! rules [`Transport::new`](super::Transport::new) checks them against.

use super::client::Client;
use super::tls::{ClientTls, ServerTls};
use crate::codec::{DEFAULT_MAX_PACKET_SIZE, MAX_FRAME_PAYLOAD};
use crate::contract::Token;
use crate::Error;
use std::net::SocketAddr;
use std::time::Duration;

#[cfg(doc)]
use super::Transport;

/// How far a receiver's [`Options::body_read_timeout`] should stay above a
/// sender's [`Options::message_body_max_age`]: the slack for a loaded
/// sender that ends its body late.
pub(crate) const BODY_AGE_MARGIN: Duration = Duration::from_secs(4);

/// How a [`Transport`] behaves. Start from `Options::default()` and change
/// what you need; every field has a safe default.
///
/// Every count (a queue size, a connection, stream or in-flight limit) is
/// between 1 and 1,048,576, or [`Transport::new`] refuses it with
/// [`Error::Config`] naming the field: the packet and stream queues are
/// allocated in full up front (about 90 bytes a slot).
///
/// ```
/// use std::time::Duration;
/// let mut opts = gossiphttp::Options::default();
/// opts.packet_timeout = Duration::from_secs(2);
/// opts.peer_queue_size = 256;
/// ```
///
/// Its `Debug` output shows every option but the secret
/// [`auth_token`](Options::auth_token), printed as `Some(<redacted>)`.
#[derive(Clone)]
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
    /// It is the slack for bursts and stalls: size it to at least the peak
    /// rate to one peer times the longest stall to ride out (of the peer, the
    /// network, or this machine's scheduler). Gossip rarely needs more than
    /// the default; at 200,000 packets/s to one peer, 1000 rides out 5 ms.
    pub peer_queue_size: usize,
    /// Received packets held for [`Transport::packets`] before the server
    /// stops reading request bodies (HTTP/2 flow control then slows the
    /// senders down; nothing answered `200` is ever dropped). Default 1000.
    pub packet_queue_size: usize,
    /// Incoming streams waiting in [`Transport::streams`]; beyond this a
    /// new stream is refused with `503`. Default 64.
    pub stream_queue_size: usize,
    /// The packets queued for a peer at one moment are encoded together as
    /// one chunk of a `/message` body, up to this many bytes of frames (at
    /// least one packet, however large). It bounds the buffer encoded at
    /// once, not a body: a body left open by
    /// [`message_body_linger`](Options::message_body_linger) carries further
    /// chunks. Default 256 KiB.
    pub max_batch_bytes: usize,
    /// `/message` requests in flight to one peer at once. Default 4.
    pub max_in_flight_per_peer: usize,
    /// How long a `/message` request body stays open after its last packet,
    /// so that the next packets to the same peer ride it as more frames
    /// instead of starting a new request: on an open HTTP/2 stream a packet
    /// is one `DATA` frame away, about half the latency of a new request
    /// and a fraction of its CPU on both ends (no headers, no new stream or
    /// task, no end of body, no answer). Gossip at rest sends a peer a
    /// packet every few seconds (memberlist's LAN defaults: a ping a second
    /// to one member in turn, and an ack to every ping), so the default
    /// keeps a body open across probes. A body lingers only for a peer
    /// that had a packet within the linger before it, or several queued
    /// together: a lone first packet after a quiet spell is a request of
    /// its own, ended with it (in a
    /// large cluster at rest a member sends a given peer a packet a minute
    /// or so, and a lingering body would carry nothing more). A body is
    /// ended after
    /// [`message_body_max_age`](Options::message_body_max_age) in all
    /// whatever the traffic, and at once when it carries a packet given to
    /// [`Transport::send`], whose caller waits for the answer. The contract
    /// has the receiver deliver each frame as it arrives, and Go peers do
    /// (stamping every packet of a body with the time the request began,
    /// which memberlist uses only for round-trip times, in its optional
    /// ping delegate and `Memberlist.Ping`: those of a Go peer to this node
    /// can be off by up to `message_body_max_age`).
    /// Zero: every batch is a request of its own, ended at once. Not used
    /// with [`client_http1`](Options::client_http1). Default 3 s.
    pub message_body_linger: Duration,
    /// How long a lingering `/message` body stays open in all, however busy
    /// the peer: receivers bound how long a body may take, so keep it well
    /// below their [`body_read_timeout`](Options::body_read_timeout)
    /// (`Transport::new` warns when its own is not at least 4 s above
    /// this). It is also how long a peer's packets may wait for their
    /// request's outcome beyond `packet_timeout` before they count as
    /// failed. Default 6 s.
    pub message_body_max_age: Duration,
    /// A peer with nothing to send for this long loses its send task (a
    /// new one starts with its next packet), and its pooled connection is
    /// closed (see [`max_peer_connections`](Options::max_peer_connections)).
    /// memberlist probes members in turn, a second each with the LAN
    /// defaults, so at rest a member sends a given peer a packet about once
    /// per `members` seconds: the default keeps connections across the
    /// probe round up to about 180 members (a new connection costs both
    /// ends more CPU than the packet it carries; an idle one costs no CPU
    /// and about 57 KiB at each end). Default 180 s.
    pub idle_peer_timeout: Duration,
    /// The most HTTP/2 connections this transport keeps open to peers.
    /// Past it, the least recently used one is closed once its requests
    /// end; a connection unused for `idle_peer_timeout` is closed too. A
    /// cluster member talks with every other member in turn, so without a
    /// bound a large cluster (or many members in one process) runs out of
    /// file descriptors. Connections that left the pool and still finish a
    /// request count against a second allowance of the same size: past it,
    /// a new connection waits for one of them to close, so the transport
    /// never has more than twice this many open. Default 256.
    pub max_peer_connections: usize,
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
    /// **Extension, on by default**: answers ride in responses. A packet
    /// sent with [`Transport::write_to_awaiting_answer`](crate::Transport::write_to_awaiting_answer)
    /// (a probe's ping) asks its peer, in a request header, to put what
    /// it sends back at once (the ack) in the response to that request,
    /// and this transport's server does that for peers that ask. Between
    /// gossiphttp peers a probe is then one request instead of two, which
    /// is most of a resting member's CPU; Go peers neither ask nor
    /// answer so and see nothing different. Needs HTTP/2 and the
    /// advertise address ([`Transport::final_advertise_addr`](crate::Transport::final_advertise_addr));
    /// the server honours only a request whose named address has the IP
    /// the request came from. Counted in
    /// `cluster_transport_{rx,tx}_packets_in_answers_total`.
    pub answers_in_responses: bool,
    /// Most TCP connections the server keeps at once; beyond, new ones are
    /// closed at once (counted as `requests_refused{reason="connections"}`).
    /// Default 10,000.
    pub max_connections: usize,
    /// Most connections the server keeps open for its peers before it
    /// makes room: a new connection past it closes the least recently used
    /// one (an idle one if any; HTTP/2 `GOAWAY`, so requests under way
    /// finish and the peer reconnects for its next), counted as
    /// `cluster_transport_connections_closed_total{reason=
    /// "least_recently_used"}`. Every cluster member dials the members it
    /// gossips with, so without this a member keeps a connection from
    /// every peer that ever talked to it. `max_connections` still refuses
    /// connections past it. Default 512 (twice `max_peer_connections`).
    pub max_accepted_connections: usize,
    /// An accepted connection with no request open for this long is closed
    /// (HTTP/2 `GOAWAY`; `connections_closed_total{reason="idle"}`). Longer
    /// than a peer's own `idle_peer_timeout` (180 s by default), so a
    /// healthy peer normally closes its end first. Default 240 s.
    pub idle_connection_timeout: Duration,
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
    /// The connections to send over, shared with the other transports
    /// given the same [`Client`] (many cluster members in one process);
    /// when `None` (the default) the transport makes its own from these
    /// options. A shared client's own settings (TLS, token, HTTP/1.1, pool
    /// bounds, packet queues and bodies: see [`Client`]) are the ones it
    /// sends with, and `Transport::new` refuses options whose token,
    /// HTTP/1.1 or TLS (set or not) differ from them.
    pub client: Option<Client>,
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
            message_body_linger: Duration::from_secs(3),
            message_body_max_age: Duration::from_secs(6),
            idle_peer_timeout: Duration::from_secs(180),
            max_peer_connections: 256,
            body_read_timeout: Duration::from_secs(10),
            advertise_addr: None,
            serve_metrics: false,
            cors_allowed_origins: Vec::new(),
            accept_http1: false,
            client_http1: false,
            answers_in_responses: true,
            auth_token: None,
            client: None,
            max_connections: 10_000,
            max_accepted_connections: 512,
            idle_connection_timeout: Duration::from_secs(240),
            max_streams: 1024,
            max_concurrent_streams_per_connection: 256,
            header_read_timeout: Duration::from_secs(10),
            max_header_list_size: 16 << 10,
            stream_idle_timeout: Duration::from_secs(60),
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured without `..`, so a new option cannot be forgotten.
        let Options {
            packet_timeout,
            client_tls,
            server_tls,
            max_packet_size,
            peer_queue_size,
            packet_queue_size,
            stream_queue_size,
            max_batch_bytes,
            max_in_flight_per_peer,
            message_body_linger,
            message_body_max_age,
            idle_peer_timeout,
            max_peer_connections,
            body_read_timeout,
            advertise_addr,
            serve_metrics,
            cors_allowed_origins,
            accept_http1,
            client_http1,
            answers_in_responses,
            max_connections,
            max_accepted_connections,
            idle_connection_timeout,
            max_streams,
            max_concurrent_streams_per_connection,
            header_read_timeout,
            max_header_list_size,
            stream_idle_timeout,
            auth_token,
            client,
        } = self;
        f.debug_struct("Options")
            .field("packet_timeout", packet_timeout)
            .field("client_tls", client_tls)
            .field("server_tls", server_tls)
            .field("max_packet_size", max_packet_size)
            .field("peer_queue_size", peer_queue_size)
            .field("packet_queue_size", packet_queue_size)
            .field("stream_queue_size", stream_queue_size)
            .field("max_batch_bytes", max_batch_bytes)
            .field("max_in_flight_per_peer", max_in_flight_per_peer)
            .field("message_body_linger", message_body_linger)
            .field("message_body_max_age", message_body_max_age)
            .field("idle_peer_timeout", idle_peer_timeout)
            .field("max_peer_connections", max_peer_connections)
            .field("body_read_timeout", body_read_timeout)
            .field("advertise_addr", advertise_addr)
            .field("serve_metrics", serve_metrics)
            .field("cors_allowed_origins", cors_allowed_origins)
            .field("accept_http1", accept_http1)
            .field("client_http1", client_http1)
            .field("answers_in_responses", answers_in_responses)
            .field("max_connections", max_connections)
            .field("max_accepted_connections", max_accepted_connections)
            .field("idle_connection_timeout", idle_connection_timeout)
            .field("max_streams", max_streams)
            .field(
                "max_concurrent_streams_per_connection",
                max_concurrent_streams_per_connection,
            )
            .field("header_read_timeout", header_read_timeout)
            .field("max_header_list_size", max_header_list_size)
            .field("stream_idle_timeout", stream_idle_timeout)
            .field("auth_token", &auth_token.as_ref().map(|_| Redacted))
            .field("client", client)
            .finish()
    }
}

/// Stands in for a secret in `Debug` output.
struct Redacted;

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The most any count in [`Options`] may be (a queue size, a connection or
/// stream limit): beyond any real deployment, and a bound on what a queue
/// allocates up front (`async_channel::bounded` allocates every slot: at
/// `usize::MAX` it failed to allocate, and a tokio semaphore panics past
/// 2^61 permits).
pub(crate) const MAX_COUNT: usize = 1 << 20;

impl Options {
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let counts = [
            ("peer_queue_size", self.peer_queue_size),
            ("packet_queue_size", self.packet_queue_size),
            ("stream_queue_size", self.stream_queue_size),
            ("max_in_flight_per_peer", self.max_in_flight_per_peer),
            ("max_connections", self.max_connections),
            ("max_accepted_connections", self.max_accepted_connections),
            ("max_peer_connections", self.max_peer_connections),
            ("max_streams", self.max_streams),
            (
                "max_concurrent_streams_per_connection",
                self.max_concurrent_streams_per_connection as usize,
            ),
        ];
        if self.max_batch_bytes == 0 {
            return Err(Error::Config("max_batch_bytes must be at least 1".into()));
        }
        for (name, v) in counts {
            if !(1..=MAX_COUNT).contains(&v) {
                return Err(Error::Config(format!(
                    "{name} must be between 1 and {MAX_COUNT} (it is {v})"
                )));
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
            ("idle_connection_timeout", self.idle_connection_timeout),
        ] {
            if d.is_zero() {
                return Err(Error::Config(format!("{name} must be longer than zero")));
            }
        }
        if let Some(token) = &self.auth_token {
            Token::validate(token).map_err(|e| Error::Config(format!("auth_token {e}")))?;
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
