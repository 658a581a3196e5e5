//! Go ckit nodes and our `cluster::Node`s list each other with their ckit
//! node states; changes cross; push-pull carries them to late joiners;
//! stale messages lose, on both sides.

use super::{go_ckit, CkitView};
use crate::common::go_peer::{self, GoPeerConfig};
use crate::common::ports::{rebind, restartable_addr};
use crate::{rust_sees, CONVERGE};
use gossiphttp::cluster::{CkitState, MemberView, Node, NodeOptions};
use hyper::StatusCode;
use tokio::net::TcpListener;

/// A fast `cluster::Node` joining `join` ("" for none).
async fn rust_node(name: &str, join: &str, ckit_state: CkitState) -> Node {
    let mut o = NodeOptions::new(name).fast();
    o.join = (!join.is_empty())
        .then(|| join.to_string())
        .into_iter()
        .collect();
    o.ckit_state = ckit_state;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    Node::start(o, listener).await.unwrap()
}

fn ckit_state_of<'a>(view: &'a [MemberView], name: &str) -> Option<&'a str> {
    view.iter()
        .find(|m| m.name == name)
        .and_then(|m| m.ckit_state)
}

/// Every `(name, state)` is in `view` with that state.
fn go_lists(view: &CkitView, expected: &[(&str, &str)]) -> bool {
    view.peers.len() == expected.len()
        && expected
            .iter()
            .all(|(name, state)| view.state_of(name) == Some(*state))
}

fn rust_lists(view: &[MemberView], expected: &[(&str, &str)]) -> bool {
    expected
        .iter()
        .all(|(name, state)| ckit_state_of(view, name) == Some(*state))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_ckit_nodes_and_ours_list_each_other_with_their_states() {
    if !go_peer::available() {
        return;
    }
    // Joins in both directions: r1 joins a Go node, g2 joins r1, r2 joins g2.
    // Our nodes announce participant by default, r2 viewer; the Go nodes
    // are ckit's default, viewers that never changed state.
    let mut g1 = go_ckit("g1").spawn().await;
    let r1 = rust_node("r1", &g1.addr, CkitState::Participant).await;
    let mut g2 = go_ckit("g2").join([&r1.id().addr]).spawn().await;
    let r2 = rust_node("r2", &g2.addr, CkitState::Viewer).await;
    let all = [
        ("g1", "viewer"),
        ("g2", "viewer"),
        ("r1", "participant"),
        ("r2", "viewer"),
    ];
    for peer in [&mut g1, &mut g2] {
        let view = peer
            .wait_ckit("all four with their states", |v| go_lists(v, &all))
            .await;
        // ckit's peer rows: our nodes at their advertised addresses, only
        // its own row marked self.
        let r1_row = view.peers.iter().find(|p| p.name == "r1").unwrap();
        assert_eq!(r1_row.addr, r1.id().addr);
        let selves: Vec<&str> = view
            .peers
            .iter()
            .filter(|p| p.is_self)
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(selves, [view_name(&view)]);
        assert_eq!(view.state, "viewer", "a ckit node starts a viewer");
    }
    for node in [&r1, &r2] {
        rust_sees(node, "all four with their states", |v| rust_lists(v, &all)).await;
    }
    r1.leave().await;
    r2.leave().await;
}

/// The name of the node a ckit view belongs to (its self row).
fn view_name(view: &CkitView) -> &str {
    view.peers
        .iter()
        .find(|p| p.is_self)
        .map(|p| p.name.as_str())
        .unwrap_or("<no self row>")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changes_cross_from_go_to_rust_and_back() {
    if !go_peer::available() {
        return;
    }
    let mut g1 = go_ckit("g1").spawn().await;
    let r1 = rust_node("r1", &g1.addr, CkitState::Viewer).await;
    g1.wait_ckit("r1 a viewer", |v| v.state_of("r1") == Some("viewer"))
        .await;

    // Go: viewer -> participant -> terminating, each seen by our node.
    for state in ["participant", "terminating"] {
        let (status, body) = g1.ckit_set(state).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        rust_sees(&r1, &format!("g1 {state}"), |v| {
            ckit_state_of(v, "g1") == Some(state)
        })
        .await;
    }
    // ckit refuses going back, and says why.
    let (status, body) = g1.ckit_set("participant").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("invalid transition from terminating to participant"));

    // Ours: viewer -> participant -> terminating, each seen by the Go node.
    for state in [CkitState::Participant, CkitState::Terminating] {
        r1.set_ckit_state(state).await.unwrap();
        g1.wait_ckit(&format!("r1 {state}"), |v| {
            v.state_of("r1") == Some(state.as_str())
        })
        .await;
    }
    // Each side's own row agrees with what the other lists.
    assert_eq!(ckit_state_of(&r1.members(), "r1"), Some("terminating"));
    assert_eq!(g1.ckit().await.state, "terminating");
    r1.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_rust_node_learns_a_go_state_by_push_pull() {
    if !go_peer::available() {
        return;
    }
    let mut g1 = go_ckit("g1").spawn().await;
    let mut g2 = go_ckit("g2").join([&g1.addr]).spawn().await;
    g1.wait_ckit("g2", |v| v.state_of("g2").is_some()).await;
    let (status, _) = g1.ckit_set("participant").await;
    assert_eq!(status, StatusCode::OK);
    g2.wait_ckit("g1 participant", |v| {
        v.state_of("g1") == Some("participant")
    })
    .await;
    // No broadcast is left to carry g1's state: only a push-pull can.
    for peer in [&g1, &g2] {
        peer.ckit_drop_broadcasts().await;
    }
    let r1 = rust_node("r1", &g1.addr, CkitState::Viewer).await;
    rust_sees(&r1, "g1 participant, g2 viewer", |v| {
        rust_lists(v, &[("g1", "participant"), ("g2", "viewer")])
    })
    .await;
    r1.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_join_push_pull_carries_our_state() {
    if !go_peer::available() {
        return;
    }
    let mut g1 = go_ckit("g1").spawn().await;
    // The user state is encoded when a push-pull needs it, not on each
    // change: the join's must already hold the state announced at start.
    let r1 = rust_node("r1", &g1.addr, CkitState::Participant).await;
    let merge = g1
        .wait_event("r1's join push-pull", CONVERGE, |e| {
            e["event"] == "ckit_merge" && e["join"] == true
        })
        .await;
    let carried: Vec<(String, String)> = merge["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().into(),
                s["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        carried.contains(&("r1".into(), "participant".into())),
        "the join push-pull carried {carried:?}"
    );
    r1.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_go_node_learns_our_state_by_push_pull() {
    if !go_peer::available() {
        return;
    }
    let r1 = rust_node("r1", "", CkitState::Participant).await;
    let r2 = rust_node("r2", &r1.id().addr, CkitState::Viewer).await;
    r1.set_ckit_state(CkitState::Terminating).await.unwrap();
    rust_sees(&r2, "r1 terminating", |v| {
        rust_lists(v, &[("r1", "terminating"), ("r2", "viewer")])
    })
    .await;
    // g1 joins r2: the answer to its join push-pull is r2's ckit state,
    // with r1's entry in it.
    let mut g1 = go_ckit("g1").join([&r2.id().addr]).spawn().await;
    let merge = g1
        .wait_event("its join push-pull", CONVERGE, |e| {
            e["event"] == "ckit_merge" && e["join"] == true
        })
        .await;
    let carried: Vec<(String, String)> = merge["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().into(),
                s["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        carried.contains(&("r1".into(), "terminating".into()))
            && carried.contains(&("r2".into(), "viewer".into())),
        "the join push-pull carried {carried:?}"
    );
    g1.wait_ckit("r1 terminating, r2 viewer", |v| {
        v.state_of("r1") == Some("terminating") && v.state_of("r2") == Some("viewer")
    })
    .await;
    r1.leave().await;
    r2.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_state_message_loses_on_both_sides() {
    if !go_peer::available() {
        return;
    }
    // m1 and m2 are plain memberlist nodes: they never answer a message
    // about themselves, so what others store about them is only what was
    // crafted.
    let g1 = go_ckit("g1").spawn().await;
    let mut g2 = go_ckit("g2").join([&g1.addr]).spawn().await;
    let _m1 = GoPeerConfig::fast("m1").join([&g1.addr]).spawn().await;
    let _m2 = GoPeerConfig::fast("m2").join([&g1.addr]).spawn().await;
    let r1 = rust_node("r1", &g1.addr, CkitState::Viewer).await;
    rust_sees(&r1, "g1, g2, m1 and m2", |v| {
        rust_lists(
            v,
            &[
                ("g1", "viewer"),
                ("g2", "viewer"),
                ("m1", "viewer"),
                ("m2", "viewer"),
            ],
        )
    })
    .await;

    // m1 terminating at 1000, sent to our node, which gossips it on: the
    // Go nodes learn it from the cluster.
    g1.ckit_send(&r1.id().addr, &[("m1", 2, 1000)]).await;
    rust_sees(&r1, "m1 terminating", |v| {
        ckit_state_of(v, "m1") == Some("terminating")
    })
    .await;
    // g2 must hold m1 as a member too, not only the message: m1 joined
    // through g1, and on a loaded machine g2 can store the message before
    // memberlist tells it m1 exists (the final check reads the member).
    g2.wait_ckit("m1 a member, terminating at 1000", |v| {
        v.state_of("m1") == Some("terminating")
            && v.stamp_of("m1")
                .is_some_and(|s| s.time == 1000 && s.state == "terminating")
    })
    .await;
    // From here no broadcast can bring m1's newer state back to our node.
    g1.ckit_drop_broadcasts().await;
    g2.ckit_drop_broadcasts().await;

    // Ours: one packet, a staler message about m1, then a marker (m2
    // terminating). Both parts are applied before the view is published,
    // so the view that first shows the marker shows what the stale message
    // did.
    g1.ckit_send(&r1.id().addr, &[("m1", 1, 999), ("m2", 2, 5)])
        .await;
    rust_sees(&r1, "the marker, m2 terminating", |v| {
        ckit_state_of(v, "m2") == Some("terminating")
    })
    .await;
    assert_eq!(
        ckit_state_of(&r1.members(), "m1"),
        Some("terminating"),
        "our node took the stale message"
    );

    // Theirs: the staler message, straight to g2, is ignored.
    g1.ckit_send(&g2.addr, &[("m1", 1, 999)]).await;
    let seen = g2
        .wait_event("the stale message", CONVERGE, |e| {
            e["event"] == "ckit_msg" && e["name"] == "m1" && e["time"] == 999
        })
        .await;
    assert_eq!(seen["news"], false, "g2 took the stale message: {seen}");
    let view = g2.ckit().await;
    let kept = view
        .stamp_of("m1")
        .is_some_and(|s| s.time == 1000 && s.state == "terminating");
    if !kept || view.state_of("m1") != Some("terminating") {
        panic!(
            "g2 no longer lists m1 terminating at 1000: {view:#?}\n{}",
            g2.report()
        );
    }
    // Lamport: g2's clock moved past the newest time it saw.
    assert!(view.time > 1000, "g2's clock: {}", view.time);
    r1.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_replaces_its_previous_lifes_state_on_both_sides() {
    if !go_peer::available() {
        return;
    }
    // memberlist's LAN timings on both sides: a member restarted at once is
    // back before anyone declares it dead, so the others still hold the
    // state its previous life announced, and the new life (a viewer, its
    // clock at 0) must replace it with a fresh message.
    // Both restart on their ports: ones no outgoing connection can take.
    let mut g1 = GoPeerConfig::new("g1")
        .ckit()
        .bind(&restartable_addr())
        .spawn()
        .await;
    let mut o = NodeOptions::new("r1");
    o.join = vec![g1.addr.clone()];
    let listener = TcpListener::bind(restartable_addr()).await.unwrap();
    let r1 = Node::start(o, listener).await.unwrap();
    let (status, _) = g1.ckit_set("participant").await;
    assert_eq!(status, StatusCode::OK);
    g1.wait_ckit("r1 participant", |v| {
        v.state_of("r1") == Some("participant")
    })
    .await;
    rust_sees(&r1, "g1 participant", |v| {
        ckit_state_of(v, "g1") == Some("participant")
    })
    .await;

    // The Go node restarts: our node answers its join with its previous
    // life's state, which it replaces.
    let bind = g1.bind.clone();
    g1.kill_9();
    let mut g1 = GoPeerConfig::new("g1")
        .ckit()
        .bind(&bind)
        .join([&r1.id().addr])
        .spawn()
        .await;
    let merge = g1
        .wait_event("its join push-pull", CONVERGE, |e| {
            e["event"] == "ckit_merge" && e["join"] == true
        })
        .await;
    assert!(
        merge["states"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "g1" && s["state"] == "participant"),
        "our node still held g1's previous life: {merge}"
    );
    rust_sees(&r1, "g1 a viewer again", |v| {
        ckit_state_of(v, "g1") == Some("viewer")
    })
    .await;

    // Our node restarts as a viewer: the Go node held it participant.
    let addr = r1.id().addr.clone();
    r1.kill().await;
    assert_eq!(g1.ckit().await.state_of("r1"), Some("participant"));
    let mut o = NodeOptions::new("r1");
    o.join = vec![g1.addr.clone()];
    o.ckit_state = CkitState::Viewer;
    let listener = rebind(&addr).await;
    let r1 = Node::start(o, listener).await.unwrap();
    g1.wait_ckit("r1 a viewer again", |v| v.state_of("r1") == Some("viewer"))
        .await;
    rust_sees(&r1, "itself a viewer and g1 a viewer", |v| {
        rust_lists(v, &[("r1", "viewer"), ("g1", "viewer")])
    })
    .await;
    r1.leave().await;
}
