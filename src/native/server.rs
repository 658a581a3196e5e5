//! The accept loop: [`Transport::serve`] accepts connections (h2c, or h2
//! over TLS), bounds them (`max_connections`, the first request's deadline,
//! HTTP/2 limits), serves each with the [`TransportService`] handler, and
//! closes them gracefully when the [`Server`] shuts down.

use super::accepted::{Accepted, Activity, Admitted, OpenRequest};
use super::body::FrameBody;
use super::connector::{CONNECTION_WINDOW, MAX_H2_FRAME, STREAM_WINDOW};
use super::deadline::{FirstBytesDeadline, TLS_ON_CLEARTEXT};
use super::handler::TransportService;
use super::transport::Transport;
use crate::Error;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long [`Server::shutdown`] lets open requests finish.
const GRACEFUL_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

impl Transport {
    /// Serves the endpoints on `listener` in the background: h2c, or h2
    /// over TLS when [`Options::server_tls`](crate::Options::server_tls) is
    /// set. HTTP/1.1 requests are answered `505`, as the reference does,
    /// unless [`Options::accept_http1`](crate::Options::accept_http1) is set.
    /// What each request is answered is listed on [`TransportService`].
    ///
    /// The server outlives [`Transport::shutdown`] (its endpoints then answer
    /// `503`) until [`Server::shutdown`] is called or the `Server` dropped;
    /// [`Server::shutdown_with`] shuts both down in the right order.
    pub fn serve(&self, listener: TcpListener) -> Result<Server, Error> {
        self.serve_service(listener, self.handler())
    }

    /// [`serve`](Self::serve) with a handler of your own making, such as one
    /// [`with_fallback`](TransportService::with_fallback) routes.
    pub fn serve_service(
        &self,
        listener: TcpListener,
        handler: TransportService,
    ) -> Result<Server, Error> {
        let local_addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let closing = CancellationToken::new();
        let tasks = TaskTracker::new();
        let tls = self
            .inner
            .options
            .server_tls
            .clone()
            .map(|t| TlsAcceptor::from(t.0));
        let accept_loop = AcceptLoop {
            listener,
            tls,
            handler,
            stop: stop.clone(),
            closing: closing.clone(),
        };
        tasks.spawn(accept_loop.run());
        Ok(Server {
            local_addr,
            stop,
            closing,
            tasks,
        })
    }
}

/// A running server from [`Transport::serve`].
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    stop: CancellationToken,
    /// Cancelled when the graceful close is over: drop what is left.
    closing: CancellationToken,
    tasks: TaskTracker,
}

impl Server {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections, asks every connection to close
    /// (HTTP/2 `GOAWAY`: requests under way may finish, no new ones start),
    /// waits up to 5 s for them, then closes those left; returns when all
    /// are closed. Open `/message` bodies and streams end only when their
    /// peer or the transport ends them: to shut both down, use
    /// [`shutdown_with`](Self::shutdown_with).
    pub async fn shutdown(self) {
        self.shutdown_within(GRACEFUL_SHUTDOWN_TIMEOUT).await;
    }

    /// [`shutdown`](Self::shutdown), waiting at most `grace` (rather than
    /// 5 s) for requests under way: for a process that has nothing left to
    /// say, such as a cluster member that has left.
    pub async fn shutdown_within(self, grace: Duration) {
        self.stop.cancel();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            self.closing.cancel();
            self.tasks.wait().await;
        }
    }

    /// Stops at once, as a crashed process does: no new connections, and
    /// the open ones closed without `GOAWAY` or waiting for requests under
    /// way, so peers see their connections end in an error. For
    /// [`cluster::Node::kill`](crate::cluster::Node::kill).
    #[cfg(feature = "cluster")]
    pub(crate) async fn abort(self) {
        self.closing.cancel();
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Shuts `transport` and this server down, in this order:
    ///
    /// 1. the transport ([`Transport::shutdown`]): the endpoints answer
    ///    `503` from now on, open `/message` bodies are answered `503`, open
    ///    streams end on both sides, queued packets fail, and its background
    ///    tasks finish;
    /// 2. the server ([`shutdown`](Self::shutdown)): no new connections,
    ///    `GOAWAY` on the open ones, which close as soon as their responses
    ///    are sent.
    ///
    /// The other order would let open streams and bodies hold the server's
    /// graceful close for its whole 5 s, since nothing would end them. (A
    /// [`StreamConn`](crate::StreamConn) the application keeps after its
    /// reads and writes failed still holds its HTTP/2 stream: drop it.)
    /// Packets already received stay readable from
    /// [`Transport::packets`].
    pub async fn shutdown_with(self, transport: &Transport) {
        transport.shutdown().await;
        self.shutdown().await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

struct AcceptLoop {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handler: TransportService,
    stop: CancellationToken,
    closing: CancellationToken,
}

impl AcceptLoop {
    /// Accepts until the server stops, then closes the connections
    /// gracefully: `GOAWAY`, up to [`GRACEFUL_SHUTDOWN_TIMEOUT`] for open
    /// requests, then whatever is left is dropped.
    async fn run(self) {
        let conns = TaskTracker::new();
        let closing = self.closing.clone();
        self.accept_until_stopped(&conns, &closing).await;
        drop(self.listener);
        conns.close();
        tokio::select! {
            r = tokio::time::timeout(GRACEFUL_SHUTDOWN_TIMEOUT, conns.wait()) => {
                if r.is_err() {
                    closing.cancel();
                }
            }
            _ = closing.cancelled() => {}
        }
        conns.wait().await;
    }

    async fn accept_until_stopped(&self, conns: &TaskTracker, closing: &CancellationToken) {
        let options = self.handler.inner.options.clone();
        let limits = Arc::new(ConnLimits::from(&options));
        let connections = Arc::new(Semaphore::new(options.max_connections));
        let accepted = Arc::new(Accepted::new(
            options.max_accepted_connections,
            options.idle_connection_timeout,
            self.handler.inner.metrics.clone(),
        ));
        let mut sweep = tokio::time::interval(accepted.sweep_every());
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let accepted_tcp = tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = sweep.tick() => {
                    accepted.close_idle();
                    continue;
                }
                a = self.listener.accept() => a,
            };
            let (tcp, remote) = match accepted_tcp {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead
                    // of spinning, then keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = connections.clone().try_acquire_owned() else {
                if self.handler.inner.metrics.refuse("connections") {
                    tracing::warn!(peer = %remote, limit = options.max_connections, "closed a connection: max_connections reached");
                }
                drop(tcp);
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let mut service = self.handler.clone().for_peer(remote);
            let request_seen = Arc::new(Notify::new());
            service.request_seen = Some(request_seen.clone());
            let conn = Conn {
                service,
                request_seen,
                admitted: accepted.admit(),
                stop: self.stop.clone(),
                closing: closing.clone(),
                limits: limits.clone(),
                tls_hello: Arc::default(),
            };
            let stop = self.stop.clone();
            let tls = self.tls.clone();
            let metrics = self.handler.inner.metrics.clone();
            conns.spawn(async move {
                let _permit = permit;
                let Some(acceptor) = tls else {
                    let io = FirstBytesDeadline::new(tcp, conn.limits.header_read_timeout)
                        .watching_for_tls(conn.tls_hello.clone());
                    return conn.serve(io).await;
                };
                let handshake =
                    tokio::time::timeout(conn.limits.header_read_timeout, acceptor.accept(tcp));
                let tls = tokio::select! {
                    r = handshake => r,
                    _ = stop.cancelled() => return,
                };
                match tls {
                    Ok(Ok(io)) => {
                        let io = FirstBytesDeadline::new(io, conn.limits.header_read_timeout);
                        conn.serve(io).await
                    }
                    Ok(Err(e)) if is_not_tls(&e) => {
                        if metrics.refuse("cleartext_on_tls") {
                            tracing::warn!(peer = %remote, error = %e,
                                "a peer spoke cleartext (h2c?) to this TLS port: give it TLS \
                                 (https://, --tls with --ca) or serve without TLS");
                        }
                    }
                    Ok(Err(e)) => {
                        if metrics.refuse("tls_handshake") {
                            tracing::warn!(peer = %remote, error = %e, "TLS handshake failed");
                        }
                    }
                    Err(_) => {
                        if metrics.refuse("tls_handshake_timeout") {
                            tracing::warn!(peer = %remote, "TLS handshake timed out");
                        }
                    }
                }
            });
        }
    }
}

/// Whether a failed TLS handshake means the peer does not speak TLS (see
/// [`is_not_tls`](super::tls::is_not_tls)), such as an h2c client.
fn is_not_tls(e: &std::io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(super::tls::is_not_tls)
}

/// Per-connection settings, taken from the options once.
struct ConnLimits {
    header_read_timeout: Duration,
    max_concurrent_streams: u32,
    max_header_list_size: u32,
}

impl From<&crate::Options> for ConnLimits {
    fn from(o: &crate::Options) -> Self {
        ConnLimits {
            header_read_timeout: o.header_read_timeout,
            max_concurrent_streams: o.max_concurrent_streams_per_connection,
            max_header_list_size: o.max_header_list_size,
        }
    }
}

/// One accepted connection, about to be served.
struct Conn {
    service: TransportService,
    request_seen: Arc<Notify>,
    /// Its place among the accepted connections: its use is recorded
    /// there, and the server asks it to close through it.
    admitted: Admitted,
    /// Cancelled when the server shuts down: close gracefully.
    stop: CancellationToken,
    /// Cancelled when the graceful close took too long: drop the connection.
    closing: CancellationToken,
    limits: Arc<ConnLimits>,
    /// Set when a cleartext connection opened with a TLS handshake.
    tls_hello: Arc<AtomicBool>,
}

impl Conn {
    /// Serves the connection until it ends, the server's graceful close
    /// ends it, or that close runs out of time.
    ///
    /// A connection must complete its first request's headers within
    /// `header_read_timeout` of being accepted: hyper bounds HTTP/1 headers
    /// but not HTTP/2 ones, so a peer could send the preface and then
    /// trickle a `HEADERS` frame a byte at a time, holding the connection
    /// forever.
    async fn serve<T>(self, io: T)
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let limits = &self.limits;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http2()
            .timer(TokioTimer::new())
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_frame_size(MAX_H2_FRAME)
            .max_concurrent_streams(limits.max_concurrent_streams)
            // No keep-alive pings from the server: hyper's server pings
            // every connection, idle or not, and a cluster member holds
            // one accepted connection per peer, so pings every 20 s were
            // 5 a second per member among 100, more than its gossip, and a
            // third of a resting member's CPU (measured: 0.195% of a core
            // with them, 0.13% without). A connection whose client
            // vanished is closed anyway: a request under way by its own
            // read timeout, an idle connection after
            // `idle_connection_timeout`.
            .max_header_list_size(limits.max_header_list_size);
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size((limits.max_header_list_size as usize).max(8192));
        let remote = self.service.remote;
        let metrics = self.service.inner.metrics.clone();
        let service = TrackedService {
            service: self.service,
            activity: self.admitted.activity.clone(),
        };
        let conn = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        let first_request = async {
            if tokio::time::timeout(limits.header_read_timeout, self.request_seen.notified())
                .await
                .is_ok()
            {
                // In time: from now on only the connection's end matters.
                std::future::pending::<()>().await;
            }
        };
        tokio::pin!(first_request);
        let close_requested = self.admitted.activity.close_requested().clone();
        let mut goaway_sent = false;
        loop {
            tokio::select! {
                // First: a server aborted (`Server::abort`) sends nothing
                // more, not even the GOAWAY its stop would ask for.
                biased;
                _ = self.closing.cancelled() => return,
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        if self.tls_hello.load(Ordering::Relaxed) {
                            if metrics.refuse("tls_on_cleartext") {
                                tracing::warn!(peer = ?remote, "{TLS_ON_CLEARTEXT}");
                            }
                        } else {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    }
                    return;
                }
                _ = &mut first_request => {
                    if metrics.refuse("header_timeout") {
                        tracing::warn!(peer = ?remote, timeout = ?limits.header_read_timeout,
                            "closed a connection that sent no whole request in time");
                    }
                    return;
                }
                // The server stops, or wants this connection's place:
                // GOAWAY, and let requests under way finish.
                _ = self.stop.cancelled(), if !goaway_sent => {
                    conn.as_mut().graceful_shutdown();
                    goaway_sent = true;
                }
                _ = close_requested.cancelled(), if !goaway_sent => {
                    conn.as_mut().graceful_shutdown();
                    goaway_sent = true;
                }
            }
        }
    }
}

/// The handler, with every request recorded on its connection's
/// [`Activity`] until its response has been sent.
#[derive(Clone)]
struct TrackedService {
    service: TransportService,
    activity: Arc<Activity>,
}

type TrackedFuture =
    Pin<Box<dyn Future<Output = Result<Response<TrackedBody>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for TrackedService {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = TrackedFuture;

    fn call(&self, req: Request<Incoming>) -> TrackedFuture {
        let open = self.activity.request();
        let handled = self.service.call(req);
        Box::pin(async move {
            let resp = handled.await?;
            Ok(resp.map(|body| TrackedBody { body, _open: open }))
        })
    }
}

/// A response body that keeps its request counted as open until the body
/// has been sent (or dropped).
struct TrackedBody {
    body: FrameBody,
    _open: OpenRequest,
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
