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

/// How long data written to a peer may go unacknowledged by its TCP stack
/// before the connection counts as dead (`TCP_USER_TIMEOUT`): a peer whose
/// machine vanished, or a network that drops everything, then fails the
/// connection's requests and the next one dials afresh. It replaces
/// HTTP/2 keep-alive pings (20 s apart, answered within 10 s), which a
/// cluster at rest paid on nearly every packet, at no cost while all is
/// well: the kernel acknowledges data even when the peer process is busy,
/// so a slow peer is not taken for a dead one. Linux and Android only;
/// elsewhere a vanished peer's requests time out one by one
/// (`packet_timeout`) until the connection idles out.
const DEAD_CONNECTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A dialed socket's options: no Nagle delay (gossip packets are small and
/// latency-sensitive) and [`DEAD_CONNECTION_TIMEOUT`]. Best effort: a
/// socket that refuses an option still carries traffic.
fn tune(tcp: &TcpStream) {
    let _ = tcp.set_nodelay(true);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = socket2::SockRef::from(tcp).set_tcp_user_timeout(Some(DEAD_CONNECTION_TIMEOUT));
}

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
        tune(&tcp);
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
    /// `GOAWAY`, data unacknowledged for [`DEAD_CONNECTION_TIMEOUT`])
    /// reports `authority` lost;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule that replaced keep-alive pings holds on the sockets the
    /// dialer makes.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[tokio::test]
    async fn a_dialed_socket_gives_up_on_unacknowledged_data() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        assert_eq!(
            socket2::SockRef::from(&tcp).tcp_user_timeout().unwrap(),
            None
        );
        tune(&tcp);
        let sock = socket2::SockRef::from(&tcp);
        assert_eq!(
            sock.tcp_user_timeout().unwrap(),
            Some(DEAD_CONNECTION_TIMEOUT)
        );
        assert!(tcp.nodelay().unwrap());
    }
}
