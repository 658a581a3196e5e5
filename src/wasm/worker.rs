//! The worker handler: a worker's `fetch` (Cloudflare Workers, workerd, or
//! any runtime with `Request`, `Response` and web streams) answers
//! `/api/v1/ckit/transport/message` and `/stream` with the contract's rules.
//!
//! ```js
//! import { initSync, handleRequest } from './gossiphttp.js';
//! import wasm from './gossiphttp_bg.wasm'; // a CompiledWasm module
//! initSync({ module: wasm });
//!
//! export default {
//!   async fetch(request) {
//!     const answer = await handleRequest(request, {
//!       onPacket(payload, from) { console.log(`${payload.length} bytes from ${from}`); },
//!       async *onStream(incoming, from) { for await (const chunk of incoming) yield chunk; }, // echo
//!     }, { token: 's3cret' });
//!     return answer ?? new Response('not here', { status: 404 });
//!   },
//! };
//! ```
//!
//! A worker is addressed by URL (`https://gossip.example.workers.dev`, or
//! with a path prefix when `basePath` has one), not by `host:port`: peers
//! that send to it use the URL as the peer address. Locally, workerd speaks
//! HTTP/1.1 only, so a native peer needs its HTTP/1.1 client option to reach
//! it; deployed workers sit behind an edge that also accepts HTTP/2 over TLS.
//! The `.wasm` file is imported as a compiled module (`wasm = embed ...` in a
//! workerd config, the default `CompiledWasm` rule in wrangler).
//!
//! `from` is the `CF-Connecting-IP` header (set by Cloudflare's edge), or
//! `"unknown"`. Errors thrown at JavaScript carry a `code`
//! (`"invalid_options"`, `"invalid_argument"`, `"frame"`).
//!
//! What the handler enforces, in this order (the native server's order),
//! for a URL under `basePath`:
//! 1. the path is `basePath + "/message"` or `basePath + "/stream"`, and the
//!    matching handler was given: else `404`;
//! 2. with `corsAllowedOrigins`, a request carrying an `Origin` outside the
//!    list gets `403`; an allowed one's `OPTIONS` preflight gets `204` with
//!    `Access-Control-Allow-Origin/-Methods: POST/-Headers: content-type`
//!    (`, authorization` with a token), and its other answers carry
//!    `Access-Control-Allow-Origin` (requests without `Origin`, such as
//!    peers', are not affected);
//! 3. with a `token`, the request carries `Authorization: Bearer <token>`:
//!    else `401`, and nothing is read or delivered;
//! 4. `Content-Type` is exactly `application/x.ckit`: else `400` (checked
//!    before the method, as the reference does: a bare `GET` is a `400`);
//! 5. the method is `POST`: else `405` with `Allow: POST`.
//!
//! Then `/message` hands each frame to `onPacket` as soon as it is whole and
//! answers `200` at the end of the body; at the first malformed frame it
//! stops reading and answers `400` (`413` when the frame's header announces
//! more than `maxPacketSize`, refused before anything is allocated for it);
//! the frames before it were delivered. `/stream` answers `200` at once (Go
//! dialers wait for the headers before they write) with a body of frames:
//! each chunk `onStream` yields becomes frames. Workers have no `503`: a
//! worker that is shutting down is simply not called.

use crate::codec::{
    frame_header, FrameError, PacketDecoder, StreamDecoder, DEFAULT_MAX_PACKET_SIZE,
};
use crate::wasm::js::{error, max_packet_option};
use crate::{BASE_ROUTE, CONTENT_TYPE};
use bytes::BytesMut;
use js_sys::{Function, Object, Promise, Reflect, Symbol, Uint8Array};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{future_to_promise, spawn_local, JsFuture};
use web_sys::{
    Headers, ReadableStream, ReadableStreamDefaultReader, Request, Response, ResponseInit,
    TransformStream, Url, WritableStreamDefaultWriter,
};

/// The longest payload put in one outgoing stream frame. Bigger chunks are
/// split (frame boundaries mean nothing on a stream), which bounds what one
/// write copies; frames above 65,535 bytes use the `0xCD` header.
pub const MAX_STREAM_FRAME: usize = 1 << 20;

#[wasm_bindgen(typescript_custom_section)]
const TS_WORKER: &'static str = r#"
/** Callbacks for {@link handleRequest}. `from` is the `CF-Connecting-IP` header, or "unknown". */
export interface TransportHandlers {
  /** Called once per `/message` frame, as soon as it is whole; a returned promise is awaited before the next frame is read. */
  onPacket?(payload: Uint8Array, from: string): void | Promise<void>;
  /**
   * Called once per `/stream` request. `incoming` yields the peer's stream bytes (frames unwrapped);
   * every chunk returned or yielded is sent back as frames. Without it, `/stream` answers 404.
   */
  onStream?(
    incoming: AsyncIterable<Uint8Array>,
    from: string,
  ): AsyncIterable<Uint8Array> | Iterable<Uint8Array> | Promise<AsyncIterable<Uint8Array> | Iterable<Uint8Array>>;
}

/** Options for {@link handleRequest}. */
export interface HandleRequestOptions {
  /** Largest `/message` packet accepted, in bytes (default 1 MiB); a bigger frame header gets 413 before anything is allocated. */
  maxPacketSize?: number;
  /** Shared secret: requests must carry `Authorization: Bearer <token>`, else 401. */
  token?: string;
  /** Where the endpoints live (default "/api/v1/ckit/transport"). */
  basePath?: string;
  /**
   * Browser pages allowed to call the endpoints (exact origins such as "https://app.example", or "*").
   * Requests with another `Origin` get 403; preflights from listed origins get 204. Unset: no CORS handling.
   */
  corsAllowedOrigins?: string[];
}

/**
 * Answers gossiphttp's `/message` and `/stream` endpoints from a worker's `fetch`.
 * Resolves `null` for URLs outside `basePath`, so the worker can route the rest.
 * Checks, in order: 404 (unknown path, or no handler for it), 403/204 (CORS, when set), 401 (token), 400 (content type
 * not exactly application/x.ckit), 405 (not POST). Then `/message` answers 200, or 400 at a
 * malformed frame / 413 at one over `maxPacketSize` (earlier frames were delivered); `/stream`
 * answers 200 at once. Rejects when `onPacket` throws or rejects, or `onStream` throws synchronously.
 */
export function handleRequest(
  request: Request,
  handlers: TransportHandlers,
  options?: HandleRequestOptions,
): Promise<Response | null>;
"#;

/// The options, checked.
struct WorkerOptions {
    max_packet_size: usize,
    token: Option<String>,
    /// No trailing slash; empty for the root.
    base_path: String,
    /// `None`: no CORS handling. `Some`: the allowed origins (`"*"` for any).
    cors: Option<Vec<String>>,
}

fn parse_options(options: &JsValue) -> Result<WorkerOptions, JsValue> {
    let mut out = WorkerOptions {
        max_packet_size: DEFAULT_MAX_PACKET_SIZE,
        token: None,
        base_path: BASE_ROUTE.trim_end_matches('/').to_string(),
        cors: None,
    };
    if options.is_undefined() || options.is_null() {
        return Ok(out);
    }
    if !options.is_object() {
        return Err(error("invalid_options", "options must be an object"));
    }
    // Capped so that a header plus that many bytes fits wasm32's usize.
    if let Some(max) = max_packet_option(&get(options, "maxPacketSize")?)? {
        out.max_packet_size = max;
    }
    let token = get(options, "token")?;
    if !token.is_undefined() && !token.is_null() {
        let Some(t) = token.as_string() else {
            return Err(error("invalid_options", "token must be a string"));
        };
        out.token = Some(t);
    }
    let base = get(options, "basePath")?;
    if !base.is_undefined() {
        let Some(b) = base.as_string() else {
            return Err(error("invalid_options", "basePath must be a string"));
        };
        if !b.is_empty() && !b.starts_with('/') {
            return Err(error("invalid_options", "basePath must start with '/'"));
        }
        out.base_path = b.trim_end_matches('/').to_string();
    }
    let cors = get(options, "corsAllowedOrigins")?;
    if !cors.is_undefined() && !cors.is_null() {
        let invalid = || {
            error(
                "invalid_options",
                "corsAllowedOrigins must be an array of strings",
            )
        };
        if !js_sys::Array::is_array(&cors) {
            return Err(invalid());
        }
        let mut origins = Vec::new();
        for o in js_sys::Array::from(&cors).iter() {
            let o = o.as_string().ok_or_else(invalid)?;
            origins.push(o.trim_end_matches('/').to_string());
        }
        out.cors = (!origins.is_empty()).then_some(origins);
    }
    Ok(out)
}

fn get(target: &JsValue, key: &str) -> Result<JsValue, JsValue> {
    Reflect::get(target, &JsValue::from_str(key))
}

/// A handler function, if `handlers` has one under `name`.
fn handler(handlers: &JsValue, name: &str) -> Result<Option<Function>, JsValue> {
    if handlers.is_undefined() || handlers.is_null() {
        return Ok(None);
    }
    let f = get(handlers, name)?;
    if f.is_undefined() || f.is_null() {
        return Ok(None);
    }
    f.dyn_into::<Function>().map(Some).map_err(|_| {
        error(
            "invalid_options",
            &format!("handlers.{name} must be a function"),
        )
    })
}

/// Answers gossiphttp's endpoints from a worker's `fetch`: resolves `null`
/// outside `basePath`, a `Response` under it (see the module docs for the
/// rules, in the order they are applied).
#[wasm_bindgen(js_name = handleRequest, skip_typescript)]
pub async fn handle_request(
    request: Request,
    handlers: JsValue,
    options: JsValue,
) -> Result<JsValue, JsValue> {
    let opts = parse_options(&options)?;
    let url = Url::new(&request.url())?;
    let path = url.pathname();
    let Some(rest) = path.strip_prefix(opts.base_path.as_str()) else {
        return Ok(JsValue::NULL);
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        // `/api/v1/ckit/transportX` is not under the base path.
        return Ok(JsValue::NULL);
    }
    let (is_message, name) = match rest {
        "/message" => (true, "onPacket"),
        "/stream" => (false, "onStream"),
        _ => return Ok(status(404, "not found")?.into()),
    };
    let Some(callback) = handler(&handlers, name)? else {
        return Ok(status(404, "not served here")?.into());
    };
    let headers = request.headers();
    // CORS, when configured: refuse other origins outright, answer
    // preflights, and let allowed pages read every response.
    let mut allowed_origin = None;
    if let (Some(cors), Some(origin)) = (&opts.cors, headers.get("origin")?) {
        if !cors.iter().any(|o| o == "*" || *o == origin) {
            return Ok(status(403, "origin not allowed")?.into());
        }
        if request.method() == "OPTIONS" {
            let resp = status(204, "")?;
            let h = resp.headers();
            allow_origin(&h, &origin)?;
            h.set("access-control-allow-methods", "POST")?;
            let allow_headers = if opts.token.is_some() {
                "content-type, authorization"
            } else {
                "content-type"
            };
            h.set("access-control-allow-headers", allow_headers)?;
            h.set("access-control-max-age", "600")?;
            return Ok(resp.into());
        }
        allowed_origin = Some(origin);
    }
    let resp = answer(&request, &headers, &handlers, &callback, &opts, is_message).await?;
    if let Some(origin) = allowed_origin {
        allow_origin(&resp.headers(), &origin)?;
    }
    Ok(resp.into())
}

fn allow_origin(headers: &Headers, origin: &str) -> Result<(), JsValue> {
    headers.set("access-control-allow-origin", origin)?;
    headers.set("vary", "origin")
}

/// Token, content type and method, then the endpoint itself.
async fn answer(
    request: &Request,
    headers: &Headers,
    handlers: &JsValue,
    callback: &Function,
    opts: &WorkerOptions,
    is_message: bool,
) -> Result<Response, JsValue> {
    if let Some(token) = &opts.token {
        if !token_accepted(headers, token)? {
            return status(401, "missing or wrong bearer token");
        }
    }
    if headers.get("content-type")?.as_deref() != Some(CONTENT_TYPE) {
        return status(400, "content-type must be exactly application/x.ckit");
    }
    if request.method() != "POST" {
        let resp = status(405, "method not allowed: use POST")?;
        resp.headers().set("allow", "POST")?;
        return Ok(resp);
    }
    let from = headers
        .get("cf-connecting-ip")?
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    if is_message {
        receive_packets(request, handlers, callback, &from, opts.max_packet_size).await
    } else {
        accept_stream(request, handlers, callback, &from)
    }
}

/// `Authorization: Bearer <token>`, compared in constant time (for a given length).
fn token_accepted(headers: &Headers, token: &str) -> Result<bool, JsValue> {
    let Some(got) = headers.get("authorization")? else {
        return Ok(false);
    };
    let want = format!("Bearer {token}");
    if got.len() != want.len() {
        return Ok(false);
    }
    let diff = got
        .bytes()
        .zip(want.bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    Ok(diff == 0)
}

/// A response with `code` and a short plain-text reason (no body when empty).
fn status(code: u16, reason: &str) -> Result<Response, JsValue> {
    let init = ResponseInit::new();
    init.set_status(code);
    if reason.is_empty() {
        return Response::new_with_opt_str_and_init(None, &init);
    }
    let headers = Headers::new()?;
    headers.set("content-type", "text/plain; charset=utf-8")?;
    init.set_headers(&headers);
    Response::new_with_opt_str_and_init(Some(&format!("{reason}\n")), &init)
}

/// `413` for a packet over `maxPacketSize` (as the native server answers),
/// `400` for any other malformed frame.
fn frame_refused(e: &FrameError) -> Result<Response, JsValue> {
    match e {
        FrameError::TooLarge { .. } => status(413, &format!("packet too large: {e}")),
        _ => status(400, &format!("malformed frame: {e}")),
    }
}

/// One chunk of a `ReadableStream`, appended to `buf`; false at its end.
async fn read_into(
    reader: &ReadableStreamDefaultReader,
    buf: &mut BytesMut,
) -> Result<bool, JsValue> {
    let step = JsFuture::from(reader.read()).await?;
    if get(&step, "done")?.is_truthy() {
        return Ok(false);
    }
    let value = get(&step, "value")?;
    let bytes = as_bytes(&value).ok_or_else(|| {
        error(
            "frame",
            "the request body yielded a chunk that is not bytes",
        )
    })?;
    let start = buf.len();
    buf.resize(start + bytes.length() as usize, 0);
    bytes.copy_to(&mut buf[start..]);
    Ok(true)
}

/// A view of `value`'s bytes when it is a `Uint8Array`, another
/// `ArrayBufferView` or an `ArrayBuffer`.
fn as_bytes(value: &JsValue) -> Option<Uint8Array> {
    if let Some(a) = value.dyn_ref::<Uint8Array>() {
        return Some(a.clone());
    }
    if let Some(b) = value.dyn_ref::<js_sys::ArrayBuffer>() {
        return Some(Uint8Array::new(b));
    }
    if js_sys::ArrayBuffer::is_view(value) {
        let buffer = get(value, "buffer").ok()?;
        let offset = get(value, "byteOffset").ok()?.as_f64()?;
        let len = get(value, "byteLength").ok()?.as_f64()?;
        return Some(Uint8Array::new_with_byte_offset_and_length(
            &buffer,
            offset as u32,
            len as u32,
        ));
    }
    None
}

/// Cancels the rest of a body; a rejection (the body had already failed)
/// is awaited here so it is not reported as unhandled.
fn cancel_quietly(reader: &ReadableStreamDefaultReader) {
    let done = reader.cancel();
    spawn_local(async move {
        let _ = JsFuture::from(done).await;
    });
}

fn reader_of(body: &ReadableStream) -> ReadableStreamDefaultReader {
    body.get_reader().unchecked_into()
}

/// Awaits `value` when it is a promise (or any thenable).
async fn settle(value: JsValue) -> Result<JsValue, JsValue> {
    if value.is_object() && get(&value, "then")?.is_function() {
        JsFuture::from(Promise::resolve(&value)).await
    } else {
        Ok(value)
    }
}

/// `/message`: every frame is a packet, handed to `onPacket` as soon as it
/// is whole; the decoder refuses a frame above `max_packet_size` from its
/// header alone, before any room is reserved for it.
async fn receive_packets(
    request: &Request,
    this: &JsValue,
    on_packet: &Function,
    from: &str,
    max_packet_size: usize,
) -> Result<Response, JsValue> {
    let Some(body) = request.body() else {
        return status(200, "");
    };
    let reader = reader_of(&body);
    let mut decoder = PacketDecoder::new(max_packet_size);
    let mut buf = BytesMut::new();
    let from = JsValue::from_str(from);
    loop {
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(payload)) => {
                    let delivered = on_packet
                        .call2(this, &Uint8Array::from(&payload[..]).into(), &from)
                        .map(settle);
                    let delivered = match delivered {
                        Ok(fut) => fut.await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = delivered {
                        cancel_quietly(&reader);
                        return Err(e);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    cancel_quietly(&reader);
                    return frame_refused(&e);
                }
            }
        }
        match read_into(&reader, &mut buf).await {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                cancel_quietly(&reader);
                let why = e
                    .dyn_ref::<js_sys::Error>()
                    .map(|e| String::from(e.message()))
                    .unwrap_or_else(|| "unknown".into());
                return status(400, &format!("reading the body failed: {why}"));
            }
        }
    }
    match decoder.decode_eof(&mut buf) {
        // decode() already took every whole frame; only an error can remain.
        Ok(_) => status(200, ""),
        Err(e) => frame_refused(&e),
    }
}

/// The request side of a `/stream`: its bytes, frames unwrapped.
struct Incoming {
    reader: Option<ReadableStreamDefaultReader>,
    buf: BytesMut,
    decoder: StreamDecoder,
    /// The body ended (or was cancelled): nothing more to read.
    ended: bool,
    /// The error the iterator reports from now on.
    failed: Option<JsValue>,
    /// The last `next()` promise, so calls run one after the other.
    tail: Option<Promise>,
}

impl Incoming {
    fn cancel(&mut self) {
        self.ended = true;
        self.buf.clear();
        if let Some(r) = self.reader.take() {
            cancel_quietly(&r);
        }
    }
}

/// The next run of payload bytes, or `None` at a clean end.
async fn next_chunk(state: &Rc<RefCell<Incoming>>) -> Result<Option<Uint8Array>, JsValue> {
    loop {
        let reader = {
            let mut s = state.borrow_mut();
            if let Some(e) = &s.failed {
                return Err(e.clone());
            }
            let Incoming {
                buf,
                decoder,
                ended,
                ..
            } = &mut *s;
            let decoded = if *ended {
                decoder.decode_eof(buf)
            } else {
                decoder.decode(buf)
            };
            match decoded {
                Ok(Some(bytes)) => return Ok(Some(Uint8Array::from(&bytes[..]))),
                Ok(None) if s.ended => return Ok(None),
                Ok(None) => {}
                Err(e) => {
                    let err = error("frame", &format!("malformed stream frame: {e}"));
                    s.failed = Some(err.clone());
                    s.cancel();
                    return Err(err);
                }
            }
            match &s.reader {
                Some(r) => r.clone(),
                None => {
                    s.ended = true;
                    continue;
                }
            }
        };
        let mut chunk = BytesMut::new();
        let read = read_into(&reader, &mut chunk).await;
        let mut s = state.borrow_mut();
        match read {
            Ok(true) => s.buf.extend_from_slice(&chunk),
            Ok(false) => {
                s.ended = true;
                s.reader = None;
            }
            Err(e) => {
                s.failed = Some(e.clone());
                s.cancel();
                return Err(e);
            }
        }
    }
}

fn iter_result(value: &JsValue, done: bool) -> Result<JsValue, JsValue> {
    let out = Object::new();
    Reflect::set(&out, &"value".into(), value)?;
    Reflect::set(&out, &"done".into(), &JsValue::from_bool(done))?;
    Ok(out.into())
}

/// `incoming` as JavaScript sees it: an async iterator (and iterable) of
/// `Uint8Array`s; `return()` (a `break` out of `for await`) cancels the
/// request body.
fn incoming_iterable(state: &Rc<RefCell<Incoming>>) -> Result<JsValue, JsValue> {
    let obj = Object::new();
    let s = state.clone();
    let next = Closure::wrap(Box::new(move || -> Promise {
        let prev = s.borrow_mut().tail.take();
        let st = s.clone();
        let p = future_to_promise(async move {
            if let Some(prev) = prev {
                let _ = JsFuture::from(prev).await;
            }
            match next_chunk(&st).await? {
                Some(chunk) => iter_result(&chunk.into(), false),
                None => iter_result(&JsValue::UNDEFINED, true),
            }
        });
        s.borrow_mut().tail = Some(p.clone());
        p
    }) as Box<dyn FnMut() -> Promise>);
    Reflect::set(&obj, &"next".into(), &next.into_js_value())?;
    let s = state.clone();
    let ret = Closure::wrap(Box::new(move || -> Promise {
        s.borrow_mut().cancel();
        match iter_result(&JsValue::UNDEFINED, true) {
            Ok(v) => Promise::resolve(&v),
            Err(e) => Promise::reject(&e),
        }
    }) as Box<dyn FnMut() -> Promise>);
    Reflect::set(&obj, &"return".into(), &ret.into_js_value())?;
    // `Object.prototype.valueOf` returns `this`: the iterator is its own
    // iterable, without `new Function` (which workers forbid).
    let itself = get(&obj, "valueOf")?;
    Reflect::set(&obj, &Symbol::async_iterator(), &itself)?;
    Ok(obj.into())
}

/// `/stream`: answers `200` at once, with `Content-Type: application/x.ckit`
/// and a body fed by what `onStream` yields, each chunk framed (`0xCC` up to
/// 65,535 bytes, `0xCD` above, at most [`MAX_STREAM_FRAME`] per frame).
fn accept_stream(
    request: &Request,
    this: &JsValue,
    on_stream: &Function,
    from: &str,
) -> Result<Response, JsValue> {
    let state = Rc::new(RefCell::new(Incoming {
        reader: request.body().map(|b| reader_of(&b)),
        buf: BytesMut::new(),
        decoder: StreamDecoder::new(),
        ended: false,
        failed: None,
        tail: None,
    }));
    let incoming = incoming_iterable(&state)?;
    let output = match on_stream.call2(this, &incoming, &JsValue::from_str(from)) {
        Ok(v) => v,
        Err(e) => {
            state.borrow_mut().cancel();
            return Err(e);
        }
    };
    let pipe = TransformStream::new()?;
    let writer = pipe.writable().get_writer()?;
    spawn_local(async move {
        match pump(output, &writer).await {
            Ok(()) => {
                let _ = JsFuture::from(writer.close()).await;
            }
            Err(e) => {
                state.borrow_mut().cancel();
                let _ = JsFuture::from(writer.abort_with_reason(&e)).await;
            }
        }
    });
    let init = ResponseInit::new();
    init.set_status(200);
    let headers = Headers::new()?;
    headers.set("content-type", CONTENT_TYPE)?;
    init.set_headers(&headers);
    Response::new_with_opt_readable_stream_and_init(Some(&pipe.readable()), &init)
}

/// The iterator of an async iterable, else of a sync iterable.
fn iterator_of(iterable: &JsValue) -> Result<JsValue, JsValue> {
    if iterable.is_object() || iterable.is_function() {
        for sym in [Symbol::async_iterator(), Symbol::iterator()] {
            let f = Reflect::get(iterable, &sym)?;
            if let Some(f) = f.dyn_ref::<Function>() {
                return f.call0(iterable);
            }
        }
    }
    Err(error(
        "invalid_argument",
        "onStream must return (or resolve to) an iterable or async iterable of Uint8Array",
    ))
}

/// Writes everything `output` yields to `writer`, as frames.
async fn pump(output: JsValue, writer: &WritableStreamDefaultWriter) -> Result<(), JsValue> {
    let iterable = settle(output).await?;
    let iterator = iterator_of(&iterable)?;
    let next: Function = get(&iterator, "next")?
        .dyn_into()
        .map_err(|_| error("invalid_argument", "the iterator has no next()"))?;
    let result = pump_items(&iterator, &next, writer).await;
    if result.is_err() {
        // Let a generator run its `finally` blocks.
        if let Ok(ret) = get(&iterator, "return") {
            if let Some(ret) = ret.dyn_ref::<Function>() {
                if let Ok(p) = ret.call0(&iterator) {
                    let _ = settle(p).await;
                }
            }
        }
    }
    result
}

async fn pump_items(
    iterator: &JsValue,
    next: &Function,
    writer: &WritableStreamDefaultWriter,
) -> Result<(), JsValue> {
    loop {
        let step = settle(next.call0(iterator)?).await?;
        if !step.is_object() {
            return Err(error(
                "invalid_argument",
                "the iterator's next() gave a non-object",
            ));
        }
        if get(&step, "done")?.is_truthy() {
            return Ok(());
        }
        let value = settle(get(&step, "value")?).await?;
        let bytes = as_bytes(&value).ok_or_else(|| {
            error(
                "invalid_argument",
                "onStream yielded a chunk that is not a Uint8Array, ArrayBuffer or ArrayBufferView",
            )
        })?;
        let len = bytes.length() as usize;
        let mut off = 0;
        while off < len {
            let n = (len - off).min(MAX_STREAM_FRAME);
            let (header, hlen) = frame_header(n);
            let frame = Uint8Array::new_with_length((hlen + n) as u32);
            frame.subarray(0, hlen as u32).copy_from(&header[..hlen]);
            frame.set(&bytes.subarray(off as u32, (off + n) as u32), hlen as u32);
            JsFuture::from(writer.ready()).await?;
            JsFuture::from(writer.write_with_chunk(&frame)).await?;
            off += n;
        }
    }
}
