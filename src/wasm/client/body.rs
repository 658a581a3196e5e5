//! Outgoing bodies: packets and stream bytes as frames, built in JavaScript
//! memory (payloads are copied once, never through the wasm heap).

use super::MAX_STREAM_FRAME;
use crate::wasm::frames::frame;
use js_sys::Uint8Array;

/// `packets` as one `/message` body: one frame each, in order.
pub(super) fn packets_body(packets: &[Uint8Array]) -> Uint8Array {
    if let [one] = packets {
        return frame(one);
    }
    concat(packets.iter().map(frame))
}

/// `chunks` as stream frames: one per chunk, chunks over
/// [`MAX_STREAM_FRAME`] split; empty chunks carry nothing and are skipped.
pub(super) fn stream_body(chunks: &[Uint8Array]) -> Uint8Array {
    concat(chunks.iter().flat_map(|c| {
        let len = c.length();
        (0..len)
            .step_by(MAX_STREAM_FRAME)
            .map(move |off| frame(&c.subarray(off, (off + MAX_STREAM_FRAME as u32).min(len))))
    }))
}

/// `parts` end to end, in one new `Uint8Array`.
pub(super) fn concat(parts: impl Iterator<Item = Uint8Array>) -> Uint8Array {
    let parts: Vec<Uint8Array> = parts.collect();
    let total: u32 = parts.iter().map(|p| p.length()).sum();
    let out = Uint8Array::new_with_length(total);
    let mut off = 0;
    for p in &parts {
        out.set(p, off);
        off += p.length();
    }
    out
}
