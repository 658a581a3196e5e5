//! The `fetch` client: packets and stream exchanges to one peer, from a
//! browser, Node (20+) or an edge worker.
//!
//! ```js
//! import init, { Peer } from 'gossiphttp'; // browsers: await init(); Node/workers: initSync
//! await init();
//! const peer = new Peer('https://127.0.0.1:7946', { timeoutMs: 5000 });
//! peer.send(new Uint8Array([1, 2, 3]));          // same turn of the event loop:
//! await peer.send(new Uint8Array([4, 5]));       // one POST /message with both frames
//! const ex = await peer.exchange([new TextEncoder().encode('hello')]);
//! for await (const chunk of ex) console.log(chunk); // the peer's bytes, frames unwrapped
//! ```
//!
//! What is enforced, from the protocol:
//! - every request is `POST` with `Content-Type: application/x.ckit`
//!   (exactly), to `<url>/api/v1/ckit/transport/message` or `/stream`;
//! - only `200` counts as delivered: any other status rejects with code
//!   `"status"` and the status on `err.status`;
//! - packets are written one frame each, `0xCC` + u16 length up to 65,535
//!   bytes, `0xCD` + u32 length above; a packet over `maxPacketSize` (default
//!   1 MiB, the native receiver's default) is refused before sending, since
//!   a receiver would answer `413`;
//! - the peer's `/stream` body is read with the shared [`StreamDecoder`]:
//!   frame boundaries carry no meaning, payload bytes are handed out as they
//!   arrive (never a whole 4 GiB frame buffered), a bad magic byte or a body
//!   ending inside a frame rejects with code `"frame"`.
//!
//! What each runtime can do:
//!
//! | | `send`, `sendMany`, `exchange` | `open` (full duplex) |
//! |---|---|---|
//! | browsers | yes; `https://` peers speak HTTP/2, cross-origin pages need the peer's CORS allowlist | **no**: browser `fetch` is half duplex (it resolves only after the request body is closed), so `open()` rejects with `"timeout"` |
//! | Node 20+ | yes; Node's `fetch` speaks HTTP/1.1 only, so a native peer must accept HTTP/1.1 (`accept_http1`, CLI `--http1`), else it answers `505` | **yes**: Node's `fetch` (undici) returns the response while the request body is still open |
//! | workers (workerd, Cloudflare) | yes (outbound `fetch` is HTTP/1.1 locally: the native peer needs `--http1`) | **yes in workerd** (tested locally: the response is readable while the body is open); not verified on Cloudflare's edge |
//!
//! `timeoutMs` bounds every wait on the peer: until the response headers
//! arrive, until a `/message` response ends, and between two chunks of a
//! `/stream` response. It aborts the `fetch` and rejects with `"timeout"`.

use crate::codec::StreamDecoder;
use crate::wasm::frames::{frame, frame_error};
use crate::wasm::js::{bytes_arg, describe, error, has_code, ignore, max_packet_option};
use crate::{BASE_ROUTE, CONTENT_TYPE};
use bytes::BytesMut;
use js_sys::{Array, Function, Object, Promise, Reflect, Symbol, Uint8Array};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{future_to_promise, JsFuture};
use web_sys::{
    AbortController, ReadableStreamDefaultReader, RequestInit, Response, TransformStream,
    WritableStreamDefaultWriter,
};

/// Default for `timeoutMs`.
pub const DEFAULT_TIMEOUT_MS: f64 = 5000.0;

/// The longest payload put in one outgoing stream frame: bigger chunks are
/// split (frame boundaries mean nothing on a stream).
pub const MAX_STREAM_FRAME: usize = 1 << 20;

#[wasm_bindgen(typescript_custom_section)]
const TS_CLIENT: &'static str = r#"
/** Options for {@link Peer}. */
export interface PeerOptions {
  /** How long to wait for the peer, in ms (default 5000; 0 = no limit): for the response headers, for a /message response to end, and between two chunks of a /stream response. */
  timeoutMs?: number;
  /** Shared secret, sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** Largest packet `send`/`sendMany` accept, in bytes (default 1 MiB, what a native peer accepts by default). */
  maxPacketSize?: number;
}

export interface Exchange {
  /** `for await (const chunk of exchange)`: the peer's stream bytes, chunk by chunk. */
  [Symbol.asyncIterator](): AsyncIterableIterator<Uint8Array>;
}

export interface DuplexStream {
  /** `for await (const chunk of stream)`: the peer's stream bytes, chunk by chunk. */
  [Symbol.asyncIterator](): AsyncIterableIterator<Uint8Array>;
}

/** Every error thrown or rejected by this package has a `code` (and `status` for code "status"). */
export interface GossipError extends Error {
  code: "frame" | "status" | "network" | "timeout" | "invalid_address" | "closed" | "invalid_argument" | "invalid_options";
  /** The HTTP status, for code "status". */
  status?: number;
}
"#;

// ---------------------------------------------------------------------------
// fetch plumbing

/// A global function (`fetch`, `setTimeout`, ...), looked up on the global
/// object so the same code runs in windows, workers and Node.
fn global_fn(name: &str) -> Result<(Object, Function), JsValue> {
    let global = js_sys::global();
    let f = Reflect::get(&global, &name.into())?;
    match f.dyn_into::<Function>() {
        Ok(f) => Ok((global, f)),
        Err(_) => Err(error(
            "network",
            &format!("this JavaScript runtime has no global {name}()"),
        )),
    }
}

/// An `AbortController` and the timer that aborts it: `timeoutMs` as an
/// abortable deadline. The timer calls the controller's own `abort`, bound
/// to it, so no Rust closure outlives a request.
struct Deadline {
    controller: AbortController,
    timer: Option<JsValue>,
    ms: f64,
    /// Aborted by us (cancel/close), not by the timer.
    cancelled: bool,
}

impl Deadline {
    fn new(ms: f64) -> Result<Deadline, JsValue> {
        Ok(Deadline {
            controller: AbortController::new()?,
            timer: None,
            ms,
            cancelled: false,
        })
    }

    /// (Re)starts the timer.
    fn arm(&mut self) -> Result<(), JsValue> {
        self.disarm();
        if self.ms <= 0.0 || !self.ms.is_finite() {
            return Ok(());
        }
        let abort: Function = Reflect::get(&self.controller, &"abort".into())?.dyn_into()?;
        let reason = error("timeout", "timed out");
        let bound = abort.bind1(&self.controller, &reason);
        let (global, set_timeout) = global_fn("setTimeout")?;
        self.timer = Some(set_timeout.call2(&global, &bound, &JsValue::from_f64(self.ms))?);
        Ok(())
    }

    fn disarm(&mut self) {
        if let Some(id) = self.timer.take() {
            if let Ok((global, clear)) = global_fn("clearTimeout") {
                let _ = clear.call1(&global, &id);
            }
        }
    }

    fn timed_out(&self) -> bool {
        !self.cancelled && self.controller.signal().aborted()
    }

    fn cancel(&mut self) {
        self.disarm();
        if !self.controller.signal().aborted() {
            self.cancelled = true;
            self.controller.abort();
        }
    }

    /// `err` (from `fetch` or a body read) as one of our errors.
    fn classify(&self, err: JsValue, what: &str, url: &str) -> JsValue {
        if self.timed_out() {
            return error(
                "timeout",
                &format!("{what} {url}: no answer within {} ms", self.ms),
            );
        }
        if self.cancelled {
            return error("closed", &format!("{what} {url}: cancelled"));
        }
        if has_code(&err) && Reflect::get(&err, &"name".into()).ok() == Some("Error".into()) {
            return err;
        }
        error(
            "network",
            &format!("{what} {url} failed: {}", describe(&err)),
        )
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        self.disarm();
    }
}

/// The request body: bytes, or a stream (then `duplex: 'half'`).
enum Body<'a> {
    Bytes(&'a Uint8Array),
    Stream(&'a web_sys::ReadableStream),
}

/// `POST url` with the protocol's headers; resolves at the response headers.
/// The deadline is armed for that wait and left armed.
async fn post(
    peer: &PeerInner,
    url: &str,
    body: Body<'_>,
    deadline: &mut Deadline,
) -> Result<Response, JsValue> {
    let headers = Object::new();
    Reflect::set(&headers, &"content-type".into(), &CONTENT_TYPE.into())?;
    if let Some(token) = &peer.token {
        Reflect::set(
            &headers,
            &"authorization".into(),
            &format!("Bearer {token}").into(),
        )?;
    }
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
    init.set_signal(Some(&deadline.controller.signal()));
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

/// Code `"status"` with `status`, and the start of the peer's reason text
/// (at most [`REASON_BYTES`] of its body are read; the rest is cancelled).
async fn status_error(resp: &Response, url: &str, deadline: &mut Deadline) -> JsValue {
    let status = resp.status();
    let mut head = Vec::new();
    if let Some(body) = resp.body() {
        let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
        while head.len() < REASON_BYTES {
            let Ok(step) = JsFuture::from(reader.read()).await else {
                break;
            };
            if Reflect::get(&step, &"done".into()).map_or(true, |d| d.is_truthy()) {
                break;
            }
            match Reflect::get(&step, &"value".into()) {
                Ok(v) => match v.dyn_ref::<Uint8Array>() {
                    Some(chunk) => {
                        let take = chunk.length().min((REASON_BYTES - head.len()) as u32);
                        head.extend(chunk.subarray(0, take).to_vec());
                    }
                    None => break,
                },
                Err(_) => break,
            }
        }
        ignore(reader.cancel());
    }
    deadline.disarm();
    let reason = String::from_utf8_lossy(&head);
    let reason: String = reason.trim().chars().take(200).collect();
    let mut msg = format!("peer {url} answered HTTP {status}");
    if !reason.is_empty() {
        msg.push_str(": ");
        msg.push_str(&reason);
    }
    let err = error("status", &msg);
    let _ = Reflect::set(&err, &"status".into(), &JsValue::from(status));
    err
}

/// How much of a non-`200` answer's body is read for the error message.
const REASON_BYTES: usize = 512;

// ---------------------------------------------------------------------------
// Peer

struct PeerInner {
    /// The URL as shown: scheme, host, port and path, no trailing slash.
    url: String,
    message_url: String,
    stream_url: String,
    timeout_ms: f64,
    token: Option<String>,
    max_packet_size: usize,
    /// Packets `send` queued in this turn of the event loop, and the promise
    /// of the POST that will carry them.
    queue: RefCell<Option<(Vec<Uint8Array>, Promise)>>,
}

/// One remote peer, by URL: sends it packets (`POST /message`) and runs
/// stream exchanges with it (`POST /stream`).
#[wasm_bindgen]
pub struct Peer {
    inner: Rc<PeerInner>,
}

fn parse_url(url: &str) -> Result<String, JsValue> {
    let bad = |why: &str| {
        error(
            "invalid_address",
            &format!("invalid peer URL {url:?}: {why}"),
        )
    };
    let parsed = web_sys::Url::new(url)
        .map_err(|_| bad("not a URL (write it as http://host:port or https://host[:port])"))?;
    let scheme = parsed.protocol();
    if scheme != "http:" && scheme != "https:" {
        return Err(bad("the scheme must be http:// or https://"));
    }
    if !parsed.search().is_empty() || !parsed.hash().is_empty() {
        return Err(bad("a query or fragment has no place in a peer URL"));
    }
    if !parsed.username().is_empty() || !parsed.password().is_empty() {
        return Err(bad(
            "credentials in the URL are not sent; use the token option",
        ));
    }
    Ok(format!(
        "{}{}",
        parsed.origin(),
        parsed.pathname().trim_end_matches('/')
    ))
}

fn option(options: &JsValue, key: &str) -> Result<JsValue, JsValue> {
    if options.is_undefined() || options.is_null() {
        return Ok(JsValue::UNDEFINED);
    }
    if !options.is_object() {
        return Err(error("invalid_options", "options must be an object"));
    }
    Reflect::get(options, &key.into())
}

#[wasm_bindgen]
impl Peer {
    /// A peer at `url` (`http://` or `https://`, any path prefix; the base
    /// route `/api/v1/ckit/transport` is appended). Throws code
    /// `"invalid_address"` for anything else, `"invalid_options"` for a bad
    /// option. Nothing is sent yet.
    #[wasm_bindgen(constructor)]
    pub fn new(
        url: &str,
        #[wasm_bindgen(unchecked_optional_param_type = "PeerOptions")] options: JsValue,
    ) -> Result<Peer, JsValue> {
        let base = parse_url(url)?;
        let timeout = option(&options, "timeoutMs")?;
        let timeout_ms = if timeout.is_undefined() {
            DEFAULT_TIMEOUT_MS
        } else {
            match timeout.as_f64() {
                Some(n) if n >= 0.0 && !n.is_nan() => n,
                _ => {
                    return Err(error(
                        "invalid_options",
                        "timeoutMs must be a non-negative number (0: no limit)",
                    ))
                }
            }
        };
        let token = option(&options, "token")?;
        let token = if token.is_undefined() || token.is_null() {
            None
        } else {
            Some(
                token
                    .as_string()
                    .ok_or_else(|| error("invalid_options", "token must be a string"))?,
            )
        };
        let max_packet_size = max_packet_option(&option(&options, "maxPacketSize")?)?
            .unwrap_or(crate::codec::DEFAULT_MAX_PACKET_SIZE);
        let route = BASE_ROUTE.trim_end_matches('/');
        Ok(Peer {
            inner: Rc::new(PeerInner {
                message_url: format!("{base}{route}/message"),
                stream_url: format!("{base}{route}/stream"),
                url: base,
                timeout_ms,
                token,
                max_packet_size,
                queue: RefCell::new(None),
            }),
        })
    }

    /// The peer's URL, normalised (no trailing slash).
    #[wasm_bindgen(getter)]
    pub fn url(&self) -> String {
        self.inner.url.clone()
    }

    /// Queues `packet` (copied at once). Packets sent in the same turn of
    /// the event loop share one `POST /message`, one frame each, in order;
    /// the promise resolves when the peer answered `200` to it.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn send(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] packet: JsValue,
    ) -> Promise {
        settle(self.queue_packet(&packet))
    }

    /// Sends all of `packets` in one `POST /message`, one frame each, in
    /// order; resolves when the peer answered `200`. An empty array sends
    /// nothing.
    #[wasm_bindgen(js_name = sendMany, unchecked_return_type = "Promise<void>")]
    pub fn send_many(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array[]")] packets: JsValue,
    ) -> Promise {
        settle(self.post_many(&packets))
    }

    /// One stream exchange (`POST /stream`): writes `data` (one chunk or a
    /// list) as frames, ends the request body, and resolves with the peer's
    /// side once its `200` arrived. Works in every runtime (browser fetch is
    /// half duplex, and this needs no more).
    #[wasm_bindgen(unchecked_return_type = "Promise<Exchange>")]
    pub fn exchange(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array | Uint8Array[]")] data: JsValue,
    ) -> Promise {
        settle(self.start_exchange(&data))
    }

    /// **Node and workerd only**: a full-duplex stream (`POST /stream` with
    /// a streaming request body). Resolves when the peer's `200` arrived;
    /// then `write` and the peer's bytes flow both ways until `close()` (or
    /// the peer ends). Node's `fetch` (and workerd's) returns the response
    /// while the request body is still open; browser `fetch` does not (it is
    /// half duplex and resolves only after the body ended), so in a browser
    /// this rejects with code `"timeout"`: use `exchange` there. These
    /// `fetch`es speak HTTP/1.1: a native peer needs its HTTP/1.1 option
    /// (`--http1`). The body starts with an empty frame (legal, no stream
    /// bytes): Node's `fetch` sends nothing, headers included, before the
    /// body's first chunk.
    #[wasm_bindgen(unchecked_return_type = "Promise<DuplexStream>")]
    pub fn open(&self) -> Promise {
        settle(self.start_duplex())
    }
}

impl Peer {
    fn start_duplex(&self) -> Result<Promise, JsValue> {
        let inner = self.inner.clone();
        let pipe = TransformStream::new()?;
        let writer = pipe.writable().get_writer()?;
        // Node's fetch sends nothing, not even the request headers, before
        // the body's first chunk: an empty frame (legal, it carries no
        // stream bytes) gets the request out at once.
        ignore(writer.write_with_chunk(&frame(&Uint8Array::new_with_length(0))));
        Ok(future_to_promise(async move {
            let mut deadline = Deadline::new(inner.timeout_ms)?;
            let url = inner.stream_url.clone();
            let readable = pipe.readable();
            let resp = match post(&inner, &url, Body::Stream(&readable), &mut deadline).await {
                Ok(r) => r,
                Err(e) => {
                    ignore(writer.abort_with_reason(&e));
                    return Err(e);
                }
            };
            let reading = Reading::new(&resp, deadline, url)?;
            let stream: JsValue = DuplexStream {
                reading,
                writer,
                closed: Rc::new(Cell::new(false)),
            }
            .into();
            add_async_iterator(&stream)?;
            Ok(stream)
        }))
    }
}

impl Peer {
    fn queue_packet(&self, packet: &JsValue) -> Result<Promise, JsValue> {
        let packet = self.packet_arg(packet, "packet")?;
        let mut queue = self.inner.queue.borrow_mut();
        if let Some((packets, promise)) = queue.as_mut() {
            packets.push(packet);
            return Ok(promise.clone());
        }
        let inner = self.inner.clone();
        // The future first runs in a microtask, after the current turn: by
        // then every packet of this turn is queued.
        let promise = future_to_promise(async move {
            let packets = inner
                .queue
                .borrow_mut()
                .take()
                .map(|(p, _)| p)
                .unwrap_or_default();
            post_packets(&inner, &packets).await?;
            Ok(JsValue::UNDEFINED)
        });
        *queue = Some((vec![packet], promise.clone()));
        Ok(promise)
    }

    fn post_many(&self, packets: &JsValue) -> Result<Promise, JsValue> {
        let list = list_arg(packets, "packets")?;
        let mut copies = Vec::with_capacity(list.len());
        for (i, p) in list.iter().enumerate() {
            copies.push(self.packet_arg(p, &format!("packets[{i}]"))?);
        }
        let inner = self.inner.clone();
        Ok(future_to_promise(async move {
            if !copies.is_empty() {
                post_packets(&inner, &copies).await?;
            }
            Ok(JsValue::UNDEFINED)
        }))
    }

    fn start_exchange(&self, data: &JsValue) -> Result<Promise, JsValue> {
        let chunks: Vec<Uint8Array> = if data.is_undefined() || data.is_null() {
            Vec::new()
        } else if Array::is_array(data) {
            let list = list_arg(data, "data")?;
            list.iter()
                .enumerate()
                .map(|(i, c)| bytes_arg(c, &format!("data[{i}]")))
                .collect::<Result<_, _>>()?
        } else {
            vec![bytes_arg(data, "data")?]
        };
        let body = stream_body(&chunks);
        let inner = self.inner.clone();
        Ok(future_to_promise(async move {
            let mut deadline = Deadline::new(inner.timeout_ms)?;
            let url = inner.stream_url.clone();
            let resp = post(&inner, &url, Body::Bytes(&body), &mut deadline).await?;
            let reading = Reading::new(&resp, deadline, url)?;
            let ex: JsValue = Exchange { reading }.into();
            add_async_iterator(&ex)?;
            Ok(ex)
        }))
    }

    /// A copy of a packet argument, checked against `maxPacketSize`.
    fn packet_arg(&self, value: &JsValue, what: &str) -> Result<Uint8Array, JsValue> {
        let bytes = bytes_arg(value, what)?;
        let len = bytes.length() as usize;
        if len > self.inner.max_packet_size {
            return Err(error(
                "frame",
                &format!(
                    "{what} of {len} bytes exceeds maxPacketSize ({} bytes); the peer would refuse it",
                    self.inner.max_packet_size
                ),
            ));
        }
        // slice(): the caller may reuse its buffer once send() returned.
        Ok(bytes.slice(0, bytes.length()))
    }
}

/// A promise for `result`: its error as a rejection, never a throw, so
/// `.catch()` sees every failure of a method that returns a promise.
fn settle(result: Result<Promise, JsValue>) -> Promise {
    result.unwrap_or_else(|e| Promise::reject(&e))
}

/// The elements of a JavaScript array.
fn list_arg(value: &JsValue, what: &str) -> Result<Vec<JsValue>, JsValue> {
    if !Array::is_array(value) {
        return Err(error(
            "invalid_argument",
            &format!("{what} must be an array of Uint8Array"),
        ));
    }
    Ok(value.unchecked_ref::<Array>().iter().collect())
}

/// `packets` as one body: one frame each.
fn packets_body(packets: &[Uint8Array]) -> Uint8Array {
    if let [one] = packets {
        return frame(one);
    }
    concat(packets.iter().map(frame))
}

/// `chunks` as stream frames: one per chunk, chunks over
/// [`MAX_STREAM_FRAME`] split; empty chunks carry nothing and are skipped.
fn stream_body(chunks: &[Uint8Array]) -> Uint8Array {
    concat(chunks.iter().flat_map(|c| {
        let len = c.length();
        (0..len)
            .step_by(MAX_STREAM_FRAME)
            .map(move |off| frame(&c.subarray(off, (off + MAX_STREAM_FRAME as u32).min(len))))
    }))
}

fn concat(parts: impl Iterator<Item = Uint8Array>) -> Uint8Array {
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

/// One `POST /message` carrying `packets`; `Ok` on `200`.
async fn post_packets(peer: &PeerInner, packets: &[Uint8Array]) -> Result<(), JsValue> {
    let body = packets_body(packets);
    let mut deadline = Deadline::new(peer.timeout_ms)?;
    let url = &peer.message_url;
    let resp = post(peer, url, Body::Bytes(&body), &mut deadline).await?;
    // Read the (empty) body so the connection can carry the next request.
    if let Ok(p) = resp.array_buffer() {
        JsFuture::from(p)
            .await
            .map_err(|e| deadline.classify(e, "POST", url))?;
    }
    deadline.disarm();
    Ok(())
}

// ---------------------------------------------------------------------------
// Reading a /stream response

/// The peer's side of a stream: its body, frames unwrapped by the shared
/// [`StreamDecoder`].
struct ReadState {
    reader: Option<ReadableStreamDefaultReader>,
    buf: BytesMut,
    decoder: StreamDecoder,
    deadline: Deadline,
    url: String,
    /// The body ended: nothing more to read.
    ended: bool,
    /// The error every later read reports.
    failed: Option<JsValue>,
    /// The last queued read, so reads run one after the other.
    tail: Option<Promise>,
}

#[derive(Clone)]
struct Reading(Rc<RefCell<ReadState>>);

impl Reading {
    fn new(resp: &Response, deadline: Deadline, url: String) -> Result<Reading, JsValue> {
        let reader = resp.body().map(|b| {
            b.get_reader()
                .unchecked_into::<ReadableStreamDefaultReader>()
        });
        let mut state = ReadState {
            reader,
            buf: BytesMut::new(),
            decoder: StreamDecoder::new(),
            deadline,
            url,
            ended: false,
            failed: None,
            tail: None,
        };
        state.deadline.disarm();
        Ok(Reading(Rc::new(RefCell::new(state))))
    }

    /// Runs `f` after every read queued before it.
    fn queued<F, Fut>(&self, f: F) -> Promise
    where
        F: FnOnce(Reading) -> Fut + 'static,
        Fut: std::future::Future<Output = Result<JsValue, JsValue>> + 'static,
    {
        let prev = self.0.borrow_mut().tail.take();
        let this = self.clone();
        let p = future_to_promise(async move {
            if let Some(prev) = prev {
                let _ = JsFuture::from(prev).await;
            }
            f(this).await
        });
        self.0.borrow_mut().tail = Some(p.clone());
        p
    }

    fn fail(&self, err: JsValue) -> JsValue {
        let mut s = self.0.borrow_mut();
        if s.failed.is_none() {
            s.failed = Some(err.clone());
        }
        s.buf = BytesMut::new();
        if let Some(r) = s.reader.take() {
            ignore(r.cancel());
        }
        s.deadline.cancel();
        err
    }

    /// The next run of stream bytes, or `None` at the peer's clean end.
    async fn next_chunk(&self) -> Result<Option<Uint8Array>, JsValue> {
        loop {
            let reader = {
                let mut guard = self.0.borrow_mut();
                let s = &mut *guard;
                if let Some(e) = &s.failed {
                    return Err(e.clone());
                }
                let decoded = if s.ended {
                    s.decoder.decode_eof(&mut s.buf)
                } else {
                    s.decoder.decode(&mut s.buf)
                };
                match decoded {
                    Ok(Some(bytes)) => return Ok(Some(Uint8Array::from(&bytes[..]))),
                    Ok(None) if s.ended => return Ok(None),
                    Ok(None) => {}
                    Err(e) => {
                        let msg = format!("the stream from {} is malformed", s.url);
                        drop(guard);
                        return Err(self.fail(frame_error(&msg, &e)));
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
            self.0.borrow_mut().deadline.arm()?;
            let step = JsFuture::from(reader.read()).await;
            let mut s = self.0.borrow_mut();
            s.deadline.disarm();
            let step = match step {
                Ok(step) => step,
                Err(e) => {
                    let err = s.deadline.classify(e, "reading the stream from", &s.url);
                    drop(s);
                    return Err(self.fail(err));
                }
            };
            if Reflect::get(&step, &"done".into())?.is_truthy() {
                s.ended = true;
                s.reader = None;
                continue;
            }
            let value = Reflect::get(&step, &"value".into())?;
            let Some(chunk) = value.dyn_ref::<Uint8Array>() else {
                drop(s);
                return Err(self.fail(error(
                    "network",
                    "the response body yielded something else than bytes",
                )));
            };
            let start = s.buf.len();
            s.buf.resize(start + chunk.length() as usize, 0);
            chunk.copy_to(&mut s.buf[start..]);
        }
    }

    fn next(&self) -> Promise {
        self.queued(|r| async move {
            Ok(match r.next_chunk().await? {
                Some(c) => c.into(),
                None => JsValue::UNDEFINED,
            })
        })
    }

    fn bytes(&self) -> Promise {
        self.queued(|r| async move {
            let mut parts = Vec::new();
            while let Some(c) = r.next_chunk().await? {
                parts.push(c);
            }
            Ok(concat(parts.into_iter()).into())
        })
    }

    fn cancel(&self) {
        let ended = {
            let s = self.0.borrow();
            s.ended && s.buf.is_empty()
        };
        if !ended {
            self.fail(error("closed", "the stream was cancelled"));
        }
    }

    fn iterator(&self) -> ChunkIterator {
        ChunkIterator {
            reading: self.clone(),
            done: Rc::new(Cell::new(false)),
        }
    }
}

/// Gives `obj`'s class `[Symbol.asyncIterator]`, the same function as its
/// `values` method (classes made by wasm-bindgen cannot declare a symbol-named
/// method). Done on the prototype, once.
fn add_async_iterator(obj: &JsValue) -> Result<(), JsValue> {
    let proto: JsValue = Object::get_prototype_of(obj).into();
    let sym: JsValue = Symbol::async_iterator().into();
    if !Reflect::has(&proto, &sym)? {
        let values = Reflect::get(&proto, &"values".into())?;
        Reflect::set(&proto, &sym, &values)?;
    }
    Ok(())
}

fn iter_result(value: &JsValue, done: bool) -> Result<JsValue, JsValue> {
    let out = Object::new();
    Reflect::set(&out, &"value".into(), value)?;
    Reflect::set(&out, &"done".into(), &JsValue::from_bool(done))?;
    Ok(out.into())
}

/// The peer's side of one stream exchange: the byte pipe it wrote (frame
/// payloads in order, chunks as they arrive). Read it with `for await`,
/// `next()` or `bytes()`; `cancel()` drops the rest.
#[wasm_bindgen]
pub struct Exchange {
    reading: Reading,
}

#[wasm_bindgen]
impl Exchange {
    /// The next chunk of the peer's bytes; `undefined` once the peer ended
    /// its body cleanly. Rejects with code `"frame"` when the body is
    /// malformed (a bad magic byte, or the body ends inside a frame),
    /// `"timeout"` when no chunk came within `timeoutMs`, `"closed"` after
    /// `cancel()`, `"network"` when the connection failed.
    #[wasm_bindgen(unchecked_return_type = "Promise<Uint8Array | undefined>")]
    pub fn next(&self) -> Promise {
        self.reading.next()
    }

    /// Everything the peer sends until it ends, in one `Uint8Array`.
    #[wasm_bindgen(unchecked_return_type = "Promise<Uint8Array>")]
    pub fn bytes(&self) -> Promise {
        self.reading.bytes()
    }

    /// Stops reading and aborts the request; later reads reject with code
    /// `"closed"`.
    pub fn cancel(&self) {
        self.reading.cancel();
    }

    /// An async iterator of the chunks (also `exchange[Symbol.asyncIterator]()`);
    /// leaving a `for await` loop early cancels the exchange.
    #[wasm_bindgen(unchecked_return_type = "AsyncIterableIterator<Uint8Array>")]
    pub fn values(&self) -> Result<JsValue, JsValue> {
        let it: JsValue = self.reading.iterator().into();
        chunk_iterator_self(&it)?;
        Ok(it)
    }
}

/// Gives the iterator class `[Symbol.asyncIterator]() { return this }`:
/// `Object.prototype.valueOf` returns its receiver, which is exactly that
/// (without `new Function`, which workers forbid).
fn chunk_iterator_self(it: &JsValue) -> Result<(), JsValue> {
    let proto: JsValue = Object::get_prototype_of(it).into();
    let sym: JsValue = Symbol::async_iterator().into();
    if !Reflect::has(&proto, &sym)? {
        let object_proto = Object::get_prototype_of(&Object::new().into());
        let value_of = Reflect::get(&object_proto, &"valueOf".into())?;
        Reflect::set(&proto, &sym, &value_of)?;
    }
    Ok(())
}

/// The async iterator of an [`Exchange`] or [`DuplexStream`]
/// (`{ value, done }` steps).
#[wasm_bindgen]
pub struct ChunkIterator {
    reading: Reading,
    done: Rc<Cell<bool>>,
}

#[wasm_bindgen]
impl ChunkIterator {
    /// The next `{ value, done }` step.
    #[wasm_bindgen(unchecked_return_type = "Promise<IteratorResult<Uint8Array, undefined>>")]
    pub fn next(&self) -> Promise {
        let done = self.done.clone();
        self.reading.queued(move |r| async move {
            if done.get() {
                return iter_result(&JsValue::UNDEFINED, true);
            }
            match r.next_chunk().await {
                Ok(Some(c)) => iter_result(&c.into(), false),
                Ok(None) => {
                    done.set(true);
                    iter_result(&JsValue::UNDEFINED, true)
                }
                Err(e) => {
                    done.set(true);
                    Err(e)
                }
            }
        })
    }

    /// Leaving the loop early: cancels the exchange.
    #[wasm_bindgen(
        js_name = "return",
        unchecked_return_type = "Promise<IteratorResult<Uint8Array, undefined>>"
    )]
    pub fn finish(&self) -> Result<Promise, JsValue> {
        if !self.done.replace(true) {
            self.reading.cancel();
        }
        Ok(Promise::resolve(&iter_result(&JsValue::UNDEFINED, true)?))
    }
}

/// **Node and workerd only** (see [`Peer::open`]): a full-duplex stream. `write` sends
/// bytes (as frames) while the peer's bytes are read with `for await`,
/// `next()` or `bytes()`; `close()` ends the request body.
#[wasm_bindgen]
pub struct DuplexStream {
    reading: Reading,
    writer: WritableStreamDefaultWriter,
    closed: Rc<Cell<bool>>,
}

#[wasm_bindgen]
impl DuplexStream {
    /// Sends `data` as one frame (split above 1 MiB); resolves once the
    /// request body took it (backpressure). Rejects with code `"closed"`
    /// after `close()`/`cancel()`, `"network"` when the upload failed.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn write(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] data: JsValue,
    ) -> Promise {
        if self.closed.get() {
            return Promise::reject(&error("closed", "write after close()"));
        }
        let data = match bytes_arg(&data, "data") {
            Ok(d) => d,
            Err(e) => return Promise::reject(&e),
        };
        let body = stream_body(std::slice::from_ref(&data));
        let writer = self.writer.clone();
        let closed = self.closed.clone();
        future_to_promise(async move {
            let sent = async {
                JsFuture::from(writer.ready()).await?;
                JsFuture::from(writer.write_with_chunk(&body)).await
            }
            .await;
            match sent {
                Ok(_) => Ok(JsValue::UNDEFINED),
                Err(_) if closed.get() => Err(error("closed", "the stream was closed")),
                Err(e) => Err(error(
                    "network",
                    &format!("writing to the stream failed: {}", describe(&e)),
                )),
            }
        })
    }

    /// Ends the request body (the peer sees the end of the stream); the
    /// peer's side can still be read to its end.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn close(&self) -> Promise {
        let writer = self.writer.clone();
        let was_closed = self.closed.replace(true);
        future_to_promise(async move {
            if !was_closed {
                JsFuture::from(writer.close()).await.map_err(|e| {
                    error(
                        "network",
                        &format!("ending the stream failed: {}", describe(&e)),
                    )
                })?;
            }
            Ok(JsValue::UNDEFINED)
        })
    }

    /// The next chunk of the peer's bytes; `undefined` at its end (see
    /// [`Exchange::next`]).
    #[wasm_bindgen(unchecked_return_type = "Promise<Uint8Array | undefined>")]
    pub fn next(&self) -> Promise {
        self.reading.next()
    }

    /// Everything the peer sends until it ends.
    #[wasm_bindgen(unchecked_return_type = "Promise<Uint8Array>")]
    pub fn bytes(&self) -> Promise {
        self.reading.bytes()
    }

    /// Aborts both directions at once.
    pub fn cancel(&self) {
        if !self.closed.replace(true) {
            ignore(
                self.writer
                    .abort_with_reason(&error("closed", "the stream was cancelled")),
            );
        }
        self.reading.cancel();
    }

    /// An async iterator of the peer's chunks (also `stream[Symbol.asyncIterator]()`).
    #[wasm_bindgen(unchecked_return_type = "AsyncIterableIterator<Uint8Array>")]
    pub fn values(&self) -> Result<JsValue, JsValue> {
        let it: JsValue = self.reading.iterator().into();
        chunk_iterator_self(&it)?;
        Ok(it)
    }
}
