//! HTTP/1.1 connections ([`Options::client_http1`](crate::Options::client_http1)):
//! a few keep-alive connections per peer, one request in flight on each.

use super::dialer::Dialer;
use super::sniff::FirstAnswer;
use super::{diagnose, handshake, PoolKey};
use crate::native::body::FrameBody;
use crate::{Error, PeerAddr};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::sync::Mutex;

/// Idle HTTP/1.1 connections kept per peer; more concurrent requests open
/// more connections, which close after their request.
const IDLE_PER_PEER: usize = 8;

/// A connection, and what its first answer said.
type Conn = (SendRequest<FrameBody>, FirstAnswer);

#[derive(Default)]
pub(super) struct Http1Pool {
    idle: Mutex<HashMap<PoolKey, Vec<Conn>>>,
}

impl Http1Pool {
    /// Sends `req` on an idle pooled connection, or a new one; the
    /// connection goes back to the pool once it can take another request.
    pub(super) async fn request(
        &self,
        dialer: &Dialer,
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
        let idle = self.take_idle(&key);
        let mut fresh = idle.is_none();
        let mut conn = match idle {
            Some(conn) => conn,
            None => connect(dialer, peer, &key).await?,
        };
        let result = loop {
            match conn.0.try_send_request(req).await {
                Ok(resp) => break Ok(resp),
                Err(mut e) => match e.take_message() {
                    // An idle connection the peer had closed meanwhile:
                    // the request never left, so a new connection may
                    // carry it.
                    Some(unsent) if !fresh => {
                        fresh = true;
                        req = unsent;
                        conn = connect(dialer, peer, &key).await?;
                    }
                    _ => break Err(diagnose::exchange(e.into_error(), peer, &conn.1)),
                },
            }
        };
        if result.is_ok() {
            // Ready again once the response body has been read to its end.
            let mut idle = self.idle.lock().unwrap();
            let conns = idle.entry(key).or_default();
            if conns.len() < IDLE_PER_PEER {
                conns.push(conn);
            }
        }
        result
    }

    fn take_idle(&self, key: &PoolKey) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap();
        let found = idle.get_mut(key).and_then(|conns| {
            conns.retain(|(c, _)| !c.is_closed());
            let ready = conns.iter().position(|(c, _)| c.is_ready())?;
            Some(conns.swap_remove(ready))
        });
        if idle.get(key).is_some_and(|c| c.is_empty()) {
            idle.remove(key);
        }
        found
    }

    /// Drops every pooled connection (their drivers end with them).
    pub(super) fn clear(&self) {
        self.idle.lock().unwrap().clear();
    }
}

async fn connect(dialer: &Dialer, peer: &PeerAddr, key: &PoolKey) -> Result<Conn, Error> {
    handshake::open(dialer, peer, key, None, |io| {
        http1::Builder::new().handshake(TokioIo::new(io))
    })
    .await
}
