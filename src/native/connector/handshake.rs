//! The step both pools take to open a connection: dial the peer, speak the
//! pool's HTTP handshake on it, and leave its driver to the dialer.

use super::dialer::{Dialer, PeerIo};
use super::sniff::FirstAnswer;
use super::PoolKey;
use crate::{BoxError, Error, PeerAddr};
use std::future::Future;
use tokio::sync::OwnedSemaphorePermit;

/// Dials `peer` as `key` says (the socket holding `permit`, if any, until
/// it closes), runs `handshake` (HTTP/2 or HTTP/1.1) on the
/// connection and drives the connection in the background. Returns its
/// request sender and what the peer's first answer said; a handshake that
/// fails is a connect error naming `peer`. A failed connect, and a
/// connection that later ends in an error, are reported to the dialer's
/// [`LostPeers`](super::LostPeers).
pub(super) async fn open<S, C, H, E, CE>(
    dialer: &Dialer,
    peer: &PeerAddr,
    key: &PoolKey,
    permit: Option<OwnedSemaphorePermit>,
    handshake: impl FnOnce(PeerIo) -> H,
) -> Result<(S, FirstAnswer), Error>
where
    H: Future<Output = Result<(S, C), E>>,
    E: Into<BoxError>,
    C: Future<Output = Result<(), CE>> + Send + 'static,
    CE: std::fmt::Display,
{
    let first_answer = FirstAnswer::default();
    let opened = async {
        let io = dialer.connect(peer, key.0, &first_answer, permit).await?;
        handshake(io).await.map_err(|e| Error::Connect {
            addr: peer.to_string(),
            source: e.into(),
        })
    };
    match opened.await {
        Ok((sender, conn)) => {
            dialer.drive(conn, &key.1);
            Ok((sender, first_answer))
        }
        Err(e) => {
            if matches!(e, Error::Connect { .. }) {
                dialer.lost.report(&key.1);
            }
            Err(e)
        }
    }
}
