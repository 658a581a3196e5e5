//! memberlist's packet and stream decoders (and ckit's message decoders)
//! on any bytes: no panic, no allocation beyond the limits given, and what
//! decodes re-encodes to bytes that decode to the same messages.
//!
//! Input layout: `flags` (u8: bit 0 gives the node the label "x", bit 1
//! sets skip-inbound-label-check, bit 2 reads the stream as a response, not
//! a request), `chunk` (u8: the stream is fed in pieces of `chunk + 1`
//! bytes), then the bytes.
#![no_main]

use bytes::BytesMut;
use gossiphttp::ckit::message::{LocalState, State};
use gossiphttp::memberlist::message::Message;
use gossiphttp::memberlist::packet::{decode_packet_with_limit, encode_packets, LabelPolicy, PacketOptions};
use gossiphttp::memberlist::stream::StreamDecoder;
use libfuzzer_sys::fuzz_target;

/// Small enough that a decompression bomb or an announced length is hit,
/// far below the run's `-malloc_limit_mb`.
const LIMIT: usize = 1 << 20;

fn check_packet(data: &[u8], policy: &LabelPolicy) {
    let Ok(decoded) = decode_packet_with_limit(data, policy, LIMIT) else { return };
    if decoded.messages.is_empty() {
        return;
    }
    let options = PacketOptions { label: &policy.label, crc: decoded.had_crc, compress: true };
    // A part over 64 KiB (possible inside a compressed layer) cannot be put
    // in a compound again: refused, not a panic.
    let Ok(packets) = encode_packets(&decoded.messages, &options) else { return };
    let mut again = Vec::new();
    for packet in packets {
        let d = decode_packet_with_limit(&packet, policy, usize::MAX).expect("our own packet decodes");
        assert!(d.problems.is_empty());
        again.extend(d.messages);
    }
    assert_eq!(again, decoded.messages);
}

fn check_stream(data: &[u8], policy: &LabelPolicy, response: bool, chunk: usize) {
    let mut decoder = if response { StreamDecoder::response() } else { StreamDecoder::inbound(policy.clone()) }
        .with_max_message(LIMIT);
    let mut src = BytesMut::new();
    let mut messages = Vec::new();
    'feed: for piece in data.chunks(chunk) {
        src.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut src) {
                Ok(Some(m)) => messages.push(m),
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }
    for message in messages {
        for compress in [false, true] {
            let bytes = message.encode(compress);
            let mut d = StreamDecoder::response();
            let got = d.decode_eof(&mut BytesMut::from(&bytes[..])).expect("our own stream decodes");
            assert_eq!(got.as_ref(), Some(&message));
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let [flags, chunk, data @ ..] = input else { return };
    let policy = LabelPolicy {
        label: if flags & 1 != 0 { "x".into() } else { String::new() },
        skip_inbound_label_check: flags & 2 != 0,
    };
    check_packet(data, &policy);
    check_stream(data, &policy, flags & 4 != 0, usize::from(*chunk) + 1);
    if let Ok(message) = Message::decode(data) {
        assert_eq!(Message::decode(&message.to_vec()), Ok(message));
    }
    if let Ok(state) = State::decode(data) {
        assert_eq!(State::decode(&state.encode()), Ok(state));
    }
    if let Ok(local) = LocalState::decode(data) {
        assert_eq!(LocalState::decode(&local.encode()), Ok(local));
    }
});
