//! ckit's node states (Go's `peer.State`) and the peers a node sees (Go's
//! `peer.Peer`).
//!
//! A node announces one of three states. Every node starts as a
//! [`NodeState::Viewer`]; ckit allows exactly two changes, one step at a time
//! and never back:
//!
//! ```text
//! viewer -> participant -> terminating
//! ```
//!
//! Anything else (staying in the same state, skipping participant, going
//! back) is refused with a [`StateTransitionError`], as Go's
//! `Node.ChangeState` refuses it.

use std::fmt;
use std::str::FromStr;

/// The state a ckit node announces to the cluster (Go's `peer.State`, a
/// `uint` on the wire: viewer 0, participant 1, terminating 2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum NodeState {
    /// The default: sees the cluster, never owns a key.
    #[default]
    Viewer = 0,
    /// Takes reads and writes: an owner for both lookup ops.
    Participant = 1,
    /// A participant shutting down: still an owner for reads, no longer for
    /// writes.
    Terminating = 2,
}

impl NodeState {
    /// The state's name as ckit prints it (`viewer`, `participant`,
    /// `terminating`).
    pub const fn as_str(self) -> &'static str {
        match self {
            NodeState::Viewer => "viewer",
            NodeState::Participant => "participant",
            NodeState::Terminating => "terminating",
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ckit's rules about states.
impl NodeState {
    /// Every state, in wire order.
    pub const ALL: [NodeState; 3] = [
        NodeState::Viewer,
        NodeState::Participant,
        NodeState::Terminating,
    ];

    /// The state's number on the wire (Go's `peer.State` value).
    pub const fn value(self) -> u8 {
        self as u8
    }

    /// Whether ckit lets a node go from `self` to `to`: only viewer ->
    /// participant and participant -> terminating.
    pub const fn can_change_to(self, to: NodeState) -> bool {
        matches!(
            (self, to),
            (NodeState::Viewer, NodeState::Participant)
                | (NodeState::Participant, NodeState::Terminating)
        )
    }

    /// `to` when ckit allows the change from `self` (see
    /// [`can_change_to`](Self::can_change_to)), otherwise the refusal.
    pub fn change_to(self, to: NodeState) -> Result<NodeState, StateTransitionError> {
        if self.can_change_to(to) {
            Ok(to)
        } else {
            Err(StateTransitionError { from: self, to })
        }
    }
}

impl TryFrom<u64> for NodeState {
    type Error = UnknownNodeState;

    /// The state with wire number `value`. Go's `peer.State` is an open
    /// `uint`, but ckit defines only 0, 1 and 2; any other number is refused
    /// here rather than carried around as a state no one can act on.
    fn try_from(value: u64) -> Result<Self, Self::Error> {
        match value {
            0 => Ok(NodeState::Viewer),
            1 => Ok(NodeState::Participant),
            2 => Ok(NodeState::Terminating),
            other => Err(UnknownNodeState::Number(other)),
        }
    }
}

impl FromStr for NodeState {
    type Err = UnknownNodeState;

    /// Parses a state's name as ckit prints it (and as its JSON carries it).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        NodeState::ALL
            .into_iter()
            .find(|state| state.as_str() == name)
            .ok_or_else(|| UnknownNodeState::Name(name.to_owned()))
    }
}

/// A state number or name that is none of ckit's three states.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownNodeState {
    /// A number other than 0, 1 or 2 (from a peer's message).
    #[error(
        "unknown node state {0}: ckit's states are viewer (0), participant (1) and \
         terminating (2); the peer runs a ckit this crate does not know"
    )]
    Number(u64),
    /// A name other than `viewer`, `participant` or `terminating`.
    #[error("unknown node state {0:?}: use viewer, participant or terminating")]
    Name(String),
}

/// A state change ckit refuses (Go's `StateTransitionError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid transition from {from} to {to}: a node goes viewer -> participant -> \
     terminating, one step at a time and never back"
)]
pub struct StateTransitionError {
    /// The node's state when the change was asked.
    pub from: NodeState,
    /// The state asked for.
    pub to: NodeState,
}

/// A member of the cluster as a ckit node sees it (Go's `peer.Peer`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Peer {
    /// The node's name, unique in the cluster (memberlist's node name).
    pub name: String,
    /// The node's `host:port` address (memberlist's `Node.Address()`).
    pub addr: String,
    /// Whether this is the local node.
    pub is_self: bool,
    /// The node's state as last learned (viewer until a state message about
    /// it arrives).
    pub state: NodeState,
}

impl Peer {
    /// A peer in `state`, not the local node.
    pub fn new(name: impl Into<String>, addr: impl Into<String>, state: NodeState) -> Self {
        Self {
            name: name.into(),
            addr: addr.into(),
            is_self: false,
            state,
        }
    }
}

impl fmt::Display for Peer {
    /// The peer's name, as Go's `Peer.String`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_viewer_to_participant_and_participant_to_terminating_are_allowed() {
        for from in NodeState::ALL {
            for to in NodeState::ALL {
                let allowed = matches!(
                    (from, to),
                    (NodeState::Viewer, NodeState::Participant)
                        | (NodeState::Participant, NodeState::Terminating)
                );
                assert_eq!(from.can_change_to(to), allowed, "{from} -> {to}");
                match from.change_to(to) {
                    Ok(state) => assert!(allowed && state == to),
                    Err(refused) => {
                        assert!(!allowed);
                        assert_eq!(refused, StateTransitionError { from, to });
                    }
                }
            }
        }
    }

    #[test]
    fn refusal_names_both_states() {
        let refused = NodeState::Terminating
            .change_to(NodeState::Participant)
            .unwrap_err();
        assert!(refused
            .to_string()
            .starts_with("invalid transition from terminating to participant"));
    }

    #[test]
    fn wire_numbers_and_names_round_trip() {
        for (number, state) in [
            (0, NodeState::Viewer),
            (1, NodeState::Participant),
            (2, NodeState::Terminating),
        ] {
            assert_eq!(NodeState::try_from(number), Ok(state));
            assert_eq!(u64::from(state.value()), number);
            assert_eq!(state.as_str().parse::<NodeState>(), Ok(state));
        }
        assert_eq!(NodeState::try_from(3), Err(UnknownNodeState::Number(3)));
        assert_eq!(
            NodeState::try_from(u64::MAX),
            Err(UnknownNodeState::Number(u64::MAX))
        );
        assert!("Participant".parse::<NodeState>().is_err());
        assert_eq!(NodeState::default(), NodeState::Viewer);
    }
}
