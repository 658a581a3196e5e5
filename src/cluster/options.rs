//! How a [`Node`](super::Node) runs: its name and addresses, whom it joins
//! through, the memberlist settings, the label, and ckit's node state.

use crate::ckit::peer::NodeState as CkitState;
use crate::memberlist::engine::Config as MembershipConfig;
use crate::Options;
use std::sync::Arc;
use std::time::Duration;

/// Decides whether this node may send to a peer address; for fault
/// injection (partitions) in tests. `true` lets the packet or stream through.
pub type PeerFilter = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// How a [`Node`](super::Node) runs.
#[derive(Clone)]
#[non_exhaustive]
pub struct NodeOptions {
    /// This member's name, unique in the cluster.
    pub name: String,
    /// The `ip:port` other members reach this node at (memberlist carries
    /// an IP, not a name); defaults to the listener's address. A host name
    /// is resolved once, at start.
    pub advertise_addr: Option<String>,
    /// Where to join: `ip:port`, `name:port` (every A and AAAA address) or
    /// `_service._proto.name` (SRV). Resolved again on every attempt; retried
    /// every [`rejoin_interval`](Self::rejoin_interval) while the node knows
    /// no live member.
    pub join: Vec<String>,
    /// The transport's options (TLS, timeouts, queues, token, CORS).
    pub transport: Options,
    /// memberlist's settings; [`MembershipConfig::lan`] by default,
    /// [`MembershipConfig::ckit`] for what a Go ckit node uses.
    pub membership: MembershipConfig,
    /// The cluster's label (Alloy's `--cluster.name`): it travels with every
    /// packet and stream, and traffic with another label is refused. Empty
    /// for none.
    pub label: String,
    /// Accept traffic without a label although this node has one
    /// (memberlist's `SkipInboundLabelCheck`, for a rollout adding a label).
    pub skip_inbound_label_check: bool,
    /// The ckit node state announced at start: `Participant` (owns keys in
    /// ckit's sharding) by default, or `Viewer`.
    pub ckit_state: CkitState,
    /// How often to try the join list again while alone. Default 5 s.
    pub rejoin_interval: Duration,
    /// How long [`Node::leave`](super::Node::leave) may take to tell the
    /// others. Default 2 s.
    pub leave_timeout: Duration,
    /// The nameserver join names are resolved with (tests point it at a
    /// loopback server); the system's resolver when `None`.
    pub nameserver: Option<std::net::SocketAddr>,
    /// Drops outgoing packets and streams to addresses it refuses (tests).
    pub outgoing_filter: Option<PeerFilter>,
}

impl NodeOptions {
    /// memberlist's LAN defaults, as a Go node with `DefaultLANConfig` runs.
    pub fn new(name: impl Into<String>) -> Self {
        NodeOptions {
            name: name.into(),
            advertise_addr: None,
            join: Vec::new(),
            transport: Options::default(),
            membership: MembershipConfig::lan(),
            label: String::new(),
            skip_inbound_label_check: false,
            ckit_state: CkitState::Participant,
            rejoin_interval: Duration::from_secs(5),
            leave_timeout: Duration::from_secs(2),
            nameserver: None,
            outgoing_filter: None,
        }
    }

    /// Faster failure detection, for loopback clusters and tests: a probe
    /// every 200 ms (timeout 100 ms), gossip every 50 ms, a push-pull every
    /// 5 s, rejoin every 500 ms.
    pub fn fast(mut self) -> Self {
        let m = &mut self.membership;
        m.probe_interval = Duration::from_millis(200);
        m.probe_timeout = Duration::from_millis(100);
        m.gossip_interval = Duration::from_millis(50);
        m.push_pull_interval = Duration::from_secs(5);
        m.tcp_timeout = Duration::from_secs(1);
        self.rejoin_interval = Duration::from_millis(500);
        self.leave_timeout = Duration::from_millis(500);
        self.transport.packet_timeout = Duration::from_secs(1);
        self
    }
}

impl std::fmt::Debug for NodeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeOptions")
            .field("name", &self.name)
            .field("advertise_addr", &self.advertise_addr)
            .field("join", &self.join)
            .field("label", &self.label)
            .field("ckit_state", &self.ckit_state)
            .field("membership", &self.membership)
            .finish_non_exhaustive()
    }
}
