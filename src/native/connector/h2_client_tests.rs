//! [`h2_client`](super::h2_client) on real loopback connections to an h2
//! server, with the client's writes recorded: a request's HEADERS and its
//! first DATA frame leave in one write, a body that goes on is sent whole,
//! and a request given up before its answer resets its stream.

use super::h2_client::{handshake, H2Conn, H2Settings};
use crate::native::body::FrameBody;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Request;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const END_STREAM: u8 = 0x1;

/// A client's socket that keeps the bytes of each write it makes.
struct Recorded {
    tcp: TcpStream,
    writes: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Recorded {
    fn record(&self, bufs: &[IoSlice<'_>], mut written: usize) {
        let mut bytes = Vec::with_capacity(written);
        for buf in bufs {
            let n = buf.len().min(written);
            bytes.extend_from_slice(&buf[..n]);
            written -= n;
        }
        self.writes.lock().unwrap().push(bytes);
    }
}

impl AsyncRead for Recorded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Recorded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            this.record(bufs, n);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

/// A frame the client wrote: its type, flags, stream, and which write its
/// header went out in.
#[derive(Debug)]
struct Written {
    kind: u8,
    flags: u8,
    stream: u32,
    write: usize,
}

/// The frames in `writes`, after the client's preface.
fn frames(writes: &[Vec<u8>]) -> Vec<Written> {
    let bytes: Vec<(usize, u8)> = writes
        .iter()
        .enumerate()
        .flat_map(|(i, w)| w.iter().map(move |b| (i, *b)))
        .collect();
    let mut frames = Vec::new();
    let mut at = PREFACE_LEN;
    while at + FRAME_HEADER_LEN <= bytes.len() {
        let h: Vec<u8> = bytes[at..at + FRAME_HEADER_LEN]
            .iter()
            .map(|b| b.1)
            .collect();
        let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
        frames.push(Written {
            kind: h[3],
            flags: h[4],
            stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
            write: bytes[at].0,
        });
        at += FRAME_HEADER_LEN + len;
    }
    frames
}

/// What the server saw of a request: its body's bytes, or how it failed.
type Seen = Result<Vec<u8>, h2::Error>;

/// An h2 server for one connection that reads each request's body and
/// answers 200 once it ended, or never when `answer` is false; each
/// request's body is reported on the returned channel.
async fn server(answer: bool) -> (std::net::SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, seen) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut conn = h2::server::handshake(tcp).await.unwrap();
        while let Some(Ok((req, mut respond))) = conn.accept().await {
            let seen_tx = seen_tx.clone();
            tokio::spawn(async move {
                let mut body = req.into_body();
                let mut read = Vec::new();
                let outcome = loop {
                    match body.data().await {
                        Some(Ok(chunk)) => {
                            let _ = body.flow_control().release_capacity(chunk.len());
                            read.extend_from_slice(&chunk);
                        }
                        Some(Err(e)) => break Err(e),
                        None => break Ok(read),
                    }
                };
                let ended = outcome.is_ok();
                let _ = seen_tx.send(outcome);
                if answer && ended {
                    let resp = http::Response::builder().status(200).body(()).unwrap();
                    let _ = respond.send_response(resp, true);
                }
            });
        }
    });
    (addr, seen)
}

/// A client connection to `addr` whose writes are kept in the returned
/// list.
async fn client(addr: std::net::SocketAddr) -> (H2Conn, Arc<Mutex<Vec<Vec<u8>>>>) {
    let writes = Arc::new(Mutex::new(Vec::new()));
    let io = Recorded {
        tcp: TcpStream::connect(addr).await.unwrap(),
        writes: writes.clone(),
    };
    let settings = H2Settings {
        stream_window: 65_535,
        connection_window: 1 << 20,
        max_frame_size: 16_384,
    };
    let (conn, driver) = handshake(io, settings).await.unwrap();
    tokio::spawn(driver);
    (conn, writes)
}

/// A request whose body is fed by the returned sender.
fn request(addr: std::net::SocketAddr) -> (Request<FrameBody>, mpsc::Sender<Bytes>) {
    let (tx, rx) = mpsc::channel(8);
    let body = FrameBody::channel(rx, CancellationToken::new().cancelled_owned());
    let req = Request::post(format!("http://{addr}/message"))
        .body(body)
        .unwrap();
    (req, tx)
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .unwrap_or_else(|_| panic!("{what} took over 10 s"))
}

#[tokio::test]
async fn a_request_of_one_chunk_is_one_write() {
    let (addr, mut seen) = server(true).await;
    let (conn, writes) = client(addr).await;
    for packet in [&b"first"[..], b"second"] {
        let (req, tx) = request(addr);
        tx.send(Bytes::from_static(packet)).await.unwrap();
        drop(tx);
        let resp = within("the answer", conn.send(req)).await.ok().unwrap();
        assert_eq!(resp.status(), 200);
        let read = within("the body", seen.recv()).await.unwrap().unwrap();
        assert_eq!(read, packet);
    }
    let frames = frames(&writes.lock().unwrap());
    for stream in [1, 3] {
        let of_stream: Vec<&Written> = frames.iter().filter(|f| f.stream == stream).collect();
        assert_eq!(of_stream.len(), 2, "stream {stream}: {frames:?}");
        let (headers, data) = (of_stream[0], of_stream[1]);
        assert_eq!(headers.kind, HEADERS);
        assert_eq!(headers.flags & END_STREAM, 0, "the HEADERS leave it open");
        assert_eq!(data.kind, DATA);
        assert_eq!(data.flags & END_STREAM, END_STREAM, "its DATA ends it");
        assert_eq!(
            headers.write, data.write,
            "stream {stream}: HEADERS and DATA in one write: {frames:?}"
        );
    }
}

#[tokio::test]
async fn a_body_that_goes_on_is_sent_whole_past_the_window() {
    let (addr, mut seen) = server(true).await;
    let (conn, _) = client(addr).await;
    let (req, tx) = request(addr);
    // Chunks over the peer's 64 KiB window in all, the first only once
    // the request is on its way.
    let chunks: Vec<Bytes> = (0..6u8).map(|i| Bytes::from(vec![i; 30_000])).collect();
    let feed = chunks.clone();
    let feeder = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        for chunk in feed {
            tx.send(chunk).await.unwrap();
        }
    });
    let resp = within("the answer", conn.send(req)).await.ok().unwrap();
    assert_eq!(resp.status(), 200);
    assert!(within("the body's end", resp.into_body().collect())
        .await
        .unwrap()
        .to_bytes()
        .is_empty());
    feeder.await.unwrap();
    let read = within("the body", seen.recv()).await.unwrap().unwrap();
    assert_eq!(read, chunks.concat());
}

#[tokio::test]
async fn a_request_given_up_before_its_answer_resets_its_stream() {
    let (addr, mut seen) = server(false).await;
    let (conn, _) = client(addr).await;
    let (req, tx) = request(addr);
    tx.send(Bytes::from_static(b"waits")).await.unwrap();
    // The body stays open (`tx` lives), so the pipe goes on in a task of
    // its own; giving up on the answer must end it and the stream.
    let gave_up = tokio::time::timeout(Duration::from_millis(100), conn.send(req)).await;
    assert!(gave_up.is_err(), "the server never answers");
    let outcome = within("the reset", seen.recv()).await.unwrap();
    let err = outcome.expect_err("the stream was reset");
    assert_eq!(err.reason(), Some(h2::Reason::CANCEL), "{err}");
    drop(tx);
}
