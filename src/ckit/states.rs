//! The node-state table a ckit node keeps (Go's `ckit.Node` with its
//! `nodeDelegate`): who is in the cluster, the state each one announced and
//! when, and the node's own state and lamport clock.
//!
//! It is driven by what memberlist reports and what peers send, and answers
//! with what to gossip; it sends nothing itself and reads no clock:
//!
//! | input (Go's delegate method) | method | output |
//! |---|---|---|
//! | `NotifyJoin` / `NotifyUpdate` | [`NodeStates::member_joined`] / [`NodeStates::member_updated`] | the peer view changed |
//! | `NotifyLeave` (dead or left) | [`NodeStates::member_left`] | the peer view changed |
//! | `NotifyMsg` with a State message | [`NodeStates::apply_message`] | a message to gossip on |
//! | `LocalState` (push-pull) | [`NodeStates::push_pull_state`] | the user state to send |
//! | `MergeRemoteState` (push-pull) | [`NodeStates::merge_push_pull_state`] | messages to gossip |
//! | `Node.ChangeState` | [`NodeStates::change_state`] | the message to gossip |
//!
//! # Which message wins
//!
//! Every received time is first observed by the clock. A message about a
//! node is ignored when a message about that node is already stored with the
//! same or a later time, except a message about this node with the same time
//! and a different state (two lives of this node picked the same time). A
//! message about this node that is not ignored is a peer's memory of an
//! earlier life of this node (a restart): it is replaced by this node's real
//! state at a fresh tick, and that is what gets stored and gossiped.
//!
//! A State message about a name memberlist has not reported yet is kept, so
//! the state applies when the member joins (its gossip can overtake the
//! join). Unlike Go, which keeps such entries without a bound until that
//! name leaves, at most [`MAX_PENDING_STATES`] are kept: past that a message
//! about yet another unknown name is ignored, so a peer cannot grow the
//! table without end. Push-pull merges skip names that are not members, as
//! Go does.

use std::collections::BTreeMap;

use super::lamport::{Clock, Time};
use super::peer::{NodeState, Peer, StateTransitionError};

/// How many State messages about names that are not (yet) members the table
/// keeps. A cluster's gossip legitimately runs ahead of memberlist's join
/// by a few members; thousands of unknown names are a misbehaving peer.
pub const MAX_PENDING_STATES: usize = 4096;

/// A node's announced state at a lamport time: ckit's State message
/// (`NodeName`, `NewState`, `Time`), as [`message::State`](super::message::State) encodes it.
pub use super::message::State as StateMessage;

/// The user state of a push-pull exchange (Go's `localState`): the sender's
/// clock and one State per member it knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushPullState {
    /// The sender's lamport time.
    pub current_time: Time,
    /// One entry per member of the sender's view; a member it has no message
    /// about is listed as a viewer at time 0.
    pub node_states: Vec<StateMessage>,
}

/// A state and the time it was announced at, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    state: NodeState,
    time: Time,
}

/// A member memberlist reported, with the time of the state message its
/// state came from (`None`: none seen, it is a viewer).
#[derive(Debug, Clone)]
struct Member {
    peer: Peer,
    time: Option<Time>,
}

impl Member {
    fn stamp(&self) -> Option<Stamp> {
        self.time.map(|time| Stamp {
            state: self.peer.state,
            time,
        })
    }
}

/// The node-state table of one ckit node. See the module documentation for
/// the rules it applies.
#[derive(Debug, Clone)]
pub struct NodeStates {
    self_name: String,
    local: NodeState,
    clock: Clock,
    members: BTreeMap<String, Member>,
    /// Messages about names that are not members (yet). This node's own
    /// entry lives here until memberlist reports it, and is exempt from
    /// [`MAX_PENDING_STATES`].
    pending: BTreeMap<String, Stamp>,
    version: u64,
}

impl NodeStates {
    /// The table of a node named `self_name`: a viewer at lamport time 0 with
    /// no members, as every ckit node starts.
    pub fn new(self_name: impl Into<String>) -> Self {
        Self {
            self_name: self_name.into(),
            local: NodeState::Viewer,
            clock: Clock::new(),
            members: BTreeMap::new(),
            pending: BTreeMap::new(),
            version: 0,
        }
    }

    /// This node's name.
    pub fn self_name(&self) -> &str {
        &self.self_name
    }

    /// This node's own state (Go's `Node.CurrentState`).
    pub fn current_state(&self) -> NodeState {
        self.local
    }

    /// This node's lamport time.
    pub fn now(&self) -> Time {
        self.clock.now()
    }

    /// Counts changes of the peer view (a member added, removed, readdressed
    /// or in a new state): when it moved, hand [`peers`](Self::peers) to the
    /// sharder and to observers.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The members, sorted by name, each with its last known state (Go's
    /// `Node.Peers`).
    pub fn peers(&self) -> Vec<Peer> {
        self.peers_by_name().cloned().collect()
    }

    /// The members, sorted by name, without copying them.
    pub fn peers_by_name(&self) -> impl Iterator<Item = &Peer> {
        self.members.values().map(|m| &m.peer)
    }

    /// The member named `name`, if memberlist reported it.
    pub fn peer(&self, name: &str) -> Option<&Peer> {
        self.members.get(name).map(|m| &m.peer)
    }

    /// Changes this node's state (Go's `Node.ChangeState`): refused unless
    /// ckit allows the step (see [`NodeState::can_change_to`]); otherwise
    /// stamped with a clock tick, stored, and returned to be gossiped.
    pub fn change_state(&mut self, to: NodeState) -> Result<StateMessage, StateTransitionError> {
        self.local = self.local.change_to(to)?;
        let message = self.own_message();
        self.store(&message);
        Ok(message)
    }

    /// Applies a State message a peer gossiped (Go's `NotifyMsg`). Returns
    /// the message to gossip on when it was news, `None` when it was ignored
    /// (see the module documentation for which message wins). A message
    /// about this node comes back as this node's own state at a fresh tick.
    pub fn apply_message(&mut self, message: StateMessage) -> Option<StateMessage> {
        self.clock.observe(message.time);
        let message = self.winner(message)?;
        let is_member_or_self =
            message.node_name == self.self_name || self.members.contains_key(&message.node_name);
        if !is_member_or_self
            && !self.pending.contains_key(&message.node_name)
            && self.pending_others() >= MAX_PENDING_STATES
        {
            return None;
        }
        self.store(&message);
        Some(message)
    }

    /// The user state this node sends in a push-pull (Go's `LocalState`):
    /// its clock and one entry per member, sorted by name (Go's order is its
    /// map's, unspecified).
    pub fn push_pull_state(&self) -> PushPullState {
        let node_states = self
            .members
            .iter()
            .map(|(name, member)| {
                let stamp = member.stamp().unwrap_or(Stamp {
                    state: NodeState::Viewer,
                    time: 0,
                });
                StateMessage::new(name.clone(), stamp.state, stamp.time)
            })
            .collect();
        PushPullState {
            current_time: self.clock.now(),
            node_states,
        }
    }

    /// Merges the user state a peer sent in a push-pull (Go's
    /// `MergeRemoteState`): its clock is observed, entries about names that
    /// are not members are skipped, the others are applied by the same rule
    /// as [`apply_message`](Self::apply_message). Returns the messages that
    /// were news, to gossip.
    pub fn merge_push_pull_state(&mut self, remote: PushPullState) -> Vec<StateMessage> {
        self.clock.observe(remote.current_time);
        let mut news = Vec::new();
        for message in remote.node_states {
            // One lookup per row: a push-pull among 500 members has 500.
            let Some(member) = self.members.get(&message.node_name) else {
                continue;
            };
            let stored = member.stamp();
            if let Some(message) = self.winner_over(message, stored) {
                self.store(&message);
                news.push(message);
            }
        }
        news
    }

    /// memberlist reported a new member (Go's `NotifyJoin`): it takes the
    /// state already learned about its name, or viewer.
    pub fn member_joined(&mut self, name: &str, addr: &str) {
        self.upsert_member(name, addr);
    }

    /// memberlist reported a member's new address or metadata (Go's
    /// `NotifyUpdate`); handled as a join.
    pub fn member_updated(&mut self, name: &str, addr: &str) {
        self.upsert_member(name, addr);
    }

    /// memberlist reported a member dead or left (Go's `NotifyLeave`; there
    /// is no event for suspect, a suspect member stays): the member and the
    /// state stored about it are forgotten. This node's own state is kept,
    /// unlike Go, so a node that sees itself leave still knows what it
    /// announced.
    pub fn member_left(&mut self, name: &str) {
        let removed = self.members.remove(name);
        if name == self.self_name {
            if let Some(stamp) = removed.as_ref().and_then(Member::stamp) {
                self.pending.insert(name.to_owned(), stamp);
            }
        } else {
            self.pending.remove(name);
        }
        if removed.is_some() {
            self.peers_changed();
        }
    }

    /// The message to store for `message` by the rules, or `None` when the
    /// stored one wins. The clock has already observed `message.time`.
    fn winner(&mut self, message: StateMessage) -> Option<StateMessage> {
        let stored = self.stamp_of(&message.node_name);
        self.winner_over(message, stored)
    }

    /// [`winner`](Self::winner), given the stamp stored about the node.
    fn winner_over(
        &mut self,
        message: StateMessage,
        stored: Option<Stamp>,
    ) -> Option<StateMessage> {
        let about_self = message.node_name == self.self_name;
        if let Some(stored) = stored {
            // Two lives of this node that picked the same time disagree:
            // settle it with a fresh message instead of keeping either.
            let same_time_conflict =
                about_self && message.time == stored.time && message.new_state != stored.state;
            if message.time <= stored.time && !same_time_conflict {
                return None;
            }
        }
        Some(if about_self {
            self.own_message()
        } else {
            message
        })
    }

    /// This node's state at a fresh tick.
    fn own_message(&mut self) -> StateMessage {
        StateMessage::new(self.self_name.clone(), self.local, self.clock.tick())
    }

    fn stamp_of(&self, name: &str) -> Option<Stamp> {
        match self.members.get(name) {
            Some(member) => member.stamp(),
            None => self.pending.get(name).copied(),
        }
    }

    /// Stores `message` as the latest about its node (Go's
    /// `storePeerState`): on the member when there is one, else pending.
    fn store(&mut self, message: &StateMessage) {
        let stamp = Stamp {
            state: message.new_state,
            time: message.time,
        };
        match self.members.get_mut(&message.node_name) {
            Some(member) => {
                let changed = member.peer.state != stamp.state;
                member.peer.state = stamp.state;
                member.time = Some(stamp.time);
                if changed {
                    self.peers_changed();
                }
            }
            None => {
                self.pending.insert(message.node_name.clone(), stamp);
            }
        }
    }

    fn upsert_member(&mut self, name: &str, addr: &str) {
        if let Some(member) = self.members.get_mut(name) {
            // Known: its state and time stay; only the address can change.
            // memberlist reports a member on each refutation and update;
            // among 500 members joining in one process, building and
            // inserting a fresh row each time was 2% of the CPU.
            if member.peer.addr != addr {
                member.peer.addr = addr.to_owned();
                self.peers_changed();
            }
            return;
        }
        // New: it takes the state already learned about its name.
        let stamp = self.pending.remove(name);
        let peer = Peer {
            name: name.to_owned(),
            addr: addr.to_owned(),
            is_self: name == self.self_name,
            state: stamp.map_or(NodeState::Viewer, |s| s.state),
        };
        let member = Member {
            peer,
            time: stamp.map(|s| s.time),
        };
        self.members.insert(name.to_owned(), member);
        self.peers_changed();
    }

    fn peers_changed(&mut self) {
        // Wrapping: a counter compared for change, never for order.
        self.version = self.version.wrapping_add(1);
    }

    /// Pending entries that count against [`MAX_PENDING_STATES`]: all but
    /// this node's own.
    fn pending_others(&self) -> usize {
        self.pending.len() - usize::from(self.pending.contains_key(&self.self_name))
    }
}

#[cfg(test)]
mod tests;
