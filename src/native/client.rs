//! [`Client`]: the connections a transport sends over, which transports in
//! one process may share.

use super::connector::{Connector, PoolLimits, CONNECTION_WINDOW};
use super::options::Options;
use super::sender::{limits_from, Senders};
use crate::contract::Token;
use crate::Error;
use std::sync::Arc;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

#[cfg(doc)]
use super::Transport;

/// The connections to peers that transports send packets and open streams
/// over: HTTP/2, one per peer, pooled (or a few HTTP/1.1 ones per peer with
/// [`client_http1`](Options::client_http1)).
///
/// Every [`Transport`] makes its own unless [`Options::client`] hands it
/// one. Transports handed the same `Client` share its connections, the way
/// Go transports handed one `*http.Client` do (ckit's
/// `gossiphttp.Options.Client`): many cluster members in one process then
/// open one connection per peer for the whole process instead of one per
/// member and peer. Measured with 200 members in one process, every packet
/// of the join wave otherwise opened a TCP connection and an HTTP/2
/// handshake of its own (`benches/RESULTS.md`).
///
/// Transports sharing a client also share how their packets go out: the
/// packets of all of them to one peer wait in one queue and ride the same
/// `/message` bodies (each still counted in its own transport's metrics).
/// Among 500 members in one process a given pair of members exchanges a
/// packet every few seconds at most, so each member's packets to a peer
/// were nearly always a request of their own; the process as a whole
/// sends each peer several a second, and those ride one open body, one
/// `DATA` frame each: 500 members converged in a median 2.8 s against
/// 3.6 s with a sender per member, on a fifth less CPU (12 alternating
/// runs each, `benches/RESULTS.md`). A transport that shuts down takes no
/// more packets; those it had queued still go out.
///
/// The client takes its settings from the [`Options`] it is built from:
/// [`client_tls`](Options::client_tls), [`auth_token`](Options::auth_token),
/// [`client_http1`](Options::client_http1),
/// [`max_peer_connections`](Options::max_peer_connections) (its pool's
/// bound, for every transport sharing it),
/// [`idle_peer_timeout`](Options::idle_peer_timeout), and the packet
/// delivery settings: [`peer_queue_size`](Options::peer_queue_size),
/// [`packet_timeout`](Options::packet_timeout),
/// [`max_batch_bytes`](Options::max_batch_bytes),
/// [`max_in_flight_per_peer`](Options::max_in_flight_per_peer),
/// [`message_body_linger`](Options::message_body_linger) and
/// [`message_body_max_age`](Options::message_body_max_age). A transport
/// handed a client sends with those; [`Transport::new`] refuses options
/// whose `auth_token`, `client_http1` or whether `client_tls` is set differ
/// from the client's (TLS configurations themselves are not compared).
///
/// Each of its HTTP/2 connections lets up to 64 MiB of peers' answers wait
/// unread over all its streams, where a transport's own connections let
/// 4 MiB: one connection carries every sharing transport's streams, and
/// with 4 MiB the push-pull answers that 200 members in one process had not
/// read yet stalled every other answer on the connection for seconds
/// (measured: `benches/RESULTS.md`). Each stream still holds at most 1 MiB.
///
/// A peer sees one connection carrying the requests of every transport
/// sharing the client, so its
/// [`max_concurrent_streams_per_connection`](Options::max_concurrent_streams_per_connection)
/// (Go's HTTP/2 server: 250) bounds their requests under way to it
/// together; requests past it wait for one to end. For cluster members,
/// [`cluster::SharedClient`](crate::cluster::SharedClient) sizes the pool
/// and that limit to the number of members.
///
/// ```
/// # fn main() -> Result<(), gossiphttp::Error> {
/// use gossiphttp::{Client, Options, Transport};
/// let client = Client::new(&Options::default())?;
/// let mut members = Vec::new();
/// for _ in 0..3 {
///     let mut options = Options::default();
///     options.client = Some(client.clone());
///     members.push(Transport::new(options)?.0);
/// }
/// # Ok(()) }
/// ```
///
/// Cheap to clone; clones share one pool. The connections close once the
/// last clone and the last transport using it are gone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    connector: Arc<Connector>,
    /// What it was built with, that a transport handed it must agree on.
    settings: Settings,
    /// Cancels the connections' drivers and dials under way once the last
    /// handle is gone (a transport's own client stops with the transport
    /// instead, and has none).
    _stop_on_drop: Option<DropGuard>,
    /// A shared client's packet senders, which every transport sharing it
    /// sends through (a transport's own client has none: the transport
    /// makes its own).
    senders: Option<Senders>,
}

impl Client {
    /// A client with `options`' client settings (see [`Client`]); fails as
    /// [`Transport::new`] would on invalid options.
    pub fn new(options: &Options) -> Result<Client, Error> {
        options.validate()?;
        let stop = CancellationToken::new();
        let connector = Arc::new(connector(
            options,
            SHARED_CONNECTION_WINDOW,
            stop.clone(),
            TaskTracker::new(),
        )?);
        let senders = Senders::new(
            connector.clone(),
            limits_from(options, connector.is_http1()),
            stop.clone(),
            TaskTracker::new(),
        );
        Ok(Client {
            inner: Arc::new(Inner {
                connector,
                settings: Settings::of(options),
                _stop_on_drop: Some(stop.drop_guard()),
                senders: Some(senders),
            }),
        })
    }

    /// A transport's own client: its connections stop with `shutdown` and
    /// are tracked with the transport's other `tasks`.
    pub(crate) fn owned_by_transport(
        options: &Options,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Result<Client, Error> {
        Ok(Client {
            inner: Arc::new(Inner {
                connector: Arc::new(connector(options, CONNECTION_WINDOW, shutdown, tasks)?),
                settings: Settings::of(options),
                _stop_on_drop: None,
                senders: None,
            }),
        })
    }

    /// Refuses `options` (a transport's, handing it this client) that
    /// disagree with the client's own on how to reach peers: its requests
    /// would go out without the token, the TLS or the HTTP version the
    /// transport was configured for, and fail only at the peers.
    pub(crate) fn check_agrees_with(&self, options: &Options) -> Result<(), Error> {
        let ours = &self.inner.settings;
        let theirs = Settings::of(options);
        let differs = [
            ("auth_token", ours.token != theirs.token),
            ("client_tls (set or not)", ours.tls != theirs.tls),
            ("client_http1", ours.http1 != theirs.http1),
        ];
        match differs.iter().find(|(_, differs)| *differs) {
            Some((what, _)) => Err(Error::Config(format!(
                "options.client was built with another {what} than these options give: \
                 build the client from the same settings (Client::new(&options))"
            ))),
            None => Ok(()),
        }
    }

    /// The senders every transport sharing this client sends through
    /// (`None` for a transport's own client).
    pub(crate) fn shared_senders(&self) -> Option<&Senders> {
        self.inner.senders.as_ref()
    }

    pub(crate) fn connector(&self) -> &Arc<Connector> {
        &self.inner.connector
    }

    /// Whether its requests go out over HTTP/1.1.
    pub(crate) fn is_http1(&self) -> bool {
        self.inner.connector.is_http1()
    }
}

/// The settings a client sends with that a transport also has.
#[derive(PartialEq)]
struct Settings {
    token: Option<String>,
    tls: bool,
    http1: bool,
}

impl Settings {
    fn of(options: &Options) -> Settings {
        Settings {
            token: options.auth_token.clone(),
            tls: options.client_tls.is_some(),
            http1: options.client_http1,
        }
    }
}

/// A shared client's connection window (see [`Client`]).
const SHARED_CONNECTION_WINDOW: u32 = 64 << 20;

fn connector(
    options: &Options,
    connection_window: u32,
    stop: CancellationToken,
    tasks: TaskTracker,
) -> Result<Connector, Error> {
    Connector::new(
        options.client_tls.clone(),
        options.auth_token.as_deref().map(Token::new),
        options.client_http1,
        PoolLimits {
            max_connections: options.max_peer_connections,
            idle_timeout: options.idle_peer_timeout,
            connection_window,
        },
        stop,
        tasks,
    )
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("http1", &self.is_http1())
            .finish_non_exhaustive()
    }
}
