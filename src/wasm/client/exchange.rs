//! `Exchange` (the peer's side of a stream exchange) and `ChunkIterator`,
//! the async iterator it and `DuplexStream` hand to `for await`.

use super::reading::Reading;
#[cfg(doc)]
use super::DuplexStream;
use js_sys::{Object, Promise, Reflect, Symbol};
use std::cell::Cell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

/// The peer's side of one stream exchange: the byte pipe it wrote (frame
/// payloads in order, chunks as they arrive). Read it with `for await`,
/// `next()` or `bytes()`; `cancel()` drops the rest.
#[wasm_bindgen]
pub struct Exchange {
    reading: Reading,
}

impl Exchange {
    pub(super) fn new(reading: Reading) -> Exchange {
        Exchange { reading }
    }
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
        ChunkIterator::over(&self.reading)
    }
}

/// Gives `obj`'s class `[Symbol.asyncIterator]`, the same function as its
/// `values` method (classes made by wasm-bindgen cannot declare a symbol-named
/// method). Done on the prototype, once.
pub(super) fn add_async_iterator(obj: &JsValue) -> Result<(), JsValue> {
    let proto: JsValue = Object::get_prototype_of(obj).into();
    let sym: JsValue = Symbol::async_iterator().into();
    if !Reflect::has(&proto, &sym)? {
        let values = Reflect::get(&proto, &"values".into())?;
        Reflect::set(&proto, &sym, &values)?;
    }
    Ok(())
}

/// Gives the iterator class `[Symbol.asyncIterator]() { return this }`:
/// `Object.prototype.valueOf` returns its receiver, which is exactly that
/// (without `new Function`, which workers forbid).
fn iterator_returns_itself(it: &JsValue) -> Result<(), JsValue> {
    let proto: JsValue = Object::get_prototype_of(it).into();
    let sym: JsValue = Symbol::async_iterator().into();
    if !Reflect::has(&proto, &sym)? {
        let object_proto = Object::get_prototype_of(&Object::new().into());
        let value_of = Reflect::get(&object_proto, &"valueOf".into())?;
        Reflect::set(&proto, &sym, &value_of)?;
    }
    Ok(())
}

fn iter_result(value: &JsValue, done: bool) -> Result<JsValue, JsValue> {
    let out = Object::new();
    Reflect::set(&out, &"value".into(), value)?;
    Reflect::set(&out, &"done".into(), &JsValue::from_bool(done))?;
    Ok(out.into())
}

/// The async iterator of an [`Exchange`] or [`DuplexStream`]
/// (`{ value, done }` steps).
#[wasm_bindgen]
pub struct ChunkIterator {
    reading: Reading,
    done: Rc<Cell<bool>>,
}

impl ChunkIterator {
    /// A new iterator over `reading`, as the JavaScript object `values()`
    /// returns.
    pub(super) fn over(reading: &Reading) -> Result<JsValue, JsValue> {
        let it: JsValue = ChunkIterator {
            reading: reading.clone(),
            done: Rc::new(Cell::new(false)),
        }
        .into();
        iterator_returns_itself(&it)?;
        Ok(it)
    }
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
