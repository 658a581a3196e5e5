//! The native runtime: tokio, hyper 1.x and h2, rustls.

mod accepted;
mod answers;
mod body;
mod client;
mod connector;
mod deadline;
#[cfg(feature = "cluster")]
pub mod discovery;
mod framed;
mod handler;
mod inbox;
mod metrics;
pub(crate) mod options;
mod sender;
mod server;
mod stream;
pub mod tls;
mod transport;
mod write_buffers;

pub use body::FrameBody;
pub use client::Client;
pub use handler::{Fallback, RemoteAddr, TransportService};
pub use metrics::MetricsRegistry;
pub use options::Options;
pub use server::Server;
pub use stream::StreamConn;
pub use tls::{ClientTls, ServerTls};
pub use transport::{Packets, Streams, Transport};
