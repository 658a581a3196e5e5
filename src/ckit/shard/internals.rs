//! The hash functions ckit's hashers are built from. Each must give Go's
//! value bit for bit, or owners differ between Go and Rust nodes; they are
//! public so the conformance tests (and anyone checking a port) can compare
//! them with Go's one by one.

use xxhash_rust::xxh64::{xxh64, Xxh64};

/// The seed of every XXH64 in ckit: cespare/xxhash has none, i.e. 0.
pub(crate) const SEED: u64 = 0;

/// A node's single token (multiprobe) and hash (rendezvous): XXH64 of its
/// name (Go's `xxhash.Sum64String(name)`).
pub fn node_hash(name: &str) -> u64 {
    xxh64(name.as_bytes(), SEED)
}

/// Rendezvous' mixing function, Vigna's xorshift64* step (Go's
/// `chash.xorshiftMult64`): shifts 12 right, 25 left, 27 right, then a
/// wrapping multiply by 2685821657736338717. A peer's score for a key is
/// `xorshift_mult64(key ^ node_hash(name))`; the lowest scores own the key.
pub const fn xorshift_mult64(mut x: u64) -> u64 {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    x.wrapping_mul(2_685_821_657_736_338_717)
}

/// Multiprobe's second key (Go's `chash.secondKey`): XXH64 of `key` written
/// in lower-case hexadecimal without leading zeros (Go's
/// `strconv.FormatUint(key, 16)`). Multiprobe derives its probe sequence
/// from `second_key(key)` and `second_key(second_key(key))`.
pub fn second_key(key: u64) -> u64 {
    // Up to 16 hex digits: format into a stack buffer, no allocation.
    let mut digits = [0u8; 16];
    let mut start = digits.len();
    let mut rest = key;
    loop {
        start -= 1;
        digits[start] = b"0123456789abcdef"[(rest & 0xf) as usize];
        rest >>= 4;
        if rest == 0 {
            break;
        }
    }
    xxh64(&digits[start..], SEED)
}

/// A node's tokens on ckit's ring (Go's `ringHash.SetNodes`): one XXH64
/// stream fed the name, then one byte per token, the token's number
/// truncated to a byte (`t as u8`, so past 256 the bytes repeat but the
/// stream does not); token `t` is the stream's digest after its byte, i.e.
/// `XXH64(name || 0x00 || 0x01 || ... || t as u8)`.
pub fn ring_tokens(name: &str, num_tokens: usize) -> impl Iterator<Item = u64> {
    let mut stream = Xxh64::new(SEED);
    stream.update(name.as_bytes());
    (0..num_tokens).map(move |t| {
        // Truncation to a byte is Go's `byte(t)`: wanted.
        stream.update(&[t as u8]);
        stream.digest()
    })
}
