//! The node's event loop: the one owner of the memberlist engine and of
//! ckit's node-state table. Packets, streams' results, timers and commands
//! come in; the engine's outputs are carried out (packets through the
//! transport, streams in their own tasks) and a fresh membership view is
//! published.

use super::custom::{self, StateMap};
use super::streams::{self, StreamSettings};
use super::view::Publisher;
use super::{NodeOptions, StateUpdate};
use crate::ckit::message::{LocalState, State};
use crate::ckit::peer::NodeState as CkitState;
use crate::ckit::states::{NodeStates, PushPullState};
use crate::discovery::Discovery;
use crate::memberlist::engine::{Engine, Event, MemberChange, Output, PushPullFailed, Time};
use crate::memberlist::message::{Ack, Dead, Message, NodeState, Ping, PushPull};
use crate::memberlist::packet::{
    decode_packet, encode_packet_parts, encode_packets, PacketOptions,
};
use crate::{Error, Packet, Transport};
use bytes::Bytes;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;
use tokio::sync::{broadcast, mpsc, oneshot};

/// At most this many packets already received are read before a timer is
/// handled (bounded so that timers still run while a flood arrives).
const READ_BEFORE_TICK: usize = 256;

pub(crate) enum Command {
    SetState {
        key: String,
        value: Bytes,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    SetCkitState {
        state: CkitState,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    InboundPushPull {
        remote: PushPull,
        reply: oneshot::Sender<PushPull>,
    },
    InboundPing {
        ping: Ping,
        reply: oneshot::Sender<Option<Ack>>,
    },
    InboundUser(Bytes),
    Resolved(Vec<SocketAddr>),
    Leave {
        reply: oneshot::Sender<()>,
    },
    /// The leave's direct goodbyes were answered, or ran out of time.
    FarewellSent,
}

/// How a stream task the engine asked for ended.
pub(crate) enum Done {
    PushPull {
        id: u64,
        result: Result<PushPull, PushPullFailed>,
    },
    StreamPing {
        seq_no: u32,
        contacted: bool,
    },
}

/// What the node shares with its handle ([`super::Node`]).
#[derive(Default)]
pub(crate) struct Shared {
    /// Every member's custom state, as their metadata says.
    pub state: Mutex<BTreeMap<String, (u64, StateMap)>>,
    /// Made by the first [`Node::subscribe`](super::Node::subscribe): a
    /// broadcast channel allocates and writes all its slots up front (115 KB
    /// for 1024), which 500 members in one process paid 500 times for
    /// nothing. A subscriber hears only updates sent after it subscribed
    /// either way.
    pub updates: OnceLock<broadcast::Sender<StateUpdate>>,
}

impl Shared {
    /// How many updates a subscriber may fall behind before it misses some.
    pub const UPDATES_CAPACITY: usize = 1024;
}

pub(crate) struct Actor {
    pub engine: Engine,
    pub ckit: NodeStates,
    /// The ckit version last published (`dirty` was set for it).
    pub ckit_version: u64,
    /// The ckit version the engine's user state was encoded from.
    pub user_state_version: u64,
    pub own_state: StateMap,
    pub shared: Arc<Shared>,
    pub transport: Transport,
    pub options: NodeOptions,
    pub discovery: Option<Discovery>,
    pub settings: StreamSettings,
    pub origin: Instant,
    pub commands: mpsc::UnboundedReceiver<Command>,
    pub self_commands: mpsc::UnboundedSender<Command>,
    pub done_tx: mpsc::UnboundedSender<Done>,
    pub done_rx: mpsc::UnboundedReceiver<Done>,
    pub publisher: Publisher,
    pub leaving: Option<oneshot::Sender<()>>,
    pub resolving: bool,
    /// When the join list was last resolved (see `maybe_rejoin`).
    pub last_resolved: Option<Instant>,
    pub dirty: bool,
}

impl Actor {
    fn now(&self) -> Time {
        Time::from_origin(self.origin.elapsed())
    }

    fn allowed(&self, addr: &SocketAddr) -> bool {
        self.options
            .outgoing_filter
            .as_ref()
            .is_none_or(|f| f(&addr.to_string()))
    }

    pub(crate) async fn run(mut self) {
        let mut packets = self.transport.packets();
        tokio::spawn(streams::accept_all(
            self.transport.streams(),
            self.settings.clone(),
            self.self_commands.clone(),
        ));
        let mut lost_peers = self.transport.lost_peers();
        let mut hearing_lost_peers = true;
        let mut rejoin = tokio::time::interval(self.options.rejoin_interval);
        rejoin.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.announce_ckit_state();
        self.publish();
        loop {
            self.drain();
            let publish_at = self
                .dirty
                .then(|| self.publisher.due(self.engine.member_count()));
            if publish_at.is_some_and(|at| at <= Instant::now()) {
                self.publish();
                continue;
            }
            let deadline = self
                .engine
                .next_deadline()
                .map(|t| self.origin + t.since_origin())
                .unwrap_or_else(|| Instant::now() + std::time::Duration::from_secs(1));
            tokio::select! {
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => self.command(cmd),
                    None => return,
                },
                Some(done) = self.done_rx.recv() => {
                    let now = self.now();
                    match done {
                        Done::PushPull { id, result } => self.engine.push_pull_result(id, result, now),
                        Done::StreamPing { seq_no, contacted } => {
                            self.engine.stream_ping_result(seq_no, contacted, now)
                        }
                    }
                }
                packet = packets.recv() => match packet {
                    Some(packet) => self.packet(packet),
                    None => return,
                },
                _ = tokio::time::sleep_until(deadline.into()) => {
                    // What arrived before the deadline is read before the
                    // deadline is judged: an ack waiting behind other
                    // packets is not a silent peer.
                    for _ in 0..READ_BEFORE_TICK {
                        match packets.try_recv() {
                            Some(packet) => self.packet(packet),
                            None => break,
                        }
                    }
                    let now = self.now();
                    self.engine.tick(now);
                }
                lost = lost_peers.recv(), if hearing_lost_peers => match lost {
                    Ok(peer) => self.peer_lost(&peer),
                    // Missed hints only leave their peers to their turn.
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => hearing_lost_peers = false,
                },
                _ = rejoin.tick() => self.maybe_rejoin(),
                _ = tokio::time::sleep_until(publish_at.unwrap_or(deadline).into()), if publish_at.is_some() => {}
            }
            if self
                .leaving
                .as_ref()
                .is_some_and(|_| self.engine.has_left())
            {
                // Keep going until LeaveFinished (see `event`).
            }
        }
    }

    fn packet(&mut self, packet: Packet) {
        match decode_packet(&packet.payload, &self.settings.policy) {
            Ok(decoded) => {
                for problem in &decoded.problems {
                    tracing::debug!(from = %packet.from, error = %problem, "part of a packet ignored");
                }
                let now = self.now();
                self.engine
                    .note_input_delay(packet.received_at.elapsed(), now);
                for message in decoded.messages {
                    self.engine.handle_message(packet.from, message, now);
                }
            }
            Err(e) if e.is_label_refusal() => {
                self.settings
                    .label_warnings
                    .refused(packet.from, "a packet", &e)
            }
            Err(e) => tracing::debug!(from = %packet.from, error = %e, "packet refused"),
        }
    }

    /// The transport found the peer at `authority` gone (a failed
    /// connect, a connection reset): the engine probes the member there now
    /// rather than in its turn.
    fn peer_lost(&mut self, authority: &str) {
        if let Ok(addr) = authority.parse::<SocketAddr>() {
            let now = self.now();
            self.engine.peer_unreachable(addr, now);
        }
    }

    /// Resolves the join list again, to join through what it lists now
    /// (see `Command::Resolved`): at every tick while alone (no other live
    /// member), every `rediscover_interval` otherwise.
    fn maybe_rejoin(&mut self) {
        let Some(discovery) = self.discovery.clone() else {
            return;
        };
        let every = self.options.rediscover_interval;
        let due = self.alone()
            || (!every.is_zero() && self.last_resolved.is_none_or(|at| at.elapsed() >= every));
        if !due || self.resolving || self.leaving.is_some() {
            return;
        }
        self.resolving = true;
        self.last_resolved = Some(Instant::now());
        let commands = self.self_commands.clone();
        tokio::spawn(async move {
            let resolved = discovery.resolve().await;
            for failure in &resolved.failures {
                tracing::warn!(error = %failure, "join entry not resolved");
            }
            let _ = commands.send(Command::Resolved(resolved.addrs));
        });
    }

    /// No other member is alive.
    fn alone(&self) -> bool {
        !self
            .engine
            .members()
            .any(|m| m.name != self.options.name && m.state == NodeState::Alive)
    }

    fn command(&mut self, cmd: Command) {
        let now = self.now();
        match cmd {
            Command::SetState { key, value, reply } => {
                let mut next = self.own_state.clone();
                next.insert(key, value);
                let result = custom::encode(&next).map(|meta| {
                    self.own_state = next;
                    self.engine.set_meta(meta, now);
                });
                let _ = reply.send(result);
            }
            Command::SetCkitState { state, reply } => {
                let result = self
                    .ckit
                    .change_state(state)
                    .map(|message| self.gossip_ckit(&message))
                    .map_err(|e| Error::Config(e.to_string()));
                let _ = reply.send(result);
            }
            Command::InboundPushPull { remote, reply } => {
                self.refresh_user_state();
                let ours = self.engine.handle_push_pull(remote, now);
                let _ = reply.send(ours);
            }
            Command::InboundPing { ping, reply } => {
                let _ = reply.send(self.engine.handle_stream_ping(&ping));
            }
            Command::InboundUser(payload) => self.user_message(payload),
            Command::Resolved(addrs) => {
                self.resolving = false;
                // Addresses a live member has are in the cluster already:
                // once the join list is all members, rediscovery sends
                // nothing.
                let members: HashSet<SocketAddr> = self
                    .engine
                    .members()
                    .filter(|m| matches!(m.state, NodeState::Alive | NodeState::Suspect))
                    .map(|m| m.addr)
                    .collect();
                let addrs: Vec<SocketAddr> =
                    addrs.into_iter().filter(|a| !members.contains(a)).collect();
                if !addrs.is_empty() && self.leaving.is_none() {
                    tracing::debug!(?addrs, "joining");
                    self.engine.join(&addrs, now);
                }
            }
            Command::Leave { reply } => {
                if self.leaving.is_none() {
                    // ckit's last word: no longer an owner for writes.
                    if self.ckit.current_state() == CkitState::Participant {
                        if let Ok(message) = self.ckit.change_state(CkitState::Terminating) {
                            self.gossip_ckit(&message);
                        }
                    }
                    self.engine.leave(self.options.leave_timeout, now);
                    self.farewell();
                }
                self.leaving = Some(reply);
            }
            // The leave is over once every member was told directly (or
            // the deadline passed); the engine's gossip of it may go on
            // until the transport stops.
            Command::FarewellSent => {
                if let Some(reply) = self.leaving.take() {
                    let _ = reply.send(());
                }
            }
        }
    }

    /// Sends our leave (memberlist's dead message about ourselves, which
    /// others record as left) to every member not gone, all at once,
    /// bounded by the leave timeout (see [`streams::farewell`]).
    fn farewell(&mut self) {
        let me = self.engine.local_member();
        let dead = Message::Dead(Dead {
            incarnation: me.incarnation,
            node: me.name.clone(),
            from: me.name.clone(),
        });
        let targets: Vec<SocketAddr> = self
            .engine
            .members()
            .filter(|m| m.name != self.options.name)
            .filter(|m| matches!(m.state, NodeState::Alive | NodeState::Suspect))
            .map(|m| m.addr)
            .filter(|addr| self.allowed(addr))
            .collect();
        let options = PacketOptions {
            label: &self.options.label,
            crc: false,
            compress: self.settings.compress,
        };
        let payloads = match encode_packets(&[dead], &options) {
            Ok(payloads) => payloads,
            Err(e) => {
                tracing::warn!(error = %e, "leave not encoded");
                Vec::new()
            }
        };
        // Pooled connections count against the transport's allowance; a
        // busy member may have none free for the goodbyes otherwise.
        self.transport.release_connections();
        tokio::spawn(streams::farewell(
            self.transport.clone(),
            payloads,
            targets,
            self.options.leave_timeout,
            self.self_commands.clone(),
        ));
    }

    /// Carries out everything the engine asked for.
    fn drain(&mut self) {
        while let Some(output) = self.engine.poll_output() {
            match output {
                Output::Packet(packet) => {
                    if !self.allowed(&packet.to) {
                        continue;
                    }
                    let options = PacketOptions {
                        label: &self.options.label,
                        crc: packet.crc,
                        compress: self.settings.compress,
                    };
                    match encode_packet_parts(&packet.messages, &options) {
                        Ok(bytes) => {
                            let to = packet.to.to_string();
                            let mut awaits_answer = packet.awaits_answer();
                            for payload in bytes {
                                let queued = if std::mem::take(&mut awaits_answer) {
                                    self.transport.write_to_awaiting_answer(payload, &to)
                                } else {
                                    self.transport.write_to(payload, &to)
                                };
                                if let Err(e) = queued {
                                    tracing::debug!(peer = %to, error = %e, "packet not queued");
                                }
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "packet not encoded"),
                    }
                }
                Output::PushPull(request) => {
                    if !self.allowed(&request.to) {
                        let failed = PushPullFailed {
                            reason: "blocked by the outgoing filter".into(),
                        };
                        let _ = self.done_tx.send(Done::PushPull {
                            id: request.id,
                            result: Err(failed),
                        });
                        continue;
                    }
                    let mut request = request;
                    request.state.user_state = self.refresh_user_state();
                    tokio::spawn(streams::push_pull(
                        self.transport.clone(),
                        self.settings.clone(),
                        request,
                        self.done_tx.clone(),
                    ));
                }
                Output::StreamPing(request) => {
                    let timeout = request.deadline.since(self.now());
                    if !self.allowed(&request.to) {
                        let _ = self.done_tx.send(Done::StreamPing {
                            seq_no: request.ping.seq_no,
                            contacted: false,
                        });
                        continue;
                    }
                    tokio::spawn(streams::ping(
                        self.transport.clone(),
                        self.settings.clone(),
                        request,
                        timeout,
                        self.done_tx.clone(),
                    ));
                }
                Output::Event(event) => self.event(event),
            }
        }
        if self.ckit.version() != self.ckit_version {
            self.ckit_version = self.ckit.version();
            self.dirty = true;
        }
    }

    /// The user state a push-pull carries (ckit's `LocalState`), encoded
    /// when a push-pull needs it and the states changed since: not on each
    /// change. In a join wave a member's states change with every join
    /// and it push-pulls a handful of times; re-encoded on every change,
    /// the 500 entries among 500 members were about 2% of the process's
    /// CPU (`benches/RESULTS.md`).
    fn refresh_user_state(&mut self) -> Bytes {
        if self.ckit.version() != self.user_state_version {
            self.user_state_version = self.ckit.version();
            let state = LocalState::from(&self.ckit.push_pull_state()).encode();
            self.engine.set_user_state(Bytes::from(state));
        }
        self.engine.user_state()
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Member { member, change } => {
                self.dirty = true;
                let addr = member.addr.to_string();
                match change {
                    MemberChange::Joined | MemberChange::Updated | MemberChange::Alive => {
                        self.ckit.member_joined(&member.name, &addr);
                        self.learn_state(&member.name, member.incarnation, member.meta.as_ref());
                    }
                    MemberChange::Dead | MemberChange::Left | MemberChange::Removed => {
                        if member.name != self.options.name {
                            self.ckit.member_left(&member.name);
                        }
                    }
                    MemberChange::Suspect => {}
                }
                match change {
                    MemberChange::Joined => {
                        tracing::info!(member = %member.name, %addr, "member joined")
                    }
                    MemberChange::Dead => tracing::info!(member = %member.name, "member dead"),
                    MemberChange::Left if member.name == self.options.name => {
                        tracing::info!("left the cluster")
                    }
                    MemberChange::Left => tracing::info!(member = %member.name, "member left"),
                    MemberChange::Suspect => {
                        tracing::debug!(member = %member.name, "member suspect")
                    }
                    _ => {}
                }
            }
            Event::UserMessage(payload) => self.user_message(payload),
            Event::RemoteState { state, .. } => {
                match LocalState::decode(&state).map(PushPullState::from) {
                    Ok(remote) => {
                        for news in self.ckit.merge_push_pull_state(remote) {
                            self.gossip_ckit(&news);
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "remote user state ignored"),
                }
            }
            Event::JoinResult { addr, ok } => {
                if ok {
                    tracing::info!(%addr, "joined through");
                } else {
                    tracing::debug!(%addr, "join attempt failed");
                }
            }
            Event::VersionsRefused { peer, error } => match peer {
                Some(peer) => tracing::warn!(%peer, %error, "push-pull refused"),
                None => tracing::warn!(%error, "inbound push-pull refused"),
            },
            Event::LeaveFinished { timed_out } => {
                // The direct goodbyes (`farewell`) decide when the leave
                // ends; this is gossip's part of it.
                tracing::debug!(timed_out, "leave: gossip of it finished");
            }
        }
    }

    /// A user message: ckit's node-state gossip.
    fn user_message(&mut self, payload: Bytes) {
        match State::decode(&payload) {
            Ok(message) => {
                if let Some(news) = self.ckit.apply_message(message) {
                    self.gossip_ckit(&news);
                }
            }
            Err(e) => tracing::debug!(error = %e, "user message ignored"),
        }
    }

    /// News about one node replaces queued news about it, as ckit's named
    /// broadcasts do: only its newest state keeps being gossiped.
    fn gossip_ckit(&mut self, message: &crate::ckit::states::StateMessage) {
        self.engine
            .broadcast_user_about(&message.node_name, Bytes::from(message.encode()));
        self.dirty = true;
    }

    fn announce_ckit_state(&mut self) {
        let me = self.options.name.clone();
        let addr = self.engine.local_member().addr.to_string();
        self.ckit.member_joined(&me, &addr);
        if self.options.ckit_state != CkitState::Viewer {
            if let Ok(message) = self.ckit.change_state(CkitState::Participant) {
                self.gossip_ckit(&message);
            }
        }
    }

    /// Records a member's custom state from its metadata; what changed goes
    /// to subscribers.
    fn learn_state(&mut self, name: &str, incarnation: u32, meta: Option<&Bytes>) {
        let state = custom::decode(meta);
        let mut all = self.shared.state.lock().unwrap();
        let previous = all.get(name).map(|(_, s)| s.clone()).unwrap_or_default();
        let version = u64::from(incarnation);
        for (key, value) in &state {
            if previous.get(key) != Some(value) {
                if let Some(updates) = self.shared.updates.get() {
                    let _ = updates.send(StateUpdate {
                        origin: name.to_string(),
                        key: key.clone(),
                        version,
                        value: value.clone(),
                    });
                }
            }
        }
        all.insert(name.to_string(), (version, state));
    }

    /// Publishes the membership table and the gauges.
    fn publish(&mut self) {
        self.dirty = false;
        let ckit_states = self
            .ckit
            .peers_by_name()
            .map(|p| (p.name.as_str(), p.state.as_str()));
        self.publisher
            .publish(self.engine.members(), &self.options.name, ckit_states);
    }
}
