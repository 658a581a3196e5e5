//! How a stream's peer closes it (issue 13, defect 4): an HTTP/2 client that
//! is done with a stream ends its request body, or resets the stream with
//! `CANCEL` or `NO_ERROR` (Go's dialer cancels its request when its
//! connection is closed). Either is a normal close: the listener reads
//! end-of-stream, not "stream broken", and counts no failed read. A reset
//! in the middle of a frame, or with an error reason, is still an error.

mod common;

use bytes::Bytes;
use common::{metric, within, Peer};
use gossiphttp::{Options, StreamConn, CONTENT_TYPE, STREAM_PATH};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// A raw h2 client's stream to `peer`, answered `200`, with the stream
/// conn the peer accepted for it.
async fn open_raw_stream(peer: &Peer) -> (h2::SendStream<Bytes>, StreamConn) {
    let tcp = TcpStream::connect(&peer.addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let mut client = within("ready", client.ready()).await.unwrap();
    let req = http::Request::post(format!("http://{}{STREAM_PATH}", peer.addr))
        .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
        .body(())
        .unwrap();
    let (resp, send) = client.send_request(req, false).unwrap();
    let mut streams = peer.transport.streams();
    let accepted = within("accept", streams.accept()).await.unwrap();
    let resp = within("response", resp).await.unwrap();
    assert_eq!(resp.status(), 200);
    (send, accepted)
}

/// `hello` as one `0xCC` frame.
fn hello_frame() -> Bytes {
    Bytes::from_static(b"\xcc\x00\x05hello")
}

async fn read_all(conn: &mut StreamConn) -> std::io::Result<Vec<u8>> {
    let mut got = Vec::new();
    within("read to the end", conn.read_to_end(&mut got)).await?;
    Ok(got)
}

fn failed_reads(peer: &Peer) -> f64 {
    metric(
        &peer.registry,
        "cluster_transport_stream_rx_packets_failed_total",
    )
}

#[tokio::test]
async fn a_reset_with_cancel_after_whole_frames_is_end_of_stream() {
    for reason in [h2::Reason::CANCEL, h2::Reason::NO_ERROR] {
        let peer = Peer::start(Options::default()).await;
        let (mut send, mut conn) = open_raw_stream(&peer).await;
        send.send_data(hello_frame(), false).unwrap();
        let mut first = [0; 5];
        within("first read", conn.read_exact(&mut first))
            .await
            .unwrap();
        assert_eq!(&first, b"hello");
        send.send_reset(reason);
        let rest = read_all(&mut conn).await;
        assert_eq!(rest.unwrap(), b"", "after RST_STREAM({reason:?})");
        assert_eq!(failed_reads(&peer), 0.0);
        peer.stop().await;
    }
}

#[tokio::test]
async fn an_ended_request_body_is_end_of_stream() {
    let peer = Peer::start(Options::default()).await;
    let (mut send, mut conn) = open_raw_stream(&peer).await;
    send.send_data(hello_frame(), true).unwrap();
    assert_eq!(read_all(&mut conn).await.unwrap(), b"hello");
    // What Go's client does next when it closes the response body early.
    send.send_reset(h2::Reason::CANCEL);
    assert_eq!(failed_reads(&peer), 0.0);
    peer.stop().await;
}

#[tokio::test]
async fn a_reset_mid_frame_or_with_an_error_is_still_an_error() {
    let peer = Peer::start(Options::default()).await;
    let (mut send, mut conn) = open_raw_stream(&peer).await;
    send.send_data(Bytes::from_static(b"\xcc\x00\x05hel"), false)
        .unwrap();
    // Let the partial frame arrive before the reset.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    send.send_reset(h2::Reason::CANCEL);
    let err = read_all(&mut conn).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err}");

    let (mut send, mut conn) = open_raw_stream(&peer).await;
    send.send_data(hello_frame(), false).unwrap();
    send.send_reset(h2::Reason::INTERNAL_ERROR);
    let err = read_all(&mut conn).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    // The cause is named, not just hyper's "error reading a body".
    assert!(err.to_string().contains("internal error"), "{err}");
    assert_eq!(failed_reads(&peer), 2.0);
    peer.stop().await;
}
