//! The engine's settings: memberlist's LAN defaults and ckit's overrides as
//! presets, the formulas memberlist derives from them (suspicion timeouts,
//! retransmit limit, push-pull scaling), and the switches for where this
//! engine departs from memberlist (see the module doc of `engine`).

use std::time::Duration;

/// memberlist's protocol versions: what this engine understands
/// (`ProtocolVersionMin`..`ProtocolVersionMax`) and speaks.
pub const PROTOCOL_VERSION_MIN: u8 = 1;
/// `ProtocolVersionMax`: 5 adds the CRC wrapper, 4 nacks.
pub const PROTOCOL_VERSION_MAX: u8 = 5;

/// The engine's settings. Build one with [`Config::lan`] or [`Config::ckit`]
/// and change fields as needed.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `ProtocolVersion`: the version this member speaks (memberlist: 2).
    pub protocol_version: u8,
    /// The delegate's min, max and current versions (ckit: all 0).
    pub delegate_versions: [u8; 3],
    /// `ProbeInterval`: one member probed per interval (scaled by health).
    pub probe_interval: Duration,
    /// `ProbeTimeout`: how long a direct ping waits before indirect probes.
    pub probe_timeout: Duration,
    /// `SuspicionMult`: the suspicion timeout is this many probe intervals,
    /// times log10 of the cluster size.
    pub suspicion_mult: u32,
    /// `SuspicionMaxTimeoutMult`: the longest suspicion, as a multiple of the
    /// shortest, before independent confirmations shorten it.
    pub suspicion_max_timeout_mult: u32,
    /// `GossipInterval`
    pub gossip_interval: Duration,
    /// `GossipNodes`: members each gossip round sends to.
    pub gossip_nodes: usize,
    /// `GossipToTheDeadTime`: how long a dead member still gets gossip, and
    /// when its row is forgotten.
    pub gossip_to_the_dead_time: Duration,
    /// `PushPullInterval`: a full state exchange with one random member (0:
    /// never; scaled up above 32 members).
    pub push_pull_interval: Duration,
    /// `RetransmitMult`: a broadcast is sent `mult * ceil(log10(n + 1))` times.
    pub retransmit_mult: u32,
    /// `AwarenessMaxMultiplier`: the health score's ceiling.
    pub awareness_max_multiplier: u32,
    /// `IndirectChecks`: members asked to probe a target that missed its ack.
    pub indirect_checks: usize,
    /// `TCPTimeout`: how long a push-pull may take before the engine counts
    /// it failed (the shell should time its streams out sooner).
    pub tcp_timeout: Duration,
    /// `DisableTcpPings`: when false, a probe that missed its ack also asks
    /// the shell for a ping over a stream ([`crate::memberlist::engine::Output::StreamPing`]).
    pub disable_tcp_pings: bool,
    /// `UDPBufferSize`: the most bytes a packet may hold; broadcasts
    /// piggybacked on a packet fill it up to this.
    pub udp_buffer_size: usize,
    /// `EnableCompression`: packets and push-pulls go LZW-compressed when
    /// that makes them smaller (on by default, as in memberlist and ckit;
    /// peers read both either way). Off trades bytes for CPU: gossip
    /// compresses about 6 to 1, and compressing took a fifth of the CPU of
    /// a process running 500 members on loopback (`benches/RESULTS.md`).
    pub enable_compression: bool,
    /// `Label`: only its length matters here (the wire writes it, and the
    /// packet budget leaves room for it).
    pub label: String,
    /// `DeadNodeReclaimTime`: after this, a dead member's name may come back
    /// on another address with any incarnation (0: only by refutation).
    pub dead_node_reclaim_time: Duration,

    // ---- where this engine departs from memberlist ----
    /// A refutation from a member we hold suspect or dead (a higher
    /// incarnation, or a member we buried) is applied only after it answers a
    /// probe from us. memberlist applies it at once, so a member that can
    /// send but not receive comes back to life every time it hears it died.
    pub verify_revivals: bool,
    /// A probe whose indirect helpers all stayed silent (no ack, no nack)
    /// may say more about us than about the target: before accusing it, a
    /// stream ping to a live member tells whether we can reach others but
    /// not hear them (then we accuse nobody). memberlist suspects the target
    /// anyway, so a member that cannot receive accuses every member it
    /// probes. And a probe with any helper still silent at its deadline
    /// waits once more, a probe timeout, for it: a nack or relayed ack
    /// that is late, not missing. Among 500 members in one process every
    /// false accusation came with an ack 13-640 ms after the decision.
    pub quiet_probes_accuse_nobody: bool,
    /// How often a push-pull is tried with a random member we hold dead
    /// (or forgot, within `tombstone_time`), with follow-ups to the same
    /// address when it answers: after a partition both sides hold the other
    /// dead and, once the gossip to the dead has stopped, memberlist never
    /// speaks to them again (Serf adds this reconnect on top of it). The
    /// follow-ups carry the refutations each side makes on hearing it was
    /// declared dead. 0: never.
    pub reconnect_interval: Duration,
    /// How long a forgotten dead member is remembered (name, address,
    /// incarnation) so that its return still needs a probe.
    pub tombstone_time: Duration,
    /// Push-pulls with random members after a join, at most this many:
    /// the first `catch_up_base` after the join's reply, each next one
    /// twice as long after the last (0.2, 0.6, 1.4, 3.0 and 6.2 s with the
    /// defaults). A member that joined while others were joining learns
    /// them in seconds rather than at the next `PushPullInterval`. The
    /// first whose reply brings no member we did not know ends them: each
    /// carries a whole table both ways (50 KB among 500 members), and
    /// gossip carries the rest.
    pub catch_up_push_pulls: u32,
    /// The first catch-up push-pull's delay after a join.
    pub catch_up_base: Duration,
    /// While broadcasts that were never sent wait in the queue, a gossip
    /// round comes this soon after the last one rather than a whole
    /// `GossipInterval` later: news crosses each hop in milliseconds, not
    /// half an interval on average. At rest nothing changes (0: memberlist's
    /// fixed cadence). 10 ms (it was 20): 50 and 100 members in one process
    /// converged in 0.21 s and 0.56-0.61 s (medians) against 0.23-0.32 s and
    /// 0.71-0.74 s, with about 1.5 times the packets until then and the same
    /// CPU; past 200 members the spacing reaches `GossipInterval` either way
    /// (`benches/RESULTS.md`).
    pub fresh_news_gossip: Duration,
    /// Of a gossip round's `GossipNodes` targets, at most this many (and
    /// never all of them) are picked among the members this one sent a
    /// packet or push-pull to within `warm_for`, those sent to longest ago
    /// first; the rest at random from every member. memberlist picks them
    /// all at random, which over UDP costs nothing; over HTTP/2 every new
    /// target is a TCP connection and a handshake at both ends. With 2 of
    /// 3, 100 members joining as separate processes opened 3,300-4,800
    /// connections instead of 7,200-9,000 and used 25-40% less CPU until
    /// they converged, and converged a little sooner (medians 1.05-1.10 s
    /// against 1.11-1.27 s); 50 converged as before
    /// (`benches/RESULTS.md`). 0: all at random.
    pub warm_gossip_nodes: usize,
    /// How recently a member must have been sent to for
    /// `warm_gossip_nodes` to pick it: well inside the transport's
    /// `idle_peer_timeout` (180 s), after which its connection closes.
    pub warm_for: Duration,
    /// Lifeguard's health score scales the probe timeout as well as the
    /// probe interval (as the Lifeguard paper does): a member that misses
    /// acks because it is itself slow gives others longer to answer before
    /// it asks helpers and accuses. memberlist scales only the interval
    /// ("we don't really expect waiting longer to help get UDP through"),
    /// so a starved process keeps missing its 500 ms timeout.
    pub scale_probe_timeout: bool,
    /// The health score scales the gossip interval as it scales the probe
    /// interval: a member behind on its own inputs (late timers, packets
    /// read late, missed nacks) gossips less often, up to a second apart
    /// (an interval set longer is kept), rather than add packets its
    /// runtime has no time for. A leaving member keeps the plain interval.
    /// memberlist gossips every `GossipInterval` whatever its health. With
    /// 500 members in one process at the LAN rates (most members' scores
    /// above 0 through most of a join wave) convergence took 3.7-6.6 s,
    /// median 4.8, against 5.0-7.5 s, median 5.4, over 8 alternating
    /// pairs, with about 30% fewer packets (`benches/RESULTS.md`).
    pub scale_gossip_interval: bool,
    /// A timer handled more than a fifth of the probe timeout (and more
    /// than 50 ms) past its deadline, or a packet handled that long after
    /// the shell received it ([`Engine::note_input_delay`](super::Engine::note_input_delay)),
    /// means this member is starved (its runtime ran it late), not
    /// that a peer is slow: the health score goes up (at most once per probe
    /// interval, and by lateness alone to half `AwarenessMaxMultiplier`, so
    /// a member starved for long still probes every few intervals), a probe's helpers still get their whole window after the
    /// indirect pings actually went out, and a decision taken late waits as
    /// long again once, for the acks queued behind it. memberlist measures
    /// its timeouts by the wall clock alone, so a starved member accuses the
    /// members whose acks it has not yet read.
    pub notice_late_ticks: bool,
    /// After a join, once this member's table has not grown for this long
    /// (the join wave around it has settled), one push-pull with the member
    /// the join went through: everyone joins through it, so it knows the
    /// members a random peer's gossip has not brought yet. 0: never
    /// (memberlist waits for its `PushPullInterval`).
    pub join_follow_up: Duration,
    /// The join follow-up comes this long after the join's reply at the
    /// latest, even while the table still grows (0: only once it is
    /// quiet). Among 500 members joining at once a table grows by gossip
    /// for seconds, one member at a time, and the follow-up that would fill
    /// it at once waited for that: the last members were complete 3.6-5.3 s
    /// after the last join in the simulator, 1.8-1.9 s with it, with a
    /// fifth fewer push-pulls and a third of the packets, and in one
    /// process 3.5-3.8 s against 3.9-9.2 s (`benches/RESULTS.md`).
    pub join_follow_up_within: Duration,
    /// A join follow-up that brought members we did not know says the
    /// member the join went through was still taking joins: another
    /// follows (on the same rules), at most this many times. In one
    /// process of 500 members, where that member answers its 500 joins
    /// over seconds, 2 made the row meet 5 s in 15 of 16 runs against 11
    /// of 16, for about 10% more push-pull bytes (`benches/RESULTS.md`).
    pub join_follow_up_repeats: u32,
    /// A suspicion this member starts (its probe failed, or a push-pull
    /// held the member dead) is also sent straight to the accused, which
    /// refutes it at once. memberlist lets gossip carry it there: among
    /// 500 members it reached the accused with the rest of the cluster,
    /// 2.1-3.0 s after the probe failed, and every member held a live
    /// member suspect until the refutation came back to it.
    pub tell_the_accused: bool,
    /// An alive that undoes a suspicion or a death (a refutation, a
    /// restart) goes out before any other broadcast. memberlist queues it
    /// with the rest, least sent and largest first, so during a join wave
    /// it waits behind hundreds of joins.
    pub refutations_first: bool,
}

impl Config {
    /// memberlist's `DefaultLANConfig` (v0.5).
    pub fn lan() -> Config {
        Config {
            protocol_version: 2,
            delegate_versions: [0, 0, 0],
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            suspicion_mult: 4,
            suspicion_max_timeout_mult: 6,
            gossip_interval: Duration::from_millis(200),
            gossip_nodes: 3,
            gossip_to_the_dead_time: Duration::from_secs(30),
            push_pull_interval: Duration::from_secs(30),
            retransmit_mult: 4,
            awareness_max_multiplier: 8,
            indirect_checks: 3,
            tcp_timeout: Duration::from_secs(10),
            disable_tcp_pings: false,
            udp_buffer_size: 1400,
            enable_compression: true,
            label: String::new(),
            dead_node_reclaim_time: Duration::ZERO,
            verify_revivals: true,
            quiet_probes_accuse_nobody: true,
            reconnect_interval: Duration::from_secs(10),
            tombstone_time: Duration::from_secs(3600),
            catch_up_push_pulls: 5,
            catch_up_base: Duration::from_millis(200),
            fresh_news_gossip: Duration::from_millis(10),
            warm_gossip_nodes: 2,
            warm_for: Duration::from_secs(60),
            scale_probe_timeout: true,
            scale_gossip_interval: true,
            notice_late_ticks: true,
            join_follow_up: Duration::from_millis(300),
            join_follow_up_within: Duration::from_millis(500),
            join_follow_up_repeats: 2,
            tell_the_accused: true,
            refutations_first: true,
        }
    }

    /// The memberlist settings `ckit.NewNode` uses: the LAN defaults with a
    /// 5 s probe interval, 2 s probe and stream timeouts, no stream pings and
    /// 10 MiB packets (they travel over HTTP, not UDP).
    pub fn ckit() -> Config {
        Config {
            probe_interval: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(2),
            tcp_timeout: Duration::from_secs(2),
            disable_tcp_pings: true,
            udp_buffer_size: 10 * 1024 * 1024,
            ..Config::lan()
        }
    }

    /// memberlist exactly: the departures above switched off (for
    /// comparisons in tests and benches).
    pub fn as_memberlist(self) -> Config {
        Config {
            verify_revivals: false,
            quiet_probes_accuse_nobody: false,
            reconnect_interval: Duration::ZERO,
            tombstone_time: Duration::ZERO,
            catch_up_push_pulls: 0,
            fresh_news_gossip: Duration::ZERO,
            warm_gossip_nodes: 0,
            scale_probe_timeout: false,
            scale_gossip_interval: false,
            notice_late_ticks: false,
            join_follow_up: Duration::ZERO,
            tell_the_accused: false,
            refutations_first: false,
            ..self
        }
    }

    /// The `Vsn` this member announces: protocol min, max, current, then the
    /// delegate's min, max, current.
    pub fn vsn(&self) -> [u8; 6] {
        let [dmin, dmax, dcur] = self.delegate_versions;
        [
            PROTOCOL_VERSION_MIN,
            PROTOCOL_VERSION_MAX,
            self.protocol_version,
            dmin,
            dmax,
            dcur,
        ]
    }

    /// The shortest suspicion for a cluster of `n`:
    /// `SuspicionMult * max(1, log10(n)) * ProbeInterval`, to the millisecond
    /// as memberlist computes it.
    pub fn suspicion_min(&self, n: usize) -> Duration {
        let scale = (n.max(1) as f64).log10().max(1.0);
        let millis = (scale * 1000.0) as u64;
        self.probe_interval.saturating_mul(self.suspicion_mult) * millis as u32 / 1000
    }

    /// The longest suspicion: `SuspicionMaxTimeoutMult` times the shortest.
    pub fn suspicion_max(&self, n: usize) -> Duration {
        self.suspicion_min(n)
            .saturating_mul(self.suspicion_max_timeout_mult)
    }

    /// How often a broadcast is sent in a cluster of `n`:
    /// `RetransmitMult * ceil(log10(n + 1))`.
    pub fn retransmit_limit(&self, n: usize) -> u32 {
        let scale = ((n + 1) as f64).log10().ceil() as u32;
        self.retransmit_mult * scale
    }

    /// The push-pull interval for a cluster of `n`: unchanged up to 32
    /// members, then one more interval per doubling.
    pub fn push_pull_interval_for(&self, n: usize) -> Duration {
        const THRESHOLD: f64 = 32.0;
        if n <= THRESHOLD as usize {
            return self.push_pull_interval;
        }
        let mult = ((n as f64).log2() - THRESHOLD.log2()).ceil() + 1.0;
        self.push_pull_interval.saturating_mul(mult as u32)
    }

    /// Bytes of broadcasts a packet can carry beside `used` bytes of its
    /// own: the buffer less the compound header and the label header.
    pub fn packet_budget(&self, used: usize) -> usize {
        const COMPOUND_HEADER: usize = 2;
        let label = if self.label.is_empty() {
            0
        } else {
            2 + self.label.len()
        };
        self.udp_buffer_size
            .saturating_sub(used + COMPOUND_HEADER + label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_the_reference_configs() {
        let v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string("../shared/vectors/memberlist_messages.json").unwrap(),
        )
        .unwrap();
        let ns =
            |c: &serde_json::Value, f: &str| Duration::from_nanos(c[f]["ns"].as_u64().unwrap());
        for (name, config) in [
            ("DefaultLANConfig", Config::lan()),
            ("ckit_NewNode", Config::ckit()),
        ] {
            let c = &v["config"][name];
            assert_eq!(config.probe_interval, ns(c, "ProbeInterval"), "{name}");
            assert_eq!(config.probe_timeout, ns(c, "ProbeTimeout"), "{name}");
            assert_eq!(config.gossip_interval, ns(c, "GossipInterval"), "{name}");
            assert_eq!(
                config.gossip_to_the_dead_time,
                ns(c, "GossipToTheDeadTime"),
                "{name}"
            );
            assert_eq!(
                config.push_pull_interval,
                ns(c, "PushPullInterval"),
                "{name}"
            );
            assert_eq!(config.tcp_timeout, ns(c, "TCPTimeout"), "{name}");
            assert_eq!(
                config.dead_node_reclaim_time,
                ns(c, "DeadNodeReclaimTime"),
                "{name}"
            );
            assert_eq!(
                u64::from(config.suspicion_mult),
                c["SuspicionMult"].as_u64().unwrap()
            );
            assert_eq!(
                u64::from(config.suspicion_max_timeout_mult),
                c["SuspicionMaxTimeoutMult"].as_u64().unwrap()
            );
            assert_eq!(
                config.gossip_nodes as u64,
                c["GossipNodes"].as_u64().unwrap()
            );
            assert_eq!(
                u64::from(config.retransmit_mult),
                c["RetransmitMult"].as_u64().unwrap()
            );
            assert_eq!(
                u64::from(config.awareness_max_multiplier),
                c["AwarenessMaxMultiplier"].as_u64().unwrap()
            );
            assert_eq!(
                config.indirect_checks as u64,
                c["IndirectChecks"].as_u64().unwrap()
            );
            assert_eq!(
                config.disable_tcp_pings,
                c["DisableTcpPings"].as_bool().unwrap()
            );
            assert_eq!(
                config.udp_buffer_size as u64,
                c["UDPBufferSize"].as_u64().unwrap()
            );
            assert_eq!(
                config.enable_compression,
                c["EnableCompression"].as_bool().unwrap(),
                "{name}"
            );
            assert_eq!(
                u64::from(config.protocol_version),
                c["ProtocolVersion"].as_u64().unwrap()
            );
            let vsn: Vec<u64> = c["BuildVsnArray"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap())
                .collect();
            assert_eq!(config.vsn().map(u64::from).to_vec(), vsn, "{name}");
        }
    }

    #[test]
    fn derived_timings_match_memberlist_for_ckit() {
        let v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string("../shared/vectors/memberlist_messages.json").unwrap(),
        )
        .unwrap();
        let config = Config::ckit();
        for row in v["config"]["derived_timing_with_ckit_config"]
            .as_array()
            .unwrap()
        {
            let n = row["n_nodes"].as_u64().unwrap() as usize;
            let ns = |f: &str| Duration::from_nanos(row[f]["ns"].as_u64().unwrap());
            assert_eq!(
                config.suspicion_min(n),
                ns("suspicion_min_timeout"),
                "n={n}"
            );
            assert_eq!(
                config.suspicion_max(n),
                ns("suspicion_max_timeout"),
                "n={n}"
            );
            assert_eq!(
                u64::from(config.retransmit_limit(n)),
                row["retransmit_limit"].as_u64().unwrap(),
                "n={n}"
            );
        }
    }

    #[test]
    fn push_pull_interval_grows_by_one_interval_per_doubling_past_32() {
        let c = Config::lan();
        let s = Duration::from_secs;
        assert_eq!(c.push_pull_interval_for(32), s(30));
        assert_eq!(c.push_pull_interval_for(33), s(60));
        assert_eq!(c.push_pull_interval_for(64), s(60));
        assert_eq!(c.push_pull_interval_for(65), s(90));
        assert_eq!(c.push_pull_interval_for(500), s(150));
        // log10 scaling of the suspicion timeout past 10 members.
        assert_eq!(c.suspicion_min(100), s(8));
        assert_eq!(c.suspicion_min(50), Duration::from_millis(6792));
        assert_eq!(c.retransmit_limit(500), 12);
    }
}
