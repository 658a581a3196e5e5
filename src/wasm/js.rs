//! What JavaScript sees in common: errors with a `code`, argument checks.
//!
//! Every error the package makes is a JavaScript `Error` whose `code`
//! property names the failure, one of these (the `GossipError` type in
//! `gossiphttp.d.ts` lists the same):
//!
//! | code | meaning | from |
//! |---|---|---|
//! | `"frame"` | a malformed frame, or one larger than `maxPacketSize` | `Peer`, `FrameDecoder`, a `handleRequest` stream |
//! | `"status"` | the peer answered something else than `200`; `err.status` holds the status (for `505`, the message says how to enable HTTP/1.1) | `Peer`, `members` |
//! | `"network"` | `fetch` (or `node:http2`) failed (refused, reset, TLS, CORS, DNS), or the runtime has no `fetch` | `Peer`, `members` |
//! | `"timeout"` | the peer did not answer within `timeoutMs` | `Peer`, `members` |
//! | `"protocol"` | the node's answer is not one valid memberlist push-pull (truncated, another message, over 20 MiB, an empty answer: a wrong `label`) | `members` |
//! | `"not_enough_members"` | fewer members may own keys than owners were asked for | `lookup` |
//! | `"invalid_address"` | the peer URL is not an `http://` or `https://` URL | `new Peer` |
//! | `"closed"` | the exchange or stream was cancelled or closed before this call | `Exchange`, `DuplexStream` |
//! | `"invalid_argument"` / `"invalid_options"` | a bad argument or option (wrong type, out of range) | every function |
//!
//! Two kinds of error pass through without a `code`: what a `handleRequest`
//! handler (`onPacket`, `onStream`) throws, which rejects `handleRequest`
//! as it was thrown, and a failure of the JavaScript runtime itself (an API
//! such as `AbortController` missing or throwing). A [`crate::Error`]
//! converted with `From` (for Rust code that makes its own bindings; the
//! package's functions never return one) carries [`crate::Error::code`],
//! whose names differ from these.

use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// A JavaScript `Error` whose `code` property names the failure, one of
/// the codes listed in this module's docs, so callers can branch on
/// `err.code` as they do with Node's system errors.
pub fn error(code: &str, message: &str) -> JsValue {
    let err = js_sys::Error::new(message);
    let _ = Reflect::set(&err, &JsValue::from_str("code"), &JsValue::from_str(code));
    err.into()
}

/// A JavaScript `Error` with `code` = [`crate::Error::code`] (and `status`
/// for [`crate::Error::Status`]).
impl From<crate::Error> for JsValue {
    fn from(e: crate::Error) -> JsValue {
        let err = error(e.code(), &e.to_string());
        if let crate::Error::Status { status, .. } = e {
            let _ = Reflect::set(&err, &"status".into(), &JsValue::from(status));
        }
        err
    }
}

/// A view of `value`'s bytes when it is a `Uint8Array` (a Node `Buffer`
/// too), another `ArrayBufferView` or an `ArrayBuffer`; else an error with
/// code `"invalid_argument"` naming `what`.
pub(crate) fn bytes_arg(value: &JsValue, what: &str) -> Result<Uint8Array, JsValue> {
    if let Some(a) = value.dyn_ref::<Uint8Array>() {
        return Ok(a.clone());
    }
    if let Some(b) = value.dyn_ref::<js_sys::ArrayBuffer>() {
        return Ok(Uint8Array::new(b));
    }
    if js_sys::ArrayBuffer::is_view(value) {
        let num = |key: &str| {
            Reflect::get(value, &key.into())
                .ok()
                .and_then(|v| v.as_f64())
        };
        if let (Ok(buffer), Some(offset), Some(len)) = (
            Reflect::get(value, &"buffer".into()),
            num("byteOffset"),
            num("byteLength"),
        ) {
            return Ok(Uint8Array::new_with_byte_offset_and_length(
                &buffer,
                offset as u32,
                len as u32,
            ));
        }
    }
    Err(error(
        "invalid_argument",
        &format!("{what} must be a Uint8Array (or an ArrayBuffer / ArrayBufferView)"),
    ))
}

/// An optional byte count: `undefined`/`null` → `None`, a non-negative
/// integer up to `u32::MAX` → `Some`, anything else → code `"invalid_options"`.
pub(crate) fn size_option(value: &JsValue, what: &str) -> Result<Option<usize>, JsValue> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    match value.as_f64() {
        Some(n) if n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n <= u32::MAX as f64 => {
            Ok(Some(n as usize))
        }
        _ => Err(error(
            "invalid_options",
            &format!("{what} must be an integer from 0 to 4294967295"),
        )),
    }
}

/// The `message` of a JavaScript error (or its string form), with its
/// `cause`'s message when there is one (Node's `fetch failed` hides the
/// reason there: `ECONNREFUSED`, a TLS error, ...).
pub(crate) fn describe(err: &JsValue) -> String {
    let text = |v: &JsValue| -> Option<String> {
        if let Some(e) = v.dyn_ref::<js_sys::Error>() {
            return Some(String::from(e.message()));
        }
        if v.is_object() {
            if let Some(m) = Reflect::get(v, &"message".into()).ok()?.as_string() {
                return Some(m);
            }
        }
        v.as_string()
    };
    let mut out = text(err).unwrap_or_else(|| "unknown error".into());
    if err.is_object() {
        if let Ok(cause) = Reflect::get(err, &"cause".into()) {
            if !cause.is_undefined() && !cause.is_null() {
                let code = Reflect::get(&cause, &"code".into())
                    .ok()
                    .and_then(|c| c.as_string());
                if let Some(c) = text(&cause).or(code) {
                    out.push_str(": ");
                    out.push_str(&c);
                }
            }
        }
    }
    out
}

/// The `maxPacketSize` option: a byte count, capped so that a header plus
/// that many bytes still fits a 32-bit length (wasm32's `usize`).
pub(crate) fn max_packet_option(value: &JsValue) -> Result<Option<usize>, JsValue> {
    const LONG_HEADER: usize = 5; // 0xCD + u32 length
    let limit = u32::MAX as usize - LONG_HEADER;
    Ok(size_option(value, "maxPacketSize")?.map(|n| n.min(limit)))
}

/// True when `err` is already one of ours (an object with a string `code`).
pub(crate) fn has_code(err: &JsValue) -> bool {
    err.is_object()
        && Reflect::get(err, &"code".into())
            .map(|c| c.is_string())
            .unwrap_or(false)
}

/// One read of a body: `Some(chunk)`, or `None` once the body ended. The
/// chunk is whatever the stream holds (bytes, for a `fetch` body).
pub(crate) async fn read_step(
    reader: &web_sys::ReadableStreamDefaultReader,
) -> Result<Option<JsValue>, JsValue> {
    let step: web_sys::ReadableStreamReadResult =
        wasm_bindgen_futures::JsFuture::from(reader.read())
            .await?
            .unchecked_into();
    if step.get_done().unwrap_or(true) {
        return Ok(None);
    }
    Ok(Some(step.get_value()))
}

thread_local! {
    /// One do-nothing rejection handler, shared by every [`ignore`].
    static SWALLOW: Closure<dyn FnMut(JsValue)> = Closure::new(|_: JsValue| {});
}

/// Marks a promise whose outcome does not matter (a `cancel()` or `abort()`
/// on a stream that already failed rejects) as handled, so it does not
/// surface as an unhandled rejection.
pub(crate) fn ignore(p: js_sys::Promise) {
    SWALLOW.with(|f| {
        let _ = p.catch(f);
    });
}
