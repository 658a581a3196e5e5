//! The node's read-only HTTP routes, served on the transport's port.

use super::MemberView;
use crate::{Fallback, FrameBody};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Response, StatusCode};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use tokio::sync::watch;

/// The live membership page (`www/members.html`), served at `/`.
const MEMBERS_PAGE: &str = include_str!("../../www/members.html");

pub(crate) fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

fn respond(content_type: &'static str, body: impl Into<bytes::Bytes>) -> Response<FrameBody> {
    let mut resp = Response::new(FrameBody::once(body.into()));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `GET /`, `GET /api/v1/members`, `GET /metrics`; `405` for other methods
/// on those paths.
pub(crate) fn routes(
    view: watch::Receiver<Arc<Vec<MemberView>>>,
    registry: Arc<Registry>,
) -> Fallback {
    Arc::new(move |req| {
        let path = req.uri.path();
        if !matches!(path, "/" | "/index.html" | "/api/v1/members" | "/metrics") {
            return None;
        }
        if req.method != Method::GET && req.method != Method::HEAD {
            let mut resp = Response::new(FrameBody::empty());
            *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            resp.headers_mut()
                .insert(hyper::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return Some(resp);
        }
        Some(match path {
            "/api/v1/members" => {
                let members = view.borrow().clone();
                let body = serde_json::json!({ "members": &*members });
                respond("application/json", body.to_string())
            }
            "/metrics" => respond(
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                encode(&registry),
            ),
            _ => respond("text/html; charset=utf-8", MEMBERS_PAGE),
        })
    })
}
