//! `gossiphttp node --ckit-state` in a cluster with a Go ckit node: the Go
//! node lists each of ours with the state it announced, and ours list the
//! Go node as ckit's default, a viewer; signals move a running node on.

use super::go_ckit;
use crate::common::go_peer;
use crate::{CliNode, CONVERGE};
use std::time::{Duration, Instant};

/// The ckit state a members JSON gives `name`.
fn ckit_state_in(members: &serde_json::Value, name: &str) -> Option<String> {
    let rows = members
        .as_array()
        .or_else(|| members["members"].as_array())?;
    rows.iter()
        .find(|m| m["name"] == name)
        .and_then(|m| m["ckit_state"].as_str())
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_ckit_node_lists_cli_nodes_with_the_state_they_announce() {
    if !go_peer::available() {
        return;
    }
    let mut g1 = go_ckit("g1").spawn().await;
    let viewer = CliNode::spawn("c-viewer", &g1.addr, Some("viewer"));
    let participant = CliNode::spawn("c-default", &g1.addr, None);
    g1.wait_ckit("the CLI nodes with their states", |v| {
        v.state_of("c-viewer") == Some("viewer") && v.state_of("c-default") == Some("participant")
    })
    .await;
    let started = Instant::now();
    loop {
        let members = viewer.members();
        if ckit_state_in(&members, "g1").as_deref() == Some("viewer")
            && ckit_state_in(&members, "c-default").as_deref() == Some("participant")
        {
            break;
        }
        assert!(
            started.elapsed() < CONVERGE,
            "c-viewer's members never listed g1 a viewer and c-default a participant: {members}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(participant);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_move_a_running_cli_node_along_ckits_states_as_go_sees_them() {
    if !go_peer::available() {
        return;
    }
    let mut g1 = go_ckit("g1").spawn().await;
    let node = CliNode::spawn("c1", &g1.addr, Some("viewer"));
    g1.wait_ckit("c1 a viewer", |v| v.state_of("c1") == Some("viewer"))
        .await;
    // SIGUSR1: the viewer takes keys.
    node.signal("-USR1");
    g1.wait_ckit("c1 a participant", |v| {
        v.state_of("c1") == Some("participant")
    })
    .await;
    // Again: ckit has no step from participant to participant. Refused,
    // logged with both states, and nothing changes.
    node.signal("-USR1");
    let started = Instant::now();
    while !node.log().contains("ckit state not changed") {
        assert!(started.elapsed() < CONVERGE, "no warning: {}", node.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = node.log();
    assert!(
        log.contains("WARN") && log.contains("from participant to participant"),
        "{log}"
    );
    // SIGUSR2: terminating, handing its keys over before it stops.
    node.signal("-USR2");
    g1.wait_ckit("c1 terminating", |v| {
        v.state_of("c1") == Some("terminating")
    })
    .await;
    assert_eq!(
        ckit_state_in(&node.members(), "c1").as_deref(),
        Some("terminating")
    );
}
