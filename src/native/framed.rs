//! `tokio_util::codec` adapters for the shared codec, so any `AsyncRead` /
//! `AsyncWrite` can be framed with `FramedRead` / `FramedWrite`:
//!
//! ```
//! use futures_util::StreamExt;
//! use gossiphttp::codec::PacketDecoder;
//! use tokio_util::codec::FramedRead;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let body: &[u8] = b"\xcc\x00\x02hi\xcc\x00\x00";
//! let mut packets = FramedRead::new(body, PacketDecoder::default());
//! assert_eq!(packets.next().await.unwrap().unwrap(), &b"hi"[..]);
//! assert_eq!(packets.next().await.unwrap().unwrap(), &b""[..]);
//! assert!(packets.next().await.is_none());
//! # });
//! ```

use crate::codec::{FrameEncoder, PacketDecoder, StreamDecoder};
use crate::Error;
use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

impl Decoder for PacketDecoder {
    type Item = Bytes;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, Error> {
        Ok(PacketDecoder::decode(self, src)?)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, Error> {
        Ok(PacketDecoder::decode_eof(self, src)?)
    }
}

impl Decoder for StreamDecoder {
    type Item = Bytes;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, Error> {
        Ok(StreamDecoder::decode(self, src)?)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, Error> {
        Ok(StreamDecoder::decode_eof(self, src)?)
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for FrameEncoder {
    type Error = Error;

    fn encode(&mut self, payload: T, dst: &mut BytesMut) -> Result<(), Error> {
        Ok(FrameEncoder::encode(self, payload.as_ref(), dst)?)
    }
}
