//! Rules that hold for every hasher. That the owners are Go's is checked
//! against the reference vectors in tests/ckit_shard.rs.

use std::io::Write as _;

use super::*;

use NodeState::{Participant, Terminating, Viewer};

fn all_hashers() -> Vec<Sharder> {
    vec![
        Sharder::rendezvous(),
        Sharder::multiprobe(),
        Sharder::ring(NonZeroUsize::new(1).unwrap()),
        Sharder::ring(NonZeroUsize::new(300).unwrap()),
    ]
}

fn peers(states: &[(&str, NodeState)]) -> Vec<Peer> {
    states
        .iter()
        .map(|&(name, state)| Peer::new(name, format!("{name}:7946"), state))
        .collect()
}

fn names(owners: &[Peer]) -> Vec<&str> {
    owners.iter().map(|p| p.name.as_str()).collect()
}

#[test]
fn a_key_builder_gives_the_key_of_the_concatenation() {
    let mut builder = KeyBuilder::new();
    assert_eq!(builder.key(), string_key(""));
    builder.write(b"tenant").write(b"-").write("42".as_bytes());
    assert_eq!(builder.key(), string_key("tenant-42"));
    builder.write_all(b"!").unwrap();
    assert_eq!(builder.key(), string_key("tenant-42!"));
    builder.reset();
    assert_eq!(builder.write(b"x").key(), string_key("x"));
}

#[test]
fn no_peers_give_no_owners_but_zero_owners_is_always_answered() {
    for sharder in all_hashers() {
        for op in [Op::Read, Op::ReadWrite] {
            assert_eq!(sharder.lookup(Key(7), 0, op), Ok(vec![]));
            assert_eq!(
                sharder.lookup(Key(7), 1, op),
                Err(LookupError::NotEnoughPeers {
                    needed: 1,
                    eligible: 0,
                    op
                })
            );
        }
    }
}

#[test]
fn owners_are_distinct_eligible_and_as_many_as_asked() {
    let cluster = peers(&[
        ("a", Participant),
        ("b", Terminating),
        ("c", Viewer),
        ("d", Participant),
        ("e", Participant),
        ("f", Terminating),
    ]);
    for mut sharder in all_hashers() {
        sharder.set_peers(cluster.clone());
        assert_eq!(names(sharder.peers()), ["a", "b", "d", "e", "f"]);
        for key in (0..64u64).map(|k| Key(k.wrapping_mul(0x9e37_79b9_7f4a_7c15))) {
            for (op, eligible) in [(Op::Read, 5), (Op::ReadWrite, 3)] {
                for n in 1..=eligible {
                    let owners = sharder.lookup(key, n, op).unwrap();
                    let mut distinct = names(&owners);
                    distinct.sort_unstable();
                    distinct.dedup();
                    assert_eq!(distinct.len(), n, "{:?} {op} n={n}", sharder.hasher());
                    assert!(owners.iter().all(|p| op.admits(p.state)));
                }
                assert!(sharder.lookup(key, eligible + 1, op).is_err());
            }
        }
    }
}

#[test]
fn the_first_owners_are_a_prefix_of_more_owners() {
    let cluster = peers(&[("a", Participant), ("b", Participant), ("c", Participant)]);
    for mut sharder in all_hashers() {
        sharder.set_peers(cluster.clone());
        for key in 0..32 {
            let three = sharder.lookup(Key(key), 3, Op::ReadWrite).unwrap();
            let two = sharder.lookup(Key(key), 2, Op::ReadWrite).unwrap();
            assert_eq!(two, three[..2]);
        }
    }
}

#[test]
fn peer_order_and_duplicate_names_do_not_change_owners() {
    let sorted = peers(&[("a", Participant), ("b", Participant), ("c", Participant)]);
    let mut shuffled = peers(&[("c", Participant), ("a", Viewer), ("b", Participant)]);
    shuffled.push(Peer::new("a", "a:7946", Participant)); // the last "a" counts
    for hasher in all_hashers() {
        let (mut one, mut other) = (hasher.clone(), hasher);
        one.set_peers(sorted.clone());
        other.set_peers(shuffled.clone());
        assert_eq!(one.peers(), other.peers());
        for key in 0..32 {
            assert_eq!(
                one.lookup(Key(key), 3, Op::Read),
                other.lookup(Key(key), 3, Op::Read)
            );
        }
    }
}

#[test]
fn the_error_begins_with_gos_message_and_says_who_counts() {
    let mut sharder = Sharder::multiprobe();
    sharder.set_peers(peers(&[("a", Participant), ("b", Terminating)]));
    let error = sharder.lookup(Key(1), 2, Op::ReadWrite).unwrap_err();
    let text = error.to_string();
    assert!(
        text.starts_with("not enough nodes: need at least 2, have 1 "),
        "{text}"
    );
    assert!(
        text.contains("ReadWrite lookups count only participant peers"),
        "{text}"
    );
}

#[test]
fn tokens_list_the_circle_each_lookup_searches() {
    let cluster = peers(&[("a", Participant), ("b", Terminating)]);
    let mut ring = Sharder::ring(NonZeroUsize::new(4).unwrap());
    ring.set_peers(cluster.clone());
    let read = ring.tokens(Op::Read);
    assert_eq!(read.len(), 8);
    assert!(read.windows(2).all(|w| w[0].1 <= w[1].1));
    assert!(ring
        .tokens(Op::ReadWrite)
        .iter()
        .all(|&(name, _)| name == "a"));

    let mut multiprobe = Sharder::multiprobe();
    multiprobe.set_peers(cluster.clone());
    assert_eq!(
        multiprobe.tokens(Op::ReadWrite),
        [("a", internals::node_hash("a"))]
    );

    let mut rendezvous = Sharder::rendezvous();
    rendezvous.set_peers(cluster);
    assert!(rendezvous.tokens(Op::Read).is_empty());
}

#[test]
fn second_key_hashes_the_lower_case_hex_without_leading_zeros() {
    for (key, hex) in [
        (0u64, "0"),
        (15, "f"),
        (0xdead_beef, "deadbeef"),
        (u64::MAX, "ffffffffffffffff"),
    ] {
        assert_eq!(internals::second_key(key), string_key(hex).0, "{hex}");
    }
}
