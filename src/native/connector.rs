//! Client connections: one HTTP/2 connection per peer, reused by every
//! packet batch and stream to that peer, re-established on the next use
//! after it breaks.

use super::access::Token;
use super::body::FrameBody;
use super::tls::ClientTls;
use crate::{Error, PeerAddr, Scheme};
use hyper::body::Incoming;
use hyper::client::conn::http2::{self, SendRequest};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use std::collections::HashMap;
use std::sync::Mutex;
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
/// A connection whose peer stops answering pings is closed after this.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

type PoolKey = (Scheme, String);

pub(crate) struct Connector {
    tls: Option<ClientTls>,
    token: Option<Token>,
    pool: Mutex<HashMap<PoolKey, SendRequest<FrameBody>>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Connector {
    pub(crate) fn new(
        tls: Option<ClientTls>,
        token: Option<Token>,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Self {
        Connector {
            tls,
            token,
            pool: Mutex::new(HashMap::new()),
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
            req.headers_mut()
                .insert(hyper::header::AUTHORIZATION, token.header());
        }
        let key = (self.scheme_for(peer), peer.authority());
        let http_err = |e: hyper::Error| Error::Http {
            addr: peer.to_string(),
            source: e.into(),
        };
        let mut fresh = false;
        loop {
            let pooled = {
                let pool = self.pool.lock().unwrap();
                pool.get(&key).filter(|s| !s.is_closed()).cloned()
            };
            let mut sender = match pooled {
                Some(s) => s,
                None => {
                    let s = self.connect(peer, key.0).await?;
                    self.pool.lock().unwrap().insert(key.clone(), s.clone());
                    fresh = true;
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
    }

    async fn connect(
        &self,
        peer: &PeerAddr,
        scheme: Scheme,
    ) -> Result<SendRequest<FrameBody>, Error> {
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
            Scheme::Http => self.handshake(tcp).await.map_err(connect_err),
            Scheme::Https => {
                let tls = self.tls.clone().unwrap_or_else(default_tls);
                let name = ServerName::try_from(peer.host().to_string())
                    .map_err(|e| connect_err(e.into()))?;
                let io = TlsConnector::from(tls.0)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| connect_err(e.into()))?;
                self.handshake(io).await.map_err(connect_err)
            }
        }
    }

    async fn handshake<T>(&self, io: T) -> Result<SendRequest<FrameBody>, crate::BoxError>
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .keep_alive_interval(KEEP_ALIVE_INTERVAL)
            .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
            .handshake(TokioIo::new(io))
            .await?;
        let shutdown = self.shutdown.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!(error = %e, "peer connection ended with an error");
                },
                _ = shutdown.cancelled() => {}
            }
        });
        Ok(sender)
    }
}

/// A URL peer (`https://…`) reached without client TLS configured: trust
/// nothing but what a caller configures. An empty root store fails every
/// handshake with a clear "unknown issuer" error rather than silently
/// trusting anything.
fn default_tls() -> ClientTls {
    ClientTls::from_roots(Vec::new()).expect("an empty root store is valid")
}
