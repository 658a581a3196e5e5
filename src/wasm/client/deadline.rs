//! `timeoutMs` as an abortable deadline: an `AbortController` and the timer
//! that aborts it.

use crate::wasm::js::{describe, error, has_code};
use js_sys::{Function, Object, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{AbortController, AbortSignal};

/// A global function (`fetch`, `setTimeout`, ...), looked up on the global
/// object so the same code runs in windows, workers and Node.
pub(crate) fn global_fn(name: &str) -> Result<(Object, Function), JsValue> {
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

/// The deadline of one request. The timer calls the controller's own
/// `abort`, bound to it, so no Rust closure outlives a request.
pub(crate) struct Deadline {
    controller: AbortController,
    timer: Option<JsValue>,
    ms: f64,
    /// Aborted by us (cancel/close), not by the timer.
    cancelled: bool,
}

impl Deadline {
    pub(crate) fn new(ms: f64) -> Result<Deadline, JsValue> {
        Ok(Deadline {
            controller: AbortController::new()?,
            timer: None,
            ms,
            cancelled: false,
        })
    }

    /// The signal to give `fetch`: aborting it ends the request and its body.
    pub(crate) fn signal(&self) -> AbortSignal {
        self.controller.signal()
    }

    /// (Re)starts the timer; `0` (or not finite) is no limit.
    pub(crate) fn arm(&mut self) -> Result<(), JsValue> {
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

    pub(crate) fn disarm(&mut self) {
        if let Some(id) = self.timer.take() {
            if let Ok((global, clear)) = global_fn("clearTimeout") {
                let _ = clear.call1(&global, &id);
            }
        }
    }

    fn timed_out(&self) -> bool {
        !self.cancelled && self.controller.signal().aborted()
    }

    /// Aborts the request on our side (`cancel()`, `close()`): errors are
    /// then reported as code `"closed"`, not `"timeout"`.
    pub(crate) fn cancel(&mut self) {
        self.disarm();
        if !self.controller.signal().aborted() {
            self.cancelled = true;
            self.controller.abort();
        }
    }

    /// `err` (from `fetch` or a body read) as one of our errors.
    pub(crate) fn classify(&self, err: JsValue, what: &str, url: &str) -> JsValue {
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
