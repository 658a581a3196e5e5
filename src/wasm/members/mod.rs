//! A cluster as JavaScript sees it: `members(url)` asks one node for every
//! member it knows with one memberlist push-pull, and `lookup(key, n,
//! members)` picks a key's owners as ckit's sharding does.
//!
//! `members` writes a push-pull that carries no member and no user state,
//! with `Join` false: memberlist merges nothing from it (no member to add,
//! no user state to hand ckit) and answers with its own view, so the caller
//! never becomes a member. The node's answer is read with memberlist's
//! stream decoder ([`crate::memberlist::stream::StreamDecoder`], bounded by
//! memberlist's 20 MiB `maxPushStateBytes`) and ckit's push-pull user state
//! ([`crate::ckit::message::LocalState`]) gives each member's ckit state.
//!
//! The parts: `reply` (reading and checking the node's answer), `http2`
//! (Node's `node:http2` as a transport, for nodes that refuse HTTP/1.1) and
//! `lookup`.

mod http2;
mod lookup;
mod reply;

pub use lookup::lookup;

use crate::memberlist::message::PushPull;
use crate::memberlist::packet::label_header;
use crate::memberlist::stream::StreamMessage;
use crate::wasm::client::body::stream_body;
use crate::wasm::client::deadline::Deadline;
use crate::wasm::client::request::{post, Body};
use crate::wasm::client::{
    option, parse_url, settle, string_option, timeout_ms, DEFAULT_TIMEOUT_MS,
};
use crate::wasm::js::error;
use crate::BASE_ROUTE;
use js_sys::{Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

#[wasm_bindgen(typescript_custom_section)]
const TS_MEMBERS: &'static str = r#"
/** One cluster member, as the node that answered {@link members} knows it. */
export interface Member {
  /** The member's name, unique in the cluster. */
  name: string;
  /** Where it gossips: "ip:port" ("[ip]:port" for IPv6). */
  addr: string;
  /** memberlist's view of it. */
  state: "alive" | "suspect" | "dead" | "left";
  /** memberlist's incarnation number (a member raises it to refute a suspicion). */
  incarnation: number;
  /** The member's metadata (empty when it has none). */
  meta: Uint8Array;
  /** ckit's node state, when the node is a ckit node (absent from plain memberlist nodes). */
  ckitState?: "viewer" | "participant" | "terminating";
}

/** Options for {@link members}. */
export interface MembersOptions {
  /** The whole call's limit, in ms (default 5000; 0 = no limit). */
  timeoutMs?: number;
  /** Shared secret, sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** The cluster's label (ckit's and Alloy's `cluster.name`, memberlist's `Label`): a node with another label ignores the call. */
  label?: string;
  /** Node only: send through `node:http2` instead of `fetch` (Go nodes answer HTTP/1.1 with 505). Elsewhere: error "invalid_options". */
  http2?: boolean;
}

/** Options for {@link lookup}. */
export interface LookupOptions {
  /** ckit's hasher (default "ring", with 512 tokens: Alloy's choice; ckit itself has no default). Every node of a cluster uses the same. */
  hasher?: "rendezvous" | "multiprobe" | "ring";
  /** Tokens per member for "ring" (default 512). */
  ringTokens?: number;
  /** Which members may own keys: "readwrite" or "write" (default; participants only), "read" (participants and terminating members). */
  op?: "read" | "write" | "readwrite";
}
"#;

/// What `members` was asked.
struct MembersCall {
    url: String,
    stream_url: String,
    timeout_ms: f64,
    token: Option<String>,
    label: String,
    http2: bool,
}

impl MembersCall {
    fn parse(url: &str, options: &JsValue) -> Result<MembersCall, JsValue> {
        let base = parse_url(url)?;
        let timeout = option(options, "timeoutMs")?;
        let timeout_ms = if timeout.is_undefined() || timeout.is_null() {
            DEFAULT_TIMEOUT_MS
        } else {
            timeout_ms(&timeout)?
        };
        let token = string_option(options, "token")?;
        let label = string_option(options, "label")?.unwrap_or_default();
        let http2 = option(options, "http2")?;
        let http2 = if http2.is_undefined() || http2.is_null() {
            false
        } else {
            http2
                .as_bool()
                .ok_or_else(|| error("invalid_options", "http2 must be a boolean"))?
        };
        let route = BASE_ROUTE.trim_end_matches('/');
        Ok(MembersCall {
            stream_url: format!("{base}{route}/stream"),
            url: base,
            timeout_ms,
            token,
            label,
            http2,
        })
    }

    /// The request body: the label header, then a push-pull with no member,
    /// no user state and `Join` false, as stream frames.
    fn request_body(&self) -> Result<Uint8Array, JsValue> {
        let mut bytes = label_header(&self.label).map_err(|e| {
            error(
                "invalid_options",
                &format!("label {:?} cannot be sent: {e}", self.label),
            )
        })?;
        let ask = StreamMessage::PushPull(PushPull {
            join: false,
            nodes: Vec::new(),
            user_state: Default::default(),
        });
        bytes.extend(ask.encode(false));
        stream_body(&[Uint8Array::from(&bytes[..])])
    }

    async fn run(self) -> Result<JsValue, JsValue> {
        let body = self.request_body()?;
        let mut deadline = Deadline::new(self.timeout_ms)?;
        let token = self.token.as_deref();
        // The deadline is armed once, here, and never re-armed: it bounds
        // the whole call, however slowly the node answers.
        let (resp, _session) = if self.http2 {
            let (resp, session) =
                http2::post(&self.stream_url, token, &body, &mut deadline).await?;
            (resp, Some(session))
        } else {
            (
                post(&self.stream_url, token, Body::Bytes(&body), &mut deadline).await?,
                None,
            )
        };
        let push_pull = reply::read_push_pull(&resp, &mut deadline, &self.url, &self.label).await;
        deadline.disarm();
        reply::to_members(&push_pull?, &self.url)
    }
}

/// Every member the node at `url` knows (dead and left ones too, while it
/// remembers them), from one push-pull on its `/stream` endpoint. The call
/// joins nothing: the node does not add the caller to the cluster.
///
/// Rejects with code `"status"`, `"network"` or `"timeout"` as `Peer` does
/// (`timeoutMs` bounds the whole call here), `"protocol"` when the answer is
/// not one valid push-pull (an empty answer is what a node gives a caller
/// with the wrong `label`), `"invalid_address"` / `"invalid_options"` for
/// bad arguments.
#[wasm_bindgen(unchecked_return_type = "Promise<Member[]>")]
pub fn members(
    url: &str,
    #[wasm_bindgen(unchecked_optional_param_type = "MembersOptions")] options: JsValue,
) -> Promise {
    settle(MembersCall::parse(url, &options).map(|call| future_to_promise(call.run())))
}
