//! Prometheus metrics under the reference's names.
//!
//! Counters here really are counters (the reference registers several
//! `*_total` series as gauges); names are otherwise identical, so existing
//! ckit dashboards keep working. `cluster_transport_tx_packets_dropped_total`
//! is new: packets dropped from a full per-peer send queue.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The transport's metrics. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct Metrics {
    pub rx_packets: Counter,
    pub rx_bytes: Counter,
    pub rx_packets_failed: Counter,
    pub tx_packets: Counter,
    pub tx_bytes: Counter,
    pub tx_packets_failed: Counter,
    pub tx_packets_dropped: Counter,
    /// Of `rx_packets`, those read from the answer to one of our requests
    /// (see `answers`).
    pub rx_packets_in_answers: Counter,
    /// Of `tx_packets`, those sent in the answer to a peer's request.
    pub tx_packets_in_answers: Counter,
    pub streams: Gauge,
    pub stream_rx_packets: Counter,
    pub stream_rx_bytes: Counter,
    pub stream_rx_packets_failed: Counter,
    pub stream_tx_packets: Counter,
    pub stream_tx_bytes: Counter,
    pub stream_tx_packets_failed: Counter,
    pub rx_packet_queue_length: Gauge,
    pub tx_packet_queue_length: Gauge,
    /// Requests refused by a limit or an access rule, by reason.
    pub requests_refused: Family<Reason, Counter>,
    /// Connections the server accepted and has not closed yet.
    pub connections: Gauge,
    /// Accepted connections the server closed to stay within its bounds,
    /// by reason (`least_recently_used`, `idle`).
    pub connections_closed: Family<Reason, Counter>,
    /// When each refusal reason was last logged.
    log_gate: Arc<Mutex<HashMap<&'static str, Instant>>>,
}

/// Why a request or connection was refused.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Reason {
    pub reason: &'static str,
}

impl Metrics {
    /// Counts a refusal and says whether to log it: at most once a second
    /// per reason, so a flood of refusals cannot flood the logs too.
    pub(crate) fn refuse(&self, reason: &'static str) -> bool {
        self.requests_refused
            .get_or_create(&Reason { reason })
            .inc();
        let now = Instant::now();
        let mut gate = self.log_gate.lock().unwrap();
        match gate.get(reason) {
            Some(last) if now.duration_since(*last) < Duration::from_secs(1) => false,
            _ => {
                gate.insert(reason, now);
                true
            }
        }
    }
}

impl Metrics {
    /// Counts an accepted connection the server closed, by reason.
    pub(crate) fn close_connection(&self, reason: &'static str) {
        self.connections_closed
            .get_or_create(&Reason { reason })
            .inc();
    }

    /// Registers every metric, prefixed `cluster_transport_`, into `registry`.
    pub(crate) fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("cluster_transport");
        let counters: [(&str, &str, &Counter); 15] = [
            (
                "rx_packets",
                "Packets received through /message",
                &self.rx_packets,
            ),
            (
                "rx_bytes",
                "Payload bytes received through /message",
                &self.rx_bytes,
            ),
            (
                "rx_packets_failed",
                "/message bodies cut short: a malformed or oversize frame, a broken body, or \
                 one slower than body_read_timeout (packets before it were delivered)",
                &self.rx_packets_failed,
            ),
            (
                "tx_packets",
                "Packets sent to peers (failed or otherwise)",
                &self.tx_packets,
            ),
            (
                "tx_bytes",
                "Payload bytes sent to peers (failed or otherwise)",
                &self.tx_bytes,
            ),
            (
                "tx_packets_failed",
                "Packets whose delivery failed",
                &self.tx_packets_failed,
            ),
            (
                "tx_packets_dropped",
                "Packets dropped from a full per-peer send queue",
                &self.tx_packets_dropped,
            ),
            (
                "rx_packets_in_answers",
                "Of rx_packets, those a gossiphttp peer sent in the answer to one of this \
                 transport's /message requests",
                &self.rx_packets_in_answers,
            ),
            (
                "tx_packets_in_answers",
                "Of tx_packets, those sent in the answer to a gossiphttp peer's /message request \
                 instead of a request of their own",
                &self.tx_packets_in_answers,
            ),
            (
                "stream_rx_packets",
                "Frames read from streams",
                &self.stream_rx_packets,
            ),
            (
                "stream_rx_bytes",
                "Payload bytes read from streams",
                &self.stream_rx_bytes,
            ),
            (
                "stream_rx_packets_failed",
                "Stream reads that failed",
                &self.stream_rx_packets_failed,
            ),
            (
                "stream_tx_packets",
                "Frames written to streams",
                &self.stream_tx_packets,
            ),
            (
                "stream_tx_bytes",
                "Payload bytes written to streams",
                &self.stream_tx_bytes,
            ),
            (
                "stream_tx_packets_failed",
                "Stream writes that failed",
                &self.stream_tx_packets_failed,
            ),
        ];
        for (name, help, c) in counters {
            r.register(name, help, c.clone());
        }
        r.register("streams", "Open stream connections", self.streams.clone());
        r.register(
            "requests_refused",
            "Requests and connections refused by a limit or access rule, by reason",
            self.requests_refused.clone(),
        );
        r.register(
            "connections",
            "Connections accepted by the server and still open",
            self.connections.clone(),
        );
        r.register(
            "connections_closed",
            "Accepted connections the server closed (GOAWAY) to stay within \
             max_accepted_connections (reason least_recently_used) or because they were idle \
             for idle_connection_timeout (reason idle)",
            self.connections_closed.clone(),
        );
        r.register(
            "rx_packet_queue_length",
            "Received packets not yet taken by the application",
            self.rx_packet_queue_length.clone(),
        );
        r.register(
            "tx_packet_queue_length",
            "Packets queued for sending, over all peers",
            self.tx_packet_queue_length.clone(),
        );
    }
}

/// The registry holding a transport's metrics, shareable with an HTTP
/// handler that serves them.
#[derive(Debug, Clone)]
pub struct MetricsRegistry(Arc<Registry>, Metrics);

impl MetricsRegistry {
    pub(crate) fn new(metrics: &Metrics) -> Self {
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        MetricsRegistry(Arc::new(registry), metrics.clone())
    }

    /// Registers the same metrics into another registry too (say, your
    /// application's), prefixed `cluster_transport_`.
    pub fn register_into(&self, registry: &mut Registry) {
        self.1.register(registry);
    }

    /// The underlying prometheus-client registry.
    pub fn registry(&self) -> &Registry {
        &self.0
    }

    /// The metrics in the Prometheus text exposition format (OpenMetrics).
    pub fn encode_text(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.0);
        out
    }
}
