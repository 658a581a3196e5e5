//! HashiCorp memberlist's protocol, as Go memberlist v0.5 speaks it: the
//! messages, their go-msgpack encoding and the packet wrappers, and the
//! SWIM + Lifeguard engine. Runtime-free: both targets compile it.
//!
//! The wire format, byte for byte as memberlist v0.5.3 writes it (and
//! reading v0.5.0's forms too):
//! - [`message`]: the messages as typed values;
//! - [`wire`]: each message's go-msgpack encoding ([`wire::GoMsgpack`],
//!   [`message::Message::encode`] / [`decode`](message::Message::decode));
//! - [`packet`]: the layers around packets (label, CRC, LZW compression,
//!   compound), an encoder with memberlist's send options and a decoder
//!   with its label rules;
//! - [`stream`]: what travels on a stream (push-pull, user messages, the
//!   TCP ping and its ack, error replies) and an incremental, bounded
//!   decoder for it;
//! - [`lzw`]: Go's `compress/lzw` (LSB, literal width 8).
//!
//! Decoders return a [`WireError`] (or [`DecodeError`] for a msgpack body),
//! never panic, and allocate nothing from a length they did not check.
//!
//! ```
//! use gossiphttp::memberlist::message::{Alive, Message, Ping};
//! use gossiphttp::memberlist::packet::{decode_packet, encode_packets, LabelPolicy, PacketOptions};
//!
//! // A probe with an alive piggybacked, as gossip to a known member sends it.
//! let messages = vec![
//!     Message::Ping(Ping { seq_no: 1, node: "node-b".into(), ..Ping::default() }),
//!     Message::Alive(Alive {
//!         incarnation: 1,
//!         node: "node-a".into(),
//!         addr: vec![127, 0, 0, 1].into(),
//!         port: 7946,
//!         meta: None,
//!         vsn: vec![1, 5, 2, 0, 0, 0].into(),
//!     }),
//! ];
//! let options = PacketOptions { label: "", crc: true, compress: true };
//! let packets = encode_packets(&messages, &options).unwrap();
//! assert_eq!(packets.len(), 1); // one compound
//! let decoded = decode_packet(&packets[0], &LabelPolicy::default()).unwrap();
//! assert_eq!(decoded.messages, messages);
//! ```

pub mod engine;
pub mod lzw;
pub mod message;
pub(crate) mod msgpack;
pub mod packet;
pub mod stream;
pub mod wire;
mod wire_error;

pub use msgpack::DecodeError;
pub use wire_error::WireError;

#[cfg(test)]
mod wire_tests;
