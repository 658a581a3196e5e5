//! memberlist's streams: what one side writes on a connection (over
//! gossiphttp, a `/stream` request or response), and an incremental decoder
//! for what arrives.
//!
//! A stream carries one message: a push-pull (`06` header, node states,
//! user state), a user message (`08` `userMsgHeader`, payload), a ping
//! (memberlist's TCP fallback probe) answered by an ack, or an error reply
//! (`0d`). With compression on (ckit's default) the whole message is wrapped
//! in `09` whatever its size, as Go's `rawSendMsgStream` does. The opener
//! writes its label header first, once; the answer carries none.
//!
//! ```
//! use bytes::BytesMut;
//! use gossiphttp::memberlist::packet::{label_header, LabelPolicy};
//! use gossiphttp::memberlist::stream::{StreamDecoder, StreamMessage};
//!
//! let mut wire = label_header("prod").unwrap();
//! wire.extend(StreamMessage::User("hello".into()).encode(true));
//! let mut decoder = StreamDecoder::inbound(LabelPolicy::new("prod"));
//! let mut src = BytesMut::new();
//! for byte in wire {
//!     src.extend_from_slice(&[byte]); // bytes arrive in any pieces
//!     if let Some(message) = decoder.decode(&mut src).unwrap() {
//!         assert_eq!(message, StreamMessage::User("hello".into()));
//!     }
//! }
//! ```

use super::message::{
    Ack, ErrorResponse, MessageType, Ping, PushNodeState, PushPull, PushPullHeader, UserMsgHeader,
};
use super::msgpack::{DecodeError, Reader};
use super::packet::{compress_message, decompress_body, split_label, LabelPolicy};
use super::wire::{Compressed, GoMsgpack, MsgpackStruct};
use super::wire_error::WireError;
use bytes::{Buf, Bytes, BytesMut};

/// memberlist's `maxPushStateBytes` (20 MiB): the most a stream message may
/// hold, compressed or not. Go applies it to encrypted state only; this
/// decoder applies it to every message, before allocating.
pub const MAX_PUSH_STATE_BYTES: usize = 20 * 1024 * 1024;

/// One message on a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamMessage {
    /// A push-pull exchange (either direction).
    PushPull(PushPull),
    /// A user message sent over a stream (memberlist's `SendReliable`).
    User(Bytes),
    /// A ping over a stream (memberlist's TCP fallback probe).
    Ping(Ping),
    /// The ack that answers a stream ping.
    Ack(Ack),
    /// An error reply (`errResp`).
    Err(ErrorResponse),
}

impl StreamMessage {
    /// The message's bytes as Go writes them in one `Write`: compressed as a
    /// whole when `compress` (memberlist's `EnableCompression`) is on. The
    /// label header, if any, is [`label_header`](super::packet::label_header),
    /// written before it by the side that opens the stream.
    pub fn encode(&self, compress: bool) -> Vec<u8> {
        finish_encoding(self.encode_plain(), compress)
    }

    /// The message's bytes before compression.
    pub fn encode_plain(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            StreamMessage::PushPull(pp) => {
                out.push(MessageType::PushPull as u8);
                let header = PushPullHeader {
                    nodes: pp.nodes.len().min(u32::MAX as usize) as u32,
                    user_state_len: pp.user_state.len().min(u32::MAX as usize) as u32,
                    join: pp.join,
                };
                header.encode_msgpack(&mut out);
                for node in &pp.nodes {
                    node.encode_msgpack(&mut out);
                }
                out.extend_from_slice(&pp.user_state);
            }
            StreamMessage::User(payload) => {
                out.push(MessageType::User as u8);
                let header = UserMsgHeader {
                    user_msg_len: payload.len().min(u32::MAX as usize) as u32,
                };
                header.encode_msgpack(&mut out);
                out.extend_from_slice(payload);
            }
            StreamMessage::Ping(ping) => {
                out.push(MessageType::Ping as u8);
                ping.encode_msgpack(&mut out);
            }
            StreamMessage::Ack(ack) => {
                out.push(MessageType::Ack as u8);
                ack.encode_msgpack(&mut out);
            }
            StreamMessage::Err(err) => {
                out.push(MessageType::Err as u8);
                err.encode_msgpack(&mut out);
            }
        }
        out
    }
}

/// The last push-pull a member sent, to send its bytes again when the
/// next one is the same. A member's replies and its own push-pulls (all
/// but a join's, whose header says join) carry the same message, its
/// table: a member that everyone joins through answers hundreds of
/// push-pulls, and its table often has not changed between two of them
/// (43% of replies among 500 members joining in one process), and a
/// member's catch-up often follows a reply it just sent. Compressing one is
/// what costs (a 500-member table is about 50 KB); comparing it with the
/// last one is a `memcmp`. Holds one message, plain and encoded.
#[derive(Debug, Default)]
pub struct PushPullCache {
    last: Option<(Vec<u8>, Bytes)>,
}

impl PushPullCache {
    /// The encoded bytes of a push-pull whose plain bytes
    /// ([`StreamMessage::encode_plain`]) are `plain`, if it was the last one.
    pub fn get(&self, plain: &[u8]) -> Option<Bytes> {
        let (last, encoded) = self.last.as_ref()?;
        (last.as_slice() == plain).then(|| encoded.clone())
    }

    /// Remembers `encoded` as the bytes of the push-pull `plain`.
    pub fn put(&mut self, plain: Vec<u8>, encoded: Bytes) {
        self.last = Some((plain, encoded));
    }
}

/// Encodes `plain` ([`StreamMessage::encode_plain`]) for the wire:
/// compressed when `compress` is on, as [`StreamMessage::encode`] does.
pub fn finish_encoding(plain: Vec<u8>, compress: bool) -> Vec<u8> {
    if compress {
        compress_message(&plain)
    } else {
        plain
    }
}

/// Where the decoder is in the stream.
#[derive(Clone, Debug)]
enum Phase {
    /// The stream's first bytes: a label header may come.
    Label,
    /// Between messages: the type byte comes next.
    Type,
    /// A compressed message: its `compress` map comes next.
    Compressed,
    /// A push-pull: its header, then `nodes` more states, then the user state.
    PushPullHeader,
    PushPullNodes {
        header: PushPullHeader,
        nodes: Vec<PushNodeState>,
    },
    PushPullUserState {
        header: PushPullHeader,
        nodes: Vec<PushNodeState>,
    },
    /// A user message: its header, then its payload.
    UserHeader,
    UserPayload {
        len: usize,
    },
    /// A single-map message (ping, ack, error).
    Single(MessageType),
    /// A decoding error was returned: the stream is unusable.
    Failed,
}

/// Decodes memberlist stream messages from bytes as they arrive, without
/// I/O (in the style of tokio-util's `Decoder`): [`decode`](Self::decode)
/// takes what it can from `src` and returns a whole message, or `None` for
/// "need more bytes".
///
/// Bounded: a message may not exceed `max_message` bytes (announced or
/// decompressed; default [`MAX_PUSH_STATE_BYTES`]); a push-pull header
/// announcing more nodes or user state than that is refused before anything
/// is allocated; a value that needs more bytes is not re-parsed until they
/// have arrived.
#[derive(Clone, Debug)]
pub struct StreamDecoder {
    policy: Option<LabelPolicy>,
    allow_compressed: bool,
    max_message: usize,
    phase: Phase,
    /// Bytes taken so far from the message being decoded.
    message_bytes: usize,
    /// Don't retry before `src` holds this many bytes.
    wait_for: usize,
}

impl StreamDecoder {
    /// A decoder for a stream this node accepts (a `/stream` request body):
    /// a label header may start it, checked against `policy`.
    pub fn inbound(policy: LabelPolicy) -> Self {
        StreamDecoder::new(Some(policy))
    }

    /// A decoder for the answer on a stream this node opened (a `/stream`
    /// response body): memberlist writes no label there.
    pub fn response() -> Self {
        StreamDecoder::new(None)
    }

    fn new(policy: Option<LabelPolicy>) -> Self {
        let phase = if policy.is_some() {
            Phase::Label
        } else {
            Phase::Type
        };
        StreamDecoder {
            policy,
            allow_compressed: true,
            max_message: MAX_PUSH_STATE_BYTES,
            phase,
            message_bytes: 0,
            wait_for: 0,
        }
    }

    /// Sets the largest message accepted (default [`MAX_PUSH_STATE_BYTES`]).
    pub fn with_max_message(mut self, max_message: usize) -> Self {
        self.max_message = max_message;
        self
    }

    /// Whether the decoder is between messages (nothing partial buffered).
    pub fn at_message_boundary(&self) -> bool {
        matches!(self.phase, Phase::Label | Phase::Type)
    }

    /// Takes bytes from `src` and returns the next whole message, or `None`
    /// when more bytes are needed. After an error the stream is unusable and
    /// every later call returns an error.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<StreamMessage>, WireError> {
        if matches!(self.phase, Phase::Failed) {
            return Err(WireError::Truncated { message: None });
        }
        let result = self.step_all(src);
        if result.is_err() {
            self.phase = Phase::Failed;
        }
        result
    }

    /// Like [`decode`](Self::decode) at the stream's end: a message cut short
    /// is an error ([`WireError::Truncated`]).
    pub fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<StreamMessage>, WireError> {
        match self.decode(src)? {
            Some(message) => Ok(Some(message)),
            None if src.is_empty() && self.at_message_boundary() => Ok(None),
            None => {
                let message = self.current_type();
                self.phase = Phase::Failed;
                Err(WireError::Truncated { message })
            }
        }
    }

    fn current_type(&self) -> Option<MessageType> {
        match &self.phase {
            Phase::Compressed => Some(MessageType::Compress),
            Phase::PushPullHeader
            | Phase::PushPullNodes { .. }
            | Phase::PushPullUserState { .. } => Some(MessageType::PushPull),
            Phase::UserHeader | Phase::UserPayload { .. } => Some(MessageType::User),
            Phase::Single(t) => Some(*t),
            _ => None,
        }
    }

    fn step_all(&mut self, src: &mut BytesMut) -> Result<Option<StreamMessage>, WireError> {
        loop {
            if src.len() < self.wait_for {
                return Ok(None);
            }
            match self.step(src)? {
                Step::Progress => continue,
                Step::NeedMore(needed) => {
                    let total = self.message_bytes as u64 + needed;
                    if total > self.max_message as u64 {
                        return Err(WireError::TooLarge {
                            what: "stream message",
                            len: total,
                            max: self.max_message as u64,
                        });
                    }
                    self.wait_for = needed as usize;
                    return Ok(None);
                }
                Step::Done(message) => {
                    self.phase = Phase::Type;
                    self.message_bytes = 0;
                    return Ok(Some(message));
                }
            }
        }
    }

    /// Consumes `n` bytes of the current message from `src`.
    fn consume(&mut self, src: &mut BytesMut, n: usize) -> Result<(), WireError> {
        self.message_bytes += n;
        self.wait_for = 0;
        src.advance(n);
        if self.message_bytes > self.max_message {
            return Err(WireError::TooLarge {
                what: "stream message",
                len: self.message_bytes as u64,
                max: self.max_message as u64,
            });
        }
        Ok(())
    }

    /// Reads one msgpack struct from the front of `src`.
    fn read<T: MsgpackStruct>(
        &mut self,
        src: &mut BytesMut,
        message: MessageType,
    ) -> Result<T, Stop> {
        let mut reader = Reader::new(src);
        match T::read(&mut reader) {
            Ok(value) => {
                let used = reader.position();
                self.consume(src, used).map_err(Stop::Error)?;
                Ok(value)
            }
            Err(DecodeError::Incomplete { needed }) => Err(Stop::NeedMore(needed)),
            Err(error) => Err(Stop::Error(WireError::Decode { message, error })),
        }
    }

    fn step(&mut self, src: &mut BytesMut) -> Result<Step, WireError> {
        match self.read_step(src) {
            Ok(step) => Ok(step),
            Err(Stop::NeedMore(n)) => Ok(Step::NeedMore(n)),
            Err(Stop::Error(e)) => Err(e),
        }
    }

    fn read_step(&mut self, src: &mut BytesMut) -> Result<Step, Stop> {
        match std::mem::replace(&mut self.phase, Phase::Failed) {
            Phase::Failed => Err(Stop::Error(WireError::Truncated { message: None })),
            Phase::Label => {
                if src.is_empty() {
                    self.phase = Phase::Label;
                    return Err(Stop::NeedMore(1));
                }
                if src[0] == MessageType::HasLabel as u8 {
                    let needed = if src.len() < 2 {
                        2
                    } else {
                        2 + usize::from(src[1])
                    };
                    if src.len() < needed {
                        self.phase = Phase::Label;
                        return Err(Stop::NeedMore(needed as u64));
                    }
                }
                let (label, rest) = split_label(src).map_err(Stop::Error)?;
                let label_len = src.len() - rest.len();
                if let Some(policy) = &self.policy {
                    policy.check(label).map_err(Stop::Error)?;
                }
                src.advance(label_len);
                self.phase = Phase::Type;
                Ok(Step::Progress)
            }
            Phase::Type => {
                let Some(&type_byte) = src.first() else {
                    self.phase = Phase::Type;
                    return Err(Stop::NeedMore(1));
                };
                self.consume(src, 1).map_err(Stop::Error)?;
                self.phase = match MessageType::from_byte(type_byte) {
                    Some(MessageType::Compress) if self.allow_compressed => Phase::Compressed,
                    Some(MessageType::PushPull) => Phase::PushPullHeader,
                    Some(MessageType::User) => Phase::UserHeader,
                    Some(t @ (MessageType::Ping | MessageType::Ack | MessageType::Err)) => {
                        Phase::Single(t)
                    }
                    Some(found) => {
                        return Err(Stop::Error(WireError::UnexpectedType {
                            found,
                            context: "on a stream",
                        }))
                    }
                    None => return Err(Stop::Error(WireError::UnknownType(type_byte))),
                };
                Ok(Step::Progress)
            }
            Phase::Compressed => {
                // Only measure the `compress` map here; it is decoded (and
                // its buffer copied) once, by `decompress_body`.
                let mut reader = Reader::new(src);
                match Compressed::read(&mut reader) {
                    Ok(_) => {}
                    Err(DecodeError::Incomplete { needed }) => {
                        self.phase = Phase::Compressed;
                        return Err(Stop::NeedMore(needed));
                    }
                    Err(error) => {
                        return Err(Stop::Error(WireError::Decode {
                            message: MessageType::Compress,
                            error,
                        }))
                    }
                }
                let len = reader.position();
                let inner = decompress_body(&src[..len], self.max_message).map_err(Stop::Error)?;
                self.consume(src, len).map_err(Stop::Error)?;
                let mut nested = StreamDecoder::new(None).with_max_message(self.max_message);
                nested.allow_compressed = false;
                let mut inner = BytesMut::from(&inner[..]);
                match nested.decode(&mut inner).map_err(Stop::Error)? {
                    Some(message) => Ok(Step::Done(message)),
                    None => Err(Stop::Error(WireError::Truncated {
                        message: nested.current_type(),
                    })),
                }
            }
            Phase::PushPullHeader => {
                let header = self
                    .read::<PushPullHeader>(src, MessageType::PushPull)
                    .inspect_err(|_| {
                        self.phase = Phase::PushPullHeader;
                    })?;
                // Each node state takes at least one byte: refuse what cannot
                // fit before reserving anything.
                let announced = u64::from(header.nodes) + u64::from(header.user_state_len);
                if announced + self.message_bytes as u64 > self.max_message as u64 {
                    return Err(Stop::Error(WireError::TooLarge {
                        what: "push-pull state",
                        len: announced,
                        max: self.max_message as u64,
                    }));
                }
                let nodes = Vec::with_capacity((header.nodes as usize).min(1024));
                self.phase = Phase::PushPullNodes { header, nodes };
                Ok(Step::Progress)
            }
            Phase::PushPullNodes { header, mut nodes } => {
                if nodes.len() == header.nodes as usize {
                    self.phase = Phase::PushPullUserState { header, nodes };
                    return Ok(Step::Progress);
                }
                match self.read::<PushNodeState>(src, MessageType::PushPull) {
                    Ok(node) => nodes.push(node),
                    Err(e) => {
                        self.phase = Phase::PushPullNodes { header, nodes };
                        return Err(e);
                    }
                }
                self.phase = Phase::PushPullNodes { header, nodes };
                Ok(Step::Progress)
            }
            Phase::PushPullUserState { header, nodes } => {
                let len = header.user_state_len as usize;
                if src.len() < len {
                    self.phase = Phase::PushPullUserState { header, nodes };
                    return Err(Stop::NeedMore(len as u64));
                }
                let user_state = src.split_to(len).freeze();
                self.message_bytes += len;
                self.wait_for = 0;
                Ok(Step::Done(StreamMessage::PushPull(PushPull {
                    join: header.join,
                    nodes,
                    user_state,
                })))
            }
            Phase::UserHeader => {
                let header = self
                    .read::<UserMsgHeader>(src, MessageType::User)
                    .inspect_err(|_| {
                        self.phase = Phase::UserHeader;
                    })?;
                let len = u64::from(header.user_msg_len);
                if len + self.message_bytes as u64 > self.max_message as u64 {
                    return Err(Stop::Error(WireError::TooLarge {
                        what: "stream user message",
                        len,
                        max: self.max_message as u64,
                    }));
                }
                self.phase = Phase::UserPayload { len: len as usize };
                Ok(Step::Progress)
            }
            Phase::UserPayload { len } => {
                if src.len() < len {
                    self.phase = Phase::UserPayload { len };
                    return Err(Stop::NeedMore(len as u64));
                }
                let payload = src.split_to(len).freeze();
                self.message_bytes += len;
                self.wait_for = 0;
                Ok(Step::Done(StreamMessage::User(payload)))
            }
            Phase::Single(t) => {
                let message = match t {
                    MessageType::Ping => self.read::<Ping>(src, t).map(StreamMessage::Ping),
                    MessageType::Ack => self.read::<Ack>(src, t).map(StreamMessage::Ack),
                    _ => self.read::<ErrorResponse>(src, t).map(StreamMessage::Err),
                };
                message
                    .map(Step::Done)
                    .inspect_err(|_| self.phase = Phase::Single(t))
            }
        }
    }
}

/// The outcome of one decoding step.
enum Step {
    Progress,
    NeedMore(u64),
    Done(StreamMessage),
}

/// A step that could not complete.
enum Stop {
    NeedMore(u64),
    Error(WireError),
}
