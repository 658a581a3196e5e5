//! A connection's first bytes must arrive in time.
//!
//! hyper has no timeout for the HTTP/2 preface, so a peer could open
//! connections and trickle them a byte at a time, holding server resources
//! forever (slow loris). This wrapper fails the read with `TimedOut` if the
//! first [`FIRST_BYTES`] bytes have not all arrived by the deadline; after
//! that it is a plain pass-through.
//!
//! On a cleartext (h2c) port it also notes a peer that opens with a TLS
//! handshake, so the operator reads "TLS on an h2c port" rather than an
//! HTTP parse error (see [`TLS_ON_CLEARTEXT`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// The HTTP/2 connection preface is 24 bytes; any real HTTP/1.x request
/// line and headers are longer.
pub(crate) const FIRST_BYTES: usize = 24;

/// The first byte of every TLS connection: a handshake record. No HTTP/1.x
/// request line and not the HTTP/2 preface (`PRI * ...`) starts with it.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// What to tell the operator when a peer opened a TLS handshake on a
/// cleartext (h2c) port: TLS on one side only.
pub(crate) const TLS_ON_CLEARTEXT: &str =
    "the peer opened a TLS handshake on this cleartext (h2c) port: serve TLS here \
     (--tls-cert/--tls-key, Options::server_tls) or have the peer use http:// \
     (drop --tls / client TLS)";

pub(crate) struct FirstBytesDeadline<T> {
    io: T,
    remaining: usize,
    deadline: Option<Pin<Box<Sleep>>>,
    /// Set when the connection opened with a TLS handshake record (only
    /// watched on cleartext ports).
    tls_hello: Option<Arc<AtomicBool>>,
}

impl<T> FirstBytesDeadline<T> {
    pub(crate) fn new(io: T, timeout: Duration) -> Self {
        FirstBytesDeadline {
            io,
            remaining: FIRST_BYTES,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
            tls_hello: None,
        }
    }

    /// For a cleartext port: sets `seen` when the connection opens with a
    /// TLS handshake. The bytes still go to the HTTP server, whose answer
    /// (an HTTP/1 `400`) tells the peer's TLS stack it met no TLS server.
    pub(crate) fn watching_for_tls(mut self, seen: Arc<AtomicBool>) -> Self {
        self.tls_hello = Some(seen);
        self
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FirstBytesDeadline<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len() - before;
                if this.remaining == FIRST_BYTES
                    && buf.filled().get(before) == Some(&TLS_HANDSHAKE_RECORD)
                {
                    if let Some(seen) = &this.tls_hello {
                        seen.store(true, Ordering::Relaxed);
                    }
                }
                this.remaining = this.remaining.saturating_sub(n);
                if this.remaining == 0 || n == 0 {
                    this.deadline = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let expired = this
                    .deadline
                    .as_mut()
                    .is_some_and(|d| d.as_mut().poll(cx).is_ready());
                if expired {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the peer did not send its first request bytes in time",
                    )));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FirstBytesDeadline<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_trickling_peer_is_cut_off_and_a_prompt_one_is_not() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut guarded = FirstBytesDeadline::new(server, Duration::from_secs(10));
        client.write_all(b"PRI * HTTP/2.0").await.unwrap(); // 14 of 24 bytes
        let mut buf = [0u8; 64];
        assert_eq!(guarded.read(&mut buf).await.unwrap(), 14);
        let err = guarded.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);

        let (mut client, server) = tokio::io::duplex(64);
        let mut guarded = FirstBytesDeadline::new(server, Duration::from_secs(10));
        client
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(guarded.read(&mut buf).await.unwrap(), 24);
        tokio::time::sleep(Duration::from_secs(60)).await;
        client.write_all(b"later").await.unwrap();
        assert_eq!(guarded.read(&mut buf).await.unwrap(), 5);
    }

    #[tokio::test]
    async fn a_tls_hello_on_a_cleartext_port_is_noted_and_its_bytes_pass_through() {
        let mut buf = [0u8; 64];
        let seen = Arc::new(AtomicBool::new(false));
        let (mut client, server) = tokio::io::duplex(64);
        let mut guarded =
            FirstBytesDeadline::new(server, Duration::from_secs(10)).watching_for_tls(seen.clone());
        client.write_all(&[0x16, 0x03, 0x01, 0x00]).await.unwrap();
        assert_eq!(guarded.read(&mut buf).await.unwrap(), 4);
        assert!(seen.load(Ordering::Relaxed));

        // Only the connection's first byte counts.
        let seen = Arc::new(AtomicBool::new(false));
        let (mut client, server) = tokio::io::duplex(64);
        let mut guarded =
            FirstBytesDeadline::new(server, Duration::from_secs(10)).watching_for_tls(seen.clone());
        client.write_all(b"P").await.unwrap();
        assert_eq!(guarded.read(&mut buf).await.unwrap(), 1);
        client.write_all(&[0x16]).await.unwrap();
        assert_eq!(guarded.read(&mut buf).await.unwrap(), 1);
        assert!(!seen.load(Ordering::Relaxed));
    }
}
