//! The frame decoders against the contract's model: any bytes, cut into any
//! chunks, through both `PacketDecoder` paths (`decode` over a `BytesMut`
//! and `decode_chunk` over `Bytes` chunks) and both `StreamDecoder` paths.
//! No panic; the same packets, stream bytes and error class as the model;
//! a refused header refused before anything is reserved for its payload
//! (and no buffer ever grown towards what a header announced beyond the
//! limit); and what was decoded re-encodes and decodes to the same packets.
//!
//! Input layout (see `seed.py`): `max_packet` (u16 BE, the packet size
//! limit, small so that it is hit), `k` (u8), `k` cut points (u16 BE, taken
//! modulo the body length + 1), then the body.
#![no_main]

use bytes::{Bytes, BytesMut};
use gossiphttp::codec::{encode_frame, FrameError, PacketDecoder, StreamDecoder};
use gossiphttp_fuzz::{DecoderInput, End};
use libfuzzer_sys::fuzz_target;

/// The largest header a frame has.
const HEADER: usize = 5;

fn class(e: &FrameError) -> End {
    match e {
        FrameError::BadMagic(_) => End::BadMagic,
        FrameError::Truncated { .. } => End::Truncated,
        FrameError::TooLarge { .. } => End::TooLarge,
        other => panic!("unknown FrameError {other:?}"),
    }
}

/// A bound on the room a buffer fed whole chunks may hold: what arrived
/// plus one frame of the largest allowed size, with slack for `BytesMut`
/// doubling its capacity.
fn room_bound(input_len: usize, max: usize) -> usize {
    2 * (input_len + max + HEADER) + 64
}

/// `held` of `decode_chunk` only ever holds one unfinished frame, so its
/// room is bounded by the limit alone, whatever the headers announce.
fn held_bound(max: usize) -> usize {
    2 * (max + HEADER) + 64
}

fn packets_buffered(chunks: &[&[u8]], max: usize, total: usize) -> (Vec<Vec<u8>>, End) {
    let mut dec = PacketDecoder::new(max);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.capacity();
            let r = dec.decode(&mut buf);
            assert!(
                buf.capacity() <= room_bound(total, max),
                "buffer grew to {}",
                buf.capacity()
            );
            match r {
                Ok(Some(p)) => out.push(p.to_vec()),
                Ok(None) => break,
                Err(e) => {
                    // Refused on the header: nothing reserved for the payload.
                    assert_eq!(buf.capacity(), before, "room reserved before refusing");
                    return (out, class(&e));
                }
            }
        }
    }
    match dec.decode_eof(&mut buf) {
        Ok(Some(p)) => panic!(
            "decode_eof found a packet decode left behind: {} bytes",
            p.len()
        ),
        Ok(None) => (out, End::Clean),
        Err(e) => (out, class(&e)),
    }
}

fn packets_chunked(chunks: &[&[u8]], max: usize) -> (Vec<Vec<u8>>, End) {
    let mut dec = PacketDecoder::new(max);
    let mut held = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        let mut chunk = Bytes::copy_from_slice(chunk);
        loop {
            let r = dec.decode_chunk(&mut held, &mut chunk);
            assert!(
                held.len() <= max + HEADER && held.capacity() <= held_bound(max),
                "held grew to {} bytes, room for {} (limit {max})",
                held.len(),
                held.capacity()
            );
            if let Err(FrameError::TooLarge { .. }) = r {
                assert!(held.len() <= HEADER, "held payload of a refused frame");
            }
            match r {
                Ok(Some(p)) => out.push(p.to_vec()),
                Ok(None) => {
                    assert!(
                        chunk.is_empty(),
                        "decode_chunk left {} bytes unread",
                        chunk.len()
                    );
                    break;
                }
                Err(e) => return (out, class(&e)),
            }
        }
    }
    match dec.decode_eof(&mut held) {
        Ok(Some(p)) => panic!(
            "decode_eof found a packet decode_chunk left behind: {} bytes",
            p.len()
        ),
        Ok(None) => (out, End::Clean),
        Err(e) => (out, class(&e)),
    }
}

fn stream_buffered(chunks: &[&[u8]]) -> (Vec<u8>, End) {
    let mut dec = StreamDecoder::new();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(run)) => {
                    assert!(!run.is_empty(), "an empty run");
                    out.extend_from_slice(&run);
                }
                Ok(None) => break,
                Err(e) => return (out, class(&e)),
            }
        }
    }
    loop {
        match dec.decode_eof(&mut buf) {
            Ok(Some(run)) => out.extend_from_slice(&run),
            Ok(None) => return (out, End::Clean),
            Err(e) => return (out, class(&e)),
        }
    }
}

fn stream_chunked(chunks: &[&[u8]]) -> (Vec<u8>, End) {
    let mut dec = StreamDecoder::new();
    let mut held = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        let mut chunk = Bytes::copy_from_slice(chunk);
        loop {
            match dec.decode_chunk(&mut held, &mut chunk) {
                Ok(Some(run)) => {
                    assert!(!run.is_empty(), "an empty run");
                    out.extend_from_slice(&run);
                }
                Ok(None) => {
                    assert!(
                        chunk.is_empty(),
                        "decode_chunk left {} bytes unread",
                        chunk.len()
                    );
                    // Only a split header ever waits.
                    assert!(held.len() < HEADER, "held {} bytes", held.len());
                    break;
                }
                Err(e) => return (out, class(&e)),
            }
        }
    }
    loop {
        match dec.decode_eof(&mut held) {
            Ok(Some(run)) => out.extend_from_slice(&run),
            Ok(None) => return (out, End::Clean),
            Err(e) => return (out, class(&e)),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let DecoderInput {
        max,
        body,
        chunks,
        model: want,
        ..
    } = DecoderInput::parse(data);

    for (packets, end) in [
        packets_buffered(&chunks, max, body.len()),
        packets_chunked(&chunks, max),
    ] {
        assert_eq!(packets, want.packets, "packets differ from the model");
        assert_eq!(
            end, want.packet_end,
            "packet reader ended otherwise than the model"
        );
    }
    for (data, end) in [stream_buffered(&chunks), stream_chunked(&chunks)] {
        assert!(data == want.stream, "stream bytes differ from the model");
        assert_eq!(
            end, want.stream_end,
            "stream reader ended otherwise than the model"
        );
    }

    // What was decoded re-encodes into frames that decode to the same, and
    // each frame carries the header a conforming writer uses.
    let mut again = BytesMut::new();
    for p in &want.packets {
        let at = again.len();
        encode_frame(p, &mut again).expect("a decoded packet encodes");
        let magic = if p.len() <= 0xFFFF { 0xCC } else { 0xCD };
        assert_eq!(again[at], magic, "wrong header for {} bytes", p.len());
        assert_eq!(
            again.len() - at,
            p.len() + if magic == 0xCC { 3 } else { 5 }
        );
    }
    let again = again.freeze();
    let (round, end) = packets_chunked(&[&again[..]], max);
    assert_eq!(end, End::Clean);
    assert_eq!(round, want.packets, "re-encoded packets decode differently");
    let (data, end) = stream_chunked(&[&again[..]]);
    assert_eq!(end, End::Clean);
    assert!(data == want.packets.concat(), "re-encoded stream differs");
});
