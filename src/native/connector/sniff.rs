//! A cleartext connection that checks the peer's first answer.
//!
//! An h2c client that reaches a TLS port gets a TLS alert back, which
//! HTTP/2 reads as a frame header of absurd length ("frame with invalid
//! size"), or nothing at all (Go's TLS server just closes); ckit users were
//! left with such errors in grafana/alloy#6436. Looking at the first bytes
//! turns them into errors that name the cause and the fix.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What a TLS server answers an h2c preface with (rustls: an alert).
pub(super) const ANSWERED_TLS: &str =
    "the peer answered with a TLS record: the peer may expect TLS: use https:// or set client TLS";
/// A server that speaks HTTP/1 only answers the h2c preface in HTTP/1.
pub(super) const ANSWERED_HTTP1: &str = "the peer answered in HTTP/1: it does not speak \
     HTTP/2 without TLS (h2c); if it serves TLS use https://, if it takes HTTP/1.1 only set \
     client_http1";
/// Go's TLS server closes without a byte on an h2c preface, and a write
/// may see the connection closed before a read sees rustls' alert.
pub(super) const NO_ANSWER: &str = "the peer closed the connection without answering: the \
     peer may expect TLS: use https:// or set client TLS (or it is refusing connections)";

/// A TLS server that requires client certificates checks ours after the
/// handshake (TLS 1.3) and, refusing it, sends an alert and closes; our
/// first write may see the connection closed before a read sees the
/// alert, and HTTP/2 reports only "broken pipe".
pub(super) const CLOSED_AFTER_HANDSHAKE: &str = "the peer closed the connection after the TLS \
     handshake without answering: if it requires client certificates (mutual TLS), it refused \
     this side's, or that it had none: present one issued by a CA the peer trusts";

/// What the peer's first answer on a connection said was wrong, if
/// anything: set before the connection fails, so that a request failing
/// with it (HTTP/2 reports a bare "broken pipe" to the requests of a
/// failed connection) can say why.
#[derive(Clone, Default)]
pub(super) struct FirstAnswer(Arc<OnceLock<&'static str>>);

impl FirstAnswer {
    /// What went wrong, when the first answer said.
    pub(super) fn misread(&self) -> Option<&'static str> {
        self.0.get().copied()
    }

    fn set(&self, why: &'static str) {
        let _ = self.0.set(why);
    }
}

/// What a connection carries, and so what a wrong answer looks like.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Carries {
    /// HTTP/2 in cleartext (h2c).
    H2c,
    /// HTTP/1.1 in cleartext: an HTTP/1 answer is the right one.
    Http1,
    /// TLS: the handshake checked the peer; after it, a peer refusing our
    /// client certificate (TLS 1.3 tells after the handshake) is named.
    Tls,
}

/// `io`, whose answers are checked. In cleartext, a TLS record or an
/// HTTP/1 status line where an HTTP/2 frame belongs, or the end of the
/// connection before any byte, fail the first read with an error saying
/// what it most likely means; over TLS, an alert refusing our certificate
/// does. The meaning is left in [`FirstAnswer`] too.
pub(crate) struct Sniffed<T> {
    io: T,
    answered: bool,
    carries: Carries,
    verdict: FirstAnswer,
    /// The pool's allowance for this connection, given back when the
    /// connection (its socket) is dropped.
    _open: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl<T> Sniffed<T> {
    pub(super) fn new(io: T, carries: Carries, verdict: FirstAnswer) -> Self {
        Sniffed {
            io,
            answered: false,
            carries,
            verdict,
            _open: None,
        }
    }

    /// This connection, holding `permit` until it is closed.
    pub(super) fn holding(mut self, permit: Option<tokio::sync::OwnedSemaphorePermit>) -> Self {
        self._open = permit;
        self
    }

    fn fail(&self, kind: io::ErrorKind, why: &'static str) -> io::Error {
        self.verdict.set(why);
        io::Error::new(kind, why)
    }
}

/// What a first answer means, when it is not the start of the HTTP version
/// spoken (HTTP/2, or HTTP/1 when `http1`).
fn misread(first: &[u8], http1: bool) -> Option<&'static str> {
    // A TLS record: content type alert (21) or handshake (22), version 3.x.
    let tls = matches!(first, [0x15 | 0x16] | [0x15 | 0x16, 0x03, ..]);
    if tls {
        Some(ANSWERED_TLS)
    } else if !http1 && first.starts_with(b"HTTP/") {
        Some(ANSWERED_HTTP1)
    } else {
        None
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Sniffed<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.carries == Carries::Tls {
            let before = buf.filled().len();
            let r = ready!(Pin::new(&mut this.io).poll_read(cx, buf));
            if let Some(why) = r.as_ref().err().and_then(super::diagnose::tls_alert) {
                this.verdict.set(why);
            }
            this.answered |= buf.filled().len() > before;
            return Poll::Ready(r);
        }
        if this.answered || buf.remaining() == 0 {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        let before = buf.filled().len();
        let r = ready!(Pin::new(&mut this.io).poll_read(cx, buf));
        this.unanswered(r)?;
        let first = &buf.filled()[before..];
        if first.is_empty() {
            return Poll::Ready(Err(this.fail(io::ErrorKind::UnexpectedEof, NO_ANSWER)));
        }
        this.answered = true;
        match misread(first, this.carries == Carries::Http1) {
            Some(why) => Poll::Ready(Err(this.fail(io::ErrorKind::InvalidData, why))),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl<T> Sniffed<T> {
    /// A connection broken before the peer answered anything: in
    /// cleartext most likely a TLS server that refused the h2c preface
    /// (rustls and Go close the connection; a write may see that before
    /// the read sees its alert), over TLS a server that refused our client
    /// certificate.
    fn unanswered<R>(&self, r: io::Result<R>) -> io::Result<R> {
        use io::ErrorKind::*;
        let why = match self.carries {
            Carries::Tls => CLOSED_AFTER_HANDSHAKE,
            Carries::H2c | Carries::Http1 => NO_ANSWER,
        };
        match r {
            Err(e)
                if !self.answered
                    && matches!(e.kind(), BrokenPipe | ConnectionReset | ConnectionAborted) =>
            {
                self.verdict.set(why);
                Err(io::Error::new(e.kind(), format!("{e}: {why}")))
            }
            r => r,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Sniffed<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = ready!(Pin::new(&mut this.io).poll_write(cx, buf));
        Poll::Ready(this.unanswered(r))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = ready!(Pin::new(&mut this.io).poll_write_vectored(cx, bufs));
        Poll::Ready(this.unanswered(r))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = ready!(Pin::new(&mut this.io).poll_flush(cx));
        Poll::Ready(this.unanswered(r))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn first_read(answer: &[u8]) -> io::Result<usize> {
        let (mut peer, ours) = tokio::io::duplex(64);
        peer.write_all(answer).await.unwrap();
        drop(peer);
        let mut buf = [0; 64];
        let verdict = FirstAnswer::default();
        let r = Sniffed::new(ours, Carries::H2c, verdict.clone())
            .read(&mut buf)
            .await;
        if let Err(e) = &r {
            assert_eq!(verdict.misread(), Some(e.to_string()).as_deref());
        }
        r
    }

    #[tokio::test]
    async fn names_what_the_first_answer_means() {
        // A TLS alert (decode_error), as rustls answers an h2c preface.
        let err = first_read(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32])
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), ANSWERED_TLS);
        let err = first_read(b"HTTP/1.1 400 Bad Request\r\n")
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), ANSWERED_HTTP1);
        let err = first_read(b"").await.unwrap_err();
        assert_eq!(err.to_string(), NO_ANSWER);
        // An HTTP/2 SETTINGS frame passes.
        assert_eq!(first_read(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap(), 9);
    }

    #[tokio::test]
    async fn a_tls_peer_closing_before_any_answer_is_named_a_refused_certificate() {
        // What is under Sniffed here is the TLS session: a write that finds
        // the connection closed, before any byte was read.
        let (peer, ours) = tokio::io::duplex(64);
        drop(peer);
        let verdict = FirstAnswer::default();
        let mut tls = Sniffed::new(ours, Carries::Tls, verdict.clone());
        let err = tls.write_all(b"PRI * HTTP/2.0").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        assert!(err.to_string().ends_with(CLOSED_AFTER_HANDSHAKE), "{err}");
        assert_eq!(verdict.misread(), Some(CLOSED_AFTER_HANDSHAKE));
        // Once the peer has answered, a broken connection is just that.
        let (mut peer, ours) = tokio::io::duplex(64);
        let mut tls = Sniffed::new(ours, Carries::Tls, FirstAnswer::default());
        peer.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
        let mut buf = [0; 64];
        assert_eq!(tls.read(&mut buf).await.unwrap(), 9);
        drop(peer);
        let err = tls.write_all(b"more").await.unwrap_err();
        assert!(!err.to_string().contains(CLOSED_AFTER_HANDSHAKE), "{err}");
    }
}
