//! Frames for JavaScript: [`encode_frame`] (`encodeFrame`) and
//! [`FrameDecoder`], thin wrappers over the shared [`crate::codec`].
//!
//! The rules are the codec's: a writer puts `0xCC` + u16 length before a
//! payload of 65,535 bytes or less and `0xCD` + u32 length above; a reader
//! accepts both, refuses any other first byte, refuses a frame whose header
//! announces more than its `maxPacketSize` before buffering any of it, and
//! reports input that ends inside a frame.

use crate::codec::{frame_header, FrameError, PacketDecoder, DEFAULT_MAX_PACKET_SIZE};
use crate::wasm::js::{bytes_arg, error, max_packet_option};
use bytes::BytesMut;
use js_sys::{Array, Uint8Array};
use wasm_bindgen::prelude::*;

/// `payload` as one frame, in a new `Uint8Array` (`0xCC` header up to 65,535
/// bytes, `0xCD` above).
#[wasm_bindgen(js_name = encodeFrame, unchecked_return_type = "Uint8Array")]
pub fn encode_frame(
    #[wasm_bindgen(unchecked_param_type = "Uint8Array")] payload: JsValue,
) -> Result<Uint8Array, JsValue> {
    let payload = bytes_arg(&payload, "payload")?;
    Ok(frame(&payload))
}

/// A frame around `payload`, built in JavaScript memory (the payload is
/// copied once, never through the wasm heap).
pub(crate) fn frame(payload: &Uint8Array) -> Uint8Array {
    // A Uint8Array's length is a u32, so it always fits a frame.
    let len = payload.length() as usize;
    let (header, hlen) = frame_header(len);
    let out = Uint8Array::new_with_length((hlen + len) as u32);
    out.subarray(0, hlen as u32).copy_from(&header[..hlen]);
    out.set(payload, hlen as u32);
    out
}

/// The JavaScript error for a malformed frame: code `"frame"`.
pub(crate) fn frame_error(context: &str, e: &FrameError) -> JsValue {
    error("frame", &format!("{context}: {e}"))
}

/// Splits a body of frames into packets as its bytes arrive, one whole frame
/// per packet (what a `/message` receiver does).
///
/// It refuses (code `"frame"`) a first byte other than `0xCC`/`0xCD`, and a
/// frame whose header announces more than `maxPacketSize` bytes, before any
/// room is reserved for it. After an error the decoder stays failed.
#[wasm_bindgen]
pub struct FrameDecoder {
    decoder: PacketDecoder,
    buf: BytesMut,
    failed: Option<FrameError>,
}

#[wasm_bindgen]
impl FrameDecoder {
    /// A decoder taking packets of up to `maxPacketSize` bytes (default 1 MiB).
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(js_name = maxPacketSize, unchecked_optional_param_type = "number")]
        max_packet_size: JsValue,
    ) -> Result<FrameDecoder, JsValue> {
        let max = max_packet_option(&max_packet_size)?.unwrap_or(DEFAULT_MAX_PACKET_SIZE);
        Ok(FrameDecoder {
            decoder: PacketDecoder::new(max),
            buf: BytesMut::new(),
            failed: None,
        })
    }

    /// Appends `chunk` and returns the packets it completed, in order.
    /// Throws code `"frame"` at a malformed or too large frame; the packets
    /// completed before it in the same chunk are on the error's `packets`.
    #[wasm_bindgen(unchecked_return_type = "Uint8Array[]")]
    pub fn push(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] chunk: JsValue,
    ) -> Result<Array, JsValue> {
        if let Some(e) = &self.failed {
            return Err(frame_error("the decoder already failed", e));
        }
        let chunk = bytes_arg(&chunk, "chunk")?;
        let start = self.buf.len();
        self.buf.resize(start + chunk.length() as usize, 0);
        chunk.copy_to(&mut self.buf[start..]);
        let out = Array::new();
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(packet)) => {
                    out.push(&Uint8Array::from(&packet[..]));
                }
                Ok(None) => return Ok(out),
                Err(e) => {
                    self.buf = BytesMut::new();
                    let err = frame_error("malformed frame", &e);
                    self.failed = Some(e);
                    let _ = js_sys::Reflect::set(&err, &"packets".into(), &out);
                    return Err(err);
                }
            }
        }
    }

    /// Ends the input: throws code `"frame"` if it stopped inside a frame
    /// (every whole frame was already returned by `push`).
    pub fn finish(&mut self) -> Result<(), JsValue> {
        if let Some(e) = &self.failed {
            return Err(frame_error("the decoder already failed", e));
        }
        match self.decoder.decode_eof(&mut self.buf) {
            Ok(None) => Ok(()),
            // push() took every whole frame, so none can be left.
            Ok(Some(_)) => Err(error("frame", "a whole frame was left undecoded")),
            Err(e) => {
                self.buf = BytesMut::new();
                let err = frame_error("the input ended inside a frame", &e);
                self.failed = Some(e);
                Err(err)
            }
        }
    }

    /// Bytes held for a frame not yet complete.
    #[wasm_bindgen(getter, js_name = pendingBytes)]
    pub fn pending_bytes(&self) -> usize {
        self.buf.len()
    }
}
