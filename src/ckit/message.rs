//! ckit's messages, byte-for-byte as grafana/ckit writes them.
//!
//! - A node-state message ([`State`]): magic `12 01`, type `01`, then
//!   msgpack `State{NewState, NodeName, Time}`. ckit gossips it as a
//!   memberlist user message (a broadcast: memberlist puts its `08` type byte
//!   before it, [`State::encode_user_message`]).
//! - ckit's push-pull user state ([`LocalState`]): plain msgpack
//!   `localState{CurrentTime, NodeStates}`, no magic.
//!
//! ```
//! use gossiphttp::ckit::message::{NodeState, State};
//!
//! let state = State { node_name: "node-a".into(), new_state: NodeState::Participant, time: 1 };
//! let bytes = state.encode();
//! assert_eq!(&bytes[..3], [0x12, 0x01, 0x01]);
//! assert_eq!(State::decode(&bytes), Ok(state));
//! ```

use crate::memberlist::msgpack::{
    write_array_len, write_map_len, write_nil, write_raw, write_uint, DecodeError, Reader,
};
use crate::memberlist::wire::read_struct;
use std::fmt;

/// ckit's message magic, big-endian `0x1201`.
pub const MAGIC: [u8; 2] = [0x12, 0x01];
/// ckit's `TypeState`.
pub const TYPE_STATE: u8 = 1;
/// memberlist's user-message type byte, which precedes a broadcast.
const USER_MSG: u8 = 8;

pub use super::peer::NodeState;

/// Why bytes are not a ckit message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageError {
    /// Fewer than 3 bytes, or a magic other than `12 01`: not a ckit message.
    NotCkit,
    /// A message type ckit does not define (only 1, `TypeState`, exists;
    /// 0 is `TypeInvalid`).
    UnknownType(u8),
    /// The msgpack body did not decode.
    Decode(DecodeError),
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageError::NotCkit => f.write_str("not a ckit message (no 0x1201 magic)"),
            MessageError::UnknownType(t) => {
                write!(f, "unknown ckit message type {t} (ckit knows 1, State)")
            }
            MessageError::Decode(e) => write!(f, "bad ckit message: {e}"),
        }
    }
}

impl std::error::Error for MessageError {}

impl From<DecodeError> for MessageError {
    fn from(e: DecodeError) -> Self {
        MessageError::Decode(e)
    }
}

/// ckit's `messages.State`: a node announcing its state at a lamport time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// `NodeName`
    pub node_name: String,
    /// `NewState`
    pub new_state: NodeState,
    /// `Time`: the lamport time of the change.
    pub time: u64,
}

impl State {
    /// A message that `node_name` is in `new_state` at lamport time `time`.
    pub fn new(node_name: impl Into<String>, new_state: NodeState, time: u64) -> Self {
        State {
            node_name: node_name.into(),
            new_state,
            time,
        }
    }

    fn write_msgpack(&self, out: &mut Vec<u8>) {
        write_map_len(out, 3);
        write_raw(out, b"NewState");
        write_uint(out, self.new_state as u64);
        write_raw(out, b"NodeName");
        write_raw(out, self.node_name.as_bytes());
        write_raw(out, b"Time");
        write_uint(out, self.time);
    }

    /// Reads the msgpack map, keeping `NewState` as Go's raw `uint`.
    fn read_raw(r: &mut Reader<'_>) -> Result<(String, u64, u64), DecodeError> {
        let (mut name, mut new_state, mut time) = (String::new(), 0, 0);
        read_struct(r, "State", |k, r| {
            match k {
                b"NodeName" => name = r.read_str("NodeName")?.to_owned(),
                b"NewState" => new_state = r.read_uint("NewState", u64::MAX)?,
                b"Time" => time = r.read_uint("Time", u64::MAX)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok((name, new_state, time))
    }

    fn read(r: &mut Reader<'_>) -> Result<State, DecodeError> {
        let (node_name, value, time) = State::read_raw(r)?;
        let new_state = NodeState::try_from(value)
            .ok()
            .ok_or(DecodeError::UnknownValue {
                field: "NewState",
                value,
            })?;
        Ok(State {
            node_name,
            new_state,
            time,
        })
    }

    /// The message as ckit's `messages.Encode` writes it: magic, type, msgpack.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(40 + self.node_name.len());
        out.extend_from_slice(&MAGIC);
        out.push(TYPE_STATE);
        self.write_msgpack(&mut out);
        out
    }

    /// The message as memberlist gossips ckit's broadcast: `08`, then
    /// [`State::encode`]'s bytes.
    pub fn encode_user_message(&self) -> Vec<u8> {
        let mut out = vec![USER_MSG];
        out.extend(self.encode());
        out
    }

    /// Reads a message as ckit's `messages.Parse` + `Decode` do (the payload
    /// of a memberlist user message, without its `08`).
    ///
    /// A state other than viewer, participant or terminating is refused
    /// ([`DecodeError::UnknownValue`]); Go's ckit would store it, but no
    /// ckit sends one and no rule of ckit's gives it a meaning.
    pub fn decode(bytes: &[u8]) -> Result<State, MessageError> {
        match bytes {
            [0x12, 0x01, TYPE_STATE, body @ ..] => Ok(State::read(&mut Reader::new(body))?),
            [0x12, 0x01, other, ..] => Err(MessageError::UnknownType(*other)),
            _ => Err(MessageError::NotCkit),
        }
    }
}

/// ckit's push-pull user state (`localState`): the sender's lamport clock
/// and every node state it knows. Go's map iteration orders `node_states`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalState {
    /// `CurrentTime`: the sender's lamport clock.
    pub current_time: u64,
    /// `NodeStates`. `None` is Go's nil slice (`c0`); ckit's own nodes
    /// always send a list (`90` when empty).
    pub node_states: Option<Vec<State>>,
}

impl LocalState {
    /// The bytes ckit's `encodeLocalState` writes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        write_map_len(&mut out, 2);
        write_raw(&mut out, b"CurrentTime");
        write_uint(&mut out, self.current_time);
        write_raw(&mut out, b"NodeStates");
        match &self.node_states {
            None => write_nil(&mut out),
            Some(states) => {
                write_array_len(&mut out, states.len().min(u32::MAX as usize) as u32);
                for state in states {
                    state.write_msgpack(&mut out);
                }
            }
        }
        out
    }

    /// Reads ckit's `decodeLocalState` input. The list's announced length
    /// is checked against the input before anything is reserved. Entries
    /// with a state this codec does not know (see [`State::decode`]) are
    /// left out rather than failing the whole list.
    pub fn decode(bytes: &[u8]) -> Result<LocalState, DecodeError> {
        let mut r = Reader::new(bytes);
        let mut local = LocalState::default();
        read_struct(&mut r, "localState", |k, r| {
            match k {
                b"CurrentTime" => local.current_time = r.read_uint("CurrentTime", u64::MAX)?,
                b"NodeStates" => {
                    let Some(count) = r.read_array_len("NodeStates")? else {
                        local.node_states = None;
                        return Ok(true);
                    };
                    // Each state takes at least one byte.
                    let mut states = Vec::with_capacity((count as usize).min(r.rest().len()));
                    for _ in 0..count {
                        let (node_name, value, time) = State::read_raw(r)?;
                        if let Ok(new_state) = NodeState::try_from(value) {
                            states.push(State {
                                node_name,
                                new_state,
                                time,
                            });
                        }
                    }
                    local.node_states = Some(states);
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(local)
    }
}

/// The table's push-pull state as ckit writes it (always a list, as ckit's
/// own nodes send).
impl From<&crate::ckit::states::PushPullState> for LocalState {
    fn from(state: &crate::ckit::states::PushPullState) -> Self {
        LocalState {
            current_time: state.current_time,
            node_states: Some(state.node_states.clone()),
        }
    }
}

/// A received push-pull state for the table (a nil list is an empty one).
impl From<LocalState> for crate::ckit::states::PushPullState {
    fn from(local: LocalState) -> Self {
        crate::ckit::states::PushPullState {
            current_time: local.current_time,
            node_states: local.node_states.unwrap_or_default(),
        }
    }
}
