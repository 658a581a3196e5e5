//! The cluster page's routes on a node's port: the page and its assets,
//! `/api/v1/events` (the membership timeline) and `/api/v1/shards` (the key
//! space split between the participants), against a live cluster.
//!
//! Every wait is bounded, and every assertion is on what the routes answer,
//! never on elapsed time.
#![cfg(feature = "cluster")]

use gossiphttp::cluster::{CkitState, MemberState, MemberView, Node, NodeOptions};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const CONVERGE: Duration = Duration::from_secs(20);

async fn start(name: &str, join: &[String], ckit_state: CkitState) -> Node {
    let mut o = NodeOptions::new(name).fast();
    o.join = join.to_vec();
    o.ckit_state = ckit_state;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    Node::start(o, listener).await.unwrap()
}

/// A plain HTTP/1.0 GET (no chunked body to undo): status, content type, body.
async fn get(addr: &str, path: &str) -> (u16, String, String) {
    let addr: SocketAddr = addr.parse().unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .expect("the node answers within 5 s")
        .unwrap();
    let (head, body) = out.split_once("\r\n\r\n").expect("a complete response");
    let status = head[9..12].parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_string)
        })
        .unwrap_or_default();
    (status, content_type, body.to_string())
}

async fn get_json(addr: &str, path: &str) -> Value {
    let (status, content_type, body) = get(addr, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    assert_eq!(content_type, "application/json", "{path}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn ready(view: &[MemberView]) -> bool {
    view.len() == 3
        && view
            .iter()
            .all(|m| m.state == MemberState::Alive && m.ckit_state.is_some())
}

/// `(name, kind)` of every event in an `/api/v1/events` answer.
fn events(answer: &Value) -> Vec<(String, String)> {
    answer["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn share_names(answer: &Value) -> Vec<&str> {
    answer["shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_its_timeline_and_the_key_space_follow_a_live_cluster() {
    let a = start("page-a", &[], CkitState::Participant).await;
    let seed = vec![a.id().addr.clone()];
    let b = start("page-b", &seed, CkitState::Participant).await;
    let viewer = start("page-viewer", &seed, CkitState::Viewer).await;
    for node in [&a, &b, &viewer] {
        if let Err(e) = node.wait_for(CONVERGE, ready).await {
            panic!("{}: {e}: {:#?}", node.id().name, node.members());
        }
    }
    let addr = a.id().addr.clone();

    // The page and what it loads, from the node itself.
    let (status, content_type, page) = get(&addr, "/").await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "text/html; charset=utf-8")
    );
    assert!(page.contains("src=\"cluster.js\"") && page.contains("href=\"cluster.css\""));
    let (status, content_type, script) = get(&addr, "/cluster.js").await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "text/javascript; charset=utf-8")
    );
    assert!(script.contains("api/v1/events"));
    let (status, content_type, _) = get(&addr, "/cluster.css").await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "text/css; charset=utf-8")
    );

    // Every member's arrival is on the timeline, numbered in order.
    let all = get_json(&addr, "/api/v1/events").await;
    assert_eq!(all["capacity"], 512);
    let seen = events(&all);
    for name in ["page-a", "page-b", "page-viewer"] {
        assert!(
            seen.contains(&(name.into(), "joined".into())),
            "{name}: {all}"
        );
    }
    let seqs: Vec<u64> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let last = *seqs.last().unwrap();
    // `after` gives only newer events (none, unless a member was suspected
    // for a moment on a loaded machine), and the newest seq.
    let newer = get_json(&addr, &format!("/api/v1/events?after={last}")).await;
    assert!(
        newer["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["seq"].as_u64().unwrap() > last),
        "{newer}"
    );
    assert!(newer["latest_seq"].as_u64().unwrap() >= last, "{newer}");

    // The key space: the two participants, the viewer owns nothing; every
    // sample key has one owner.
    let shards = get_json(&addr, "/api/v1/shards").await;
    assert_eq!(shards["hasher"], "ring");
    assert_eq!(shards["tokens_per_peer"], 512);
    assert_eq!(share_names(&shards), ["page-a", "page-b"], "{shards}");
    let keys: u64 = shards["shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["keys"].as_u64().unwrap())
        .sum();
    assert_eq!(keys, shards["sample_keys"].as_u64().unwrap());
    let rendezvous = get_json(&addr, "/api/v1/shards?hasher=rendezvous").await;
    assert_eq!(rendezvous["hasher"], "rendezvous");
    assert_eq!(rendezvous["tokens_per_peer"], Value::Null);
    assert_eq!(share_names(&rendezvous), ["page-a", "page-b"]);

    // Bad queries are refused with the reason.
    let (status, _, body) = get(&addr, "/api/v1/shards?hasher=md5").await;
    assert_eq!(status, 400);
    assert!(
        body.contains("md5") && body.contains("rendezvous or multiprobe"),
        "{body}"
    );
    // A ring of the request's own token count is not computed (nor kept).
    let (status, _, body) = get(&addr, "/api/v1/shards?hasher=ring:65536").await;
    assert_eq!(status, 400);
    assert!(body.contains("the node's own hasher (ring)"), "{body}");
    let (status, _, body) = get(&addr, "/api/v1/events?after=yesterday").await;
    assert_eq!(status, 400);
    assert!(body.contains("after"), "{body}");

    // A crash: the death reaches the timeline, and the dead member's keys
    // go to the one participant left.
    b.kill().await;
    a.wait_for(CONVERGE, |v| {
        v.iter()
            .any(|m| m.name == "page-b" && m.state == MemberState::Dead)
    })
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + CONVERGE;
    let death = loop {
        let newer = get_json(&addr, &format!("/api/v1/events?after={last}")).await;
        let found = newer["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "page-b" && e["kind"] == "dead")
            .cloned();
        if let Some(death) = found {
            break death;
        }
        assert!(tokio::time::Instant::now() < deadline, "no death: {newer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(death["state"], "dead");
    assert!(death["seq"].as_u64().unwrap() > last);
    let shards = get_json(&addr, "/api/v1/shards").await;
    assert_eq!(share_names(&shards), ["page-a"], "{shards}");
    assert_eq!(shards["shares"][0]["share"], 1.0);

    // A graceful leave is a leave on the timeline, not a death.
    let seen_death = death["seq"].as_u64().unwrap();
    viewer.leave().await;
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let newer = get_json(&addr, &format!("/api/v1/events?after={seen_death}")).await;
        let viewer_events: Vec<&Value> = newer["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["name"] == "page-viewer")
            .collect();
        assert!(viewer_events.iter().all(|e| e["kind"] != "dead"), "{newer}");
        if viewer_events.iter().any(|e| e["kind"] == "left") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no leave: {newer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    a.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_space_route_measures_the_nodes_own_hasher_unless_asked_for_another() {
    use gossiphttp::ckit::shard::Hasher;
    for (hasher, name, tokens) in [
        (Hasher::Multiprobe, "multiprobe", Value::Null),
        (
            Hasher::Ring(std::num::NonZeroUsize::new(64).unwrap()),
            "ring",
            Value::from(64),
        ),
    ] {
        let mut o = NodeOptions::new("solo").fast();
        o.hasher = hasher;
        let node = Node::start(o, TcpListener::bind("127.0.0.1:0").await.unwrap())
            .await
            .unwrap();
        let addr = node.id().addr.clone();
        node.wait_for(CONVERGE, |m| {
            m.iter().any(|r| r.ckit_state == Some("participant"))
        })
        .await
        .unwrap();
        let shards = get_json(&addr, "/api/v1/shards").await;
        assert_eq!(shards["hasher"], name, "{shards}");
        assert_eq!(shards["tokens_per_peer"], tokens, "{shards}");
        assert_eq!(share_names(&shards), ["solo"], "{shards}");
        // Named in the request: Alloy's ring of 512 tokens.
        let ring = get_json(&addr, "/api/v1/shards?hasher=ring").await;
        assert_eq!(ring["tokens_per_peer"], 512, "{ring}");
        node.kill().await;
    }
}
