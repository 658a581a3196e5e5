//! `Peer`: one remote peer by URL, its options, and the calls that start
//! requests to it.

use super::body::stream_body;
use super::deadline::Deadline;
use super::duplex::DuplexStream;
use super::exchange::{add_async_iterator, Exchange};
use super::reading::Reading;
use super::request::{post, post_packets, Body};
use super::DEFAULT_TIMEOUT_MS;
use crate::wasm::frames::frame;
use crate::wasm::js::{bytes_arg, error, ignore, max_packet_option};
use crate::BASE_ROUTE;
use js_sys::{Array, Promise, Reflect, Uint8Array};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::future_to_promise;
use web_sys::TransformStream;

/// What every request to the peer needs.
pub(super) struct PeerInner {
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

impl PeerInner {
    async fn post_packets(&self, packets: &[Uint8Array]) -> Result<(), JsValue> {
        post_packets(
            &self.message_url,
            self.token.as_deref(),
            self.timeout_ms,
            packets,
        )
        .await
    }
}

/// One remote peer, by URL: sends it packets (`POST /message`) and runs
/// stream exchanges with it (`POST /stream`).
#[wasm_bindgen]
pub struct Peer {
    inner: Rc<PeerInner>,
}

/// `url` without its trailing slash, if it is an `http://` or `https://`
/// URL without query, fragment or credentials; else code `"invalid_address"`.
pub(crate) fn parse_url(url: &str) -> Result<String, JsValue> {
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

/// `options[key]`; `undefined` when there are no options.
pub(crate) fn option(options: &JsValue, key: &str) -> Result<JsValue, JsValue> {
    if options.is_undefined() || options.is_null() {
        return Ok(JsValue::UNDEFINED);
    }
    if !options.is_object() {
        return Err(error("invalid_options", "options must be an object"));
    }
    Reflect::get(options, &key.into())
}

/// `options[key]` as a string; `None` when absent (`undefined` or `null`).
pub(crate) fn string_option(options: &JsValue, key: &str) -> Result<Option<String>, JsValue> {
    let v = option(options, key)?;
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    v.as_string()
        .map(Some)
        .ok_or_else(|| error("invalid_options", &format!("{key} must be a string")))
}

/// A present `timeoutMs`: a non-negative number of milliseconds (0: no limit).
pub(crate) fn timeout_ms(value: &JsValue) -> Result<f64, JsValue> {
    match value.as_f64() {
        Some(n) if n >= 0.0 && !n.is_nan() => Ok(n),
        _ => Err(error(
            "invalid_options",
            "timeoutMs must be a non-negative number (0: no limit)",
        )),
    }
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
            timeout_ms(&timeout)?
        };
        let token = string_option(&options, "token")?;
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
    /// `fetch`es speak HTTP/1.1: a native peer must accept it
    /// (`--accept-http1`), else this rejects with status `505`. The body
    /// starts with an empty frame (legal, no stream bytes): Node's `fetch`
    /// sends nothing, headers included, before the body's first chunk.
    #[wasm_bindgen(unchecked_return_type = "Promise<DuplexStream>")]
    pub fn open(&self) -> Promise {
        settle(self.start_duplex())
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
            inner.post_packets(&packets).await?;
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
                inner.post_packets(&copies).await?;
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
        let body = stream_body(&chunks)?;
        let inner = self.inner.clone();
        Ok(future_to_promise(async move {
            let mut deadline = Deadline::new(inner.timeout_ms)?;
            let url = inner.stream_url.clone();
            let token = inner.token.as_deref();
            let resp = post(&url, token, Body::Bytes(&body), &mut deadline).await?;
            let ex: JsValue = Exchange::new(Reading::new(&resp, deadline, url)).into();
            add_async_iterator(&ex)?;
            Ok(ex)
        }))
    }

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
            let token = inner.token.as_deref();
            let readable = pipe.readable();
            let resp = match post(&url, token, Body::Stream(&readable), &mut deadline).await {
                Ok(r) => r,
                Err(e) => {
                    ignore(writer.abort_with_reason(&e));
                    return Err(e);
                }
            };
            let stream: JsValue =
                DuplexStream::new(Reading::new(&resp, deadline, url), writer).into();
            add_async_iterator(&stream)?;
            Ok(stream)
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
pub(crate) fn settle(result: Result<Promise, JsValue>) -> Promise {
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
