//! `DuplexStream`: `open()`'s full-duplex stream (Node and workerd), a
//! request body written while the peer's answer is read.

use super::body::stream_body;
use super::exchange::ChunkIterator;
use super::reading::Reading;
#[cfg(doc)]
use super::{Exchange, Peer};
use crate::wasm::js::{bytes_arg, describe, error, ignore};
use js_sys::Promise;
use std::cell::Cell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, JsFuture};
use web_sys::WritableStreamDefaultWriter;

/// **Node and workerd only** (see [`Peer::open`]): a full-duplex stream. `write` sends
/// bytes (as frames) while the peer's bytes are read with `for await`,
/// `next()` or `bytes()`; `close()` ends the request body.
#[wasm_bindgen]
pub struct DuplexStream {
    reading: Reading,
    writer: WritableStreamDefaultWriter,
    closed: Rc<Cell<bool>>,
}

impl DuplexStream {
    /// The stream whose request body `writer` writes and whose answer
    /// `reading` reads.
    pub(super) fn new(reading: Reading, writer: WritableStreamDefaultWriter) -> DuplexStream {
        DuplexStream {
            reading,
            writer,
            closed: Rc::new(Cell::new(false)),
        }
    }
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
        let body = match stream_body(std::slice::from_ref(&data)) {
            Ok(b) => b,
            Err(e) => return Promise::reject(&e),
        };
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
        ChunkIterator::over(&self.reading)
    }
}
