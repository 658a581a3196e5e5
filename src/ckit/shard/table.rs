//! The three hash tables behind a [`Sharder`](super::Sharder), one per
//! hasher ckit offers (Go's `internal/chash`). A table is built over a list
//! of node names sorted ascending and distinct; it answers with ranks in
//! that list, so a node's rank orders it exactly as Go orders by name (ties
//! between equal tokens or scores go to the name that sorts first).

use std::num::NonZeroUsize;

use super::internals::{node_hash, ring_tokens, second_key, xorshift_mult64};

/// How many probes multiprobe makes per lookup (Go's `K`, fixed at 21 in
/// `chash.multiprobe.Get`).
const MULTIPROBE_PROBES: u64 = 21;

/// A position on a circle of `u64`s and the rank of the node it belongs to.
/// Sorted by token, then rank (i.e. name), as Go's `byRingToken`.
type Token = (u64, usize);

#[derive(Debug, Clone)]
pub(super) enum Table {
    /// Each node's name hash, by rank.
    Rendezvous { hashes: Vec<u64> },
    /// One token per node (its name hash), sorted.
    Multiprobe { tokens: Vec<Token> },
    /// `num_tokens` tokens per node, sorted.
    Ring { tokens: Vec<Token>, nodes: usize },
}

impl Table {
    pub(super) fn rendezvous(names: &[&str]) -> Self {
        Table::Rendezvous {
            hashes: names.iter().map(|name| node_hash(name)).collect(),
        }
    }

    pub(super) fn multiprobe(names: &[&str]) -> Self {
        let mut tokens: Vec<Token> = names
            .iter()
            .enumerate()
            .map(|(rank, name)| (node_hash(name), rank))
            .collect();
        tokens.sort_unstable();
        Table::Multiprobe { tokens }
    }

    pub(super) fn ring(names: &[&str], num_tokens: NonZeroUsize) -> Self {
        // 16 bytes per token: memory grows with peers x tokens, as in Go. The
        // reservation is capped; an absurd token count fails by growing, not
        // by an overflowed product.
        let wanted = names.len().saturating_mul(num_tokens.get());
        let mut tokens: Vec<Token> = Vec::with_capacity(wanted.min(1 << 20));
        for (rank, name) in names.iter().enumerate() {
            tokens.extend(ring_tokens(name, num_tokens.get()).map(|token| (token, rank)));
        }
        tokens.sort_unstable();
        Table::Ring {
            tokens,
            nodes: names.len(),
        }
    }

    /// How many nodes the table holds.
    pub(super) fn nodes(&self) -> usize {
        match self {
            Table::Rendezvous { hashes } => hashes.len(),
            Table::Multiprobe { tokens } => tokens.len(),
            Table::Ring { nodes, .. } => *nodes,
        }
    }

    /// The sorted token circle (empty for rendezvous, which has none).
    pub(super) fn tokens(&self) -> &[Token] {
        match self {
            Table::Rendezvous { .. } => &[],
            Table::Multiprobe { tokens } | Table::Ring { tokens, .. } => tokens,
        }
    }

    /// The ranks of the `n` owners of `key`, first owner first. The caller
    /// checked `1 <= n <= self.nodes()`.
    pub(super) fn owners(&self, key: u64, n: usize) -> Vec<usize> {
        debug_assert!(n >= 1 && n <= self.nodes());
        match self {
            Table::Rendezvous { hashes } => rendezvous_owners(hashes, key, n),
            Table::Multiprobe { tokens } => multiprobe_owners(tokens, key, n),
            Table::Ring { tokens, nodes } => ring_owners(tokens, *nodes, key, n),
        }
    }
}

/// Rendezvous (Go's `chash.rendezvous.Get`): every node scores the key, the
/// `n` lowest scores own it, ties to the name that sorts first.
fn rendezvous_owners(hashes: &[u64], key: u64, n: usize) -> Vec<usize> {
    let mut scores: Vec<(u64, usize)> = hashes
        .iter()
        .enumerate()
        .map(|(rank, hash)| (xorshift_mult64(key ^ hash), rank))
        .collect();
    if n < scores.len() {
        scores.select_nth_unstable(n);
        scores.truncate(n);
    }
    scores.sort_unstable();
    scores.into_iter().map(|(_, rank)| rank).collect()
}

/// Multiprobe (Go's `chash.multiprobe.Get`): 21 probes `h1 + k*h2`
/// (wrapping) with `h1 = second_key(key)`, `h2 = second_key(h1)`; the token
/// nearest to any probe (the earliest probe on a tie) is the first owner,
/// the nodes of the tokens after it (wrapping) the others. With one token per
/// node they are distinct.
fn multiprobe_owners(tokens: &[Token], key: u64, n: usize) -> Vec<usize> {
    let h1 = second_key(key);
    let h2 = second_key(h1);
    let mut best = (0, u64::MAX); // (index, distance), as Go starts
    for k in 0..MULTIPROBE_PROBES {
        let probe = h1.wrapping_add(k.wrapping_mul(h2));
        let index = nearest_token(tokens, probe);
        let distance = tokens[index].0.abs_diff(probe);
        if distance < best.1 {
            best = (index, distance);
        }
    }
    (0..n)
        .map(|i| tokens[(best.0 + i) % tokens.len()].1)
        .collect()
}

/// The index of the token nearest to `probe` (Go's `findClosest`): the first
/// token at or past `probe` against the one before it (the last one when
/// there is none before), by plain difference, not around the circle; the
/// one before wins a tie.
fn nearest_token(tokens: &[Token], probe: u64) -> usize {
    let at_or_past = tokens.partition_point(|&(token, _)| token < probe);
    let before = at_or_past.checked_sub(1).unwrap_or(tokens.len() - 1);
    let after = at_or_past % tokens.len();
    if tokens[before].0.abs_diff(probe) <= tokens[after].0.abs_diff(probe) {
        before
    } else {
        after
    }
}

/// Ring (Go's `chash.ringHash.Get`): from the first token at or past `key`
/// (wrapping to the start), walk the circle and take each node the first
/// time one of its tokens comes up, until there are `n`.
fn ring_owners(tokens: &[Token], nodes: usize, key: u64, n: usize) -> Vec<usize> {
    let start = tokens.partition_point(|&(token, _)| token < key) % tokens.len();
    let mut taken = vec![false; nodes];
    let mut owners = Vec::with_capacity(n);
    // Every node has a token, so one turn around the circle finds `n`.
    for &(_, rank) in tokens[start..].iter().chain(&tokens[..start]) {
        if !std::mem::replace(&mut taken[rank], true) {
            owners.push(rank);
            if owners.len() == n {
                break;
            }
        }
    }
    owners
}
