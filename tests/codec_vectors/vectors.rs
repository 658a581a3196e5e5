//! The shared vector file's encode and decode cases, checked through the writer and both readers.

use std::path::PathBuf;

use bytes::BytesMut;
use gossiphttp::codec::{
    encode_frame, encoded_len, frame_header, FrameError, DEFAULT_MAX_PACKET_SIZE,
};
use serde::Deserialize;

use crate::{pattern_payload, run_packet, run_stream};

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
