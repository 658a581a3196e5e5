//! How a [`Node`](super::Node) runs: its name and addresses, whom it joins
//! through, the memberlist settings, the label, and ckit's node state.

use crate::ckit::peer::NodeState as CkitState;
use crate::ckit::shard::Hasher;
use crate::memberlist::engine::Config as MembershipConfig;
use crate::{Error, Options};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// A node's incoming stream queue (see [`NodeOptions::transport`]).
const JOIN_WAVE_STREAMS: usize = 1024;

/// Decides whether this node may send to a peer address; for fault
/// injection (partitions) in tests. `true` lets the packet or stream through.
pub type PeerFilter = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// How a [`Node`](super::Node) runs.
#[derive(Clone)]
#[non_exhaustive]
pub struct NodeOptions {
    /// This member's name, unique in the cluster.
    pub name: String,
    /// The address other members reach this node at, when it is not the
    /// listener's: `ip:port`, `[ipv6]:port` or `name:port`. Without a port,
    /// or with port 0, the listener's port (memberlist's `AdvertisePort`
    /// 0 is the bind port too), so `10.0.0.7` behind a listener on
    /// `0.0.0.0:7946` advertises `10.0.0.7:7946`. A host name is resolved
    /// once, at start (memberlist carries an IP), to its first address.
    /// Defaults to the listener's address, which must then not be a
    /// wildcard.
    pub advertise_addr: Option<String>,
    /// Where to join: `ip:port`, `name:port` (every A and AAAA address) or
    /// `_service._proto.name` (SRV). Resolved again on every attempt; retried
    /// every [`rejoin_interval`](Self::rejoin_interval) while the node knows
    /// no live member, and every
    /// [`rediscover_interval`](Self::rediscover_interval) after.
    pub join: Vec<String>,
    /// The transport's options (TLS, timeouts, queues, token, CORS).
    /// `Options::default()` but for `stream_queue_size`, 1024 (as many as
    /// `max_streams`): a node takes every stream as it comes, so the queue
    /// only rides out moments its runtime is busy, such as a join wave
    /// (with 64, 200 members joining through one in one process had
    /// dozens of joins refused with `503` and retried 5 s later).
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
    /// The hasher [`Node::lookup`](super::Node::lookup) shards keys with;
    /// every node of a cluster must use the same. Default: a ring with 512
    /// tokens per peer, what Grafana Alloy configures (and what
    /// `/api/v1/shards` measures by default).
    pub hasher: Hasher,
    /// How often to try the join list again while alone. Default 5 s.
    pub rejoin_interval: Duration,
    /// How often a node that knows live members resolves the join list
    /// again and joins every address there that no live member has: two
    /// clusters that formed apart (during a rollout DNS listed only some
    /// of the new members while they started) find each other and merge.
    /// Default 60 s, Alloy's `--cluster.rejoin-interval`; `ZERO` never.
    /// Alloy's rejoin pushes and pulls the whole state with every address
    /// listed; here a cluster whose members are all listed sends nothing
    /// but the DNS questions.
    pub rediscover_interval: Duration,
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
            transport: Options {
                stream_queue_size: JOIN_WAVE_STREAMS,
                ..Options::default()
            },
            membership: MembershipConfig::lan(),
            label: String::new(),
            skip_inbound_label_check: false,
            ckit_state: CkitState::Participant,
            hasher: Hasher::Ring(Hasher::ALLOY_RING_TOKENS),
            rejoin_interval: Duration::from_secs(5),
            rediscover_interval: Duration::from_secs(60),
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

impl NodeOptions {
    /// The address this node advertises, listening on `local`: see
    /// [`advertise_addr`](Self::advertise_addr).
    pub(super) async fn advertised(&self, local: SocketAddr) -> Result<SocketAddr, Error> {
        let Some(given) = &self.advertise_addr else {
            if local.ip().is_unspecified() {
                return Err(Error::Config(format!(
                    "listening on {local}: set advertise_addr (--advertise) to the IP (and port) \
                     other members reach this node at"
                )));
            }
            return Ok(local);
        };
        let (host, port) = advertise_parts(given).map_err(Error::Config)?;
        let port = port.unwrap_or(local.port());
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let mut addrs = tokio::net::lookup_host((host, port)).await.map_err(|e| {
            Error::Config(format!(
                "advertise address {given:?}: {host:?} does not resolve ({e}); give an IP, \
                 or a name this host resolves"
            ))
        })?;
        addrs.next().ok_or_else(|| {
            Error::Config(format!(
                "advertise address {given:?} resolves to no address"
            ))
        })
    }
}

/// An advertise address's host and port: `ip:port`, `[ipv6]:port`,
/// `name:port`, or any of them without the port (an IPv6 address with or
/// without brackets). No port, or port 0, is `None`: the listener's.
fn advertise_parts(given: &str) -> Result<(&str, Option<u16>), String> {
    let trimmed = given.trim();
    if trimmed.parse::<IpAddr>().is_ok() {
        return Ok((trimmed, None));
    }
    let (host, port) = match trimmed.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') || host.ends_with(']') => (host, Some(port)),
        _ => (trimmed, None),
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(['[', ']']) {
        return Err(format!(
            "advertise address {given:?}: give ip, ip:port, [ipv6]:port or name:port"
        ));
    }
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().map_err(|_| {
            format!("advertise address {given:?}: port {p:?} is not a number from 0 to 65535")
        })?),
    };
    Ok((host, port.filter(|p| *p != 0)))
}

impl std::fmt::Debug for NodeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeOptions")
            .field("name", &self.name)
            .field("advertise_addr", &self.advertise_addr)
            .field("join", &self.join)
            .field("label", &self.label)
            .field("ckit_state", &self.ckit_state)
            .field("hasher", &self.hasher)
            .field("membership", &self.membership)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::advertise_parts;

    #[test]
    fn an_advertise_address_without_a_port_or_with_port_0_takes_the_listeners() {
        let cases = [
            ("10.0.0.7:7946", ("10.0.0.7", Some(7946))),
            ("10.0.0.7:0", ("10.0.0.7", None)),
            ("10.0.0.7", ("10.0.0.7", None)),
            ("[fd00::7]:7946", ("fd00::7", Some(7946))),
            ("[fd00::7]:0", ("fd00::7", None)),
            ("[fd00::7]", ("fd00::7", None)),
            ("fd00::7", ("fd00::7", None)),
            ("node-1.svc:7946", ("node-1.svc", Some(7946))),
            ("node-1.svc", ("node-1.svc", None)),
        ];
        for (given, expected) in cases {
            assert_eq!(advertise_parts(given), Ok(expected), "{given}");
        }
        for bad in ["", ":7946", "10.0.0.7:x", "node:70000", "[fd00::7", "[]:1"] {
            let e = advertise_parts(bad).expect_err(bad);
            assert!(e.contains("advertise address"), "{bad}: {e}");
        }
    }
}
