//! Each message's go-msgpack form: a map keyed by the Go field names,
//! sorted by name, exactly as memberlist v0.5.3 writes it.
//!
//! ```
//! use gossiphttp::memberlist::message::{Ack, Message};
//!
//! let ack = Message::Ack(Ack { seq_no: 1, payload: None });
//! let bytes = ack.to_vec();
//! // ackRespMsg, then {"Payload": nil, "SeqNo": 1}
//! assert_eq!(bytes, b"\x02\x82\xa7Payload\xc0\xa5SeqNo\x01");
//! assert_eq!(Message::decode(&bytes), Ok(ack));
//! ```

use super::message::{
    Ack, Alive, Dead, ErrorResponse, IndirectPing, Message, MessageType, Nack, Ping, PushNodeState,
    PushPullHeader, Suspect, UserMsgHeader,
};
use super::msgpack::{write_bytes, ByteCount, DecodeError, Reader, Sink};
use super::wire_error::WireError;
use bytes::Bytes;

mod structs;
pub use structs::Compressed;

const U16: u64 = u16::MAX as u64;
const U32: u64 = u32::MAX as u64;

/// A Go struct in go-msgpack's map form, without a type byte.
pub trait GoMsgpack: Sized {
    /// Appends the struct's msgpack map, as memberlist v0.5.3 writes it.
    fn encode_msgpack(&self, out: &mut Vec<u8>);

    /// Reads one struct from the start of `input`; returns it and the number
    /// of bytes it took. Bytes after it are not looked at.
    fn decode_msgpack(input: &[u8]) -> Result<(Self, usize), DecodeError>;
}

/// The crate's side of [`GoMsgpack`]: reading from a shared cursor, so that
/// a stream's consecutive structs are read in one pass.
pub(crate) trait MsgpackStruct: Sized {
    fn write_go(&self, out: &mut impl Sink);
    fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

macro_rules! go_msgpack {
    ($($ty:ty),* $(,)?) => {$(
        impl GoMsgpack for $ty {
            fn encode_msgpack(&self, out: &mut Vec<u8>) {
                MsgpackStruct::write_go(self, out)
            }

            fn decode_msgpack(input: &[u8]) -> Result<(Self, usize), DecodeError> {
                let mut reader = Reader::new(input);
                let value = <$ty as MsgpackStruct>::read(&mut reader)?;
                Ok((value, reader.position()))
            }
        }
    )*};
}

go_msgpack!(
    Ping,
    IndirectPing,
    Ack,
    Nack,
    ErrorResponse,
    Suspect,
    Dead,
    Alive,
    PushPullHeader,
    PushNodeState,
    UserMsgHeader,
    Compressed,
);

/// Reads a struct's map: `field` is offered each key with the reader at its
/// value and returns whether it consumed the value; unknown keys are skipped
/// as Go skips them, and a repeated key overwrites (as in Go).
pub(crate) fn read_struct<'a>(
    r: &mut Reader<'a>,
    what: &'static str,
    mut field: impl FnMut(&[u8], &mut Reader<'a>) -> Result<bool, DecodeError>,
) -> Result<(), DecodeError> {
    let pairs = r.read_map_len(what)?;
    for _ in 0..pairs {
        let key = r.read_opt_bytes("map key")?.unwrap_or_default();
        if !field(key, r)? {
            r.skip_value()?;
        }
    }
    Ok(())
}

/// Decodes a message body, tagging an error with the message's type.
pub(crate) fn decode_body<T: MsgpackStruct>(
    message: MessageType,
    body: &[u8],
) -> Result<T, WireError> {
    T::read(&mut Reader::new(body)).map_err(|error| WireError::Decode { message, error })
}

/// A message encoded once (type byte first), for any number of packets to
/// carry: a broadcast goes out up to the retransmit limit's times, and
/// encoding it again for each (after a clone) was 7% of the CPU of a
/// 500-member process (benches/RESULTS.md). Clones share the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedMessage(Bytes);

impl EncodedMessage {
    /// Encodes `message` ([`Message::encode`]).
    pub fn new(message: &Message) -> Self {
        EncodedMessage(Bytes::from(message.to_vec()))
    }

    /// The bytes, type byte first.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Its length: what it costs in a packet's budget, before the
    /// compound's 2 bytes per part ([`Message::encoded_len`]).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true for an encoded message (it has a type byte at least).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The message again ([`Message::decode`]).
    pub fn decode(&self) -> Result<Message, WireError> {
        Message::decode(&self.0)
    }
}

impl AsRef<[u8]> for EncodedMessage {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Message {
    /// Appends the message as memberlist writes it in a packet: its type
    /// byte, then its msgpack body (for a user message, the raw payload).
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.write_to(out);
    }

    fn write_to(&self, out: &mut impl Sink) {
        write_bytes(out, &[self.message_type() as u8]);
        match self {
            Message::Ping(m) => m.write_go(out),
            Message::IndirectPing(m) => m.write_go(out),
            Message::Ack(m) => m.write_go(out),
            Message::Nack(m) => m.write_go(out),
            Message::Suspect(m) => m.write_go(out),
            Message::Alive(m) => m.write_go(out),
            Message::Dead(m) => m.write_go(out),
            Message::User(payload) => write_bytes(out, payload),
            Message::Err(m) => m.write_go(out),
        }
    }

    /// The message's bytes (type byte first).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// The exact number of bytes [`Message::encode`] writes: what the
    /// message costs in a packet's budget (memberlist's `UDPBufferSize`),
    /// before the compound overhead of 2 bytes per part.
    /// Counted without allocating.
    pub fn encoded_len(&self) -> usize {
        let mut count = ByteCount::default();
        self.write_to(&mut count);
        count.0
    }

    /// Reads one message as it appears in a packet or a compound part. The
    /// wrappers (compound, compress, CRC, label) are refused here: the packet
    /// decoder peels them. Bytes after the msgpack body are ignored, as Go's
    /// decoder ignores them.
    pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
        let (&type_byte, body) = bytes.split_first().ok_or(WireError::Empty)?;
        let message = MessageType::from_byte(type_byte).ok_or(WireError::UnknownType(type_byte))?;
        Ok(match message {
            MessageType::Ping => Message::Ping(decode_body(message, body)?),
            MessageType::IndirectPing => Message::IndirectPing(decode_body(message, body)?),
            MessageType::Ack => Message::Ack(decode_body(message, body)?),
            MessageType::Nack => Message::Nack(decode_body(message, body)?),
            MessageType::Suspect => Message::Suspect(decode_body(message, body)?),
            MessageType::Alive => Message::Alive(decode_body(message, body)?),
            MessageType::Dead => Message::Dead(decode_body(message, body)?),
            MessageType::User => Message::User(Bytes::copy_from_slice(body)),
            MessageType::Err => Message::Err(decode_body(message, body)?),
            found @ (MessageType::PushPull
            | MessageType::Compound
            | MessageType::Compress
            | MessageType::Encrypt
            | MessageType::HasCrc
            | MessageType::HasLabel) => {
                return Err(WireError::UnexpectedType {
                    found,
                    context: "as a single message",
                })
            }
        })
    }
}
