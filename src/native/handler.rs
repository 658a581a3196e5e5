//! The request handler, as a service: the contract's rules
//! ([`crate::contract`]) carried out with hyper, then the endpoints; the
//! statuses are listed on [`TransportService`].

use super::answers::{self, Held, ANSWER_WAIT, REPLY_TO};
use super::body::FrameBody;
use super::stream::{write_channel, IncomingBody, StreamConn};
use super::transport::{Inner, Transport};
use crate::contract::{self, Decision, Endpoint, Refusal, RequestFacts, Route, Rules};
use crate::BoxError;
use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{
    HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE as CONTENT_TYPE_HEADER, ORIGIN,
};
use hyper::{Method, Request, Response, StatusCode, Version};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

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
/// What it answers, in order:
/// - a path other than the two endpoints: `GET /metrics` with
///   [`Options::serve_metrics`](crate::Options::serve_metrics), else the
///   [`Fallback`] if one is set, else `404`;
/// - for an endpoint, the contract's rules in their order: `403` (an
///   `Origin` outside `cors_allowed_origins`) or `204` (its preflight),
///   `503` (transport shut down), `505` (HTTP/1.x without `accept_http1`),
///   `401` (token), `400` (content type), `405` with `Allow: POST`;
/// - `/message`: `200` once the body ended with every frame delivered
///   (for a request naming its sender in `gossiphttp-reply-to`, once the
///   application sent that address a packet, at most 1 s later, with
///   the packets in its body: see [`Options::answers_in_responses`](crate::Options::answers_in_responses));
///   `413` at a frame over `max_packet_size`, `400` at a malformed frame or
///   a failed body (the frames before it delivered), `408` when the body
///   takes longer than `body_read_timeout`, `503` if the transport shuts
///   down meanwhile;
/// - `/stream`: `200` at once, or `503` beyond `max_streams` or with the
///   stream queue full.
///
/// A refusal answered before the body was read first reads and discards
/// up to [`DRAIN_LIMIT`](crate::contract::DRAIN_LIMIT) bytes of it for at
/// most [`DRAIN_TIME`](crate::contract::DRAIN_TIME), so the status reaches a
/// client that sends its body a moment after its headers (as curl does)
/// instead of a stream reset.
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
    pub(super) inner: Arc<Inner>,
    pub(super) remote: Option<SocketAddr>,
    fallback: Option<Fallback>,
    /// Signalled on every request, for the connection's first-request
    /// deadline (set by [`Transport::serve`] only).
    pub(super) request_seen: Option<Arc<Notify>>,
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
        let Route::Endpoint(endpoint) = contract::route(contract::BASE_PATH, req.uri().path())
        else {
            let (parts, body) = req.into_parts();
            let resp = self.elsewhere(&parts);
            drain(body).await;
            return resp;
        };
        let headers = req.headers();
        let facts = RequestFacts {
            method: req.method().as_str(),
            http1: req.version() < Version::HTTP_2,
            content_type: headers.get(CONTENT_TYPE_HEADER).map(HeaderValue::as_bytes),
            origin: headers.get(ORIGIN).map(HeaderValue::as_bytes),
            authorization: headers.get(AUTHORIZATION).map(HeaderValue::as_bytes),
        };
        let rules = Rules {
            cors: inner.cors.as_ref(),
            token: inner.token.as_ref(),
            accept_http1: inner.options.accept_http1,
            shutting_down: inner.shutdown.is_cancelled(),
        };
        let decision = rules.decide(&facts);
        // Owned now: the request is consumed below.
        let extra_headers: Vec<(HeaderName, HeaderValue)> = decision
            .headers()
            .into_iter()
            .filter_map(|(name, value)| {
                Some((
                    HeaderName::from_static(name),
                    HeaderValue::from_bytes(value).ok()?,
                ))
            })
            .collect();
        let mut resp = match decision {
            Decision::Accept { .. } => {
                let remote = self
                    .remote
                    .or_else(|| req.extensions().get::<RemoteAddr>().map(|r| r.0))
                    .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
                // Opened before the body is read: the packets it carries
                // may be answered before its end is seen.
                let held = match (endpoint, req.headers().get(REPLY_TO)) {
                    (Endpoint::Message, Some(value))
                        if inner.options.answers_in_responses && !facts.http1 =>
                    {
                        answers::reply_to(value.as_bytes(), remote)
                            .and_then(|to| inner.answers.open(to))
                    }
                    _ => None,
                };
                let body = req.into_body().map_err(Into::into).boxed_unsync();
                match endpoint {
                    Endpoint::Message => receive_packets(inner, body, remote, held).await,
                    Endpoint::Stream => accept_stream(inner, body, remote).await,
                }
            }
            Decision::Preflight { .. } => {
                drain(req.into_body()).await;
                status(StatusCode::NO_CONTENT)
            }
            Decision::Refuse { refusal, .. } => {
                self.count(refusal, &facts);
                drain(req.into_body()).await;
                status(refusal.status())
            }
        };
        resp.headers_mut().extend(extra_headers);
        resp
    }

    /// A path that is not an endpoint: metrics, the fallback, or `404`.
    fn elsewhere(&self, parts: &hyper::http::request::Parts) -> Response<FrameBody> {
        let inner = &self.inner;
        if inner.options.serve_metrics
            && parts.uri.path() == "/metrics"
            && parts.method == Method::GET
        {
            return metrics_response(inner);
        }
        match &self.fallback {
            Some(fallback) => fallback(parts).unwrap_or_else(|| status(StatusCode::NOT_FOUND)),
            None => status(StatusCode::NOT_FOUND),
        }
    }

    /// Counts an access refusal and logs it, at most once a second per
    /// reason.
    fn count(&self, refusal: Refusal, facts: &RequestFacts<'_>) {
        let Some(reason) = refusal.reason() else {
            return;
        };
        if self.inner.metrics.refuse(reason) {
            match refusal {
                Refusal::Origin => tracing::warn!(
                    origin = %String::from_utf8_lossy(facts.origin.unwrap_or_default()),
                    "refused a request from an origin not in cors_allowed_origins"
                ),
                Refusal::Token => tracing::warn!(peer = ?self.remote,
                    "refused a request without the shared-secret token"),
                _ => tracing::warn!(peer = ?self.remote, reason, status = refusal.status(),
                    "refused a request"),
            }
        }
    }
}

fn status(code: impl TryInto<StatusCode>) -> Response<FrameBody> {
    let mut resp = Response::new(FrameBody::empty());
    *resp.status_mut() = code.try_into().unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp
}

/// A `200` whose body is frames, labelled as the contract's content type.
fn of_frames(body: FrameBody) -> Response<FrameBody> {
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        CONTENT_TYPE_HEADER,
        HeaderValue::from_static(crate::CONTENT_TYPE),
    );
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

/// Reads and discards what is left of a refused request's body, up to
/// [`contract::DRAIN_LIMIT`] bytes for at most [`contract::DRAIN_TIME`],
/// before the refusal is answered. Answering first would have hyper reset
/// the stream (`RST_STREAM(NO_ERROR)`) while the client may not have sent
/// its body yet, and some clients (curl) then report the reset and never
/// the status. A peer that keeps sending is not read past the bounds.
async fn drain<B>(body: B)
where
    B: Body<Data = Bytes>,
{
    let mut body = std::pin::pin!(body);
    let mut left = contract::DRAIN_LIMIT;
    let read = async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                match left.checked_sub(data.len()) {
                    Some(rest) if rest > 0 => left = rest,
                    _ => return,
                }
            }
        }
    };
    let _ = tokio::time::timeout(contract::DRAIN_TIME, read).await;
}

/// `/message`: every frame is a packet, delivered as soon as it is whole;
/// with a mailbox `held` for the peer, the `200` carries what the
/// application sent it meanwhile (see [`answers`]).
async fn receive_packets(
    inner: &Inner,
    mut body: IncomingBody,
    from: SocketAddr,
    held: Option<Held<'_>>,
) -> Response<FrameBody> {
    // A body can stay open for more packets (see `message_body_linger`):
    // each packet is stamped when the chunk holding it arrived.
    let mut received_at = Instant::now();
    let mut reader = contract::MessageReader::new(inner.options.max_packet_size);
    // The body gets `body_read_timeout` in all for its bytes to arrive, so
    // a peer trickling a byte a second is cut off as surely as a silent
    // one. Time spent waiting for room in our own packet queue is ours,
    // not the peer's, and is not counted.
    let budget = inner.options.body_read_timeout;
    let mut waited = Duration::ZERO;
    loop {
        loop {
            match reader.next_packet() {
                Ok(Some(payload)) => {
                    if !inner.inbox.deliver(payload, from, received_at).await {
                        return status(StatusCode::SERVICE_UNAVAILABLE);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let resp = refuse_body(inner, from, Refusal::for_frame(&e), &e.to_string());
                    drain(body).await;
                    return resp;
                }
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
                    reader.push(data);
                }
            }
            Ok(Some(Err(e))) => {
                return refuse_body(
                    inner,
                    from,
                    Refusal::BodyFailed,
                    &format!("body error: {e}"),
                )
            }
            Ok(None) => break,
            Err(_) => {
                let why = format!("the body took longer than {budget:?}");
                return refuse_body(inner, from, Refusal::BodyTimeout, &why);
            }
        }
    }
    if let Err(e) = reader.finish() {
        return refuse_body(inner, from, Refusal::for_frame(&e), &e.to_string());
    }
    let Some(held) = held else {
        return status(StatusCode::OK);
    };
    let frames = held.collect(ANSWER_WAIT, &inner.shutdown).await;
    if frames.is_empty() {
        return status(StatusCode::OK);
    }
    of_frames(FrameBody::once(frames))
}

/// Counts a refused body (`rx_packets_failed`, `requests_refused{reason}`)
/// and logs it, at most once a second per reason so a hostile peer cannot
/// flood the log.
fn refuse_body(
    inner: &Inner,
    from: SocketAddr,
    refusal: Refusal,
    why: &str,
) -> Response<FrameBody> {
    inner.metrics.rx_packets_failed.inc();
    let code = refusal.status();
    if let Some(reason) = refusal.reason() {
        if inner.metrics.refuse(reason) {
            tracing::warn!(peer = %from, status = code, reason, error = why, "refused a /message body");
        }
    }
    status(code)
}

/// `/stream`: answer `200` at once (Go dialers wait for the headers before
/// writing), then the bodies carry the byte pipe both ways.
async fn accept_stream(
    inner: &Inner,
    body: IncomingBody,
    remote: SocketAddr,
) -> Response<FrameBody> {
    let Ok(permit) = inner.stream_permits.clone().try_acquire_owned() else {
        if inner.metrics.refuse("streams") {
            tracing::warn!(peer = %remote, limit = inner.options.max_streams, "refused a stream: max_streams reached");
        }
        drain(body).await;
        return status(StatusCode::SERVICE_UNAVAILABLE);
    };
    let (writer, response_body) = write_channel(&inner.shutdown);
    let conn = StreamConn::new(body, writer, remote, Some(permit), &inner.stream_ctx);
    match inner.streams_tx.try_send(Box::new(conn)) {
        Ok(()) => of_frames(response_body),
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
