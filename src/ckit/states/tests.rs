use super::*;

use NodeState::{Participant, Terminating, Viewer};

fn msg(name: &str, state: NodeState, time: Time) -> StateMessage {
    StateMessage::new(name, state, time)
}

/// A node "a" with members "a" (itself) and "b".
fn node_a_with_b() -> NodeStates {
    let mut table = NodeStates::new("a");
    table.member_joined("a", "127.0.0.1:7946");
    table.member_joined("b", "127.0.0.1:7947");
    table
}

fn state_of(table: &NodeStates, name: &str) -> NodeState {
    table.peer(name).expect("member").state
}

#[test]
fn a_new_node_is_a_viewer_at_time_zero_and_members_start_as_viewers() {
    let table = node_a_with_b();
    assert_eq!(table.current_state(), Viewer);
    assert_eq!(table.now(), 0);
    let peers = table.peers();
    assert_eq!(peers.len(), 2);
    assert!(peers[0].is_self && peers[0].name == "a");
    assert!(!peers[1].is_self && peers[1].addr == "127.0.0.1:7947");
    assert!(peers.iter().all(|p| p.state == Viewer));
}

#[test]
fn a_newer_message_wins_and_an_equal_or_older_one_is_ignored() {
    let mut table = node_a_with_b();
    assert_eq!(
        table.apply_message(msg("b", Participant, 3)),
        Some(msg("b", Participant, 3))
    );
    assert_eq!(state_of(&table, "b"), Participant);
    assert_eq!(table.now(), 4);

    // Same time, other state: ignored (only messages about self are settled).
    assert_eq!(table.apply_message(msg("b", Terminating, 3)), None);
    // Older: ignored, but its time is still observed.
    assert_eq!(table.apply_message(msg("b", Viewer, 1)), None);
    assert_eq!(state_of(&table, "b"), Participant);
    assert_eq!(table.now(), 4);

    assert!(table.apply_message(msg("b", Terminating, 9)).is_some());
    assert_eq!(state_of(&table, "b"), Terminating);
    assert_eq!(table.now(), 10);
}

#[test]
fn every_message_moves_the_clock_even_an_ignored_one() {
    let mut table = node_a_with_b();
    let own = table.change_state(Participant).unwrap();
    assert_eq!(table.now(), own.time);
    // Our own message echoed back: ignored, and its time is observed.
    assert_eq!(table.apply_message(own), None);
    assert_eq!(table.now(), 2);
}

#[test]
fn a_state_learned_before_the_join_applies_when_the_member_joins() {
    let mut table = node_a_with_b();
    // Gossiped on, though "c" is not a member yet.
    assert_eq!(
        table.apply_message(msg("c", Participant, 5)),
        Some(msg("c", Participant, 5))
    );
    assert!(table.peer("c").is_none());
    table.member_joined("c", "127.0.0.1:7948");
    assert_eq!(state_of(&table, "c"), Participant);
    // And the time came along: an older message about "c" is still ignored.
    assert_eq!(table.apply_message(msg("c", Viewer, 4)), None);
}

#[test]
fn a_newer_message_about_self_is_answered_with_the_real_state_at_a_fresh_tick() {
    let mut table = node_a_with_b();
    table.change_state(Participant).unwrap();
    assert_eq!(table.now(), 1);
    // A peer remembers an earlier life of "a" as terminating at 50.
    let answer = table.apply_message(msg("a", Terminating, 50));
    assert_eq!(answer, Some(msg("a", Participant, 52)));
    assert_eq!(state_of(&table, "a"), Participant);
    assert_eq!(table.current_state(), Participant);
    // The stored message is the answer: the old one at 50 is now stale.
    assert_eq!(table.apply_message(msg("a", Terminating, 50)), None);
}

#[test]
fn a_same_time_message_about_self_is_settled_only_when_the_state_differs() {
    let mut table = node_a_with_b();
    let own = table.change_state(Participant).unwrap();
    assert_eq!(own, msg("a", Participant, 1));
    // Same time, same state: it is our own message coming back.
    assert_eq!(table.apply_message(own.clone()), None);
    // Same time, other state: another life of "a" picked time 1.
    assert_eq!(
        table.apply_message(msg("a", Viewer, 1)),
        Some(msg("a", Participant, 3))
    );
}

#[test]
fn a_message_about_self_with_nothing_stored_is_answered() {
    // Before any change_state nothing is stored about "a": a peer's memory of
    // an earlier life wins by time and is answered with "a"'s real state.
    let mut table = node_a_with_b();
    assert_eq!(
        table.apply_message(msg("a", Participant, 0)),
        Some(msg("a", Viewer, 2))
    );
}

#[test]
fn change_state_allows_only_ckits_steps_and_a_refusal_changes_nothing() {
    let mut table = node_a_with_b();
    let refused = table.change_state(Terminating).unwrap_err();
    assert_eq!((refused.from, refused.to), (Viewer, Terminating));
    assert_eq!(table.now(), 0);
    assert_eq!(table.current_state(), Viewer);

    assert_eq!(
        table.change_state(Participant),
        Ok(msg("a", Participant, 1))
    );
    assert!(table.change_state(Participant).is_err());
    assert_eq!(
        table.change_state(Terminating),
        Ok(msg("a", Terminating, 2))
    );
    assert!(table.change_state(Viewer).is_err());
    assert_eq!(state_of(&table, "a"), Terminating);
}

#[test]
fn a_state_changed_before_the_node_sees_itself_join_applies_at_the_join() {
    let mut table = NodeStates::new("a");
    table.change_state(Participant).unwrap();
    table.member_joined("a", "127.0.0.1:7946");
    assert_eq!(state_of(&table, "a"), Participant);
}

#[test]
fn push_pull_state_lists_every_member_sorted_with_viewer_at_zero_when_unknown() {
    let mut table = node_a_with_b();
    table.member_joined("0-first", "127.0.0.1:1");
    table.change_state(Participant).unwrap();
    table.apply_message(msg("pending", Participant, 7));
    let state = table.push_pull_state();
    assert_eq!(state.current_time, 8);
    assert_eq!(
        state.node_states,
        vec![
            msg("0-first", Viewer, 0),
            msg("a", Participant, 1),
            msg("b", Viewer, 0),
        ]
    );
}

#[test]
fn merging_a_push_pull_observes_its_clock_skips_non_members_and_returns_the_news() {
    let mut table = node_a_with_b();
    table.member_joined("c", "127.0.0.1:7948");
    table.apply_message(msg("c", Participant, 5));
    let news = table.merge_push_pull_state(PushPullState {
        current_time: 60,
        node_states: vec![
            msg("c", Terminating, 59),
            msg("z", Participant, 3),
            msg("b", Viewer, 0),
            msg("a", Terminating, 59),
        ],
    });
    assert_eq!(table.now(), 62);
    assert_eq!(
        news,
        vec![
            msg("c", Terminating, 59),
            msg("b", Viewer, 0),
            msg("a", Viewer, 62),
        ]
    );
    assert_eq!(state_of(&table, "c"), Terminating);
    assert!(table.peer("z").is_none());
    // "z" was skipped, not kept: it does not apply when "z" joins.
    table.member_joined("z", "127.0.0.1:9");
    assert_eq!(state_of(&table, "z"), Viewer);
}

#[test]
fn a_member_that_left_is_forgotten_with_its_state() {
    let mut table = node_a_with_b();
    table.apply_message(msg("b", Participant, 3));
    table.member_left("b");
    assert!(table.peer("b").is_none());
    // Back in a new life: a viewer, and its old time no longer shadows news.
    table.member_joined("b", "127.0.0.1:8000");
    assert_eq!(state_of(&table, "b"), Viewer);
    assert!(table.apply_message(msg("b", Participant, 1)).is_some());
}

#[test]
fn a_pending_state_of_a_name_that_left_is_forgotten_too() {
    let mut table = node_a_with_b();
    table.apply_message(msg("c", Participant, 3));
    table.member_left("c");
    table.member_joined("c", "127.0.0.1:7948");
    assert_eq!(state_of(&table, "c"), Viewer);
}

#[test]
fn this_node_keeps_its_own_state_when_it_sees_itself_leave() {
    let mut table = node_a_with_b();
    table.change_state(Participant).unwrap();
    table.member_left("a");
    assert!(table.peer("a").is_none());
    table.member_joined("a", "127.0.0.1:7946");
    assert_eq!(state_of(&table, "a"), Participant);
    assert_eq!(table.current_state(), Participant);
}

#[test]
fn an_update_moves_the_address_and_keeps_the_state() {
    let mut table = node_a_with_b();
    table.apply_message(msg("b", Participant, 1));
    table.member_updated("b", "127.0.0.2:7000");
    let b = table.peer("b").unwrap();
    assert_eq!((b.addr.as_str(), b.state), ("127.0.0.2:7000", Participant));
    assert_eq!(table.apply_message(msg("b", Viewer, 1)), None);
}

#[test]
fn version_moves_only_when_the_peer_view_changes() {
    let mut table = NodeStates::new("a");
    let mut last = table.version();
    let mut moved = |table: &NodeStates| std::mem::replace(&mut last, table.version()) != last;

    table.member_joined("b", "x:1");
    assert!(moved(&table), "a member joined");
    table.member_updated("b", "x:1");
    assert!(!moved(&table), "an update that changes nothing");
    table.member_updated("b", "x:2");
    assert!(moved(&table), "a new address");
    table.apply_message(msg("b", Participant, 1));
    assert!(moved(&table), "a new state");
    table.apply_message(msg("b", Participant, 4));
    assert!(!moved(&table), "the same state at a later time");
    table.apply_message(msg("c", Participant, 1));
    assert!(!moved(&table), "a state about a name that is not a member");
    table.member_left("nobody");
    assert!(!moved(&table), "a name that is not a member left");
    table.member_left("b");
    assert!(moved(&table), "a member left");
}

#[test]
fn messages_about_unknown_names_are_kept_up_to_the_cap_and_then_ignored() {
    let mut table = node_a_with_b();
    table.change_state(Participant).unwrap();
    for i in 0..MAX_PENDING_STATES {
        assert!(table
            .apply_message(msg(&format!("u{i}"), Participant, 1))
            .is_some());
    }
    assert_eq!(
        table.apply_message(msg("one-too-many", Participant, 1)),
        None
    );
    // Known names still get through: members, names already pending, self.
    assert!(table.apply_message(msg("b", Participant, 2)).is_some());
    assert!(table.apply_message(msg("u0", Terminating, 2)).is_some());
    assert!(table.apply_message(msg("a", Viewer, 90)).is_some());
    // A pending name that joins makes room again.
    table.member_joined("u1", "127.0.0.1:1");
    assert!(table
        .apply_message(msg("one-more", Participant, 1))
        .is_some());
}

#[test]
fn a_repeated_report_of_a_known_member_changes_nothing() {
    let mut table = node_a_with_b();
    table.apply_message(msg("b", Participant, 2));
    let version = table.version();
    table.member_joined("b", "127.0.0.1:7947");
    table.member_updated("b", "127.0.0.1:7947");
    assert_eq!(table.version(), version);
    assert_eq!(state_of(&table, "b"), Participant);
    table.member_updated("b", "127.0.0.1:7000");
    assert_ne!(table.version(), version);
}
