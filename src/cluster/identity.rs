//! Who a member is: a name, where to reach it, and which life of it this is.

use foca::Identity;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A member's identity as foca sees it.
///
/// The name is the member's cluster-wide address (foca's `Identity::Addr`):
/// two identities with one name are two lives of the same member, and the
/// later `generation` wins. A restarted node takes a new generation (its
/// start time), so it replaces its old, dead self everywhere at once; a node
/// wrongly declared down renews itself with `generation + 1`.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeId {
    /// The member's name, unique in the cluster.
    pub name: String,
    /// Its advertised transport address (`host:port`), where packets and
    /// streams for it go.
    pub addr: String,
    /// Which life of the member this is; higher wins.
    pub generation: u64,
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}#{}", self.name, self.addr, self.generation)
    }
}

impl Identity for NodeId {
    type Addr = String;

    fn renew(&self) -> Option<Self> {
        Some(NodeId {
            generation: self.generation.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> String {
        self.name.clone()
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.generation > adversary.generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renewed_identity_wins_its_conflict() {
        let a = NodeId {
            name: "a".into(),
            addr: "127.0.0.1:1".into(),
            generation: 7,
        };
        let b = a.renew().unwrap();
        assert_eq!(a.addr(), b.addr());
        assert!(b.win_addr_conflict(&a));
        assert!(!a.win_addr_conflict(&b));
    }
}
