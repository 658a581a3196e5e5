//! The worker's `/stream`: the request body as an async iterable of the
//! peer's bytes (frames unwrapped), and what `onStream` yields written back
//! as frames ([`contract::stream_frames`], at most [`MAX_STREAM_FRAME`]
//! bytes each).

use super::{as_bytes, cancel_quietly, get, read_chunk, reader_of, settle};
use crate::codec::StreamDecoder;
use crate::contract::{self, MAX_STREAM_FRAME};
use crate::wasm::js::error;
use crate::CONTENT_TYPE;
use bytes::BytesMut;
use js_sys::{Function, Object, Promise, Reflect, Symbol, Uint8Array};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{future_to_promise, spawn_local, JsFuture};
use web_sys::{
    Headers, ReadableStreamDefaultReader, Request, Response, ResponseInit, TransformStream,
    WritableStreamDefaultWriter,
};

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
        let read = read_chunk(&reader).await;
        let mut s = state.borrow_mut();
        match read {
            Ok(Some(chunk)) => s.buf.extend_from_slice(&chunk),
            Ok(None) => {
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
pub(super) fn accept_stream(
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
        for f in contract::stream_frames(bytes.length() as usize, MAX_STREAM_FRAME) {
            let header = f.header();
            let (start, end) = (f.payload.start as u32, f.payload.end as u32);
            let frame = Uint8Array::new_with_length(header.len() as u32 + end - start);
            frame.subarray(0, header.len() as u32).copy_from(header);
            frame.set(&bytes.subarray(start, end), header.len() as u32);
            JsFuture::from(writer.ready()).await?;
            JsFuture::from(writer.write_with_chunk(&frame)).await?;
        }
    }
}
