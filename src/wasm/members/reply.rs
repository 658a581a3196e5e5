//! The node's answer to `members`: its `/stream` body, frames unwrapped,
//! decoded as one memberlist push-pull, and that push-pull as `Member`
//! objects.
//!
//! Every byte is checked before it is trusted: the frames by the shared
//! [`crate::codec::StreamDecoder`], the message by memberlist's
//! [`StreamDecoder`] (20 MiB at most, announced lengths refused before
//! anything is reserved, a compressed message inflated only up to that
//! cap). Anything else than one push-pull is code `"protocol"`.

use crate::ckit::message::LocalState;
use crate::ckit::peer::NodeState as CkitState;
use crate::codec::StreamDecoder as FrameStream;
use crate::memberlist::message::{NodeState, PushNodeState, PushPull};
use crate::memberlist::stream::{StreamDecoder, StreamMessage};
use crate::wasm::client::deadline::Deadline;
use crate::wasm::js::{describe, error, ignore, read_step};
use bytes::BytesMut;
use js_sys::{Array, Object, Reflect, Uint8Array};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{ReadableStreamDefaultReader, Response};

/// Code `"protocol"`: the node's answer is not a valid push-pull.
fn protocol(url: &str, why: &str) -> JsValue {
    error(
        "protocol",
        &format!("{url} did not answer with a valid push-pull: {why}"),
    )
}

/// Reads `resp`'s body until one whole push-pull arrived (the rest is
/// dropped), under `deadline` as it is armed now.
pub(super) async fn read_push_pull(
    resp: &Response,
    deadline: &mut Deadline,
    url: &str,
    label: &str,
) -> Result<PushPull, JsValue> {
    let Some(body) = resp.body() else {
        return Err(empty_answer(url, label));
    };
    let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let result = decode_body(&reader, deadline, url, label).await;
    ignore(reader.cancel());
    result
}

async fn decode_body(
    reader: &ReadableStreamDefaultReader,
    deadline: &mut Deadline,
    url: &str,
    label: &str,
) -> Result<PushPull, JsValue> {
    let mut frames = FrameStream::new();
    let mut messages = StreamDecoder::response();
    let mut framed = BytesMut::new();
    let mut stream = BytesMut::new();
    let mut received = 0usize;
    loop {
        let step = read_step(reader)
            .await
            // Node's own errors (node:http2's body) carry codes of their own:
            // keep their words only.
            .map_err(|e| {
                deadline.classify(
                    JsValue::from_str(&describe(&e)),
                    "reading the push-pull from",
                    url,
                )
            })?;
        let ended = match step {
            Some(value) => {
                let chunk = value.dyn_ref::<Uint8Array>().ok_or_else(|| {
                    error(
                        "network",
                        "the response body yielded something else than bytes",
                    )
                })?;
                let start = framed.len();
                framed.resize(start + chunk.length() as usize, 0);
                chunk.copy_to(&mut framed[start..]);
                received = received.saturating_add(chunk.length() as usize);
                false
            }
            None => true,
        };
        // Frames hand out their payload as it arrives: `framed` never holds
        // more than one chunk, and `stream` no more than the message
        // decoder's cap (it refuses a message before it gets larger).
        loop {
            let payload = if ended {
                frames.decode_eof(&mut framed)
            } else {
                frames.decode(&mut framed)
            }
            .map_err(|e| protocol(url, &format!("bad framing: {e}")))?;
            match payload {
                Some(p) => stream.extend_from_slice(&p),
                None => break,
            }
        }
        let decoded = if ended {
            messages.decode_eof(&mut stream)
        } else {
            messages.decode(&mut stream)
        };
        match decoded {
            Ok(Some(StreamMessage::PushPull(pp))) => return Ok(pp),
            Ok(Some(StreamMessage::Err(e))) => {
                return Err(protocol(
                    url,
                    &format!("the node answered an error: {}", e.error),
                ))
            }
            Ok(Some(other)) => {
                return Err(protocol(
                    url,
                    &format!("the node answered a {} message", kind(&other)),
                ))
            }
            Ok(None) if ended && received == 0 => return Err(empty_answer(url, label)),
            Ok(None) if ended => {
                return Err(protocol(
                    url,
                    "the answer held no message (only empty frames)",
                ))
            }
            Ok(None) => {}
            Err(e) => return Err(protocol(url, &e.to_string())),
        }
    }
}

fn kind(message: &StreamMessage) -> &'static str {
    match message {
        StreamMessage::PushPull(_) => "push-pull",
        StreamMessage::User(_) => "user",
        StreamMessage::Ping(_) => "ping",
        StreamMessage::Ack(_) => "ack",
        StreamMessage::Err(_) => "error",
    }
}

/// An answer with no byte: memberlist closes a stream whose label is not
/// its own without a word, so that is the likely cause.
fn empty_answer(url: &str, label: &str) -> JsValue {
    let sent = if label.is_empty() {
        "no label".to_string()
    } else {
        format!("the label {label:?}")
    };
    protocol(
        url,
        &format!(
            "it ended the stream without answering. A node does that when the call's label \
             is not the cluster's: this call sent {sent}; set the `label` option to the \
             cluster's label (ckit's and Alloy's cluster.name, gossiphttp node --label)"
        ),
    )
}

/// The push-pull's members as `Member` objects, with ckit's state for each
/// when the user state is ckit's (a member it does not list is a viewer, as
/// ckit counts it). User state that is not ckit's (a plain memberlist
/// application's) leaves `ckitState` out.
pub(super) fn to_members(push_pull: &PushPull, url: &str) -> Result<JsValue, JsValue> {
    let ckit: Option<HashMap<String, CkitState>> = if push_pull.user_state.is_empty() {
        None
    } else {
        LocalState::decode(&push_pull.user_state).ok().map(|local| {
            // Go ckit keeps the latest message per node; the list holds one
            // per node, and the highest time wins should it not.
            let mut latest: HashMap<String, (u64, CkitState)> = HashMap::new();
            for s in local.node_states.into_iter().flatten() {
                let newer = latest.get(&s.node_name).is_none_or(|&(t, _)| s.time >= t);
                if newer {
                    latest.insert(s.node_name, (s.time, s.new_state));
                }
            }
            latest
                .into_iter()
                .map(|(name, (_, state))| (name, state))
                .collect()
        })
    };
    let out = Array::new();
    for node in &push_pull.nodes {
        let member = Object::new();
        let set = |k: &str, v: &JsValue| Reflect::set(&member, &k.into(), v).map(|_| ());
        set("name", &node.name.as_str().into())?;
        set("addr", &address(node, url)?.into())?;
        set("state", &state_name(node.state).into())?;
        set("incarnation", &JsValue::from(node.incarnation))?;
        let meta = node.meta.as_deref().unwrap_or_default();
        set("meta", &Uint8Array::from(meta).into())?;
        if let Some(states) = &ckit {
            let state = states.get(&node.name).copied().unwrap_or(CkitState::Viewer);
            set("ckitState", &state.as_str().into())?;
        }
        out.push(&member);
    }
    Ok(out.into())
}

fn state_name(state: NodeState) -> &'static str {
    match state {
        NodeState::Alive => "alive",
        NodeState::Suspect => "suspect",
        NodeState::Dead => "dead",
        NodeState::Left => "left",
    }
}

/// `ip:port` (`[ip]:port` for IPv6, and IPv4 for an IPv4-mapped one, as
/// Go prints it); an address of another length than 4
/// or 16 bytes is no IP.
fn address(node: &PushNodeState, url: &str) -> Result<String, JsValue> {
    let ip = match node.addr.len() {
        4 => {
            let b: [u8; 4] = node.addr[..].try_into().unwrap_or_default();
            IpAddr::V4(Ipv4Addr::from(b))
        }
        16 => {
            let b: [u8; 16] = node.addr[..].try_into().unwrap_or_default();
            let v6 = Ipv6Addr::from(b);
            // Go's 16-byte form of an IPv4 address prints as IPv4.
            match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            }
        }
        n => {
            return Err(protocol(
                url,
                &format!(
                    "member {:?} has an address of {n} bytes (an IP has 4 or 16)",
                    node.name
                ),
            ))
        }
    };
    Ok(std::net::SocketAddr::new(ip, node.port).to_string())
}
