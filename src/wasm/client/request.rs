//! One `POST` to the peer with the protocol's headers, and what a non-`200`
//! answer becomes: code `"status"`, with the peer's reason text, and for a
//! `505` what to do about it.

use super::body::packets_body;
use super::deadline::{global_fn, Deadline};
use crate::wasm::js::{error, ignore, read_step};
use crate::CONTENT_TYPE;
use js_sys::{Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{ReadableStreamDefaultReader, RequestInit, Response};

/// How much of a non-`200` answer's body is read for the error message.
const REASON_BYTES: usize = 512;

/// What a `505` means for a `fetch` client, and the fix. `fetch` in Node
/// and in local workerd speaks HTTP/1.1 only (so does a browser's to an
/// `http://` peer), and a peer answers `505` when it does not accept it.
const HTTP1_REFUSED: &str =
    "the peer refused HTTP/1.1 (505): this runtime's fetch speaks HTTP/1.1; \
enable HTTP/1.1 on the peer (gossiphttp listen/node --accept-http1, or Options::accept_http1) \
or use HTTP/2 from Node (node:http2)";

/// The request body: bytes, or a stream (then `duplex: 'half'`).
pub(crate) enum Body<'a> {
    Bytes(&'a Uint8Array),
    Stream(&'a web_sys::ReadableStream),
}

/// The headers of every request to a peer: the contract's content type and,
/// with a token, `Authorization: Bearer`.
pub(crate) fn request_headers(token: Option<&str>) -> Result<Object, JsValue> {
    let headers = Object::new();
    Reflect::set(&headers, &"content-type".into(), &CONTENT_TYPE.into())?;
    if let Some(token) = token {
        Reflect::set(
            &headers,
            &"authorization".into(),
            &format!("Bearer {token}").into(),
        )?;
    }
    Ok(headers)
}

/// `POST url` with the protocol's headers (and `token` as a bearer token);
/// resolves at the response headers of a `200`. The deadline is armed for
/// that wait and left armed.
pub(crate) async fn post(
    url: &str,
    token: Option<&str>,
    body: Body<'_>,
    deadline: &mut Deadline,
) -> Result<Response, JsValue> {
    let headers = request_headers(token)?;
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers);
    match body {
        Body::Bytes(b) => init.set_body(b),
        Body::Stream(s) => {
            init.set_body(s);
            // Required by the fetch standard for a stream body.
            Reflect::set(&init, &"duplex".into(), &"half".into())?;
        }
    }
    init.set_signal(Some(&deadline.signal()));
    let (global, fetch) = global_fn("fetch")?;
    deadline.arm()?;
    let answer = match fetch.call2(&global, &url.into(), &init) {
        Ok(p) => JsFuture::from(Promise::resolve(&p)).await,
        Err(e) => Err(e),
    };
    let resp: Response = match answer {
        Ok(r) if r.is_object() => r.unchecked_into(),
        Ok(_) => {
            return Err(error(
                "network",
                "fetch resolved to something else than a Response",
            ))
        }
        Err(e) => return Err(deadline.classify(e, "POST", url)),
    };
    if resp.status() != 200 {
        return Err(status_error(&resp, url, deadline).await);
    }
    Ok(resp)
}

/// One `POST /message` carrying `packets`; `Ok` on `200`.
pub(super) async fn post_packets(
    url: &str,
    token: Option<&str>,
    timeout_ms: f64,
    packets: &[Uint8Array],
) -> Result<(), JsValue> {
    let body = packets_body(packets)?;
    let mut deadline = Deadline::new(timeout_ms)?;
    let resp = post(url, token, Body::Bytes(&body), &mut deadline).await?;
    // Read the (empty) body so the connection can carry the next request.
    if let Ok(p) = resp.array_buffer() {
        JsFuture::from(p)
            .await
            .map_err(|e| deadline.classify(e, "POST", url))?;
    }
    deadline.disarm();
    Ok(())
}

/// Code `"status"` with `status`, and the start of the peer's reason text;
/// for a `505`, [`HTTP1_REFUSED`] first.
pub(crate) async fn status_error(resp: &Response, url: &str, deadline: &mut Deadline) -> JsValue {
    let status = resp.status();
    let head = match resp.body() {
        Some(body) => reason_head(body).await,
        None => Vec::new(),
    };
    deadline.disarm();
    let reason = String::from_utf8_lossy(&head);
    let reason: String = reason.trim().chars().take(200).collect();
    let (mut msg, before_reason) = if status == 505 {
        (format!("{url}: {HTTP1_REFUSED}"), "; the peer said: ")
    } else {
        (format!("peer {url} answered HTTP {status}"), ": ")
    };
    if !reason.is_empty() {
        msg.push_str(before_reason);
        msg.push_str(&reason);
    }
    let err = error("status", &msg);
    let _ = Reflect::set(&err, &"status".into(), &JsValue::from(status));
    err
}

/// At most [`REASON_BYTES`] of `body`; the rest is cancelled. A failed read
/// ends it early (the status is the error; the text is a courtesy).
async fn reason_head(body: web_sys::ReadableStream) -> Vec<u8> {
    let mut head = Vec::new();
    let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    while head.len() < REASON_BYTES {
        let Ok(Some(value)) = read_step(&reader).await else {
            break;
        };
        let Some(chunk) = value.dyn_ref::<Uint8Array>() else {
            break;
        };
        let take = chunk.length().min((REASON_BYTES - head.len()) as u32);
        head.extend(chunk.subarray(0, take).to_vec());
    }
    ignore(reader.cancel());
    head
}
