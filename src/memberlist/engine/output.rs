//! What the engine asks its shell to do, and what it tells it.

use std::net::SocketAddr;

use bytes::Bytes;

use super::super::message::{Message, MessageType, Ping, PushPull};
use super::super::wire::EncodedMessage;
use super::super::WireError;
use super::members::Member;
use super::time::Time;
use super::versions::IncompatibleVersion;

/// One output, polled with [`super::Engine::poll_output`].
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Send these messages in one packet (a compound when more than one).
    Packet(OutPacket),
    /// Open a push-pull stream: write `state`, read the reply, and report
    /// it with [`super::Engine::push_pull_result`].
    PushPull(PushPullRequest),
    /// Ping over a stream; report with
    /// [`super::Engine::stream_ping_result`]. memberlist's TCP fallback for
    /// a probe (unless `disable_tcp_pings`), and also how the engine checks
    /// its own hearing when every helper of a probe stayed silent: a shell
    /// must implement it whatever the config.
    StreamPing(StreamPingRequest),
    /// Something the application may want to know.
    Event(Event),
}

/// A packet to send.
#[derive(Clone, Debug, PartialEq)]
pub struct OutPacket {
    /// Where.
    pub to: SocketAddr,
    /// The target's name, when known.
    pub node: Option<String>,
    /// The target is a known member that understands protocol 5: the wire
    /// adds the CRC wrapper, as memberlist does for gossip and for the
    /// ping + suspect compound (pings and acks go without).
    pub crc: bool,
    /// The messages, in order, encoded (a broadcast once for all the
    /// packets that carry it): the shell wraps them with
    /// [`encode_packet_parts`](super::super::packet::encode_packet_parts).
    pub messages: Vec<EncodedMessage>,
}

impl OutPacket {
    /// Whether the target answers it at once: a ping (a probe's, or one
    /// on behalf of a member that asked for an indirect probe), which it
    /// acks. Its first part is the ping, so the first packet holds it
    /// however the compound is split; a transport may have the answer
    /// ride back with that packet's delivery.
    pub fn awaits_answer(&self) -> bool {
        self.first_type() == Some(MessageType::Ping as u8)
    }

    /// Whether it answers a ping: its first part is an ack or a nack.
    pub fn is_answer(&self) -> bool {
        self.first_type()
            .is_some_and(|t| t == MessageType::Ack as u8 || t == MessageType::Nack as u8)
    }

    /// The type byte of its first message.
    fn first_type(&self) -> Option<u8> {
        self.messages
            .first()
            .and_then(|m| m.as_bytes().first())
            .copied()
    }

    /// The messages decoded again (for tests and logs: an engine's own
    /// encoding always decodes).
    pub fn decode_messages(&self) -> Result<Vec<Message>, WireError> {
        self.messages.iter().map(EncodedMessage::decode).collect()
    }
}

/// A push-pull the engine starts.
#[derive(Clone, Debug, PartialEq)]
pub struct PushPullRequest {
    /// Hand it back with the result.
    pub id: u64,
    /// Where.
    pub to: SocketAddr,
    /// The target's name, when known (a join target's is not).
    pub node: Option<String>,
    /// What to write: our side of the exchange.
    pub state: PushPull,
}

/// A ping over a stream.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamPingRequest {
    /// Where.
    pub to: SocketAddr,
    /// The ping to write; the answer is an ack with its `seq_no`.
    pub ping: Ping,
    /// Give up after this.
    pub deadline: Time,
}

/// Why a push-pull failed (the engine only needs to know that it did).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushPullFailed {
    /// What went wrong, for logs.
    pub reason: String,
}

/// How a member changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemberChange {
    /// New, or back from dead or left.
    Joined,
    /// Its address or metadata changed.
    Updated,
    /// Suspected of failure.
    Suspect,
    /// Suspect no more: it refuted.
    Alive,
    /// Declared dead by failure detection.
    Dead,
    /// Left by its own announcement.
    Left,
    /// Dead or left long enough: its row is gone.
    Removed,
}

/// An event.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A member changed; `member` is its row after the change.
    Member {
        /// The row.
        member: Member,
        /// What happened.
        change: MemberChange,
    },
    /// A user message arrived (memberlist's `NotifyMsg`).
    UserMessage(Bytes),
    /// A push-pull brought the remote's user state (`MergeRemoteState`).
    RemoteState {
        /// The remote delegate's `LocalState`.
        state: Bytes,
        /// The exchange was a join.
        join: bool,
    },
    /// A join push-pull to `addr` ended.
    JoinResult {
        /// The join target.
        addr: SocketAddr,
        /// It answered and its view was merged.
        ok: bool,
    },
    /// A push-pull's remote view was refused, unmerged, because a member
    /// speaks a version not every alive member understands (memberlist's
    /// `verifyProtocol`). The exchange counts as failed (a join's
    /// [`Event::JoinResult`] says `ok: false`); for a push-pull another
    /// member opened, our view was still sent back, as memberlist does.
    VersionsRefused {
        /// The address we opened the push-pull to; `None` when the remote
        /// opened it.
        peer: Option<SocketAddr>,
        /// Who is out of range, and the range.
        error: IncompatibleVersion,
    },
    /// [`super::Engine::leave`] is done: the leave went out, or the
    /// timeout passed first. The shell may stop now.
    LeaveFinished {
        /// The timeout passed before the broadcast went out.
        timed_out: bool,
    },
}
