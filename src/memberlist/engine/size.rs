//! How many bytes a message takes on the wire, for the gossip budget.
//!
//! TODO(merge): this is a conservative estimate from the field lengths
//! (every integer at its widest, every string header at its widest for its
//! length), never below the real size. When the codec
//! (`src/memberlist/` encoding) lands, this must become the codec's exact
//! encoded length, so packets fill as memberlist's do.

use super::super::message::Message;

/// A msgpack raw string or bytes: header plus body.
fn raw(len: usize) -> usize {
    let header = if len < 32 {
        1
    } else if len <= 0xffff {
        3
    } else {
        5
    };
    header + len
}

/// A map key (a Go field name) and its value.
fn field(key: &str, value: usize) -> usize {
    raw(key.len()) + value
}

const UINT: usize = 5; // u32 at its widest (ce + 4)
const UINT16: usize = 3; // cd + 2
const BOOL: usize = 1;
const NIL: usize = 1;
const MAP_HEADER: usize = 1; // fixmap: every struct has at most 15 fields

fn opt(bytes: Option<&[u8]>) -> usize {
    bytes.map_or(NIL, |b| raw(b.len()))
}

/// The encoded length of `message`, type byte included (an upper bound; see
/// the module doc).
pub fn encoded_len(message: &Message) -> usize {
    let body = match message {
        Message::Ping(p) => {
            MAP_HEADER
                + field("SeqNo", UINT)
                + field("Node", raw(p.node.len()))
                + field("SourceAddr", raw(p.source_addr.len()))
                + field("SourcePort", UINT16)
                + field("SourceNode", raw(p.source_node.len()))
        }
        Message::IndirectPing(p) => {
            MAP_HEADER
                + field("SeqNo", UINT)
                + field("Target", raw(p.target.len()))
                + field("Port", UINT16)
                + field("Node", raw(p.node.len()))
                + field("Nack", BOOL)
                + field("SourceAddr", raw(p.source_addr.len()))
                + field("SourcePort", UINT16)
                + field("SourceNode", raw(p.source_node.len()))
        }
        Message::Ack(a) => {
            MAP_HEADER + field("SeqNo", UINT) + field("Payload", opt(a.payload.as_deref()))
        }
        Message::Nack(_) => MAP_HEADER + field("SeqNo", UINT),
        Message::Suspect(s) => {
            MAP_HEADER
                + field("Incarnation", UINT)
                + field("Node", raw(s.node.len()))
                + field("From", raw(s.from.len()))
        }
        Message::Alive(a) => {
            MAP_HEADER
                + field("Incarnation", UINT)
                + field("Node", raw(a.node.len()))
                + field("Addr", raw(a.addr.len()))
                + field("Port", UINT16)
                + field("Meta", opt(a.meta.as_deref()))
                + field("Vsn", raw(a.vsn.len()))
        }
        Message::Dead(d) => {
            MAP_HEADER
                + field("Incarnation", UINT)
                + field("Node", raw(d.node.len()))
                + field("From", raw(d.from.len()))
        }
        Message::User(payload) => payload.len(),
        Message::Err(e) => MAP_HEADER + field("Error", raw(e.error.len())),
    };
    1 + body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memberlist::message::{Alive, Dead, IndirectPing, Ping, Suspect};
    use bytes::Bytes;

    fn go_len(name: &str) -> usize {
        let v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string("../shared/vectors/memberlist_messages.json").unwrap(),
        )
        .unwrap();
        let case = v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap();
        case["hex"].as_str().unwrap().len() / 2
    }

    fn assert_bound(name: &str, message: Message) {
        let (go, ours) = (go_len(name), encoded_len(&message));
        assert!(
            ours >= go && ours <= go + go / 4,
            "{name}: Go {go}, estimate {ours}"
        );
    }

    #[test]
    fn the_estimate_is_never_below_go_s_length_and_close_to_it() {
        let ip = Bytes::from_static(&[127, 0, 0, 1]);
        assert_bound(
            "alive_ckit",
            Message::Alive(Alive {
                incarnation: 1,
                node: "node-a".into(),
                addr: ip.clone(),
                port: 7946,
                meta: None,
                vsn: Bytes::from_static(&[1, 5, 2, 0, 0, 0]),
            }),
        );
        let (a, b) = (String::from("node-a"), String::from("node-b"));
        assert_bound(
            "suspect",
            Message::Suspect(Suspect {
                incarnation: 3,
                node: b.clone(),
                from: a.clone(),
            }),
        );
        assert_bound(
            "dead",
            Message::Dead(Dead {
                incarnation: 3,
                node: b.clone(),
                from: a.clone(),
            }),
        );
        assert_bound(
            "ping_with_source",
            Message::Ping(Ping {
                seq_no: 1,
                node: b.clone(),
                source_addr: ip.clone(),
                source_port: 7946,
                source_node: a.clone(),
            }),
        );
        assert_bound(
            "indirect_ping_nack",
            Message::IndirectPing(IndirectPing {
                seq_no: 10,
                target: ip.clone(),
                port: 7947,
                node: b,
                nack: true,
                source_addr: ip,
                source_port: 7946,
                source_node: a,
            }),
        );
        assert_eq!(encoded_len(&Message::User(Bytes::from_static(b"abc"))), 4);
    }
}
