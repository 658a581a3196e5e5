//! A pooled connection that has been quiet costs nothing when it is used
//! again: the client sends its packet and no HTTP/2 `PING` with it. In a
//! cluster at rest a member sends a given peer a packet a minute or so, so
//! a keep-alive ping on the first request after a quiet spell (hyper's
//! client, with a keep-alive interval, pings then) doubled the frames of
//! nearly every packet. Such a request is its HEADERS and one DATA frame
//! that ends the stream. What the peer's HTTP/2 stack reads is counted on
//! the wire, not taken from the transport.

mod common;

use common::within;
use gossiphttp::{Options, Transport};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const PING: u8 = 0x6;
const ACK: u8 = 0x1;

/// Counts the HTTP/2 frames a server reads, by type, as its bytes go by.
#[derive(Default)]
struct FrameCounts {
    pings: AtomicUsize,
    headers: AtomicUsize,
    data: AtomicUsize,
}

/// A server's end of a connection that parses the frame headers it reads
/// (after the client preface) and counts them in `counts`.
struct Tap {
    tcp: TcpStream,
    counts: Arc<FrameCounts>,
    /// Bytes of the preface still to skip.
    preface_left: usize,
    /// The frame header being read, and the payload bytes still to skip.
    header: Vec<u8>,
    payload_left: usize,
}

impl Tap {
    fn observe(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.preface_left > 0 {
                let n = self.preface_left.min(bytes.len());
                self.preface_left -= n;
                bytes = &bytes[n..];
            } else if self.payload_left > 0 {
                let n = self.payload_left.min(bytes.len());
                self.payload_left -= n;
                bytes = &bytes[n..];
            } else {
                let n = (FRAME_HEADER_LEN - self.header.len()).min(bytes.len());
                self.header.extend_from_slice(&bytes[..n]);
                bytes = &bytes[n..];
                if self.header.len() == FRAME_HEADER_LEN {
                    let h = std::mem::take(&mut self.header);
                    self.payload_left =
                        (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
                    match h[3] {
                        PING if h[4] & ACK == 0 => {
                            self.counts.pings.fetch_add(1, Ordering::SeqCst);
                        }
                        DATA => {
                            self.counts.data.fetch_add(1, Ordering::SeqCst);
                        }
                        HEADERS => {
                            self.counts.headers.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

impl AsyncRead for Tap {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.tcp).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let read = buf.filled()[before..].to_vec();
            this.observe(&read);
        }
        polled
    }
}

impl AsyncWrite for Tap {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

/// A bare HTTP/2 server answering every request `200` once its body
/// ended, counting the frames it reads on all its connections.
async fn tapped_peer() -> (String, Arc<FrameCounts>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let counts = Arc::new(FrameCounts::default());
    let accepted = Arc::new(AtomicUsize::new(0));
    let (frame_counts, connections) = (counts.clone(), accepted.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            connections.fetch_add(1, Ordering::SeqCst);
            let tap = Tap {
                tcp,
                counts: frame_counts.clone(),
                preface_left: PREFACE_LEN,
                header: Vec::new(),
                payload_left: 0,
            };
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(tap).await else {
                    return;
                };
                while let Some(Ok((req, mut respond))) = conn.accept().await {
                    tokio::spawn(async move {
                        let mut body = req.into_body();
                        while let Some(Ok(chunk)) = body.data().await {
                            let _ = body.flow_control().release_capacity(chunk.len());
                        }
                        let resp = http::Response::builder().status(200).body(()).unwrap();
                        let _ = respond.send_response(resp, true);
                    });
                }
            });
        }
    });
    (addr, counts, accepted)
}

/// hyper's client pinged a connection that had read nothing for its
/// keep-alive interval (20 s) when the next request opened on it. The
/// quiet spell is the runtime's clock moved on by hand, so it takes no real
/// time; the requests themselves run on the real clock.
#[tokio::test]
async fn a_request_after_a_quiet_spell_carries_no_ping() {
    let (addr, counts, accepted) = tapped_peer().await;
    let mut options = Options::default();
    options.message_body_linger = Duration::ZERO;
    let transport = Transport::new(options).unwrap().0;
    within("first send", transport.send("a".into(), &addr))
        .await
        .unwrap();
    // Longer than any keep-alive interval a client would use, shorter
    // than the pool's idle timeout (180 s), so the connection is reused.
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(120)).await;
    tokio::time::resume();
    within("second send", transport.send("b".into(), &addr))
        .await
        .unwrap();
    // A ping would go out with the request, before its answer.
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "the connection was reused"
    );
    assert_eq!(
        counts.headers.load(Ordering::SeqCst),
        2,
        "two requests read"
    );
    assert_eq!(counts.pings.load(Ordering::SeqCst), 0, "pings read");
    // Each request of one packet is its HEADERS and one DATA frame that
    // also ends the stream (no empty DATA frame after it).
    assert_eq!(counts.data.load(Ordering::SeqCst), 2, "DATA frames read");
    transport.shutdown().await;
}
