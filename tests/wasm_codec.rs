//! The reference's frame vectors (`../shared/vectors/frames.json`, included
//! at compile time) through the shared codec compiled to wasm32, and through
//! the JavaScript-facing wrappers (`encodeFrame`, `FrameDecoder`): encoding
//! byte-exact, decoding to the same messages and error classes, whole and
//! one byte at a time.
//!
//! Runs in Node and in headless Chromium (scripts/wasm-test.sh):
//! `cargo test --target wasm32-unknown-unknown --test wasm_codec` with
//! `CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner`,
//! plus `WASM_BINDGEN_USE_BROWSER=1 CHROMEDRIVER=/usr/bin/chromedriver` for
//! the browser. On native targets this file compiles to nothing.
#![cfg(target_arch = "wasm32")]

use bytes::{Bytes, BytesMut};
use gossiphttp::codec::{
    encode_frame, FrameError, PacketDecoder, StreamDecoder, DEFAULT_MAX_PACKET_SIZE,
};
use js_sys::{Reflect, Uint8Array};
use serde_json::Value;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::wasm_bindgen_test;

const VECTORS: &str = include_str!("../../shared/vectors/frames.json");

fn vectors() -> Value {
    serde_json::from_str(VECTORS).expect("frames.json parses")
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn str_field<'a>(case: &'a Value, key: &str) -> &'a str {
    case[key].as_str().unwrap_or_default()
}

/// The payload of an encode case: hex, or the pattern byte i = i % 251.
fn payload(case: &Value) -> Vec<u8> {
    let len = case["payload_len"].as_u64().expect("payload_len") as usize;
    let p = match case["payload_hex"].as_str() {
        Some(h) => unhex(h),
        None if len == 0 => Vec::new(),
        None => {
            assert_eq!(str_field(case, "payload_pattern"), "byte i = i % 251");
            (0..len).map(|i| (i % 251) as u8).collect()
        }
    };
    assert_eq!(p.len(), len);
    p
}

fn class(e: &FrameError) -> &'static str {
    match e {
        FrameError::BadMagic(_) => "bad_magic",
        FrameError::Truncated { .. } => "truncated",
        FrameError::TooLarge { .. } => "too_large",
        _ => "other",
    }
}

/// Whether `got` (an error class, "" for a clean end) is what the vector asks.
fn matches(want: &str, got: &str) -> bool {
    match want {
        "too_large_or_truncated" => got == "too_large" || got == "truncated",
        w => w == got,
    }
}

/// A decoder's `decode` or `decode_eof`.
type DecodeFn<D> = fn(&mut D, &mut BytesMut) -> Result<Option<Bytes>, FrameError>;

/// Feeds `input` in pieces of `step` to `dec` (its `decode` while bytes
/// come, `decode_eof` at the end), handing each item to `take`; returns the
/// final error class, "" for a clean end.
fn drive<D>(
    dec: &mut D,
    decode: DecodeFn<D>,
    decode_eof: DecodeFn<D>,
    input: &[u8],
    step: usize,
    mut take: impl FnMut(Bytes),
) -> String {
    let mut buf = BytesMut::new();
    for piece in input.chunks(step.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match decode(dec, &mut buf) {
                Ok(Some(item)) => take(item),
                Ok(None) => break,
                Err(e) => return class(&e).into(),
            }
        }
    }
    loop {
        match decode_eof(dec, &mut buf) {
            Ok(Some(item)) => take(item),
            Ok(None) => return String::new(),
            Err(e) => return class(&e).into(),
        }
    }
}

/// Packets and the final error class, feeding `input` in pieces of `step`.
fn decode_packets(input: &[u8], step: usize, max: usize) -> (Vec<String>, String) {
    let mut out = Vec::new();
    let err = drive(
        &mut PacketDecoder::new(max),
        PacketDecoder::decode,
        PacketDecoder::decode_eof,
        input,
        step,
        |p| out.push(hex(&p)),
    );
    (out, err)
}

/// The stream bytes and the final error class, feeding `input` in pieces.
fn decode_stream(input: &[u8], step: usize) -> (String, String) {
    let mut out = Vec::new();
    let err = drive(
        &mut StreamDecoder::new(),
        StreamDecoder::decode,
        StreamDecoder::decode_eof,
        input,
        step,
        |run| out.extend_from_slice(&run),
    );
    (hex(&out), err)
}

/// The vectors' `encode` or `decode` cases (the reference has at least 9 of
/// each).
fn cases(kind: &str) -> Vec<Value> {
    let cases = vectors()[kind].as_array().cloned().expect("cases");
    assert!(cases.len() >= 9, "expected the reference's {kind} cases");
    cases
}

/// A decode case's expected packets, in hex.
fn messages(case: &Value) -> Vec<String> {
    case["messages_hex"]
        .as_array()
        .expect("messages_hex")
        .iter()
        .map(|m| m.as_str().expect("hex string").to_string())
        .collect()
}

#[wasm_bindgen_test]
fn encode_vectors_byte_exact() {
    for case in &cases("encode") {
        let name = str_field(case, "name");
        let p = payload(case);
        let mut out = BytesMut::new();
        encode_frame(&p, &mut out).expect("encodes");
        let head = unhex(str_field(case, "frame_head_hex"));
        assert_eq!(
            out.len() as u64,
            case["frame_len"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(hex(&out[..head.len()]), hex(&head), "{name}: header");
        assert_eq!(&out[head.len()..], &p[..], "{name}: payload");
        if let Some(f) = case["frame_hex"].as_str() {
            assert_eq!(hex(&out), f, "{name}: whole frame");
        }
        // The JavaScript encodeFrame writes the same bytes.
        let js = gossiphttp::encode_frame(Uint8Array::from(&p[..]).into()).expect("encodeFrame");
        assert_eq!(js.to_vec(), out.to_vec(), "{name}: encodeFrame");
    }
}

#[wasm_bindgen_test]
fn decode_vectors_messages_and_errors() {
    for case in &cases("decode") {
        let name = str_field(case, "name");
        let input = unhex(str_field(case, "input_hex"));
        let want = messages(case);
        let want_err = str_field(case, "error");
        for step in [input.len().max(1), 1, 2, 3] {
            let (got, err) = decode_packets(&input, step, DEFAULT_MAX_PACKET_SIZE);
            assert_eq!(got, want, "{name} (pieces of {step}): packets");
            assert!(
                matches(want_err, &err),
                "{name} (pieces of {step}): error {err:?}, want {want_err:?}"
            );
            // A stream carries the same bytes as one pipe; it has no size cap,
            // so a huge announced frame is a truncation there.
            let (bytes, err) = decode_stream(&input, step);
            if want_err.is_empty() {
                assert_eq!(bytes, want.concat(), "{name} (stream, pieces of {step})");
            } else {
                assert!(
                    want.concat().starts_with(&bytes) || bytes.starts_with(&want.concat()),
                    "{name} (stream): {bytes} vs {want:?}"
                );
            }
            let stream_want = if want_err == "too_large_or_truncated" {
                "truncated"
            } else {
                want_err
            };
            assert_eq!(err, stream_want, "{name} (stream, pieces of {step}): error");
        }
    }
}

#[wasm_bindgen_test]
fn frame_decoder_follows_the_vectors() {
    for case in &cases("decode") {
        let name = str_field(case, "name");
        let input = unhex(str_field(case, "input_hex"));
        let mut dec = gossiphttp::FrameDecoder::new(JsValue::UNDEFINED).unwrap();
        let mut got = Vec::new();
        let mut code = String::new();
        let mut run = || -> Result<(), JsValue> {
            for b in &input {
                let out = dec.push(Uint8Array::from(&[*b][..]).into())?;
                for p in out.iter() {
                    got.push(hex(&Uint8Array::new(&p).to_vec()));
                }
            }
            dec.finish()
        };
        if let Err(e) = run() {
            code = Reflect::get(&e, &"code".into())
                .unwrap()
                .as_string()
                .unwrap_or_default();
        }
        assert_eq!(got, messages(case), "{name}: FrameDecoder packets");
        let want_code = if str_field(case, "error").is_empty() {
            ""
        } else {
            "frame"
        };
        assert_eq!(code, want_code, "{name}: FrameDecoder error code");
    }
}

#[wasm_bindgen_test]
fn max_packet_size_refuses_at_the_header() {
    // A 0xCD header announcing 4 GiB - 1: refused from the header alone.
    let (got, err) = decode_packets(&unhex("cdffffffff"), 5, 1 << 20);
    assert!(got.is_empty());
    assert_eq!(err, "too_large");
    // Exactly the limit passes, one byte more does not.
    let mut at = BytesMut::new();
    encode_frame(&[7u8; 100], &mut at).unwrap();
    assert_eq!(decode_packets(&at, at.len(), 100).1, "");
    assert_eq!(decode_packets(&at, at.len(), 99).1, "too_large");
    let mut dec = gossiphttp::FrameDecoder::new(JsValue::from(99)).unwrap();
    let e = dec.push(Uint8Array::from(&at[..]).into()).unwrap_err();
    assert_eq!(Reflect::get(&e, &"code".into()).unwrap(), "frame");
}
