//! `node:http2` as a transport, for `members(url, { http2: true })` in Node:
//! Node's `fetch` speaks HTTP/1.1 only, which Go nodes answer with `505`.
//!
//! Node's modules are reached through `process.getBuiltinModule` (Node
//! 20.16+), never through an `import`, so the package still loads in
//! browsers and workers; there the option is refused with code
//! `"invalid_options"`. The answer is handed back as a web `Response`
//! (status, and the stream's body through `Readable.toWeb`), so the rest of
//! the call reads it exactly as a `fetch` answer. `http://` URLs are spoken
//! as h2c with prior knowledge, `https://` as h2 over TLS (trusting what
//! Node trusts: `NODE_EXTRA_CA_CERTS`).

use crate::wasm::client::deadline::{global_fn, Deadline};
use crate::wasm::client::request::{request_headers, status_error};
use crate::wasm::js::{describe, error};
use js_sys::{Array, Function, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Response, ResponseInit};

thread_local! {
    /// The listener for `error` events: without one, Node turns an `error`
    /// event into an uncaught exception. The failure itself reaches the
    /// call through the request's promise.
    static NOOP: Closure<dyn FnMut(JsValue)> = Closure::new(|_: JsValue| {});
}

const NEEDS_NODE: &str = "http2: true needs Node 20.16 or later (node:http2 through \
process.getBuiltinModule); browsers and workers cannot open HTTP/2 connections themselves: \
leave http2 off there (a browser speaks HTTP/2 to an https:// node on its own)";

/// The HTTP/2 connection of one call; closed when dropped.
pub(super) struct Session(JsValue);

impl Drop for Session {
    fn drop(&mut self) {
        let _ = call(&self.0, "destroy", &[]);
    }
}

/// `obj.method(...args)`.
fn call(obj: &JsValue, method: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
    let f: Function = Reflect::get(obj, &method.into())?.dyn_into()?;
    Reflect::apply(&f, obj, &args.iter().collect::<Array>())
}

/// One of Node's built-in modules, or code `"invalid_options"` outside Node.
fn node_module(name: &str) -> Result<JsValue, JsValue> {
    let refused = || error("invalid_options", NEEDS_NODE);
    let process = Reflect::get(&js_sys::global(), &"process".into()).map_err(|_| refused())?;
    if !process.is_object() {
        return Err(refused());
    }
    let module = call(&process, "getBuiltinModule", &[name.into()]).map_err(|_| refused())?;
    // `node:events` is a function (EventEmitter), the others objects.
    if module.is_object() || module.is_function() {
        Ok(module)
    } else {
        Err(refused())
    }
}

fn on_error(emitter: &JsValue) -> Result<(), JsValue> {
    NOOP.with(|f| call(emitter, "on", &["error".into(), f.as_ref().clone()]))?;
    Ok(())
}

/// A failure of Node's as one of our errors: `"timeout"` when the deadline
/// fired, else `"network"` with Node's message and cause (Node's errors have
/// a `code` of their own, `ERR_HTTP2_...`, which is not one of ours).
fn failed(deadline: &Deadline, err: &JsValue, url: &str) -> JsValue {
    deadline.classify(JsValue::from_str(&describe(err)), "POST", url)
}

/// `POST url` over HTTP/2 with the protocol's headers and `body`; resolves
/// at the response headers of a `200` (the deadline armed for that wait and
/// left armed), with the connection to drop once the body has been read.
pub(super) async fn post(
    url: &str,
    token: Option<&str>,
    body: &Uint8Array,
    deadline: &mut Deadline,
) -> Result<(Response, Session), JsValue> {
    let http2 = node_module("node:http2")?;
    let events = node_module("node:events")?;
    let node_stream = node_module("node:stream")?;
    // Node checks that the runtime has it before anything is sent.
    global_fn("setTimeout")?;
    let parsed = web_sys::Url::new(url)?;

    let session = Session(call(&http2, "connect", &[parsed.origin().into()])?);
    on_error(&session.0)?;
    let headers = request_headers(token)?;
    Reflect::set(&headers, &":method".into(), &"POST".into())?;
    Reflect::set(&headers, &":path".into(), &parsed.pathname().into())?;
    let with_signal = Object::new();
    Reflect::set(&with_signal, &"signal".into(), &deadline.signal())?;

    deadline.arm()?;
    let request = call(
        &session.0,
        "request",
        &[headers.into(), with_signal.clone().into()],
    )
    .map_err(|e| failed(deadline, &e, url))?;
    on_error(&request)?;
    call(&request, "end", &[body.into()])?;
    let response: Promise = call(
        &events,
        "once",
        &[request.clone(), "response".into(), with_signal.into()],
    )?
    .dyn_into()?;
    let args = JsFuture::from(response)
        .await
        .map_err(|e| failed(deadline, &e, url))?;
    let head = Reflect::get_u32(&args, 0)?;
    let status = Reflect::get(&head, &":status".into())?
        .as_f64()
        .filter(|s| (200.0..=599.0).contains(s))
        .ok_or_else(|| {
            error(
                "network",
                &format!("POST {url}: the HTTP/2 answer has no valid :status"),
            )
        })? as u16;

    let readable = Reflect::get(&node_stream, &"Readable".into())?;
    let init = ResponseInit::new();
    init.set_status(status);
    let resp = if matches!(status, 204 | 205 | 304) {
        // A response with one of these statuses may not have a body.
        Response::new_with_opt_readable_stream_and_init(None, &init)?
    } else {
        let web = call(&readable, "toWeb", &[request])?;
        Response::new_with_opt_readable_stream_and_init(Some(web.unchecked_ref()), &init)?
    };
    if status != 200 {
        return Err(status_error(&resp, url, deadline).await);
    }
    Ok((resp, session))
}
