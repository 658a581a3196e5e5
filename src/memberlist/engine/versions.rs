//! memberlist's `verifyProtocol`: before a push-pull's view is merged,
//! every member on both sides must speak a protocol and a delegate
//! protocol version that every alive member understands.
//!
//! The range is the highest minimum and the lowest maximum announced by
//! the alive members of both views (a remote row with fewer than five
//! `Vsn` bytes announces no range). Then every row of both views, whatever
//! its state, must have its current versions within it (a remote row with
//! fewer than six bytes speaks version 0). As in memberlist v0.5, one row
//! outside refuses the whole remote view: nothing of it is merged, user
//! state included.

use super::super::message::{NodeState, PushPull};
use super::Engine;

/// Which of a member's two version numbers is out of range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VersionKind {
    /// memberlist's own protocol (`ProtocolVersion`, `Vsn[0..3]`).
    Protocol,
    /// The delegate's protocol (`DelegateProtocolVersion`, `Vsn[3..6]`).
    Delegate,
}

impl std::fmt::Display for VersionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VersionKind::Protocol => "protocol",
            VersionKind::Delegate => "delegate protocol",
        })
    }
}

/// A push-pull refused because a member speaks a version not every alive
/// member understands (memberlist's "Node '…' protocol version (…) is
/// incompatible: […, …]").
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "member '{node}' speaks {kind} version {current}, outside [{min}, {max}] (the highest \
     minimum and the lowest maximum {kind} version the alive members announce), so its view was \
     not merged: give every member a current {kind} version within every member's range, or \
     upgrade the members whose range leaves it out"
)]
pub struct IncompatibleVersion {
    /// The member whose current version is out of range.
    pub node: String,
    /// Which version.
    pub kind: VersionKind,
    /// Its current version.
    pub current: u8,
    /// The highest minimum announced.
    pub min: u8,
    /// The lowest maximum announced (below `min` when the ranges share no
    /// version).
    pub max: u8,
}

/// The versions every member understands, narrowed member by member.
struct Ranges {
    protocol: (u8, u8),
    delegate: (u8, u8),
}

impl Ranges {
    fn narrow(&mut self, vsn: &[u8]) {
        let narrow = |range: &mut (u8, u8), min: u8, max: u8| {
            range.0 = range.0.max(min);
            range.1 = range.1.min(max);
        };
        narrow(&mut self.protocol, vsn[0], vsn[1]);
        narrow(&mut self.delegate, vsn[3], vsn[4]);
    }

    fn check(&self, node: &str, protocol: u8, delegate: u8) -> Result<(), IncompatibleVersion> {
        let outside = |kind, current: u8, (min, max): (u8, u8)| {
            (current < min || current > max).then(|| IncompatibleVersion {
                node: node.to_owned(),
                kind,
                current,
                min,
                max,
            })
        };
        match outside(VersionKind::Protocol, protocol, self.protocol)
            .or_else(|| outside(VersionKind::Delegate, delegate, self.delegate))
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Engine {
    /// memberlist's `verifyProtocol` over `remote` and our rows.
    pub(super) fn verify_versions(&self, remote: &PushPull) -> Result<(), IncompatibleVersion> {
        let mut ranges = Ranges {
            protocol: (0, u8::MAX),
            delegate: (0, u8::MAX),
        };
        remote
            .nodes
            .iter()
            .filter(|r| r.state == NodeState::Alive && r.vsn.len() >= 5)
            .for_each(|r| ranges.narrow(&r.vsn));
        self.members
            .iter()
            .filter(|m| m.state == NodeState::Alive)
            .for_each(|m| ranges.narrow(&m.vsn));
        for r in &remote.nodes {
            let (protocol, delegate) = match r.vsn.get(..6) {
                Some(vsn) => (vsn[2], vsn[5]),
                None => (0, 0),
            };
            ranges.check(&r.name, protocol, delegate)?;
        }
        for m in self.members.iter() {
            ranges.check(&m.name, m.vsn[2], m.vsn[5])?;
        }
        Ok(())
    }
}
