//! [`Node::lookup`](super::Node::lookup): ckit's sharding over the node's
//! current peers, with a sharder rebuilt only when the peers change (a
//! ring of 512 tokens per peer is worth not rebuilding for every key).

use super::shares;
use super::view::MemberView;
use crate::ckit::peer::Peer;
use crate::ckit::shard::{Hasher, Key, LookupError, Op, Sharder};
use std::sync::{Arc, Mutex};

/// The sharder for the last peers looked up over.
#[derive(Debug, Default)]
pub(super) struct Owners {
    last: Mutex<Option<(Vec<Peer>, Arc<Sharder>)>>,
}

impl Owners {
    /// The `n` owners of `key` for `op` among `members`' peers, as ckit's
    /// sharder with `hasher` picks them.
    pub(super) fn lookup(
        &self,
        members: &[MemberView],
        hasher: Hasher,
        key: Key,
        n: usize,
        op: Op,
    ) -> Result<Vec<Peer>, LookupError> {
        self.sharder(members, hasher).lookup(key, n, op)
    }

    fn sharder(&self, members: &[MemberView], hasher: Hasher) -> Arc<Sharder> {
        let peers = shares::peers(members);
        let mut last = self.last.lock().unwrap();
        if let Some((seen, sharder)) = last.as_ref() {
            if *seen == peers && sharder.hasher() == hasher {
                return sharder.clone();
            }
        }
        let mut sharder = Sharder::new(hasher);
        sharder.set_peers(peers.clone());
        let sharder = Arc::new(sharder);
        *last = Some((peers, sharder.clone()));
        sharder
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ckit::shard::string_key;
    use crate::cluster::MemberState;

    fn member(name: &str, state: MemberState, ckit: Option<&'static str>) -> MemberView {
        MemberView {
            name: name.into(),
            addr: format!("127.0.0.1:{}", 7000 + name.len()),
            state,
            incarnation: 1,
            ckit_state: ckit,
            state_since_ms: 0,
            local: name == "me",
        }
    }

    #[test]
    fn owners_are_what_a_ckit_sharder_over_the_live_peers_picks() {
        let owners = Owners::default();
        let mut members = vec![
            member("me", MemberState::Alive, Some("participant")),
            member("b", MemberState::Suspect, Some("participant")),
            member("dead", MemberState::Dead, Some("participant")),
            member("viewer", MemberState::Alive, None),
        ];
        let hasher = Hasher::Rendezvous;
        let mut reference = Sharder::new(hasher);
        reference.set_peers([
            Peer::new(
                "me",
                "127.0.0.1:7002",
                crate::ckit::peer::NodeState::Participant,
            ),
            Peer::new(
                "b",
                "127.0.0.1:7001",
                crate::ckit::peer::NodeState::Participant,
            ),
        ]);
        for i in 0..200 {
            let key = string_key(format!("key-{i}"));
            let got = owners
                .lookup(&members, hasher, key, 2, Op::ReadWrite)
                .unwrap();
            let want = reference.lookup(key, 2, Op::ReadWrite).unwrap();
            let names = |p: &[Peer]| p.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
            assert_eq!(names(&got), names(&want));
            assert!(got.iter().all(|p| p.is_self == (p.name == "me")));
        }
        let e = owners
            .lookup(&members, hasher, string_key("k"), 3, Op::ReadWrite)
            .unwrap_err();
        assert!(e.to_string().starts_with("not enough nodes"), "{e}");
        // New peers, a new sharder; the same peers, the same one.
        let first = owners.sharder(&members, hasher);
        assert!(Arc::ptr_eq(&first, &owners.sharder(&members, hasher)));
        members[3].ckit_state = Some("participant");
        assert_eq!(owners.sharder(&members, hasher).peers().len(), 3);
    }
}
