//! The node's read-only HTTP routes, served on the transport's port: the
//! cluster page and its data.

use super::shares::{self, ShareCache};
use super::timeline::{self, Timeline};
use super::MemberView;
use crate::ckit::shard::Hasher;
use crate::{Fallback, FrameBody};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Response, StatusCode};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use tokio::sync::watch;

/// The cluster page (`www/cluster.html` and what it loads), served at `/`.
/// Embedded, so the page works with no network but the node's.
const PAGE: &str = include_str!("../../www/cluster.html");
const PAGE_SCRIPT: &str = include_str!("../../www/cluster.js");
const PAGE_STYLE: &str = include_str!("../../www/cluster.css");

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

fn json(value: impl serde::Serialize) -> Response<FrameBody> {
    // Our own types serialize without error.
    respond(
        "application/json",
        serde_json::to_vec(&value).unwrap_or_default(),
    )
}

fn bad_request(why: String) -> Response<FrameBody> {
    let mut resp = respond("text/plain; charset=utf-8", why + "\n");
    *resp.status_mut() = StatusCode::BAD_REQUEST;
    resp
}

/// The value of `name` in a query string (`a=1&b=2`), if given.
fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// `GET /` (the cluster page, with `/cluster.js` and `/cluster.css`),
/// `GET /api/v1/members`, `GET /api/v1/events[?after=SEQ]`,
/// `GET /api/v1/shards[?hasher=ring|rendezvous|multiprobe]` (by default the
/// node's own hasher), `GET /metrics`;
/// `405` for other methods on those paths, `400` for a bad query.
pub(crate) fn routes(
    view: watch::Receiver<Arc<Vec<MemberView>>>,
    registry: Arc<Registry>,
    timeline: Timeline,
    node_hasher: Hasher,
) -> Fallback {
    let share_cache = ShareCache::default();
    Arc::new(move |req| {
        let path = req.uri.path();
        if !matches!(
            path,
            "/" | "/index.html"
                | "/cluster.js"
                | "/cluster.css"
                | "/api/v1/members"
                | "/api/v1/events"
                | "/api/v1/shards"
                | "/metrics"
        ) {
            return None;
        }
        if req.method != Method::GET && req.method != Method::HEAD {
            let mut resp = Response::new(FrameBody::empty());
            *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            resp.headers_mut()
                .insert(hyper::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return Some(resp);
        }
        let query = req.uri.query();
        Some(match path {
            "/api/v1/members" => {
                let members = view.borrow().clone();
                json(serde_json::json!({ "members": &*members }))
            }
            "/api/v1/events" => {
                let after = match query_param(query, "after").map(str::parse::<u64>) {
                    None => 0,
                    Some(Ok(after)) => after,
                    Some(Err(_)) => {
                        return Some(bad_request(
                            "after: give the seq of the last event seen (a whole number)".into(),
                        ))
                    }
                };
                json(serde_json::json!({
                    "events": timeline.events_after(after),
                    "latest_seq": timeline.latest_seq(),
                    "capacity": timeline::CAPACITY,
                }))
            }
            "/api/v1/shards" => {
                // The node's own hasher unless the request names one.
                let hasher = query_param(query, "hasher").map_or(Ok(node_hasher), |name| {
                    shares::requested_hasher(name, node_hasher)
                });
                match hasher {
                    Ok(hasher) => {
                        let members = view.borrow().clone();
                        json(&*share_cache.get(&members, hasher))
                    }
                    Err(e) => bad_request(format!("hasher: {e}")),
                }
            }
            "/metrics" => respond(
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                encode(&registry),
            ),
            "/cluster.js" => respond("text/javascript; charset=utf-8", PAGE_SCRIPT),
            "/cluster.css" => respond("text/css; charset=utf-8", PAGE_STYLE),
            _ => respond("text/html; charset=utf-8", PAGE),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::query_param;

    #[test]
    fn query_params_are_found_by_name() {
        assert_eq!(
            query_param(Some("after=12&hasher=ring"), "hasher"),
            Some("ring")
        );
        assert_eq!(query_param(Some("after=12"), "after"), Some("12"));
        assert_eq!(query_param(Some("after"), "after"), None);
        assert_eq!(query_param(None, "after"), None);
    }
}
