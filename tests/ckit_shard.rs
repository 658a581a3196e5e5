//! ckit's sharding against the reference vectors
//! (`../shared/vectors/shard.json`, produced by running grafana/ckit's Go
//! `shard` package): every `StringKey`, every lookup of every hasher over
//! every node set and owner count, the ops over peers in mixed states, and
//! the hashers' internals.
//!
//! The vector file is read in place, never copied into this repository. When
//! it is missing the test fails, unless `GOSSIPHTTP_SKIP_VECTORS=1`.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use gossiphttp::ckit::peer::{NodeState, Peer};
use gossiphttp::ckit::shard::{internals, string_key, Key, KeyBuilder, LookupError, Op, Sharder};
use serde::Deserialize;

const SKIP_ENV: &str = "GOSSIPHTTP_SKIP_VECTORS";

#[derive(Debug, Deserialize)]
struct Vectors {
    string_keys: Vec<StringKeyCase>,
    lookup_keys: Vec<LookupKey>,
    hashers: Vec<HasherCases>,
    op_semantics: OpSemantics,
    chash_internals: Internals,
}

#[derive(Debug, Deserialize)]
struct StringKeyCase {
    input_utf8_hex: String,
    input_display: String,
    len: usize,
    key: u64,
    key_hex: String,
}

#[derive(Debug, Deserialize)]
struct LookupKey {
    label: String,
    derivation: String,
    key: u64,
    key_hex: String,
}

#[derive(Debug, Deserialize)]
struct HasherCases {
    name: String,
    cases: Vec<LookupCase>,
}

#[derive(Debug, Deserialize)]
struct LookupCase {
    node_set: String,
    nodes: Vec<String>,
    n: usize,
    /// One owner list per lookup key, in `lookup_keys` order.
    #[serde(default)]
    owners: Option<Vec<Vec<String>>>,
    #[serde(default)]
    error_for_any_key: Option<String>,
}

#[derive(Debug, Deserialize)]
struct OpSemantics {
    #[serde(rename = "peers_given_to_SetPeers")]
    peers_given_to_set_peers: Vec<StatedPeer>,
    cases: Vec<OpCase>,
}

#[derive(Debug, Deserialize)]
struct StatedPeer {
    name: String,
    state_value: u64,
}

#[derive(Debug, Deserialize)]
struct OpCase {
    hasher: String,
    op: String,
    op_value: u8,
    n: usize,
    #[serde(default)]
    owners_for_first_40_lookup_keys: Option<Vec<Vec<String>>>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Internals {
    #[serde(rename = "ring_tokens_numTokens4_nodes_node-1..3_sorted")]
    ring_tokens_sorted: Vec<NodeToken>,
    ring_token_derivation_examples: Vec<RingTokenExample>,
    #[serde(rename = "multiprobe_tokens_node-1..5_sorted")]
    multiprobe_tokens_sorted: Vec<NodeToken>,
    #[serde(rename = "multiprobe_secondKey")]
    second_keys: Vec<SecondKeyCase>,
    #[serde(rename = "rendezvous_xorshiftMult64")]
    xorshift_mult64: Vec<XorshiftCase>,
}

#[derive(Debug, Deserialize)]
struct NodeToken {
    node: String,
    token: u64,
}

#[derive(Debug, Deserialize)]
struct RingTokenExample {
    node: String,
    t: usize,
    hashed_bytes_hex: String,
    token: u64,
}

#[derive(Debug, Deserialize)]
struct SecondKeyCase {
    key: u64,
    hashed_string: String,
    second_key: u64,
    second_key_of_second_key: u64,
}

#[derive(Debug, Deserialize)]
struct XorshiftCase {
    x: u64,
    #[serde(rename = "xorshiftMult64")]
    mixed: u64,
}

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors/shard.json")
}

/// Loads the vectors; `None` only when they are missing and skipping was
/// asked for explicitly.
fn load_vectors() -> Option<Vectors> {
    let path = vectors_path();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if std::env::var(SKIP_ENV).as_deref() == Ok("1") => {
            eprintln!(
                "note: skipping ckit shard conformance: cannot read {} ({e}); {SKIP_ENV}=1 is set",
                path.display()
            );
            return None;
        }
        Err(e) => panic!(
            "ckit shard vectors not found: cannot read {} ({e}). They live next to this \
             repository in shared/vectors/shard.json and must not be copied into it; set \
             {SKIP_ENV}=1 to skip this test deliberately",
            path.display()
        ),
    };
    let vectors: Vectors = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not a valid vector file: {e}", path.display()));
    assert!(
        vectors.string_keys.len() >= 50
            && vectors.lookup_keys.len() >= 200
            && vectors.hashers.len() == 5
            && !vectors.op_semantics.cases.is_empty(),
        "{} holds fewer cases than expected",
        path.display()
    );
    Some(vectors)
}

/// Fails with every collected failure, each naming its case.
fn report(kind: &str, failures: Vec<String>) {
    if !failures.is_empty() {
        let shown: Vec<_> = failures.iter().take(20).collect();
        panic!(
            "{} {kind} case(s) failed (first {}):\n  - {}",
            failures.len(),
            shown.len(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  - ")
        );
    }
}

fn sharder_named(name: &str) -> Sharder {
    match name {
        "rendezvous" => Sharder::rendezvous(),
        "multiprobe" => Sharder::multiprobe(),
        ring => {
            let tokens: usize = ring
                .strip_prefix("ring-")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unknown hasher {ring:?} in the vectors"));
            Sharder::ring(NonZeroUsize::new(tokens).expect("a ring has tokens"))
        }
    }
}

fn op_named(name: &str, value: u8) -> Op {
    let op = match name {
        "Read" => Op::Read,
        "ReadWrite" => Op::ReadWrite,
        other => panic!("unknown op {other:?} in the vectors"),
    };
    assert_eq!(op.to_string(), name);
    assert_eq!(
        value,
        if op == Op::Read { 0 } else { 1 },
        "Go's value of {name}"
    );
    op
}

fn owner_names(owners: &[Peer]) -> Vec<String> {
    owners.iter().map(|p| p.name.clone()).collect()
}

/// Checks one lookup against Go's answer: the owners, or the error (whose
/// message must begin with Go's).
fn check_lookup(
    sharder: &Sharder,
    key: &LookupKey,
    n: usize,
    op: Op,
    want: Result<&[String], &str>,
) -> Option<String> {
    let got = sharder.lookup(Key(key.key), n, op);
    let case = format!("{:?} {op} n={n} key {}", sharder.hasher(), key.label);
    match (got, want) {
        (Ok(owners), Ok(want)) if owner_names(&owners) == want => None,
        (Err(error @ LookupError::NotEnoughPeers { .. }), Err(want))
            if error.to_string().starts_with(want) =>
        {
            None
        }
        (got, want) => Some(format!("{case}: got {got:?}, Go gives {want:?}")),
    }
}

/// Go's `%q` escapes in a `StringKey("...")` label: only `\xHH` occur.
fn unquote_go(label: &str) -> Vec<u8> {
    let inner = label
        .strip_prefix("StringKey(\"")
        .and_then(|rest| rest.strip_suffix("\")"))
        .unwrap_or_else(|| panic!("unexpected label {label:?}"));
    let mut bytes = Vec::new();
    let mut rest = inner;
    while let Some(at) = rest.find("\\x") {
        bytes.extend_from_slice(&rest.as_bytes()[..at]);
        bytes.push(u8::from_str_radix(&rest[at + 2..at + 4], 16).expect("\\xHH"));
        rest = &rest[at + 4..];
    }
    bytes.extend_from_slice(rest.as_bytes());
    bytes
}

#[test]
fn string_keys_are_gos() {
    let Some(vectors) = load_vectors() else {
        return;
    };
    let mut failures = Vec::new();
    for case in &vectors.string_keys {
        let input = hex::decode(&case.input_utf8_hex).expect("hex input");
        assert_eq!(input.len(), case.len, "{}", case.input_display);
        assert_eq!(format!("{:016x}", case.key), case.key_hex);
        let split = input.len() / 3;
        let mut builder = KeyBuilder::new();
        builder.write(&input[..split]).write(&input[split..]);
        let got = [string_key(&input), builder.key()];
        if got != [Key(case.key); 2] {
            failures.push(format!(
                "{}: got {got:?}, Go gives {}",
                case.input_display, case.key
            ));
        }
        if let Ok(text) = std::str::from_utf8(&input) {
            assert_eq!(string_key(text), string_key(&input));
        }
    }
    report("StringKey", failures);
}

#[test]
fn lookup_keys_are_what_their_labels_say() {
    let Some(vectors) = load_vectors() else {
        return;
    };
    for key in &vectors.lookup_keys {
        assert_eq!(format!("{:016x}", key.key), key.key_hex, "{}", key.label);
        let derived = match key.derivation.as_str() {
            "raw uint64 passed to Lookup" => key.label["raw:".len()..].parse().expect("raw key"),
            "shard.StringKey" if key.label.starts_with("StringKey(") => {
                string_key(unquote_go(&key.label)).0
            }
            "shard.StringKey" => string_key(&key.label).0,
            other => panic!("unknown derivation {other:?}"),
        };
        assert_eq!(derived, key.key, "{}", key.label);
    }
}

#[test]
fn every_hasher_picks_gos_owners_for_every_node_set_and_owner_count() {
    let Some(vectors) = load_vectors() else {
        return;
    };
    let mut failures = Vec::new();
    let mut checked = 0;
    for hasher in &vectors.hashers {
        for case in &hasher.cases {
            let mut sharder = sharder_named(&hasher.name);
            sharder.set_peers(
                case.nodes
                    .iter()
                    .map(|name| Peer::new(name.as_str(), name.as_str(), NodeState::Participant)),
            );
            let context = format!("{} {}", hasher.name, case.node_set);
            // Every peer participates, so both ops have Go's answer.
            for op in [Op::Read, Op::ReadWrite] {
                for (i, key) in vectors.lookup_keys.iter().enumerate() {
                    let want = match (&case.owners, &case.error_for_any_key) {
                        (Some(owners), None) => Ok(owners[i].as_slice()),
                        (None, Some(error)) => Err(error.as_str()),
                        _ => panic!("{context} n={}: neither owners nor an error", case.n),
                    };
                    checked += 1;
                    if let Some(failure) = check_lookup(&sharder, key, case.n, op, want) {
                        failures.push(format!("{context}: {failure}"));
                    }
                }
            }
        }
    }
    assert_eq!(checked, 5 * 18 * 2 * 200, "every case was checked");
    report("Lookup", failures);
}

#[test]
fn ops_pick_gos_owners_among_peers_in_mixed_states() {
    let Some(vectors) = load_vectors() else {
        return;
    };
    let peers: Vec<Peer> = vectors
        .op_semantics
        .peers_given_to_set_peers
        .iter()
        .map(|p| {
            let state = NodeState::try_from(p.state_value).expect("a ckit state");
            Peer::new(p.name.as_str(), "", state)
        })
        .collect();
    let mut failures = Vec::new();
    for case in &vectors.op_semantics.cases {
        let mut sharder = sharder_named(&case.hasher);
        sharder.set_peers(peers.clone());
        let op = op_named(&case.op, case.op_value);
        for (i, key) in vectors.lookup_keys.iter().take(40).enumerate() {
            let want = match (&case.owners_for_first_40_lookup_keys, &case.error) {
                (Some(owners), None) => Ok(owners[i].as_slice()),
                (None, Some(error)) => Err(error.as_str()),
                _ => panic!(
                    "{} {op} n={}: neither owners nor an error",
                    case.hasher, case.n
                ),
            };
            if let Some(failure) = check_lookup(&sharder, key, case.n, op, want) {
                failures.push(failure);
            }
        }
    }
    report("op", failures);
}

#[test]
fn the_hashers_internals_are_gos() {
    let Some(vectors) = load_vectors() else {
        return;
    };
    let internals_cases = &vectors.chash_internals;

    let tokens = |mut sharder: Sharder, nodes: usize| {
        sharder.set_peers((1..=nodes).map(|i| {
            let name = format!("node-{i}");
            Peer::new(name.clone(), name, NodeState::Participant)
        }));
        sharder
            .tokens(Op::ReadWrite)
            .into_iter()
            .map(|(name, token)| (name.to_owned(), token))
            .collect::<Vec<_>>()
    };
    let expected = |list: &[NodeToken]| -> Vec<(String, u64)> {
        list.iter().map(|t| (t.node.clone(), t.token)).collect()
    };
    assert_eq!(
        tokens(Sharder::ring(NonZeroUsize::new(4).unwrap()), 3),
        expected(&internals_cases.ring_tokens_sorted),
        "the ring's sorted tokens, 4 per node"
    );
    assert_eq!(
        tokens(Sharder::multiprobe(), 5),
        expected(&internals_cases.multiprobe_tokens_sorted),
        "multiprobe's sorted tokens"
    );

    for example in &internals_cases.ring_token_derivation_examples {
        let hashed = hex::decode(&example.hashed_bytes_hex).expect("hex");
        let mut derivation = example.node.as_bytes().to_vec();
        derivation.extend((0..=example.t).map(|t| t as u8));
        assert_eq!(hashed, derivation, "{} token {}", example.node, example.t);
        assert_eq!(string_key(&hashed).0, example.token);
        let token = internals::ring_tokens(&example.node, example.t + 1).last();
        assert_eq!(
            token,
            Some(example.token),
            "{} token {}",
            example.node,
            example.t
        );
    }

    for case in &internals_cases.second_keys {
        assert_eq!(format!("{:x}", case.key), case.hashed_string);
        assert_eq!(
            internals::second_key(case.key),
            case.second_key,
            "{}",
            case.key
        );
        assert_eq!(
            internals::second_key(case.second_key),
            case.second_key_of_second_key
        );
    }

    for case in &internals_cases.xorshift_mult64 {
        assert_eq!(
            internals::xorshift_mult64(case.x),
            case.mixed,
            "x = {}",
            case.x
        );
    }
}
