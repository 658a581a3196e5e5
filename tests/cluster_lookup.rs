//! `Node::lookup` in a real three-node cluster: every node names the same
//! owners for a key, the owners a ckit sharder over the participants picks
//! (a ring of 512 tokens per peer unless `NodeOptions::hasher` says
//! otherwise), `is_self` on the owner's own node, and a member that leaves
//! owns nothing once its departure is known.
#![cfg(feature = "cluster")]

use gossiphttp::ckit::peer::{NodeState, Peer};
use gossiphttp::ckit::shard::{string_key, Hasher, Op, Sharder};
use gossiphttp::cluster::{CkitState, MemberState, MemberView, Node, NodeOptions};
use std::num::NonZeroUsize;
use std::time::Duration;
use tokio::net::TcpListener;

const CONVERGE: Duration = Duration::from_secs(20);

async fn start(name: &str, join: Option<&Node>, edit: impl FnOnce(&mut NodeOptions)) -> Node {
    let mut o = NodeOptions::new(name).fast();
    o.join = join.map(|n| vec![n.id().addr.clone()]).unwrap_or_default();
    edit(&mut o);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    Node::start(o, listener).await.unwrap()
}

/// Exactly the `expected` members alive, each in its ckit state.
fn settled(view: &[MemberView], expected: &[(&str, &str)]) -> bool {
    let alive: Vec<_> = view
        .iter()
        .filter(|m| m.state == MemberState::Alive)
        .collect();
    alive.len() == expected.len()
        && alive
            .iter()
            .all(|m| expected.contains(&(m.name.as_str(), m.ckit_state.unwrap_or("none"))))
}

async fn wait(node: &Node, what: &str, ready: impl Fn(&[MemberView]) -> bool) {
    if let Err(e) = node.wait_for(CONVERGE, |v| ready(v)).await {
        panic!(
            "{} never saw {what}: {e}; {:#?}",
            node.id().name,
            node.members()
        );
    }
}

fn reference(hasher: Hasher, nodes: &[&Node]) -> Sharder {
    let mut sharder = Sharder::new(hasher);
    sharder.set_peers(nodes.iter().map(|n| {
        Peer::new(
            n.id().name.clone(),
            n.id().addr.clone(),
            NodeState::Participant,
        )
    }));
    sharder
}

fn owner_names(owners: &[Peer]) -> Vec<&str> {
    owners.iter().map(|p| p.name.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_names_the_owners_ckits_ring_picks() {
    let a = start("a", None, |_| {}).await;
    let b = start("b", Some(&a), |_| {}).await;
    let v = start("v", Some(&a), |o| o.ckit_state = CkitState::Viewer).await;
    let nodes = [&a, &b, &v];
    for node in nodes {
        wait(node, "a, b participants and v a viewer", |m| {
            settled(
                m,
                &[("a", "participant"), ("b", "participant"), ("v", "viewer")],
            )
        })
        .await;
    }
    // Alloy's hasher: a ring of 512 tokens per peer, over the participants.
    let ring = Hasher::Ring(NonZeroUsize::new(512).unwrap());
    let want = reference(ring, &[&a, &b]);
    let mut owned = [0; 2];
    for i in 0..200 {
        let key = string_key(format!("tenant-{i}"));
        let expected = want.lookup(key, 2, Op::ReadWrite).unwrap();
        for node in nodes {
            let owners = node.lookup(key, 2).unwrap();
            assert_eq!(
                owner_names(&owners),
                owner_names(&expected),
                "{}",
                node.id().name
            );
            for p in &owners {
                assert_eq!(
                    p.is_self,
                    p.name == node.id().name,
                    "{p:?} on {}",
                    node.id().name
                );
                let member = node
                    .members()
                    .into_iter()
                    .find(|m| m.name == p.name)
                    .unwrap();
                assert_eq!(p.addr, member.addr);
            }
        }
        owned[usize::from(expected[0].name == "b")] += 1;
    }
    assert!(
        owned[0] > 0 && owned[1] > 0,
        "both participants own keys: {owned:?}"
    );
    // Two participants: a third owner does not exist, for writes or reads.
    let e = v.lookup(string_key("x"), 3).unwrap_err();
    assert!(e.to_string().contains("need at least 3, have 2"), "{e}");
    assert!(v.lookup_for(string_key("x"), 3, Op::Read).is_err());

    // b leaves: once a and v know, a owns every key.
    b.leave().await;
    for node in [&a, &v] {
        wait(node, "b left", |m| {
            m.iter()
                .any(|m| m.name == "b" && m.state == MemberState::Left)
        })
        .await;
        for i in 0..50 {
            let owners = node.lookup(string_key(format!("tenant-{i}")), 1).unwrap();
            assert_eq!(owner_names(&owners), ["a"]);
        }
    }
    a.leave().await;
    v.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hasher_is_the_one_the_options_name() {
    let hasher = |o: &mut NodeOptions| o.hasher = Hasher::Rendezvous;
    let a = start("a", None, hasher).await;
    let b = start("b", Some(&a), hasher).await;
    let c = start("c", Some(&a), hasher).await;
    let nodes = [&a, &b, &c];
    for node in nodes {
        wait(node, "all three participants", |m| {
            settled(
                m,
                &[
                    ("a", "participant"),
                    ("b", "participant"),
                    ("c", "participant"),
                ],
            )
        })
        .await;
    }
    let want = reference(Hasher::Rendezvous, &nodes);
    let ring = reference(Hasher::Ring(NonZeroUsize::new(512).unwrap()), &nodes);
    let mut differs_from_ring = false;
    for i in 0..200 {
        let key = string_key(format!("tenant-{i}"));
        let expected = want.lookup(key, 3, Op::ReadWrite).unwrap();
        differs_from_ring |= ring.lookup(key, 3, Op::ReadWrite).unwrap() != expected;
        for node in nodes {
            let owners = node.lookup(key, 3).unwrap();
            assert_eq!(owner_names(&owners), owner_names(&expected));
        }
    }
    assert!(differs_from_ring, "the test tells the hashers apart");
    for node in [a, b, c] {
        node.leave().await;
    }
}
