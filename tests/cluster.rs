//! Membership over gossiphttp: convergence, death, restart, graceful
//! leave, partitions, custom broadcasts; over h2c and TLS.
//!
//! Every wait is bounded (`Node::wait_for`), and every assertion is on
//! member states, never on elapsed time.

mod common;

use common::metrics::metric_in;
use common::ports::{rebind, restartable_addr};
use common::tls_pair;
use gossiphttp::cluster::{MemberState, MemberView, Node, NodeOptions, PeerFilter};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

const CONVERGE: Duration = Duration::from_secs(20);

fn options(name: &str, join: &[String]) -> NodeOptions {
    let mut o = NodeOptions::new(name).fast();
    o.join = join.to_vec();
    o
}

async fn start_at(o: NodeOptions, addr: &str) -> Node {
    let listener = TcpListener::bind(addr).await.unwrap();
    Node::start(o, listener).await.unwrap()
}

async fn start(o: NodeOptions) -> Node {
    start_at(o, "127.0.0.1:0").await
}

fn state_of(view: &[MemberView], name: &str) -> Option<MemberState> {
    view.iter().find(|m| m.name == name).map(|m| m.state)
}

fn alive(n: usize) -> impl Fn(&[MemberView]) -> bool + Clone {
    move |v| v.iter().filter(|m| m.state == MemberState::Alive).count() == n
}

async fn wait_all(nodes: &[&Node], what: &str, cond: impl Fn(&[MemberView]) -> bool + Clone) {
    for node in nodes {
        let c = cond.clone();
        if let Err(e) = node.wait_for(CONVERGE, move |v| c(v)).await {
            panic!(
                "{} never saw {what}: {e}; its view: {:#?}",
                node.id().name,
                node.members()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_converge_die_restart_and_leave() {
    let n1 = start(options("n1", &[])).await;
    let seed = vec![n1.id().addr.clone()];
    let mut nodes = vec![n1];
    for i in 2..=5 {
        let o = options(&format!("n{i}"), &seed);
        // n3 restarts on its port: one no outgoing connection can take.
        let node = if i == 3 {
            start_at(o, &restartable_addr()).await
        } else {
            start(o).await
        };
        nodes.push(node);
    }
    let all: Vec<&Node> = nodes.iter().collect();
    wait_all(&all, "5 alive members", alive(5)).await;

    // n3 crashes: no leave, its server just goes away.
    let n3 = nodes.remove(2);
    let n3_addr = n3.id().addr.clone();
    n3.kill().await;
    let rest: Vec<&Node> = nodes.iter().collect();
    wait_all(&rest, "n3 dead", |v| {
        state_of(v, "n3") == Some(MemberState::Dead)
    })
    .await;

    // It restarts with the same name on the same address, and is alive
    // again everywhere (it refutes its death with a higher incarnation),
    // with one row for it in every view, its own included.
    let n3 = Node::start(options("n3", &seed), rebind(&n3_addr).await)
        .await
        .unwrap();
    nodes.insert(2, n3);
    let all: Vec<&Node> = nodes.iter().collect();
    wait_all(&all, "n3 back and 5 alive", alive(5)).await;
    for node in &all {
        let rows = node.members().iter().filter(|m| m.name == "n3").count();
        assert_eq!(rows, 1, "{}: {:#?}", node.id().name, node.members());
    }

    // n4 leaves gracefully: the others see it as left, not dead.
    let n4 = nodes.remove(3);
    n4.leave().await;
    let rest: Vec<&Node> = nodes.iter().collect();
    wait_all(&rest, "n4 left", |v| {
        state_of(v, "n4") == Some(MemberState::Left)
    })
    .await;
    for node in &nodes {
        assert_eq!(state_of(&node.members(), "n4"), Some(MemberState::Left));
    }

    // The members endpoint and the metrics tell the same story. Polled: on
    // a loaded machine a member can be suspected for a moment, which both
    // would show.
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let text = nodes[0].metrics_text();
        if metric_in(&text, "cluster_members{state=\"alive\"}") == 4.0
            && metric_in(&text, "cluster_members{state=\"left\"}") == 1.0
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let body = http_get(nodes[0].id().addr.parse().unwrap(), "/api/v1/members").await;
    assert!(
        body.contains("\"name\":\"n4\"") && body.contains("\"state\":\"left\""),
        "{body}"
    );

    for n in nodes {
        n.leave().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_heals_when_the_hook_is_removed() {
    let partitioned = Arc::new(AtomicBool::new(false));
    let left_half: Arc<std::sync::Mutex<HashSet<String>>> = Default::default();
    // Reserve the addresses first so every node's filter knows the halves.
    let mut listeners = Vec::new();
    for _ in 0..4 {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let addrs: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect();
    left_half.lock().unwrap().extend(addrs[..2].iter().cloned());

    let mut nodes = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let mut o = options(&format!("p{i}"), &addrs[..1]);
        let me_left = i < 2;
        let (flag, half) = (partitioned.clone(), left_half.clone());
        let filter: PeerFilter = Arc::new(move |to: &str| {
            !flag.load(Ordering::SeqCst) || half.lock().unwrap().contains(to) == me_left
        });
        o.outgoing_filter = Some(filter);
        nodes.push(Node::start(o, listener).await.unwrap());
    }
    let all: Vec<&Node> = nodes.iter().collect();
    wait_all(&all, "4 alive", alive(4)).await;

    partitioned.store(true, Ordering::SeqCst);
    for (i, node) in nodes.iter().enumerate() {
        let others: Vec<String> = if i < 2 {
            vec!["p2".into(), "p3".into()]
        } else {
            vec!["p0".into(), "p1".into()]
        };
        node.wait_for(CONVERGE, |v| {
            others
                .iter()
                .all(|o| state_of(v, o) == Some(MemberState::Dead))
        })
        .await
        .unwrap_or_else(|e| {
            panic!(
                "p{i} never saw the other half dead: {e}: {:#?}",
                node.members()
            )
        });
    }

    partitioned.store(false, Ordering::SeqCst);
    wait_all(&all, "4 alive after healing", alive(4)).await;
    for n in nodes {
        n.kill().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_broadcast_reaches_every_member() {
    let n0 = start(options("b0", &[])).await;
    let seed = vec![n0.id().addr.clone()];
    let mut nodes = vec![n0];
    for i in 1..4 {
        nodes.push(start(options(&format!("b{i}"), &seed)).await);
    }
    let all: Vec<&Node> = nodes.iter().collect();
    wait_all(&all, "4 alive", alive(4)).await;

    let mut subs: Vec<_> = nodes[1..].iter().map(|n| n.subscribe()).collect();
    nodes[0].set_state("role", "leader").await.unwrap();
    for (i, sub) in subs.iter_mut().enumerate() {
        let update = tokio::time::timeout(CONVERGE, sub.recv())
            .await
            .unwrap_or_else(|_| panic!("b{} never got the broadcast", i + 1))
            .unwrap();
        assert_eq!(
            (update.origin.as_str(), update.key.as_str()),
            ("b0", "role")
        );
        assert_eq!(&update.value[..], b"leader");
    }
    // A newer value replaces the old one everywhere.
    nodes[0].set_state("role", "follower").await.unwrap();
    for (i, sub) in subs.iter_mut().enumerate() {
        let update = tokio::time::timeout(CONVERGE, sub.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&update.value[..], b"follower", "b{}", i + 1);
        assert_eq!(nodes[i + 1].state().len(), 1);
    }
    for n in nodes {
        n.kill().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_over_tls_converge_and_detect_a_death() {
    let (server_tls, client_tls) = tls_pair();
    let tls = |name: &str, join: &[String]| {
        let mut o = options(name, join);
        o.transport.server_tls = Some(server_tls.clone());
        o.transport.client_tls = Some(client_tls.clone());
        o
    };
    let t0 = start(tls("t0", &[])).await;
    let seed = vec![t0.id().addr.clone()];
    let t1 = start(tls("t1", &seed)).await;
    let t2 = start(tls("t2", &seed)).await;
    wait_all(&[&t0, &t1, &t2], "3 alive over TLS", alive(3)).await;
    t2.kill().await;
    wait_all(&[&t0, &t1], "t2 dead", |v| {
        state_of(v, "t2") == Some(MemberState::Dead)
    })
    .await;
    t0.kill().await;
    t1.kill().await;
}

/// A plain HTTP/1.1 GET (the node's read-only routes accept HTTP/1.1).
async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}

/// memberlist's `EnableCompression` off on one member: its peers read its
/// uncompressed packets and push-pulls, and it reads their compressed ones
/// (the bench measured the bytes: 3.5 times as many without).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_with_and_without_compression_form_one_cluster() {
    let c0 = start(options("c0", &[])).await;
    let mut plain = options("c1", &[c0.id().addr.clone()]);
    plain.membership.enable_compression = false;
    let c1 = start(plain).await;
    let c2 = start(options("c2", &[c1.id().addr.clone()])).await;
    wait_all(&[&c0, &c1, &c2], "3 alive", alive(3)).await;

    // State both ways (from the plain member, and to it), with a value
    // that compresses well.
    for (from, to) in [(&c1, &c0), (&c2, &c1)] {
        let mut sub = to.subscribe();
        from.set_state("note", "x".repeat(400)).await.unwrap();
        let update = tokio::time::timeout(CONVERGE, sub.recv())
            .await
            .unwrap_or_else(|_| panic!("{} never got the state", to.id().name))
            .unwrap();
        assert_eq!(
            (update.origin.as_str(), update.value.len()),
            (from.id().name.as_str(), 400)
        );
    }
    for n in [c0, c1, c2] {
        n.kill().await;
    }
}
