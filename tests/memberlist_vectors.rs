//! memberlist's wire format against the reference vectors
//! (`../shared/vectors/memberlist_messages*.json`, written by Go memberlist
//! v0.5.0 and v0.5.3): every message decodes to the fields Go encoded and
//! re-encodes to the bytes memberlist v0.5.3 writes; push-node states,
//! compound, packets (label, CRC, LZW), LZW both ways, and streams, whole
//! and one byte at a time.

mod vectors_support;

use bytes::{Bytes, BytesMut};
use gossiphttp::memberlist::message::{
    Ack, Alive, Dead, ErrorResponse, IndirectPing, Message, Nack, NodeState, Ping, PushNodeState,
    PushPull, PushPullHeader, Suspect, UserMsgHeader,
};
use gossiphttp::memberlist::packet::{
    compound, decode_packet, encode_packets, split_compound, split_crc, split_label, LabelPolicy,
    PacketOptions,
};
use gossiphttp::memberlist::stream::{StreamDecoder, StreamMessage};
use gossiphttp::memberlist::wire::{Compressed, GoMsgpack};
use gossiphttp::memberlist::{lzw, WireError};
use serde_json::Value;
use vectors_support::{hex, hex_field, json, unhex, Failures};

const V050: &str = "memberlist_messages.json";
const V053: &str = "memberlist_messages_v0.5.3.json";

fn opt_bytes(v: &Value) -> Option<Bytes> {
    match v {
        Value::Null => None,
        v => Some(Bytes::from(unhex(
            v["hex"].as_str().expect("bytes as {hex}"),
        ))),
    }
}

fn bytes(v: &Value) -> Bytes {
    opt_bytes(v).unwrap_or_default()
}

fn string(v: &Value) -> String {
    v.as_str().expect("string field").to_owned()
}

fn uint<T: TryFrom<u64>>(v: &Value) -> T {
    T::try_from(v.as_u64().expect("integer field"))
        .ok()
        .expect("integer in range")
}

/// What a vector's message decodes to, built from its Go fields.
#[derive(Debug, PartialEq)]
enum Expected {
    Message(Message),
    PushPullHeader(PushPullHeader),
    UserMsgHeader(UserMsgHeader),
    Compressed(Compressed),
}

fn expected(kind: &str, f: &Value) -> Expected {
    let m = match kind {
        "pingMsg" => Message::Ping(Ping {
            seq_no: uint(&f["SeqNo"]),
            node: string(&f["Node"]),
            source_addr: bytes(&f["SourceAddr"]),
            source_port: uint(&f["SourcePort"]),
            source_node: string(&f["SourceNode"]),
        }),
        "indirectPingMsg" => Message::IndirectPing(IndirectPing {
            seq_no: uint(&f["SeqNo"]),
            target: bytes(&f["Target"]),
            port: uint(&f["Port"]),
            node: string(&f["Node"]),
            nack: f["Nack"].as_bool().unwrap(),
            source_addr: bytes(&f["SourceAddr"]),
            source_port: uint(&f["SourcePort"]),
            source_node: string(&f["SourceNode"]),
        }),
        "ackRespMsg" => Message::Ack(Ack {
            seq_no: uint(&f["SeqNo"]),
            payload: opt_bytes(&f["Payload"]),
        }),
        "nackRespMsg" => Message::Nack(Nack {
            seq_no: uint(&f["SeqNo"]),
        }),
        "errMsg" => Message::Err(ErrorResponse {
            error: string(&f["Error"]),
        }),
        "suspectMsg" => Message::Suspect(Suspect {
            incarnation: uint(&f["Incarnation"]),
            node: string(&f["Node"]),
            from: string(&f["From"]),
        }),
        "deadMsg" => Message::Dead(Dead {
            incarnation: uint(&f["Incarnation"]),
            node: string(&f["Node"]),
            from: string(&f["From"]),
        }),
        "aliveMsg" => Message::Alive(Alive {
            incarnation: uint(&f["Incarnation"]),
            node: string(&f["Node"]),
            addr: bytes(&f["Addr"]),
            port: uint(&f["Port"]),
            meta: opt_bytes(&f["Meta"]),
            vsn: bytes(&f["Vsn"]),
        }),
        "pushPullMsg" => {
            return Expected::PushPullHeader(PushPullHeader {
                nodes: uint(&f["Nodes"]),
                user_state_len: uint(&f["UserStateLen"]),
                join: f["Join"].as_bool().unwrap(),
            })
        }
        "userMsg" => {
            return Expected::UserMsgHeader(UserMsgHeader {
                user_msg_len: uint(&f["UserMsgLen"]),
            })
        }
        "compressMsg" => {
            return Expected::Compressed(Compressed {
                algo: uint(&f["Algo"]),
                buf: bytes(&f["Buf"]),
            })
        }
        other => panic!("unknown message_type {other}"),
    };
    Expected::Message(m)
}

fn decode_as(kind: &str, bytes: &[u8]) -> Result<Expected, String> {
    let body = &bytes[1..];
    let whole = |used: usize| {
        if used == body.len() {
            Ok(())
        } else {
            Err(format!("{used} of {} bytes used", body.len()))
        }
    };
    Ok(match kind {
        "pushPullMsg" => {
            let (h, used) = PushPullHeader::decode_msgpack(body).map_err(|e| e.to_string())?;
            whole(used)?;
            Expected::PushPullHeader(h)
        }
        "userMsg" => {
            let (h, used) = UserMsgHeader::decode_msgpack(body).map_err(|e| e.to_string())?;
            whole(used)?;
            Expected::UserMsgHeader(h)
        }
        "compressMsg" => {
            let (c, used) = Compressed::decode_msgpack(body).map_err(|e| e.to_string())?;
            whole(used)?;
            Expected::Compressed(c)
        }
        _ => Expected::Message(Message::decode(bytes).map_err(|e| e.to_string())?),
    })
}

fn encode(type_byte: u8, value: &Expected) -> Vec<u8> {
    let mut out = vec![type_byte];
    match value {
        Expected::Message(m) => return m.to_vec(),
        Expected::PushPullHeader(h) => h.encode_msgpack(&mut out),
        Expected::UserMsgHeader(h) => h.encode_msgpack(&mut out),
        Expected::Compressed(c) => c.encode_msgpack(&mut out),
    }
    out
}

/// The v0.5.3 bytes of the message named `name`: what this codec writes.
fn v053_hex(name: &str) -> String {
    let v = json(V053);
    let m = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .expect("same names in both files");
    m["hex"].as_str().unwrap().to_owned()
}

#[test]
fn every_message_decodes_to_its_fields_and_encodes_as_v0_5_3() {
    let mut failures = Failures::default();
    let mut checked = 0;
    for file in [V050, V053] {
        for m in json(file)["messages"].as_array().unwrap() {
            let name = format!("{file}/{}", m["name"].as_str().unwrap());
            let kind = m["message_type"].as_str().unwrap();
            let bytes = hex_field(m, "hex");
            let want = expected(kind, &m["fields"]);
            match decode_as(kind, &bytes) {
                Ok(got) => {
                    let reencoded = hex(&encode(bytes[0], &got));
                    failures.eq(&format!("{name} decode"), &got, &want);
                    failures.eq(
                        &format!("{name} re-encode"),
                        reencoded,
                        v053_hex(m["name"].as_str().unwrap()),
                    );
                }
                Err(e) => failures.push(format!("{name}: does not decode: {e}")),
            }
            assert_eq!(bytes[0], m["type_byte"].as_u64().unwrap() as u8);
            checked += 1;
        }
    }
    failures.finish(checked);
}

#[test]
fn the_v0_5_0_int_forms_are_the_unsigned_ones_and_still_decode() {
    // The only differences between the files: Go int fields above 127.
    let v050 = json(V050);
    let differing: Vec<&str> = v050["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["hex"].as_str().unwrap() != v053_hex(m["name"].as_str().unwrap()))
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        differing,
        ["push_pull_header_big_values", "user_msg_header_300"]
    );
    assert!(v053_hex("user_msg_header_300").ends_with("d1012c"));
}

fn node_state(f: &Value) -> PushNodeState {
    PushNodeState {
        name: string(&f["Name"]),
        addr: bytes(&f["Addr"]),
        port: uint(&f["Port"]),
        meta: opt_bytes(&f["Meta"]),
        incarnation: uint(&f["Incarnation"]),
        state: NodeState::from_value(f["State"].as_u64().unwrap()).unwrap(),
        vsn: bytes(&f["Vsn"]),
    }
}

#[test]
fn push_node_states_decode_and_re_encode() {
    let mut failures = Failures::default();
    let mut checked = 0;
    for file in [V050, V053] {
        for (i, s) in json(file)["push_node_states"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let bytes = hex_field(s, "msgpack_hex");
            let want = node_state(&s["fields"]);
            match PushNodeState::decode_msgpack(&bytes) {
                Ok((got, used)) => {
                    failures.eq(
                        &format!("{file} node {i} decode"),
                        (&got, used),
                        (&want, bytes.len()),
                    );
                    let mut out = Vec::new();
                    want.encode_msgpack(&mut out);
                    failures.eq(&format!("{file} node {i} encode"), hex(&out), hex(&bytes));
                }
                Err(e) => failures.push(format!("{file} node {i}: {e}")),
            }
            checked += 1;
        }
    }
    failures.finish(checked);
}

#[test]
fn compound_splits_into_its_parts_and_is_rebuilt() {
    for file in [V050, V053] {
        let c = &json(file)["compound"];
        let bytes = hex_field(c, "hex");
        let parts: Vec<Vec<u8>> = c["parts_hex"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| unhex(p.as_str().unwrap()))
            .collect();
        let (got, missing) = split_compound(&bytes[1..]).unwrap();
        assert_eq!(missing, 0);
        assert_eq!(got, parts.iter().map(Vec::as_slice).collect::<Vec<_>>());
        assert_eq!(hex(&compound(&parts).unwrap()), hex(&bytes));
        let messages: Vec<Message> = parts.iter().map(|p| Message::decode(p).unwrap()).collect();
        let packets = encode_packets(&messages, &PacketOptions::default()).unwrap();
        assert_eq!(packets.len(), 1);
        assert_eq!(hex(&packets[0]), hex(&bytes), "{file}");
    }
}

#[test]
fn lzw_matches_go_compress_lzw_both_ways() {
    for file in [V050, V053] {
        let l = &json(file)["lzw"];
        for (input, packed) in [
            ("input_hex", "compressPayload_hex"),
            ("small_input_hex", "small_compressPayload_hex"),
        ] {
            let input = hex_field(l, input);
            let packed = hex_field(l, packed);
            assert_eq!(packed[0], 0x09);
            let (c, _) = Compressed::decode_msgpack(&packed[1..]).unwrap();
            assert_eq!(c.algo, 0);
            assert_eq!(
                lzw::decompress(&c.buf, 1 << 20).unwrap(),
                input,
                "{file}: Go's LZW decodes"
            );
            assert_eq!(
                hex(&lzw::compress(&input)),
                hex(&c.buf),
                "{file}: LZW as Go writes it"
            );
            assert_eq!(
                hex(&gossiphttp::memberlist::packet::compress_message(&input)),
                hex(&packed)
            );
        }
    }
}

/// Each packet vector: the label it carries, its layers peeled, its
/// messages, and the same bytes from `encode_packets` with the same options.
#[test]
fn packets_decode_through_every_layer_and_re_encode_identically() {
    let mut failures = Failures::default();
    let mut checked = 0;
    for file in [V050, V053] {
        let packets = json(file)["packets"].clone();
        for (name, case) in packets.as_object().unwrap() {
            let Some(list) = case.get("packets_hex") else {
                continue;
            };
            for p in list.as_array().unwrap() {
                let bytes = unhex(p.as_str().unwrap());
                let (label, rest) = split_label(&bytes).unwrap();
                let label = label
                    .map(|l| String::from_utf8(l.to_vec()).unwrap())
                    .unwrap_or_default();
                let (had_crc, rest) = split_crc(rest).unwrap();
                let compress = rest[0] == 0x09;
                let decoded = match decode_packet(&bytes, &LabelPolicy::new(label.clone())) {
                    Ok(d) => d,
                    Err(e) => {
                        failures.push(format!("{file}/{name}: {e}"));
                        continue;
                    }
                };
                failures.eq(
                    &format!("{file}/{name} problems"),
                    decoded.problems.len(),
                    0,
                );
                failures.eq(&format!("{file}/{name} crc"), decoded.had_crc, had_crc);
                let options = PacketOptions {
                    label: &label,
                    crc: had_crc,
                    compress,
                };
                match encode_packets(&decoded.messages, &options) {
                    Ok(again) => failures.eq(
                        &format!("{file}/{name} re-encode"),
                        hex(&again[0]),
                        hex(&bytes),
                    ),
                    Err(e) => failures.push(format!("{file}/{name}: re-encode: {e}")),
                }
                checked += 1;
            }
        }
    }
    failures.finish(checked);
}

#[test]
fn packet_labels_follow_memberlists_rules() {
    let v = json(V053);
    let labeled = unhex(
        v["packets"]["label_ping"]["packets_hex"][0]
            .as_str()
            .unwrap(),
    );
    let plain = unhex(
        v["packets"]["no_crc_when_pmax4"]["packets_hex"][0]
            .as_str()
            .unwrap(),
    );
    assert!(decode_packet(&labeled, &LabelPolicy::new("prod-cluster")).is_ok());
    assert_eq!(
        decode_packet(&labeled, &LabelPolicy::new("")),
        Err(WireError::UnexpectedLabel {
            found: "prod-cluster".into()
        })
    );
    assert_eq!(
        decode_packet(&labeled, &LabelPolicy::new("other")),
        Err(WireError::LabelMismatch {
            expected: "other".into(),
            found: "prod-cluster".into()
        })
    );
    assert_eq!(
        decode_packet(&plain, &LabelPolicy::new("prod-cluster")),
        Err(WireError::MissingLabel {
            expected: "prod-cluster".into()
        })
    );
    let skip = LabelPolicy {
        label: "prod-cluster".into(),
        skip_inbound_label_check: true,
    };
    assert!(decode_packet(&plain, &skip).is_ok());
    assert!(decode_packet(&labeled, &skip).is_ok());
    let mut damaged = unhex(
        v["packets"]["crc_compound"]["packets_hex"][0]
            .as_str()
            .unwrap(),
    );
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    assert!(matches!(
        decode_packet(&damaged, &LabelPolicy::default()),
        Err(WireError::CrcMismatch { .. })
    ));
}

/// Decodes a whole stream, once with every byte at once and once a byte at
/// a time; both must give the same single message.
fn decode_stream(bytes: &[u8], policy: LabelPolicy) -> Result<StreamMessage, String> {
    let mut whole = StreamDecoder::inbound(policy.clone());
    let mut src = BytesMut::from(bytes);
    let first = whole
        .decode_eof(&mut src)
        .map_err(|e| e.to_string())?
        .ok_or("no message")?;
    if !src.is_empty() {
        return Err(format!("{} bytes left", src.len()));
    }
    let mut trickle = StreamDecoder::inbound(policy);
    let mut src = BytesMut::new();
    let mut got = None;
    for b in bytes {
        src.extend_from_slice(&[*b]);
        if let Some(m) = trickle
            .decode(&mut src)
            .map_err(|e| format!("byte by byte: {e}"))?
        {
            got = Some(m);
        }
    }
    if got.as_ref() != Some(&first) {
        return Err("byte-by-byte decoding differs".into());
    }
    Ok(first)
}

#[test]
fn streams_decode_whole_and_byte_by_byte_and_re_encode_identically() {
    let mut failures = Failures::default();
    let mut checked = 0;
    for file in [V050, V053] {
        let streams = json(file)["streams"].clone();
        for (name, s) in streams.as_object().unwrap() {
            let Some(h) = s.get("hex") else { continue };
            let bytes = unhex(h.as_str().unwrap());
            let (label, body) = split_label(&bytes).unwrap();
            let label = label
                .map(|l| String::from_utf8(l.to_vec()).unwrap())
                .unwrap_or_default();
            let compress = body[0] == 0x09;
            let message = match decode_stream(&bytes, LabelPolicy::new(label.clone())) {
                Ok(m) => m,
                Err(e) => {
                    failures.push(format!("{file}/{name}: {e}"));
                    continue;
                }
            };
            if let Some(states) = s.get("decoded_node_states") {
                let want = PushPull {
                    join: s["join"].as_bool().unwrap(),
                    nodes: states.as_array().unwrap().iter().map(node_state).collect(),
                    user_state: Bytes::from(hex_field(s, "user_state_hex")),
                };
                failures.eq(
                    &format!("{file}/{name} decode"),
                    &message,
                    &StreamMessage::PushPull(want),
                );
            }
            let mut again = gossiphttp::memberlist::packet::label_header(&label).unwrap();
            again.extend(message.encode(compress));
            // v0.5.0 wrote Go ints above 127 unsigned; this codec writes v0.5.3's forms.
            let want = if file == V050 {
                json(V053)["streams"][name]["hex"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            } else {
                hex(&bytes)
            };
            failures.eq(&format!("{file}/{name} re-encode"), hex(&again), want);
            checked += 1;
        }
    }
    failures.finish(checked);
}
