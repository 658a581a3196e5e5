//! memberlist's packets: the layers around messages, outermost first.
//!
//! ```text
//! [f4 len label] [0c crc32-be] [09 compress{Algo, Buf}] [07 n len16.. parts..] message
//! ```
//!
//! Every layer is optional. The sender builds them inside out, as Go's
//! `rawSendMsgPacket` does: compress (only when that makes the packet
//! smaller), then the CRC (only when the target is known and speaks protocol
//! 5), then the label (when the node has one). The receiver peels them in
//! the same order and applies memberlist's label rules.
//!
//! ```
//! use gossiphttp::memberlist::message::{Message, Nack};
//! use gossiphttp::memberlist::packet::{decode_packet, encode_packets, LabelPolicy, PacketOptions};
//!
//! let messages = [Message::Nack(Nack { seq_no: 7 })];
//! let options = PacketOptions { label: "prod", crc: true, compress: true };
//! let packets = encode_packets(&messages, &options).unwrap();
//! let decoded = decode_packet(&packets[0], &LabelPolicy::new("prod")).unwrap();
//! assert!(decoded.had_crc);
//! assert_eq!(decoded.messages, messages);
//! ```

use super::lzw;
use super::message::{Message, MessageType};
use super::wire::{decode_body, Compressed, EncodedMessage, GoMsgpack};
use super::wire_error::WireError;
use bytes::Bytes;

/// memberlist's `LabelMaxSize`.
pub const LABEL_MAX_SIZE: usize = 255;
/// The most parts one compound holds (its count is a `u8`).
pub const MAX_COMPOUND_PARTS: usize = 255;
/// The most bytes a compressed packet may expand to: ckit's
/// `UDPBufferSize` (10 MiB), the largest packet a Go ckit node builds.
pub const DEFAULT_MAX_DECOMPRESSED: usize = 10 * 1024 * 1024;
/// How deep compounds and compressed messages may nest. Go senders write at
/// most compress > compound > message (2); Go's reader has no limit.
pub const MAX_NESTING: usize = 4;

/// memberlist's `compoundHeaderOverhead`: what a compound's type and count
/// cost in a packet's budget.
pub const COMPOUND_HEADER_OVERHEAD: usize = 2;
/// memberlist's `compoundOverhead`: what each part's length costs.
pub const COMPOUND_OVERHEAD: usize = 2;
/// memberlist's `userMsgOverhead`: the `08` before a broadcast's payload.
pub const USER_MSG_OVERHEAD: usize = 1;

/// memberlist's `labelOverhead`: the bytes a label header adds to every
/// packet (none without a label).
pub fn label_overhead(label: &str) -> usize {
    if label.is_empty() {
        0
    } else {
        2 + label.len()
    }
}

/// How a packet is built, as memberlist decides per send.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketOptions<'a> {
    /// This node's label (Alloy's `cluster.name`); empty for none.
    pub label: &'a str,
    /// Add the CRC-32 wrapper: memberlist does when the target member is
    /// known and its protocol max is at least 5 (gossip, the probe's
    /// ping+suspect compound), not for acks, nacks or plain probe pings.
    pub crc: bool,
    /// memberlist's `EnableCompression` (on in ckit): compress when that
    /// makes the packet smaller.
    pub compress: bool,
}

/// The label header (`f4`, length, label) memberlist puts before every
/// packet and at the start of every stream it opens; empty for no label.
pub fn label_header(label: &str) -> Result<Vec<u8>, WireError> {
    if label.is_empty() {
        return Ok(Vec::new());
    }
    if label.len() > LABEL_MAX_SIZE {
        return Err(WireError::LabelTooLong { len: label.len() });
    }
    let mut out = Vec::with_capacity(2 + label.len());
    out.push(MessageType::HasLabel as u8);
    out.push(label.len() as u8);
    out.extend_from_slice(label.as_bytes());
    Ok(out)
}

/// A compound (`07`, count, big-endian `u16` lengths, parts) of at most
/// [`MAX_COMPOUND_PARTS`] encoded messages, each at most 65535 bytes.
pub fn compound(parts: &[impl AsRef<[u8]>]) -> Result<Vec<u8>, WireError> {
    if parts.len() > MAX_COMPOUND_PARTS {
        return Err(WireError::TooLarge {
            what: "compound part count",
            len: parts.len() as u64,
            max: MAX_COMPOUND_PARTS as u64,
        });
    }
    let total: usize = parts.iter().map(|p| p.as_ref().len()).sum();
    let mut out = Vec::with_capacity(2 + 2 * parts.len() + total);
    out.push(MessageType::Compound as u8);
    out.push(parts.len() as u8);
    for part in parts {
        let part = part.as_ref();
        let len = u16::try_from(part.len()).map_err(|_| WireError::TooLarge {
            what: "compound part",
            len: part.len() as u64,
            max: u64::from(u16::MAX),
        })?;
        out.extend_from_slice(&len.to_be_bytes());
    }
    for part in parts {
        out.extend_from_slice(part.as_ref());
    }
    Ok(out)
}

/// `compressMsg` (`09`) around `payload`: msgpack `compress{Algo: 0, Buf}`
/// with `Buf` the LZW of the payload.
pub fn compress_message(payload: &[u8]) -> Vec<u8> {
    let body = Compressed {
        algo: 0,
        buf: Bytes::from(lzw::compress(payload)),
    };
    let mut out = vec![MessageType::Compress as u8];
    body.encode_msgpack(&mut out);
    out
}

/// Wraps one encoded payload (a message or a compound) into the packet
/// memberlist sends: compressed if smaller, then CRC, then label.
pub fn wrap_packet(payload: Vec<u8>, options: &PacketOptions<'_>) -> Result<Vec<u8>, WireError> {
    let mut label = label_header(options.label)?;
    let mut body = payload;
    if options.compress {
        let compressed = compress_message(&body);
        if compressed.len() < body.len() {
            body = compressed;
        }
    }
    if options.crc {
        let crc = crc32fast::hash(&body);
        let mut with_crc = Vec::with_capacity(5 + body.len());
        with_crc.push(MessageType::HasCrc as u8);
        with_crc.extend_from_slice(&crc.to_be_bytes());
        with_crc.extend_from_slice(&body);
        body = with_crc;
    }
    if label.is_empty() {
        Ok(body)
    } else {
        label.extend_from_slice(&body);
        Ok(label)
    }
}

/// Encodes messages into the packets memberlist sends for them: a single
/// message alone, several as compounds of at most 255 parts each (Go's
/// `makeCompoundMessages`), each packet wrapped per `options`. Deciding
/// which messages fit one packet (memberlist's `UDPBufferSize` budget, see
/// [`Message::encoded_len`]) is the caller's business.
pub fn encode_packets(
    messages: &[Message],
    options: &PacketOptions<'_>,
) -> Result<Vec<Bytes>, WireError> {
    let parts: Vec<EncodedMessage> = messages.iter().map(EncodedMessage::new).collect();
    encode_packet_parts(&parts, options)
}

/// [`encode_packets`] for messages already encoded (the engine's packets
/// carry them so: a broadcast is encoded once for all its transmissions).
pub fn encode_packet_parts(
    parts: &[EncodedMessage],
    options: &PacketOptions<'_>,
) -> Result<Vec<Bytes>, WireError> {
    if let [single] = parts {
        return Ok(vec![Bytes::from(wrap_packet(
            single.as_bytes().to_vec(),
            options,
        )?)]);
    }
    parts
        .chunks(MAX_COMPOUND_PARTS)
        .map(|chunk| Ok(Bytes::from(wrap_packet(compound(chunk)?, options)?)))
        .collect()
}

/// memberlist's inbound label rules, for packets and streams.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelPolicy {
    /// This node's label; empty for none.
    pub label: String,
    /// memberlist's `SkipInboundLabelCheck`: accept traffic without a label
    /// even though this node has one (for a rollout that adds a label).
    pub skip_inbound_label_check: bool,
}

impl LabelPolicy {
    /// The policy of a node labeled `label` ("" for none), checking inbound
    /// labels.
    pub fn new(label: impl Into<String>) -> Self {
        LabelPolicy {
            label: label.into(),
            skip_inbound_label_check: false,
        }
    }

    /// Checks the label a packet or stream carried (`None`: no header).
    ///
    /// As memberlist: a label must equal this node's; no label is refused
    /// when this node has one. With `skip_inbound_label_check`, unlabeled
    /// traffic is accepted. There memberlist also refuses traffic carrying
    /// this node's own label (its transport was expected to strip it); this
    /// codec accepts it, so that labeled and unlabeled nodes both get
    /// through during a rollout. Other labels are refused either way.
    pub fn check(&self, found: Option<&[u8]>) -> Result<(), WireError> {
        match found {
            Some(found) if found == self.label.as_bytes() && !self.label.is_empty() => Ok(()),
            Some(found) => {
                let found = String::from_utf8_lossy(found).into_owned();
                if self.label.is_empty() {
                    Err(WireError::UnexpectedLabel { found })
                } else {
                    Err(WireError::LabelMismatch {
                        expected: self.label.clone(),
                        found,
                    })
                }
            }
            None if self.label.is_empty() || self.skip_inbound_label_check => Ok(()),
            None => Err(WireError::MissingLabel {
                expected: self.label.clone(),
            }),
        }
    }
}

/// Splits a label header off `packet`: the label (if any) and the rest.
/// An empty or truncated header is refused, as Go refuses it.
pub fn split_label(packet: &[u8]) -> Result<(Option<&[u8]>, &[u8]), WireError> {
    match packet {
        [0xf4, len, rest @ ..] => {
            let len = usize::from(*len);
            if len == 0 || rest.len() < len {
                return Err(WireError::BadLabelHeader);
            }
            Ok((Some(&rest[..len]), &rest[len..]))
        }
        [0xf4] => Err(WireError::BadLabelHeader),
        _ => Ok((None, packet)),
    }
}

/// Checks and removes a CRC wrapper: `Ok((true, rest))` when there was one
/// and it matched, `Ok((false, packet))` when there was none.
pub fn split_crc(packet: &[u8]) -> Result<(bool, &[u8]), WireError> {
    match packet {
        [0x0c, a, b, c, d, rest @ ..] => {
            let announced = u32::from_be_bytes([*a, *b, *c, *d]);
            let computed = crc32fast::hash(rest);
            if announced != computed {
                return Err(WireError::CrcMismatch {
                    announced,
                    computed,
                });
            }
            Ok((true, rest))
        }
        _ => Ok((false, packet)),
    }
}

/// Splits a compound's body (after its `07`) into its parts, as Go's
/// `decodeCompoundMessage`: the parts that are whole, and how many were cut
/// off at the end. Bytes after the last part are ignored.
pub fn split_compound(body: &[u8]) -> Result<(Vec<&[u8]>, usize), WireError> {
    let (&count, rest) = body.split_first().ok_or(WireError::TruncatedCompound {
        announced: 0,
        missing: 0,
    })?;
    let count = usize::from(count);
    if rest.len() < 2 * count {
        return Err(WireError::TruncatedCompound {
            announced: count,
            missing: count,
        });
    }
    let (lengths, mut data) = rest.split_at(2 * count);
    let mut parts = Vec::with_capacity(count);
    for (index, len) in lengths.chunks_exact(2).enumerate() {
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        if data.len() < len {
            return Ok((parts, count - index));
        }
        let (part, after) = data.split_at(len);
        parts.push(part);
        data = after;
    }
    Ok((parts, 0))
}

/// Decompresses a `compressMsg` body (after its `09`): the inner bytes,
/// which start with their own type byte. `max` bounds the output.
pub fn decompress_body(body: &[u8], max: usize) -> Result<Vec<u8>, WireError> {
    let compressed: Compressed = decode_body(MessageType::Compress, body)?;
    if compressed.algo != 0 {
        return Err(WireError::UnknownCompression {
            algo: compressed.algo.into(),
        });
    }
    let inner = lzw::decompress(&compressed.buf, max)?;
    if inner.is_empty() {
        return Err(WireError::Empty);
    }
    Ok(inner)
}

/// A received packet, its layers peeled.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodedPacket {
    /// The label it carried (checked against the node's policy).
    pub label: Option<String>,
    /// Whether it carried a CRC (which matched).
    pub had_crc: bool,
    /// Every message that decoded, in order (compound parts flattened).
    pub messages: Vec<Message>,
    /// What failed inside it: a part that did not decode, a truncated
    /// compound. As in Go, the other parts are still delivered.
    pub problems: Vec<WireError>,
}

/// Decodes a packet as memberlist's `ingestPacket` and `handleCommand` do,
/// with `DEFAULT_MAX_DECOMPRESSED` as the decompression bound.
///
/// Errors that refuse the whole packet (label rules, a CRC mismatch, an
/// empty packet) are `Err`; a bad part of a compound is reported in
/// [`DecodedPacket::problems`] and the rest delivered.
pub fn decode_packet(packet: &[u8], policy: &LabelPolicy) -> Result<DecodedPacket, WireError> {
    decode_packet_with_limit(packet, policy, DEFAULT_MAX_DECOMPRESSED)
}

/// [`decode_packet`] with an explicit bound on the bytes all compressed
/// layers of the packet may expand to, together.
pub fn decode_packet_with_limit(
    packet: &[u8],
    policy: &LabelPolicy,
    max_decompressed: usize,
) -> Result<DecodedPacket, WireError> {
    let (label, rest) = split_label(packet)?;
    policy.check(label)?;
    let (had_crc, rest) = split_crc(rest)?;
    let mut decoded = DecodedPacket {
        label: label.map(|l| String::from_utf8_lossy(l).into_owned()),
        had_crc,
        ..DecodedPacket::default()
    };
    let mut budget = max_decompressed;
    match peel(rest, 0, &mut budget, &mut decoded) {
        // A packet that is nothing but one bad message is refused whole.
        Err(error) if decoded.messages.is_empty() && decoded.problems.is_empty() => Err(error),
        Err(error) => {
            decoded.problems.push(error);
            Ok(decoded)
        }
        Ok(()) => Ok(decoded),
    }
}

fn peel(
    bytes: &[u8],
    depth: usize,
    budget: &mut usize,
    out: &mut DecodedPacket,
) -> Result<(), WireError> {
    if depth > MAX_NESTING {
        return Err(WireError::TooDeep);
    }
    let (&type_byte, body) = bytes.split_first().ok_or(WireError::Empty)?;
    match MessageType::from_byte(type_byte) {
        Some(MessageType::Compound) => {
            let (parts, missing) = split_compound(body)?;
            let announced = parts.len() + missing;
            for part in parts {
                if let Err(error) = peel(part, depth + 1, budget, out) {
                    out.problems.push(error);
                }
            }
            if missing > 0 {
                out.problems
                    .push(WireError::TruncatedCompound { announced, missing });
            }
            Ok(())
        }
        Some(MessageType::Compress) => {
            let inner = decompress_body(body, *budget)?;
            *budget -= inner.len();
            peel(&inner, depth + 1, budget, out)
        }
        _ => {
            out.messages.push(Message::decode(bytes)?);
            Ok(())
        }
    }
}
