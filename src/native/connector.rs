//! Client connections: one HTTP/2 connection per peer, reused by every
//! packet batch and stream to that peer, re-established on the next use
//! after it breaks. Requests that find no connection at once share the
//! one connect (single flight), so a burst to a new peer opens one
//! connection, not one per request.
//!
//! With [`Options::client_http1`](super::Options::client_http1) peers are
//! spoken to in HTTP/1.1 instead: a small pool of keep-alive connections
//! per peer, one request in flight on each.

use super::body::FrameBody;
use super::tls::ClientTls;
use crate::contract::Token;
use crate::{Error, PeerAddr, Scheme};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::client::conn::http2::{self, SendRequest};
use hyper::header::HeaderValue;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// HTTP/2 flow-control windows: large enough that a stream is not held back
/// by round trips on loopback or a LAN (the h2 default is 64 KiB).
pub(crate) const STREAM_WINDOW: u32 = 1 << 20;
pub(crate) const CONNECTION_WINDOW: u32 = 4 << 20;
/// Largest HTTP/2 DATA frame we accept: a whole 64 KiB gossip frame (and
/// more) per DATA frame instead of the default 16 KiB, a quarter of the
/// per-frame work on streams and batches.
pub(crate) const MAX_H2_FRAME: u32 = 256 << 10;
/// A connection whose peer stops answering pings is closed after this.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle HTTP/1.1 connections kept per peer; more concurrent requests open
/// more connections, which close after their request.
const HTTP1_IDLE_PER_PEER: usize = 8;

type PoolKey = (Scheme, String);

pub(crate) struct Connector {
    tls: Option<ClientTls>,
    token: Option<Token>,
    http1: bool,
    pool: Mutex<HashMap<PoolKey, SendRequest<FrameBody>>>,
    /// One lock per peer being connected to, so concurrent first requests
    /// wait for one connection instead of each opening their own.
    connecting: Mutex<HashMap<PoolKey, Arc<tokio::sync::Mutex<()>>>>,
    http1_pool: Mutex<HashMap<PoolKey, Vec<http1::SendRequest<FrameBody>>>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Connector {
    pub(crate) fn new(
        tls: Option<ClientTls>,
        token: Option<Token>,
        http1: bool,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Self {
        Connector {
            tls,
            token,
            http1,
            pool: Mutex::new(HashMap::new()),
            connecting: Mutex::new(HashMap::new()),
            http1_pool: Mutex::new(HashMap::new()),
            shutdown,
            tasks,
        }
    }

    /// The scheme used for `peer`: its own if it is a URL, else the
    /// transport's (`https` when client TLS is configured).
    pub(crate) fn scheme_for(&self, peer: &PeerAddr) -> Scheme {
        peer.scheme().unwrap_or(if self.tls.is_some() {
            Scheme::Https
        } else {
            Scheme::Http
        })
    }

    /// The absolute URI of `path` on `peer`.
    pub(crate) fn uri(&self, peer: &PeerAddr, path: &str) -> String {
        format!(
            "{}://{}{}",
            self.scheme_for(peer).as_str(),
            peer.authority(),
            path
        )
    }

    /// Sends `req` to `peer` on its pooled connection, connecting first if
    /// there is none or the last one broke. A request that never left
    /// because the pooled connection had died meanwhile (the peer restarted,
    /// say) is retried once on a fresh connection.
    pub(crate) async fn request(
        &self,
        peer: &PeerAddr,
        mut req: Request<FrameBody>,
    ) -> Result<Response<Incoming>, Error> {
        if let Some(token) = &self.token {
            // Options::validate admits visible ASCII only: a valid value.
            if let Ok(mut value) = HeaderValue::from_bytes(token.authorization()) {
                value.set_sensitive(true);
                req.headers_mut()
                    .insert(hyper::header::AUTHORIZATION, value);
            }
        }
        let key = (self.scheme_for(peer), peer.authority());
        if self.http1 {
            return self.request_http1(peer, key, req).await;
        }
        let http_err = |e: hyper::Error| Error::Http {
            addr: peer.to_string(),
            source: e.into(),
        };
        let mut fresh = false;
        loop {
            let mut sender = match self.pooled(&key) {
                Some(s) => s,
                None => {
                    let (s, opened) = self.connect_single_flight(peer, &key).await?;
                    fresh |= opened;
                    s
                }
            };
            let sent = match sender.ready().await {
                Ok(()) => sender.try_send_request(req).await,
                Err(e) => {
                    self.forget(&key, &sender);
                    if fresh {
                        return Err(http_err(e));
                    }
                    fresh = true;
                    // `req` was not handed over; try a new connection.
                    continue;
                }
            };
            match sent {
                Ok(resp) => return Ok(resp),
                Err(mut e) => {
                    self.forget(&key, &sender);
                    match e.take_message() {
                        Some(unsent) if !fresh => {
                            fresh = true;
                            req = unsent;
                        }
                        _ => return Err(http_err(e.into_error())),
                    }
                }
            }
        }
    }

    fn pooled(&self, key: &PoolKey) -> Option<SendRequest<FrameBody>> {
        let pool = self.pool.lock().unwrap();
        pool.get(key).filter(|s| !s.is_closed()).cloned()
    }

    /// The pooled connection to `peer`, or a new one: the first caller
    /// connects while later ones wait for it and share the result. Returns
    /// whether the connection was opened by this call.
    async fn connect_single_flight(
        &self,
        peer: &PeerAddr,
        key: &PoolKey,
    ) -> Result<(SendRequest<FrameBody>, bool), Error> {
        let lock = self
            .connecting
            .lock()
            .unwrap()
            .entry(key.clone())
            .or_default()
            .clone();
        let result = {
            let _turn = lock.lock().await;
            match self.pooled(key) {
                Some(s) => Ok((s, false)),
                None => match self.connect(peer, key.0).await {
                    Ok(s) => {
                        self.pool.lock().unwrap().insert(key.clone(), s.clone());
                        Ok((s, true))
                    }
                    Err(e) => Err(e),
                },
            }
        };
        // The last one out removes the lock, so peers that come and go
        // leave nothing behind.
        let mut connecting = self.connecting.lock().unwrap();
        drop(lock);
        if connecting
            .get(key)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            connecting.remove(key);
        }
        result
    }

    /// HTTP/1.1: an idle pooled connection, or a new one; the connection
    /// goes back to the pool once it can take another request.
    async fn request_http1(
        &self,
        peer: &PeerAddr,
        key: PoolKey,
        mut req: Request<FrameBody>,
    ) -> Result<Response<Incoming>, Error> {
        // HTTP/1.1 wants the origin form (`/path`) and a `Host` header
        // (HTTP/2 carries both in `:authority` and `:path`); servers such
        // as workerd answer `400` without `Host`.
        if let Some(pq) = req.uri().path_and_query().cloned() {
            *req.uri_mut() = pq.into();
        }
        if let Ok(host) = hyper::header::HeaderValue::from_str(&peer.authority()) {
            req.headers_mut().entry(hyper::header::HOST).or_insert(host);
        }
        let idle = {
            let mut pool = self.http1_pool.lock().unwrap();
            let idle = pool.get_mut(&key).and_then(|conns| {
                conns.retain(|c| !c.is_closed());
                let ready = conns.iter().position(|c| c.is_ready())?;
                Some(conns.swap_remove(ready))
            });
            if pool.get(&key).is_some_and(|c| c.is_empty()) {
                pool.remove(&key);
            }
            idle
        };
        let mut fresh = idle.is_none();
        let mut sender = match idle {
            Some(s) => s,
            None => self.connect_http1(peer, key.0).await?,
        };
        let result = loop {
            match sender.try_send_request(req).await {
                Ok(resp) => break Ok(resp),
                Err(mut e) => match e.take_message() {
                    // An idle connection the peer had closed meanwhile:
                    // the request never left, so a new connection may
                    // carry it.
                    Some(unsent) if !fresh => {
                        fresh = true;
                        req = unsent;
                        sender = self.connect_http1(peer, key.0).await?;
                    }
                    _ => {
                        break Err(Error::Http {
                            addr: peer.to_string(),
                            source: e.into_error().into(),
                        })
                    }
                },
            }
        };
        if result.is_ok() {
            // Ready again once the response body has been read to its end.
            let mut pool = self.http1_pool.lock().unwrap();
            let conns = pool.entry(key).or_default();
            if conns.len() < HTTP1_IDLE_PER_PEER {
                conns.push(sender);
            }
        }
        result
    }

    async fn connect_http1(
        &self,
        peer: &PeerAddr,
        scheme: Scheme,
    ) -> Result<http1::SendRequest<FrameBody>, Error> {
        let io = self.connect_io(peer, scheme).await?;
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| Error::Connect {
                addr: peer.to_string(),
                source: e.into(),
            })?;
        self.drive(conn);
        Ok(sender)
    }

    /// Drops `sender` from the pool if its connection is gone.
    fn forget(&self, key: &PoolKey, sender: &SendRequest<FrameBody>) {
        if sender.is_closed() {
            let mut pool = self.pool.lock().unwrap();
            if pool.get(key).is_some_and(|s| s.is_closed()) {
                pool.remove(key);
            }
        }
    }

    /// Drops every pooled connection (their drivers end with them).
    pub(crate) fn clear(&self) {
        self.pool.lock().unwrap().clear();
        self.http1_pool.lock().unwrap().clear();
    }

    async fn connect(
        &self,
        peer: &PeerAddr,
        scheme: Scheme,
    ) -> Result<SendRequest<FrameBody>, Error> {
        let io = self.connect_io(peer, scheme).await?;
        self.handshake(io).await.map_err(|e| Error::Connect {
            addr: peer.to_string(),
            source: e,
        })
    }

    /// TCP, and TLS for `https` (ALPN `h2`, or `http/1.1` in HTTP/1.1 mode).
    async fn connect_io(&self, peer: &PeerAddr, scheme: Scheme) -> Result<PeerIo, Error> {
        let connect_err = |e: crate::BoxError| Error::Connect {
            addr: peer.to_string(),
            source: e,
        };
        let tcp = TcpStream::connect((peer.host(), peer.port()))
            .await
            .map_err(|e| connect_err(e.into()))?;
        // Gossip packets are small and latency-sensitive.
        let _ = tcp.set_nodelay(true);
        match scheme {
            Scheme::Http => Ok(PeerIo::Plain(tcp)),
            Scheme::Https => {
                let tls = self.tls.clone().unwrap_or_else(default_tls);
                let config = if self.http1 {
                    let mut config = (*tls.0).clone();
                    config.alpn_protocols = vec![b"http/1.1".to_vec()];
                    Arc::new(config)
                } else {
                    tls.0
                };
                let name = ServerName::try_from(peer.host().to_string())
                    .map_err(|e| connect_err(e.into()))?;
                let io = TlsConnector::from(config)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| connect_err(e.into()))?;
                Ok(PeerIo::Tls(Box::new(io)))
            }
        }
    }

    /// Runs a connection's driver until it ends or the transport shuts down.
    fn drive<F, E>(&self, conn: F)
    where
        F: std::future::Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let shutdown = self.shutdown.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!(error = %e, "peer connection ended with an error");
                },
                _ = shutdown.cancelled() => {}
            }
        });
    }

    async fn handshake<T>(&self, io: T) -> Result<SendRequest<FrameBody>, crate::BoxError>
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_frame_size(MAX_H2_FRAME)
            .keep_alive_interval(KEEP_ALIVE_INTERVAL)
            .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
            .handshake(TokioIo::new(io))
            .await?;
        self.drive(conn);
        Ok(sender)
    }
}

/// A connection to a peer, cleartext or TLS.
enum PeerIo {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for PeerIo {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            PeerIo::Plain(io) => std::pin::Pin::new(io).poll_read(cx, buf),
            PeerIo::Tls(io) => std::pin::Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for PeerIo {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            PeerIo::Plain(io) => std::pin::Pin::new(io).poll_write(cx, buf),
            PeerIo::Tls(io) => std::pin::Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            PeerIo::Plain(io) => std::pin::Pin::new(io).poll_write_vectored(cx, bufs),
            PeerIo::Tls(io) => std::pin::Pin::new(io).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            PeerIo::Plain(io) => io.is_write_vectored(),
            PeerIo::Tls(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            PeerIo::Plain(io) => std::pin::Pin::new(io).poll_flush(cx),
            PeerIo::Tls(io) => std::pin::Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            PeerIo::Plain(io) => std::pin::Pin::new(io).poll_shutdown(cx),
            PeerIo::Tls(io) => std::pin::Pin::new(io).poll_shutdown(cx),
        }
    }
}

/// A URL peer (`https://…`) reached without client TLS configured: trust
/// nothing but what a caller configures. An empty root store fails every
/// handshake with a clear "unknown issuer" error rather than silently
/// trusting anything.
fn default_tls() -> ClientTls {
    ClientTls::from_roots(Vec::new()).expect("an empty root store is valid")
}
