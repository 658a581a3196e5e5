//! Failure detection: the round-robin probe (a ping, then indirect pings
//! through `IndirectChecks` members with nacks, then a suspicion), the
//! indirect pings we serve for others, and the probe that checks a revival
//! before we believe it.

use std::net::SocketAddr;

use super::super::message::{Ack, Alive, IndirectPing, Message, Nack, NodeState, Ping, Suspect};
use super::super::wire::EncodedMessage;
use super::members::{ip_bytes, socket_addr};
use super::output::{MemberChange, OutPacket, Output, StreamPingRequest};
use super::state::Trust;
use super::time::Time;
use super::Engine;

/// The most indirect pings served at once (each lives a probe timeout):
/// peers cannot make us hold unbounded state.
const MAX_RELAYS: usize = 1024;

/// The most probes in flight at once (one round-robin, the rest checks of
/// revivals and of our own hearing).
const MAX_PROBES: usize = 256;

/// Probe intervals after a probe on a hint during which further hints
/// about the same member are ignored.
const HINT_QUIET: u32 = 5;

/// Why we probe.
#[derive(Clone, Debug)]
pub(super) enum Purpose {
    /// The round-robin probe: a failure makes the target suspect.
    RoundRobin {
        /// The target's incarnation when the probe started.
        incarnation: u32,
    },
    /// A member we hold suspect or dead (or forgot) says it is alive: the
    /// alive is applied only if it answers.
    Revival(Alive),
    /// A probe failed and every helper stayed silent: a stream ping to one
    /// of them tells whether they are gone (the stream fails: accuse the
    /// target) or we cannot hear packets (it works: accuse nobody).
    DeafCheck {
        /// The probed member and its incarnation then.
        target: String,
        incarnation: u32,
    },
}

/// A probe in flight.
#[derive(Clone, Debug)]
pub(super) struct Probe {
    target: String,
    addr: SocketAddr,
    purpose: Purpose,
    ping: Ping,
    /// When indirect pings go out, until they have.
    indirect_at: Option<Time>,
    /// When the probe has failed if nothing answered.
    decide_at: Time,
    helpers: u32,
    expected_nacks: u32,
    nacks: u32,
    /// The decision was already put off once because we got to it late.
    put_off: bool,
    /// The decision was already put off once for helpers that had not
    /// answered.
    waited_for_helpers: bool,
}

impl Probe {
    /// Its next timer.
    pub(super) fn next_step(&self) -> Time {
        self.indirect_at
            .map_or(self.decide_at, |t| t.min(self.decide_at))
    }
}

/// An indirect ping we serve: our ping's ack is relayed to the requester,
/// or a nack sent when it does not come in time.
#[derive(Clone, Debug)]
pub(super) struct Relay {
    requester: SocketAddr,
    requester_name: String,
    seq_no: u32,
    nack: bool,
    pub(super) deadline: Time,
}

impl Engine {
    fn our_ping(&mut self, node: &str) -> Ping {
        let (source_addr, source_port) = ip_bytes(self.local_member().addr);
        Ping {
            seq_no: self.next_seq_no(),
            node: node.to_owned(),
            source_addr,
            source_port,
            source_node: self.name.clone(),
        }
    }

    /// A probe's decision waits for nacks: a helper sends its nack a probe
    /// timeout after our indirect ping, itself sent a probe timeout after
    /// our ping, so nacks arrive past 2x the probe timeout (memberlist's
    /// LAN defaults decide at 1 s, when nacks are due: they often miss it).
    fn decide_after(&self, interval: std::time::Duration) -> std::time::Duration {
        interval.max(self.probe_timeout() * 5 / 2)
    }

    /// How long a ping waits for its ack: `ProbeTimeout`, scaled by the
    /// health score when `scale_probe_timeout` says so.
    pub(super) fn probe_timeout(&self) -> std::time::Duration {
        if self.config.scale_probe_timeout {
            self.awareness.scale(self.config.probe_timeout)
        } else {
            self.config.probe_timeout
        }
    }

    /// How late a timer may be handled before it says we are starved
    /// (`notice_late_ticks`; `None`: never): a fifth of the probe timeout,
    /// and at least 50 ms, so that a short probe timeout (a loopback test's
    /// 100 ms) does not take a loaded machine's ordinary jitter for it.
    pub(super) fn late_threshold(&self) -> Option<std::time::Duration> {
        const FLOOR: std::time::Duration = std::time::Duration::from_millis(50);
        self.config
            .notice_late_ticks
            .then(|| (self.config.probe_timeout / 5).max(FLOOR))
    }

    /// Starts the next round-robin probe (memberlist's `probe`).
    pub(super) fn start_probe(&mut self, now: Time) {
        let mut reaped = Vec::new();
        let target = self.members.next_to_probe(
            &self.name.clone(),
            now,
            self.config.gossip_to_the_dead_time,
            self.config.tombstone_time,
            &mut self.rng,
            &mut reaped,
        );
        for member in reaped {
            self.outputs.push_back(Output::Event(super::Event::Member {
                member,
                change: MemberChange::Removed,
            }));
        }
        let interval = self.awareness.scale(self.config.probe_interval);
        self.next_probe = now + interval;
        if let Some(target) = target {
            self.current_probe = Some(self.launch_probe(target, interval, now));
        }
    }

    /// The transport lost its connection to `addr` or could not open one
    /// (see [`Engine::peer_unreachable`]): probes the live member there now,
    /// besides the round-robin. Ignored for a member already under a probe,
    /// one not alive, and one probed on a hint within [`HINT_QUIET`] probe
    /// intervals (a peer whose connects keep failing waits for its turn).
    pub(super) fn probe_on_hint(&mut self, addr: SocketAddr, now: Time) {
        if self.leaving.is_some() {
            return;
        }
        let Some(target) = self
            .members
            .iter()
            .find(|m| m.addr == addr && m.name != self.name && m.state == NodeState::Alive)
            .map(|m| m.name.clone())
        else {
            return;
        };
        if self.probes.len() >= MAX_PROBES || self.probes.values().any(|p| p.target == target) {
            return;
        }
        let quiet = self.config.probe_interval.saturating_mul(HINT_QUIET);
        self.hinted.retain(|_, at| now.since(*at) < quiet);
        if self.hinted.contains_key(&target) {
            return;
        }
        self.hinted.insert(target.clone(), now);
        let interval = self.awareness.scale(self.config.probe_interval);
        self.launch_probe(target, interval, now);
    }

    /// Pings `target` (with its suspicion, if it is suspect) and keeps the
    /// probe: a failure makes it suspect. Returns the probe's sequence number.
    fn launch_probe(&mut self, target: String, interval: std::time::Duration, now: Time) -> u32 {
        let row = self
            .members
            .get(&target)
            .expect("a member of the table")
            .clone();
        let ping = self.our_ping(&target);
        let seq = ping.seq_no;
        if row.state == NodeState::Alive {
            self.send_with_piggyback(row.addr, Some(target.clone()), Message::Ping(ping.clone()));
        } else {
            // A suspect gets the suspicion with the ping: its chance to refute.
            let suspect = Suspect {
                incarnation: row.incarnation,
                node: target.clone(),
                from: self.name.clone(),
            };
            self.outputs.push_back(Output::Packet(OutPacket {
                to: row.addr,
                node: Some(target.clone()),
                crc: row.reads_crc(),
                messages: vec![
                    EncodedMessage::new(&Message::Ping(ping.clone())),
                    EncodedMessage::new(&Message::Suspect(suspect)),
                ],
            }));
        }
        let probe = Probe {
            target,
            addr: row.addr,
            purpose: Purpose::RoundRobin {
                incarnation: row.incarnation,
            },
            ping,
            indirect_at: Some(now + self.probe_timeout()),
            decide_at: now + self.decide_after(interval),
            helpers: 0,
            expected_nacks: 0,
            nacks: 0,
            put_off: false,
            waited_for_helpers: false,
        };
        self.probes.insert(seq, probe);
        seq
    }

    /// Checks that `alive`'s member answers at `addr` before believing it.
    pub(super) fn verify_revival(&mut self, alive: Alive, addr: SocketAddr, now: Time) {
        for probe in self.probes.values_mut() {
            if let Purpose::Revival(pending) = &mut probe.purpose {
                if pending.node == alive.node {
                    if alive.incarnation > pending.incarnation && probe.addr == addr {
                        *pending = alive;
                    }
                    return;
                }
            }
        }
        if self.probes.len() >= MAX_PROBES {
            return; // a flood of revivals: they come again, and get checked then
        }
        let ping = self.our_ping(&alive.node);
        let seq = ping.seq_no;
        self.send_with_piggyback(addr, Some(alive.node.clone()), Message::Ping(ping.clone()));
        let probe = Probe {
            target: alive.node.clone(),
            addr,
            purpose: Purpose::Revival(alive),
            ping,
            indirect_at: Some(now + self.probe_timeout()),
            decide_at: now + self.decide_after(self.config.probe_interval),
            helpers: 0,
            expected_nacks: 0,
            nacks: 0,
            put_off: false,
            waited_for_helpers: false,
        };
        self.probes.insert(seq, probe);
    }

    /// Indirect pings for probes past their probe timeout, decisions for
    /// probes past their deadline.
    pub(super) fn tick_probes(&mut self, now: Time) {
        let due: Vec<u32> = self
            .probes
            .iter()
            .filter(|(_, p)| p.next_step() <= now)
            .map(|(seq, _)| *seq)
            .collect();
        let late_threshold = self.late_threshold();
        for seq in due {
            let Some(probe) = self.probes.get(&seq) else {
                continue;
            };
            if let (Some(threshold), Some(indirect_at)) = (late_threshold, probe.indirect_at) {
                let late = now.since(indirect_at);
                if late > threshold {
                    // We got here late: the helpers still get their whole
                    // window, counted from when the indirect pings go out.
                    self.send_indirect_pings(seq);
                    let probe = self.probes.get_mut(&seq).expect("present");
                    probe.decide_at = probe.decide_at.max(now) + late;
                    continue;
                }
            }
            if probe.decide_at <= now {
                let late = now.since(probe.decide_at);
                if late_threshold.is_some_and(|t| late > t) && !probe.put_off {
                    // Acks that came while we were not running wait behind
                    // this timer: read them before deciding.
                    let wait = late.min(self.probe_timeout());
                    let probe = self.probes.get_mut(&seq).expect("present");
                    probe.put_off = true;
                    probe.decide_at = now + wait;
                    continue;
                }
                if self.config.quiet_probes_accuse_nobody
                    && probe.indirect_at.is_none()
                    && probe.nacks < probe.expected_nacks
                    && !probe.waited_for_helpers
                {
                    // A helper has not answered: its nack (or the ack it
                    // relays) is likelier late than missing (see
                    // `Config::quiet_probes_accuse_nobody`).
                    let wait = self.probe_timeout();
                    let probe = self.probes.get_mut(&seq).expect("present");
                    probe.waited_for_helpers = true;
                    probe.decide_at = now + wait;
                    continue;
                }
                let probe = self.probes.remove(&seq).expect("present");
                self.probe_failed(seq, probe, now);
            } else {
                self.send_indirect_pings(seq);
            }
        }
    }

    fn send_indirect_pings(&mut self, seq: u32) {
        let probe = self.probes.get(&seq).expect("caller checked").clone();
        let me = self.name.clone();
        let helpers = self
            .members
            .random(self.config.indirect_checks, &mut self.rng, |m| {
                m.name != me && m.name != probe.target && m.state == NodeState::Alive
            });
        let (target, port) = ip_bytes(probe.addr);
        let (source_addr, source_port) = ip_bytes(self.local_member().addr);
        let mut expected_nacks = 0;
        for helper in &helpers {
            let nack = helper.protocol_max() >= 4;
            expected_nacks += u32::from(nack);
            let ind = IndirectPing {
                seq_no: seq,
                target: target.clone(),
                port,
                node: probe.target.clone(),
                nack,
                source_addr: source_addr.clone(),
                source_port,
                source_node: self.name.clone(),
            };
            self.send_with_piggyback(
                helper.addr,
                Some(helper.name.clone()),
                Message::IndirectPing(ind),
            );
        }
        let stream_ping = !self.config.disable_tcp_pings
            && self
                .members
                .get(&probe.target)
                .is_none_or(|m| m.protocol_max() >= 3);
        if stream_ping {
            self.outputs
                .push_back(Output::StreamPing(StreamPingRequest {
                    to: probe.addr,
                    ping: probe.ping.clone(),
                    deadline: probe.decide_at,
                }));
        }
        let probe = self.probes.get_mut(&seq).expect("caller checked");
        probe.indirect_at = None;
        probe.helpers = helpers.len() as u32;
        probe.expected_nacks = expected_nacks;
    }

    fn probe_failed(&mut self, seq: u32, probe: Probe, now: Time) {
        let incarnation = match probe.purpose {
            Purpose::RoundRobin { incarnation } => incarnation,
            // An unverified revival is simply not believed.
            Purpose::Revival(_) => return,
            // The helpers are unreachable even by stream: they (and likely
            // the target) are gone, not our hearing.
            Purpose::DeafCheck {
                target,
                incarnation,
            } => {
                let suspect = Suspect {
                    incarnation,
                    node: target,
                    from: self.name.clone(),
                };
                self.suspect_node(suspect, now);
                return;
            }
        };
        if self.current_probe == Some(seq) {
            self.current_probe = None;
        }
        // Lifeguard: with helpers that nack, each missing nack counts
        // against our own health (it is likelier we cannot hear than that
        // they all failed); without, any failed probe does.
        let delta = if probe.expected_nacks > 0 {
            probe.expected_nacks - probe.nacks.min(probe.expected_nacks)
        } else {
            1
        };
        self.awareness.apply(i64::from(delta));
        let all_silent = probe.expected_nacks > 0 && probe.nacks == 0;
        if all_silent && self.config.quiet_probes_accuse_nobody {
            self.check_deafness(probe.target, incarnation, now);
            return;
        }
        let suspect = Suspect {
            incarnation,
            node: probe.target,
            from: self.name.clone(),
        };
        self.suspect_node(suspect, now);
    }

    /// Pings a random live member over a stream (see [`Purpose::DeafCheck`]).
    fn check_deafness(&mut self, target: String, incarnation: u32, now: Time) {
        let me = self.name.clone();
        let helper = self.members.random(1, &mut self.rng, |m| {
            m.name != me && m.name != target && m.state == NodeState::Alive
        });
        let Some(helper) = helper.into_iter().next() else {
            return;
        };
        let ping = self.our_ping(&helper.name);
        let deadline = now + self.probe_timeout().saturating_mul(2);
        self.outputs
            .push_back(Output::StreamPing(StreamPingRequest {
                to: helper.addr,
                ping: ping.clone(),
                deadline,
            }));
        let probe = Probe {
            target: helper.name,
            addr: helper.addr,
            purpose: Purpose::DeafCheck {
                target,
                incarnation,
            },
            ping,
            indirect_at: None,
            decide_at: deadline,
            helpers: 0,
            expected_nacks: 0,
            nacks: 0,
            put_off: false,
            waited_for_helpers: false,
        };
        self.probes.insert(probe.ping.seq_no, probe);
    }

    fn probe_succeeded(&mut self, seq: u32, now: Time) {
        let Some(probe) = self.probes.remove(&seq) else {
            return;
        };
        match probe.purpose {
            Purpose::RoundRobin { .. } => {
                if self.current_probe == Some(seq) {
                    self.current_probe = None;
                }
                self.awareness.apply(-1);
            }
            Purpose::Revival(alive) => self.alive_node(alive, now, Trust::Verified),
            // Streams work, packets do not reach us: accuse nobody.
            Purpose::DeafCheck { .. } => {}
        }
    }

    /// A ping answered over a stream (memberlist's TCP fallback) counts as
    /// an ack; a failed one changes nothing.
    pub fn stream_ping_result(&mut self, seq_no: u32, contacted: bool, now: Time) {
        self.input_at(now);
        if contacted {
            self.probe_succeeded(seq_no, now);
        } else if let Some(probe) = self.probes.get(&seq_no) {
            if matches!(probe.purpose, Purpose::DeafCheck { .. }) {
                let probe = self.probes.remove(&seq_no).expect("present");
                self.probe_failed(seq_no, probe, now);
            }
        }
    }

    pub(super) fn handle_ping(&mut self, from: SocketAddr, ping: Ping) {
        if !ping.node.is_empty() && ping.node != self.name {
            return; // for a previous owner of our address
        }
        let to = (ping.source_port > 0)
            .then(|| socket_addr(&ping.source_addr, ping.source_port))
            .flatten()
            .unwrap_or(from);
        let node = (!ping.source_node.is_empty()).then_some(ping.source_node);
        let ack = Ack {
            seq_no: ping.seq_no,
            payload: None,
        };
        self.send_with_piggyback(to, node, Message::Ack(ack));
    }

    pub(super) fn handle_indirect_ping(&mut self, from: SocketAddr, ind: IndirectPing, now: Time) {
        let Some(target) = socket_addr(&ind.target, ind.port) else {
            return;
        };
        let requester = (ind.source_port > 0)
            .then(|| socket_addr(&ind.source_addr, ind.source_port))
            .flatten()
            .unwrap_or(from);
        if self.relays.len() >= MAX_RELAYS {
            return; // a flood of requests: the requester will see a failure
        }
        let ping = self.our_ping(&ind.node);
        self.relays.insert(
            ping.seq_no,
            Relay {
                requester,
                requester_name: ind.source_node,
                seq_no: ind.seq_no,
                nack: ind.nack,
                deadline: now + self.probe_timeout(),
            },
        );
        self.send_with_piggyback(target, Some(ind.node), Message::Ping(ping));
    }

    pub(super) fn handle_ack(&mut self, seq_no: u32, now: Time) {
        if self.probes.contains_key(&seq_no) {
            self.probe_succeeded(seq_no, now);
        } else if let Some(relay) = self.relays.remove(&seq_no) {
            let ack = Ack {
                seq_no: relay.seq_no,
                payload: None,
            };
            let node = (!relay.requester_name.is_empty()).then_some(relay.requester_name);
            self.send_with_piggyback(relay.requester, node, Message::Ack(ack));
        }
    }

    pub(super) fn handle_nack(&mut self, seq_no: u32, now: Time) {
        if let Some(probe) = self.probes.get_mut(&seq_no) {
            probe.nacks += 1;
            // Every helper has given up on the target: no need to wait for
            // the deadline (only a late direct ack could still come).
            if probe.indirect_at.is_none() && probe.nacks >= probe.expected_nacks {
                probe.decide_at = probe.decide_at.min(now);
            }
        }
    }

    /// Relays whose target did not answer in time: a nack if asked for.
    pub(super) fn tick_relays(&mut self, now: Time) {
        let due: Vec<u32> = self
            .relays
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in due {
            let relay = self.relays.remove(&seq).expect("listed");
            if relay.nack {
                let node = (!relay.requester_name.is_empty()).then_some(relay.requester_name);
                let nack = Nack {
                    seq_no: relay.seq_no,
                };
                self.send_with_piggyback(relay.requester, node, Message::Nack(nack));
            }
        }
    }
}
