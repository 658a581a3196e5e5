//! Bodies: reading a `/message` body into packets, and cutting what is
//! written to a `/stream` into frames.

use crate::codec::{frame_header, FrameError, PacketDecoder, LONG_HEADER_LEN};
use bytes::{Bytes, BytesMut};
use std::ops::Range;

/// Reads a `/message` body: feed it the body's chunks as they arrive, take
/// each packet as soon as its frame is whole. Packets are sliced out of the
/// chunks; only a frame split across chunks is copied. A frame whose header
/// announces more than the maximum is refused from the header alone.
///
/// ```
/// use bytes::Bytes;
/// use gossiphttp::contract::{MessageReader, Refusal};
///
/// let mut body = MessageReader::new(1024);
/// body.push(Bytes::from_static(b"\xcc\x00\x02hi\xcc\x00"));
/// assert_eq!(body.next_packet().unwrap().unwrap(), &b"hi"[..]);
/// assert_eq!(body.next_packet().unwrap(), None); // push the next chunk
/// body.push(Bytes::from_static(b"\x01!"));
/// assert_eq!(body.next_packet().unwrap().unwrap(), &b"!"[..]);
/// assert!(body.finish().is_ok()); // the body ended between frames: 200
///
/// let mut body = MessageReader::new(1024);
/// body.push(Bytes::from_static(b"\xcd\xff\xff\xff\xff"));
/// let e = body.next_packet().unwrap_err();
/// assert_eq!(Refusal::for_frame(&e).status(), 413);
/// ```
#[derive(Debug)]
pub struct MessageReader {
    decoder: PacketDecoder,
    /// The start of a frame split across chunks.
    held: BytesMut,
    /// The rest of the last chunk pushed.
    chunk: Bytes,
}

impl MessageReader {
    /// A reader refusing packets over `max_packet_size` bytes.
    pub fn new(max_packet_size: usize) -> MessageReader {
        MessageReader {
            decoder: PacketDecoder::new(max_packet_size),
            held: BytesMut::new(),
            chunk: Bytes::new(),
        }
    }

    /// Adds the body's next chunk. Call it once [`next_packet`](Self::next_packet)
    /// returned `Ok(None)`; a chunk pushed earlier is queued behind the rest.
    pub fn push(&mut self, chunk: Bytes) {
        if self.chunk.is_empty() {
            self.chunk = chunk;
        } else {
            self.held.extend_from_slice(&self.chunk);
            self.chunk = chunk;
        }
    }

    /// The next whole packet, `Ok(None)` when the chunks pushed so far hold
    /// no more. After an error the body is refused ([`Refusal::for_frame`](super::Refusal::for_frame)):
    /// stop reading it.
    pub fn next_packet(&mut self) -> Result<Option<Bytes>, FrameError> {
        self.decoder.decode_chunk(&mut self.held, &mut self.chunk)
    }

    /// The body ended: an error when it ended inside a frame. Call it once
    /// [`next_packet`](Self::next_packet) returned `Ok(None)`.
    pub fn finish(&mut self) -> Result<(), FrameError> {
        if !self.chunk.is_empty() {
            self.held.extend_from_slice(&self.chunk);
            self.chunk.clear();
        }
        match self.decoder.decode_eof(&mut self.held)? {
            None => Ok(()),
            // A whole frame left means next_packet() was not drained: the
            // caller broke the protocol, and the frame is not delivered.
            Some(_) => Err(FrameError::Truncated {
                received: 0,
                expected: None,
            }),
        }
    }
}

/// One frame of an outgoing stream chunk: `header` then the chunk's bytes
/// in `payload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamFrame {
    header: [u8; LONG_HEADER_LEN],
    header_len: usize,
    /// Where the frame's payload lies in the chunk.
    pub payload: Range<usize>,
}

impl StreamFrame {
    /// The frame header (`0xCC` + u16 length up to 65,535 bytes, `0xCD` +
    /// u32 length above).
    pub fn header(&self) -> &[u8] {
        &self.header[..self.header_len]
    }
}

/// The frames that carry a stream chunk of `len` bytes, each with at most
/// `max_payload` bytes (at least 1): frame boundaries mean nothing on a
/// stream, so a writer picks its own size. An empty chunk is no frame.
///
/// ```
/// use gossiphttp::contract::stream_frames;
///
/// let frames: Vec<_> = stream_frames(70_000, 65_535).collect();
/// assert_eq!(frames.len(), 2);
/// assert_eq!(frames[0].header(), [0xcc, 0xff, 0xff]);
/// assert_eq!(frames[1].payload, 65_535..70_000);
/// assert_eq!(stream_frames(0, 10).count(), 0);
/// ```
pub fn stream_frames(len: usize, max_payload: usize) -> impl Iterator<Item = StreamFrame> {
    // A frame carries at most u32::MAX bytes.
    let max = max_payload.clamp(1, u32::MAX as usize);
    (0..len).step_by(max).map(move |start| {
        let end = start + (len - start).min(max);
        let (header, header_len) = frame_header(end - start);
        StreamFrame {
            header,
            header_len,
            payload: start..end,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every way of cutting a body into chunks yields the same packets.
    #[test]
    fn message_reader_reassembles_frames_cut_anywhere() {
        let body = b"\xcc\x00\x02hi\xcc\x00\x00\xcd\x00\x00\x00\x03one\xcc\x00\x01!";
        for cut in 0..=body.len() {
            for cut2 in cut..=body.len() {
                let mut r = MessageReader::new(16);
                let mut got = Vec::new();
                for piece in [&body[..cut], &body[cut..cut2], &body[cut2..]] {
                    r.push(Bytes::copy_from_slice(piece));
                    while let Some(p) = r.next_packet().unwrap() {
                        got.push(p);
                    }
                }
                r.finish().unwrap();
                assert_eq!(got, [&b"hi"[..], b"", b"one", b"!"], "cuts {cut} {cut2}");
            }
        }
    }

    #[test]
    fn message_reader_refuses_at_the_first_bad_frame() {
        let mut r = MessageReader::new(4);
        r.push(Bytes::from_static(b"\xcc\x00\x01a\x99"));
        assert_eq!(r.next_packet().unwrap().unwrap(), &b"a"[..]);
        assert_eq!(r.next_packet(), Err(FrameError::BadMagic(0x99)));

        let mut r = MessageReader::new(4);
        r.push(Bytes::from_static(b"\xcc\x00"));
        assert_eq!(r.next_packet().unwrap(), None);
        r.push(Bytes::from_static(b"\x05"));
        assert!(matches!(
            r.next_packet(),
            Err(FrameError::TooLarge { len: 5, .. })
        ));

        let mut r = MessageReader::new(4);
        r.push(Bytes::from_static(b"\xcc\x00\x03ab"));
        assert_eq!(r.next_packet().unwrap(), None);
        assert!(matches!(r.finish(), Err(FrameError::Truncated { .. })));

        // A chunk pushed before the last one was drained is queued behind it.
        let mut r = MessageReader::new(4);
        r.push(Bytes::from_static(b"\xcc\x00\x01a"));
        r.push(Bytes::from_static(b"\xcc\x00\x01b"));
        assert_eq!(r.next_packet().unwrap().unwrap(), &b"a"[..]);
        assert_eq!(r.next_packet().unwrap().unwrap(), &b"b"[..]);
        assert_eq!(r.next_packet().unwrap(), None);
        assert!(r.finish().is_ok());
    }

    #[test]
    fn stream_frames_cover_the_chunk_in_order() {
        for (len, max) in [
            (1, 1),
            (5, 2),
            (65_535, 65_535),
            (65_536, 65_535),
            (3 << 20, 1 << 20),
        ] {
            let frames: Vec<_> = stream_frames(len, max).collect();
            assert_eq!(frames.len(), len.div_ceil(max));
            let mut next = 0;
            for f in &frames {
                assert_eq!(f.payload.start, next);
                assert!(f.payload.len() <= max && !f.payload.is_empty());
                assert_eq!(
                    f.header(),
                    &frame_header(f.payload.len()).0[..f.header().len()]
                );
                next = f.payload.end;
            }
            assert_eq!(next, len);
        }
        // 0 is taken as 1 rather than looping forever.
        assert_eq!(stream_frames(3, 0).count(), 3);
        let big: Vec<_> = stream_frames(70_000, crate::contract::MAX_STREAM_FRAME).collect();
        assert_eq!(big.len(), 1);
        assert_eq!(big[0].header()[0], 0xcd);
    }
}
