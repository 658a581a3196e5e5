//! The peer's side of a `/stream` exchange: its response body, read chunk
//! by chunk, frames unwrapped by the shared
//! [`StreamDecoder`], one read at a time.

use super::body::{concat, too_large};
use super::deadline::Deadline;
use crate::codec::StreamDecoder;
use crate::wasm::frames::frame_error;
use crate::wasm::js::{error, ignore, read_step};
use bytes::BytesMut;
use js_sys::{Promise, Uint8Array};
use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{future_to_promise, JsFuture};
use web_sys::{ReadableStreamDefaultReader, Response};

struct ReadState {
    /// The response body's reader; `None` once it ended or failed.
    reader: Option<ReadableStreamDefaultReader>,
    /// Bytes read and not yet decoded.
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

/// A shared handle on one response body being read (the `Exchange` or
/// `DuplexStream` and its iterators hold it).
#[derive(Clone)]
pub(super) struct Reading(Rc<RefCell<ReadState>>);

impl Reading {
    /// Reads `resp`'s body; `deadline` is the request's, armed again for
    /// each wait on the peer.
    pub(super) fn new(resp: &Response, deadline: Deadline, url: String) -> Reading {
        let reader = resp.body().map(|b| {
            b.get_reader()
                .unchecked_into::<ReadableStreamDefaultReader>()
        });
        let mut state = ReadState {
            ended: reader.is_none(),
            reader,
            buf: BytesMut::new(),
            decoder: StreamDecoder::new(),
            deadline,
            url,
            failed: None,
            tail: None,
        };
        state.deadline.disarm();
        Reading(Rc::new(RefCell::new(state)))
    }

    /// Runs `f` after every read queued before it.
    pub(super) fn queued<F, Fut>(&self, f: F) -> Promise
    where
        F: FnOnce(Reading) -> Fut + 'static,
        Fut: Future<Output = Result<JsValue, JsValue>> + 'static,
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

    /// Makes `err` the answer to every later read, and stops the request.
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
    pub(super) async fn next_chunk(&self) -> Result<Option<Uint8Array>, JsValue> {
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
            if let Err(e) = self.0.borrow_mut().deadline.arm() {
                return Err(self.fail(e));
            }
            let step = read_step(&reader).await;
            let mut s = self.0.borrow_mut();
            s.deadline.disarm();
            let value = match step {
                Ok(Some(value)) => value,
                Ok(None) => {
                    s.ended = true;
                    s.reader = None;
                    continue;
                }
                Err(e) => {
                    let err = s.deadline.classify(e, "reading the stream from", &s.url);
                    drop(s);
                    return Err(self.fail(err));
                }
            };
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

    /// `next()`: the next chunk, `undefined` at the end.
    pub(super) fn next(&self) -> Promise {
        self.queued(|r| async move {
            Ok(match r.next_chunk().await? {
                Some(c) => c.into(),
                None => JsValue::UNDEFINED,
            })
        })
    }

    /// `bytes()`: everything until the end, in one `Uint8Array`.
    pub(super) fn bytes(&self) -> Promise {
        self.queued(|r| async move {
            let mut parts = Vec::new();
            while let Some(c) = r.next_chunk().await? {
                parts.push(c);
            }
            match concat(parts.into_iter()) {
                Some(all) => Ok(all.into()),
                // Read it with `for await` instead: chunk by chunk.
                None => Err(too_large("frame", "the stream's bytes")),
            }
        })
    }

    /// `cancel()`: later reads reject with code `"closed"`; a body read to
    /// its end stays ended.
    pub(super) fn cancel(&self) {
        let ended = {
            let s = self.0.borrow();
            s.ended && s.buf.is_empty()
        };
        if !ended {
            self.fail(error("closed", "the stream was cancelled"));
        }
    }
}
