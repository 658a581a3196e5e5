//! memberlist's compression: Go's `compress/lzw` with LSB bit order and a
//! literal width of 8.
//!
//! Decoding goes through `weezl`. Encoding is written here: `weezl`'s
//! encoder matches Go's writer byte for byte only until the code table
//! fills (about 4000 codes, a few KiB of input: a push-pull of a few dozen
//! members). Go's writer emits a clear code when its next code would be
//! 4095, `weezl` at another point; Go still decodes `weezl`'s output (both
//! checked by running Go 1.19's `compress/lzw` on inputs up to 1 MiB), but
//! memberlist's own bytes are what this codec writes.

use super::wire_error::WireError;
use weezl::{decode::Decoder, BitOrder, LzwStatus};

/// memberlist's `lzwLitWidth`.
const LIT_WIDTH: u8 = 8;
/// The clear code (`1 << LIT_WIDTH`); the end code follows it.
const CLEAR: u32 = 1 << LIT_WIDTH;
const END: u32 = CLEAR + 1;
/// Go's `maxCode`: when the next code would reach it, the writer clears.
const MAX_CODE: u32 = (1 << 12) - 1;
/// The largest dictionary: open addressing over 4 x 4096 slots, as Go
/// sizes it. A smaller input gets a smaller table (see `table_size`).
const TABLE_SIZE: usize = 4 << 12;

/// Slots for compressing `len` bytes: at least twice the entries it can
/// add (one per input byte, at most 4094 before a clear). Where an entry
/// lands never changes the output, only how fast it is found, and a
/// gossip packet's 1,400 bytes then zero 16 KiB, not Go's 64 KiB.
fn table_size(len: usize) -> usize {
    (2 * len.max(64)).next_power_of_two().min(TABLE_SIZE)
}

/// Go's `lzw.Writer` state, LSB order.
struct GoLzwWriter {
    out: Vec<u8>,
    bits: u32,
    n_bits: u32,
    width: u32,
    /// The code the next dictionary entry gets.
    hi: u32,
    /// When `hi` reaches it, codes get one bit wider.
    overflow: u32,
    /// Entries `key << 12 | code` (key: prefix code << 8 | byte); 0 is empty.
    table: Vec<u32>,
    /// `table.len() - 1` (a power of two).
    mask: usize,
    /// Per code, the child last found or added for it, `child << 8 |
    /// byte` (0: none; no child code is below 258), tried before `table`:
    /// one load that does not wait for the next byte's hash. Empty when not
    /// used (see `HINTS_FROM`).
    hint: Vec<u32>,
}

impl GoLzwWriter {
    fn new(capacity: usize, slots: usize, codes: usize) -> Self {
        GoLzwWriter {
            out: Vec::with_capacity(capacity),
            bits: 0,
            n_bits: 0,
            width: u32::from(LIT_WIDTH) + 1,
            hi: END,
            overflow: CLEAR << 1,
            table: vec![0; slots],
            mask: slots - 1,
            hint: vec![0; codes],
        }
    }

    fn write(&mut self, code: u32) {
        self.bits |= code << self.n_bits;
        self.n_bits += self.width;
        while self.n_bits >= 8 {
            self.out.push(self.bits as u8);
            self.bits >>= 8;
            self.n_bits -= 8;
        }
    }

    /// Go's `incHi`: the next code, a wider width, or a clear and a fresh
    /// table when the codes run out (then `false`: no entry is added).
    fn inc_hi(&mut self) -> bool {
        self.hi += 1;
        if self.hi == self.overflow {
            self.width += 1;
            self.overflow <<= 1;
        }
        if self.hi == MAX_CODE {
            self.write(CLEAR);
            self.width = u32::from(LIT_WIDTH) + 1;
            self.hi = END;
            self.overflow = CLEAR << 1;
            self.table.fill(0);
            self.hint.fill(0);
            return false;
        }
        true
    }

    fn slot(&self, key: u32) -> (usize, Option<u32>) {
        let mut hash = ((key >> 12) ^ key) as usize & self.mask;
        loop {
            let entry = self.table[hash];
            if entry == 0 {
                return (hash, None);
            }
            if entry >> 12 == key {
                return (hash, Some(entry & MAX_CODE));
            }
            hash = (hash + 1) & self.mask;
        }
    }
}

/// Inputs at least this long are compressed with per-code hints (see
/// `GoLzwWriter::hint`): a push-pull among 500 members (50 KB) took 4.9 ns
/// a byte with them against 6.4 without, measured side by side; a 1,400-byte
/// packet took 6.5 against 5.5 (its young dictionary rarely repeats a
/// child), so it keeps the plain loop.
const HINTS_FROM: usize = 4096;

/// Compresses `input` exactly as Go's `lzw.NewWriter(w, lzw.LSB, 8)`,
/// `Write(input)` and `Close()` do (memberlist's `compressPayload`).
pub fn compress(input: &[u8]) -> Vec<u8> {
    compress_with(input, input.len() >= HINTS_FROM)
}

fn compress_with(input: &[u8], hints: bool) -> Vec<u8> {
    // Codes above 257 are only ever made one per input byte.
    let codes = (END as usize + 1 + input.len()).min(MAX_CODE as usize + 1);
    let mut w = GoLzwWriter::new(
        input.len() / 2 + 16,
        table_size(input.len()),
        if hints { codes } else { 0 },
    );
    let Some((&first, rest)) = input.split_first() else {
        // Go's Write returns early on no input; Close writes clear and end.
        w.write(CLEAR);
        w.write(END);
        return finish(w);
    };
    w.write(CLEAR);
    let mut code = u32::from(first);
    // Two loops, not one generic over the hints: with a single loop (const
    // generic, inlined) the plain case measured 5-13% slower on packets.
    if hints {
        code = encode_with_hints(&mut w, code, rest);
    } else {
        for &byte in rest {
            let literal = u32::from(byte);
            let key = code << 8 | literal;
            let (slot, found) = w.slot(key);
            if let Some(found) = found {
                code = found;
                continue;
            }
            w.write(code);
            code = literal;
            if w.inc_hi() {
                // The table never fills: a clear empties it first.
                w.table[slot] = key << 12 | w.hi;
            }
        }
    }
    w.write(code);
    w.inc_hi();
    w.write(END);
    finish(w)
}

/// Go's `Write` loop over `rest` after its first byte `code`, trying each
/// code's last child before the dictionary (the same codes come out);
/// returns the code still to write.
fn encode_with_hints(w: &mut GoLzwWriter, mut code: u32, rest: &[u8]) -> u32 {
    for &byte in rest {
        let literal = u32::from(byte);
        let hint = w.hint[code as usize];
        if hint != 0 && hint & 0xff == literal {
            code = hint >> 8;
            continue;
        }
        let key = code << 8 | literal;
        let (slot, found) = w.slot(key);
        if let Some(found) = found {
            w.hint[code as usize] = found << 8 | literal;
            code = found;
            continue;
        }
        w.write(code);
        let prefix = code;
        code = literal;
        if w.inc_hi() {
            // The table never fills: a clear empties it before 4095 entries.
            w.table[slot] = key << 12 | w.hi;
            w.hint[prefix as usize] = w.hi << 8 | literal;
        }
    }
    code
}

fn finish(mut w: GoLzwWriter) -> Vec<u8> {
    if w.n_bits > 0 {
        w.out.push(w.bits as u8);
    }
    w.out
}

/// Decompresses `input`, refusing output beyond `max` bytes before it is
/// produced (a small input can expand a lot) and data that Go's reader would
/// refuse: an invalid code, or no end code (Go reports `unexpected EOF`).
/// Bytes after the end code are ignored, as Go ignores them.
pub fn decompress(input: &[u8], max: usize) -> Result<Vec<u8>, WireError> {
    DECODER.with(|cached| match cached.try_borrow_mut() {
        Ok(mut decoder) => {
            decoder.reset();
            decompress_with(&mut decoder, input, max)
        }
        // Not reached (nothing in here decompresses again), but a fresh
        // decoder is always correct.
        Err(_) => decompress_with(&mut new_decoder(), input, max),
    })
}

std::thread_local! {
    /// One decoder per thread, reset for each message: building one
    /// allocates and fills its 4096-entry tables, which measured 4% of the
    /// CPU of a process carrying 200 members' gossip.
    static DECODER: std::cell::RefCell<Decoder> = std::cell::RefCell::new(new_decoder());
}

fn new_decoder() -> Decoder {
    Decoder::new(BitOrder::Lsb, LIT_WIDTH)
}

fn decompress_with(decoder: &mut Decoder, input: &[u8], max: usize) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut rest = input;
    loop {
        let result = decoder.decode_bytes(rest, &mut chunk);
        rest = &rest[result.consumed_in..];
        let produced = &chunk[..result.consumed_out];
        if out.len() + produced.len() > max {
            return Err(WireError::TooLarge {
                what: "decompressed message",
                len: (out.len() + produced.len()) as u64,
                max: max as u64,
            });
        }
        out.extend_from_slice(produced);
        match result.status {
            Ok(LzwStatus::Done) => return Ok(out),
            Ok(LzwStatus::Ok) => {}
            // No input left (or none usable) and no end code seen.
            Ok(LzwStatus::NoProgress) => return Err(WireError::BadCompression),
            Err(_) => return Err(WireError::BadCompression),
        }
        if rest.is_empty() && result.consumed_out == 0 && result.consumed_in == 0 {
            return Err(WireError::BadCompression);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_bounds_the_output() {
        let input: Vec<u8> = (0..20_000u32)
            .map(|i| (i % 251) as u8 ^ (i / 97) as u8)
            .collect();
        let packed = compress(&input);
        assert_eq!(decompress(&packed, input.len()).unwrap(), input);
        assert!(matches!(
            decompress(&packed, input.len() - 1),
            Err(WireError::TooLarge { .. })
        ));
    }

    #[test]
    fn data_without_an_end_code_is_refused() {
        let packed = compress(b"hello hello hello");
        assert_eq!(
            decompress(&packed[..packed.len() - 2], 1 << 20),
            Err(WireError::BadCompression)
        );
        assert_eq!(decompress(&[], 1 << 20), Err(WireError::BadCompression));
    }

    /// Go 1.19's `compress/lzw` (LSB, 8) output for two inputs past the
    /// table's first clear, recorded by running it: length and CRC-32.
    #[test]
    fn large_inputs_compress_byte_for_byte_as_go_does() {
        let mut seed: u64 = 7;
        let random: Vec<u8> = (0..100_000)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        for (input, len, crc) in [
            (random, 133_295, 0x6f23_bd13),
            (vec![0u8; 1 << 20], 1866, 0x17b8_05cf),
        ] {
            let packed = compress(&input);
            assert_eq!((packed.len(), crc32fast::hash(&packed)), (len, crc));
            assert_eq!(decompress(&packed, input.len()).unwrap(), input);
        }
    }

    /// The thread's decoder is reused: one left mid-message by a refusal
    /// must not change what the next message decodes to.
    #[test]
    fn a_refused_message_leaves_the_next_one_decodable() {
        let text = b"hello hello hello hello";
        let good = compress(text);
        let long = compress(&[7u8; 50_000]);
        let refusals: [(&[u8], usize); 3] = [
            (&good[..good.len() - 2], 1 << 20),
            (&[0xff; 8], 1 << 20),
            (&long, 100),
        ];
        for (bad, max) in refusals {
            assert!(decompress(bad, max).is_err());
            assert_eq!(decompress(&good, 1 << 20).unwrap(), text);
        }
    }

    /// The hints change how codes are found, never which: both loops write
    /// the same bytes, past several clears too.
    #[test]
    fn hints_change_nothing_in_the_output() {
        let text: Vec<u8> = (0..60_000u32)
            .flat_map(|i| {
                format!("{{\"Name\":\"m-{}\",\"Incarnation\":{}}}", i % 700, i % 13).into_bytes()
            })
            .take(60_000)
            .collect();
        for input in [&text[..], &text[..5000], &text[..10], b"abababababab"] {
            assert_eq!(compress_with(input, true), compress_with(input, false));
        }
    }

    #[test]
    fn empty_input_compresses_to_clear_and_end_codes() {
        // Go: clear (256) and eof (257) in 9 bits each, LSB first.
        assert_eq!(compress(b""), [0x00, 0x03, 0x02]);
        assert_eq!(decompress(&compress(b""), 10).unwrap(), b"");
    }
}
