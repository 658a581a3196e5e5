//! HTTP/2 connections: one per peer, reused by every packet batch and
//! stream to that peer, re-established on the next use after it breaks.
//! The pool is bounded: past [`PoolLimits::max_connections`] the least
//! recently used connection leaves it, and so does one idle for
//! [`PoolLimits::idle_timeout`]; a connection that left the pool closes
//! once its last request ends (h2 ends a client connection when its last
//! request handle and its last stream are gone).
//! Connections that left the pool but still finish a request count
//! against a second allowance of the same size: past it a new connection
//! waits for one of them to close, so the transport never holds more than
//! twice `max_connections` (a starved process answers slowly, and the
//! connections it evicted would otherwise pile up while they finish).
//! Requests that find no connection at once share the one connect (single
//! flight), so a burst to a new peer opens one connection, not one per
//! request.

use super::dialer::Dialer;
use super::h2_client::{self, H2Conn, H2Settings, RecvBody, SendError};
use super::sniff::FirstAnswer;
use super::{diagnose, handshake, PoolKey};
use crate::native::body::FrameBody;
use crate::{Error, PeerAddr};
use hyper::{Request, Response};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// HTTP/2 flow-control windows: large enough that a stream is not held back
/// by round trips on loopback or a LAN (the h2 default is 64 KiB).
pub(crate) const STREAM_WINDOW: u32 = 1 << 20;
pub(crate) const CONNECTION_WINDOW: u32 = 4 << 20;
/// Largest HTTP/2 DATA frame we accept: a whole 64 KiB gossip frame (and
/// more) per DATA frame instead of the default 16 KiB, a quarter of the
/// per-frame work on streams and batches.
pub(crate) const MAX_H2_FRAME: u32 = 256 << 10;

/// A peer's connection, and what its first answer said.
type Conn = (H2Conn, FirstAnswer);

/// How many connections the pool keeps, for how long unused, and how much
/// of the peers' answers each lets wait unread.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolLimits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
    /// Each connection's HTTP/2 receive window, over all its streams:
    /// [`CONNECTION_WINDOW`], or more for a client many transports share.
    pub connection_window: u32,
}

/// A pooled connection and when a request last took it.
struct Pooled {
    conn: Conn,
    last_used: Instant,
}

pub(super) struct H2Pool {
    limits: PoolLimits,
    pool: Mutex<HashMap<PoolKey, Pooled>>,
    /// Open connections, pooled or closing: each holds a permit until its
    /// socket closes.
    open: Arc<tokio::sync::Semaphore>,
    /// One lock per peer being connected to, so concurrent first requests
    /// wait for one connection instead of each opening their own.
    connecting: Mutex<HashMap<PoolKey, Arc<tokio::sync::Mutex<()>>>>,
}

impl H2Pool {
    pub(super) fn new(limits: PoolLimits) -> Self {
        H2Pool {
            limits,
            pool: Mutex::default(),
            open: Arc::new(tokio::sync::Semaphore::new(
                limits.max_connections.saturating_mul(2),
            )),
            connecting: Mutex::default(),
        }
    }

    /// Sends `req` on `peer`'s connection, connecting first if there is
    /// none or the last one broke; a request that never left is retried
    /// once on a fresh connection.
    pub(super) async fn request(
        &self,
        dialer: &Dialer,
        peer: &PeerAddr,
        key: PoolKey,
        mut req: Request<FrameBody>,
    ) -> Result<Response<RecvBody>, Error> {
        let mut fresh = false;
        loop {
            let (conn, first_answer) = match self.pooled(&key) {
                Some(conn) => conn,
                None => {
                    let (conn, opened) = self.connect_single_flight(dialer, peer, &key).await?;
                    fresh |= opened;
                    conn
                }
            };
            match conn.send(req).await {
                Ok(resp) => return Ok(resp),
                Err(SendError::Unsent(e, unsent)) => {
                    self.forget(&key, &conn);
                    if fresh {
                        return Err(diagnose::exchange(e, peer, &first_answer));
                    }
                    fresh = true;
                    // The request never left: a new connection carries it.
                    req = *unsent;
                }
                Err(SendError::Failed(e)) => {
                    self.forget(&key, &conn);
                    return Err(diagnose::exchange(e, peer, &first_answer));
                }
            }
        }
    }

    fn pooled(&self, key: &PoolKey) -> Option<Conn> {
        let mut pool = self.pool.lock().unwrap();
        let entry = pool.get_mut(key).filter(|p| !p.conn.0.is_closed())?;
        entry.last_used = Instant::now();
        Some(entry.conn.clone())
    }

    /// Pools a new connection, first letting go of the idle ones and, at
    /// the limit, of the least recently used.
    fn insert(&self, key: &PoolKey, conn: Conn) {
        let now = Instant::now();
        let mut pool = self.pool.lock().unwrap();
        pool.retain(|_, p| {
            !p.conn.0.is_closed() && now.duration_since(p.last_used) < self.limits.idle_timeout
        });
        while pool.len() >= self.limits.max_connections {
            let Some(oldest) = pool
                .iter()
                .min_by_key(|(_, p)| p.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            pool.remove(&oldest);
        }
        pool.insert(
            key.clone(),
            Pooled {
                conn,
                last_used: now,
            },
        );
    }

    /// The pooled connection to `peer`, or a new one: the first caller
    /// connects while later ones wait for it and share the result. Returns
    /// whether the connection was opened by this call.
    async fn connect_single_flight(
        &self,
        dialer: &Dialer,
        peer: &PeerAddr,
        key: &PoolKey,
    ) -> Result<(Conn, bool), Error> {
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
                Some(conn) => Ok((conn, false)),
                None => match self.connect(dialer, peer, key).await {
                    Ok(conn) => {
                        self.insert(key, conn.clone());
                        Ok((conn, true))
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

    /// Drops `conn` from the pool if it is gone.
    fn forget(&self, key: &PoolKey, conn: &H2Conn) {
        if conn.is_closed() {
            let mut pool = self.pool.lock().unwrap();
            if pool.get(key).is_some_and(|p| p.conn.0.is_closed()) {
                pool.remove(key);
            }
        }
    }

    /// Drops every pooled connection (their drivers end with them).
    pub(super) fn clear(&self) {
        self.pool.lock().unwrap().clear();
    }
}

impl H2Pool {
    /// A new connection to `peer`, once the open connections are within
    /// their allowance.
    async fn connect(
        &self,
        dialer: &Dialer,
        peer: &PeerAddr,
        key: &PoolKey,
    ) -> Result<Conn, Error> {
        let permit = self
            .open
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Shutdown)?;
        connect(dialer, peer, key, permit, self.limits).await
    }
}

async fn connect(
    dialer: &Dialer,
    peer: &PeerAddr,
    key: &PoolKey,
    permit: tokio::sync::OwnedSemaphorePermit,
    limits: PoolLimits,
) -> Result<Conn, Error> {
    handshake::open(dialer, peer, key, Some(permit), |io| {
        // No keep-alive pings: a client that pings (hyper's did, when a
        // request opened on a connection that had read nothing for the
        // interval) pinged on nearly every request of a cluster at rest,
        // where a member sends a given peer a packet a minute or so. A
        // peer that vanished is found by the dialed socket's TCP user
        // timeout instead (see `dialer`), and each request has its own
        // timeout.
        h2_client::handshake(
            io,
            H2Settings {
                stream_window: STREAM_WINDOW,
                connection_window: limits.connection_window,
                max_frame_size: MAX_H2_FRAME,
            },
        )
    })
    .await
}
