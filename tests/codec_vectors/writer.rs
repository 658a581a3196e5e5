//! The writer's header forms (short up to 65535 bytes, long from 65536) and round trips.

use bytes::BytesMut;
use gossiphttp::codec::{encode_frame, encoded_len, DEFAULT_MAX_PACKET_SIZE};

use crate::{encode, pattern_payload, run_packet, run_stream};

#[test]
fn writer_uses_short_header_up_to_65535() {
    for len in [0usize, 1, 1400, 65_534, 65_535] {
        let payload = pattern_payload(len);
        let buf = encode(&payload);
        assert_eq!(buf[0], 0xcc, "payload of {len} bytes");
        assert_eq!(&buf[1..3], &(len as u16).to_be_bytes(), "payload of {len}");
        assert_eq!(buf.len(), len + 3, "payload of {len} bytes");
        assert_eq!(encoded_len(len), len + 3, "payload of {len} bytes");
        assert_eq!(&buf[3..], &payload[..], "payload of {len} bytes");
    }
    assert_eq!(&encode(&pattern_payload(65_535))[..3], &[0xcc, 0xff, 0xff]);
}

#[test]
fn writer_uses_long_header_from_65536() {
    for len in [65_536usize, 65_537, 1_000_000] {
        let payload = pattern_payload(len);
        let buf = encode(&payload);
        assert_eq!(buf[0], 0xcd, "payload of {len} bytes");
        assert_eq!(&buf[1..5], &(len as u32).to_be_bytes(), "payload of {len}");
        assert_eq!(buf.len(), len + 5, "payload of {len} bytes");
        assert_eq!(encoded_len(len), len + 5, "payload of {len} bytes");
        assert_eq!(&buf[5..], &payload[..], "payload of {len} bytes");
    }
    assert_eq!(
        &encode(&pattern_payload(65_536))[..5],
        &[0xcd, 0x00, 0x01, 0x00, 0x00]
    );
}

#[test]
fn encode_frame_appends() {
    let mut buf = BytesMut::from(&b"xyz"[..]);
    encode_frame(b"ab", &mut buf).unwrap();
    encode_frame(b"", &mut buf).unwrap();
    assert_eq!(&buf[..], b"xyz\xcc\x00\x02ab\xcc\x00\x00");
}

#[test]
fn boundary_sizes_round_trip() {
    let payloads: Vec<Vec<u8>> = [65_535usize, 65_536, 0, 65_535]
        .iter()
        .map(|&n| pattern_payload(n))
        .collect();
    let mut buf = BytesMut::new();
    for p in &payloads {
        encode_frame(p, &mut buf).unwrap();
    }
    for chunk in [usize::MAX, 1000, 7] {
        let got = run_packet(&buf, chunk, DEFAULT_MAX_PACKET_SIZE);
        assert_eq!(got.error, None, "chunk size {chunk}");
        assert_eq!(got.messages, payloads, "chunk size {chunk}");
        let s = run_stream(&buf, chunk);
        assert_eq!(s.error, None, "chunk size {chunk}");
        assert_eq!(s.data, payloads.concat(), "chunk size {chunk}");
        assert_eq!(s.empty_chunks, 0, "chunk size {chunk}");
    }
}
