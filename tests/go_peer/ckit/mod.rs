//! Go ckit nodes (`memberlist-peer --ckit`: grafana/ckit's node behaviour
//! over Debian's memberlist, see the peer's README.md) and ours in one
//! cluster. `vectors`: the peer writes and reads ckit's messages as the
//! reference vectors pin them. `states`: each side lists the other with its
//! node state, state changes cross, push-pull carries them to late joiners,
//! stale messages lose. `cli`: `gossiphttp node --ckit-state` seen by a Go
//! ckit node.
//!
//! This file: the client of the peer's `/debug/ckit` routes.

mod cli;
mod states;
mod vectors;

use crate::common::go_peer::{GoPeer, GoPeerConfig};
use crate::CONVERGE;
use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

/// A fast Go ckit node (probes every 200 ms, push-pull every 2 s).
pub fn go_ckit(name: &str) -> GoPeerConfig {
    GoPeerConfig::fast(name).ckit()
}

/// A member as a Go ckit node lists it (ckit's `peer.Peer`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CkitPeer {
    pub name: String,
    pub addr: String,
    #[serde(rename = "self")]
    pub is_self: bool,
    pub state: String,
}

/// A stored State message (ckit's `peerStates`, members or not).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Stamp {
    pub name: String,
    pub state: String,
    pub time: u64,
}

/// `GET /debug/ckit`.
#[derive(Debug, Clone, Deserialize)]
pub struct CkitView {
    /// The node's own state and lamport clock.
    pub state: String,
    pub time: u64,
    pub peers: Vec<CkitPeer>,
    pub peer_states: Vec<Stamp>,
    /// Broadcasts still queued for transmission.
    pub queued: usize,
}

impl CkitView {
    /// The state this node lists `name` with, if it is a peer.
    pub fn state_of(&self, name: &str) -> Option<&str> {
        self.peers
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.state.as_str())
    }

    /// The stored State message about `name`, member or not.
    pub fn stamp_of(&self, name: &str) -> Option<&Stamp> {
        self.peer_states.iter().find(|s| s.name == name)
    }
}

/// A State message to craft: (node name, ckit's state number, lamport time).
pub type Crafted<'a> = (&'a str, u8, u64);

/// The ckit routes of a Go peer started with `--ckit` (an inherent impl:
/// `common::go_peer` is a module of this test crate).
impl GoPeer {
    pub async fn post_json(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let (status, answer) = self
            .request_with(Method::POST, path, Bytes::from(body.to_string()))
            .await;
        let value = serde_json::from_slice(&answer)
            .unwrap_or_else(|e| panic!("POST {path} on {}: not JSON ({e})", self.name));
        (status, value)
    }

    pub async fn ckit(&self) -> CkitView {
        let (status, body) = self.request(Method::GET, "/debug/ckit").await;
        assert_eq!(
            status,
            StatusCode::OK,
            "GET /debug/ckit on {} (started without --ckit?): {}",
            self.name,
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).expect("/debug/ckit answers its view")
    }

    /// ckit's `ChangeState`; 409 when ckit refuses the step.
    pub async fn ckit_set(&self, state: &str) -> (StatusCode, Value) {
        let path = format!("/debug/ckit/set?state={state}");
        let (status, body) = self.request(Method::POST, &path).await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// Sends crafted State messages to `to` in one packet (a compound when
    /// several, parts in order).
    pub async fn ckit_send(&self, to: &str, messages: &[Crafted<'_>]) {
        let messages: Vec<Value> = messages
            .iter()
            .map(|(name, state, time)| json!({"NodeName": name, "NewState": state, "Time": time}))
            .collect();
        let (status, body) = self
            .post_json("/debug/ckit/send", json!({"to": to, "messages": messages}))
            .await;
        assert_eq!(status, StatusCode::OK, "/debug/ckit/send: {body}");
    }

    pub async fn ckit_drop_broadcasts(&self) {
        let (status, _) = self
            .request(Method::POST, "/debug/ckit/drop-broadcasts")
            .await;
        assert_eq!(status, StatusCode::OK);
    }

    /// Polls the ckit view until `holds`; panics after [`CONVERGE`] with
    /// the last view and the peer's events.
    pub async fn wait_ckit(&mut self, what: &str, holds: impl Fn(&CkitView) -> bool) -> CkitView {
        let deadline = tokio::time::Instant::now() + CONVERGE;
        loop {
            let view = self.ckit().await;
            if holds(&view) {
                return view;
            }
            if tokio::time::Instant::now() >= deadline {
                let report = self.report();
                panic!(
                    "{}: {what} not seen within {CONVERGE:?}; ckit view: {view:#?}\n{report}",
                    self.name
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}
