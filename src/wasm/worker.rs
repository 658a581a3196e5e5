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
//! What the handler enforces is the contract's rules ([`crate::contract`],
//! the very code the native server runs), for a URL under `basePath`:
//! 1. the path is `basePath + "/message"` or `basePath + "/stream"`, and the
//!    matching handler was given: else `404` (worker only);
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
//! (The native server's `503` while shutting down and `505` for HTTP/1.1 do
//! not apply: the runtime picks the HTTP version, and a worker that is
//! shutting down is simply not called.)
//!
//! Then `/message` hands each frame to `onPacket` as soon as it is whole and
//! answers `200` at the end of the body; at the first malformed frame it
//! stops reading and answers `400` (`413` when the frame's header announces
//! more than `maxPacketSize`, refused before anything is allocated for it);
//! the frames before it were delivered. `/stream` answers `200` at once (Go
//! dialers wait for the headers before they write) with a body of frames:
//! each chunk `onStream` yields becomes frames of at most
//! [`MAX_STREAM_FRAME`] bytes.

use crate::codec::{FrameError, DEFAULT_MAX_PACKET_SIZE};
use crate::contract::{
    self, Cors, Decision, Endpoint, MessageReader, Refusal, RequestFacts, Route, Rules, Token,
};
use crate::wasm::js::{bytes_arg, error, ignore, max_packet_option, read_step};
use bytes::Bytes;
use js_sys::{Function, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Headers, ReadableStream, ReadableStreamDefaultReader, Request, Response, ResponseInit, Url,
};

mod stream;

/// The longest payload put in one outgoing stream frame (the contract's
/// [`contract::MAX_STREAM_FRAME`]).
pub use crate::contract::MAX_STREAM_FRAME;

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
    token: Option<Token>,
    /// No trailing slash; empty for the root.
    base_path: String,
    /// `None`: no CORS handling.
    cors: Option<Cors>,
}

fn parse_options(options: &JsValue) -> Result<WorkerOptions, JsValue> {
    let mut out = WorkerOptions {
        max_packet_size: DEFAULT_MAX_PACKET_SIZE,
        token: None,
        base_path: contract::BASE_PATH.to_string(),
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
        // Checked as the native server checks `auth_token`: a token that
        // cannot be a header value would refuse every request.
        Token::validate(&t).map_err(|e| error("invalid_options", &format!("token {e}")))?;
        out.token = Some(Token::new(&t));
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
            origins.push(o.as_string().ok_or_else(invalid)?);
        }
        out.cors = Cors::new(&origins);
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
    let (endpoint, name) = match contract::route(&opts.base_path, &url.pathname()) {
        Route::Elsewhere => return Ok(JsValue::NULL),
        Route::UnderBase => return Ok(status(404, "not found")?.into()),
        Route::Endpoint(Endpoint::Message) => (Endpoint::Message, "onPacket"),
        Route::Endpoint(Endpoint::Stream) => (Endpoint::Stream, "onStream"),
    };
    let Some(callback) = handler(&handlers, name)? else {
        return Ok(status(404, "not served here")?.into());
    };
    let headers = request.headers();
    let method = request.method();
    let content_type = headers.get("content-type")?;
    let origin = headers.get("origin")?;
    let authorization = headers.get("authorization")?;
    let facts = RequestFacts {
        method: &method,
        // The runtime speaks whatever HTTP it speaks; the worker sees none.
        http1: false,
        content_type: content_type.as_deref().map(str::as_bytes),
        origin: origin.as_deref().map(str::as_bytes),
        authorization: authorization.as_deref().map(str::as_bytes),
    };
    let rules = Rules {
        cors: opts.cors.as_ref(),
        token: opts.token.as_ref(),
        accept_http1: true,
        // A worker that is shutting down is simply not called.
        shutting_down: false,
    };
    let decision = rules.decide(&facts);
    let resp = match decision {
        Decision::Accept { .. } => {
            let from = headers
                .get("cf-connecting-ip")?
                .filter(|ip| !ip.is_empty())
                .unwrap_or_else(|| "unknown".to_string());
            match endpoint {
                Endpoint::Message => {
                    receive_packets(&request, &handlers, &callback, &from, opts.max_packet_size)
                        .await?
                }
                Endpoint::Stream => stream::accept_stream(&request, &handlers, &callback, &from)?,
            }
        }
        Decision::Preflight { .. } => status(204, "")?,
        Decision::Refuse { refusal, .. } => status(refusal.status(), refusal.explanation())?,
    };
    let resp_headers = resp.headers();
    for (name, value) in decision.headers() {
        resp_headers.set(name, &String::from_utf8_lossy(value))?;
    }
    Ok(resp.into())
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

/// The contract's answer to a bad frame (`413` over `maxPacketSize`, `400`
/// malformed), with the frame error as its reason.
fn frame_refused(e: &FrameError) -> Result<Response, JsValue> {
    let refusal = Refusal::for_frame(e);
    status(refusal.status(), &format!("{}: {e}", refusal.explanation()))
}

/// The next chunk of a `ReadableStream`, copied out of JavaScript memory;
/// `None` at its end.
async fn read_chunk(reader: &ReadableStreamDefaultReader) -> Result<Option<Bytes>, JsValue> {
    let Some(value) = read_step(reader).await? else {
        return Ok(None);
    };
    let bytes = as_bytes(&value).ok_or_else(|| {
        error(
            "frame",
            "the request body yielded a chunk that is not bytes",
        )
    })?;
    Ok(Some(Bytes::from(bytes.to_vec())))
}

/// A view of `value`'s bytes when it is a `Uint8Array`, another
/// `ArrayBufferView` or an `ArrayBuffer`.
fn as_bytes(value: &JsValue) -> Option<Uint8Array> {
    bytes_arg(value, "a chunk").ok()
}

/// Cancels the rest of a body; its rejection (the body had already failed)
/// is marked handled so it is not reported as unhandled.
fn cancel_quietly(reader: &ReadableStreamDefaultReader) {
    ignore(reader.cancel());
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
/// is whole ([`MessageReader`]: a frame above `max_packet_size` is refused
/// from its header alone, before any room is reserved for it).
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
    let mut packets = MessageReader::new(max_packet_size);
    let from = JsValue::from_str(from);
    loop {
        loop {
            match packets.next_packet() {
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
        match read_chunk(&reader).await {
            Ok(Some(chunk)) => packets.push(chunk),
            Ok(None) => break,
            Err(e) => {
                cancel_quietly(&reader);
                let why = e
                    .dyn_ref::<js_sys::Error>()
                    .map(|e| String::from(e.message()))
                    .unwrap_or_else(|| "unknown".into());
                let refusal = Refusal::BodyFailed;
                return status(
                    refusal.status(),
                    &format!("{}: {why}", refusal.explanation()),
                );
            }
        }
    }
    match packets.finish() {
        Ok(()) => status(200, ""),
        Err(e) => frame_refused(&e),
    }
}
