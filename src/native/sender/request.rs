//! One `/message` request: what the sender needs from the connection
//! layer ([`MessageSink`]), and a request carried out, with the answers a
//! gossiphttp peer may put in its response (see [`crate::native::answers`]).

use super::Outgoing;
use crate::native::answers::{read_answers, AnswerTo, REPLY_TO};
use crate::native::body::FrameBody;
use crate::native::connector::{Connector, ResponseBody};
use crate::{BoxError, Error, PeerAddr, MESSAGE_PATH};
use bytes::Bytes;
use http_body::Body;
use hyper::header::HeaderValue;
use hyper::{Response, StatusCode};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

/// What the sender needs from the connection layer: one `/message` request.
pub(crate) trait MessageSink: Send + Sync + 'static {
    /// The body of a response.
    type Answer: Body<Data = Bytes, Error: Into<BoxError>> + Send;

    /// Posts `body` to `peer`'s `/message` path, asking for answers in the
    /// response for `reply_to` if given, and returns the response. Fails
    /// with [`Error::InvalidAddress`] (not a panic) when no request can be
    /// made for `peer`.
    fn post_message(
        &self,
        peer: &PeerAddr,
        body: FrameBody,
        reply_to: Option<SocketAddr>,
    ) -> impl Future<Output = Result<Response<Self::Answer>, Error>> + Send;
}

impl MessageSink for Connector {
    type Answer = ResponseBody;

    async fn post_message(
        &self,
        peer: &PeerAddr,
        body: FrameBody,
        reply_to: Option<SocketAddr>,
    ) -> Result<Response<ResponseBody>, Error> {
        let mut req = self.post(peer, MESSAGE_PATH, body)?;
        if let Some(Ok(value)) = reply_to.map(|a| HeaderValue::try_from(a.to_string())) {
            req.headers_mut().insert(REPLY_TO, value);
        }
        self.request(peer, req).await
    }
}

/// Posts `body` to `addr`, failing after `timeout`; `Ok` once the peer
/// answered `200`. With `answer`, it asks for answers in the response and
/// delivers them (a response whose answers break the contract is still a
/// delivery: they are cut off there, counted and logged).
pub(super) async fn exchange<S: MessageSink>(
    sink: &S,
    addr: &PeerAddr,
    body: FrameBody,
    timeout: Duration,
    answer: Option<AnswerTo>,
) -> Result<(), Error> {
    let exchange = async {
        let reply_to = answer.as_ref().map(|a| a.reply_to);
        let resp = sink.post_message(addr, body, reply_to).await?;
        if resp.status() != StatusCode::OK {
            return Err(Error::Status {
                addr: addr.to_string(),
                status: resp.status().as_u16(),
            });
        }
        if let Some(answer) = &answer {
            // The peer as the answers' source: memberlist peers are IP
            // addresses.
            let from = addr
                .ip_socket_addr()
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], addr.port())));
            if let Err(why) = read_answers(resp.into_body(), answer, from).await {
                answer.inbox.metrics().rx_packets_failed.inc();
                tracing::debug!(peer = %addr, error = why, "answers in a response cut short");
            }
        }
        Ok(())
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => Err(Error::Timeout {
            what: "packet delivery",
            after: timeout,
        }),
        Ok(result) => result,
    }
}

/// Where the answers to a batch's request go: the place its packets that
/// await one name, if they all name the same.
pub(super) fn answer_for(batch: &[Outgoing]) -> Option<AnswerTo> {
    let mut asking = batch.iter().filter_map(|o| o.answer_to.as_ref());
    let first = asking.next()?;
    asking.all(|a| a.same(first)).then(|| first.clone())
}
