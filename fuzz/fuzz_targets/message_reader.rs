//! The contract's `/message` body reader (`contract::MessageReader`, what
//! both servers read bodies with) against the model: any bytes, cut into
//! any chunks, some pushed before the reader was drained (queued behind the
//! rest). No panic; the same packets as the model, then the status the
//! contract gives the body's end (`200`, `400` malformed, `413` too large).
//!
//! Input layout: the frame decoder's (see `seed.py`), so its seeds apply:
//! `max_packet` (u16 BE), `k` (u8), `k` cut points (u16 BE), then the body.
//! A piece whose cut point is odd is pushed without draining the one before.
#![no_main]

use bytes::Bytes;
use gossiphttp::contract::{MessageReader, Refusal};
use gossiphttp_fuzz::{DecoderInput, End};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let DecoderInput {
        max,
        cuts,
        chunks,
        model: m,
        ..
    } = DecoderInput::parse(data);

    let mut reader = MessageReader::new(max);
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut refused = None;
    'body: for (i, chunk) in chunks.iter().enumerate() {
        reader.push(Bytes::copy_from_slice(chunk));
        let drain_now = cuts.get(i).is_none_or(|c| c % 2 == 0);
        if !drain_now && i + 1 < chunks.len() {
            continue;
        }
        loop {
            match reader.next_packet() {
                Ok(Some(p)) => got.push(p.to_vec()),
                Ok(None) => break,
                Err(e) => {
                    refused = Some(Refusal::for_frame(&e));
                    break 'body;
                }
            }
        }
    }
    let status = match refused {
        Some(r) => r.status(),
        None => match reader.finish() {
            Ok(()) => 200,
            Err(e) => Refusal::for_frame(&e).status(),
        },
    };
    let want = match m.packet_end {
        End::Clean => 200,
        End::TooLarge => 413,
        End::BadMagic | End::Truncated => 400,
    };
    assert_eq!(status, want, "status for a body ending {:?}", m.packet_end);
    assert!(got == m.packets, "packets differ from the model");
});
