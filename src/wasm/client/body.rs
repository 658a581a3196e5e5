//! Outgoing bodies: packets and stream bytes as frames, built in JavaScript
//! memory (payloads are copied once, never through the wasm heap).

use super::MAX_STREAM_FRAME;
use crate::wasm::frames::frame;
use crate::wasm::js::error;
use js_sys::Uint8Array;
use wasm_bindgen::JsValue;

/// `packets` as one `/message` body: one frame each, in order.
pub(super) fn packets_body(packets: &[Uint8Array]) -> Result<Uint8Array, JsValue> {
    if let [one] = packets {
        return Ok(frame(one));
    }
    concat(packets.iter().map(frame)).ok_or_else(|| too_large("invalid_argument", "the packets"))
}

/// `chunks` as stream frames: one per chunk, chunks over
/// [`MAX_STREAM_FRAME`] split; empty chunks carry nothing and are skipped.
pub(crate) fn stream_body(chunks: &[Uint8Array]) -> Result<Uint8Array, JsValue> {
    concat(chunks.iter().flat_map(|c| {
        let len = c.length();
        (0..len)
            .step_by(MAX_STREAM_FRAME)
            .map(move |off| frame(&c.subarray(off, (off + MAX_STREAM_FRAME as u32).min(len))))
    }))
    .ok_or_else(|| too_large("invalid_argument", "the data"))
}

/// `parts` end to end, in one new `Uint8Array`; `None` when they add up to
/// more than one `Uint8Array` can hold here (4 GiB).
pub(super) fn concat(parts: impl Iterator<Item = Uint8Array>) -> Option<Uint8Array> {
    let parts: Vec<Uint8Array> = parts.collect();
    let total = parts
        .iter()
        .try_fold(0u32, |sum, p| sum.checked_add(p.length()))?;
    let out = Uint8Array::new_with_length(total);
    let mut off = 0;
    for p in &parts {
        out.set(p, off);
        off += p.length();
    }
    Some(out)
}

/// The error for bytes that do not fit one `Uint8Array`.
pub(super) fn too_large(code: &str, what: &str) -> JsValue {
    error(
        code,
        &format!("{what} add up to more than 4 GiB, the most one Uint8Array holds here: send or read them in parts"),
    )
}
