//! Conformance of the frame codec against the shared test vectors
//! (`../shared/vectors/frames.json`, produced by the reference Go
//! implementation) and against the frame contract in `PROTOCOL.md`.
//!
//! The vector file is read in place, never copied into this repository. When
//! it is missing the vector tests fail, unless `GOSSIPHTTP_SKIP_VECTORS=1`.

use std::path::PathBuf;

use bytes::BytesMut;
use gossiphttp::codec::{
    encode_frame, encoded_len, frame_header, FrameError, PacketDecoder, StreamDecoder,
    DEFAULT_MAX_PACKET_SIZE,
};
use serde::Deserialize;

// ---------------------------------------------------------------------------
// The vector file
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct Vectors {
    encode: Vec<EncodeCase>,
    decode: Vec<DecodeCase>,
}

#[derive(Debug, Deserialize)]
struct EncodeCase {
    name: String,
    payload_len: usize,
    #[serde(default)]
    payload_hex: Option<String>,
    #[serde(default)]
    payload_pattern: Option<String>,
    frame_head_hex: String,
    frame_len: usize,
    #[serde(default)]
    frame_hex: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DecodeCase {
    name: String,
    input_hex: String,
    messages_hex: Vec<String>,
    error: String,
}

const SKIP_ENV: &str = "GOSSIPHTTP_SKIP_VECTORS";
const PATTERN: &str = "byte i = i % 251";

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors/frames.json")
}

/// Loads the vectors; `None` only when they are missing and skipping was
/// asked for explicitly.
fn load_vectors() -> Option<Vectors> {
    let path = vectors_path();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            if std::env::var(SKIP_ENV).as_deref() == Ok("1") {
                eprintln!(
                    "note: skipping frame vector conformance: cannot read {} ({e}); \
                     {SKIP_ENV}=1 is set",
                    path.display()
                );
                return None;
            }
            panic!(
                "frame test vectors not found: cannot read {} ({e}). \
                 They live next to this repository in shared/vectors/frames.json \
                 and must not be copied into it; set {SKIP_ENV}=1 to skip this test \
                 deliberately",
                path.display()
            );
        }
    };
    let vectors: Vectors = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not a valid vector file: {e}", path.display()));
    assert!(
        !vectors.encode.is_empty() && !vectors.decode.is_empty(),
        "{} holds no encode or no decode cases",
        path.display()
    );
    Some(vectors)
}

/// Fails with every collected failure, each naming its case.
fn report(kind: &str, failures: Vec<String>) {
    if !failures.is_empty() {
        panic!(
            "{} {kind} vector case(s) failed:\n  - {}",
            failures.len(),
            failures.join("\n  - ")
        );
    }
}

fn unhex(case: &str, field: &str, s: &str) -> Result<Vec<u8>, String> {
    hex::decode(s).map_err(|e| format!("{case}: field {field} is not hex: {e}"))
}

fn pattern_payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

// ---------------------------------------------------------------------------
// Driving the decoders
// ---------------------------------------------------------------------------

/// What a packet reader made of a whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PacketOutcome {
    messages: Vec<Vec<u8>>,
    error: Option<FrameError>,
}

/// Feeds `input` to a fresh [`PacketDecoder`] `chunk` bytes at a time,
/// taking every whole frame after each chunk, then ends the body.
fn run_packet(input: &[u8], chunk: usize, max: usize) -> PacketOutcome {
    let mut dec = PacketDecoder::new(max);
    let mut buf = BytesMut::new();
    let mut messages = Vec::new();
    let guard = input.len() + 1;
    for piece in input.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(m)) => messages.push(m.to_vec()),
                Ok(None) => break,
                Err(e) => {
                    return PacketOutcome {
                        messages,
                        error: Some(e),
                    }
                }
            }
            assert!(messages.len() <= guard, "PacketDecoder makes no progress");
        }
    }
    loop {
        match dec.decode_eof(&mut buf) {
            Ok(Some(m)) => messages.push(m.to_vec()),
            Ok(None) => {
                return PacketOutcome {
                    messages,
                    error: None,
                }
            }
            Err(e) => {
                return PacketOutcome {
                    messages,
                    error: Some(e),
                }
            }
        }
        assert!(messages.len() <= guard, "PacketDecoder makes no progress");
    }
}

/// What a stream reader made of a whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StreamOutcome {
    data: Vec<u8>,
    error: Option<FrameError>,
    /// Chunks handed out empty (the contract says empty frames yield nothing).
    empty_chunks: usize,
}

/// Feeds `input` to a fresh [`StreamDecoder`] `chunk` bytes at a time, then
/// ends the body.
fn run_stream(input: &[u8], chunk: usize) -> StreamOutcome {
    let mut dec = StreamDecoder::new();
    let mut buf = BytesMut::new();
    let mut out = StreamOutcome {
        data: Vec::new(),
        error: None,
        empty_chunks: 0,
    };
    let guard = 2 * input.len() + 2;
    let mut calls = 0usize;
    for piece in input.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            calls += 1;
            assert!(calls <= guard, "StreamDecoder makes no progress");
            match dec.decode(&mut buf) {
                Ok(Some(c)) => {
                    out.empty_chunks += usize::from(c.is_empty());
                    out.data.extend_from_slice(&c);
                }
                Ok(None) => break,
                Err(e) => {
                    out.error = Some(e);
                    return out;
                }
            }
        }
    }
    loop {
        calls += 1;
        assert!(calls <= guard, "StreamDecoder makes no progress");
        match dec.decode_eof(&mut buf) {
            Ok(Some(c)) => {
                out.empty_chunks += usize::from(c.is_empty());
                out.data.extend_from_slice(&c);
            }
            Ok(None) => return out,
            Err(e) => {
                out.error = Some(e);
                return out;
            }
        }
    }
}

/// The vector file's name for an error (`""` for a clean end).
fn class(e: &Option<FrameError>) -> &'static str {
    match e {
        None => "",
        Some(FrameError::BadMagic(_)) => "bad_magic",
        Some(FrameError::Truncated { .. }) => "truncated",
        Some(FrameError::TooLarge { .. }) => "too_large",
        Some(_) => "unknown FrameError variant",
    }
}

/// Whether a packet reader's error matches the vector's error class.
fn packet_class_ok(expected: &str, got: &Option<FrameError>) -> Result<bool, String> {
    let got = class(got);
    match expected {
        "" | "bad_magic" | "truncated" => Ok(got == expected),
        "too_large_or_truncated" => Ok(got == "too_large" || got == "truncated"),
        other => Err(format!("unknown error class {other:?} in the vector file")),
    }
}

/// Whether a stream reader's error matches the vector's error class. A stream
/// reader never buffers a frame, so it has no size cap: an oversized frame
/// that ends early is simply truncated.
fn stream_class_ok(expected: &str, got: &Option<FrameError>) -> Result<bool, String> {
    let got = class(got);
    match expected {
        "" | "bad_magic" | "truncated" => Ok(got == expected),
        "too_large_or_truncated" => Ok(got == "truncated"),
        other => Err(format!("unknown error class {other:?} in the vector file")),
    }
}

fn hexes(ms: &[Vec<u8>]) -> Vec<String> {
    ms.iter().map(hex::encode).collect()
}

// ---------------------------------------------------------------------------
// Vector tests
// ---------------------------------------------------------------------------

fn check_encode_case(c: &EncodeCase) -> Result<(), String> {
    let name = &c.name;
    let payload = match (&c.payload_hex, &c.payload_pattern) {
        (Some(h), None) => unhex(name, "payload_hex", h)?,
        (None, Some(p)) if p == PATTERN => pattern_payload(c.payload_len),
        (None, Some(p)) => return Err(format!("{name}: unknown payload_pattern {p:?}")),
        (None, None) if c.payload_len == 0 => Vec::new(),
        (None, None) => {
            return Err(format!(
                "{name}: payload_len {} but neither payload_hex nor payload_pattern",
                c.payload_len
            ))
        }
        (Some(_), Some(_)) => {
            return Err(format!(
                "{name}: both payload_hex and payload_pattern given"
            ))
        }
    };
    if payload.len() != c.payload_len {
        return Err(format!(
            "{name}: payload_hex holds {} bytes, payload_len says {}",
            payload.len(),
            c.payload_len
        ));
    }
    let head = unhex(name, "frame_head_hex", &c.frame_head_hex)?;

    let mut buf = BytesMut::new();
    encode_frame(&payload, &mut buf).map_err(|e| format!("{name}: encode_frame failed: {e}"))?;
    if buf.len() != c.frame_len {
        return Err(format!(
            "{name}: frame is {} bytes, expected {}",
            buf.len(),
            c.frame_len
        ));
    }
    if encoded_len(payload.len()) != c.frame_len {
        return Err(format!(
            "{name}: encoded_len({}) = {}, expected {}",
            payload.len(),
            encoded_len(payload.len()),
            c.frame_len
        ));
    }
    let (h, n) = frame_header(payload.len());
    if h[..n] != head[..] {
        return Err(format!(
            "{name}: frame_header({}) = {}, expected {}",
            payload.len(),
            hex::encode(&h[..n]),
            c.frame_head_hex
        ));
    }
    if !buf.starts_with(&head) {
        return Err(format!(
            "{name}: frame starts {}, expected header {}",
            hex::encode(&buf[..head.len().min(buf.len())]),
            c.frame_head_hex
        ));
    }
    if buf[head.len()..] != payload[..] {
        return Err(format!(
            "{name}: frame data after the header is not the payload"
        ));
    }
    if let Some(fh) = &c.frame_hex {
        let frame = unhex(name, "frame_hex", fh)?;
        if buf[..] != frame[..] {
            return Err(format!(
                "{name}: frame is {}, expected {fh}",
                hex::encode(&buf)
            ));
        }
    }

    // And it reads back, whole and byte by byte.
    let max = DEFAULT_MAX_PACKET_SIZE.max(payload.len());
    let whole = run_packet(&buf, usize::MAX, max);
    if whole.error.is_some() || whole.messages != [payload.clone()] {
        return Err(format!(
            "{name}: the encoded frame does not decode back to its payload \
             ({} message(s), error {:?})",
            whole.messages.len(),
            whole.error
        ));
    }
    let stream = run_stream(&buf, 4096);
    if stream.error.is_some() || stream.data != payload {
        return Err(format!(
            "{name}: the encoded frame does not stream back to its payload (error {:?})",
            stream.error
        ));
    }
    Ok(())
}

#[test]
fn vectors_encode() {
    let Some(v) = load_vectors() else { return };
    let failures = v
        .encode
        .iter()
        .filter_map(|c| check_encode_case(c).err())
        .collect();
    report("encode", failures);
}

fn check_packet_decode_case(c: &DecodeCase) -> Vec<String> {
    let name = &c.name;
    let mut failures = Vec::new();
    let input = match unhex(name, "input_hex", &c.input_hex) {
        Ok(i) => i,
        Err(e) => return vec![e],
    };
    let expected: Vec<Vec<u8>> = match c
        .messages_hex
        .iter()
        .map(|m| unhex(name, "messages_hex", m))
        .collect()
    {
        Ok(m) => m,
        Err(e) => return vec![e],
    };
    for (how, chunk) in [("whole input", usize::MAX), ("one byte at a time", 1)] {
        let got = run_packet(&input, chunk, DEFAULT_MAX_PACKET_SIZE);
        if got.messages != expected {
            failures.push(format!(
                "{name} (PacketDecoder, {how}): messages {:?}, expected {:?}",
                hexes(&got.messages),
                c.messages_hex
            ));
        }
        match packet_class_ok(&c.error, &got.error) {
            Ok(true) => {}
            Ok(false) => failures.push(format!(
                "{name} (PacketDecoder, {how}): error {:?} (class {:?}), expected class {:?}",
                got.error,
                class(&got.error),
                c.error
            )),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    failures
}

#[test]
fn vectors_decode_packets() {
    let Some(v) = load_vectors() else { return };
    let failures = v.decode.iter().flat_map(check_packet_decode_case).collect();
    report("decode (PacketDecoder)", failures);
}

fn check_stream_decode_case(c: &DecodeCase) -> Vec<String> {
    let name = &c.name;
    let mut failures = Vec::new();
    let input = match unhex(name, "input_hex", &c.input_hex) {
        Ok(i) => i,
        Err(e) => return vec![e],
    };
    let mut expected = Vec::new();
    for m in &c.messages_hex {
        match unhex(name, "messages_hex", m) {
            Ok(m) => expected.extend_from_slice(&m),
            Err(e) => return vec![e],
        }
    }
    for (how, chunk) in [("whole input", usize::MAX), ("one byte at a time", 1)] {
        let got = run_stream(&input, chunk);
        // A stream reader hands payload bytes out as they arrive, so when the
        // body ends inside a frame, the part of that frame's payload that did
        // arrive (the tail of the input) has been handed out too.
        let data_ok = if got.data.len() > expected.len() && got.error.is_some() {
            let extra = &got.data[expected.len()..];
            class(&got.error) == "truncated"
                && got.data.starts_with(&expected)
                && input.ends_with(extra)
        } else {
            got.data == expected
        };
        if !data_ok {
            failures.push(format!(
                "{name} (StreamDecoder, {how}): data {}, expected {} \
                 (plus, when truncated, the unfinished frame's payload so far)",
                hex::encode(&got.data),
                hex::encode(&expected)
            ));
        }
        if got.empty_chunks != 0 {
            failures.push(format!(
                "{name} (StreamDecoder, {how}): handed out {} empty chunk(s)",
                got.empty_chunks
            ));
        }
        match stream_class_ok(&c.error, &got.error) {
            Ok(true) => {}
            Ok(false) => failures.push(format!(
                "{name} (StreamDecoder, {how}): error {:?} (class {:?}), expected class {:?}",
                got.error,
                class(&got.error),
                if c.error == "too_large_or_truncated" {
                    "truncated"
                } else {
                    &c.error
                }
            )),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    failures
}

#[test]
fn vectors_decode_stream() {
    let Some(v) = load_vectors() else { return };
    let failures = v.decode.iter().flat_map(check_stream_decode_case).collect();
    report("decode (StreamDecoder)", failures);
}

// ---------------------------------------------------------------------------
// Cases written from the contract (PROTOCOL.md), independent of the file
// ---------------------------------------------------------------------------

fn encode(payload: &[u8]) -> BytesMut {
    let mut buf = BytesMut::new();
    encode_frame(payload, &mut buf).expect("encode_frame");
    buf
}

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
