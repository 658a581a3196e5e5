//! # gossiphttp
//!
//! Cluster gossip over HTTP/2, wire-compatible with grafana/ckit's
//! `gossiphttp` transport: a Rust peer and a Go peer exchange packets
//! (`POST /api/v1/ckit/transport/message`) and full-duplex streams
//! (`POST /api/v1/ckit/transport/stream`) over h2c or TLS.
//!
//! The frame codec ([`codec`]), the error type and the packet types are
//! shared by both targets. The runtime is picked here, and only here:
//! tokio + hyper on native targets, `fetch` on `wasm32`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), gossiphttp::Error> {
//! use gossiphttp::{Options, Transport};
//!
//! let (transport, _metrics) = Transport::new(Options::default())?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7946").await?;
//! let server = transport.serve(listener)?;
//!
//! transport.write_to(b"hello".as_slice().into(), "127.0.0.1:7947")?;
//! let mut packets = transport.packets();
//! while let Some(packet) = packets.recv().await {
//!     println!("{} bytes from {}", packet.payload.len(), packet.from);
//! }
//! // The transport first (open exchanges end), then the server.
//! server.shutdown_with(&transport).await;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod ckit;
pub mod codec;
pub mod contract;
mod error;
pub mod memberlist;
mod packet;

pub use error::{BoxError, Error};
pub use packet::{Packet, PeerAddr, Scheme, BASE_ROUTE, CONTENT_TYPE, MESSAGE_PATH, STREAM_PATH};

#[cfg(all(not(target_arch = "wasm32"), feature = "cluster"))]
pub mod cluster;
#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(not(target_arch = "wasm32"))]
pub use native::*;

#[cfg(target_arch = "wasm32")]
mod wasm;
#[cfg(target_arch = "wasm32")]
pub use wasm::*;
