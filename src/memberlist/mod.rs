//! HashiCorp memberlist's protocol, as Go memberlist v0.5 speaks it: the
//! messages, their go-msgpack encoding and the packet wrappers, and the
//! SWIM + Lifeguard engine. Runtime-free: both targets compile it.

pub mod engine;
pub mod message;
