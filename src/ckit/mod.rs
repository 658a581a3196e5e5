//! grafana/ckit's layer on top of memberlist, runtime-free: the node states
//! a ckit node announces (viewer, participant, terminating) and the rules
//! that order them by lamport time, the peer view a node builds from
//! memberlist's events, and ckit's sharding, which picks the same owners
//! for a key as Go's `shard` package.
//!
//! - [`lamport`]: the lamport clock that stamps state messages.
//! - [`peer`]: the states, their allowed changes, and a peer as a node sees
//!   it.
//! - [`states`]: the table a node keeps of every member's state (Go's
//!   `nodeDelegate`): what to do on memberlist's events, on a peer's State
//!   message and on a push-pull.
//! - [`shard`]: keys and the three hashers ckit offers.
//!
//! Nothing here does I/O or reads a clock: it compiles for `wasm32` as well.
//!
//! ```
//! use gossiphttp::ckit::peer::NodeState;
//! use gossiphttp::ckit::shard::{string_key, Op, Sharder};
//! use gossiphttp::ckit::states::NodeStates;
//!
//! // What memberlist and the gossip told node-a.
//! let mut node = NodeStates::new("node-a");
//! node.member_joined("node-a", "10.0.0.1:7946");
//! node.member_joined("node-b", "10.0.0.2:7946");
//! let _gossip = node.change_state(NodeState::Participant)?;
//!
//! // Only node-a is a participant so far: it owns every key.
//! let mut sharder = Sharder::rendezvous();
//! sharder.set_peers(node.peers());
//! let owners = sharder.lookup(string_key("tenant-42"), 1, Op::ReadWrite)?;
//! assert_eq!(owners[0].name, "node-a");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod lamport;
pub mod message;
pub mod peer;
pub mod shard;
pub mod states;
