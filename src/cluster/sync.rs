//! Full-state sync over `/stream`: two members swap everything they know
//! (members, leave notices, application state) in one exchange, so a node
//! that joins, or that was cut off by a partition, converges at once instead
//! of waiting for gossip rounds.
//!
//! One exchange on one stream: the dialer writes its [`Snapshot`] and ends
//! its side; the acceptor reads it, writes its own and ends. Each snapshot
//! is a 4-byte big-endian length and a postcard body, capped at
//! [`MAX_SNAPSHOT`].

use super::identity::NodeId;
use crate::{Error, StreamConn};
use foca::Member;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The largest snapshot accepted from a peer.
pub(crate) const MAX_SNAPSHOT: usize = 4 << 20;
/// How long one exchange may take.
pub(crate) const SYNC_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    /// Who sent it.
    pub from: NodeId,
    pub members: Vec<Member<NodeId>>,
    pub left: Vec<NodeId>,
    /// `(origin, key, version, value)`.
    pub state: Vec<(String, String, u64, Vec<u8>)>,
}

fn sync_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Io(std::io::Error::other(format!("state sync: {what}: {e}")))
}

pub(crate) async fn write_snapshot(conn: &mut StreamConn, snap: &Snapshot) -> Result<(), Error> {
    let body = postcard::to_allocvec(snap).map_err(|e| sync_err("encode", e))?;
    let len = u32::try_from(body.len()).map_err(|e| sync_err("snapshot too large", e))?;
    conn.write_all(&len.to_be_bytes()).await?;
    conn.write_all(&body).await?;
    conn.shutdown().await?;
    Ok(())
}

pub(crate) async fn read_snapshot(conn: &mut StreamConn) -> Result<Snapshot, Error> {
    let mut len = [0u8; 4];
    conn.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_SNAPSHOT {
        return Err(sync_err(
            "peer snapshot too large",
            format!("{len} > {MAX_SNAPSHOT} bytes"),
        ));
    }
    // Read what arrives rather than trusting `len` for the allocation.
    let mut body = Vec::new();
    (&mut *conn).take(len as u64).read_to_end(&mut body).await?;
    if body.len() != len {
        return Err(sync_err(
            "truncated snapshot",
            format!("{} of {len} bytes", body.len()),
        ));
    }
    postcard::from_bytes(&body).map_err(|e| sync_err("decode", e))
}
