//! The membership table as the node publishes it: one row per member, and
//! the `cluster_members{state}` gauges.

use crate::memberlist::message::NodeState;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;

/// A member's state as this node sees it (memberlist's states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    /// Answering probes.
    Alive,
    /// Missed a probe; dead unless it refutes in time.
    Suspect,
    /// Declared down without saying goodbye.
    Dead,
    /// Left the cluster on purpose.
    Left,
}

impl MemberState {
    /// Every state, for gauges.
    pub const ALL: [MemberState; 4] = [
        MemberState::Alive,
        MemberState::Suspect,
        MemberState::Dead,
        MemberState::Left,
    ];

    /// `"alive"`, `"suspect"`, `"dead"` or `"left"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Dead => "dead",
            MemberState::Left => "left",
        }
    }
}

impl From<NodeState> for MemberState {
    fn from(state: NodeState) -> Self {
        match state {
            NodeState::Alive => MemberState::Alive,
            NodeState::Suspect => MemberState::Suspect,
            NodeState::Dead => MemberState::Dead,
            NodeState::Left => MemberState::Left,
        }
    }
}

/// One row of the membership table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberView {
    /// The member's name.
    pub name: String,
    /// Its advertised address (`ip:port`).
    pub addr: String,
    /// Its memberlist state.
    pub state: MemberState,
    /// Its memberlist incarnation (grows as it refutes suspicions and
    /// changes its state).
    pub incarnation: u32,
    /// Its ckit node state (`viewer`, `participant`, `terminating`), once
    /// its gossip has reached this node.
    pub ckit_state: Option<&'static str>,
    /// When it entered `state`, in milliseconds since the Unix epoch (as
    /// this node's clock saw it).
    pub state_since_ms: u64,
    /// True for the node's own row.
    pub local: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StateLabel {
    pub state: &'static str,
}

pub(crate) type MemberGauges = Family<StateLabel, Gauge>;
