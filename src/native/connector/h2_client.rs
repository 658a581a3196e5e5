//! HTTP/2 requests on h2 itself rather than through hyper's client, so
//! that a request's HEADERS and its body's first DATA frame leave in one
//! write.
//!
//! hyper's client hands a body to a pipe that sends nothing before the
//! stream has flow-control capacity, and h2 grants a new stream none until
//! its connection task opens it, which is when that task writes the
//! HEADERS. So through hyper every `/message` request was two writes (the
//! HEADERS, then the DATA once the pipe, a task of its own, woke for the
//! capacity), each a trip through the kernel's TCP on both ends
//! (benches/RESULTS.md, "One write per request"). Here the body's first
//! chunk goes to h2 along with the headers: h2 keeps a chunk the window
//! cannot take yet and sends it as the window opens, and the connection
//! task writes both frames at once. Later chunks wait for capacity, as
//! hyper's do, so a body never has more than one chunk waiting in h2.

use crate::native::body::FrameBody;
use bytes::Bytes;
use h2::client::SendRequest;
use h2::{RecvStream, SendStream};
use http_body::{Body, Frame};
use hyper::header::{HeaderValue, CONTENT_LENGTH};
use hyper::{Method, Request, Response};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

/// An HTTP/2 client connection's request handle. Clones share the
/// connection; it closes once the last clone and its last stream are gone.
#[derive(Clone)]
pub(super) struct H2Conn {
    sender: SendRequest<Bytes>,
    /// Set when the connection's driver has ended.
    closed: Arc<AtomicBool>,
    /// Dropped with the last clone, which tells the driver to let go of
    /// its own request handle (see [`handshake`]).
    _in_use: Arc<oneshot::Sender<Infallible>>,
}

/// Settings for a new connection.
pub(super) struct H2Settings {
    pub stream_window: u32,
    pub connection_window: u32,
    pub max_frame_size: u32,
}

/// The defaults hyper's client gave the h2 builder, which these
/// connections keep: the header list it accepts, how much it buffers per
/// stream, how many streams it opens before the peer's SETTINGS arrive,
/// and how many streams its own errors may reset.
const MAX_HEADER_LIST_SIZE: u32 = 16 << 10;
const MAX_SEND_BUFFER_SIZE: usize = 1 << 20;
const INITIAL_MAX_SEND_STREAMS: usize = 100;
const MAX_LOCAL_ERROR_RESET_STREAMS: usize = 1024;

/// Speaks HTTP/2's client handshake on `io`: the connection's request
/// handle, and the future that drives the connection (to be spawned).
pub(super) async fn handshake<T>(
    io: T,
    settings: H2Settings,
) -> Result<(H2Conn, impl Future<Output = Result<(), h2::Error>>), h2::Error>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = h2::client::Builder::new()
        .initial_max_send_streams(INITIAL_MAX_SEND_STREAMS)
        .initial_window_size(settings.stream_window)
        .initial_connection_window_size(settings.connection_window)
        .max_frame_size(settings.max_frame_size)
        .max_header_list_size(MAX_HEADER_LIST_SIZE)
        .max_send_buffer_size(MAX_SEND_BUFFER_SIZE)
        .max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESET_STREAMS))
        .enable_push(false)
        .handshake::<T, Bytes>(io)
        .await?;
    let closed = Arc::new(AtomicBool::new(false));
    let (in_use, unused) = oneshot::channel();
    let driver = drive(connection, sender.clone(), unused, closed.clone());
    let conn = H2Conn {
        sender,
        closed,
        _in_use: Arc::new(in_use),
    };
    Ok((conn, driver))
}

/// Drives `connection` to its end and says how it ended: `Err` for an
/// error, and for a peer that closed the connection without a `GOAWAY`
/// (a killed process). h2 ends a connection at the peer's end of file
/// without an error either way; the difference shows in what a request
/// handle would be told (as hyper's client tells it apart), so the driver
/// keeps one, `watch`, until `unused` says the connection's users are
/// gone: a connection lives as long as any handle does.
async fn drive<T: AsyncRead + AsyncWrite + Unpin>(
    connection: h2::client::Connection<T, Bytes>,
    watch: SendRequest<Bytes>,
    unused: oneshot::Receiver<Infallible>,
    closed: Arc<AtomicBool>,
) -> Result<(), h2::Error> {
    let mut connection = std::pin::pin!(connection);
    let mut unused = std::pin::pin!(unused);
    let mut watch = Some(watch);
    let ended = std::future::poll_fn(|cx| {
        if watch.is_some() && unused.as_mut().poll(cx).is_ready() {
            watch = None;
        }
        connection.as_mut().poll(cx)
    })
    .await;
    closed.store(true, Ordering::Release);
    ended?;
    match watch.map(|mut watch| std::future::poll_fn(move |cx| watch.poll_ready(cx))) {
        Some(ready) => match ready.await {
            Err(e) if e.reason() != Some(h2::Reason::NO_ERROR) => Err(e),
            _ => Ok(()),
        },
        None => Ok(()),
    }
}

/// Why a request failed, and whether it could go again elsewhere.
pub(super) enum SendError {
    /// It never left: the connection was gone before the request was
    /// handed to it. Here it is back, for a fresh connection.
    Unsent(h2::Error, Box<Request<FrameBody>>),
    /// It left (or may have), and failed.
    Failed(h2::Error),
}

impl H2Conn {
    /// Whether the connection has ended (its requests would fail).
    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Sends `req` and returns the answer's head once it arrives, its
    /// body to be read. The request body goes on being sent after that
    /// (a stream's does), until it ends; dropping the returned future
    /// before the answer came resets the stream.
    pub(super) async fn send(
        &self,
        req: Request<FrameBody>,
    ) -> Result<Response<RecvBody>, SendError> {
        let mut sender = match self.sender.clone().ready().await {
            Ok(sender) => sender,
            Err(e) => return Err(SendError::Unsent(e, Box::new(req))),
        };
        let (parts, body) = req.into_parts();
        let mut head = Request::new(());
        *head.method_mut() = parts.method.clone();
        *head.uri_mut() = parts.uri.clone();
        *head.version_mut() = parts.version;
        *head.headers_mut() = parts.headers.clone();
        // hyper's rule, which these requests were sent by before: a body
        // of known length says so, unless it is empty on a method whose
        // requests carry none.
        if let Some(len) = body.size_hint().exact() {
            let carries_body = !matches!(
                parts.method,
                Method::GET | Method::HEAD | Method::DELETE | Method::CONNECT
            );
            if len != 0 || carries_body {
                head.headers_mut()
                    .entry(CONTENT_LENGTH)
                    .or_insert_with(|| HeaderValue::from(len));
            }
        }
        let end_of_stream = body.is_end_stream();
        let (response, stream) = match sender.send_request(head, end_of_stream) {
            Ok(sent) => sent,
            Err(e) => {
                return Err(SendError::Unsent(
                    e,
                    Box::new(Request::from_parts(parts, body)),
                ));
            }
        };
        // Told once the answer came; dropped untold when this future is
        // dropped before it, which resets the stream (`until_cancelled`).
        let (answered, cancelled) = oneshot::channel();
        if !end_of_stream {
            let mut pipe = Pipe::new(body, stream);
            // The first poll hands the body's first chunk to h2 before
            // its connection task writes the HEADERS (see the module's
            // doc); only a body that goes on needs a task of its own.
            let first = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut pipe).poll(cx))).await;
            if first.is_pending() {
                tokio::spawn(pipe.until_cancelled(cancelled));
            }
        }
        let response = response.await.map_err(SendError::Failed)?;
        let _ = answered.send(());
        Ok(response.map(RecvBody::new))
    }
}

/// Sends a request body's frames on its stream, as hyper's client does,
/// except that the first chunk does not wait for flow-control capacity
/// (see the module's doc).
struct Pipe {
    body: FrameBody,
    stream: SendStream<Bytes>,
    /// A chunk taken from the body, waiting for capacity to be sent, and
    /// whether it is the body's last.
    waiting: Option<(Bytes, bool)>,
    /// No chunk has been handed to h2 yet.
    first: bool,
}

impl Pipe {
    fn new(body: FrameBody, stream: SendStream<Bytes>) -> Self {
        Pipe {
            body,
            stream,
            waiting: None,
            first: true,
        }
    }

    /// Runs the pipe to its end, or resets the stream if `cancelled`
    /// closes before the request's answer came.
    async fn until_cancelled(mut self, cancelled: oneshot::Receiver<()>) {
        let mut cancelled = std::pin::pin!(cancelled);
        let mut answered = false;
        std::future::poll_fn(|cx| {
            if !answered {
                match cancelled.as_mut().poll(cx) {
                    Poll::Ready(Ok(())) => answered = true,
                    Poll::Ready(Err(_)) => {
                        self.stream.send_reset(h2::Reason::CANCEL);
                        return Poll::Ready(());
                    }
                    Poll::Pending => {}
                }
            }
            Pin::new(&mut self).poll(cx).map(|_| ())
        })
        .await
    }
}

impl Future for Pipe {
    /// `Err` once h2 refused a frame (the stream was reset, or the
    /// connection is gone): the answer's future reports the failure.
    type Output = Result<(), h2::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let me = self.get_mut();
        loop {
            // A reset from the peer ends the pipe even while it waits for
            // the body or for capacity.
            if let Poll::Ready(reason) = me.stream.poll_reset(cx) {
                return Poll::Ready(reason.map(|_| ()));
            }
            if let Some((chunk, last)) = me.waiting.take() {
                if !std::mem::take(&mut me.first) {
                    while me.stream.capacity() == 0 {
                        match me.stream.poll_capacity(cx) {
                            Poll::Ready(Some(Ok(_))) => {}
                            Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                            // The stream is no longer sending: nothing more
                            // goes on it.
                            Poll::Ready(None) => return Poll::Ready(Ok(())),
                            Poll::Pending => {
                                me.waiting = Some((chunk, last));
                                return Poll::Pending;
                            }
                        }
                    }
                }
                me.stream.send_data(chunk, last)?;
                if last {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            match ready!(Pin::new(&mut me.body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    // A FrameBody has data frames only.
                    let Ok(chunk) = frame.into_data() else {
                        continue;
                    };
                    let last = me.body.is_end_stream();
                    if chunk.is_empty() && !last {
                        continue;
                    }
                    // A claim on the window for the chunk; h2 raises it to
                    // the chunk's length once the chunk is handed over.
                    me.stream.reserve_capacity(1);
                    me.waiting = Some((chunk, last));
                }
                Some(Err(never)) => match never {},
                None => {
                    me.stream.send_data(Bytes::new(), true)?;
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

/// An answer's body, read from h2: what is read is given back to the
/// peer's window at once, as hyper's bodies do.
pub(crate) struct RecvBody {
    stream: RecvStream,
    data_done: bool,
}

impl RecvBody {
    fn new(stream: RecvStream) -> Self {
        RecvBody {
            stream,
            data_done: false,
        }
    }
}

impl Body for RecvBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let me = self.get_mut();
        if !me.data_done {
            match ready!(me.stream.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = me.stream.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => me.data_done = true,
            }
        }
        match ready!(me.stream.poll_trailers(cx)) {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.stream.is_end_stream()
    }
}
