//! The HTTP body type gossiphttp sends, on requests and responses alike.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tokio_util::sync::WaitForCancellationFutureOwned;

/// A body of already-encoded frames: nothing, one buffer (a `/message`
/// batch), or a channel fed by a stream connection's writes, which ends when
/// the writer closes or the transport shuts down.
pub struct FrameBody(Kind);

enum Kind {
    Empty,
    Once(Option<Bytes>),
    Channel {
        rx: mpsc::Receiver<Bytes>,
        shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    },
}

impl FrameBody {
    /// An empty body.
    pub fn empty() -> Self {
        FrameBody(Kind::Empty)
    }

    /// A body of one buffer.
    pub fn once(bytes: Bytes) -> Self {
        FrameBody(Kind::Once(Some(bytes)))
    }

    pub(crate) fn channel(
        rx: mpsc::Receiver<Bytes>,
        shutdown: WaitForCancellationFutureOwned,
    ) -> Self {
        FrameBody(Kind::Channel {
            rx,
            shutdown: Box::pin(shutdown),
        })
    }
}

impl Body for FrameBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.get_mut().0 {
            Kind::Empty => Poll::Ready(None),
            Kind::Once(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Kind::Channel { rx, shutdown } => {
                if let Poll::Ready(b) = rx.poll_recv(cx) {
                    return Poll::Ready(b.map(|b| Ok(Frame::data(b))));
                }
                // Shutdown ends the body even while its writer is alive.
                if shutdown.as_mut().poll(cx).is_ready() {
                    rx.close();
                    return Poll::Ready(None);
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Empty => true,
            Kind::Once(b) => b.is_none(),
            // Its writer is gone and nothing is left: the chunk just taken
            // was the last, so it carries the end of the stream itself
            // (the client, and hyper's server, set END_STREAM on that DATA
            // frame) instead of an empty DATA frame after it. A request of
            // one chunk, ended at once, is then a HEADERS and a DATA frame.
            Kind::Channel { rx, .. } => rx.is_closed() && rx.is_empty(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Once(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Kind::Once(None) => SizeHint::with_exact(0),
            Kind::Channel { .. } => SizeHint::default(),
        }
    }
}

impl std::fmt::Debug for FrameBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.0 {
            Kind::Empty => "empty",
            Kind::Once(_) => "once",
            Kind::Channel { .. } => "channel",
        };
        f.debug_tuple("FrameBody").field(&kind).finish()
    }
}
