//! A connection's first bytes must arrive in time.
//!
//! hyper has no timeout for the HTTP/2 preface, so a peer could open
//! connections and trickle them a byte at a time, holding server resources
//! forever (slow loris). This wrapper fails the read with `TimedOut` if the
//! first [`FIRST_BYTES`] bytes have not all arrived by the deadline; after
//! that it is a plain pass-through.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// The HTTP/2 connection preface is 24 bytes; any real HTTP/1.x request
/// line and headers are longer.
pub(crate) const FIRST_BYTES: usize = 24;

pub(crate) struct FirstBytesDeadline<T> {
    io: T,
    remaining: usize,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<T> FirstBytesDeadline<T> {
    pub(crate) fn new(io: T, timeout: Duration) -> Self {
        FirstBytesDeadline {
            io,
            remaining: FIRST_BYTES,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
        }
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
}
