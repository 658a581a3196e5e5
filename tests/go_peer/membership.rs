//! Go peers among themselves: membership, failure detection, refutation,
//! user state and labels, all over our transport contract.

use crate::common::go_peer::{self, GoPeerConfig};
use crate::{converged_three, names, set_of, state_of, CONVERGE};
use std::collections::BTreeSet;

#[tokio::test]
async fn three_go_peers_join_through_each_other_and_converge() {
    if !go_peer::available() {
        return;
    }
    let mut peers = converged_three().await;
    let addrs: Vec<(String, String)> = peers
        .iter()
        .map(|p| (p.name.clone(), p.addr.clone()))
        .collect();
    for peer in &mut peers {
        // Each lists every node at the address that node advertised: the
        // addresses travelled inside memberlist's messages over our contract.
        for member in peer.members().await {
            let (_, addr) = addrs.iter().find(|(n, _)| *n == member.name).unwrap();
            assert_eq!(
                &member.address(),
                addr,
                "{}'s row for {}",
                peer.name,
                member.name
            );
        }
    }
}

#[tokio::test]
async fn a_graceful_leave_is_seen_as_left() {
    if !go_peer::available() {
        return;
    }
    let [mut a, mut b, mut c] = converged_three().await;
    b.leave().await;
    for peer in [&mut a, &mut c] {
        peer.wait_members("b left", CONVERGE, |m| {
            state_of(m, "b").as_deref() == Some("left")
        })
        .await;
        let event = peer
            .wait_event("b's leave event", CONVERGE, |e| {
                e["event"] == "leave" && e["name"] == "b"
            })
            .await;
        assert_eq!(event["state"], "left", "{}: {event}", peer.name);
    }
    assert!(b.shutdown().await, "b exits cleanly after leaving");
}

#[tokio::test]
async fn a_killed_peer_becomes_dead_on_the_others() {
    if !go_peer::available() {
        return;
    }
    let [mut a, mut b, mut c] = converged_three().await;
    c.kill_9();
    for peer in [&mut a, &mut b] {
        peer.wait_members("c dead", CONVERGE, |m| {
            state_of(m, "c").as_deref() == Some("dead")
        })
        .await;
        let event = peer
            .wait_event("c's leave event", CONVERGE, |e| {
                e["event"] == "leave" && e["name"] == "c"
            })
            .await;
        assert_eq!(event["state"], "dead", "{}: {event}", peer.name);
    }
}

#[tokio::test]
async fn a_restarted_peer_refutes_its_death() {
    if !go_peer::available() {
        return;
    }
    let [mut a, mut b, mut c] = converged_three().await;
    let bind = c.bind.clone();
    let dead_incarnation = a.member("c").await.unwrap().incarnation;
    c.kill_9();
    a.wait_members("c dead", CONVERGE, |m| {
        state_of(m, "c").as_deref() == Some("dead")
    })
    .await;
    drop(c);
    // c comes back at the same address with memberlist's first incarnation;
    // the cluster still holds it dead, so it must refute with a higher one.
    let mut c = GoPeerConfig::fast("c")
        .bind(&bind)
        .join([&a.addr])
        .spawn()
        .await;
    c.wait_event("joined", CONVERGE, |e| e["event"] == "joined")
        .await;
    for peer in [&mut a, &mut b] {
        let members = peer
            .wait_members("c alive again", CONVERGE, |m| {
                state_of(m, "c").as_deref() == Some("alive")
            })
            .await;
        let row = members.iter().find(|m| m.name == "c").unwrap();
        assert!(
            row.incarnation > dead_incarnation,
            "{}: c alive at incarnation {} (declared dead at {dead_incarnation})",
            peer.name,
            row.incarnation
        );
    }
}

#[tokio::test]
async fn push_pull_and_broadcasts_carry_user_state() {
    if !go_peer::available() {
        return;
    }
    let a = GoPeerConfig::fast("a").meta("role=seed").spawn().await;
    a.set("colour", "blue").await;
    let mut b = GoPeerConfig::fast("b").join([&a.addr]).spawn().await;
    // The join's push-pull carried a's user state.
    let merged = b
        .wait_event("a's state in the join's push-pull", CONVERGE, |e| {
            e["event"] == "merge_remote_state" && e["from"] == "a"
        })
        .await;
    assert_eq!(merged["join"], true, "{merged}");
    assert_eq!(merged["kv"]["colour"], "blue", "{merged}");
    // Node meta travelled in a's alive message.
    let row = b.member("a").await.expect("b knows a");
    assert_eq!(row.meta, "role=seed");
    // A change is broadcast as a user message.
    let mut a = a;
    b.set("size", "large").await;
    let msg = a
        .wait_event("b's user message", CONVERGE, |e| {
            e["event"] == "user_msg" && e["from"] == "b" && e["k"] == "size"
        })
        .await;
    assert_eq!(msg["v"], "large", "{msg}");
}

#[tokio::test]
async fn a_foreign_or_missing_label_is_refused() {
    if !go_peer::available() {
        return;
    }
    let mut a = GoPeerConfig::fast("a").label("alpha").spawn().await;
    let mut same = GoPeerConfig::fast("same")
        .label("alpha")
        .join([&a.addr])
        .spawn()
        .await;
    same.wait_event("joined", CONVERGE, |e| e["event"] == "joined")
        .await;
    for (name, label) in [("beta", Some("beta")), ("unlabelled", None)] {
        let config = GoPeerConfig::fast(name).join([&a.addr]);
        let config = match label {
            Some(label) => config.label(label),
            None => config,
        };
        let mut refused = config.spawn().await;
        refused
            .wait_event("join_error", CONVERGE, |e| e["event"] == "join_error")
            .await;
    }
    // a refused both streams for their label, ...
    a.wait_log(r#"unacceptable label "beta""#, CONVERGE).await;
    a.wait_log(r#"unacceptable label """#, CONVERGE).await;
    // ... and knows only the node that shares its label.
    a.wait_members("a and same alive", CONVERGE, |m| {
        names(m, "alive") == set_of(&["a", "same"])
    })
    .await;
    let all: BTreeSet<String> = a.members().await.into_iter().map(|m| m.name).collect();
    assert_eq!(all, set_of(&["a", "same"]));
}
