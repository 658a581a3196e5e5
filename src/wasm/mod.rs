//! The `wasm32` runtime: browsers, Node and edge workers, over `fetch`.
//!
//! - [`client`]: `Peer` sends packets and runs stream exchanges with a peer
//!   URL (`Peer.open`, full duplex, in Node and workerd).
//! - [`worker`]: `handleRequest` answers the transport's endpoints from a
//!   worker's `fetch`.
//! - [`frames`]: `encodeFrame` and `FrameDecoder`, the shared codec for
//!   JavaScript.
//! - [`members`]: `members(url)`, a cluster's members from one push-pull,
//!   and `lookup`, ckit's owners of a key among them.
//! - [`js`]: errors with a `code`, argument checks.
//!
//! Framing is the shared [`crate::codec`], unchanged. Built with
//! `wasm-pack build --release --target web`, this is the npm package
//! `gossiphttp` (see `pkg/README.md` for browser, Node and worker set-up).

pub mod client;
pub mod frames;
pub mod js;
pub mod members;
pub mod worker;

pub use client::{ChunkIterator, DuplexStream, Exchange, Peer};
pub use frames::{encode_frame, FrameDecoder};
pub use members::{lookup, members};
