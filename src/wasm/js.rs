//! What JavaScript sees in common: errors with a `code`, frame helpers.

use wasm_bindgen::JsValue;

/// A JavaScript `Error` whose `code` property names the failure
/// (`"frame"`, `"status"`, `"network"`, `"timeout"`, ... ), so callers can
/// branch on `err.code` as they do with Node's system errors.
pub fn error(code: &str, message: &str) -> JsValue {
    let err = js_sys::Error::new(message);
    let _ = js_sys::Reflect::set(&err, &JsValue::from_str("code"), &JsValue::from_str(code));
    err.into()
}

impl From<crate::Error> for JsValue {
    fn from(e: crate::Error) -> JsValue {
        error(e.code(), &e.to_string())
    }
}
