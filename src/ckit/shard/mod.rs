//! ckit's sharding (Go's `shard` package): which peers own a key.
//!
//! A [`Key`] is a `u64`, usually the XXH64 of a string ([`string_key`]) or
//! of bytes written through a [`KeyBuilder`]. A [`Sharder`] is given the
//! cluster's peers and answers [`Sharder::lookup`] with the key's owners,
//! first owner first, picking exactly the owners Go's sharder picks for the
//! same peers with the same [`Hasher`]:
//!
//! - [`Hasher::Rendezvous`]: highest random weight; the best balance, O(N)
//!   per lookup.
//! - [`Hasher::Multiprobe`]: multi-probe consistent hashing (21 probes over
//!   one token per peer); O(21 log N).
//! - [`Hasher::Ring`]: a token ring with `num_tokens` tokens per peer (ckit
//!   suggests 256 or 512); O(log N), memory grows with the tokens.
//!
//! Which peers may own a key depends on the [`Op`]: participants own keys
//! for [`Op::ReadWrite`], participants and terminating peers for
//! [`Op::Read`]; viewers never own one.
//!
//! ```
//! use gossiphttp::ckit::peer::{NodeState, Peer};
//! use gossiphttp::ckit::shard::{string_key, Op, Sharder};
//!
//! let mut sharder = Sharder::rendezvous();
//! sharder.set_peers([
//!     Peer::new("node-a", "10.0.0.1:7946", NodeState::Participant),
//!     Peer::new("node-b", "10.0.0.2:7946", NodeState::Participant),
//!     Peer::new("node-c", "10.0.0.3:7946", NodeState::Terminating),
//!     Peer::new("node-d", "10.0.0.4:7946", NodeState::Viewer),
//! ]);
//!
//! let key = string_key("tenant-42");
//! let writers = sharder.lookup(key, 2, Op::ReadWrite)?;
//! assert_eq!(writers.len(), 2);
//! assert!(writers.iter().all(|p| p.state == NodeState::Participant));
//!
//! // Only two participants: a third write owner does not exist.
//! assert!(sharder.lookup(key, 3, Op::ReadWrite).is_err());
//! // For reads the terminating peer still counts.
//! assert_eq!(sharder.lookup(key, 3, Op::Read)?.len(), 3);
//! # Ok::<(), gossiphttp::ckit::shard::LookupError>(())
//! ```

pub mod internals;
mod table;

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroUsize;

use xxhash_rust::xxh64::{xxh64, Xxh64};

use super::peer::{NodeState, Peer};
use table::Table;

/// A key whose owners a [`Sharder`] looks up (Go's `shard.Key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Key(pub u64);

impl From<u64> for Key {
    fn from(value: u64) -> Self {
        Key(value)
    }
}

impl From<Key> for u64 {
    fn from(key: Key) -> Self {
        key.0
    }
}

/// The key of a string (Go's `shard.StringKey`): XXH64, seed 0, of its
/// bytes. Go's strings may hold any bytes, so any bytes are taken here too
/// (`&str`, `String`, `&[u8]`, ...).
pub fn string_key(s: impl AsRef<[u8]>) -> Key {
    Key(xxh64(s.as_ref(), internals::SEED))
}

/// Builds a key from bytes written in pieces (Go's `shard.KeyBuilder`): the
/// key of the pieces is the key of their concatenation, so
/// `KeyBuilder::new().write(b"ab").write(b"c").key() == string_key("abc")`.
#[derive(Clone)]
pub struct KeyBuilder {
    stream: Xxh64,
}

impl KeyBuilder {
    /// An empty builder (its key is `string_key("")`).
    pub fn new() -> Self {
        Self {
            stream: Xxh64::new(internals::SEED),
        }
    }

    /// Appends `bytes` to the key's input.
    pub fn write(&mut self, bytes: &[u8]) -> &mut Self {
        self.stream.update(bytes);
        self
    }

    /// The key of everything written since the builder was made or reset.
    pub fn key(&self) -> Key {
        Key(self.stream.digest())
    }

    /// Empties the builder, to build another key.
    pub fn reset(&mut self) {
        self.stream.reset(internals::SEED);
    }
}

impl Default for KeyBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for KeyBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyBuilder")
            .field("key", &self.key())
            .finish()
    }
}

impl std::io::Write for KeyBuilder {
    /// Appends all of `buf`; never fails (Go's `KeyBuilder` is an
    /// `io.Writer`).
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        KeyBuilder::write(self, buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What a lookup's owners will be used for (Go's `shard.Op`); it decides
/// which peers are eligible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Reads: participants and terminating peers are eligible (Go's
    /// `OpRead`, 0).
    Read,
    /// Reads and writes: only participants are eligible (Go's
    /// `OpReadWrite`, 1).
    ReadWrite,
}

impl Op {
    /// Whether a peer in `state` may own keys for this op. Viewers never do.
    pub const fn admits(self, state: NodeState) -> bool {
        match self {
            Op::Read => matches!(state, NodeState::Participant | NodeState::Terminating),
            Op::ReadWrite => matches!(state, NodeState::Participant),
        }
    }

    /// Which peers the op admits, in words (for errors).
    const fn eligible(self) -> &'static str {
        match self {
            Op::Read => "participant and terminating peers",
            Op::ReadWrite => "participant peers",
        }
    }
}

impl fmt::Display for Op {
    /// Go's spelling: `Read`, `ReadWrite`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Read => "Read",
            Op::ReadWrite => "ReadWrite",
        })
    }
}

/// The hashing algorithms ckit offers (Go's `shard.Rendezvous()`,
/// `shard.Multiprobe()`, `shard.Ring(numTokens)`). ckit has no default: the
/// application picks one, and every node of a cluster must pick the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hasher {
    /// Rendezvous (highest random weight) hashing.
    Rendezvous,
    /// Multi-probe consistent hashing (<https://arxiv.org/abs/1505.00062>).
    Multiprobe,
    /// A consistent-hash ring with this many tokens per peer. Go accepts 0
    /// and then panics on lookup; here it cannot be 0.
    Ring(NonZeroUsize),
}

impl Hasher {
    /// Grafana Alloy's ring (`shard.Ring(512)`): what `ring` means without a
    /// token count.
    pub const ALLOY_RING_TOKENS: NonZeroUsize = match NonZeroUsize::new(512) {
        Some(tokens) => tokens,
        None => unreachable!(),
    };

    /// The most tokens per peer a parsed ring may have (a ring's memory
    /// and build time grow with peers × tokens).
    pub const MAX_RING_TOKENS: usize = 65_536;

    /// `ring`, `rendezvous` or `multiprobe`.
    pub fn name(self) -> &'static str {
        match self {
            Hasher::Ring(_) => "ring",
            Hasher::Rendezvous => "rendezvous",
            Hasher::Multiprobe => "multiprobe",
        }
    }

    /// The ring's tokens per peer; `None` for the other hashers.
    pub fn tokens_per_peer(self) -> Option<usize> {
        match self {
            Hasher::Ring(tokens) => Some(tokens.get()),
            _ => None,
        }
    }
}

/// The names [`Hasher`]'s `FromStr` takes: `rendezvous`, `multiprobe`,
/// `ring` (Alloy's 512 tokens per peer) or `ring:N` (N tokens, 1 to
/// [`Hasher::MAX_RING_TOKENS`]). `Display` writes the same names back.
///
/// ```
/// use gossiphttp::ckit::shard::Hasher;
///
/// assert_eq!("ring".parse::<Hasher>()?, Hasher::Ring(Hasher::ALLOY_RING_TOKENS));
/// assert_eq!("ring:256".parse::<Hasher>()?.tokens_per_peer(), Some(256));
/// assert_eq!("rendezvous".parse::<Hasher>()?.to_string(), "rendezvous");
/// assert!("md5".parse::<Hasher>().is_err());
/// # Ok::<(), gossiphttp::ckit::shard::ParseHasherError>(())
/// ```
impl std::str::FromStr for Hasher {
    type Err = ParseHasherError;

    fn from_str(s: &str) -> Result<Hasher, ParseHasherError> {
        let bad = || ParseHasherError(s.to_owned());
        match s {
            "ring" => Ok(Hasher::Ring(Hasher::ALLOY_RING_TOKENS)),
            "rendezvous" => Ok(Hasher::Rendezvous),
            "multiprobe" => Ok(Hasher::Multiprobe),
            _ => {
                let tokens = s.strip_prefix("ring:").ok_or_else(bad)?;
                let tokens: usize = tokens.parse().map_err(|_| bad())?;
                if tokens > Hasher::MAX_RING_TOKENS {
                    return Err(bad());
                }
                NonZeroUsize::new(tokens).map(Hasher::Ring).ok_or_else(bad)
            }
        }
    }
}

impl fmt::Display for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hasher::Ring(tokens) if *tokens != Hasher::ALLOY_RING_TOKENS => {
                write!(f, "ring:{tokens}")
            }
            other => f.write_str(other.name()),
        }
    }
}

/// A hasher name that is not one of ckit's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown hasher {0:?}: use ring (Alloy's {alloy} tokens per peer), ring:N (N tokens, 1 to \
     {max}), rendezvous or multiprobe",
    alloy = Hasher::ALLOY_RING_TOKENS,
    max = Hasher::MAX_RING_TOKENS
)]
pub struct ParseHasherError(pub String);

/// A lookup that cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// Fewer peers are eligible for the op than owners were asked for. The
    /// message begins with Go's (`not enough nodes: need at least N, have
    /// M`).
    #[error(
        "not enough nodes: need at least {needed}, have {eligible} ({op} lookups count only \
         {admitted}); ask for fewer owners, or wait until more peers are participants",
        admitted = .op.eligible()
    )]
    NotEnoughPeers {
        /// The owners asked for.
        needed: usize,
        /// The peers eligible for `op`.
        eligible: usize,
        /// The lookup's op.
        op: Op,
    },
}

/// Looks up the owners of keys among a cluster's peers (Go's
/// `shard.Sharder`). A ckit node hands it every peer, sorted or not, each
/// time its peer view changes ([`set_peers`](Self::set_peers)).
#[derive(Debug, Clone)]
pub struct Sharder {
    hasher: Hasher,
    /// The peers eligible for [`Op::Read`] (all but viewers), sorted by
    /// name. Table ranks index `read_write_ranks` or this list.
    peers: Vec<Peer>,
    read: Table,
    read_write: Table,
    /// For each rank in `read_write`, the index of its peer in `peers`.
    read_write_ranks: Vec<usize>,
}

impl Sharder {
    /// A sharder with `hasher` and no peers yet.
    pub fn new(hasher: Hasher) -> Self {
        let mut sharder = Self {
            hasher,
            peers: Vec::new(),
            read: Table::rendezvous(&[]),
            read_write: Table::rendezvous(&[]),
            read_write_ranks: Vec::new(),
        };
        sharder.set_peers([]);
        sharder
    }

    /// A rendezvous sharder (Go's `shard.Rendezvous()`).
    pub fn rendezvous() -> Self {
        Self::new(Hasher::Rendezvous)
    }

    /// A multi-probe sharder (Go's `shard.Multiprobe()`).
    pub fn multiprobe() -> Self {
        Self::new(Hasher::Multiprobe)
    }

    /// A ring sharder with `num_tokens` tokens per peer (Go's
    /// `shard.Ring(numTokens)`).
    pub fn ring(num_tokens: NonZeroUsize) -> Self {
        Self::new(Hasher::Ring(num_tokens))
    }

    /// The sharder's hashing algorithm.
    pub fn hasher(&self) -> Hasher {
        self.hasher
    }

    /// Replaces the peers keys are sharded over (Go's `SetPeers`). Viewers
    /// are dropped; terminating peers are kept for [`Op::Read`] only. When
    /// two peers share a name the last one given counts (names are unique in
    /// a cluster; Go would shard over both).
    pub fn set_peers(&mut self, peers: impl IntoIterator<Item = Peer>) {
        // Names first (the last peer of a name wins, viewer or not), then
        // the viewers go.
        let by_name: BTreeMap<String, Peer> = peers
            .into_iter()
            .map(|peer| (peer.name.clone(), peer))
            .collect();
        self.peers = by_name
            .into_values()
            .filter(|peer| Op::Read.admits(peer.state))
            .collect();
        self.read_write_ranks = (0..self.peers.len())
            .filter(|&i| Op::ReadWrite.admits(self.peers[i].state))
            .collect();

        let read_names: Vec<&str> = self.peers.iter().map(|p| p.name.as_str()).collect();
        let read_write_names: Vec<&str> = self
            .read_write_ranks
            .iter()
            .map(|&i| read_names[i])
            .collect();
        let build = |names: &[&str]| match self.hasher {
            Hasher::Rendezvous => Table::rendezvous(names),
            Hasher::Multiprobe => Table::multiprobe(names),
            Hasher::Ring(num_tokens) => Table::ring(names, num_tokens),
        };
        self.read = build(&read_names);
        self.read_write = build(&read_write_names);
    }

    /// The peers keys are sharded over (participants and terminating
    /// peers), sorted by name (Go's `Peers`).
    pub fn peers(&self) -> &[Peer] {
        &self.peers
    }

    /// The `n` owners of `key` for `op`, first owner first (Go's `Lookup`).
    /// `n == 0` gives no owners; more owners than eligible peers is an
    /// error.
    pub fn lookup(&self, key: Key, n: usize, op: Op) -> Result<Vec<Peer>, LookupError> {
        let table = self.table(op);
        let eligible = table.nodes();
        if n > eligible {
            return Err(LookupError::NotEnoughPeers {
                needed: n,
                eligible,
                op,
            });
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        Ok(table
            .owners(key.0, n)
            .into_iter()
            .map(|rank| self.peers[self.peer_index(op, rank)].clone())
            .collect())
    }

    /// The token circle a lookup for `op` searches, in order, with each
    /// token's peer name: `num_tokens` per peer for a ring, one per peer
    /// (the XXH64 of its name) for multiprobe, none for rendezvous (it
    /// scores every peer per key instead). For inspecting a distribution.
    pub fn tokens(&self, op: Op) -> Vec<(&str, u64)> {
        self.table(op)
            .tokens()
            .iter()
            .map(|&(token, rank)| (self.peers[self.peer_index(op, rank)].name.as_str(), token))
            .collect()
    }

    fn table(&self, op: Op) -> &Table {
        match op {
            Op::Read => &self.read,
            Op::ReadWrite => &self.read_write,
        }
    }

    /// The index in `peers` of the peer at `rank` in `op`'s table.
    fn peer_index(&self, op: Op, rank: usize) -> usize {
        match op {
            Op::Read => rank,
            Op::ReadWrite => self.read_write_ranks[rank],
        }
    }
}

#[cfg(test)]
mod tests;
