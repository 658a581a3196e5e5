//! The server side: the request handler as a service, and `serve()`.
//!
//! Status codes follow the contract (`PROTOCOL.md`): `505` for HTTP/1.x,
//! `400` for a wrong `Content-Type` or a malformed frame (frames before the
//! bad one are delivered), `503` after shutdown, `200` otherwise; `404` for
//! other paths and `405` for methods other than `POST`.

use super::access::Cors;
use super::body::FrameBody;
use super::connector::{CONNECTION_WINDOW, MAX_H2_FRAME, STREAM_WINDOW};
use super::deadline::FirstBytesDeadline;
use super::stream::{write_channel, StreamConn};
use super::transport::{Inner, Transport};
use crate::codec::{FrameError, PacketDecoder};
use crate::{BoxError, Error, Packet, CONTENT_TYPE, MESSAGE_PATH, STREAM_PATH};
use bytes::{Bytes, BytesMut};
use http_body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE as CONTENT_TYPE_HEADER, ORIGIN};
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long [`Server::shutdown`] lets open requests finish.
const GRACEFUL_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The peer's TCP address, as a request extension.
///
/// [`Transport::serve`] adds it to every request. When mounting
/// [`TransportService`] in your own server, either use
/// [`TransportService::for_peer`] per connection or insert this extension
/// (e.g. from axum's `ConnectInfo`); without it packets report `0.0.0.0:0`
/// as their source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteAddr(pub SocketAddr);

/// The transport's HTTP handler: answers `POST /api/v1/ckit/transport/message`
/// and `/stream`. It is a `tower::Service` and a `hyper::service::Service`.
///
/// Mounted in hyper, per accepted connection:
///
/// ```no_run
/// # async fn demo(transport: gossiphttp::Transport) -> std::io::Result<()> {
/// use hyper_util::rt::{TokioExecutor, TokioIo};
/// use hyper_util::server::conn::auto;
///
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:7946").await?;
/// loop {
///     let (tcp, remote) = listener.accept().await?;
///     let service = transport.handler().for_peer(remote);
///     tokio::spawn(async move {
///         let _ = auto::Builder::new(TokioExecutor::new())
///             .serve_connection(TokioIo::new(tcp), service)
///             .await;
///     });
/// }
/// # }
/// ```
///
/// Mounted in axum, beside your own routes (the handler matches the full
/// path, so use `route_service`, not `nest_service`, which strips it):
///
/// ```ignore
/// use axum::extract::{ConnectInfo, Request};
/// use std::net::SocketAddr;
///
/// let app = axum::Router::new()
///     .route("/healthz", axum::routing::get(|| async { "ok" }))
///     .route_service(gossiphttp::MESSAGE_PATH, transport.handler())
///     .route_service(gossiphttp::STREAM_PATH, transport.handler())
///     // Packets report their sender's TCP address: pass it on.
///     .layer(axum::middleware::map_request(
///         |ConnectInfo(remote): ConnectInfo<SocketAddr>, mut req: Request| async move {
///             req.extensions_mut().insert(gossiphttp::RemoteAddr(remote));
///             req
///         },
///     ));
/// axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
/// ```
///
/// (`tests/mounting.rs` runs both examples against a real peer.)
///
/// Go peers only speak HTTP/2 to this handler: serve it with h2c (prior
/// knowledge) or TLS with ALPN `h2`, e.g. axum's `serve` with the `http2`
/// feature.
#[derive(Clone)]
pub struct TransportService {
    inner: Arc<Inner>,
    remote: Option<SocketAddr>,
    fallback: Option<Fallback>,
    /// Signalled on every request, for the connection's first-request
    /// deadline (set by [`Transport::serve`] only).
    request_seen: Option<Arc<Notify>>,
}

/// Answers requests for paths that are not the transport's (see
/// [`TransportService::with_fallback`]); `None` means `404`.
pub type Fallback =
    Arc<dyn Fn(&hyper::http::request::Parts) -> Option<Response<FrameBody>> + Send + Sync>;

impl Transport {
    /// The HTTP handler for this transport's endpoints.
    pub fn handler(&self) -> TransportService {
        TransportService {
            inner: self.inner.clone(),
            remote: None,
            fallback: None,
            request_seen: None,
        }
    }

    /// Serves the endpoints on `listener` in the background: h2c, or h2
    /// over TLS when [`Options::server_tls`](crate::Options::server_tls) is
    /// set. HTTP/1.1 requests are answered `505`, as the reference does.
    ///
    /// The server outlives [`Transport::shutdown`] (its endpoints then answer
    /// `503`) until [`Server::shutdown`] is called or the `Server` dropped.
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
            tasks: tasks.clone(),
        };
        tasks.spawn(accept_loop.run());
        Ok(Server {
            local_addr,
            stop,
            tasks,
        })
    }
}

impl TransportService {
    /// This handler with the peer's TCP address set, for servers that make
    /// one service per connection.
    pub fn for_peer(mut self, remote: SocketAddr) -> Self {
        self.remote = Some(remote);
        self
    }

    /// This handler answering other paths with `fallback` (read-only
    /// routes such as a status page; the request body is not available).
    /// The transport's own paths always go to the transport.
    pub fn with_fallback(mut self, fallback: Fallback) -> Self {
        self.fallback = Some(fallback);
        self
    }

    async fn handle<B>(self, req: Request<B>) -> Response<FrameBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        if let Some(seen) = &self.request_seen {
            seen.notify_one();
        }
        let inner = &self.inner;
        let path = req.uri().path();
        let is_message = path == MESSAGE_PATH;
        if !is_message && path != STREAM_PATH {
            if inner.options.serve_metrics && path == "/metrics" && req.method() == Method::GET {
                return metrics_response(inner);
            }
            if let Some(fallback) = &self.fallback {
                let (parts, _body) = req.into_parts();
                return fallback(&parts).unwrap_or_else(|| status(StatusCode::NOT_FOUND));
            }
            return status(StatusCode::NOT_FOUND);
        }

        // CORS, when configured: refuse other origins outright, answer
        // preflights, and let allowed pages read every response.
        let mut allowed_origin = None;
        if let (Some(cors), Some(origin)) = (&inner.cors, req.headers().get(ORIGIN)) {
            if !cors.allows(origin) {
                if inner.metrics.refuse("origin") {
                    tracing::warn!(origin = ?origin, "refused a request from an origin not in cors_allowed_origins");
                }
                return status(StatusCode::FORBIDDEN);
            }
            let origin = origin.clone();
            if req.method() == Method::OPTIONS {
                let mut resp = status(StatusCode::NO_CONTENT);
                cors.preflight_headers(&origin, inner.token.is_some(), resp.headers_mut());
                return resp;
            }
            allowed_origin = Some(origin);
        }
        let mut resp = self.handle_transport(req, is_message).await;
        if let Some(origin) = allowed_origin {
            Cors::allow_origin(&origin, resp.headers_mut());
        }
        resp
    }

    async fn handle_transport<B>(&self, req: Request<B>, is_message: bool) -> Response<FrameBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let inner = &self.inner;
        if inner.shutdown.is_cancelled() {
            return status(StatusCode::SERVICE_UNAVAILABLE);
        }
        if req.version() < Version::HTTP_2 && !inner.options.accept_http1 {
            return status(StatusCode::HTTP_VERSION_NOT_SUPPORTED);
        }
        if let Some(token) = &inner.token {
            if !token.accepts(req.headers()) {
                if inner.metrics.refuse("auth") {
                    tracing::warn!(peer = ?self.remote, "refused a request without the shared-secret token");
                }
                return status(StatusCode::UNAUTHORIZED);
            }
        }
        // The content type is checked before the method, as the reference
        // does: a `GET` without it is a `400` there too.
        if req.headers().get(CONTENT_TYPE_HEADER).map(|v| v.as_bytes())
            != Some(CONTENT_TYPE.as_bytes())
        {
            return status(StatusCode::BAD_REQUEST);
        }
        if req.method() != Method::POST {
            let mut resp = status(StatusCode::METHOD_NOT_ALLOWED);
            resp.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            return resp;
        }
        let remote = self
            .remote
            .or_else(|| req.extensions().get::<RemoteAddr>().map(|r| r.0))
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let body = req.into_body().map_err(Into::into).boxed_unsync();
        if is_message {
            receive_packets(inner, body, remote).await
        } else {
            accept_stream(inner, body, remote)
        }
    }
}

fn status(code: StatusCode) -> Response<FrameBody> {
    let mut resp = Response::new(FrameBody::empty());
    *resp.status_mut() = code;
    resp
}

fn metrics_response(inner: &Inner) -> Response<FrameBody> {
    let mut resp = Response::new(FrameBody::once(inner.registry.encode_text().into()));
    resp.headers_mut().insert(
        CONTENT_TYPE_HEADER,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}

/// `/message`: every frame is a packet, delivered as soon as it is whole.
async fn receive_packets(
    inner: &Inner,
    mut body: super::stream::IncomingBody,
    from: SocketAddr,
) -> Response<FrameBody> {
    // A body can stay open for more packets (see `message_body_linger`):
    // each packet is stamped when the chunk holding it arrived.
    let mut received_at = Instant::now();
    let mut decoder = PacketDecoder::new(inner.options.max_packet_size);
    // Packets are sliced out of the body's chunks; only a frame split
    // across chunks is copied, into `held`.
    let mut held = BytesMut::new();
    let mut chunk = Bytes::new();
    // The body gets `body_read_timeout` in all for its bytes to arrive, so
    // a peer trickling a byte a second is cut off as surely as a silent
    // one. Time spent waiting for room in our own packet queue is ours,
    // not the peer's, and is not counted.
    let budget = inner.options.body_read_timeout;
    let mut waited = Duration::ZERO;
    loop {
        loop {
            match decoder.decode_chunk(&mut held, &mut chunk) {
                Ok(Some(payload)) => {
                    if !deliver(inner, payload, from, received_at).await {
                        return status(StatusCode::SERVICE_UNAVAILABLE);
                    }
                }
                Ok(None) => break,
                Err(e) => return refuse_frame(inner, from, &e),
            }
        }
        let wait_start = Instant::now();
        let frame = tokio::select! {
            f = tokio::time::timeout(budget.saturating_sub(waited), body.frame()) => f,
            _ = inner.shutdown.cancelled() => return status(StatusCode::SERVICE_UNAVAILABLE),
        };
        received_at = Instant::now();
        waited += received_at - wait_start;
        match frame {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    chunk = data;
                }
            }
            Ok(Some(Err(e))) => {
                return refuse_body(
                    inner,
                    from,
                    (StatusCode::BAD_REQUEST, "body_error"),
                    &format!("body error: {e}"),
                )
            }
            Ok(None) => break,
            Err(_) => {
                return refuse_body(
                    inner,
                    from,
                    (StatusCode::REQUEST_TIMEOUT, "body_timeout"),
                    &format!("the body took longer than {budget:?}"),
                );
            }
        }
    }
    match decoder.decode_eof(&mut held) {
        // decode() already took every whole frame; only an error can remain.
        Ok(_) => status(StatusCode::OK),
        Err(e) => refuse_frame(inner, from, &e),
    }
}

/// A frame the contract calls malformed is a `400`; a frame over
/// `max_packet_size` is well formed but more than this server takes, so it
/// is a `413` (any non-`200` is a failed send to a Go peer).
fn refuse_frame(inner: &Inner, from: SocketAddr, e: &FrameError) -> Response<FrameBody> {
    let code = match e {
        FrameError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "packet_size"),
        _ => (StatusCode::BAD_REQUEST, "malformed"),
    };
    refuse_body(inner, from, code, &e.to_string())
}

/// Counts a refused body (`rx_packets_failed`, `requests_refused{reason}`)
/// and logs it, at most once a second per reason so a hostile peer cannot
/// flood the log.
fn refuse_body(
    inner: &Inner,
    from: SocketAddr,
    (code, reason): (StatusCode, &'static str),
    why: &str,
) -> Response<FrameBody> {
    inner.metrics.rx_packets_failed.inc();
    if inner.metrics.refuse(reason) {
        tracing::warn!(peer = %from, status = code.as_u16(), reason, error = why, "refused a /message body");
    }
    status(code)
}

/// Hands a packet to the application, waiting for room in the queue (so
/// HTTP/2 flow control slows the sender rather than anything being
/// dropped). False once the transport is shut down.
async fn deliver(inner: &Inner, payload: Bytes, from: SocketAddr, received_at: Instant) -> bool {
    let len = payload.len() as u64;
    let packet = Packet {
        payload,
        from,
        received_at,
    };
    let sent = tokio::select! {
        r = inner.packets_tx.send(packet) => r.is_ok(),
        _ = inner.shutdown.cancelled() => false,
    };
    if sent {
        inner.metrics.rx_packets.inc();
        inner.metrics.rx_bytes.inc_by(len);
        inner
            .metrics
            .rx_packet_queue_length
            .set(inner.packets_tx.len() as i64);
    }
    sent
}

/// `/stream`: answer `200` at once (Go dialers wait for the headers before
/// writing), then the bodies carry the byte pipe both ways.
fn accept_stream(
    inner: &Inner,
    body: super::stream::IncomingBody,
    remote: SocketAddr,
) -> Response<FrameBody> {
    let Ok(permit) = inner.stream_permits.clone().try_acquire_owned() else {
        if inner.metrics.refuse("streams") {
            tracing::warn!(peer = %remote, limit = inner.options.max_streams, "refused a stream: max_streams reached");
        }
        return status(StatusCode::SERVICE_UNAVAILABLE);
    };
    let (writer, response_body) = write_channel(&inner.shutdown);
    let conn = StreamConn::new(body, writer, remote, Some(permit), &inner.stream_ctx);
    match inner.streams_tx.try_send(conn) {
        Ok(()) => {
            let mut resp = Response::new(response_body);
            resp.headers_mut()
                .insert(CONTENT_TYPE_HEADER, HeaderValue::from_static(CONTENT_TYPE));
            resp
        }
        Err(async_channel::TrySendError::Full(_)) => {
            if inner.metrics.refuse("stream_queue") {
                tracing::warn!(peer = %remote, "refused a stream: the stream queue is full (is anyone accepting streams?)");
            }
            status(StatusCode::SERVICE_UNAVAILABLE)
        }
        Err(async_channel::TrySendError::Closed(_)) => status(StatusCode::SERVICE_UNAVAILABLE),
    }
}

type HandlerFuture = Pin<Box<dyn Future<Output = Result<Response<FrameBody>, Infallible>> + Send>>;

impl<B> tower_service::Service<Request<B>> for TransportService
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<FrameBody>;
    type Error = Infallible;
    type Future = HandlerFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> HandlerFuture {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}

impl hyper::service::Service<Request<Incoming>> for TransportService {
    type Response = Response<FrameBody>;
    type Error = Infallible;
    type Future = HandlerFuture;

    fn call(&self, req: Request<Incoming>) -> HandlerFuture {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}

impl std::fmt::Debug for TransportService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportService")
            .field("remote", &self.remote)
            .finish()
    }
}

/// A running server from [`Transport::serve`].
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Server {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections, lets open requests finish for a few
    /// seconds, then closes every connection; returns when all are closed.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
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
    tasks: TaskTracker,
}

impl AcceptLoop {
    async fn run(self) {
        let options = self.handler.inner.options.clone();
        let limits = Arc::new(ConnLimits::from(&options));
        let connections = Arc::new(Semaphore::new(options.max_connections));
        loop {
            let accepted = tokio::select! {
                _ = self.stop.cancelled() => return,
                a = self.listener.accept() => a,
            };
            let (tcp, remote) = match accepted {
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
            let stop = self.stop.clone();
            let limits = limits.clone();
            let tls = self.tls.clone();
            let metrics = self.handler.inner.metrics.clone();
            self.tasks.spawn(async move {
                let _permit = permit;
                let Some(acceptor) = tls else {
                    let io = FirstBytesDeadline::new(tcp, limits.header_read_timeout);
                    return serve_connection(io, service, request_seen, stop, &limits, &metrics)
                        .await;
                };
                let handshake =
                    tokio::time::timeout(limits.header_read_timeout, acceptor.accept(tcp));
                let tls = tokio::select! {
                    r = handshake => r,
                    _ = stop.cancelled() => return,
                };
                match tls {
                    Ok(Ok(io)) => {
                        let io = FirstBytesDeadline::new(io, limits.header_read_timeout);
                        serve_connection(io, service, request_seen, stop, &limits, &metrics).await
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

/// Serves one connection until it ends or the server stops.
///
/// A connection must complete its first request's headers within
/// `header_read_timeout` of being accepted: hyper bounds HTTP/1 headers but
/// not HTTP/2 ones, so a peer could send the preface and then trickle a
/// `HEADERS` frame a byte at a time, holding the connection forever.
async fn serve_connection<T>(
    io: T,
    service: TransportService,
    request_seen: Arc<Notify>,
    stop: CancellationToken,
    limits: &ConnLimits,
    metrics: &super::metrics::Metrics,
) where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .timer(TokioTimer::new())
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_H2_FRAME)
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(limits.max_header_list_size)
        .keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10));
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size((limits.max_header_list_size as usize).max(8192));
    let remote = service.remote;
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let first_request = async {
        if tokio::time::timeout(limits.header_read_timeout, request_seen.notified())
            .await
            .is_ok()
        {
            // In time: from now on only the connection's end matters.
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            return;
        }
        _ = first_request => {
            if metrics.refuse("header_timeout") {
                tracing::warn!(peer = ?remote, timeout = ?limits.header_read_timeout,
                    "closed a connection that sent no whole request in time");
            }
            return;
        }
        _ = stop.cancelled() => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(GRACEFUL_SHUTDOWN_TIMEOUT, conn).await;
}
