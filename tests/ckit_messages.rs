//! ckit's messages against the reference vectors
//! (`../shared/vectors/ckit_messages.json`), and every frame of the
//! captured conversations between real ckit nodes
//! (`ckit_conversation*.jsonl`, memberlist v0.5.3 and v0.5.0) decoded
//! through all layers (gossiphttp frame, label, CRC, LZW, compound,
//! memberlist message, ckit message), described as the Go harness described
//! it (`go_decoded`), and re-encoded to the same bytes.

mod vectors_support;

use bytes::BytesMut;
use gossiphttp::ckit::message::{LocalState, MessageError, NodeState, State};
use gossiphttp::codec::{
    PacketDecoder, StreamDecoder as FrameStreamDecoder, DEFAULT_MAX_PACKET_SIZE,
};
use gossiphttp::memberlist::message::{Message, PushNodeState, PushPull};
use gossiphttp::memberlist::packet::{
    decompress_body, encode_packets, split_compound, split_crc, split_label, LabelPolicy,
    PacketOptions,
};
use gossiphttp::memberlist::stream::{StreamDecoder, StreamMessage, MAX_PUSH_STATE_BYTES};
use gossiphttp::memberlist::DecodeError;
use serde_json::Value;
use std::net::IpAddr;
use vectors_support::{hex, hex_field, json, jsonl, unhex, Failures};

fn state_of(f: &Value) -> Option<State> {
    Some(State {
        node_name: f["NodeName"].as_str().unwrap().to_owned(),
        new_state: NodeState::try_from(f["NewState"].as_u64().unwrap()).ok()?,
        time: f["Time"].as_u64().unwrap(),
    })
}

#[test]
fn state_messages_decode_and_encode_as_ckit_does() {
    let mut failures = Failures::default();
    let mut checked = 0;
    for m in json("ckit_messages.json")["state_messages"]
        .as_array()
        .unwrap()
    {
        let bytes = hex_field(m, "hex");
        let broadcast = hex_field(m, "as_memberlist_user_broadcast_hex");
        let name = m["fields"]["NodeName"].as_str().unwrap();
        checked += 1;
        let Some(want) = state_of(&m["fields"]) else {
            // ckit would store a state it has no name for; this codec refuses it.
            let value = m["fields"]["NewState"].as_u64().unwrap();
            failures.eq(
                &format!("{name}: unknown state"),
                State::decode(&bytes),
                Err(MessageError::Decode(DecodeError::UnknownValue {
                    field: "NewState",
                    value,
                })),
            );
            continue;
        };
        failures.eq(
            &format!("{name}: decode"),
            State::decode(&bytes),
            Ok(want.clone()),
        );
        failures.eq(&format!("{name}: encode"), hex(&want.encode()), hex(&bytes));
        failures.eq(
            &format!("{name}: broadcast"),
            hex(&want.encode_user_message()),
            hex(&broadcast),
        );
        failures.eq(
            &format!("{name}: as a memberlist packet"),
            Message::decode(&broadcast).map(|m| m == Message::User(bytes.clone().into())),
            Ok(true),
        );
    }
    failures.finish(checked);
}

#[test]
fn non_ckit_bytes_are_refused() {
    assert_eq!(State::decode(&[0x12]), Err(MessageError::NotCkit));
    assert_eq!(
        State::decode(&[0x12, 0x02, 0x01, 0x80]),
        Err(MessageError::NotCkit)
    );
    assert_eq!(
        State::decode(&[0x12, 0x01, 0x00, 0x80]),
        Err(MessageError::UnknownType(0))
    );
    assert_eq!(
        State::decode(&[0x12, 0x01, 0x02, 0x80]),
        Err(MessageError::UnknownType(2))
    );
}

#[test]
fn local_states_decode_and_encode_as_ckit_does() {
    let v = json("ckit_messages.json");
    let mut failures = Failures::default();
    let mut checked = 0;
    for l in v["local_state"].as_array().unwrap() {
        let bytes = hex_field(l, "hex");
        let want = LocalState {
            current_time: l["CurrentTime"].as_u64().unwrap(),
            node_states: l["NodeStates"]
                .as_array()
                .map(|a| a.iter().map(|s| state_of(s).unwrap()).collect()),
        };
        failures.eq(
            &format!("local state {}", hex(&bytes)),
            LocalState::decode(&bytes),
            Ok(want.clone()),
        );
        failures.eq("local state encode", hex(&want.encode()), hex(&bytes));
        checked += 1;
    }
    let from_node = &v["local_state_from_Node_LocalState"];
    for key in [
        "before_ChangeState_hex",
        "after_ChangeState_participant_hex",
    ] {
        let bytes = hex_field(from_node, key);
        let decoded = LocalState::decode(&bytes).unwrap();
        failures.eq(key, hex(&decoded.encode()), hex(&bytes));
        checked += 1;
    }
    failures.finish(checked);
}

#[test]
fn a_ckit_nodes_alive_and_node_state_carry_nil_meta() {
    let meta = &json("ckit_messages.json")["node_meta"];
    let alive = hex_field(&meta["alive_message_of_a_ckit_node"], "hex");
    let Message::Alive(a) = Message::decode(&alive).unwrap() else {
        panic!("not an alive")
    };
    assert_eq!(a.meta, None);
    assert_eq!(hex(&Message::Alive(a).to_vec()), hex(&alive));
    let state = hex_field(
        &meta["pushNodeState_of_a_ckit_node"],
        "msgpack_hex_without_type_byte",
    );
    use gossiphttp::memberlist::wire::GoMsgpack;
    let (node, _) = PushNodeState::decode_msgpack(&state).unwrap();
    assert_eq!(node.meta, None);
}

#[test]
fn broadcasts_ride_along_a_ping_in_a_compound() {
    let v = json("ckit_messages.json");
    let case = &v["ping_piggybacking_state_broadcast"];
    let packet = unhex(case["packets_hex"][0].as_str().unwrap());
    let decoded =
        gossiphttp::memberlist::packet::decode_packet(&packet, &LabelPolicy::default()).unwrap();
    assert!(!decoded.had_crc);
    let [Message::Ping(ping), Message::User(user)] = &decoded.messages[..] else {
        panic!("expected ping + user, got {:?}", decoded.messages)
    };
    assert_eq!(ping.seq_no, 7);
    assert_eq!(
        State::decode(user).unwrap().new_state,
        NodeState::Participant
    );
    let again = encode_packets(
        &decoded.messages,
        &PacketOptions {
            label: "",
            crc: false,
            compress: true,
        },
    )
    .unwrap();
    assert_eq!(hex(&again[0]), hex(&packet));
    for step in v["memberlist_event_mapping"]["trace"].as_array().unwrap() {
        for b in step["GetBroadcasts(3,1398)_after_hex"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let bytes = unhex(b.as_str().unwrap());
            assert_eq!(hex(&State::decode(&bytes).unwrap().encode()), hex(&bytes));
        }
    }
}

// ------------------------------------------------ the captured conversation

fn ip(addr: &[u8]) -> String {
    match addr.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(addr).unwrap()).to_string(),
        16 => IpAddr::from(<[u8; 16]>::try_from(addr).unwrap()).to_string(),
        _ => format!("{addr:?}"),
    }
}

fn go_bytes(b: &Option<bytes::Bytes>) -> String {
    match b {
        None => "nil".into(),
        Some(b) => format!("{:?}", b.to_vec()).replace(',', ""),
    }
}

fn vsn(b: &[u8]) -> String {
    format!("{b:?}").replace(',', "")
}

fn describe_state(s: &State) -> String {
    format!(
        "ckitState{{NodeName:{} NewState:{} Time:{}}}",
        s.node_name, s.new_state, s.time
    )
}

fn describe_local_state(bytes: &[u8]) -> String {
    let l = LocalState::decode(bytes).expect("ckit local state");
    let states: Vec<String> = l
        .node_states
        .unwrap_or_default()
        .iter()
        .map(|s| format!("{}={}@{}", s.node_name, s.new_state, s.time))
        .collect();
    format!(
        "ckitLocalState{{CurrentTime:{} NodeStates:[{}]}}",
        l.current_time,
        states.join(" ")
    )
}

/// A message as the Go harness printed it.
fn describe_message(m: &Message) -> String {
    match m {
        Message::Ping(p) => {
            let mut s = format!("ping{{SeqNo:{} Node:{}", p.seq_no, p.node);
            if !p.source_addr.is_empty() {
                s += &format!(
                    " SourceAddr:{} SourcePort:{} SourceNode:{}",
                    ip(&p.source_addr),
                    p.source_port,
                    p.source_node
                );
            }
            s + "}"
        }
        Message::Ack(a) => format!("ack{{SeqNo:{} Payload:{}}}", a.seq_no, go_bytes(&a.payload)),
        Message::Alive(a) => format!(
            "alive{{Incarnation:{} Node:{} Addr:{} Port:{} Meta:{} Vsn:{}}}",
            a.incarnation,
            a.node,
            ip(&a.addr),
            a.port,
            go_bytes(&a.meta),
            vsn(&a.vsn)
        ),
        Message::Dead(d) => format!(
            "dead{{Incarnation:{} Node:{} From:{}}}",
            d.incarnation, d.node, d.from
        ),
        Message::Suspect(d) => format!(
            "suspect{{Incarnation:{} Node:{} From:{}}}",
            d.incarnation, d.node, d.from
        ),
        Message::User(u) => format!(
            "user > {}",
            describe_state(&State::decode(u).expect("ckit state"))
        ),
        other => format!("{other:?}"),
    }
}

/// A packet's layers and messages, as the Go harness printed them.
fn describe_packet(bytes: &[u8]) -> String {
    let (label, rest) = split_label(bytes).unwrap();
    let mut out = String::new();
    if let Some(l) = label {
        out += &format!("label({}) > ", String::from_utf8_lossy(l));
    }
    let (crc, rest) = split_crc(rest).unwrap();
    if crc {
        out += "crc(ok) > ";
    }
    out + &describe_layers(rest)
}

fn describe_layers(bytes: &[u8]) -> String {
    match bytes[0] {
        0x09 => {
            let inner = decompress_body(&bytes[1..], 1 << 24).unwrap();
            format!(
                "lzw({}->{} bytes) > {}",
                bytes.len(),
                inner.len(),
                describe_layers(&inner)
            )
        }
        0x07 => {
            let (parts, missing) = split_compound(&bytes[1..]).unwrap();
            assert_eq!(missing, 0);
            let parts: Vec<String> = parts.iter().map(|p| describe_layers(p)).collect();
            format!("compound({})[{}]", parts.len(), parts.join(", "))
        }
        _ => describe_message(&Message::decode(bytes).unwrap()),
    }
}

fn describe_push_pull(pp: &PushPull) -> String {
    let nodes: Vec<String> = pp
        .nodes
        .iter()
        .map(|n| {
            format!(
                "node{{Name:{} Addr:{} Port:{} Meta:{} Incarnation:{} State:{} Vsn:{}}}",
                n.name,
                ip(&n.addr),
                n.port,
                go_bytes(&n.meta),
                n.incarnation,
                n.state as u8,
                vsn(&n.vsn)
            )
        })
        .collect();
    format!(
        "pushPull{{Join:{} Nodes({}):[{}] UserState({} bytes):{}}}",
        pp.join,
        pp.nodes.len(),
        nodes.join(", "),
        pp.user_state.len(),
        describe_local_state(&pp.user_state)
    )
}

/// The one payload of a frame, through the gossiphttp frame decoders.
fn frame_payload(frame: &[u8], endpoint: &str) -> Vec<u8> {
    let mut src = BytesMut::from(frame);
    let payload = if endpoint == "message" {
        PacketDecoder::new(DEFAULT_MAX_PACKET_SIZE)
            .decode_eof(&mut src)
            .unwrap()
    } else {
        FrameStreamDecoder::new().decode_eof(&mut src).unwrap()
    };
    assert!(src.is_empty(), "one frame per line");
    payload.expect("a payload").to_vec()
}

fn check_conversation(file: &str) {
    let mut failures = Failures::default();
    let lines = jsonl(file);
    for (i, line) in lines.iter().enumerate() {
        let case = format!(
            "{file} line {} ({} {} {})",
            i + 1,
            line["from"],
            line["endpoint"],
            line["dir"]
        );
        let payload = frame_payload(&hex_field(line, "hex"), line["endpoint"].as_str().unwrap());
        let go = line["go_decoded"].as_str().unwrap();
        // ckit runs with EnableCompression and no label.
        if line["endpoint"] == "message" {
            failures.eq(
                &format!("{case} describe"),
                describe_packet(&payload),
                go.to_owned(),
            );
            let decoded =
                gossiphttp::memberlist::packet::decode_packet(&payload, &LabelPolicy::default())
                    .unwrap();
            let options = PacketOptions {
                label: "",
                crc: decoded.had_crc,
                compress: true,
            };
            let again = encode_packets(&decoded.messages, &options).unwrap();
            failures.eq(&format!("{case} re-encode"), hex(&again[0]), hex(&payload));
        } else {
            let mut decoder = if line["dir"] == "request" {
                StreamDecoder::inbound(LabelPolicy::default())
            } else {
                StreamDecoder::response()
            };
            let mut src = BytesMut::from(&payload[..]);
            let message = decoder
                .decode_eof(&mut src)
                .unwrap()
                .expect("one stream message");
            let StreamMessage::PushPull(pp) = &message else {
                panic!("{case}: not a push-pull")
            };
            let inner = decompress_body(&payload[1..], MAX_PUSH_STATE_BYTES).unwrap();
            let described = format!(
                "lzw({}->{} bytes) > {}",
                payload.len(),
                inner.len(),
                describe_push_pull(pp)
            );
            failures.eq(&format!("{case} describe"), described, go.to_owned());
            failures.eq(
                &format!("{case} re-encode"),
                hex(&message.encode(true)),
                hex(&payload),
            );
        }
    }
    failures.finish(lines.len());
}

#[test]
fn the_v0_5_3_conversation_decodes_as_go_decoded_it_and_re_encodes_identically() {
    check_conversation("ckit_conversation.jsonl");
}

#[test]
fn the_v0_5_0_conversation_decodes_as_go_decoded_it_and_re_encodes_identically() {
    check_conversation("ckit_conversation_memberlist_v0.5.0.jsonl");
}
