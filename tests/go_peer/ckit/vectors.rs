//! The Go ckit peer writes and reads ckit's messages exactly as the
//! reference (`../shared/vectors/ckit_messages.json`, produced by running
//! grafana/ckit) and as our codec does: what the mixed tests below rely on.

use super::go_ckit;
use crate::common::go_peer::{self, GoPeerConfig};
use gossiphttp::ckit::message::{LocalState, State};
use hyper::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

fn vectors() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors/ckit_messages.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {} (the shared vectors): {e}", path.display()));
    serde_json::from_str(&text).expect("ckit_messages.json is JSON")
}

/// A vector's State fields as the peer's JSON takes them.
fn state_fields(v: &Value) -> Value {
    let f = &v["fields"];
    json!({"NodeName": f["NodeName"], "NewState": f["NewState"], "Time": f["Time"]})
}

fn local_fields(v: &Value) -> Value {
    let states: Option<Vec<Value>> = v["NodeStates"].as_array().map(|list| {
        list.iter()
            .map(|s| json!({"NodeName": s["NodeName"], "NewState": s["NewState"], "Time": s["Time"]}))
            .collect()
    });
    json!({"CurrentTime": v["CurrentTime"], "NodeStates": states})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_go_ckit_peer_writes_and_reads_the_vectors_bytes() {
    if !go_peer::available() {
        return;
    }
    let v = vectors();
    let states = v["state_messages"].as_array().unwrap();
    let locals = v["local_state"].as_array().unwrap();
    assert!(
        states.len() >= 10 && locals.len() >= 4,
        "the vectors shrank"
    );
    let peer = go_ckit("enc").spawn().await;

    let (status, encoded) = peer
        .post_json(
            "/debug/ckit/encode",
            json!({
                "states": states.iter().map(state_fields).collect::<Vec<_>>(),
                "local_states": locals.iter().map(local_fields).collect::<Vec<_>>(),
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{encoded}");
    for (i, vector) in states.iter().enumerate() {
        assert_eq!(
            encoded["states"][i], vector["hex"],
            "State {} as the peer writes it",
            vector["fields"]
        );
    }
    for (i, vector) in locals.iter().enumerate() {
        assert_eq!(
            encoded["local_states"][i], vector["hex"],
            "localState {} as the peer writes it",
            vector["hex"]
        );
    }

    // It reads them back to the same fields, as ckit's decoder did.
    let (status, decoded) = peer
        .post_json(
            "/debug/ckit/decode",
            json!({
                "states": states.iter().map(|s| &s["hex"]).collect::<Vec<_>>(),
                "local_states": locals.iter().map(|s| &s["hex"]).collect::<Vec<_>>(),
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{decoded}");
    for (i, vector) in states.iter().enumerate() {
        assert_eq!(
            decoded["states"][i],
            state_fields(vector),
            "decoding {}",
            vector["hex"]
        );
    }
    for (i, vector) in locals.iter().enumerate() {
        assert_eq!(
            decoded["local_states"][i],
            local_fields(vector),
            "decoding {}",
            vector["hex"]
        );
    }
    // ckit's Parse refuses a short payload, another magic, type 0 and
    // unknown types.
    let (_, refused) = peer
        .post_json(
            "/debug/ckit/decode",
            json!({"states": ["1201", "13010183", "120100c0", "120102c0"]}),
        )
        .await;
    for (i, answer) in refused["states"].as_array().unwrap().iter().enumerate() {
        assert!(answer.get("error").is_some(), "refusal {i}: {answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_go_ckit_peer_and_our_codec_agree_on_fresh_messages() {
    if !go_peer::available() {
        return;
    }
    // Messages no vector holds: the same bytes from both, each read by the
    // other.
    let messages = [
        State::new("r1", gossiphttp::ckit::peer::NodeState::Participant, 1),
        State::new(
            "a-node-name-past-thirty-one-bytes",
            gossiphttp::ckit::peer::NodeState::Terminating,
            70_000,
        ),
    ];
    let local = LocalState {
        current_time: 300,
        node_states: Some(messages.to_vec()),
    };
    let peer = go_ckit("enc").spawn().await;
    let fields: Vec<Value> = messages
        .iter()
        .map(|m| json!({"NodeName": m.node_name, "NewState": m.new_state.value(), "Time": m.time}))
        .collect();
    let (_, encoded) = peer
        .post_json(
            "/debug/ckit/encode",
            json!({"states": fields, "local_states": [{"CurrentTime": 300, "NodeStates": fields}]}),
        )
        .await;
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(encoded["states"][i], hex::encode(m.encode()), "{m:?}");
        let theirs = hex::decode(encoded["states"][i].as_str().unwrap()).unwrap();
        assert_eq!(State::decode(&theirs).as_ref(), Ok(m));
    }
    assert_eq!(encoded["local_states"][0], hex::encode(local.encode()));
}

/// From the captured conversation's ckit log (`ckit_conversation.md`), the
/// State messages each node took before `until_ms`: `(node, about) ->
/// (state, time)`, the last one winning.
fn conversation_states(until_ms: f64) -> BTreeMap<(String, String), (String, u64)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors/ckit_conversation.md");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {} (the shared vectors): {e}", path.display()));
    let mut taken = BTreeMap::new();
    for line in text.lines() {
        // level=debug t_ms=2810.154 node=node-b msg="handling state message" msg="node-a @2: viewer"
        let Some(rest) = line.strip_prefix("level=debug t_ms=") else {
            continue;
        };
        let Some((t_ms, rest)) = rest.split_once(" node=") else {
            continue;
        };
        let Some((node, rest)) = rest.split_once(" msg=\"handling state message\" msg=\"") else {
            continue;
        };
        if t_ms.parse::<f64>().unwrap() >= until_ms {
            continue;
        }
        let message = rest.trim_end_matches('"');
        let (about, rest) = message.split_once(" @").unwrap();
        let (time, state) = rest.split_once(": ").unwrap();
        taken.insert(
            (node.to_string(), about.to_string()),
            (state.to_string(), time.parse().unwrap()),
        );
    }
    taken
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_go_ckit_peers_replay_the_captured_join() {
    if !go_peer::available() {
        return;
    }
    // The conversation's first join: node-b joins node-a (ckit's settings),
    // each is listed as a viewer at 0 in the other's push-pull, hears that
    // about itself, and refutes it at a fresh tick.
    let expected = conversation_states(4900.0);
    assert!(
        expected.contains_key(&("node-b".to_string(), "node-a".to_string())),
        "the conversation's join: {expected:?}"
    );
    let mut a = GoPeerConfig::new("node-a")
        .ckit()
        .preset("ckit")
        .spawn()
        .await;
    let mut b = GoPeerConfig::new("node-b")
        .ckit()
        .preset("ckit")
        .join([&a.addr])
        .spawn()
        .await;
    for peer in [&mut a, &mut b] {
        let me = peer.name.clone();
        let mine: Vec<_> = expected
            .iter()
            .filter(|((node, _), _)| *node == me)
            .map(|((_, about), stamp)| (about.clone(), stamp.clone()))
            .collect();
        let view = peer
            .wait_ckit("the States the captured node took", |v| {
                mine.iter().all(|(about, (state, time))| {
                    v.stamp_of(about)
                        .is_some_and(|s| s.state == *state && s.time == *time)
                })
            })
            .await;
        // Its own entry is the refutation the other node took.
        let other = if me == "node-a" { "node-b" } else { "node-a" };
        let (state, time) = &expected[&(other.to_string(), me.clone())];
        let own = view.stamp_of(&me).unwrap();
        assert_eq!((&own.state, own.time), (state, *time), "{me}'s own entry");
    }
}
