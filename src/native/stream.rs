//! A stream connection: `AsyncRead + AsyncWrite` over one `/stream` request.
//!
//! Writes become frames on our body; reads reassemble the byte pipe from the
//! peer's frames, wherever their boundaries fall. Frame boundaries carry no
//! meaning on a stream, so a frame of any legal size is passed through as its
//! bytes arrive, never buffered whole.

use super::body::FrameBody;
use super::metrics::Metrics;
use super::write_buffers::WriteBuffers;
use crate::codec::{StreamDecoder, MAX_SHORT_PAYLOAD, SHORT_HEADER_LEN};
use crate::contract::stream_frames;
use bytes::{Bytes, BytesMut};
use http_body::Body;
use http_body_util::combinators::UnsyncBoxBody;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, PollSender, WaitForCancellationFutureOwned};

/// The peer's half of a stream: an HTTP body of frames.
pub(crate) type IncomingBody = UnsyncBoxBody<Bytes, crate::BoxError>;

/// How many encoded writes may wait for HTTP/2 flow control per stream.
/// Bounds a stream's send-side memory to this many writes of
/// [`MAX_WRITE`] bytes (512 KiB), held only while the peer is slower than
/// the writer.
const WRITE_QUEUE: usize = 4;

/// The most one write takes. It becomes one HTTP/2 DATA chunk holding as
/// many `0xCC` frames as it needs: the contract has a writer use `0xCC` for
/// anything that fits (older peers know no other), but a 64 KiB write (what
/// `tokio::io::copy` and most buffers produce) split into a 65,535-byte frame
/// and a separate 1-byte write would cost two channel sends, two DATA frames
/// and two wake-ups per 64 KiB.
pub(crate) const MAX_WRITE: usize = 128 << 10;

/// What one write of [`MAX_WRITE`] bytes takes encoded: the pool's buffer
/// size.
const MAX_WRITE_ENCODED: usize =
    MAX_WRITE + MAX_WRITE.div_ceil(MAX_SHORT_PAYLOAD) * SHORT_HEADER_LEN;

/// The channel a stream's writes go through, and the HTTP body (request
/// or response) that sends them, which ends at transport shutdown.
pub(crate) fn write_channel(shutdown: &CancellationToken) -> (mpsc::Sender<Bytes>, FrameBody) {
    let (tx, rx) = mpsc::channel(WRITE_QUEUE);
    (
        tx,
        FrameBody::channel(rx, shutdown.clone().cancelled_owned()),
    )
}

/// What a stream needs from its transport, and no more: shared by every
/// stream of one transport. Cheap to clone.
#[derive(Clone)]
pub(crate) struct StreamContext {
    metrics: Metrics,
    /// Buffers large writes are encoded into, reused.
    write_buffers: Arc<WriteBuffers>,
    idle_timeout: Duration,
    shutdown: CancellationToken,
    /// The transport's advertised address, once set.
    local_addr: Arc<Mutex<Option<SocketAddr>>>,
}

impl StreamContext {
    pub(crate) fn new(
        metrics: Metrics,
        idle_timeout: Duration,
        shutdown: CancellationToken,
        local_addr: Arc<Mutex<Option<SocketAddr>>>,
    ) -> Self {
        StreamContext {
            metrics,
            write_buffers: WriteBuffers::new(MAX_WRITE_ENCODED),
            idle_timeout,
            shutdown,
            local_addr,
        }
    }
}

/// A full-duplex stream connection to a peer, from [`Transport::dial`] or
/// [`Transport::streams`].
///
/// Reading returns the bytes the peer wrote, in order, and `Ok(0)` once the
/// peer ends its side (ending its body, or resetting the stream with
/// `NO_ERROR` or `CANCEL` after whole frames, as Go's dialer does). Writing
/// sends bytes to the peer; `shutdown()` ends our side (the peer reads
/// end-of-stream). Dropping the connection ends both.
///
/// Cancel safety: `read` is cancel safe (decoded bytes wait for the next
/// read), and so is `write`: a write that has not completed sent nothing.
/// `read_exact` and `write_all` are not, as with any `AsyncRead` and
/// `AsyncWrite`: cancelled midway, they lose track of what was done.
///
/// # Panics
///
/// Reading outside a tokio runtime with its timer enabled panics (the idle
/// timeout is a tokio timer).
///
/// [`Transport::dial`]: crate::Transport::dial
/// [`Transport::streams`]: crate::Transport::streams
pub struct StreamConn {
    body: IncomingBody,
    decoder: StreamDecoder,
    /// The body chunk being decoded: payload is sliced out of it, not
    /// copied.
    rx_chunk: Bytes,
    /// A frame header split across body chunks, put back together.
    rx_buf: BytesMut,
    /// Decoded payload not yet read.
    pending: Bytes,
    read_done: bool,
    writer: Option<PollSender<Bytes>>,
    write_buffers: Arc<WriteBuffers>,
    shutdown: CancellationToken,
    shutdown_wait: Pin<Box<WaitForCancellationFutureOwned>>,
    local_addr: Option<SocketAddr>,
    remote_addr: SocketAddr,
    metrics: Metrics,
    idle_timeout: Duration,
    /// Fires after `idle_timeout` without bytes in either direction.
    idle: Pin<Box<Sleep>>,
    /// Held while an incoming stream is open (the `max_streams` limit).
    _permit: Option<OwnedSemaphorePermit>,
}

impl StreamConn {
    /// Wraps the peer's body and the sender of [`write_channel`], with the
    /// transport's shutdown signal, metrics and limits.
    pub(crate) fn new(
        body: IncomingBody,
        writer: mpsc::Sender<Bytes>,
        remote_addr: SocketAddr,
        permit: Option<OwnedSemaphorePermit>,
        ctx: &StreamContext,
    ) -> StreamConn {
        let metrics = ctx.metrics.clone();
        let shutdown = &ctx.shutdown;
        let local_addr = *ctx.local_addr.lock().unwrap();
        let idle_timeout = ctx.idle_timeout;
        metrics.streams.inc();
        StreamConn {
            body,
            decoder: StreamDecoder::new(),
            rx_chunk: Bytes::new(),
            rx_buf: BytesMut::new(),
            pending: Bytes::new(),
            read_done: false,
            writer: Some(PollSender::new(writer)),
            write_buffers: ctx.write_buffers.clone(),
            shutdown: shutdown.clone(),
            shutdown_wait: Box::pin(shutdown.clone().cancelled_owned()),
            local_addr,
            remote_addr,
            metrics,
            idle_timeout,
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
            _permit: permit,
        }
    }

    fn touch(&mut self) {
        let deadline = Instant::now() + self.idle_timeout;
        // Resetting the timer on every frame is cheap, but skip it while
        // the deadline is still nearly fresh.
        if deadline - self.idle.deadline() > self.idle_timeout / 16 {
            self.idle.as_mut().reset(deadline);
        }
    }

    /// The peer's address: the TCP address a server saw, or the address a
    /// client dialed.
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote_addr
    }

    /// This transport's advertised address, once
    /// [`final_advertise_addr`](crate::Transport::final_advertise_addr) set it.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    fn read_error(&mut self, kind: io::ErrorKind, msg: String) -> io::Error {
        self.read_done = true;
        self.metrics.stream_rx_packets_failed.inc();
        io::Error::new(kind, msg)
    }

    /// Moves decoded payload into `pending`, pulling body frames as needed.
    /// Ready(Ok(())) with `pending` empty means end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if !self.pending.is_empty() || self.read_done {
                return Poll::Ready(Ok(()));
            }
            let frames_before = self.decoder.frames_started();
            let decoded = self
                .decoder
                .decode_chunk(&mut self.rx_buf, &mut self.rx_chunk);
            self.metrics
                .stream_rx_packets
                .inc_by(self.decoder.frames_started() - frames_before);
            match decoded {
                Ok(Some(chunk)) => {
                    self.metrics.stream_rx_bytes.inc_by(chunk.len() as u64);
                    self.pending = chunk;
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    let e = self.read_error(io::ErrorKind::InvalidData, e.to_string());
                    return Poll::Ready(Err(e));
                }
            }
            if self.shutdown_wait.as_mut().poll(cx).is_ready() {
                let e = self.read_error(
                    io::ErrorKind::ConnectionAborted,
                    "transport shut down".into(),
                );
                return Poll::Ready(Err(e));
            }
            let frame = match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(frame) => frame,
                Poll::Pending => {
                    if self.idle.as_mut().poll(cx).is_ready() {
                        let e = self.read_error(
                            io::ErrorKind::TimedOut,
                            format!("stream idle for {:?}", self.idle_timeout),
                        );
                        return Poll::Ready(Err(e));
                    }
                    return Poll::Pending;
                }
            };
            match frame {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        // decode_chunk() only asks for more once it has
                        // used up the chunk before.
                        debug_assert!(self.rx_chunk.is_empty());
                        self.rx_chunk = data;
                        self.touch();
                    }
                }
                Some(Err(e)) if is_graceful_reset(&*e) => return self.poll_end(),
                Some(Err(e)) => {
                    let e = self.read_error(
                        io::ErrorKind::ConnectionReset,
                        format!("stream broken: {}", with_causes(&*e)),
                    );
                    return Poll::Ready(Err(e));
                }
                None => return self.poll_end(),
            }
        }
    }

    /// The peer ended its side: end of stream, or an error if it ended in
    /// the middle of a frame.
    fn poll_end(&mut self) -> Poll<io::Result<()>> {
        self.read_done = true;
        if let Err(e) = self.decoder.decode_eof(&mut self.rx_buf) {
            let e = self.read_error(io::ErrorKind::UnexpectedEof, e.to_string());
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(()))
    }
}

/// An error and its causes, `: `-separated (hyper's own text alone, "error
/// reading a body from connection", does not say what happened).
pub(crate) fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Whether a body error is the peer resetting the stream with `NO_ERROR` or
/// `CANCEL`: how HTTP/2 clients close a stream they are done with. Go's
/// dialer cancels its request when its connection is closed, which resets
/// the stream with `CANCEL` without ending the request body first, so that
/// is a normal close; a broken connection or any other reason is not.
fn is_graceful_reset(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(err) = cause {
        if let Some(h2) = err.downcast_ref::<h2::Error>() {
            return h2.is_reset()
                && h2.is_remote()
                && matches!(h2.reason(), Some(h2::Reason::NO_ERROR | h2::Reason::CANCEL));
        }
        cause = err.source();
    }
    false
}

impl AsyncRead for StreamConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_fill(cx))?;
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for StreamConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.shutdown.is_cancelled() {
            this.metrics.stream_tx_packets_failed.inc();
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "transport shut down",
            )));
        }
        let Some(writer) = this.writer.as_mut() else {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "stream already shut down for writing",
            )));
        };
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if ready!(writer.poll_reserve(cx)).is_err() {
            this.metrics.stream_tx_packets_failed.inc();
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "peer closed the stream",
            )));
        }
        let n = data.len().min(MAX_WRITE);
        let frames = n.div_ceil(MAX_SHORT_PAYLOAD);
        let mut chunk = this.write_buffers.take(n + frames * SHORT_HEADER_LEN);
        for frame in stream_frames(n, MAX_SHORT_PAYLOAD) {
            chunk.extend_from_slice(frame.header());
            chunk.extend_from_slice(&data[frame.payload]);
        }
        if writer.send_item(chunk.freeze()).is_err() {
            this.metrics.stream_tx_packets_failed.inc();
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "peer closed the stream",
            )));
        }
        this.touch();
        this.metrics.stream_tx_packets.inc_by(frames as u64);
        this.metrics.stream_tx_bytes.inc_by(n as u64);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Frames go to HTTP/2 as soon as they are written; there is nothing
        // held back to flush.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Dropping the sender ends our body once queued frames are sent.
        self.get_mut().writer = None;
        Poll::Ready(Ok(()))
    }
}

impl Drop for StreamConn {
    fn drop(&mut self) {
        self.metrics.streams.dec();
    }
}

impl std::fmt::Debug for StreamConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamConn")
            .field("remote_addr", &self.remote_addr)
            .field("local_addr", &self.local_addr)
            .field("read_done", &self.read_done)
            .field("write_open", &self.writer.is_some())
            .finish()
    }
}
