//! HashiCorp memberlist's protocol, as Go memberlist v0.5 speaks it: the
//! messages, their go-msgpack encoding and the packet wrappers, and the
//! SWIM + Lifeguard engine. Runtime-free: both targets compile it.

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
