//! Who a member is, and what an engine refuses to start with.

use bytes::Bytes;
use std::net::SocketAddr;

/// Who this member is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Its name, unique in the cluster.
    pub name: String,
    /// The address it advertises (where others reach it).
    pub addr: SocketAddr,
    /// Its metadata (at most 512 bytes; ckit's is nil).
    pub meta: Option<Bytes>,
}

/// memberlist's `MetaMaxSize`: Go nodes refuse longer metadata.
pub const META_MAX_SIZE: usize = 512;

/// Why an [`Identity`] cannot start an engine.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Members are keyed by name.
    #[error("a member needs a name: give the identity a non-empty name, unique in the cluster")]
    EmptyName,
    /// Go memberlist caps metadata at [`META_MAX_SIZE`] bytes.
    #[error("node metadata is {len} bytes, more than memberlist's {META_MAX_SIZE}: shorten it")]
    MetaTooLong {
        /// Its length.
        len: usize,
    },
}
