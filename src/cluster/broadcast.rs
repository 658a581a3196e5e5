//! Custom broadcasts riding on foca's gossip: the application's own small
//! key/value state, and notices of members leaving on purpose.

use super::identity::NodeId;
use bytes::Bytes;
use foca::{BroadcastHandler, Invalidates};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// One broadcast item, postcard-encoded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Item {
    /// `origin` set `key` to `value`; higher versions replace lower ones.
    User {
        origin: String,
        key: String,
        version: u64,
        value: Vec<u8>,
    },
    /// This member left gracefully (it is not dead).
    Left { id: NodeId },
}

impl Item {
    pub(crate) fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("broadcast items always serialize")
    }
}

/// What foca keeps to decide which broadcasts replace which.
#[derive(Debug)]
pub(crate) enum Key {
    User {
        origin: String,
        key: String,
        version: u64,
    },
    Left {
        name: String,
        generation: u64,
    },
}

impl Invalidates for Key {
    fn invalidates(&self, other: &Self) -> bool {
        match (self, other) {
            (
                Key::User {
                    origin,
                    key,
                    version,
                },
                Key::User {
                    origin: o,
                    key: k,
                    version: v,
                },
            ) => origin == o && key == k && version >= v,
            (
                Key::Left { name, generation },
                Key::Left {
                    name: n,
                    generation: g,
                },
            ) => name == n && generation >= g,
            _ => false,
        }
    }
}

/// A change to the application state gossiped by some member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateUpdate {
    /// The member that set the value.
    pub origin: String,
    /// The key it set.
    pub key: String,
    /// The value's version at its origin (grows with every set).
    pub version: u64,
    /// The value.
    pub value: Bytes,
}

/// What the broadcasts have taught this node, shared with the node's actor.
#[derive(Debug, Default)]
pub(crate) struct Learned {
    pub state: HashMap<(String, String), (u64, Bytes)>,
    pub left: HashSet<NodeId>,
}

/// Error for a broadcast that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("undecodable custom broadcast: {0}")]
pub(crate) struct BadBroadcast(String);

pub(crate) struct Handler {
    pub learned: Arc<Mutex<Learned>>,
    pub updates: broadcast::Sender<StateUpdate>,
}

impl BroadcastHandler<NodeId> for Handler {
    type Key = Key;
    type Error = BadBroadcast;

    fn receive_item(
        &mut self,
        data: &[u8],
        _sender: Option<&NodeId>,
    ) -> Result<Option<Key>, BadBroadcast> {
        let item: Item = postcard::from_bytes(data).map_err(|e| BadBroadcast(e.to_string()))?;
        let mut learned = self.learned.lock().unwrap();
        match item {
            Item::User {
                origin,
                key,
                version,
                value,
            } => {
                let slot = (origin.clone(), key.clone());
                if learned.state.get(&slot).is_some_and(|(v, _)| *v >= version) {
                    return Ok(None); // stale or already known: stop spreading it
                }
                let value = Bytes::from(value);
                learned.state.insert(slot, (version, value.clone()));
                // Nobody listening is fine.
                let _ = self.updates.send(StateUpdate {
                    origin: origin.clone(),
                    key: key.clone(),
                    version,
                    value,
                });
                Ok(Some(Key::User {
                    origin,
                    key,
                    version,
                }))
            }
            Item::Left { id } => {
                let key = Key::Left {
                    name: id.name.clone(),
                    generation: id.generation,
                };
                Ok(learned.left.insert(id).then_some(key))
            }
        }
    }
}
