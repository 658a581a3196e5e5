//! One cluster of Go memberlist nodes and our `cluster::Node`s: joins in
//! both directions, convergence, a `kill -9` detected on both sides (a Go
//! process, our node in-process, a `gossiphttp node` process), a leave seen
//! as left, refutation after a restart by either side, metadata (our custom
//! state) carried by Go nodes, a foreign label refused by either side, and a
//! member speaking a delegate version we do not, refused both ways
//! (`verifyProtocol`).

use crate::cli_proc::CliProc;
use crate::common::go_peer::{self, GoPeer, GoPeerConfig};
use crate::common::ports::{rebind, restartable_addr};
use crate::{names, rust_sees, set_of, state_of, CliNode, CONVERGE};
use gossiphttp::cluster::{MemberState, MemberView, Node, NodeOptions};
use std::collections::BTreeSet;
use tokio::net::TcpListener;

fn options(name: &str, join: &[&str]) -> NodeOptions {
    let mut o = NodeOptions::new(name).fast();
    o.join = join.iter().map(|s| s.to_string()).collect();
    o
}

async fn start(o: NodeOptions) -> Node {
    start_at(o, "127.0.0.1:0").await
}

async fn start_at(o: NodeOptions, addr: &str) -> Node {
    let listener = TcpListener::bind(addr).await.unwrap();
    Node::start(o, listener).await.unwrap()
}

fn alive_names(view: &[MemberView]) -> BTreeSet<String> {
    view.iter()
        .filter(|m| m.state == MemberState::Alive)
        .map(|m| m.name.clone())
        .collect()
}

async fn go_sees(peer: &mut GoPeer, what: &str, ready: impl Fn(&[go_peer::Member]) -> bool) {
    peer.wait_members(what, CONVERGE, ready).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_and_rust_nodes_join_through_each_other_and_converge() {
    if !go_peer::available() {
        return;
    }
    // A Go node first; a Rust node joins it; a Go node joins the Rust one;
    // a Rust node joins the last Go one.
    let mut g1 = GoPeerConfig::fast("g1").spawn().await;
    let r1 = start(options("r1", &[&g1.addr])).await;
    let mut g2 = GoPeerConfig::fast("g2").join([&r1.id().addr]).spawn().await;
    let r2 = start(options("r2", &[&g2.addr])).await;
    let all = set_of(&["g1", "g2", "r1", "r2"]);
    for node in [&r1, &r2] {
        rust_sees(node, "all four alive", |v| alive_names(v) == all).await;
    }
    for peer in [&mut g1, &mut g2] {
        go_sees(peer, "all four alive", |m| names(m, "alive") == all).await;
    }
    // Go lists our nodes at the addresses they advertise.
    for m in g1.members().await {
        if m.name == "r1" {
            assert_eq!(m.address(), r1.id().addr);
        }
    }
    r1.leave().await;
    r2.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_is_detected_and_a_leave_is_seen_as_left_on_both_sides() {
    if !go_peer::available() {
        return;
    }
    let mut g1 = GoPeerConfig::fast("g1").spawn().await;
    let mut g2 = GoPeerConfig::fast("g2").join([&g1.addr]).spawn().await;
    let r1 = start(options("r1", &[&g1.addr])).await;
    let r2 = start(options("r2", &[&g2.addr])).await;
    let r3 = start(options("r3", &[&g1.addr])).await;
    let all = set_of(&["g1", "g2", "r1", "r2", "r3"]);
    rust_sees(&r1, "all five alive", |v| alive_names(v) == all).await;
    go_sees(&mut g1, "all five alive", |m| names(m, "alive") == all).await;

    // A Go node killed: our nodes find it dead.
    g2.kill_9();
    for node in [&r1, &r2, &r3] {
        rust_sees(node, "g2 dead", |v| {
            v.iter()
                .any(|m| m.name == "g2" && m.state == MemberState::Dead)
        })
        .await;
    }
    // A Rust node killed: the Go node finds it dead.
    r3.kill().await;
    go_sees(&mut g1, "r3 dead", |m| {
        state_of(m, "r3").as_deref() == Some("dead")
    })
    .await;

    // A Rust node leaves: Go records it as left, not dead.
    r2.leave().await;
    go_sees(&mut g1, "r2 left", |m| {
        state_of(m, "r2").as_deref() == Some("left")
    })
    .await;
    // A Go node leaves: we record it as left.
    g1.leave().await;
    rust_sees(&r1, "g1 left", |v| {
        v.iter()
            .any(|m| m.name == "g1" && m.state == MemberState::Left)
    })
    .await;
    r1.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_rust_node_refutes_its_death_on_go_nodes() {
    if !go_peer::available() {
        return;
    }
    let mut g1 = GoPeerConfig::fast("g1").spawn().await;
    let r1 = start_at(options("r1", &[&g1.addr]), &restartable_addr()).await;
    go_sees(&mut g1, "r1 alive", |m| {
        state_of(m, "r1").as_deref() == Some("alive")
    })
    .await;
    let addr = r1.id().addr.clone();
    r1.kill().await;
    go_sees(&mut g1, "r1 dead", |m| {
        state_of(m, "r1").as_deref() == Some("dead")
    })
    .await;
    let before = g1.member("r1").await.unwrap().incarnation;
    // Same name, same address: Go holds it dead at an incarnation the new
    // life must beat; it refutes, and Go lists it alive again.
    let r1 = Node::start(options("r1", &[&g1.addr]), rebind(&addr).await)
        .await
        .unwrap();
    go_sees(&mut g1, "r1 alive again", |m| {
        m.iter()
            .any(|m| m.name == "r1" && m.state == "alive" && m.incarnation > before)
    })
    .await;
    rust_sees(&r1, "one row for itself, alive", |v| {
        v.iter().filter(|m| m.name == "r1").count() == 1 && alive_names(v).contains("g1")
    })
    .await;
    r1.leave().await;
}

/// The reverse of the test above, with the Go node restarted where a real
/// one would be: a new process under the same name on a new address, back
/// at memberlist's first incarnation, which our nodes hold dead. Its alive
/// at that incarnation is old news to them; the push-pull reply to its
/// join tells it it is dead (Go suspects itself for a dead row), it refutes
/// with a higher incarnation, and our nodes must take that as the member
/// alive again, in its one row, at the new address. (Go nodes would keep
/// the old, dead address: memberlist's "Conflicting address".)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_go_node_refutes_its_death_on_rust_nodes() {
    if !go_peer::available() {
        return;
    }
    let r1 = start(options("r1", &[])).await;
    let r2 = start(options("r2", &[&r1.id().addr])).await;
    let mut g1 = GoPeerConfig::fast("g1").join([&r1.id().addr]).spawn().await;
    let all = set_of(&["g1", "r1", "r2"]);
    for node in [&r1, &r2] {
        rust_sees(node, "all three alive", |v| alive_names(v) == all).await;
    }
    let old_addr = g1.addr.clone();
    g1.kill_9();
    for node in [&r1, &r2] {
        rust_sees(node, "g1 dead", |v| {
            v.iter()
                .any(|m| m.name == "g1" && m.state == MemberState::Dead)
        })
        .await;
    }
    let dead_at = |node: &Node| {
        let view = node.members();
        view.iter().find(|m| m.name == "g1").unwrap().incarnation
    };
    let before = dead_at(&r1).max(dead_at(&r2));
    drop(g1);
    // It rejoins through r2; r1 hears of it from the cluster.
    let mut g1 = GoPeerConfig::fast("g1").join([&r2.id().addr]).spawn().await;
    assert_ne!(g1.addr, old_addr, "the new life listens elsewhere");
    for node in [&r1, &r2] {
        rust_sees(node, "g1 alive again at its new address", |v| {
            v.iter().any(|m| {
                m.name == "g1"
                    && m.state == MemberState::Alive
                    && m.addr == g1.addr
                    && m.incarnation > before
            })
        })
        .await;
        let rows = node.members().iter().filter(|m| m.name == "g1").count();
        assert_eq!(rows, 1, "{}: {:#?}", node.id().name, node.members());
    }
    // Its own doing: memberlist logs the refutation (of a suspect message
    // from our push-pull, or of a dead one still gossiped).
    g1.wait_log("memberlist: Refuting a ", CONVERGE).await;
    r1.leave().await;
    r2.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_custom_state_travels_in_metadata_go_nodes_carry() {
    if !go_peer::available() {
        return;
    }
    let mut g1 = GoPeerConfig::fast("g1").spawn().await;
    let r1 = start(options("r1", &[&g1.addr])).await;
    // r2 learns r1's state only through the Go node.
    let r2 = start(options("r2", &[&g1.addr])).await;
    let mut r2_updates = r2.subscribe();
    r1.set_state("role", "leader").await.unwrap();
    go_sees(&mut g1, "r1's metadata", |m| {
        m.iter().any(|m| m.name == "r1" && m.meta.contains("role"))
    })
    .await;
    let update = tokio::time::timeout(CONVERGE, async {
        loop {
            let u = r2_updates.recv().await.unwrap();
            if u.origin == "r1" {
                return u;
            }
        }
    })
    .await
    .expect("r2 hears r1's state");
    assert_eq!(
        (update.key.as_str(), &update.value[..]),
        ("role", &b"leader"[..])
    );
    r1.leave().await;
    r2.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_label_is_refused_and_the_same_label_joins() {
    if !go_peer::available() {
        return;
    }
    let mut g1 = GoPeerConfig::fast("g1").label("prod").spawn().await;
    let mut other = options("stranger", &[&g1.addr]);
    other.label = "staging".into();
    let stranger = start(other).await;
    let mut same = options("r1", &[&g1.addr]);
    same.label = "prod".into();
    let r1 = start(same).await;
    rust_sees(&r1, "g1 alive", |v| alive_names(v).contains("g1")).await;
    go_sees(&mut g1, "r1 alive", |m| {
        state_of(m, "r1").as_deref() == Some("alive")
    })
    .await;
    // By now the stranger has tried to join several times.
    assert!(state_of(&g1.members().await, "stranger").is_none());
    assert!(!alive_names(&stranger.members()).contains("g1"));
    stranger.kill().await;
    r1.leave().await;
}

/// The reverse of the test above: the label is checked by whoever receives
/// a packet or stream, so a Rust node must itself refuse Go nodes of another
/// cluster, or of none, that join it (their join fails and it never lists
/// them), and take one of its own label.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_node_refuses_go_nodes_of_a_foreign_or_missing_label() {
    if !go_peer::available() {
        return;
    }
    let mut labelled = options("r1", &[]);
    labelled.label = "prod".into();
    let r1 = start(labelled).await;
    let mut refused = Vec::new();
    for (name, label) in [("staging", Some("staging")), ("unlabelled", None)] {
        let config = GoPeerConfig::fast(name).join([&r1.id().addr]);
        let config = match label {
            Some(label) => config.label(label),
            None => config,
        };
        let mut peer = config.spawn().await;
        peer.wait_event("its join refused", CONVERGE, |e| e["event"] == "join_error")
            .await;
        refused.push(peer);
    }
    let mut g1 = GoPeerConfig::fast("g1")
        .label("prod")
        .join([&r1.id().addr])
        .spawn()
        .await;
    rust_sees(&r1, "g1 alive", |v| alive_names(v).contains("g1")).await;
    go_sees(&mut g1, "r1 alive", |m| names(m, "alive").contains("r1")).await;
    // By now anything the refused nodes sent would have been merged.
    let seen: BTreeSet<String> = r1.members().into_iter().map(|m| m.name).collect();
    assert_eq!(seen, set_of(&["r1", "g1"]), "{:#?}", r1.members());
    for peer in &refused {
        let seen: BTreeSet<String> = peer.members().await.into_iter().map(|m| m.name).collect();
        assert_eq!(seen, set_of(&[&peer.name.clone()]));
    }
    r1.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_a_delegate_version_we_do_not_speak_is_refused_both_ways() {
    if !go_peer::available() {
        return;
    }
    // memberlist's verifyProtocol: these Go nodes announce delegate
    // version 2 (min, max and current); ours announce 0.
    let odd = |name: &str| GoPeerConfig::fast(name).flag("delegate-version", "2");
    let mut g1 = odd("g1").spawn().await;
    let r1 = start(options("r1", &[&g1.addr])).await;
    // Go refuses our side of the join's push-pull; we refuse its reply.
    g1.wait_log(
        "Node 'r1' delegate protocol version (0) is incompatible",
        CONVERGE,
    )
    .await;
    // A Go node that joins us: we refuse its side, it refuses ours.
    let mut g2 = odd("g2").join([&r1.id().addr]).spawn().await;
    g2.wait_event("its join refused", CONVERGE, |e| e["event"] == "join_error")
        .await;
    // A Go node speaking our version joins: once r1 lists it, the refused
    // ones would have been merged long before, had they been.
    let mut g3 = GoPeerConfig::fast("g3").join([&r1.id().addr]).spawn().await;
    rust_sees(&r1, "g3 alive", |v| alive_names(v).contains("g3")).await;
    go_sees(&mut g3, "r1 alive", |m| names(m, "alive").contains("r1")).await;
    let seen: BTreeSet<String> = r1.members().into_iter().map(|m| m.name).collect();
    assert_eq!(seen, set_of(&["r1", "g3"]), "{:#?}", r1.members());
    for peer in [&mut g1, &mut g2] {
        let seen = names(&peer.members().await, "alive");
        assert_eq!(seen, set_of(&[&peer.name.clone()]));
    }
    r1.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_node_refused_for_versions_logs_who_which_versions_and_the_fix() {
    if !go_peer::available() {
        return;
    }
    let g1 = GoPeerConfig::fast("g1")
        .flag("delegate-version", "2")
        .spawn()
        .await;
    let args = [
        "node",
        "--name",
        "c1",
        "--listen",
        "127.0.0.1:0",
        "--join",
        &g1.addr,
    ];
    let mut node = CliProc::spawn(&args, &[]).unwrap_or_else(|e| panic!("{e}"));
    node.address("listening on ", CONVERGE)
        .unwrap_or_else(|e| panic!("{e}"));
    let wanted = [
        "WARN",
        "push-pull refused",
        "member 'g1' speaks delegate protocol version 2, outside [2, 0]",
        "give every member a current delegate protocol version",
    ];
    let started = std::time::Instant::now();
    while !wanted.iter().all(|w| node.stderr_text().contains(w)) {
        assert!(
            started.elapsed() < CONVERGE,
            "c1's log: {}",
            node.stderr_text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `a_kill_is_detected...` kills a Rust node in-process, where its runtime
/// closes sockets and connections in an order of its own; a `kill -9` of a
/// `gossiphttp node` process is what a crash looks like to the cluster: the
/// kernel resets its connections and nothing more is said. Go nodes must
/// find it dead (a failure, not a leave) within the same bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_rust_node_process_is_found_dead_by_go_nodes() {
    if !go_peer::available() {
        return;
    }
    let mut g1 = GoPeerConfig::fast("g1").spawn().await;
    let mut g2 = GoPeerConfig::fast("g2").join([&g1.addr]).spawn().await;
    let mut c1 = CliNode::spawn("c1", &g2.addr, None);
    let all = set_of(&["g1", "g2", "c1"]);
    for peer in [&mut g1, &mut g2] {
        go_sees(peer, "all three alive", |m| names(m, "alive") == all).await;
    }
    c1.kill_9();
    for peer in [&mut g1, &mut g2] {
        go_sees(peer, "c1 dead", |m| {
            state_of(m, "c1").as_deref() == Some("dead")
        })
        .await;
        let event = peer
            .wait_event("c1's leave event", CONVERGE, |e| {
                e["event"] == "leave" && e["name"] == "c1"
            })
            .await;
        assert_eq!(event["state"], "dead", "{}: {event}", peer.name);
    }
}
