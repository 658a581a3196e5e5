//! The `wasm32` runtime: browsers, Node and edge workers, over `fetch`.
//!
//! - [`client`]: send packets and open stream exchanges to a peer URL.
//! - [`worker`]: answer the transport's endpoints from a worker's `fetch`.
//! - [`js`]: the JavaScript-facing pieces shared by both (errors, frames).
//!
//! Framing is the shared [`crate::codec`], unchanged.

pub mod client;
pub mod js;
pub mod worker;
