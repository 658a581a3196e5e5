//! The native runtime: tokio, hyper 1.x and h2, rustls.

mod access;
mod body;
mod connector;
mod deadline;
mod framed;
mod metrics;
mod options;
mod sender;
mod server;
mod stream;
pub mod tls;
mod transport;
mod write_buffers;

pub use body::FrameBody;
pub use metrics::MetricsRegistry;
pub use options::Options;
pub use server::{Fallback, RemoteAddr, Server, TransportService};
pub use stream::StreamConn;
pub use tls::{ClientTls, ServerTls};
pub use transport::{Packets, Streams, Transport};
