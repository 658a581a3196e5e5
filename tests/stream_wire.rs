//! What a stream puts on the wire, read by a bare HTTP/2 server that knows
//! only the contract: a writer uses `0xCC` for every payload of 65,535 bytes
//! or less (older peers know no other header), however large the writes.

mod common;

use bytes::{Buf, Bytes};
use common::within;
use gossiphttp::{Options, Transport};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

type PendingBody = StreamBody<futures_util::stream::Pending<Result<Frame<Bytes>, Infallible>>>;

/// Serves one h2c connection: answers `200` at once (as the contract asks)
/// with a body that never ends, and hands over the raw request body.
/// `None` marks the end of the body.
async fn raw_stream_peer() -> (String, mpsc::UnboundedReceiver<Option<Bytes>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let tx = tx.clone();
            async move {
                assert_eq!(req.uri().path(), "/api/v1/ckit/transport/stream");
                let mut body = req.into_body();
                tokio::spawn(async move {
                    while let Some(Ok(frame)) = body.frame().await {
                        if let Ok(data) = frame.into_data() {
                            let _ = tx.send(Some(data));
                        }
                    }
                    let _ = tx.send(None);
                });
                let body: PendingBody = StreamBody::new(futures_util::stream::pending());
                Ok::<_, Infallible>(Response::new(body))
            }
        });
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(sock), service)
            .await;
    });
    (addr, rx)
}

/// Splits the raw body into frames, asserting each uses the header the
/// contract prescribes for its size.
fn frames(mut raw: &[u8]) -> Vec<usize> {
    let mut sizes = Vec::new();
    while !raw.is_empty() {
        let len = match raw.get_u8() {
            0xCC => raw.get_u16() as usize,
            0xCD => {
                let len = raw.get_u32() as usize;
                assert!(len > 65_535, "0xCD used for a {len}-byte payload");
                len
            }
            other => panic!("bad magic {other:#04x}"),
        };
        assert!(raw.len() >= len, "truncated frame");
        raw.advance(len);
        sizes.push(len);
    }
    sizes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_writes_become_short_frames_only() {
    let (addr, mut rx) = raw_stream_peer().await;
    let (t, _m) = Transport::new(Options::default()).unwrap();
    let mut conn = within("dial", t.dial(&addr, Duration::from_secs(5)))
        .await
        .unwrap();

    // One write of each awkward size: exactly 64 KiB (one byte over a short
    // frame), a large write (several writes' worth), and small ones.
    let sizes = [65_536usize, 1, 65_535, 300_000, 0, 7];
    let mut sent = Vec::new();
    for (i, n) in sizes.iter().enumerate() {
        let data: Vec<u8> = (0..*n).map(|j| (i * 31 + j * 7) as u8).collect();
        conn.write_all(&data).await.unwrap();
        sent.extend_from_slice(&data);
    }
    conn.shutdown().await.unwrap();

    let mut raw = Vec::new();
    within("the peer reads the whole body", async {
        while let Some(Some(chunk)) = rx.recv().await {
            raw.extend_from_slice(&chunk);
        }
    })
    .await;
    let sizes = frames(&raw);
    assert!(
        sizes.iter().all(|&n| n <= 65_535 && n > 0),
        "frame sizes {sizes:?}"
    );
    let payload: Vec<u8> = {
        let mut out = Vec::new();
        let mut rest = &raw[..];
        while !rest.is_empty() {
            rest.advance(1);
            let n = rest.get_u16() as usize;
            out.extend_from_slice(&rest[..n]);
            rest.advance(n);
        }
        out
    };
    assert_eq!(payload.len(), sent.len());
    assert!(payload == sent, "the stream's bytes differ");
    t.shutdown().await;
}
