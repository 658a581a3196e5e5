//! memberlist's compression: Go's `compress/lzw` with LSB bit order and a
//! literal width of 8, through `weezl` (whose output is byte-identical to
//! Go's writer for the sizes memberlist sends: the conformance tests check
//! the reference vectors both ways).

use super::wire_error::WireError;
use weezl::{decode::Decoder, encode::Encoder, BitOrder, LzwStatus};

/// memberlist's `lzwLitWidth`.
const LIT_WIDTH: u8 = 8;

/// Compresses `input` as Go's `lzw.NewWriter(w, lzw.LSB, 8)` followed by
/// `Close` does.
pub fn compress(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() / 2 + 16);
    let mut encoder = Encoder::new(BitOrder::Lsb, LIT_WIDTH);
    let result = encoder.into_vec(&mut out).encode_all(input);
    // Encoding from a slice into a Vec has no failure mode.
    debug_assert!(result.status.is_ok(), "LZW encoding failed");
    out
}

/// Decompresses `input`, refusing output beyond `max` bytes before it is
/// produced (a small input can expand a lot) and data that Go's reader would
/// refuse: an invalid code, or no end code (Go reports `unexpected EOF`).
/// Bytes after the end code are ignored, as Go ignores them.
pub fn decompress(input: &[u8], max: usize) -> Result<Vec<u8>, WireError> {
    let mut decoder = Decoder::new(BitOrder::Lsb, LIT_WIDTH);
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

    #[test]
    fn empty_input_compresses_to_clear_and_end_codes() {
        // Go: clear (256) and eof (257) in 9 bits each, LSB first.
        assert_eq!(compress(b""), [0x00, 0x03, 0x02]);
        assert_eq!(decompress(&compress(b""), 10).unwrap(), b"");
    }
}
