//! The one error type of the crate, shared by both runtimes.

use crate::codec::FrameError;
use std::time::Duration;

/// A boxed error from a lower layer (HTTP, TLS, I/O).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in gossiphttp, as an enum callers can match.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A peer sent bytes that are not a valid sequence of frames.
    #[error("malformed frame: {0}")]
    Frame(#[from] FrameError),
    /// A packet given to be sent is larger than the transport's
    /// `max_packet_size`; nothing was sent.
    #[error(
        "packet of {len} bytes is larger than max_packet_size ({max}); raise \
         Options::max_packet_size (the peer must accept it too) or send a smaller packet"
    )]
    PacketTooLarge {
        /// The packet's size in bytes.
        len: usize,
        /// The limit it exceeds.
        max: usize,
    },
    /// The transport was shut down before or while the operation ran.
    #[error("transport is shut down")]
    Shutdown,
    /// The operation did not finish within its deadline.
    #[error("{what} timed out after {after:?}")]
    Timeout {
        /// What was being waited for.
        what: &'static str,
        /// The deadline that passed.
        after: Duration,
    },
    /// A peer address could not be parsed or resolved.
    #[error("invalid peer address {addr:?}: {reason}")]
    InvalidAddress {
        /// The address as given.
        addr: String,
        /// Why it was refused.
        reason: String,
    },
    /// Connecting to a peer failed (TCP, TLS or the HTTP/2 handshake).
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The peer address.
        addr: String,
        /// The underlying cause.
        #[source]
        source: BoxError,
    },
    /// The peer answered with a status other than `200 OK`. The message
    /// says what the statuses a gossiphttp peer uses most likely mean.
    #[error("peer {addr} answered HTTP {status}{}", status_hint(*status))]
    Status {
        /// The peer address.
        addr: String,
        /// The HTTP status code it answered with.
        status: u16,
    },
    /// The HTTP exchange with a peer failed after the connection was made.
    #[error("HTTP exchange with {addr} failed: {source}")]
    Http {
        /// The peer address.
        addr: String,
        /// The underlying cause.
        #[source]
        source: BoxError,
    },
    /// A packet was dropped from a full send queue to make room for newer
    /// ones (the queue keeps the newest packets, as UDP-style gossip wants).
    #[error("packet dropped: the send queue for {addr} was full")]
    Dropped {
        /// The peer address.
        addr: String,
    },
    /// A configuration value (option, certificate, key) is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An I/O error outside a peer exchange (binding, reading a file).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// What a status a gossiphttp peer answers most likely means, and the fix.
fn status_hint(status: u16) -> &'static str {
    match status {
        400 => {
            " (Bad Request: not a request of the contract: wrong content type or method, or \
             malformed frames)"
        }
        401 => {
            " (Unauthorized: the peer requires a shared token: set auth_token, --token, to the \
             peer's)"
        }
        403 => {
            " (Forbidden: the peer does not allow this browser origin: add it to the peer's \
             CORS origins)"
        }
        404 => " (Not Found: not a gossiphttp endpoint: check the port and the URL's path)",
        408 => " (Request Timeout: the body took longer than the peer's body_read_timeout)",
        413 => " (Payload Too Large: a packet is larger than the peer's max_packet_size)",
        503 => " (Service Unavailable: the peer is shutting down, or at its stream limit)",
        505 => {
            " (HTTP Version Not Supported: the peer does not take HTTP/1.1: enable \
             accept_http1, --accept-http1, on the peer, or speak HTTP/2 to it: drop \
             client_http1 / --http1)"
        }
        _ => "",
    }
}

impl Error {
    /// A copy for a second caller waiting on the same outcome (one failed
    /// request fails every packet it carried). Sources become their text.
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    pub(crate) fn duplicate(&self) -> Error {
        let text = |e: &BoxError| -> BoxError { e.to_string().into() };
        match self {
            Error::Frame(e) => Error::Frame(e.clone()),
            Error::PacketTooLarge { len, max } => Error::PacketTooLarge {
                len: *len,
                max: *max,
            },
            Error::Shutdown => Error::Shutdown,
            Error::Timeout { what, after } => Error::Timeout {
                what,
                after: *after,
            },
            Error::InvalidAddress { addr, reason } => Error::InvalidAddress {
                addr: addr.clone(),
                reason: reason.clone(),
            },
            Error::Connect { addr, source } => Error::Connect {
                addr: addr.clone(),
                source: text(source),
            },
            Error::Status { addr, status } => Error::Status {
                addr: addr.clone(),
                status: *status,
            },
            Error::Http { addr, source } => Error::Http {
                addr: addr.clone(),
                source: text(source),
            },
            Error::Dropped { addr } => Error::Dropped { addr: addr.clone() },
            Error::Config(s) => Error::Config(s.clone()),
            Error::Io(e) => Error::Io(std::io::Error::new(e.kind(), e.to_string())),
        }
    }

    /// A short name for the error kind, for logs and metrics labels; a
    /// kind's name never changes. The npm package's errors carry it as
    /// their `code` when they come from an `Error`, next to codes of the
    /// package's own (`"network"`, `"closed"`, `"invalid_argument"`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Frame(_) => "frame",
            Error::PacketTooLarge { .. } => "packet_too_large",
            Error::Shutdown => "shutdown",
            Error::Timeout { .. } => "timeout",
            Error::InvalidAddress { .. } => "invalid_address",
            Error::Connect { .. } => "connect",
            Error::Status { .. } => "status",
            Error::Http { .. } => "http",
            Error::Dropped { .. } => "dropped",
            Error::Config(_) => "config",
            Error::Io(_) => "io",
        }
    }
}
