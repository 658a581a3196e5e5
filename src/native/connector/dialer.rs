//! Opening connections to peers: TCP, TLS for `https` peers, and the
//! background task that drives each connection.

use super::diagnose;
use super::sniff::{Carries, FirstAnswer, Sniffed};
use super::LostPeers;
use crate::native::tls::ClientTls;
use crate::{Error, PeerAddr, Scheme};
use rustls::pki_types::ServerName;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A connection to a peer, cleartext or TLS, its answers checked (see
/// [`Sniffed`]).
pub(super) type PeerIo = Either<Sniffed<TcpStream>, Sniffed<Box<TlsStream<TcpStream>>>>;

pub(super) struct Dialer {
    /// `host:port` peers are reached over TLS.
    tls_by_default: bool,
    /// What TLS connections use: the configured client TLS, or for a URL
    /// peer (`https://…`) reached without it, trust in nothing (an empty
    /// root store fails every handshake with a clear "unknown issuer" error
    /// rather than silently trusting anything). Its ALPN offers `http/1.1`
    /// instead of `h2` in HTTP/1.1 mode.
    tls: Arc<rustls::ClientConfig>,
    /// Verified in certificates instead of the peer's host, when set.
    server_name: Option<ServerName<'static>>,
    /// Connections speak HTTP/1.1.
    http1: bool,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// Where failed connects and connections ended in errors are reported.
    pub(super) lost: LostPeers,
}

impl Dialer {
    pub(super) fn new(
        tls: Option<ClientTls>,
        http1: bool,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Result<Self, Error> {
        let tls_by_default = tls.is_some();
        let tls = match tls {
            Some(tls) => tls,
            None => ClientTls::from_roots(Vec::new())?,
        };
        let server_name = tls.server_name;
        let mut config = tls.config;
        if http1 {
            Arc::make_mut(&mut config).alpn_protocols = vec![b"http/1.1".to_vec()];
        }
        Ok(Dialer {
            tls_by_default,
            tls: config,
            server_name,
            http1,
            shutdown,
            tasks,
            lost: LostPeers::new(),
        })
    }

    /// The scheme used for `peer`: its own if it is a URL, else the
    /// transport's (`https` when client TLS is configured).
    pub(super) fn scheme_for(&self, peer: &PeerAddr) -> Scheme {
        peer.scheme().unwrap_or(if self.tls_by_default {
            Scheme::Https
        } else {
            Scheme::Http
        })
    }

    /// TCP, and TLS for `https` (ALPN `h2`, or `http/1.1` in HTTP/1.1 mode);
    /// what a wrong answer on it means is left in `first_answer`.
    pub(super) async fn connect(
        &self,
        peer: &PeerAddr,
        scheme: Scheme,
        first_answer: &FirstAnswer,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Result<PeerIo, Error> {
        let connect_err = |e: crate::BoxError| Error::Connect {
            addr: peer.to_string(),
            source: e,
        };
        let tcp = TcpStream::connect((peer.host(), peer.port()))
            .await
            .map_err(|e| connect_err(diagnose::tcp_connect(e)))?;
        // Gossip packets are small and latency-sensitive.
        let _ = tcp.set_nodelay(true);
        match scheme {
            Scheme::Http => Ok(Either::Left(
                Sniffed::new(
                    tcp,
                    if self.http1 {
                        Carries::Http1
                    } else {
                        Carries::H2c
                    },
                    first_answer.clone(),
                )
                .holding(permit),
            )),
            Scheme::Https => {
                let name = match &self.server_name {
                    Some(name) => name.clone(),
                    None => ServerName::try_from(peer.host().to_string())
                        .map_err(|e| connect_err(e.into()))?,
                };
                let io = TlsConnector::from(self.tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| connect_err(diagnose::tls_handshake(e, peer)))?;
                Ok(Either::Right(
                    Sniffed::new(Box::new(io), Carries::Tls, first_answer.clone()).holding(permit),
                ))
            }
        }
    }

    /// Runs a connection's driver until it ends or the transport shuts
    /// down. One that ends in an error (a reset, the peer gone without
    /// `GOAWAY`, a keep-alive ping unanswered) reports `authority` lost;
    /// one closed in order (ours dropped from the pool, or the peer's
    /// `GOAWAY`) does not.
    pub(super) fn drive<F, E>(&self, conn: F, authority: &str)
    where
        F: std::future::Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let shutdown = self.shutdown.clone();
        let lost = self.lost.clone();
        let authority = authority.to_owned();
        self.tasks.spawn(async move {
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!(peer = %authority, error = %e, "peer connection ended with an error");
                    lost.report(&authority);
                },
                _ = shutdown.cancelled() => {}
            }
        });
    }
}
