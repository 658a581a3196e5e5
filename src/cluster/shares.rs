//! How the key space splits between the participants, as a ckit node with
//! this membership table would shard it (`GET /api/v1/shards`).
//!
//! The share is measured, not derived: the first owner (ckit's
//! `Lookup(key, 1, OpReadWrite)`) of each of [`SAMPLE_KEYS`] keys,
//! `string_key("0")` to `string_key("9999")` (XXH64 of the decimal
//! strings, ckit's `shard.StringKey`), is counted per member. With 10,000
//! keys a share is within about one percentage point of the exact one.
//!
//! The peers are what a ckit node hands its sharder: every member that is
//! alive or suspect (memberlist still lists both), in its ckit state (no
//! state heard yet counts as a viewer, as in ckit); only participants own
//! keys for writes. The hasher is the node's
//! ([`NodeOptions::hasher`](super::NodeOptions::hasher)) unless the request
//! names one (`?hasher=`, any name [`Hasher`]'s `FromStr` takes).

use super::view::{MemberState, MemberView};
use crate::ckit::peer::{NodeState as CkitState, Peer};
use crate::ckit::shard::{string_key, Hasher, Op, ParseHasherError, Sharder};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How many keys are looked up to measure the shares.
pub const SAMPLE_KEYS: u32 = 10_000;

/// The key-space split for one hasher.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyShares {
    /// `ring`, `rendezvous` or `multiprobe`.
    pub hasher: &'static str,
    /// Tokens per peer, for the ring.
    pub tokens_per_peer: Option<usize>,
    /// The lookup op whose owners are counted (`read_write`).
    pub op: &'static str,
    /// How many keys were looked up.
    pub sample_keys: u32,
    /// One row per participant, by name; empty when there is none.
    pub shares: Vec<Share>,
}

/// One participant's part of the key space.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Share {
    /// The member's name.
    pub name: String,
    /// Its address.
    pub addr: String,
    /// Sample keys it is the first owner of.
    pub keys: u32,
    /// `keys / sample_keys`.
    pub share: f64,
}

/// The hasher a request's `?hasher=` names: `ring` (512 tokens per peer),
/// `rendezvous`, `multiprobe`, or the node's own hasher by its name
/// (`ring:N`). Other token counts are refused: every hasher measured stays
/// cached, and a ring's cost grows with its tokens, so a request does not
/// get to choose them.
pub(crate) fn requested_hasher(name: &str, node: Hasher) -> Result<Hasher, String> {
    let hasher: Hasher = name.parse().map_err(|e: ParseHasherError| e.to_string())?;
    match hasher {
        Hasher::Ring(tokens) if tokens != Hasher::ALLOY_RING_TOKENS && hasher != node => {
            Err(format!(
                "{name:?}: this endpoint measures ring, rendezvous, multiprobe and the node's own \
                 hasher ({node})"
            ))
        }
        _ => Ok(hasher),
    }
}

/// The peers ckit would shard over, from a membership table.
pub(super) fn peers(members: &[MemberView]) -> Vec<Peer> {
    members
        .iter()
        .filter(|m| matches!(m.state, MemberState::Alive | MemberState::Suspect))
        .map(|m| {
            let state = match m.ckit_state {
                Some("participant") => CkitState::Participant,
                Some("terminating") => CkitState::Terminating,
                _ => CkitState::Viewer,
            };
            Peer {
                is_self: m.local,
                ..Peer::new(m.name.clone(), m.addr.clone(), state)
            }
        })
        .collect()
}

/// Measures the split of the sample keys among `members`' participants.
pub fn measure(members: &[MemberView], hasher: Hasher) -> KeyShares {
    let mut sharder = Sharder::new(hasher);
    sharder.set_peers(peers(members));
    let mut counts: HashMap<String, u32> = HashMap::new();
    for i in 0..SAMPLE_KEYS {
        if let Ok(owners) = sharder.lookup(string_key(i.to_string()), 1, Op::ReadWrite) {
            if let Some(owner) = owners.into_iter().next() {
                *counts.entry(owner.name).or_default() += 1;
            }
        }
    }
    let shares = sharder
        .peers()
        .iter()
        .filter(|p| Op::ReadWrite.admits(p.state))
        .map(|p| {
            let keys = counts.get(&p.name).copied().unwrap_or(0);
            Share {
                name: p.name.clone(),
                addr: p.addr.clone(),
                keys,
                share: f64::from(keys) / f64::from(SAMPLE_KEYS),
            }
        })
        .collect();
    KeyShares {
        hasher: hasher.name(),
        tokens_per_peer: hasher.tokens_per_peer(),
        op: "read_write",
        sample_keys: SAMPLE_KEYS,
        shares,
    }
}

/// The last split measured per hasher, kept until the peers change (a
/// rendezvous lookup costs one hash per peer, so 10,000 of them at a few
/// hundred members are worth not repeating every second).
#[derive(Debug, Default, Clone)]
pub(crate) struct ShareCache {
    last: Arc<Mutex<HashMap<Hasher, Measured>>>,
}

/// A split and the peers it was measured for.
type Measured = (Vec<Peer>, Arc<KeyShares>);

impl ShareCache {
    pub(crate) fn get(&self, members: &[MemberView], hasher: Hasher) -> Arc<KeyShares> {
        let current = peers(members);
        if let Some((seen, shares)) = self.last.lock().unwrap().get(&hasher) {
            if *seen == current {
                return shares.clone();
            }
        }
        let shares = Arc::new(measure(members, hasher));
        self.last
            .lock()
            .unwrap()
            .insert(hasher, (current, shares.clone()));
        shares
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, state: MemberState, ckit: Option<&'static str>) -> MemberView {
        MemberView {
            name: name.into(),
            addr: format!("127.0.0.1:{}", name.len()),
            state,
            incarnation: 1,
            ckit_state: ckit,
            state_since_ms: 0,
            local: false,
        }
    }

    #[test]
    fn only_live_participants_get_keys_and_the_shares_add_up() {
        let members = [
            member("a", MemberState::Alive, Some("participant")),
            member("b", MemberState::Suspect, Some("participant")),
            member("c", MemberState::Alive, Some("participant")),
            member("dead", MemberState::Dead, Some("participant")),
            member("gone", MemberState::Left, Some("participant")),
            member("viewer", MemberState::Alive, Some("viewer")),
            member("quiet", MemberState::Alive, None),
            member("ending", MemberState::Alive, Some("terminating")),
        ];
        for name in ["ring", "rendezvous", "multiprobe"] {
            let split = measure(&members, name.parse().unwrap());
            let names: Vec<&str> = split.shares.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(names, ["a", "b", "c"], "{name}");
            let total: u32 = split.shares.iter().map(|s| s.keys).sum();
            assert_eq!(total, SAMPLE_KEYS, "{name}: every key has one owner");
            for s in &split.shares {
                // Three peers: a third each, give or take what each hasher's
                // spread allows (multiprobe's is the widest).
                assert!(s.share > 0.15 && s.share < 0.55, "{name}: {s:?}");
            }
        }
    }

    #[test]
    fn the_split_is_ckits_first_owner_of_each_sample_key() {
        let members = [
            member("x", MemberState::Alive, Some("participant")),
            member("y", MemberState::Alive, Some("participant")),
        ];
        let hasher = Hasher::Ring(Hasher::ALLOY_RING_TOKENS);
        let split = measure(&members, hasher);
        let mut sharder = Sharder::new(hasher);
        sharder.set_peers(peers(&members));
        let x_keys = (0..SAMPLE_KEYS)
            .filter(|i| {
                sharder
                    .lookup(string_key(i.to_string()), 1, Op::ReadWrite)
                    .unwrap()[0]
                    .name
                    == "x"
            })
            .count() as u32;
        assert_eq!(split.shares[0].keys, x_keys);
        assert_eq!(split.shares[1].keys, SAMPLE_KEYS - x_keys);
    }

    #[test]
    fn no_participants_is_an_empty_split_and_unknown_hashers_are_refused() {
        let members = [member("v", MemberState::Alive, Some("viewer"))];
        let hasher = Hasher::Rendezvous;
        assert!(measure(&members, hasher).shares.is_empty());
        let node = Hasher::Ring(std::num::NonZeroUsize::new(128).unwrap());
        assert!(requested_hasher("md5", node)
            .unwrap_err()
            .contains("unknown hasher"));
        assert!(
            requested_hasher("ring:64", node).is_err(),
            "a token count of the request's choosing"
        );
        assert_eq!(requested_hasher("ring:128", node), Ok(node));
        assert_eq!(
            requested_hasher("ring", node),
            Ok(Hasher::Ring(Hasher::ALLOY_RING_TOKENS))
        );
    }

    #[test]
    fn the_cache_measures_again_only_when_the_peers_change() {
        let cache = ShareCache::default();
        let hasher = Hasher::Ring(Hasher::ALLOY_RING_TOKENS);
        let mut members = vec![member("a", MemberState::Alive, Some("participant"))];
        let first = cache.get(&members, hasher);
        members[0].incarnation = 7; // not a peer change
        assert!(Arc::ptr_eq(&first, &cache.get(&members, hasher)));
        members.push(member("b", MemberState::Alive, Some("participant")));
        let second = cache.get(&members, hasher);
        assert_eq!(second.shares.len(), 2);
    }
}
