//! The transport's queue of received packets, as the two places that fill
//! it see it: the `/message` handler, and the sender reading packets a peer
//! put in the answer to one of our requests (see [`super::answers`]).

use super::metrics::Metrics;
use crate::Packet;
use bytes::Bytes;
use std::net::SocketAddr;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Where received packets go: the application's queue, counted.
pub(crate) struct Inbox {
    tx: async_channel::Sender<Packet>,
    metrics: Metrics,
    shutdown: CancellationToken,
}

impl Inbox {
    pub(crate) fn new(
        tx: async_channel::Sender<Packet>,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) -> Self {
        Inbox {
            tx,
            metrics,
            shutdown,
        }
    }

    /// Hands a packet to the application, waiting for room in the queue (so
    /// HTTP/2 flow control slows the sender rather than anything being
    /// dropped). False once the transport is shut down.
    pub(crate) async fn deliver(&self, payload: Bytes, from: SocketAddr, at: Instant) -> bool {
        let len = payload.len() as u64;
        let packet = Packet {
            payload,
            from,
            received_at: at,
        };
        // Room in the queue is the common case: no future, no select.
        let sent = !self.shutdown.is_cancelled()
            && match self.tx.try_send(packet) {
                Ok(()) => true,
                Err(async_channel::TrySendError::Closed(_)) => false,
                Err(async_channel::TrySendError::Full(packet)) => tokio::select! {
                    r = self.tx.send(packet) => r.is_ok(),
                    _ = self.shutdown.cancelled() => false,
                },
            };
        if sent {
            self.metrics.rx_packets.inc();
            self.metrics.rx_bytes.inc_by(len);
            self.metrics
                .rx_packet_queue_length
                .set(self.tx.len() as i64);
        }
        sent
    }

    /// The transport's metrics (for what the callers count beyond delivery).
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// No more packets: the application reads what is queued, then the end.
    pub(crate) fn close(&self) {
        self.tx.close();
    }
}
