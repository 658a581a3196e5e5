//! Property tests of ckit's layer: whatever memberlist reports and peers send
//! in whatever order, the node-state table keeps its rules; whatever peers a
//! sharder is given, a lookup answers with distinct eligible owners or says
//! there are not enough, and never panics.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;

use gossiphttp::ckit::peer::{NodeState, Peer};
use gossiphttp::ckit::shard::{Key, LookupError, Op, Sharder};
use gossiphttp::ckit::states::{NodeStates, PushPullState, StateMessage};
use proptest::prelude::*;

/// A few names, so that joins, leaves and messages meet the same nodes.
const NAMES: [&str; 5] = ["self", "a", "b", "c", "d"];

fn name() -> impl Strategy<Value = String> {
    prop::sample::select(NAMES.to_vec()).prop_map(str::to_owned)
}

fn state() -> impl Strategy<Value = NodeState> {
    prop::sample::select(NodeState::ALL.to_vec())
}

/// Times near each other (to meet equal times) and at the top of the range.
fn time() -> impl Strategy<Value = u64> {
    prop_oneof![8 => 0u64..12, 1 => Just(u64::MAX - 1), 1 => Just(u64::MAX)]
}

fn message() -> impl Strategy<Value = StateMessage> {
    (name(), state(), time()).prop_map(|(n, s, t)| StateMessage::new(n, s, t))
}

#[derive(Debug, Clone)]
enum Event {
    Joined(String, u8),
    Updated(String, u8),
    Left(String),
    Message(StateMessage),
    Change(NodeState),
    Merge(u64, Vec<StateMessage>),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (name(), 0u8..3).prop_map(|(n, a)| Event::Joined(n, a)),
        (name(), 0u8..3).prop_map(|(n, a)| Event::Updated(n, a)),
        name().prop_map(Event::Left),
        message().prop_map(Event::Message),
        state().prop_map(Event::Change),
        (time(), prop::collection::vec(message(), 0..6)).prop_map(|(t, m)| Event::Merge(t, m)),
    ]
}

/// Applies `event`, checking what each input promises, and returns the
/// messages it gave to gossip.
fn apply(table: &mut NodeStates, event: Event) -> Vec<StateMessage> {
    let before = table.now();
    let gossip = match event {
        Event::Joined(n, a) => {
            table.member_joined(&n, &format!("10.0.0.{a}:7946"));
            assert!(table.peer(&n).is_some());
            vec![]
        }
        Event::Updated(n, a) => {
            table.member_updated(&n, &format!("10.0.0.{a}:7946"));
            vec![]
        }
        Event::Left(n) => {
            table.member_left(&n);
            assert!(table.peer(&n).is_none());
            vec![]
        }
        Event::Message(m) => {
            let seen = m.time;
            let gossip: Vec<_> = table.apply_message(m).into_iter().collect();
            assert!(table.now() > seen || table.now() == u64::MAX, "observed");
            gossip
        }
        Event::Change(to) => {
            let from = table.current_state();
            match table.change_state(to) {
                Ok(own) => {
                    assert!(from.can_change_to(to));
                    assert_eq!((own.new_state, own.time), (to, table.now()));
                    vec![own]
                }
                Err(_) => {
                    assert!(!from.can_change_to(to));
                    assert_eq!(table.current_state(), from);
                    vec![]
                }
            }
        }
        Event::Merge(t, states) => {
            let news = table.merge_push_pull_state(PushPullState {
                current_time: t,
                node_states: states,
            });
            assert!(table.now() > t || table.now() == u64::MAX, "observed");
            news
        }
    };
    assert!(table.now() >= before, "the clock never goes back");
    gossip
}

proptest! {
    #[test]
    fn the_state_table_keeps_its_rules(events in prop::collection::vec(event(), 0..40)) {
        let mut table = NodeStates::new("self");
        for event in events {
            for news in apply(&mut table, event) {
                // Gossip is stored: hearing it back is not news.
                prop_assert_eq!(table.apply_message(news.clone()), None, "{:?}", news);
                if news.node_name == "self" {
                    prop_assert_eq!(news.new_state, table.current_state());
                }
            }
            let peers = table.peers();
            prop_assert!(peers.windows(2).all(|w| w[0].name < w[1].name));
            for peer in &peers {
                prop_assert_eq!(peer.is_self, peer.name == "self");
                if peer.is_self {
                    // What this node says of itself is what it is.
                    prop_assert_eq!(peer.state, table.current_state());
                }
            }
            let pushed = table.push_pull_state();
            prop_assert_eq!(pushed.current_time, table.now());
            let pushed_names: Vec<_> = pushed.node_states.iter().map(|m| &m.node_name).collect();
            let peer_names: Vec<_> = peers.iter().map(|p| &p.name).collect();
            prop_assert_eq!(pushed_names, peer_names);
        }
    }
}

fn sharder() -> impl Strategy<Value = Sharder> {
    prop_oneof![
        Just(Sharder::rendezvous()),
        Just(Sharder::multiprobe()),
        (1usize..24).prop_map(|t| Sharder::ring(NonZeroUsize::new(t).unwrap())),
    ]
}

fn peers() -> impl Strategy<Value = Vec<Peer>> {
    let peer = (name(), state()).prop_map(|(n, s)| Peer::new(n.clone(), n, s));
    prop::collection::vec(peer, 0..8)
}

proptest! {
    #[test]
    fn lookups_give_distinct_eligible_owners_or_say_there_are_too_few(
        mut sharder in sharder(),
        peers in peers(),
        key in any::<u64>(),
        n in 0usize..7,
    ) {
        // The last peer given under a name counts.
        let by_name: BTreeMap<&str, NodeState> =
            peers.iter().map(|p| (p.name.as_str(), p.state)).collect();
        sharder.set_peers(peers.clone());
        for op in [Op::Read, Op::ReadWrite] {
            let eligible = by_name.values().filter(|&&s| op.admits(s)).count();
            match sharder.lookup(Key(key), n, op) {
                Ok(owners) => {
                    prop_assert!(n <= eligible);
                    prop_assert_eq!(owners.len(), n);
                    let mut names: Vec<_> = owners.iter().map(|p| p.name.as_str()).collect();
                    prop_assert!(owners.iter().all(|p| op.admits(p.state)));
                    prop_assert!(owners.iter().all(|p| by_name[p.name.as_str()] == p.state));
                    if n < eligible {
                        let more = sharder.lookup(Key(key), n + 1, op).unwrap();
                        prop_assert_eq!(&more[..n], &owners[..]);
                    }
                    names.sort_unstable();
                    names.dedup();
                    prop_assert_eq!(names.len(), n);
                }
                Err(LookupError::NotEnoughPeers { needed, eligible: have, op: got_op }) => {
                    prop_assert!(n > eligible);
                    prop_assert_eq!((needed, have, got_op), (n, eligible, op));
                }
                Err(other) => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }
}
