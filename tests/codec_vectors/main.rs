//! Conformance of the frame codec against the shared test vectors
//! (`../shared/vectors/frames.json`, produced by the reference Go
//! implementation) and against the frame contract in `PROTOCOL.md`.
//!
//! The vector file is read in place, never copied into this repository. When
//! it is missing the vector tests fail, unless `GOSSIPHTTP_SKIP_VECTORS=1`.
//!
//! `vectors`: the encode and decode cases of the vector file, through both
//! readers. `writer` and `reader`: cases written from the contract,
//! independent of the file; the writer's header forms and round trips, and
//! how the readers take empty, malformed, oversized and unfinished frames.

mod reader;
mod vectors;
mod writer;

use bytes::BytesMut;
use gossiphttp::codec::{encode_frame, FrameError, PacketDecoder, StreamDecoder};

pub(crate) fn pattern_payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

// ---------------------------------------------------------------------------
// Driving the decoders
// ---------------------------------------------------------------------------

/// What a packet reader made of a whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PacketOutcome {
    pub(crate) messages: Vec<Vec<u8>>,
    pub(crate) error: Option<FrameError>,
}

/// Feeds `input` to a fresh [`PacketDecoder`] `chunk` bytes at a time,
/// taking every whole frame after each chunk, then ends the body.
pub(crate) fn run_packet(input: &[u8], chunk: usize, max: usize) -> PacketOutcome {
    let mut dec = PacketDecoder::new(max);
    let mut buf = BytesMut::new();
    let mut messages = Vec::new();
    let guard = input.len() + 1;
    for piece in input.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(m)) => messages.push(m.to_vec()),
                Ok(None) => break,
                Err(e) => {
                    return PacketOutcome {
                        messages,
                        error: Some(e),
                    }
                }
            }
            assert!(messages.len() <= guard, "PacketDecoder makes no progress");
        }
    }
    loop {
        match dec.decode_eof(&mut buf) {
            Ok(Some(m)) => messages.push(m.to_vec()),
            Ok(None) => {
                return PacketOutcome {
                    messages,
                    error: None,
                }
            }
            Err(e) => {
                return PacketOutcome {
                    messages,
                    error: Some(e),
                }
            }
        }
        assert!(messages.len() <= guard, "PacketDecoder makes no progress");
    }
}

/// What a stream reader made of a whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamOutcome {
    pub(crate) data: Vec<u8>,
    pub(crate) error: Option<FrameError>,
    /// Chunks handed out empty (the contract says empty frames yield nothing).
    pub(crate) empty_chunks: usize,
}

/// Feeds `input` to a fresh [`StreamDecoder`] `chunk` bytes at a time, then
/// ends the body.
pub(crate) fn run_stream(input: &[u8], chunk: usize) -> StreamOutcome {
    let mut dec = StreamDecoder::new();
    let mut buf = BytesMut::new();
    let mut out = StreamOutcome {
        data: Vec::new(),
        error: None,
        empty_chunks: 0,
    };
    let guard = 2 * input.len() + 2;
    let mut calls = 0usize;
    for piece in input.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            calls += 1;
            assert!(calls <= guard, "StreamDecoder makes no progress");
            match dec.decode(&mut buf) {
                Ok(Some(c)) => {
                    out.empty_chunks += usize::from(c.is_empty());
                    out.data.extend_from_slice(&c);
                }
                Ok(None) => break,
                Err(e) => {
                    out.error = Some(e);
                    return out;
                }
            }
        }
    }
    loop {
        calls += 1;
        assert!(calls <= guard, "StreamDecoder makes no progress");
        match dec.decode_eof(&mut buf) {
            Ok(Some(c)) => {
                out.empty_chunks += usize::from(c.is_empty());
                out.data.extend_from_slice(&c);
            }
            Ok(None) => return out,
            Err(e) => {
                out.error = Some(e);
                return out;
            }
        }
    }
}

pub(crate) fn encode(payload: &[u8]) -> BytesMut {
    let mut buf = BytesMut::new();
    encode_frame(payload, &mut buf).expect("encode_frame");
    buf
}
