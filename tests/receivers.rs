//! `Packets` and `Streams` are `futures::Stream`s too, ending when the
//! transport shuts down, as `recv()` and `accept()` do.

mod common;

use bytes::Bytes;
use common::{within, Peer, WAIT};
use futures_util::StreamExt;
use gossiphttp::{Options, Transport};

#[tokio::test]
async fn packets_and_streams_are_streams() {
    let peer = Peer::start(Options::default()).await;
    let (t, _) = Transport::new(Options::default()).unwrap();
    for p in [&b"a"[..], b"b", b"c"] {
        within("send", t.send(Bytes::copy_from_slice(p), &peer.addr))
            .await
            .unwrap();
    }
    let got: Vec<_> = within(
        "packets",
        peer.transport
            .packets()
            .take(3)
            .map(|p| p.payload)
            .collect(),
    )
    .await;
    assert_eq!(got, [&b"a"[..], b"b", b"c"]);

    let _dialed = within("dial", t.dial(&peer.addr, WAIT)).await.unwrap();
    let mut streams = peer.transport.streams();
    assert!(within("accept", streams.next()).await.is_some());

    // Both end once the transport shuts down.
    let mut packets = peer.transport.packets();
    within("shutdown", peer.transport.shutdown()).await;
    assert!(within("packets end", packets.next()).await.is_none());
    assert!(within("streams end", streams.next()).await.is_none());
    within("shutdown", t.shutdown()).await;
    peer.stop().await;
}
