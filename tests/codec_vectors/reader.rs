//! How the readers take empty, malformed, oversized, unfinished and cleanly ended input.

use bytes::BytesMut;
use gossiphttp::codec::{FrameError, PacketDecoder, StreamDecoder, DEFAULT_MAX_PACKET_SIZE};

use crate::{encode, pattern_payload, run_packet, run_stream, PacketOutcome};

#[test]
fn long_header_with_small_payload_decodes() {
    let input = b"\xcd\x00\x00\x00\x03abc\xcd\x00\x00\x00\x00\xcc\x00\x01z";
    for chunk in [usize::MAX, 1, 2] {
        let got = run_packet(input, chunk, DEFAULT_MAX_PACKET_SIZE);
        assert_eq!(
            got,
            PacketOutcome {
                messages: vec![b"abc".to_vec(), Vec::new(), b"z".to_vec()],
                error: None
            },
            "chunk size {chunk}"
        );
        let s = run_stream(input, chunk);
        assert_eq!(s.data, b"abcz", "chunk size {chunk}");
        assert_eq!(s.error, None, "chunk size {chunk}");
        assert_eq!(s.empty_chunks, 0, "chunk size {chunk}");
    }
}

#[test]
fn zero_length_frame_is_an_empty_packet() {
    let mut dec = PacketDecoder::new(DEFAULT_MAX_PACKET_SIZE);
    let mut buf = BytesMut::from(&[0xcc, 0x00, 0x00][..]);
    let packet = dec.decode(&mut buf).unwrap().expect("an empty packet");
    assert!(packet.is_empty());
    assert!(buf.is_empty());
    assert_eq!(dec.decode(&mut buf).unwrap(), None);
    assert_eq!(dec.decode_eof(&mut buf).unwrap(), None);
    // Again, arriving at the end of the body.
    let mut buf = BytesMut::from(&[0xcc, 0x00, 0x00][..]);
    let packet = dec.decode_eof(&mut buf).unwrap().expect("an empty packet");
    assert!(packet.is_empty());
    assert_eq!(dec.decode_eof(&mut buf).unwrap(), None);
    // A stream reader has nothing to hand out for it, and ends cleanly.
    let mut sdec = StreamDecoder::new();
    let mut buf = BytesMut::from(&[0xcc, 0x00, 0x00][..]);
    assert_eq!(sdec.decode(&mut buf).unwrap(), None);
    assert_eq!(sdec.decode_eof(&mut buf).unwrap(), None);
    assert_eq!(sdec.frames_started(), 1);
    assert!(sdec.at_frame_boundary());
}

#[test]
fn bad_magic_after_a_valid_frame_delivers_the_first() {
    let input = [0xcc, 0x00, 0x01, b'x', 0x00, 0x00, 0x01, b'y'];
    for chunk in [usize::MAX, 1, 3] {
        let got = run_packet(&input, chunk, DEFAULT_MAX_PACKET_SIZE);
        assert_eq!(
            got,
            PacketOutcome {
                messages: vec![b"x".to_vec()],
                error: Some(FrameError::BadMagic(0x00)),
            },
            "chunk size {chunk}"
        );
        let s = run_stream(&input, chunk);
        assert_eq!(s.data, b"x", "chunk size {chunk}");
        assert_eq!(s.error, Some(FrameError::BadMagic(0x00)), "chunk {chunk}");
    }
    // Decoding by hand: the first frame comes out before the error.
    let mut dec = PacketDecoder::default();
    let mut buf = BytesMut::from(&input[..]);
    assert_eq!(dec.decode(&mut buf).unwrap().unwrap(), &b"x"[..]);
    assert_eq!(dec.decode(&mut buf), Err(FrameError::BadMagic(0x00)));
}

#[test]
fn every_other_first_byte_is_bad_magic() {
    for b in (0u8..=255).filter(|&b| b != 0xcc && b != 0xcd) {
        let input = [b, 0x00, 0x01, b'x'];
        let got = run_packet(&input, usize::MAX, DEFAULT_MAX_PACKET_SIZE);
        assert_eq!(got.error, Some(FrameError::BadMagic(b)), "byte {b:#04x}");
        assert!(got.messages.is_empty(), "byte {b:#04x}");
        // Detected as soon as the byte arrives, before any more input.
        let mut buf = BytesMut::from(&[b][..]);
        assert_eq!(
            PacketDecoder::default().decode(&mut buf),
            Err(FrameError::BadMagic(b)),
            "byte {b:#04x}"
        );
        let mut buf = BytesMut::from(&[b][..]);
        assert_eq!(
            StreamDecoder::new().decode(&mut buf),
            Err(FrameError::BadMagic(b)),
            "byte {b:#04x}"
        );
    }
}

#[test]
fn oversized_frame_is_refused_without_allocating() {
    let header = [0xcd, 0xff, 0xff, 0xff, 0xff];
    let want = FrameError::TooLarge {
        len: 0xffff_ffff,
        max: DEFAULT_MAX_PACKET_SIZE,
    };

    // Whole header at once.
    let mut dec = PacketDecoder::new(DEFAULT_MAX_PACKET_SIZE);
    let mut buf = BytesMut::from(&header[..]);
    let cap = buf.capacity();
    assert_eq!(dec.decode(&mut buf), Err(want.clone()));
    assert_eq!(buf.capacity(), cap, "capacity grew on a refused header");
    assert!(buf.capacity() < 1024, "capacity {}", buf.capacity());
    // Refused again at the end of the body, still without growing.
    assert_eq!(dec.decode_eof(&mut buf), Err(want.clone()));
    assert_eq!(buf.capacity(), cap, "capacity grew in decode_eof");

    // Header arriving byte by byte, with some payload after it.
    let mut dec = PacketDecoder::new(DEFAULT_MAX_PACKET_SIZE);
    let mut buf = BytesMut::new();
    let mut result = Ok(None);
    for &b in header.iter().chain(b"abc") {
        buf.extend_from_slice(&[b]);
        result = dec.decode(&mut buf);
        assert!(buf.capacity() < 1024, "capacity {}", buf.capacity());
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(want));
    assert_eq!(buf.len(), 5, "refused as soon as the header was complete");
}

#[test]
fn size_cap_is_inclusive() {
    let max = 1024;
    // Exactly max: accepted, in both header forms.
    let mut input = vec![0xcc, 0x04, 0x00];
    input.extend(pattern_payload(max));
    input.extend([0xcd, 0x00, 0x00, 0x04, 0x00]);
    input.extend(pattern_payload(max));
    let got = run_packet(&input, usize::MAX, max);
    assert_eq!(got.error, None);
    assert_eq!(got.messages, vec![pattern_payload(max); 2]);

    // One more: refused on the header alone, in both header forms.
    for header in [&[0xcc, 0x04, 0x01][..], &[0xcd, 0x00, 0x00, 0x04, 0x01][..]] {
        let mut dec = PacketDecoder::new(max);
        let mut buf = BytesMut::from(header);
        let cap = buf.capacity();
        assert_eq!(
            dec.decode(&mut buf),
            Err(FrameError::TooLarge {
                len: 1025,
                max: 1024
            }),
            "header {}",
            hex::encode(header)
        );
        assert_eq!(buf.capacity(), cap, "header {}", hex::encode(header));
    }

    // Just above the default cap.
    let mut dec = PacketDecoder::default();
    assert_eq!(dec.max_packet_size(), DEFAULT_MAX_PACKET_SIZE);
    let len = DEFAULT_MAX_PACKET_SIZE as u32 + 1;
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0xcd]);
    buf.extend_from_slice(&len.to_be_bytes());
    let cap = buf.capacity();
    assert_eq!(
        dec.decode(&mut buf),
        Err(FrameError::TooLarge {
            len: u64::from(len),
            max: DEFAULT_MAX_PACKET_SIZE
        })
    );
    assert_eq!(buf.capacity(), cap);

    // Exactly the default cap is a valid packet.
    let payload = pattern_payload(DEFAULT_MAX_PACKET_SIZE);
    let got = run_packet(&encode(&payload), 65_536, DEFAULT_MAX_PACKET_SIZE);
    assert_eq!(got.error, None);
    assert_eq!(got.messages.len(), 1);
    assert!(got.messages[0] == payload);
}

#[test]
fn partial_frame_waits_then_completes() {
    let mut dec = PacketDecoder::default();
    let mut buf = BytesMut::from(&b"\xcc\x00\x05he"[..]);
    assert_eq!(dec.decode(&mut buf).unwrap(), None);
    assert_eq!(&buf[..], b"\xcc\x00\x05he", "partial frame left in place");
    buf.extend_from_slice(b"llo\xcc");
    assert_eq!(dec.decode(&mut buf).unwrap().unwrap(), &b"hello"[..]);
    assert_eq!(dec.decode(&mut buf).unwrap(), None);
    assert_eq!(&buf[..], b"\xcc");
}

#[test]
fn truncation_reports_what_arrived() {
    let cases: [(&[u8], usize, Option<u64>); 5] = [
        (b"\xcc", 1, None),
        (b"\xcc\x00", 2, None),
        (b"\xcd\x00\x00\x00", 4, None),
        (b"\xcc\x00\x05he", 5, Some(8)),
        (b"\xcd\x00\x00\x00\x05", 5, Some(10)),
    ];
    for (input, received, expected) in cases {
        let want = FrameError::Truncated { received, expected };
        for chunk in [usize::MAX, 1] {
            let got = run_packet(input, chunk, DEFAULT_MAX_PACKET_SIZE);
            assert_eq!(
                got.messages,
                Vec::<Vec<u8>>::new(),
                "{}",
                hex::encode(input)
            );
            assert_eq!(got.error, Some(want.clone()), "{}", hex::encode(input));
            let s = run_stream(input, chunk);
            assert_eq!(s.error, Some(want.clone()), "{}", hex::encode(input));
        }
    }
    // After a whole frame, only the unfinished one counts.
    let got = run_packet(b"\xcc\x00\x01x\xcc\x00\x02y", usize::MAX, 1024);
    assert_eq!(got.messages, vec![b"x".to_vec()]);
    assert_eq!(
        got.error,
        Some(FrameError::Truncated {
            received: 4,
            expected: Some(5)
        })
    );
}

#[test]
fn stream_passes_an_announced_4gib_frame_through() {
    let mut dec = StreamDecoder::new();
    let mut buf = BytesMut::from(&[0xcd, 0xff, 0xff, 0xff, 0xff][..]);
    assert_eq!(dec.decode(&mut buf).unwrap(), None);
    assert!(!dec.at_frame_boundary());
    for piece in [&b"ab"[..], b"c", b"\xcc\x00"] {
        buf.extend_from_slice(piece);
        assert_eq!(dec.decode(&mut buf).unwrap().unwrap(), piece);
        assert!(buf.capacity() < 1024);
    }
    assert_eq!(
        dec.decode_eof(&mut buf),
        Err(FrameError::Truncated {
            received: 10,
            expected: Some(5 + 0xffff_ffff)
        })
    );
}

#[test]
fn clean_end_stays_clean() {
    let mut dec = PacketDecoder::default();
    let mut buf = BytesMut::new();
    assert_eq!(dec.decode_eof(&mut buf).unwrap(), None);
    assert_eq!(dec.decode_eof(&mut buf).unwrap(), None);
    let mut sdec = StreamDecoder::new();
    assert_eq!(sdec.decode_eof(&mut buf).unwrap(), None);
    assert_eq!(sdec.decode_eof(&mut buf).unwrap(), None);
    assert_eq!(sdec.frames_started(), 0);
}
