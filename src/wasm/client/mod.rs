//! The `fetch` client: packets and stream exchanges to one peer, from a
//! browser, Node (20+) or an edge worker.
//!
//! ```js
//! import init, { Peer } from 'gossiphttp'; // browsers: await init(); Node/workers: initSync
//! await init();
//! const peer = new Peer('https://127.0.0.1:7946', { timeoutMs: 5000 });
//! peer.send(new Uint8Array([1, 2, 3]));          // same turn of the event loop:
//! await peer.send(new Uint8Array([4, 5]));       // one POST /message with both frames
//! const ex = await peer.exchange([new TextEncoder().encode('hello')]);
//! for await (const chunk of ex) console.log(chunk); // the peer's bytes, frames unwrapped
//! ```
//!
//! What is enforced, from the protocol:
//! - every request is `POST` with `Content-Type: application/x.ckit`
//!   (exactly), to `<url>/api/v1/ckit/transport/message` or `/stream`;
//! - only `200` counts as delivered: any other status rejects with code
//!   `"status"` and the status on `err.status`; a `505` (the peer refused
//!   HTTP/1.1) says how to fix it;
//! - packets are written one frame each, `0xCC` + u16 length up to 65,535
//!   bytes, `0xCD` + u32 length above; a packet over `maxPacketSize` (default
//!   1 MiB, the native receiver's default) is refused before sending, since
//!   a receiver would answer `413`;
//! - the peer's `/stream` body is read with the shared
//!   [`StreamDecoder`](crate::codec::StreamDecoder): frame boundaries carry
//!   no meaning, payload bytes are handed out as they arrive (never a whole
//!   4 GiB frame buffered), a bad magic byte or a body ending inside a frame
//!   rejects with code `"frame"`.
//!
//! What each runtime can do:
//!
//! | | `send`, `sendMany`, `exchange` | `open` (full duplex) |
//! |---|---|---|
//! | browsers | yes; `https://` peers speak HTTP/2, cross-origin pages need the peer's CORS allowlist | **no**: browser `fetch` is half duplex (it resolves only after the request body is closed), so `open()` rejects with `"timeout"` |
//! | Node 20+ | yes; Node's `fetch` speaks HTTP/1.1 only, so a native peer must accept HTTP/1.1 (`Options::accept_http1`, CLI `--accept-http1`), else it answers `505` | **yes**: Node's `fetch` (undici) returns the response while the request body is still open |
//! | workers (workerd, Cloudflare) | yes (outbound `fetch` is HTTP/1.1 locally: the native peer needs `--accept-http1`) | **yes in workerd** (tested locally: the response is readable while the body is open); not verified on Cloudflare's edge |
//!
//! `timeoutMs` bounds every wait on the peer: until the response headers
//! arrive, until a `/message` response ends, and between two chunks of a
//! `/stream` response. It aborts the `fetch` and rejects with `"timeout"`.
//!
//! The parts (private modules): `peer` (the `Peer` class and its
//! arguments), `request` (one `POST` and its non-`200` answers), `deadline`
//! (`timeoutMs` as an abortable timer), `body` (outgoing frames), `reading`
//! (the peer's `/stream` body, decoded), `exchange` (`Exchange` and the
//! async iterator) and `duplex` (`DuplexStream`, `open()`'s full duplex).

use wasm_bindgen::prelude::*;

pub(crate) mod body;
pub(crate) mod deadline;
mod duplex;
mod exchange;
mod peer;
mod reading;
pub(crate) mod request;

pub use duplex::DuplexStream;
pub use exchange::{ChunkIterator, Exchange};
pub use peer::Peer;
pub(crate) use peer::{option, parse_url, settle, string_option, timeout_ms};

/// Default for `timeoutMs`.
pub const DEFAULT_TIMEOUT_MS: f64 = 5000.0;

/// The longest payload put in one outgoing stream frame: bigger chunks are
/// split (frame boundaries mean nothing on a stream).
pub const MAX_STREAM_FRAME: usize = 1 << 20;

#[wasm_bindgen(typescript_custom_section)]
const TS_CLIENT: &'static str = r#"
/** Options for {@link Peer}. */
export interface PeerOptions {
  /** How long to wait for the peer, in ms (default 5000; 0 = no limit): for the response headers, for a /message response to end, and between two chunks of a /stream response. */
  timeoutMs?: number;
  /** Shared secret, sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** Largest packet `send`/`sendMany` accept, in bytes (default 1 MiB, what a native peer accepts by default). */
  maxPacketSize?: number;
}

export interface Exchange {
  /** `for await (const chunk of exchange)`: the peer's stream bytes, chunk by chunk. */
  [Symbol.asyncIterator](): AsyncIterableIterator<Uint8Array>;
}

export interface DuplexStream {
  /** `for await (const chunk of stream)`: the peer's stream bytes, chunk by chunk. */
  [Symbol.asyncIterator](): AsyncIterableIterator<Uint8Array>;
}

/** Every error this package makes has a `code` (and `status` for code "status"); an error a `handleRequest` handler throws passes through as thrown. */
export interface GossipError extends Error {
  code: "frame" | "status" | "network" | "timeout" | "protocol" | "not_enough_members" | "invalid_address" | "closed" | "invalid_argument" | "invalid_options";
  /** The HTTP status, for code "status". */
  status?: number;
}
"#;
