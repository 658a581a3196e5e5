//! memberlist's behaviour (SWIM with Lifeguard, as Go memberlist v0.5 runs
//! it) as a state machine with no runtime: no sockets, no clock, no bytes.
//!
//! The shell feeds it inputs — each message of a decoded packet
//! ([`Engine::handle_message`]), push-pull streams a peer opened
//! ([`Engine::handle_push_pull`]) and the replies to those it opened
//! ([`Engine::push_pull_result`]), pings on streams, [`Engine::join`],
//! [`Engine::leave`], user broadcasts and state — with the time as an input
//! ([`Time`], a duration since an origin the shell picks). It drains
//! [`Output`]s: packets to send (messages in order, and whether the wire
//! adds a CRC), push-pulls and stream pings to open, and [`Event`]s. It
//! sleeps until [`Engine::next_deadline`] and then calls [`Engine::tick`].
//! Randomness (probe order, gossip targets, timer stagger) comes from a
//! seed the shell gives, so a run is reproducible.
//!
//! ```
//! use std::time::Duration;
//! use gossiphttp::memberlist::engine::{Config, Engine, Event, Identity, Output, Time};
//!
//! let me = Identity { name: "node-a".into(), addr: "127.0.0.1:7946".parse().unwrap(), meta: None };
//! let mut engine = Engine::new(Config::ckit(), me, 42, Time::ZERO).expect("a valid identity");
//! engine.join(&["127.0.0.1:7947".parse().unwrap()], Time::ZERO);
//! let mut now = Time::ZERO;
//! for _ in 0..3 {
//!     // 1. inputs: decoded packets, streams, results, as they come; here none.
//!     // 2. outputs:
//!     while let Some(output) = engine.poll_output() {
//!         match output {
//!             Output::Packet(p) => { /* encode_packet_parts(&p.messages, ..), send to p.to */ }
//!             Output::PushPull(req) => {
//!                 // Open a stream to req.to, write req.state, read the reply; then
//!                 // engine.push_pull_result(req.id, reply_or_error, now)
//!                 # let _ = req;
//!             }
//!             Output::StreamPing(req) => { /* engine.stream_ping_result(req.ping.seq_no, ok, now) */ }
//!             Output::Event(Event::Member { member, change }) => println!("{} {change:?}", member.name),
//!             Output::Event(_) => {}
//!         }
//!     }
//!     // 3. sleep until the next deadline (or until an input arrives), then tick.
//!     now = engine.next_deadline().unwrap_or(now + Duration::from_secs(1));
//!     engine.tick(now);
//! }
//! ```
//!
//! # What it does, as memberlist does
//!
//! - Probing: one member per `ProbeInterval` (scaled by the health score),
//!   round-robin over a shuffled list; a ping, then after `ProbeTimeout`
//!   indirect pings through `IndirectChecks` members that nack when the
//!   target stays silent (and a ping over a stream unless
//!   `DisableTcpPings`); no answer makes the target suspect.
//! - Suspicion with Lifeguard's timeout: from `SuspicionMult * log10(n) *
//!   ProbeInterval` up to `SuspicionMaxTimeoutMult` times that, shortened by
//!   independent confirmations; then dead.
//! - Local health: missed acks and nacks and refutations raise the score,
//!   successful probes lower it; probe interval scales by score + 1.
//! - Incarnations: news about a member counts only if newer; a suspect or
//!   dead message about ourselves is refuted with a higher incarnation.
//! - Gossip: every `GossipInterval`, queued broadcasts go to `GossipNodes`
//!   random members (the recently dead included), piggybacked too on pings
//!   and acks, within the packet's byte budget ([`Message::encoded_len`]); each is
//!   sent `RetransmitMult * ceil(log10(n + 1))` times, and news about a
//!   member replaces older news about it.
//! - Push-pull: on join (with the join flag), every `PushPullInterval`
//!   (longer past 32 members); a remote's dead is merged as suspect. A
//!   remote view with a member whose protocol or delegate version is
//!   outside what every alive member understands is refused whole
//!   (`verifyProtocol`; [`Event::VersionsRefused`]).
//! - Dead members get gossip for `GossipToTheDeadTime`, then are forgotten.
//! - Leave: a dead message about ourselves with `From == Node`, which Go
//!   nodes record as left; [`Event::LeaveFinished`] says when it went out.
//! - Acks go to a ping's `SourceAddr:SourcePort` when it has them.
//!
//! # Where it does better than memberlist (each can be switched off in [`Config`])
//!
//! - **A member that can send but not receive** (its inbound blocked) is
//!   memberlist's worst case: its probes all fail, so it accuses every
//!   member it probes, and every time a push-pull it opened tells it that it
//!   was declared dead, it refutes and comes back to life, to die again.
//!   Here, when a probe's indirect helpers all stayed silent (no ack, and no
//!   nack either, though they were asked for one), we ping one live member
//!   over a stream before accusing anyone: if that works, packets are what
//!   does not reach us, and we accuse nobody (Lifeguard's score has gone up
//!   for the missed nacks); if it fails too, the others are gone and the
//!   target is suspected as memberlist would (`quiet_probes_accuse_nobody`). And a revival — an alive with
//!   a higher incarnation for a member we hold suspect or dead, or an alive
//!   for a dead member we forgot (a tombstone is kept for `tombstone_time`) —
//!   is applied only once the member answers a probe from us at the address
//!   it announces (`verify_revivals`); until then it stays dead and we do
//!   not gossip its alive on. A member that cannot be reached stays dead
//!   until it can be.
//! - **A restarted member** (same name, a new or the same address, its
//!   incarnation back at 1): memberlist keeps the old address of a live or
//!   dead row ("Conflicting address") until the row is forgotten, 30 s after
//!   it died, and the new process does not even refute news of its previous
//!   life at another address. Here a member refutes any news of itself that
//!   differs from it (another address included), and a higher incarnation
//!   moves a row to its new address, after a probe there if the row was
//!   suspect or dead. The row is one, keyed by name, and alive at its new
//!   address within a push-pull and a gossip round of the restart.
//!   A refutation of our name at another address comes at most once per 10
//!   probe intervals, so two live processes given one name do not trade
//!   refutations at gossip speed.
//! - **Convergence**: while broadcasts that were never sent wait, a gossip
//!   round follows 10 ms after the last rather than a `GossipInterval` later
//!   (`fresh_news_gossip`; at rest nothing changes), so news crosses a hop
//!   in milliseconds; past 10 members the spacing grows with the table (the
//!   whole cluster's early rounds cost the same at any size), and a member
//!   whose health score is above 0 has none. And a member that joined while others were joining
//!   learns them by push-pulls with random members 0.2, 0.6, 1.4, 3.0 and
//!   6.2 s after its join, until one brings no member it did not know
//!   (`catch_up_push_pulls`), not at the next
//!   `PushPullInterval` (30 s, and up to 150 s at 500 members); once its
//!   table has stopped growing for 300 ms, or 500 ms after its join at the
//!   latest, one more with the member its join went through, which
//!   everyone joined through, and up to two more while they bring members
//!   it did not know (`join_follow_up`, `join_follow_up_within`,
//!   `join_follow_up_repeats`).
//! - **Gossip keeps to the connections it has**: of a round's
//!   `GossipNodes` targets all but one are members this one sent to in the
//!   last minute (the one sent to longest ago first, so a broadcast's
//!   repeats still go to different members), and one is random, so a
//!   round reaches a random member as memberlist's do, and adds at most
//!   one member to those this one has connections to (`warm_gossip_nodes`,
//!   `warm_for`).
//! - **A starved process** (a runtime that runs its members late, as 100
//!   or 500 members in one process on a loaded machine): memberlist times
//!   probes by the wall clock alone, so a member run late accuses the
//!   members whose acks it has not read yet, they refute, and each
//!   suspicion and refutation is more work for the same starved runtime
//!   until the cluster collapses. Here a timer handled more than a fifth of
//!   the probe timeout (and 50 ms) late raises our own health score (at most once per
//!   probe interval, up to half its ceiling), a probe's helpers get their whole window from when
//!   the indirect pings actually went out, and a decision reached late
//!   waits once more, as long as it was late (at most a probe timeout), for
//!   the acks queued behind it (`notice_late_ticks`). The health score
//!   scales the probe timeout as well as the interval, as the Lifeguard
//!   paper does (`scale_probe_timeout`; memberlist scales only the
//!   interval), and it scales the gossip interval too
//!   (`scale_gossip_interval`): a member behind on its inputs sends fewer
//!   rounds for its runtime to carry (memberlist's cadence never changes).
//! - **False suspicions end sooner**: a member that starts a suspicion
//!   (its probe failed, or a push-pull held the member dead) also sends it
//!   straight to the accused, which refutes at once (`tell_the_accused`);
//!   memberlist lets gossip carry it there, with the rest of the cluster.
//!   And an alive that undoes a suspicion or a death (a higher incarnation
//!   with nothing else new, a member back from suspect or dead, our own
//!   refutation) goes out ahead of every other broadcast, in a gossip
//!   round of its own at once (`refutations_first`); memberlist queues it
//!   behind news sent fewer times or larger, which in a join wave is
//!   hundreds of joins. Among 500 members joining in one process a false
//!   suspicion reached 456-494 of them and was refuted 2.1-3.0 s after the
//!   probe failed; with both, it reached 3-99, refuted within 34-770 ms.
//! - **Partitions heal**: after a partition each side holds the other dead,
//!   and once gossip to the dead stops memberlist never speaks to them again
//!   (Serf adds a reconnect on top of it). Every `reconnect_interval` a
//!   push-pull goes to a random member held dead (or forgotten, by its
//!   tombstone); when it answers, follow-up push-pulls to it carry the
//!   refutations both sides make on learning they were declared dead.
//! - **Nacks in time**: a probe waits up to 2.5 probe timeouts after its
//!   ping, so that helpers' nacks (due 2 probe timeouts after it) count, and
//!   decides as soon as every helper has nacked; memberlist's LAN defaults
//!   decide at 1 s and often miss them. A helper still silent then gets
//!   one probe timeout more (`quiet_probes_accuse_nobody`): a helper
//!   behind on its own work nacks late (its probe timeout grows with its
//!   health score), and among 500 members in one process every false
//!   accusation came with an ack 13-640 ms after the decision.
//! - No handoff queue: every message is handled when it is fed, so nothing
//!   is dropped for a full queue (memberlist's "handler queue full").
//!
//! User messages ([`Engine::broadcast_user`]) are sent
//! `retransmit_limit(n)` times and not relayed by receivers: as with
//! memberlist's delegate, the application broadcasts again what it wants
//! spread further (ckit does, for news).
//!
//! Not done here: the ping and merge delegates, encryption, and updating one's own meta.

mod awareness;
mod broadcasts;
mod config;
mod gossip;
mod identity;
mod local;
mod members;
mod output;
mod probe;
mod queue;
mod state;
mod suspicion;
mod time;
mod versions;
mod warm;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use super::message::{Ack, Message, NodeState, Ping};

pub use config::{Config, PROTOCOL_VERSION_MAX, PROTOCOL_VERSION_MIN};
pub use identity::{Identity, IdentityError, META_MAX_SIZE};
pub use members::Member;
pub use output::{
    Event, MemberChange, OutPacket, Output, PushPullFailed, PushPullRequest, StreamPingRequest,
};
pub use time::Time;
pub use versions::{IncompatibleVersion, VersionKind};

use awareness::Awareness;
use gossip::{Leaving, PendingPushPull};
use probe::{Probe, Relay};
use queue::BroadcastQueue;
use suspicion::Suspicion;
use warm::WarmPeers;

/// memberlist's SWIM + Lifeguard as a state machine. See the module doc.
#[derive(Debug)]
pub struct Engine {
    config: Config,
    name: String,
    rng: Xoshiro256PlusPlus,
    members: members::Members,
    awareness: Awareness,
    seq_no: u32,
    broadcasts: BroadcastQueue,
    user_broadcasts: BroadcastQueue,
    user_state: Bytes,
    suspicions: BTreeMap<String, Suspicion>,
    /// Probes in flight by sequence number: the round-robin one and the
    /// checks of revivals.
    probes: BTreeMap<u32, Probe>,
    /// The round-robin probe in flight.
    current_probe: Option<u32>,
    /// Members probed on a transport's hint, and when (see `probe_on_hint`).
    hinted: BTreeMap<String, Time>,
    next_probe: Time,
    /// Indirect pings we serve, by the sequence number of our own ping.
    relays: BTreeMap<u32, Relay>,
    next_gossip: Time,
    last_gossip: Time,
    /// News was queued since the last gossip round found no one to tell.
    news_pending: bool,
    next_push_pull: Time,
    /// Catch-up push-pulls after a join: when the next is due and how many
    /// are left.
    catch_up: Option<(Time, u32)>,
    next_reconnect: Time,
    /// Push-pulls to a reconnected member's address: when, where, who.
    follow_ups: Vec<(Time, SocketAddr, String)>,
    push_pulls: BTreeMap<u64, PendingPushPull>,
    next_push_pull_id: u64,
    leaving: Option<Leaving>,
    /// When we last refuted news of our name at another address.
    last_conflict_refute: Option<Time>,
    /// When a late timer last counted against our health.
    last_late_tick: Option<Time>,
    /// The latest `now` the shell passed in (see `notice_lateness`).
    last_input: Time,
    /// The member a join went through, for its follow-up push-pull, and
    /// the latest time that may come (see `Config::join_follow_up_within`).
    join_follow_up: Option<(SocketAddr, Option<Time>)>,
    /// Follow-ups still allowed after one that brought news.
    join_follow_ups_left: u32,
    /// When our table last gained a member.
    last_growth: Time,
    /// Members sent to lately: most gossip targets come from them.
    warm: WarmPeers,
    outputs: VecDeque<Output>,
}

impl Engine {
    /// A member alone in its cluster, alive at incarnation 1, its timers
    /// staggered at random (seeded by `seed`) from `now`.
    pub fn new(
        config: Config,
        identity: Identity,
        seed: u64,
        now: Time,
    ) -> Result<Engine, IdentityError> {
        if identity.name.is_empty() {
            return Err(IdentityError::EmptyName);
        }
        if let Some(len) = identity
            .meta
            .as_ref()
            .map(Bytes::len)
            .filter(|l| *l > META_MAX_SIZE)
        {
            return Err(IdentityError::MetaTooLong { len });
        }
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let stagger = |rng: &mut Xoshiro256PlusPlus, d: Duration| {
            if d.is_zero() {
                d
            } else {
                Duration::from_nanos(rng.random_range(0..d.as_nanos().min(u64::MAX as u128) as u64))
            }
        };
        let next_probe = now + stagger(&mut rng, config.probe_interval);
        let next_gossip = now + stagger(&mut rng, config.gossip_interval);
        let next_push_pull =
            now + stagger(&mut rng, config.push_pull_interval) + config.push_pull_interval;
        let config_reconnect =
            stagger(&mut rng, config.reconnect_interval) + config.reconnect_interval;
        let me = Member {
            name: identity.name.clone(),
            addr: identity.addr,
            meta: identity.meta,
            incarnation: 1,
            state: NodeState::Alive,
            state_change: now,
            vsn: config.vsn(),
        };
        let mut engine = Engine {
            awareness: Awareness::new(config.awareness_max_multiplier),
            name: identity.name,
            members: members::Members::default(),
            seq_no: 0,
            broadcasts: BroadcastQueue::default(),
            user_broadcasts: BroadcastQueue::default(),
            user_state: Bytes::new(),
            suspicions: BTreeMap::new(),
            probes: BTreeMap::new(),
            current_probe: None,
            hinted: BTreeMap::new(),
            next_probe,
            relays: BTreeMap::new(),
            next_gossip,
            last_gossip: now,
            news_pending: true,
            next_push_pull,
            catch_up: None,
            next_reconnect: now + config_reconnect,
            follow_ups: Vec::new(),
            push_pulls: BTreeMap::new(),
            next_push_pull_id: 0,
            leaving: None,
            last_conflict_refute: None,
            last_late_tick: None,
            last_input: now,
            join_follow_up: None,
            join_follow_ups_left: 0,
            last_growth: now,
            warm: WarmPeers::default(),
            outputs: VecDeque::new(),
            config,
            rng,
        };
        // memberlist's setAlive: our row, and our alive queued for gossip.
        let alive = me.alive();
        engine.members.insert(me, &mut engine.rng);
        engine.queue_broadcast(alive.node.clone(), Message::Alive(alive), None);
        Ok(engine)
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// This member's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This member's own row.
    pub fn local_member(&self) -> &Member {
        self.members
            .get(&self.name)
            .expect("our own row is never removed")
    }

    /// Every row: alive, suspect, and dead or left members not yet
    /// forgotten (this member included).
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.iter()
    }

    /// How many rows [`members`](Self::members) has.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// The row of `name`.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.get(name)
    }

    /// Lifeguard's health score: 0 is healthy; timeouts scale by score + 1.
    pub fn health_score(&self) -> u32 {
        self.awareness.score()
    }

    /// True once [`Engine::leave`] was called.
    pub fn has_left(&self) -> bool {
        self.leaving.is_some()
    }

    /// Broadcasts queued for gossip (membership and user).
    pub fn queued_broadcasts(&self) -> usize {
        self.broadcasts.len() + self.user_broadcasts.len()
    }

    /// The next output, or `None` when there is nothing to do until another
    /// input or [`Engine::next_deadline`].
    pub fn poll_output(&mut self) -> Option<Output> {
        let output = self.outputs.pop_front()?;
        // What the shell sends now opens (or keeps) a connection to its
        // target: gossip prefers those (see `warm`). An answer (ack,
        // nack) does not count: between gossiphttp peers it rides back
        // in the response to the ping it answers.
        let sent_to = match &output {
            Output::Packet(p) if !p.is_answer() => p.node.as_deref().map(|n| (n, p.to)),
            Output::PushPull(req) => req.node.as_deref().map(|n| (n, req.to)),
            _ => None,
        };
        if let Some((name, to)) = sent_to {
            self.warm.sent(name, to, self.last_input);
        }
        Some(output)
    }

    /// Queues a user message for gossip (memberlist's delegate
    /// `GetBroadcasts`): it rides on packets after membership broadcasts,
    /// sent `retransmit_limit(n)` times.
    pub fn broadcast_user(&mut self, payload: Bytes) {
        self.user_broadcasts
            .push(None, Message::User(payload), None);
    }

    /// Queues a user message that is news about `about` (memberlist's
    /// `NamedBroadcast`, as ckit's node-state messages are): it replaces a
    /// queued user message about the same name, so only the newest news
    /// about a member keeps being gossiped.
    pub fn broadcast_user_about(&mut self, about: &str, payload: Bytes) {
        self.user_broadcasts
            .push(Some(about.to_owned()), Message::User(payload), None);
    }

    /// The user state sent in every push-pull (the delegate's `LocalState`).
    pub fn set_user_state(&mut self, state: Bytes) {
        self.user_state = state;
    }

    /// The user state set by [`Engine::set_user_state`].
    pub fn user_state(&self) -> Bytes {
        self.user_state.clone()
    }

    /// Handles one message of a decoded packet from `from` (the packet's
    /// source; acks go to a ping's source address when it names one).
    pub fn handle_message(&mut self, from: SocketAddr, message: Message, now: Time) {
        self.input_at(now);
        match message {
            Message::Ping(ping) => self.handle_ping(from, ping),
            Message::IndirectPing(ind) => self.handle_indirect_ping(from, ind, now),
            Message::Ack(ack) => self.handle_ack(ack.seq_no, now),
            Message::Nack(nack) => self.handle_nack(nack.seq_no, now),
            Message::Suspect(s) => self.suspect_node(s, now),
            Message::Alive(a) => self.alive_node(a, now, state::Trust::Heard),
            Message::Dead(d) => self.dead_node(d, now),
            Message::User(payload) => self.emit(Event::UserMessage(payload)),
            // An error reply belongs on a stream; in a packet it means nothing.
            Message::Err(_) => {}
        }
    }

    /// Answers a ping that came on a stream: the ack to write back, or
    /// `None` when the ping is for another member name.
    pub fn handle_stream_ping(&self, ping: &Ping) -> Option<Ack> {
        (ping.node.is_empty() || ping.node == self.name).then(|| Ack {
            seq_no: ping.seq_no,
            payload: None,
        })
    }

    /// Runs every timer due at `now`.
    pub fn tick(&mut self, now: Time) {
        self.notice_lateness(now);
        self.input_at(now);
        self.tick_probes(now);
        self.tick_relays(now);
        self.tick_suspicions(now);
        self.tick_gossip(now);
        self.tick_push_pull(now);
        self.tick_leave(now);
        if self.leaving.is_none() && self.current_probe.is_none() && now >= self.next_probe {
            self.start_probe(now);
        }
    }

    /// When [`Engine::tick`] next has something to do.
    pub fn next_deadline(&self) -> Option<Time> {
        let mut next = self.gossip_due();
        let mut at = |t: Time| next = Some(next.map_or(t, |n| n.min(t)));
        if self.leaving.is_none() && self.current_probe.is_none() {
            at(self.next_probe);
        }
        self.probes.values().for_each(|p| at(p.next_step()));
        self.relays.values().for_each(|r| at(r.deadline));
        self.suspicions.values().for_each(|s| at(s.deadline()));
        if self.leaving.is_none() {
            if !self.config.push_pull_interval.is_zero() {
                at(self.next_push_pull);
            }
            if let Some((t, _)) = self.catch_up {
                at(t);
            }
            if let Some((_, due)) = self.join_follow_up_due() {
                at(due);
            }
            if !self.config.reconnect_interval.is_zero() {
                at(self.next_reconnect);
            }
            self.follow_ups.iter().for_each(|(t, _, _)| at(*t));
        }
        self.push_pulls.values().for_each(|p| at(p.expires));
        if let Some(l) = &self.leaving {
            if !l.finished {
                at(l.deadline);
            }
        }
        next
    }

    /// A timer handled well past its deadline: we are starved, which is
    /// ill health of our own (see `Config::notice_late_ticks`). Lateness
    /// counts from the deadline or from our last input, whichever is
    /// later: news handled at an input can make a timer due at once (an
    /// early gossip round a while after the last), and the shell could
    /// not have run it before.
    fn notice_lateness(&mut self, now: Time) {
        if let Some(due) = self.next_deadline() {
            self.starved(now.since(due.max(self.last_input)), now);
        }
    }

    /// Notes that the shell called us at `now` (see `notice_lateness`).
    fn input_at(&mut self, now: Time) {
        self.last_input = self.last_input.max(now);
    }

    /// The transport says the peer at `addr` is likely gone: a connection
    /// to it ended in an error (a killed process resets its connections) or
    /// a connect to it failed. A hint, not a verdict: the live member at
    /// that address is probed now instead of in its turn, and only that
    /// probe's failure makes it suspect, so a wrong hint costs one probe.
    ///
    /// memberlist has no such input: a dead member waits for some member's
    /// round-robin to reach it, a second on average and several in the
    /// tail, before its suspicion even starts (`benches/RESULTS.md`).
    pub fn peer_unreachable(&mut self, addr: SocketAddr, now: Time) {
        self.input_at(now);
        self.probe_on_hint(addr, now);
    }

    /// An input handled `delay` after the shell received it (packets
    /// waiting behind others for this member's turn): the same ill health
    /// as a late timer, under the same rule (see `Config::notice_late_ticks`).
    /// A member whose inputs queue up is the slow one; without this it
    /// takes its own backlog of acks for silent peers.
    pub fn note_input_delay(&mut self, delay: std::time::Duration, now: Time) {
        self.input_at(now);
        self.starved(delay, now);
    }

    /// Lateness past the threshold raises the health score, at most once
    /// per probe interval; lateness alone takes it to half its ceiling at
    /// most: missed nacks and refutations still take it higher.
    fn starved(&mut self, lateness: std::time::Duration, now: Time) {
        let Some(threshold) = self.late_threshold() else {
            return;
        };
        let recently = self
            .last_late_tick
            .is_some_and(|t| now.since(t) < self.config.probe_interval);
        let cap = self.config.awareness_max_multiplier / 2;
        if lateness > threshold && !recently && self.awareness.score() < cap {
            self.last_late_tick = Some(now);
            self.awareness.apply(1);
        }
    }

    fn emit(&mut self, event: Event) {
        self.outputs.push_back(Output::Event(event));
    }

    fn member_event(&mut self, name: &str, change: MemberChange) {
        if let Some(member) = self.members.get(name) {
            let member = member.clone();
            self.emit(Event::Member { member, change });
        }
    }

    fn next_seq_no(&mut self) -> u32 {
        self.seq_no = self.seq_no.wrapping_add(1);
        self.seq_no
    }
}
