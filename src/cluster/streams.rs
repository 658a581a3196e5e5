//! memberlist's streams over `/stream`: the push-pulls and stream pings the
//! engine asks for, and the streams other members open to us.
//!
//! A stream carries one exchange, as memberlist's TCP connections do: the
//! side that opens it writes the label header (if any) and one message; the
//! other side answers with one message (no label) and ends the stream.
//! Every exchange is bounded by the engine's `tcp_timeout`.

use super::actor::{Command, Done};
use crate::memberlist::engine::{PushPullFailed, PushPullRequest, StreamPingRequest};
use crate::memberlist::packet::{label_header, LabelPolicy};
use crate::memberlist::stream::{finish_encoding, PushPullCache, StreamDecoder, StreamMessage};
use crate::memberlist::WireError;
use crate::{StreamConn, Streams, Transport};
use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

/// What every stream task needs to know.
#[derive(Clone)]
pub(crate) struct StreamSettings {
    pub label: String,
    pub policy: LabelPolicy,
    pub compress: bool,
    pub timeout: Duration,
    pub label_warnings: Arc<LabelWarnings>,
    /// The last push-pull this member sent (a reply or its own), shared
    /// by its stream tasks.
    pub last_push_pull: Arc<Mutex<PushPullCache>>,
}

/// Traffic refused for its label is a configuration problem: it is logged
/// as a warning (memberlist does too), at most once every 10 s so a
/// misconfigured cluster next door cannot flood the log.
#[derive(Default)]
pub(crate) struct LabelWarnings {
    last: Mutex<Option<Instant>>,
}

impl LabelWarnings {
    pub(crate) fn refused(&self, from: SocketAddr, what: &str, error: &WireError) {
        let mut last = self.last.lock().unwrap();
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(10)) {
            tracing::debug!(%from, error = %error, "{what} refused for its label");
            return;
        }
        *last = Some(Instant::now());
        tracing::warn!(%from, error = %error, "{what} refused for its label (further ones for 10 s at debug level)");
    }
}

/// Why a stream message could not be read.
enum ReadError {
    Wire(WireError),
    Other(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Wire(e) => e.fmt(f),
            ReadError::Other(e) => f.write_str(e),
        }
    }
}

impl From<String> for ReadError {
    fn from(e: String) -> Self {
        ReadError::Other(e)
    }
}

/// Reads one message with `decoder`, whatever the peer's writes look like.
async fn read_message(
    conn: &mut StreamConn,
    decoder: &mut StreamDecoder,
) -> Result<StreamMessage, ReadError> {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        if let Some(message) = decoder.decode(&mut buf).map_err(ReadError::Wire)? {
            return Ok(message);
        }
        let n = conn
            .read_buf(&mut buf)
            .await
            .map_err(|e| format!("reading the stream: {e}"))?;
        if n == 0 {
            return match decoder.decode_eof(&mut buf).map_err(ReadError::Wire)? {
                Some(message) => Ok(message),
                None => Err("the peer ended the stream before answering (a member \
                             closes streams whose label is not its own: check --label)"
                    .to_string()
                    .into()),
            };
        }
    }
}

/// Opens a stream to `to` and writes `message` after our label.
async fn open(
    transport: &Transport,
    settings: &StreamSettings,
    to: &str,
    message: &StreamMessage,
) -> Result<StreamConn, String> {
    let mut conn = transport
        .dial(to, settings.timeout)
        .await
        .map_err(|e| e.to_string())?;
    let mut bytes = label_header(&settings.label).map_err(|e| e.to_string())?;
    bytes.extend_from_slice(&encode_cached(message, settings));
    conn.write_all(&bytes)
        .await
        .map_err(|e| format!("writing the stream: {e}"))?;
    conn.flush()
        .await
        .map_err(|e| format!("writing the stream: {e}"))?;
    Ok(conn)
}

/// Runs a push-pull the engine asked for and reports how it ended.
pub(crate) async fn push_pull(
    transport: Transport,
    settings: StreamSettings,
    request: PushPullRequest,
    done: mpsc::UnboundedSender<Done>,
) {
    let to = request.to.to_string();
    let exchange = async {
        let mut conn = open(
            &transport,
            &settings,
            &to,
            &StreamMessage::PushPull(request.state),
        )
        .await?;
        match read_message(&mut conn, &mut StreamDecoder::response())
            .await
            .map_err(|e| e.to_string())?
        {
            StreamMessage::PushPull(remote) => Ok(remote),
            StreamMessage::Err(e) => Err(format!("the peer refused: {}", e.error)),
            other => Err(format!("the peer answered a push-pull with {other:?}")),
        }
    };
    let result = match tokio::time::timeout(settings.timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {:?}", settings.timeout)),
    };
    if let Err(reason) = &result {
        if request.node.is_none() {
            // A join target: nothing else will tell the operator why the
            // node stays alone.
            tracing::warn!(peer = %to, %reason, "could not join through this address");
        } else {
            tracing::debug!(peer = %to, %reason, "push-pull failed");
        }
    }
    let result = result.map_err(|reason| PushPullFailed { reason });
    let _ = done.send(Done::PushPull {
        id: request.id,
        result,
    });
}

/// Runs a ping over a stream (memberlist's TCP fallback probe).
pub(crate) async fn ping(
    transport: Transport,
    settings: StreamSettings,
    request: StreamPingRequest,
    timeout: Duration,
    done: mpsc::UnboundedSender<Done>,
) {
    let to = request.to.to_string();
    let seq_no = request.ping.seq_no;
    let exchange = async {
        let mut conn = open(
            &transport,
            &settings,
            &to,
            &StreamMessage::Ping(request.ping),
        )
        .await?;
        match read_message(&mut conn, &mut StreamDecoder::response())
            .await
            .map_err(|e| e.to_string())?
        {
            StreamMessage::Ack(ack) => Ok(ack.seq_no == seq_no),
            other => Err(format!("the peer answered a ping with {other:?}")),
        }
    };
    let contacted = matches!(tokio::time::timeout(timeout, exchange).await, Ok(Ok(true)));
    let _ = done.send(Done::StreamPing { seq_no, contacted });
}

/// Takes every stream other members open as it arrives and serves each on
/// a task of its own, apart from the actor. The actor took one stream per
/// turn between packets and timers, and in a join wave (99 members
/// push-pulling with the member they joined through, at once, over one
/// shared connection) the transport's stream queue overflowed: a refused
/// member's join waited for the next rejoin, 5 s later (measured, 1 run in
/// 8 at 100 members in one process). Open streams stay bounded by the
/// transport's `max_streams`. Ends when the transport shuts down.
pub(crate) async fn accept_all(
    mut streams: Streams,
    settings: StreamSettings,
    commands: mpsc::UnboundedSender<Command>,
) {
    while let Some(conn) = streams.accept().await {
        tokio::spawn(serve(conn, settings.clone(), commands.clone()));
    }
}

/// The bytes of `message`; a push-pull that is the last one this member
/// sent again (a reply or its own) is not compressed again
/// ([`PushPullCache`]). The lock is not held while compressing: the seed
/// of a join wave serves many at once.
fn encode_cached(message: &StreamMessage, settings: &StreamSettings) -> Bytes {
    let plain = message.encode_plain();
    if !matches!(message, StreamMessage::PushPull(_)) {
        return finish_encoding(plain, settings.compress).into();
    }
    if let Some(encoded) = settings.last_push_pull.lock().unwrap().get(&plain) {
        return encoded;
    }
    let encoded = Bytes::from(finish_encoding(plain.clone(), settings.compress));
    settings
        .last_push_pull
        .lock()
        .unwrap()
        .put(plain, encoded.clone());
    encoded
}

/// Serves a stream another member opened: one message in, at most one out.
pub(crate) async fn serve(
    mut conn: StreamConn,
    settings: StreamSettings,
    commands: mpsc::UnboundedSender<Command>,
) {
    let from = conn.remote_addr();
    let served = async {
        let mut decoder = StreamDecoder::inbound(settings.policy.clone());
        let message = match read_message(&mut conn, &mut decoder).await {
            Ok(message) => message,
            Err(ReadError::Wire(e)) if e.is_label_refusal() => {
                settings.label_warnings.refused(from, "a stream", &e);
                return Ok(());
            }
            Err(e) => return Err(e.to_string()),
        };
        let answer = match message {
            StreamMessage::PushPull(remote) => {
                let (reply, rx) = oneshot::channel();
                commands
                    .send(Command::InboundPushPull { remote, reply })
                    .map_err(|_| "the node is stopping".to_string())?;
                Some(StreamMessage::PushPull(
                    rx.await.map_err(|_| "the node is stopping".to_string())?,
                ))
            }
            StreamMessage::Ping(ping) => {
                let (reply, rx) = oneshot::channel();
                commands
                    .send(Command::InboundPing { ping, reply })
                    .map_err(|_| "the node is stopping".to_string())?;
                rx.await
                    .map_err(|_| "the node is stopping".to_string())?
                    .map(StreamMessage::Ack)
            }
            StreamMessage::User(payload) => {
                let _ = commands.send(Command::InboundUser(payload));
                None
            }
            StreamMessage::Err(e) => return Err(format!("the peer sent an error: {}", e.error)),
            StreamMessage::Ack(_) => return Err("an ack nobody asked for".into()),
        };
        if let Some(answer) = answer {
            conn.write_all(&encode_cached(&answer, &settings))
                .await
                .map_err(|e| format!("answering: {e}"))?;
        }
        conn.shutdown()
            .await
            .map_err(|e| format!("ending the stream: {e}"))?;
        Ok::<(), String>(())
    };
    match tokio::time::timeout(settings.timeout, served).await {
        Ok(Ok(())) => {}
        Ok(Err(reason)) => tracing::debug!(%from, %reason, "inbound stream failed"),
        Err(_) => tracing::debug!(%from, timeout = ?settings.timeout, "inbound stream too slow"),
    }
}

/// A leaving member's goodbye, sent straight to every member it knows, all
/// at once, rather than left to gossip alone: gossip reaches a few members
/// per round, and when many members leave together (a process of many
/// members stopping) the ones that would pass it on are gone too, so the
/// rest record them dead instead of left. Waits until every member
/// answered or `deadline` passed, then tells the actor.
pub(crate) async fn farewell(
    transport: Transport,
    payloads: Vec<bytes::Bytes>,
    targets: Vec<SocketAddr>,
    deadline: Duration,
    commands: mpsc::UnboundedSender<Command>,
) {
    let sends = targets.iter().map(|to| {
        let to = to.to_string();
        let transport = &transport;
        let payloads = &payloads;
        async move {
            for payload in payloads {
                transport.send(payload.clone(), &to).await?;
            }
            Ok::<(), crate::Error>(())
        }
    });
    let answered = tokio::time::timeout(deadline, futures_util::future::join_all(sends)).await;
    match answered {
        Ok(results) => {
            let failed = results.iter().filter(|r| r.is_err()).count();
            if failed > 0 {
                tracing::debug!(
                    failed,
                    of = targets.len(),
                    "leave: members not told directly"
                );
            }
        }
        Err(_) => tracing::warn!(
            members = targets.len(),
            ?deadline,
            "leave: not every member answered in time; the rest hear it by gossip"
        ),
    }
    let _ = commands.send(Command::FarewellSent);
}
