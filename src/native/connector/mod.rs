//! Client connections to peers: [`dialer`] opens them (TCP, TLS, and the
//! diagnosis of what failed), one of two pools keeps them. Over HTTP/2
//! ([`h2_pool`]) one connection per peer carries every packet batch and
//! stream to it; with [`Options::client_http1`](super::Options::client_http1)
//! a few keep-alive HTTP/1.1 connections per peer do ([`http1_pool`]).

mod diagnose;
mod dialer;
mod h2_client;
#[cfg(test)]
mod h2_client_tests;
mod h2_pool;
mod handshake;
mod http1_pool;
mod lost;
#[cfg(test)]
mod lost_tests;
mod sniff;

pub(crate) use h2_pool::{CONNECTION_WINDOW, MAX_H2_FRAME, STREAM_WINDOW};

use super::body::FrameBody;
use super::tls::ClientTls;
use crate::contract::Token;
use crate::{Error, PeerAddr, Scheme};
use dialer::Dialer;
use h2_client::RecvBody;
use h2_pool::H2Pool;
pub(crate) use h2_pool::PoolLimits;
use http1_pool::Http1Pool;
use http_body_util::Either;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response};
pub(crate) use lost::LostPeers;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A peer's answer's body, from either pool.
pub(crate) type ResponseBody = Either<RecvBody, Incoming>;

/// A pool's key: a peer as it is connected to.
type PoolKey = (Scheme, String);

pub(crate) struct Connector {
    dialer: Dialer,
    /// `Authorization: Bearer <token>`, made once, marked sensitive.
    authorization: Option<HeaderValue>,
    pool: Pool,
}

enum Pool {
    H2(H2Pool),
    Http1(Http1Pool),
}

impl Connector {
    pub(crate) fn new(
        tls: Option<ClientTls>,
        token: Option<Token>,
        http1: bool,
        limits: PoolLimits,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Result<Self, Error> {
        let authorization = match token {
            Some(token) => {
                let mut value = HeaderValue::from_bytes(token.authorization())
                    .map_err(|_| Error::Config("auth_token is not a valid header value".into()))?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(Connector {
            dialer: Dialer::new(tls, http1, shutdown, tasks)?,
            authorization,
            pool: if http1 {
                Pool::Http1(Http1Pool::default())
            } else {
                Pool::H2(H2Pool::new(limits))
            },
        })
    }

    /// The scheme used for `peer`: its own if it is a URL, else the
    /// transport's (`https` when client TLS is configured).
    fn scheme_for(&self, peer: &PeerAddr) -> Scheme {
        self.dialer.scheme_for(peer)
    }

    /// The absolute URI of `path` on `peer`; requests are built with
    /// [`post`](Self::post).
    fn uri(&self, peer: &PeerAddr, path: &str) -> String {
        format!(
            "{}://{}{}",
            self.scheme_for(peer).as_str(),
            peer.authority(),
            path
        )
    }

    /// A `POST` of `body` to `path` on `peer`, with the content type both
    /// endpoints require. Fails with [`Error::InvalidAddress`] for an
    /// address the HTTP stack refuses (parsing a [`PeerAddr`] refuses
    /// those already; this keeps peer input from ever reaching a panic).
    pub(crate) fn post(
        &self,
        peer: &PeerAddr,
        path: &str,
        body: FrameBody,
    ) -> Result<Request<FrameBody>, Error> {
        Request::builder()
            .method(hyper::Method::POST)
            .uri(self.uri(peer, path))
            .header(hyper::header::CONTENT_TYPE, crate::CONTENT_TYPE)
            .body(body)
            .map_err(|e| Error::InvalidAddress {
                addr: peer.to_string(),
                reason: format!("not usable in a request URI: {e}"),
            })
    }

    /// Sends `req` to `peer` on a pooled connection, connecting first if
    /// there is none. A request that never left because its pooled
    /// connection had died meanwhile (the peer restarted, say) is retried
    /// once on a fresh connection.
    pub(crate) async fn request(
        &self,
        peer: &PeerAddr,
        mut req: Request<FrameBody>,
    ) -> Result<Response<ResponseBody>, Error> {
        if let Some(value) = &self.authorization {
            req.headers_mut()
                .insert(hyper::header::AUTHORIZATION, value.clone());
        }
        let key = (self.scheme_for(peer), peer.authority());
        match &self.pool {
            Pool::H2(pool) => Ok(pool
                .request(&self.dialer, peer, key, req)
                .await?
                .map(Either::Left)),
            Pool::Http1(pool) => Ok(pool
                .request(&self.dialer, peer, key, req)
                .await?
                .map(Either::Right)),
        }
    }

    /// Every peer found gone from now on (see [`LostPeers`]).
    #[cfg(any(test, feature = "cluster"))]
    pub(crate) fn lost_peers(&self) -> tokio::sync::broadcast::Receiver<std::sync::Arc<str>> {
        self.dialer.lost.subscribe()
    }

    /// Whether requests go out over HTTP/1.1.
    pub(crate) fn is_http1(&self) -> bool {
        matches!(self.pool, Pool::Http1(_))
    }

    /// Drops every pooled connection (their drivers end with them).
    pub(crate) fn clear(&self) {
        match &self.pool {
            Pool::H2(pool) => pool.clear(),
            Pool::Http1(pool) => pool.clear(),
        }
    }
}
