//! Hints that a peer is gone, for whoever listens (a cluster member probes
//! it at once, [`Engine::peer_unreachable`](crate::memberlist::engine::Engine::peer_unreachable)):
//! a connection to it that ended in an error, or a connect to it that
//! failed. A killed process's connections reset at once, where a probe
//! would find it silent only when some member's turn came to it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// Hints kept for a listener that has not read them yet; past it a slow
/// listener misses the oldest (they are hints: the probes still run).
const BACKLOG: usize = 256;

/// A peer is reported at most once per this: its connects may fail many
/// times a second while packets wait for it, and every member sharing the
/// client hears each report.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// The peers a client found gone, as the `host:port` each was dialed at.
/// Cheap to clone; clones share the listeners.
#[derive(Clone)]
pub(crate) struct LostPeers {
    hints: broadcast::Sender<Arc<str>>,
    /// When each peer was last reported (bounded by the peers that failed
    /// in the last [`REPORT_EVERY`]).
    reported: Arc<Mutex<HashMap<Arc<str>, Instant>>>,
}

impl LostPeers {
    pub(crate) fn new() -> Self {
        LostPeers {
            hints: broadcast::channel(BACKLOG).0,
            reported: Arc::default(),
        }
    }

    /// `authority` (`host:port` as dialed) is likely gone.
    pub(crate) fn report(&self, authority: &str) {
        if self.hints.receiver_count() == 0 {
            return;
        }
        let now = Instant::now();
        let peer: Arc<str> = {
            let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
            if reported
                .get(authority)
                .is_some_and(|at| now.duration_since(*at) < REPORT_EVERY)
            {
                return;
            }
            reported.retain(|_, at| now.duration_since(*at) < REPORT_EVERY);
            let peer: Arc<str> = Arc::from(authority);
            reported.insert(peer.clone(), now);
            peer
        };
        let _ = self.hints.send(peer);
    }

    /// Every report from now on.
    #[cfg(any(test, feature = "cluster"))]
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.hints.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_reported_once_per_interval_to_every_listener() {
        let lost = LostPeers::new();
        lost.report("127.0.0.1:1"); // no listener yet: dropped
        let (mut a, mut b) = (lost.subscribe(), lost.subscribe());
        lost.report("127.0.0.1:2");
        lost.report("127.0.0.1:2");
        lost.report("127.0.0.1:3");
        for rx in [&mut a, &mut b] {
            assert_eq!(&*rx.try_recv().unwrap(), "127.0.0.1:2");
            assert_eq!(&*rx.try_recv().unwrap(), "127.0.0.1:3");
            assert!(rx.try_recv().is_err());
        }
    }
}
