//! Frames: the only thing gossiphttp puts on the wire.
//!
//! ```text
//! +-------------+-----------------------------+----------------+
//! | magic (1 B) | length (big-endian)         | data           |
//! +-------------+-----------------------------+----------------+
//! | 0xCC        | 2 bytes (u16), 0..=65535    | `length` bytes |
//! | 0xCD        | 4 bytes (u32), any u32      | `length` bytes |
//! +-------------+-----------------------------+----------------+
//! ```
//!
//! This module does no I/O: it turns payloads into bytes ([`encode_frame`])
//! and bytes, as they arrive, back into payloads ([`PacketDecoder`] for
//! `/message`, where each frame is one packet, and [`StreamDecoder`] for
//! `/stream`, where frames are pieces of one byte pipe). Both runtimes, native
//! and wasm, drive these same types.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::fmt;

/// Magic byte of a frame whose length fits in a `u16`.
pub const MAGIC_SHORT: u8 = 0xCC;
/// Magic byte of a frame with a `u32` length.
pub const MAGIC_LONG: u8 = 0xCD;
/// The largest payload written with the short (`0xCC`) header.
pub const MAX_SHORT_PAYLOAD: usize = u16::MAX as usize;
/// The largest payload any frame can carry.
pub const MAX_FRAME_PAYLOAD: usize = u32::MAX as usize;
/// Default cap on one packet received through `/message`: 1 MiB.
pub const DEFAULT_MAX_PACKET_SIZE: usize = 1 << 20;

/// Length of a `0xCC` frame header: magic and a `u16` length.
pub const SHORT_HEADER_LEN: usize = 3;
/// Length of a `0xCD` frame header: magic and a `u32` length.
pub const LONG_HEADER_LEN: usize = 5;

/// Why a sequence of bytes is not a valid sequence of frames.
///
/// Every variant is the peer's fault; none of them is ever a panic.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// A frame began with a byte other than `0xCC` or `0xCD`.
    BadMagic(u8),
    /// The input ended inside a frame (in its header or its payload).
    Truncated {
        /// Bytes of the unfinished frame that did arrive.
        received: usize,
        /// Bytes that frame needed in all (header included); `None` when even
        /// the header was incomplete.
        expected: Option<u64>,
    },
    /// A frame announced a payload above the configured maximum. The check
    /// happens on the header alone, before anything is allocated for it.
    TooLarge {
        /// The announced payload length.
        len: u64,
        /// The maximum this reader accepts.
        max: usize,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::BadMagic(b) => {
                write!(
                    f,
                    "unrecognized magic byte 0x{b:02x} (expected 0xcc or 0xcd)"
                )
            }
            FrameError::Truncated {
                received,
                expected: Some(e),
            } => write!(f, "truncated frame: got {received} of {e} bytes"),
            FrameError::Truncated {
                received,
                expected: None,
            } => write!(f, "truncated frame header: got {received} bytes"),
            FrameError::TooLarge { len, max } => {
                write!(
                    f,
                    "frame payload of {len} bytes exceeds the limit of {max} bytes"
                )
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// The header a conforming writer puts before a payload of `len` bytes:
/// `0xCC` for 65,535 bytes or less, `0xCD` above.
///
/// Returns the header buffer and how many of its bytes are used.
///
/// # Panics
/// If `len` exceeds `u32::MAX`; [`encode_frame`] checks this first.
pub fn frame_header(len: usize) -> ([u8; LONG_HEADER_LEN], usize) {
    let mut h = [0u8; LONG_HEADER_LEN];
    if len <= MAX_SHORT_PAYLOAD {
        h[0] = MAGIC_SHORT;
        h[1..3].copy_from_slice(&(len as u16).to_be_bytes());
        (h, SHORT_HEADER_LEN)
    } else {
        let len = u32::try_from(len).expect("frame payload longer than u32::MAX");
        h[0] = MAGIC_LONG;
        h[1..5].copy_from_slice(&len.to_be_bytes());
        (h, LONG_HEADER_LEN)
    }
}

/// Bytes a frame of `payload_len` takes on the wire.
pub fn encoded_len(payload_len: usize) -> usize {
    frame_header(payload_len).1 + payload_len
}

/// Appends one frame carrying `payload` to `dst`.
///
/// Fails with [`FrameError::TooLarge`] for payloads over `u32::MAX` bytes,
/// which no frame can carry.
pub fn encode_frame(payload: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
    // Always false on 32-bit targets (wasm32), where usize is u32.
    #[allow(clippy::absurd_extreme_comparisons)]
    let too_large = payload.len() > MAX_FRAME_PAYLOAD;
    if too_large {
        return Err(FrameError::TooLarge {
            len: payload.len() as u64,
            max: MAX_FRAME_PAYLOAD,
        });
    }
    let (h, n) = frame_header(payload.len());
    dst.reserve(n + payload.len());
    dst.put_slice(&h[..n]);
    dst.put_slice(payload);
    Ok(())
}

/// Writes payloads as frames; the encoding half of the codec, for symmetry
/// with the decoders (and, on native targets, a `tokio_util` `Encoder`).
#[derive(Debug, Clone, Copy, Default)]
pub struct FrameEncoder;

impl FrameEncoder {
    /// Appends one frame carrying `payload` to `dst`; see [`encode_frame`].
    pub fn encode(&mut self, payload: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        encode_frame(payload, dst)
    }
}

/// A frame header, once enough bytes for it have arrived.
struct Header {
    len: usize,
    header_len: usize,
}

/// Parses the header at the front of `src` without consuming it.
/// `Ok(None)` means more bytes are needed.
fn peek_header(src: &[u8]) -> Result<Option<Header>, FrameError> {
    let Some(&magic) = src.first() else {
        return Ok(None);
    };
    match magic {
        MAGIC_SHORT if src.len() >= SHORT_HEADER_LEN => Ok(Some(Header {
            len: u16::from_be_bytes([src[1], src[2]]) as usize,
            header_len: SHORT_HEADER_LEN,
        })),
        MAGIC_LONG if src.len() >= LONG_HEADER_LEN => Ok(Some(Header {
            // u32 -> usize: lossless on 32- and 64-bit targets.
            len: u32::from_be_bytes([src[1], src[2], src[3], src[4]]) as usize,
            header_len: LONG_HEADER_LEN,
        })),
        MAGIC_SHORT | MAGIC_LONG => Ok(None),
        other => Err(FrameError::BadMagic(other)),
    }
}

/// Input a decoder reads from: a buffer it may split payload off without
/// copying.
trait Chunk: Buf + std::ops::Deref<Target = [u8]> {
    fn take_front(&mut self, n: usize) -> Bytes;
}

impl Chunk for BytesMut {
    fn take_front(&mut self, n: usize) -> Bytes {
        self.split_to(n).freeze()
    }
}

impl Chunk for Bytes {
    fn take_front(&mut self, n: usize) -> Bytes {
        self.split_to(n)
    }
}

/// Reassembles whole frames: each one is a packet (`/message`).
///
/// A packet is handed over whole, so this decoder buffers each frame until
/// its last byte arrives. It refuses a frame whose header announces more than
/// `max_packet_size` before reserving any room for it, so a `0xCD` header
/// announcing 4 GiB costs nothing.
///
/// ```
/// use bytes::BytesMut;
/// use gossiphttp::codec::PacketDecoder;
///
/// let mut dec = PacketDecoder::new(1024);
/// let mut buf = BytesMut::from(&b"\xcc\x00\x02hi\xcc\x00"[..]);
/// assert_eq!(dec.decode(&mut buf).unwrap().unwrap(), &b"hi"[..]);
/// assert_eq!(dec.decode(&mut buf).unwrap(), None); // waiting for more
/// assert!(dec.decode_eof(&mut buf).is_err()); // the body ended mid-frame
/// ```
#[derive(Debug, Clone)]
pub struct PacketDecoder {
    max_packet_size: usize,
}

impl Default for PacketDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_PACKET_SIZE)
    }
}

impl PacketDecoder {
    /// A decoder refusing packets larger than `max_packet_size` bytes.
    pub fn new(max_packet_size: usize) -> Self {
        Self { max_packet_size }
    }

    /// The largest packet this decoder accepts.
    pub fn max_packet_size(&self) -> usize {
        self.max_packet_size
    }

    /// Takes the next whole frame off the front of `src`.
    ///
    /// `Ok(None)` means `src` holds no whole frame yet; the partial frame is
    /// left in place and room for the rest of it is reserved (only after the
    /// size check passed).
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some(h) = self.checked_header(src)? else {
            return Ok(None);
        };
        let total = h.header_len.saturating_add(h.len);
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(h.header_len);
        Ok(Some(src.split_to(h.len).freeze()))
    }

    /// Takes the next whole frame from `held` followed by `chunk`, copying
    /// only what must be: a frame wholly inside `chunk` (an HTTP body's
    /// data) is sliced out of it; a frame split across chunks is put
    /// together in `held`, which takes just the bytes that frame lacks.
    ///
    /// `Ok(None)` means `chunk` is used up (any start of a frame is now in
    /// `held`): fetch the next chunk, or call [`decode_eof`](Self::decode_eof)
    /// on `held` at the end of the body. The size check happens on the
    /// header, before anything is copied or reserved for the payload.
    ///
    /// ```
    /// use bytes::{Bytes, BytesMut};
    /// use gossiphttp::codec::PacketDecoder;
    ///
    /// let mut dec = PacketDecoder::new(1024);
    /// let mut held = BytesMut::new();
    /// let mut chunk = Bytes::from_static(b"\xcc\x00\x02hi\xcc\x00\x03o");
    /// assert_eq!(dec.decode_chunk(&mut held, &mut chunk).unwrap().unwrap(), &b"hi"[..]);
    /// assert_eq!(dec.decode_chunk(&mut held, &mut chunk).unwrap(), None);
    /// let mut chunk = Bytes::from_static(b"ne");
    /// assert_eq!(dec.decode_chunk(&mut held, &mut chunk).unwrap().unwrap(), &b"one"[..]);
    /// assert!(dec.decode_eof(&mut held).unwrap().is_none());
    /// ```
    pub fn decode_chunk(
        &mut self,
        held: &mut BytesMut,
        chunk: &mut Bytes,
    ) -> Result<Option<Bytes>, FrameError> {
        loop {
            if held.is_empty() {
                if let Some(h) = self.checked_header(chunk)? {
                    if chunk.len() >= h.header_len.saturating_add(h.len) {
                        chunk.advance(h.header_len);
                        return Ok(Some(chunk.split_to(h.len)));
                    }
                }
                if chunk.is_empty() {
                    return Ok(None);
                }
                // Only a frame's start: from here on it is assembled in
                // `held` (reserved, below, after its size check).
            }
            let lacking = match self.checked_header(held)? {
                Some(h) => h
                    .header_len
                    .saturating_add(h.len)
                    .saturating_sub(held.len()),
                // As much header as a frame can have.
                None => LONG_HEADER_LEN - held.len(),
            };
            let take = lacking.min(chunk.len());
            held.extend_from_slice(&chunk.split_to(take));
            if let Some(packet) = self.decode(held)? {
                return Ok(Some(packet));
            }
            if chunk.is_empty() {
                return Ok(None);
            }
        }
    }

    /// The header at the front of `src`, refused when it announces more
    /// than the maximum; `None` while it is incomplete.
    fn checked_header(&self, src: &[u8]) -> Result<Option<Header>, FrameError> {
        match peek_header(src)? {
            Some(h) if h.len > self.max_packet_size => Err(FrameError::TooLarge {
                len: h.len as u64,
                max: self.max_packet_size,
            }),
            h => Ok(h),
        }
    }

    /// Like [`decode`](Self::decode), at the end of input: leftover bytes
    /// that do not make a whole frame are a [`FrameError::Truncated`].
    pub fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(truncated(src)),
        }
    }
}

fn truncated(src: &[u8]) -> FrameError {
    let expected = peek_header(src)
        .ok()
        .flatten()
        .map(|h| h.header_len as u64 + h.len as u64);
    FrameError::Truncated {
        received: src.len(),
        expected,
    }
}

/// Unwraps frames into the byte pipe they carry (`/stream`).
///
/// Frame boundaries mean nothing on a stream, so payload bytes are handed
/// out as soon as they arrive: a frame of any legal size (up to 4 GiB) passes
/// through without ever being buffered whole. Empty frames yield nothing.
///
/// ```
/// use bytes::BytesMut;
/// use gossiphttp::codec::StreamDecoder;
///
/// let mut dec = StreamDecoder::new();
/// let mut buf = BytesMut::from(&b"\xcd\x00\x00\x00\x05hel"[..]);
/// assert_eq!(dec.decode(&mut buf).unwrap().unwrap(), &b"hel"[..]);
/// buf.extend_from_slice(b"lo");
/// assert_eq!(dec.decode(&mut buf).unwrap().unwrap(), &b"lo"[..]);
/// assert!(dec.decode_eof(&mut buf).unwrap().is_none()); // clean end
/// ```
#[derive(Debug, Clone, Default)]
pub struct StreamDecoder {
    /// Payload bytes still owed by the frame being read; 0 between frames.
    remaining: u64,
    /// Header length plus payload length of the current frame, for errors.
    frame_len: u64,
    /// Frames whose header has been read, for metrics.
    frames: u64,
}

impl StreamDecoder {
    /// A decoder positioned at a frame boundary.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when the decoder sits between frames (a clean place to end).
    pub fn at_frame_boundary(&self) -> bool {
        self.remaining == 0
    }

    /// How many frame headers this decoder has read so far.
    pub fn frames_started(&self) -> u64 {
        self.frames
    }

    /// Takes the next run of payload bytes off the front of `src`.
    ///
    /// `Ok(None)` means `src` holds no payload byte yet.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        self.decode_from(src)
    }

    /// Takes the next run of payload from `held` followed by `chunk`,
    /// without copying payload: runs are sliced out of `chunk` (an HTTP
    /// body's data); only a frame header split across chunks is put back
    /// together in `held`.
    ///
    /// `Ok(None)` means `chunk` is used up (half a header may wait in
    /// `held`): fetch the next chunk, or call
    /// [`decode_eof`](Self::decode_eof) on `held` at the end of the body.
    ///
    /// ```
    /// use bytes::{Bytes, BytesMut};
    /// use gossiphttp::codec::StreamDecoder;
    ///
    /// let mut dec = StreamDecoder::new();
    /// let mut held = BytesMut::new();
    /// let mut chunk = Bytes::from_static(b"\xcc\x00\x02hi\xcc\x00");
    /// assert_eq!(dec.decode_chunk(&mut held, &mut chunk).unwrap().unwrap(), &b"hi"[..]);
    /// assert_eq!(dec.decode_chunk(&mut held, &mut chunk).unwrap(), None);
    /// let mut chunk = Bytes::from_static(b"\x02yo");
    /// assert_eq!(dec.decode_chunk(&mut held, &mut chunk).unwrap().unwrap(), &b"yo"[..]);
    /// ```
    pub fn decode_chunk(
        &mut self,
        held: &mut BytesMut,
        chunk: &mut Bytes,
    ) -> Result<Option<Bytes>, FrameError> {
        loop {
            if !held.is_empty() {
                // Top the split header up; payload bytes that come along
                // are taken from `held` first, so the order holds.
                let take = LONG_HEADER_LEN.saturating_sub(held.len()).min(chunk.len());
                held.extend_from_slice(&chunk.split_to(take));
                match self.decode_from(held)? {
                    Some(run) => return Ok(Some(run)),
                    None if !chunk.is_empty() => continue,
                    None => return Ok(None),
                }
            }
            match self.decode_from(chunk)? {
                Some(run) => return Ok(Some(run)),
                None => {
                    // Half a header at the end of the chunk (or nothing).
                    held.extend_from_slice(chunk);
                    chunk.clear();
                    return Ok(None);
                }
            }
        }
    }

    fn decode_from<C: Chunk>(&mut self, src: &mut C) -> Result<Option<Bytes>, FrameError> {
        loop {
            if self.remaining == 0 {
                let Some(h) = peek_header(src)? else {
                    return Ok(None);
                };
                src.advance(h.header_len);
                self.remaining = h.len as u64;
                // In u64: on 32-bit targets (wasm32) a 0xCD length near u32::MAX
                // plus the header overflows usize.
                self.frame_len = h.header_len as u64 + h.len as u64;
                self.frames += 1;
                continue;
            }
            if src.is_empty() {
                return Ok(None);
            }
            let take = (self.remaining.min(src.len() as u64)) as usize;
            self.remaining -= take as u64;
            return Ok(Some(src.take_front(take)));
        }
    }

    /// Like [`decode`](Self::decode), at the end of input: ending inside a
    /// frame is a [`FrameError::Truncated`].
    pub fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if let Some(chunk) = self.decode(src)? {
            return Ok(Some(chunk));
        }
        if self.remaining > 0 {
            return Err(FrameError::Truncated {
                received: (self.frame_len - self.remaining) as usize,
                expected: Some(self.frame_len),
            });
        }
        if !src.is_empty() {
            return Err(truncated(src));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_switches_to_long_form_above_u16() {
        assert_eq!(frame_header(0), ([0xcc, 0, 0, 0, 0], 3));
        assert_eq!(frame_header(65_535), ([0xcc, 0xff, 0xff, 0, 0], 3));
        assert_eq!(frame_header(65_536), ([0xcd, 0, 1, 0, 0], 5));
        assert_eq!(encoded_len(65_536), 65_541);
    }

    #[test]
    fn packet_decoder_refuses_before_reserving() {
        let mut dec = PacketDecoder::new(1024);
        let mut buf = BytesMut::from(&[0xcd, 0xff, 0xff, 0xff, 0xff][..]);
        let cap = buf.capacity();
        assert!(matches!(
            dec.decode(&mut buf),
            Err(FrameError::TooLarge {
                len: 0xffff_ffff,
                max: 1024
            })
        ));
        assert_eq!(buf.capacity(), cap);
    }

    #[test]
    fn stream_decoder_passes_a_huge_frame_through() {
        let mut dec = StreamDecoder::new();
        let mut buf = BytesMut::from(&[0xcd, 0xff, 0xff, 0xff, 0xff, 1, 2, 3][..]);
        assert_eq!(dec.decode(&mut buf).unwrap().unwrap(), &[1, 2, 3][..]);
        assert!(!dec.at_frame_boundary());
        assert!(matches!(
            dec.decode_eof(&mut buf),
            Err(FrameError::Truncated { received: 8, .. })
        ));
    }

    #[test]
    fn stream_decoder_skips_empty_frames() {
        let mut dec = StreamDecoder::new();
        let mut buf = BytesMut::from(&b"\xcc\x00\x00\xcc\x00\x01x"[..]);
        assert_eq!(dec.decode(&mut buf).unwrap().unwrap(), &b"x"[..]);
        assert_eq!(dec.decode_eof(&mut buf).unwrap(), None);
    }
}
