//! What the served endpoints answer, request by request, to raw HTTP
//! clients (PROTOCOL.md, "What the reference does, observed"): `505` for
//! HTTP/1.1, `400` for a wrong content type or a malformed body (frames
//! before the bad one delivered), `200` with every frame delivered
//! byte-exact, `405`/`404` for other methods and paths, `503` after
//! shutdown; `/stream` answers its headers before the client writes a byte;
//! and the metrics count what happened.
//!
//! `statuses`: the status of each request (HTTP/1.1, content types, paths,
//! malformed, oversized and trickled bodies, shutdown). `stream`: the
//! `/stream` byte pipe both ways. `metrics`: what the counters and gauges
//! say afterwards.

#[path = "../common/mod.rs"]
mod common;
mod metrics;
mod statuses;
mod stream;

use bytes::Bytes;
use common::within;
use gossiphttp::MESSAGE_PATH;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http2::SendRequest;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const CT: &str = "application/x.ckit";

type ReqBody = BoxBody<Bytes, Infallible>;

/// A body of fixed bytes.
fn full(bytes: &[u8]) -> ReqBody {
    Full::new(Bytes::copy_from_slice(bytes)).boxed()
}

/// A body that stays open while the returned sender lives, and sends what
/// is sent on it.
fn channel_body() -> (mpsc::Sender<Bytes>, ReqBody) {
    let (tx, mut rx) = mpsc::channel::<Bytes>(16);
    let frames = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|b| b.map(|b| Ok::<_, Infallible>(Frame::data(b))))
    });
    (tx, StreamBody::new(frames).boxed())
}

/// `payload` as one frame, with the header a conforming writer uses.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 5);
    if payload.len() <= u16::MAX as usize {
        out.push(0xCC);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    } else {
        out.push(0xCD);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

/// One h2c (prior knowledge) connection from a raw hyper client.
struct H2c {
    send: SendRequest<ReqBody>,
    /// The client's end of the TCP connection: what the server must report
    /// as the packets' source.
    local: SocketAddr,
    authority: String,
}

impl H2c {
    async fn connect(addr: &str) -> H2c {
        let tcp = within("tcp connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        let local = tcp.local_addr().unwrap();
        let (send, conn) = within(
            "h2 handshake",
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)),
        )
        .await
        .expect("h2 handshake");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        H2c {
            send,
            local,
            authority: addr.to_string(),
        }
    }

    /// Sends a request and returns the response head (the body unread).
    async fn request(
        &mut self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: ReqBody,
    ) -> Response<Incoming> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{}", self.authority, path));
        if let Some(ct) = content_type {
            req = req.header(hyper::header::CONTENT_TYPE, ct);
        }
        let req = req.body(body).unwrap();
        within("h2 connection ready", self.send.ready())
            .await
            .expect("connection usable");
        within("response headers", self.send.send_request(req))
            .await
            .expect("a response")
    }

    /// Sends a request and returns its status, after reading the (empty)
    /// response body.
    async fn status(
        &mut self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: ReqBody,
    ) -> StatusCode {
        let resp = self.request(method, path, content_type, body).await;
        let status = resp.status();
        let body = within("response body", resp.into_body().collect())
            .await
            .expect("response body")
            .to_bytes();
        assert!(body.is_empty(), "{status}: unexpected body {body:?}");
        status
    }

    /// `POST /message` with the right content type.
    async fn post_message(&mut self, body: &[u8]) -> StatusCode {
        self.status(Method::POST, MESSAGE_PATH, Some(CT), full(body))
            .await
    }
}

/// Sends `head` and then `filler` bytes on a body that stays open, and
/// returns the status: only a server that decides from the header alone
/// can answer before the body ends.
async fn status_with_open_body(c: &mut H2c, head: &[u8], filler: usize) -> StatusCode {
    let (tx, body) = channel_body();
    tx.send(Bytes::copy_from_slice(head)).await.unwrap();
    for chunk in vec![0x5Au8; filler].chunks(1024) {
        tx.send(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    let resp = c.request(Method::POST, MESSAGE_PATH, Some(CT), body).await;
    let status = resp.status();
    drop(tx);
    status
}
