//! The server's accepted connections, and which of them to close.
//!
//! A peer keeps its own end of a connection for as long as it likes (its
//! pool's idle timeout), and a cluster member is dialled by every member
//! that gossips with it, so a server that only closes a connection when its
//! client does holds one per peer that ever talked to it. Here every
//! accepted connection records when it was last used and how many requests
//! are open on it, so the server can stay within
//! [`Options::max_accepted_connections`](crate::Options::max_accepted_connections)
//! by closing the least recently used one when a new one arrives, and close
//! the ones left idle for
//! [`Options::idle_connection_timeout`](crate::Options::idle_connection_timeout).
//! Either close is HTTP/2's graceful one (`GOAWAY`): requests under way
//! finish, the peer opens a new connection for its next one.

use super::metrics::Metrics;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Why the server closed an accepted connection
/// (`cluster_transport_connections_closed_total{reason}`).
pub(crate) const CLOSED_LEAST_RECENTLY_USED: &str = "least_recently_used";
pub(crate) const CLOSED_IDLE: &str = "idle";

/// Every open accepted connection of one server.
pub(super) struct Accepted {
    conns: Mutex<HashMap<u64, Arc<Activity>>>,
    next_id: AtomicU64,
    origin: Instant,
    limit: usize,
    idle_timeout: Duration,
    metrics: Metrics,
}

/// One connection's use: requests open on it, when it was last used, and
/// the signal that asks it to close.
pub(super) struct Activity {
    open: AtomicUsize,
    /// Milliseconds from the registry's origin to the last request's start
    /// or end.
    last_used: AtomicU64,
    origin: Instant,
    close: CancellationToken,
}

impl Activity {
    /// Marks a request open until the returned guard is dropped (when its
    /// response has been sent, or the request was abandoned).
    pub(super) fn request(self: &Arc<Self>) -> OpenRequest {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.touch();
        OpenRequest(self.clone())
    }

    fn touch(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last_used.store(ms, Ordering::Relaxed);
    }

    fn is_idle(&self) -> bool {
        self.open.load(Ordering::Relaxed) == 0
    }

    /// Cancelled when the server wants this connection closed.
    pub(super) fn close_requested(&self) -> &CancellationToken {
        &self.close
    }
}

/// A request open on a connection (see [`Activity::request`]).
pub(super) struct OpenRequest(Arc<Activity>);

impl Drop for OpenRequest {
    fn drop(&mut self) {
        self.0.touch();
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection's place in the registry; leaving it (on drop) is what
/// closing the connection does to the count.
pub(super) struct Admitted {
    id: u64,
    pub(super) activity: Arc<Activity>,
    accepted: Arc<Accepted>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if self
            .accepted
            .conns
            .lock()
            .unwrap()
            .remove(&self.id)
            .is_some()
        {
            self.accepted.metrics.connections.dec();
        }
    }
}

impl Accepted {
    pub(super) fn new(limit: usize, idle_timeout: Duration, metrics: Metrics) -> Self {
        Accepted {
            conns: Mutex::default(),
            next_id: AtomicU64::new(0),
            origin: Instant::now(),
            limit,
            idle_timeout,
            metrics,
        }
    }

    /// Registers a new connection. At the limit, the least recently used
    /// connection (an idle one if any is) is asked to close first and no
    /// longer counts.
    pub(super) fn admit(self: &Arc<Self>) -> Admitted {
        let activity = Arc::new(Activity {
            open: AtomicUsize::new(0),
            last_used: AtomicU64::new(0),
            origin: self.origin,
            close: CancellationToken::new(),
        });
        activity.touch();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut conns = self.conns.lock().unwrap();
        while conns.len() >= self.limit {
            let Some(victim) = conns
                .iter()
                .min_by_key(|(_, a)| (!a.is_idle(), a.last_used.load(Ordering::Relaxed)))
                .map(|(id, _)| *id)
            else {
                break;
            };
            self.close(&mut conns, victim, CLOSED_LEAST_RECENTLY_USED);
        }
        conns.insert(id, activity.clone());
        self.metrics.connections.inc();
        Admitted {
            id,
            activity,
            accepted: self.clone(),
        }
    }

    /// Asks every connection with no request open for the idle timeout to
    /// close.
    pub(super) fn close_idle(&self) {
        let now = self.origin.elapsed().as_millis() as u64;
        let idle_ms = self.idle_timeout.as_millis() as u64;
        let mut conns = self.conns.lock().unwrap();
        let idle: Vec<u64> = conns
            .iter()
            .filter(|(_, a)| {
                a.is_idle() && now.saturating_sub(a.last_used.load(Ordering::Relaxed)) >= idle_ms
            })
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            self.close(&mut conns, id, CLOSED_IDLE);
        }
    }

    /// How often [`close_idle`](Self::close_idle) should run: often enough
    /// that a connection outlives its idle timeout by a quarter at most.
    pub(super) fn sweep_every(&self) -> Duration {
        (self.idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(5))
    }

    fn close(&self, conns: &mut HashMap<u64, Arc<Activity>>, id: u64, reason: &'static str) {
        if let Some(activity) = conns.remove(&id) {
            self.metrics.connections.dec();
            self.metrics.close_connection(reason);
            activity.close.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_limit_the_least_recently_used_idle_connection_is_closed() {
        let accepted = Arc::new(Accepted::new(
            2,
            Duration::from_secs(60),
            Metrics::default(),
        ));
        let a = accepted.admit();
        std::thread::sleep(Duration::from_millis(2));
        let b = accepted.admit();
        // `a` is busy: the idle `b` goes although `a` is older.
        let _busy = a.activity.request();
        let c = accepted.admit();
        assert!(!a.activity.close_requested().is_cancelled());
        assert!(b.activity.close_requested().is_cancelled());
        assert!(!c.activity.close_requested().is_cancelled());
        assert_eq!(accepted.metrics.connections.get(), 2);
        // With every connection busy the least recently used goes all the
        // same (use is recorded to the millisecond).
        std::thread::sleep(Duration::from_millis(2));
        let _busy_c = c.activity.request();
        let d = accepted.admit();
        assert!(a.activity.close_requested().is_cancelled());
        drop((a, b, c, d));
        assert_eq!(accepted.metrics.connections.get(), 0);
    }

    #[test]
    fn only_connections_idle_for_the_timeout_are_closed() {
        let accepted = Arc::new(Accepted::new(
            10,
            Duration::from_millis(30),
            Metrics::default(),
        ));
        let idle = accepted.admit();
        let busy = accepted.admit();
        let open = busy.activity.request();
        std::thread::sleep(Duration::from_millis(40));
        let fresh = accepted.admit();
        accepted.close_idle();
        assert!(idle.activity.close_requested().is_cancelled());
        assert!(!busy.activity.close_requested().is_cancelled());
        assert!(!fresh.activity.close_requested().is_cancelled());
        // A request that just ended counts as use.
        drop(open);
        accepted.close_idle();
        assert!(!busy.activity.close_requested().is_cancelled());
    }
}
