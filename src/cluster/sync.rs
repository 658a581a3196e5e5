//! Full-state sync over `/stream`: two members swap everything they know
//! (members, leave notices, application state) in one exchange, so a node
//! that joins, or that was cut off by a partition, converges at once instead
//! of waiting for gossip rounds.
//!
//! One exchange on one stream: the dialer writes its [`Snapshot`] and ends
//! its side; the acceptor reads it, writes its own and ends. Each snapshot
//! is one frame of tokio-util's [`LengthDelimitedCodec`] with its defaults,
//! a 4-byte big-endian length and a postcard body, capped at
//! [`MAX_SNAPSHOT`] on both sides: a larger length is refused when its
//! header is read, so a peer can make us hold at most that much.

use super::identity::NodeId;
use crate::Error;
use bytes::{Bytes, BytesMut};
use foca::Member;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::{Encoder, FramedRead, LengthDelimitedCodec, LengthDelimitedCodecError};

/// The largest snapshot accepted from a peer, or sent to one.
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

/// The snapshot framing: one rule for both directions.
fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_SNAPSHOT)
        .new_codec()
}

/// Names a frame over [`MAX_SNAPSHOT`] as such, and any other failure to
/// move `whose` snapshot (a stream ended mid-frame, a reset) as that.
fn frame_err(io: std::io::Error, whose: &str) -> Error {
    if io
        .get_ref()
        .is_some_and(|e| e.is::<LengthDelimitedCodecError>())
    {
        sync_err(
            &format!("{whose} snapshot too large"),
            format!("over {MAX_SNAPSHOT} bytes (too much cluster state to sync in one exchange)"),
        )
    } else {
        sync_err(&format!("{whose} snapshot cut short"), io)
    }
}

/// Writes `snap` as one frame and ends the writing side.
pub(crate) async fn write_snapshot<W>(conn: &mut W, snap: &Snapshot) -> Result<(), Error>
where
    W: AsyncWrite + Unpin,
{
    let body = postcard::to_allocvec(snap).map_err(|e| sync_err("encode", e))?;
    let mut frame = BytesMut::with_capacity(4 + body.len());
    codec()
        .encode(Bytes::from(body), &mut frame)
        .map_err(|e| frame_err(e, "our"))?;
    conn.write_all(&frame).await?;
    conn.shutdown().await?;
    Ok(())
}

/// Reads one snapshot frame: refused when its length is over
/// [`MAX_SNAPSHOT`], or when the stream ends before it is whole.
pub(crate) async fn read_snapshot<R>(conn: &mut R) -> Result<Snapshot, Error>
where
    R: AsyncRead + Unpin,
{
    let mut frames = FramedRead::new(conn, codec());
    let body = match frames.next().await {
        Some(frame) => frame.map_err(|e| frame_err(e, "peer"))?,
        None => return Err(sync_err("no snapshot", "the peer ended the stream first")),
    };
    postcard::from_bytes(&body).map_err(|e| sync_err("decode", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn snapshot(state_bytes: usize) -> Snapshot {
        Snapshot {
            from: NodeId {
                name: "a".into(),
                addr: "127.0.0.1:1".into(),
                generation: 7,
            },
            members: Vec::new(),
            left: Vec::new(),
            state: vec![("a".into(), "k".into(), 1, vec![7; state_bytes])],
        }
    }

    /// The bytes written: a 4-byte big-endian length, then the postcard
    /// body (what earlier versions write and read, so they still talk).
    #[tokio::test]
    async fn a_snapshot_is_a_big_endian_length_and_its_postcard_body() {
        let snap = snapshot(300);
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        write_snapshot(&mut a, &snap).await.unwrap();
        let mut wire = Vec::new();
        b.read_to_end(&mut wire).await.unwrap();
        let body = postcard::to_allocvec(&snap).unwrap();
        let len = u32::try_from(body.len()).unwrap().to_be_bytes();
        assert_eq!(wire, [&len[..], &body].concat());

        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        a.write_all(&wire).await.unwrap();
        drop(a);
        let read = read_snapshot(&mut b).await.unwrap();
        assert_eq!(read.state, snap.state);
        assert_eq!(read.from, snap.from);
    }

    #[tokio::test]
    async fn a_length_over_the_cap_is_refused_from_its_header() {
        let (mut a, mut b) = tokio::io::duplex(64);
        // Only the header: nothing else is needed to refuse it.
        a.write_all(&(MAX_SNAPSHOT as u32 + 1).to_be_bytes())
            .await
            .unwrap();
        let e = read_snapshot(&mut b).await.unwrap_err().to_string();
        assert!(e.contains("peer snapshot too large"), "{e}");
    }

    #[tokio::test]
    async fn a_snapshot_over_the_cap_is_not_sent() {
        let (mut a, _b) = tokio::io::duplex(64);
        let e = write_snapshot(&mut a, &snapshot(MAX_SNAPSHOT))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("our snapshot too large"), "{e}");
    }

    #[tokio::test]
    async fn a_truncated_snapshot_is_refused() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&[0, 0, 0, 10, 1, 2, 3]).await.unwrap();
        drop(a);
        let e = read_snapshot(&mut b).await.unwrap_err().to_string();
        assert!(e.contains("peer snapshot cut short"), "{e}");

        let (a, mut b) = tokio::io::duplex(64);
        drop(a);
        let e = read_snapshot(&mut b).await.unwrap_err().to_string();
        assert!(e.contains("no snapshot"), "{e}");
    }
}
