//! grafana/ckit's layer on top of memberlist, runtime-free: the node states
//! a ckit node announces (viewer, participant, terminating) and the rules
//! that order them by lamport time, and the peer view a node
//! builds from memberlist's events.
//!
//! - [`lamport`]: the lamport clock that stamps state messages.
//! - [`peer`]: the states, their allowed changes, and a peer as a node sees
//!   it.
//! - [`states`]: the table a node keeps of every member's state (Go's
//!   `nodeDelegate`): what to do on memberlist's events, on a peer's State
//!   message and on a push-pull.
//!
//! Nothing here does I/O or reads a clock: it compiles for `wasm32` as well.

pub mod lamport;
// pub mod message; (ckit's message encoding: the codec helper's module)
pub mod peer;
pub mod states;
