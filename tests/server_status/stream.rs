//! `/stream`: headers before the first byte, then bytes both ways.

use super::{channel_body, frame, H2c, CT};
use crate::common::{within, Peer};
use bytes::{Buf, Bytes, BytesMut};
use gossiphttp::{Options, STREAM_PATH};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Reads `want` payload bytes from a response body of frames (the
/// boundaries carry no meaning on a stream), keeping any excess in `buf`.
async fn read_stream_bytes(body: &mut Incoming, buf: &mut BytesMut, want: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        // Decode whole frames from what has arrived.
        while buf.len() >= 3 {
            let (hdr, len) = match buf[0] {
                0xCC => (3, u16::from_be_bytes([buf[1], buf[2]]) as usize),
                0xCD if buf.len() >= 5 => (
                    5,
                    u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize,
                ),
                0xCD => break,
                m => panic!("bad magic {m:#x} from the server"),
            };
            if buf.len() < hdr + len {
                break;
            }
            buf.advance(hdr);
            out.extend_from_slice(&buf.split_to(len));
        }
        if out.len() >= want {
            assert_eq!(out.len(), want, "more bytes than written");
            return out;
        }
        let frame = within("stream response frame", body.frame())
            .await
            .expect("the response body ended early")
            .expect("response body error");
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
        }
    }
}

#[tokio::test]
async fn stream_headers_arrive_before_the_client_writes() {
    let peer = Peer::start(Options::default()).await;
    let mut streams = peer.transport.streams();
    let mut c = H2c::connect(&peer.addr).await;

    // Nothing written yet, the body open: the response must still come
    // (a Go dialer waits for it before memberlist writes anything).
    let (tx, body) = channel_body();
    let resp = c.request(Method::POST, STREAM_PATH, Some(CT), body).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()
            .get(hyper::header::CONTENT_TYPE)
            .map(|v| v.as_bytes()),
        Some(CT.as_bytes())
    );
    assert!(
        resp.headers()
            .get(hyper::header::CONTENT_ENCODING)
            .is_none(),
        "responses are never compressed"
    );
    let mut resp_body = resp.into_body();

    let mut conn = within("accept the stream", streams.accept())
        .await
        .expect("an incoming stream");
    assert_eq!(conn.remote_addr(), c.local);

    // Server to client: bytes arrive as frames on the response body.
    let greeting = b"hello from the server side".to_vec();
    within("server write", conn.write_all(&greeting))
        .await
        .unwrap();
    within("server flush", conn.flush()).await.unwrap();
    let mut buf = BytesMut::new();
    assert_eq!(
        read_stream_bytes(&mut resp_body, &mut buf, greeting.len()).await,
        greeting
    );
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let writer = tokio::spawn({
        let big = big.clone();
        async move {
            conn.write_all(&big).await.unwrap();
            conn.flush().await.unwrap();
            conn
        }
    });
    assert_eq!(
        read_stream_bytes(&mut resp_body, &mut buf, big.len()).await,
        big
    );
    let mut conn = within("server writer", writer).await.unwrap();

    // Client to server: frame boundaries do not matter to the reader.
    let mut wire = frame(b"ping ");
    wire.extend_from_slice(&frame(b""));
    wire.extend_from_slice(&[0xCD, 0, 0, 0, 4]);
    wire.extend_from_slice(b"pong");
    let (first, rest) = wire.split_at(4);
    tx.send(Bytes::copy_from_slice(first)).await.unwrap();
    tx.send(Bytes::copy_from_slice(rest)).await.unwrap();
    let mut got = [0u8; 9];
    within("server read", conn.read_exact(&mut got))
        .await
        .unwrap();
    assert_eq!(&got, b"ping pong");

    // The client ends its body: the server reads end of stream.
    drop(tx);
    let mut rest = Vec::new();
    within("server reads to the end", conn.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(rest.is_empty());

    // The server ends its side: the response body ends.
    within("server shutdown write", conn.shutdown())
        .await
        .unwrap();
    loop {
        match within("response end", resp_body.frame()).await {
            None => break,
            Some(Ok(f)) => assert!(
                f.data_ref().is_none_or(|d| d.is_empty()),
                "unexpected bytes after the end: {f:?}"
            ),
            Some(Err(e)) => panic!("the response body failed instead of ending: {e}"),
        }
    }
    drop(conn);
    peer.stop().await;
}

/// A stream's reader puts the byte pipe back together however the peer's
/// body chunks cut the frames: headers split across chunks (one byte at a
/// time too), empty frames, `0xCD` frames, several frames in one chunk.
#[tokio::test]
async fn stream_reads_reassemble_frames_cut_anywhere() {
    use tokio::io::AsyncReadExt;
    let peer = Peer::start(Options::default()).await;
    let mut streams = peer.transport.streams();
    let mut c = H2c::connect(&peer.addr).await;
    let payloads: Vec<Vec<u8>> = vec![
        b"hello".to_vec(),
        Vec::new(),
        (0..70_000u32).map(|i| (i % 253) as u8).collect(),
        b"x".to_vec(),
        Vec::new(),
        (0..300u32).map(|i| (i % 7) as u8).collect(),
    ];
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        if i % 2 == 1 {
            // The long form, legal for any length.
            wire.push(0xCD);
            wire.extend_from_slice(&(p.len() as u32).to_be_bytes());
            wire.extend_from_slice(p);
        } else {
            wire.extend_from_slice(&frame(p));
        }
        expected.extend_from_slice(p);
    }
    for cut in [1usize, 2, 3, 4, 5, 6, 7, 13, 4096, wire.len()] {
        let (tx, body) = channel_body();
        let resp = c.request(Method::POST, STREAM_PATH, Some(CT), body).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let mut conn = within("accept", streams.accept()).await.unwrap();
        let chunks: Vec<Bytes> = wire.chunks(cut).map(Bytes::copy_from_slice).collect();
        let writer = tokio::spawn(async move {
            for chunk in chunks {
                tx.send(chunk).await.unwrap();
            }
        });
        let mut got = Vec::new();
        within("read to end", conn.read_to_end(&mut got))
            .await
            .unwrap();
        assert!(
            got == expected,
            "cut every {cut} bytes: {} bytes back",
            got.len()
        );
        writer.await.unwrap();
    }
    peer.stop().await;
}
