//! Round trips (encode then decode is the identity) over generated
//! messages, packets and streams, and the decoders' refusals of hostile
//! input. The byte-exact forms are checked against Go's vectors in
//! tests/memberlist_vectors.rs.

use super::message::{
    Ack, Alive, Dead, ErrorResponse, IndirectPing, Message, MessageType, Nack, NodeState, Ping,
    PushNodeState, PushPull, Suspect,
};
use super::packet::{
    compound, compress_message, decode_packet, decode_packet_with_limit, encode_packets,
    LabelPolicy, PacketOptions, MAX_COMPOUND_PARTS,
};
use super::stream::{finish_encoding, PushPullCache, StreamDecoder, StreamMessage};
use super::wire_error::WireError;
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

fn any_bytes(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn any_opt_bytes() -> impl Strategy<Value = Option<Bytes>> {
    proptest::option::of(any_bytes(600))
}

fn any_name() -> impl Strategy<Value = String> {
    ".{0,40}"
}

fn any_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (
            any::<u32>(),
            any_name(),
            any_bytes(17),
            any::<u16>(),
            any_name()
        )
            .prop_map(|(seq_no, node, source_addr, source_port, source_node)| {
                Message::Ping(Ping {
                    seq_no,
                    node,
                    source_addr,
                    source_port,
                    source_node,
                })
            }),
        (
            any::<u32>(),
            any_bytes(17),
            any::<u16>(),
            any_name(),
            any::<bool>(),
            any_bytes(17),
            any::<u16>(),
            any_name()
        )
            .prop_map(
                |(seq_no, target, port, node, nack, source_addr, source_port, source_node)| {
                    Message::IndirectPing(IndirectPing {
                        seq_no,
                        target,
                        port,
                        node,
                        nack,
                        source_addr,
                        source_port,
                        source_node,
                    })
                }
            ),
        (any::<u32>(), any_opt_bytes())
            .prop_map(|(seq_no, payload)| Message::Ack(Ack { seq_no, payload })),
        any::<u32>().prop_map(|seq_no| Message::Nack(Nack { seq_no })),
        (any::<u32>(), any_name(), any_name()).prop_map(|(incarnation, node, from)| {
            Message::Suspect(Suspect {
                incarnation,
                node,
                from,
            })
        }),
        (any::<u32>(), any_name(), any_name()).prop_map(|(incarnation, node, from)| Message::Dead(
            Dead {
                incarnation,
                node,
                from
            }
        )),
        (
            any::<u32>(),
            any_name(),
            any_bytes(17),
            any::<u16>(),
            any_opt_bytes(),
            any_bytes(7)
        )
            .prop_map(
                |(incarnation, node, addr, port, meta, vsn)| Message::Alive(Alive {
                    incarnation,
                    node,
                    addr,
                    port,
                    meta,
                    vsn
                })
            ),
        any_bytes(300).prop_map(Message::User),
        any_name().prop_map(|error| Message::Err(ErrorResponse { error })),
    ]
}

fn any_node_state() -> impl Strategy<Value = PushNodeState> {
    (
        any_name(),
        any_bytes(17),
        any::<u16>(),
        any_opt_bytes(),
        any::<u32>(),
        0u64..4,
        any_bytes(7),
    )
        .prop_map(
            |(name, addr, port, meta, incarnation, state, vsn)| PushNodeState {
                name,
                addr,
                port,
                meta,
                incarnation,
                state: NodeState::from_value(state).expect("0..4 are states"),
                vsn,
            },
        )
}

fn any_stream_message() -> impl Strategy<Value = StreamMessage> {
    prop_oneof![
        (
            any::<bool>(),
            proptest::collection::vec(any_node_state(), 0..40),
            any_bytes(400)
        )
            .prop_map(
                |(join, nodes, user_state)| StreamMessage::PushPull(PushPull {
                    join,
                    nodes,
                    user_state
                })
            ),
        any_bytes(400).prop_map(StreamMessage::User),
        (any::<u32>(), any_name()).prop_map(|(seq_no, node)| StreamMessage::Ping(Ping {
            seq_no,
            node,
            ..Ping::default()
        })),
        (any::<u32>(), any_opt_bytes())
            .prop_map(|(seq_no, payload)| StreamMessage::Ack(Ack { seq_no, payload })),
        any_name().prop_map(|error| StreamMessage::Err(ErrorResponse { error })),
    ]
}

proptest! {
    #[test]
    fn a_message_decodes_to_itself(message in any_message()) {
        let bytes = message.to_vec();
        prop_assert_eq!(bytes.len(), message.encoded_len());
        prop_assert_eq!(Message::decode(&bytes), Ok(message));
    }

    #[test]
    fn packets_decode_to_their_messages(
        messages in proptest::collection::vec(any_message(), 1..12),
        label in "[a-z]{0,12}",
        crc in any::<bool>(),
        compress in any::<bool>(),
    ) {
        let options = PacketOptions { label: &label, crc, compress };
        let mut got = Vec::new();
        for packet in encode_packets(&messages, &options).unwrap() {
            let decoded = decode_packet(&packet, &LabelPolicy::new(label.clone())).unwrap();
            prop_assert_eq!(decoded.had_crc, crc);
            prop_assert!(decoded.problems.is_empty());
            got.extend(decoded.messages);
        }
        prop_assert_eq!(got, messages);
    }

    #[test]
    fn a_stream_message_decodes_to_itself_in_any_pieces(
        message in any_stream_message(),
        compress in any::<bool>(),
        cuts in proptest::collection::vec(1usize..64, 0..40),
    ) {
        let bytes = message.encode(compress);
        let mut decoder = StreamDecoder::response();
        let mut src = BytesMut::new();
        let mut got = Vec::new();
        let mut rest = &bytes[..];
        for cut in cuts.into_iter().chain(std::iter::once(usize::MAX)) {
            let (piece, after) = rest.split_at(cut.min(rest.len()));
            rest = after;
            src.extend_from_slice(piece);
            while let Some(m) = decoder.decode(&mut src).unwrap() {
                got.push(m);
            }
        }
        prop_assert_eq!(decoder.decode_eof(&mut src), Ok(None));
        prop_assert_eq!(got, vec![message]);
    }

    #[test]
    fn a_cached_reply_is_sent_only_for_the_same_message(
        first in any_stream_message(),
        second in any_stream_message(),
        compress in any::<bool>(),
    ) {
        let mut cache = PushPullCache::default();
        let plain = first.encode_plain();
        prop_assert_eq!(cache.get(&plain), None);
        let encoded = finish_encoding(plain.clone(), compress);
        prop_assert_eq!(&encoded, &first.encode(compress));
        cache.put(plain, encoded.clone().into());
        let again = cache.get(&first.encode_plain());
        prop_assert_eq!(again.as_deref(), Some(&encoded[..]));
        let reused = cache.get(&second.encode_plain());
        if second == first {
            prop_assert_eq!(reused.as_deref(), Some(&encoded[..]));
        } else {
            prop_assert_eq!(reused, None);
        }
    }

    #[test]
    fn any_bytes_are_an_error_or_a_result_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_packet(&bytes, &LabelPolicy::default());
        let _ = Message::decode(&bytes);
        let mut decoder = StreamDecoder::inbound(LabelPolicy::default());
        let _ = decoder.decode_eof(&mut BytesMut::from(&bytes[..]));
    }
}

#[test]
fn more_than_255_messages_split_into_compounds_as_go_does() {
    let messages: Vec<Message> = (0..600)
        .map(|seq_no| Message::Nack(Nack { seq_no }))
        .collect();
    let packets = encode_packets(&messages, &PacketOptions::default()).unwrap();
    let counts: Vec<u8> = packets.iter().map(|p| p[1]).collect();
    assert_eq!(counts, [255, 255, 90]);
    assert!(compound(&vec![vec![0]; MAX_COMPOUND_PARTS + 1]).is_err());
}

#[test]
fn a_truncated_compound_delivers_its_whole_parts() {
    let parts = [
        Message::Nack(Nack { seq_no: 1 }).to_vec(),
        Message::Nack(Nack { seq_no: 2 }).to_vec(),
    ];
    let mut packet = compound(&parts).unwrap();
    packet.truncate(packet.len() - 1);
    let decoded = decode_packet(&packet, &LabelPolicy::default()).unwrap();
    assert_eq!(decoded.messages, [Message::Nack(Nack { seq_no: 1 })]);
    assert_eq!(
        decoded.problems,
        [WireError::TruncatedCompound {
            announced: 2,
            missing: 1
        }]
    );
}

#[test]
fn nesting_and_decompression_are_bounded() {
    let mut packet = Message::Nack(Nack { seq_no: 1 }).to_vec();
    for _ in 0..8 {
        packet = compress_message(&packet);
    }
    assert_eq!(
        decode_packet(&packet, &LabelPolicy::default()),
        Err(WireError::TooDeep)
    );
    let bomb = compress_message(&[0x08; 100_000]);
    assert!(bomb.len() < 2_000);
    assert!(matches!(
        decode_packet_with_limit(&bomb, &LabelPolicy::default(), 50_000),
        Err(WireError::TooLarge { .. })
    ));
    assert!(decode_packet_with_limit(&bomb, &LabelPolicy::default(), 100_000).is_ok());
}

#[test]
fn unknown_and_misplaced_types_are_refused() {
    let policy = LabelPolicy::default();
    assert_eq!(decode_packet(&[], &policy), Err(WireError::Empty));
    assert_eq!(
        decode_packet(&[0x42], &policy),
        Err(WireError::UnknownType(0x42))
    );
    assert!(matches!(
        decode_packet(&[0x06, 0x80], &policy),
        Err(WireError::UnexpectedType {
            found: MessageType::PushPull,
            ..
        })
    ));
    assert_eq!(
        decode_packet(&[0xf4, 0x00, 0x0b], &LabelPolicy::new("x")),
        Err(WireError::BadLabelHeader)
    );
}

/// A stream decoder fed `bytes` at once.
fn stream(decoder: &mut StreamDecoder, bytes: &[u8]) -> Result<Option<StreamMessage>, WireError> {
    decoder.decode(&mut BytesMut::from(bytes))
}

#[test]
fn a_push_pull_announcing_too_much_is_refused_before_allocating() {
    // 06 {Join: false, Nodes: 2^31, UserStateLen: 0}: refused on the header alone.
    let mut header = vec![0x06, 0x83, 0xa4];
    header.extend(b"Join\xc2\xa5Nodes\xd2\x7f\xff\xff\xff\xacUserStateLen\x00");
    let mut decoder = StreamDecoder::response();
    assert!(matches!(
        stream(&mut decoder, &header),
        Err(WireError::TooLarge { .. })
    ));
    // A user message announcing 30 MiB.
    let mut user = vec![0x08, 0x81, 0xaa];
    user.extend(b"UserMsgLen\xd2\x01\xe0\x00\x00");
    assert!(matches!(
        stream(&mut StreamDecoder::response(), &user),
        Err(WireError::TooLarge { .. })
    ));
    // A compressed message whose buffer announces 4 GiB.
    let mut compressed = vec![0x09, 0x82, 0xa4];
    compressed.extend(b"Algo\x00\xa3Buf\xdb\xff\xff\xff\xff");
    assert!(matches!(
        stream(&mut StreamDecoder::response(), &compressed),
        Err(WireError::TooLarge { .. })
    ));
}

#[test]
fn stream_ends_labels_and_types_are_checked() {
    let user = StreamMessage::User(Bytes::from_static(b"hello")).encode(false);
    let mut decoder = StreamDecoder::response();
    let mut src = BytesMut::from(&user[..user.len() - 1]);
    assert_eq!(decoder.decode(&mut src), Ok(None));
    assert_eq!(
        decoder.decode_eof(&mut src),
        Err(WireError::Truncated {
            message: Some(MessageType::User)
        })
    );

    // The answer to a stream never carries a label.
    assert!(matches!(
        stream(&mut StreamDecoder::response(), b"\xf4\x01x"),
        Err(WireError::UnexpectedType {
            found: MessageType::HasLabel,
            ..
        })
    ));
    let mut labeled = super::packet::label_header("a").unwrap();
    labeled.extend(&user);
    assert_eq!(
        stream(&mut StreamDecoder::inbound(LabelPolicy::new("b")), &labeled),
        Err(WireError::LabelMismatch {
            expected: "b".into(),
            found: "a".into()
        })
    );
    assert_eq!(
        stream(&mut StreamDecoder::inbound(LabelPolicy::new("a")), &user),
        Err(WireError::MissingLabel {
            expected: "a".into()
        })
    );
    assert!(matches!(
        stream(&mut StreamDecoder::response(), &[0x04, 0x80]),
        Err(WireError::UnexpectedType {
            found: MessageType::Alive,
            ..
        })
    ));
}

#[test]
fn keys_in_any_order_unknown_keys_and_v0_5_0_forms_are_read_as_go_reads_them() {
    use super::msgpack::{write_map_len, write_raw};
    // {"SourcePort": cd 1f0a, "Future": {"a": [1, "x", nil]}, "SeqNo": ce 00000001, "Node": "b"}
    let mut ping = vec![0x00];
    write_map_len(&mut ping, 4);
    write_raw(&mut ping, b"SourcePort");
    ping.extend([0xcd, 0x1f, 0x0a]);
    write_raw(&mut ping, b"Future");
    ping.extend([0x81, 0xa1, b'a', 0x93, 0x01, 0xa1, b'x', 0xc0]);
    write_raw(&mut ping, b"SeqNo");
    ping.extend([0xce, 0, 0, 0, 1]);
    write_raw(&mut ping, b"Node");
    write_raw(&mut ping, b"b");
    let want = Ping {
        seq_no: 1,
        node: "b".into(),
        source_port: 7946,
        ..Ping::default()
    };
    assert_eq!(Message::decode(&ping), Ok(Message::Ping(want)));

    // v0.5.0's unsigned form of a Go int (UserMsgLen 300 as cd 012c).
    use super::wire::GoMsgpack;
    let (header, _) =
        super::message::UserMsgHeader::decode_msgpack(b"\x81\xaaUserMsgLen\xcd\x01\x2c").unwrap();
    assert_eq!(header.user_msg_len, 300);
}

#[test]
fn wrong_types_and_negative_counts_are_refused() {
    use super::msgpack::DecodeError;
    use super::wire::GoMsgpack;
    // SeqNo as a string.
    assert!(matches!(
        Message::decode(b"\x0b\x81\xa5SeqNo\xa1x"),
        Err(WireError::Decode {
            error: DecodeError::WrongType { field: "SeqNo", .. },
            ..
        })
    ));
    // A struct that is an array.
    assert!(matches!(
        Message::decode(b"\x0b\x91\x01"),
        Err(WireError::Decode {
            error: DecodeError::WrongType { .. },
            ..
        })
    ));
    // Nodes: -1.
    assert_eq!(
        super::message::PushPullHeader::decode_msgpack(b"\x81\xa5Nodes\xff").map(|_| ()),
        Err(DecodeError::OutOfRange {
            field: "Nodes",
            value: -1
        })
    );
    // A port above 65535.
    assert!(matches!(
        Message::decode(b"\x00\x81\xaaSourcePort\xce\x00\x01\x00\x00"),
        Err(WireError::Decode {
            error: DecodeError::OutOfRange {
                field: "SourcePort",
                ..
            },
            ..
        })
    ));
    // A member state memberlist does not define.
    assert_eq!(
        super::message::PushNodeState::decode_msgpack(b"\x81\xa5State\x07").map(|_| ()),
        Err(DecodeError::UnknownValue {
            field: "State",
            value: 7
        })
    );
}
