//! memberlist's messages as typed values: one struct per Go struct in
//! memberlist's `net.go`, with the Go field names in the docs.
//!
//! These types are the vocabulary shared by the codec (which turns them into
//! the bytes Go's go-msgpack writes) and the engine (which decides what to
//! send). They carry no behaviour.
//!
//! Go's `[]byte` fields distinguish nil (msgpack `nil`, `c0`) from empty
//! (an empty raw string, `a0`). Where an application can make that choice
//! (`Meta`, an ack's `Payload`) the field is an `Option<Bytes>`; where
//! memberlist always fills the field (addresses, versions) it is `Bytes`,
//! and an empty one is written as nil.

use bytes::Bytes;

/// The type byte that starts every memberlist message (Go's `messageType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// `pingMsg`
    Ping = 0,
    /// `indirectPingMsg`
    IndirectPing = 1,
    /// `ackRespMsg`
    Ack = 2,
    /// `suspectMsg`
    Suspect = 3,
    /// `aliveMsg`
    Alive = 4,
    /// `deadMsg`
    Dead = 5,
    /// `pushPullMsg`
    PushPull = 6,
    /// `compoundMsg`
    Compound = 7,
    /// `userMsg`
    User = 8,
    /// `compressMsg`
    Compress = 9,
    /// `encryptMsg` (never written: ckit and this crate do not encrypt).
    Encrypt = 10,
    /// `nackRespMsg`
    Nack = 11,
    /// `hasCrcMsg`
    HasCrc = 12,
    /// `errMsg`
    Err = 13,
    /// `hasLabelMsg`
    HasLabel = 244,
}

impl MessageType {
    /// The type a byte names, or `None` for a byte memberlist does not use.
    pub fn from_byte(byte: u8) -> Option<MessageType> {
        use MessageType::*;
        Some(match byte {
            0 => Ping,
            1 => IndirectPing,
            2 => Ack,
            3 => Suspect,
            4 => Alive,
            5 => Dead,
            6 => PushPull,
            7 => Compound,
            8 => User,
            9 => Compress,
            10 => Encrypt,
            11 => Nack,
            12 => HasCrc,
            13 => Err,
            244 => HasLabel,
            _ => return None,
        })
    }
}

/// A member's state as memberlist records it (Go's `NodeStateType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum NodeState {
    /// `StateAlive`
    Alive = 0,
    /// `StateSuspect`
    Suspect = 1,
    /// `StateDead`
    Dead = 2,
    /// `StateLeft`: dead by its own announcement (a graceful leave).
    Left = 3,
}

impl NodeState {
    /// The state a Go `NodeStateType` value names, or `None` for another value.
    pub fn from_value(value: u64) -> Option<NodeState> {
        Some(match value {
            0 => NodeState::Alive,
            1 => NodeState::Suspect,
            2 => NodeState::Dead,
            3 => NodeState::Left,
            _ => return None,
        })
    }
}

/// `ping`: a direct probe. The `source_*` fields (omitted when empty) say
/// where the ack should go; over gossiphttp the packet's remote address is an
/// ephemeral client port, so they are how a Go node finds its way back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ping {
    /// `SeqNo`
    pub seq_no: u32,
    /// `Node`: the name of the member being probed.
    pub node: String,
    /// `SourceAddr` (omitempty): the prober's IP, 4 or 16 bytes.
    pub source_addr: Bytes,
    /// `SourcePort` (omitempty)
    pub source_port: u16,
    /// `SourceNode` (omitempty)
    pub source_node: String,
}

/// `indirectPingReq`: asks a member to probe `node` for us.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndirectPing {
    /// `SeqNo`
    pub seq_no: u32,
    /// `Target`: the probed member's IP.
    pub target: Bytes,
    /// `Port`
    pub port: u16,
    /// `Node`: the probed member's name.
    pub node: String,
    /// `Nack`: the requester wants a nack if the target does not answer.
    pub nack: bool,
    /// `SourceAddr` (omitempty)
    pub source_addr: Bytes,
    /// `SourcePort` (omitempty)
    pub source_port: u16,
    /// `SourceNode` (omitempty)
    pub source_node: String,
}

/// `ackResp`
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ack {
    /// `SeqNo`
    pub seq_no: u32,
    /// `Payload`: the ping delegate's data; nil from ckit nodes.
    pub payload: Option<Bytes>,
}

/// `nackResp`: an indirect prober could not reach the target in time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Nack {
    /// `SeqNo`
    pub seq_no: u32,
}

/// `errResp`: a stream's error reply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorResponse {
    /// `Error`
    pub error: String,
}

/// `suspect`
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Suspect {
    /// `Incarnation`
    pub incarnation: u32,
    /// `Node`: the suspected member.
    pub node: String,
    /// `From`: the member that suspects it.
    pub from: String,
}

/// `alive`
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Alive {
    /// `Incarnation`
    pub incarnation: u32,
    /// `Node`
    pub node: String,
    /// `Addr`: the member's IP, 4 or 16 bytes.
    pub addr: Bytes,
    /// `Port`
    pub port: u16,
    /// `Meta`: the node delegate's metadata (at most 512 bytes); nil from ckit.
    pub meta: Option<Bytes>,
    /// `Vsn`: protocol min, max, current, then delegate min, max, current.
    pub vsn: Bytes,
}

/// `dead`. A dead message about oneself (`from == node`) is a graceful
/// leave: the member is recorded as [`NodeState::Left`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dead {
    /// `Incarnation`
    pub incarnation: u32,
    /// `Node`
    pub node: String,
    /// `From`
    pub from: String,
}

/// `pushPullHeader`: starts a push-pull exchange on a stream. Go's fields are
/// `int`; a negative or oversized value is refused when decoding.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushPullHeader {
    /// `Nodes`: how many [`PushNodeState`]s follow.
    pub nodes: u32,
    /// `UserStateLen`: the length of the delegate's state after them.
    pub user_state_len: u32,
    /// `Join`: the sender is joining.
    pub join: bool,
}

/// `pushNodeState`: one member in a push-pull exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushNodeState {
    /// `Name`
    pub name: String,
    /// `Addr`
    pub addr: Bytes,
    /// `Port`
    pub port: u16,
    /// `Meta`
    pub meta: Option<Bytes>,
    /// `Incarnation`
    pub incarnation: u32,
    /// `State`
    pub state: NodeState,
    /// `Vsn`
    pub vsn: Bytes,
}

/// `userMsgHeader`: precedes a user message sent on a stream. (On packets
/// a user message is the type byte `08` followed by the raw payload.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserMsgHeader {
    /// `UserMsgLen`
    pub user_msg_len: u32,
}

/// A whole push-pull exchange as one side writes it on a stream: the header
/// (`Nodes` and `UserStateLen` are these fields' lengths), every member, then
/// the delegate's user state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushPull {
    /// `Join`: the sender is joining.
    pub join: bool,
    /// The sender's view of every member.
    pub nodes: Vec<PushNodeState>,
    /// The delegate's `LocalState` (ckit's node states); empty when none.
    pub user_state: Bytes,
}

/// One message as it travels in a packet (alone, or as a part of a
/// compound). The wrappers (compound, compress, CRC, label) are the wire's
/// business, not messages of their own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// `pingMsg`
    Ping(Ping),
    /// `indirectPingMsg`
    IndirectPing(IndirectPing),
    /// `ackRespMsg`
    Ack(Ack),
    /// `nackRespMsg`
    Nack(Nack),
    /// `suspectMsg`
    Suspect(Suspect),
    /// `aliveMsg`
    Alive(Alive),
    /// `deadMsg`
    Dead(Dead),
    /// `userMsg` in a packet: the type byte, then the raw payload.
    User(Bytes),
    /// `errMsg`
    Err(ErrorResponse),
}

impl Message {
    /// The type byte this message is written with.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Ping(_) => MessageType::Ping,
            Message::IndirectPing(_) => MessageType::IndirectPing,
            Message::Ack(_) => MessageType::Ack,
            Message::Nack(_) => MessageType::Nack,
            Message::Suspect(_) => MessageType::Suspect,
            Message::Alive(_) => MessageType::Alive,
            Message::Dead(_) => MessageType::Dead,
            Message::User(_) => MessageType::User,
            Message::Err(_) => MessageType::Err,
        }
    }
}
