//! Answers in responses: a packet a member sends to a peer whose
//! `/message` request to it is being answered rides back in that answer,
//! instead of a request of its own.
//!
//! memberlist's probe is a ping and its ack, and every packet to a quiet
//! peer is a request of its own: each probe was two requests, each with its
//! headers both ways, a stream, a task on each side and the wake-ups around
//! them; probes are nearly all a resting member's CPU (`benches/RESULTS.md`).
//! With this, a probe between gossiphttp peers is one request.
//!
//! **An extension of the contract**, used only between gossiphttp peers
//! and invisible to Go ones:
//!
//! - A client may send [`REPLY_TO`] on a `/message` request whose body it
//!   ends with its first chunk, naming its own advertised `ip:port` (the
//!   address its peers' memberlist sends it packets at). It does so for
//!   a packet the peer answers at once ([`Transport::write_to_awaiting_answer`]:
//!   a probe's ping).
//! - A server that honours it (HTTP/2, [`Options::answers_in_responses`],
//!   the header's IP the one the request came from, no other such request
//!   from that address open) opens a mailbox for that address before it
//!   reads the body. Packets its application writes to that exact address
//!   with `write_to` while the mailbox is open go into it instead of the
//!   peer's send queue. Once the body has ended, the server waits for the
//!   first of them at most [`ANSWER_WAIT`], closes the mailbox, and answers
//!   `200` with them as frames in the response body
//!   (`Content-Type: application/x.ckit`). Packets written after that take
//!   the usual way.
//! - The client reads the frames of a `200`'s body and delivers each as a
//!   packet received from the peer.
//!
//! A Go server ignores the header and answers with an empty body; a Go
//! client never sends it. So nothing changes for Go peers, and nothing is
//! lost when the peer is one: the answer then comes as its own request.
//!
//! [`Transport::write_to_awaiting_answer`]: crate::Transport::write_to_awaiting_answer
//! [`Options::answers_in_responses`]: crate::Options::answers_in_responses

use super::inbox::Inbox;
use crate::codec::{encode_frame, encoded_len};
use crate::contract::MessageReader;
use crate::BoxError;
use bytes::{Bytes, BytesMut};
use http_body::Body;
use http_body_util::BodyExt;
use hyper::header::HeaderName;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The request header asking for answers in the response: the sender's
/// advertised `ip:port`.
pub(crate) const REPLY_TO: HeaderName = HeaderName::from_static("gossiphttp-reply-to");

/// How long a server holds a `200` for the first answer once the body has
/// ended. A healthy member acks a ping in well under a millisecond, and the
/// hold ends then; this bounds it for a packet that gets no answer (a ping
/// for a name the peer no longer has), and lets a member slow to answer
/// still answer in the response (memberlist's ack timeout, 500 ms, has
/// passed by then anyway). Not shorter, because of what a timer costs:
/// tokio wakes its parked driver to arm one that is due before anything
/// else, and with 20 ms that wake-up cost half of what an answer saved (a
/// member at rest had its `eventfd` writes doubled, `benches/RESULTS.md`);
/// one due in a second is rarely ahead of the member's next probe.
pub(crate) const ANSWER_WAIT: Duration = Duration::from_secs(1);

/// The most packets one response carries, and the most a client reads
/// from one.
pub(crate) const MAX_ANSWER_PACKETS: usize = 8;

/// The most mailboxes a transport holds open at once (each is a request
/// being answered, so the server's stream limits bound them already; this
/// bounds the map whatever those are).
const MAX_OPEN: usize = 4096;

/// What a client asking for answers needs: its advertised address, for
/// the header, and where the answers go.
#[derive(Clone)]
pub(crate) struct AnswerTo {
    pub reply_to: SocketAddr,
    pub inbox: Arc<Inbox>,
    pub max_packet_size: usize,
}

impl AnswerTo {
    /// Whether two packets' answers go to the same place (a shared client's
    /// batch may hold packets of several transports).
    pub(crate) fn same(&self, other: &AnswerTo) -> bool {
        self.reply_to == other.reply_to && Arc::ptr_eq(&self.inbox, &other.inbox)
    }
}

/// The address a request's [`REPLY_TO`] names, if the server should honour
/// it: an `ip:port` whose IP is the one the request came from (so a
/// client can only ask for packets meant for itself, and a request through
/// a proxy asks for nothing).
pub(crate) fn reply_to(value: &[u8], remote: SocketAddr) -> Option<SocketAddr> {
    if value.len() > 64 {
        return None;
    }
    let addr: SocketAddr = std::str::from_utf8(value).ok()?.parse().ok()?;
    (addr.ip().to_canonical() == remote.ip().to_canonical() && addr.port() != 0).then_some(addr)
}

/// The mailboxes open on one transport, keyed by the address they collect
/// packets for.
#[derive(Default)]
pub(crate) struct Answers {
    /// How many are open: `write_to` skips the lock when none is.
    open: AtomicUsize,
    boxes: Mutex<HashMap<SocketAddr, Mailbox>>,
}

struct Mailbox {
    packets: Vec<Bytes>,
    bytes: usize,
    /// Told of the first packet.
    first: Arc<Notify>,
}

impl Answers {
    /// Opens the mailbox for `to`; `None` when one is open for it already
    /// (or too many are).
    pub(crate) fn open(&self, to: SocketAddr) -> Option<Held<'_>> {
        let mut boxes = self.boxes.lock().unwrap();
        if boxes.len() >= MAX_OPEN || boxes.contains_key(&to) {
            return None;
        }
        let first = Arc::new(Notify::new());
        boxes.insert(
            to,
            Mailbox {
                packets: Vec::new(),
                bytes: 0,
                first: first.clone(),
            },
        );
        self.open.fetch_add(1, Ordering::Relaxed);
        Some(Held {
            answers: self,
            to,
            first,
        })
    }

    /// Takes a packet for `addr` into its open mailbox, if there is one
    /// with room for it (at most [`MAX_ANSWER_PACKETS`] and
    /// `max_bytes` of frames). False: send it the usual way.
    pub(crate) fn offer(&self, addr: &str, payload: &Bytes, max_bytes: usize) -> bool {
        if self.open.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let Ok(to) = addr.parse::<SocketAddr>() else {
            return false;
        };
        let mut boxes = self.boxes.lock().unwrap();
        let Some(mailbox) = boxes.get_mut(&to) else {
            return false;
        };
        let len = encoded_len(payload.len());
        if mailbox.packets.len() >= MAX_ANSWER_PACKETS || mailbox.bytes + len > max_bytes {
            return false;
        }
        mailbox.packets.push(payload.clone());
        mailbox.bytes += len;
        if mailbox.packets.len() == 1 {
            mailbox.first.notify_one();
        }
        true
    }

    fn close(&self, to: SocketAddr) -> Vec<Bytes> {
        let mut boxes = self.boxes.lock().unwrap();
        match boxes.remove(&to) {
            Some(mailbox) => {
                self.open.fetch_sub(1, Ordering::Relaxed);
                mailbox.packets
            }
            None => Vec::new(),
        }
    }
}

/// An open mailbox; closed when dropped, whatever ended the request.
pub(crate) struct Held<'a> {
    answers: &'a Answers,
    to: SocketAddr,
    first: Arc<Notify>,
}

impl Held<'_> {
    /// Waits for the first packet, at most `wait` or until `shutdown`, then
    /// closes the mailbox and returns what it holds, as one chunk of frames
    /// (empty for none).
    pub(crate) async fn collect(self, wait: Duration, shutdown: &CancellationToken) -> Bytes {
        // `notify_one` leaves a permit when nobody waits yet, so a packet
        // that came before this await is not missed.
        tokio::select! {
            biased;
            () = self.first.notified() => {}
            () = shutdown.cancelled() => {}
            () = tokio::time::sleep(wait) => {}
        }
        let packets = self.answers.close(self.to);
        let mut body = BytesMut::with_capacity(packets.iter().map(|p| encoded_len(p.len())).sum());
        for payload in &packets {
            // Cannot fail: `write_to` refused anything over
            // `max_packet_size`, far below a frame's `u32` limit.
            let _ = encode_frame(payload, &mut body);
        }
        body.freeze()
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // After `collect` the mailbox is gone already: a no-op then.
        let _ = self.answers.close(self.to);
    }
}

/// Reads the answers in a `/message` response body and delivers them as
/// packets from `from`: at most [`MAX_ANSWER_PACKETS`], each at most the
/// transport's `max_packet_size`. A body that breaks the contract is cut
/// off there (the packets before it delivered), and why is returned.
pub(crate) async fn read_answers<B>(body: B, to: &AnswerTo, from: SocketAddr) -> Result<(), String>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let mut body = std::pin::pin!(body);
    let mut reader = MessageReader::new(to.max_packet_size);
    let mut delivered = 0;
    loop {
        loop {
            match reader.next_packet() {
                Ok(Some(payload)) => {
                    if delivered == MAX_ANSWER_PACKETS {
                        return Err(format!("more than {MAX_ANSWER_PACKETS} packets"));
                    }
                    if !to.inbox.deliver(payload, from, Instant::now()).await {
                        return Ok(());
                    }
                    to.inbox.metrics().rx_packets_in_answers.inc();
                    delivered += 1;
                }
                Ok(None) => break,
                Err(e) => return Err(e.to_string()),
            }
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    reader.push(data);
                }
            }
            Some(Err(e)) => return Err(format!("body error: {}", e.into())),
            None => return reader.finish().map_err(|e| e.to_string()),
        }
    }
}

#[cfg(test)]
#[path = "answers_tests.rs"]
mod tests;
