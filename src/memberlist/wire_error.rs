//! Why bytes from a peer are not a memberlist packet or stream: one error
//! type for both, so callers match one set of causes.

use super::message::MessageType;
use super::msgpack::DecodeError;
use std::fmt;

/// A packet or stream that memberlist's rules refuse. Every variant is the
/// sender's doing (or a configuration mismatch between the two nodes); none
/// is ever a panic, and nothing was allocated from an unchecked length.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// A packet, a compound part or a stream with no type byte at all.
    Empty,
    /// A type byte memberlist does not define.
    UnknownType(u8),
    /// A type memberlist defines but that cannot appear here (a push-pull in
    /// a packet, a label inside a compound, encrypted data: this codec, like
    /// ckit, does not encrypt).
    UnexpectedType {
        /// The type found.
        found: MessageType,
        /// Where it was found.
        context: &'static str,
    },
    /// A message's msgpack body did not decode.
    Decode {
        /// The message being decoded.
        message: MessageType,
        /// What was wrong with it.
        error: DecodeError,
    },
    /// This node has a label (Alloy's `cluster.name`) and the packet or
    /// stream carries none: the sender is in another cluster, or not yet
    /// configured with the label. Set the same label on both, or let this
    /// node accept unlabeled traffic (skip-inbound-label-check) during a
    /// rollout.
    MissingLabel {
        /// This node's label.
        expected: String,
    },
    /// The packet or stream carries a label and this node has none: set the
    /// same label on both nodes.
    UnexpectedLabel {
        /// The sender's label.
        found: String,
    },
    /// The sender's label differs from this node's: the two belong to
    /// different clusters.
    LabelMismatch {
        /// This node's label.
        expected: String,
        /// The sender's label.
        found: String,
    },
    /// A label header (`f4`) that is empty or cut short.
    BadLabelHeader,
    /// A label longer than memberlist's 255 bytes cannot be written.
    LabelTooLong {
        /// The label's length in bytes.
        len: usize,
    },
    /// The CRC-32 (`0c`) does not match the packet: it was damaged on the way.
    CrcMismatch {
        /// The checksum the packet carries.
        announced: u32,
        /// The checksum of the bytes received.
        computed: u32,
    },
    /// A compound (`07`) whose part lengths run past its end. The parts
    /// before the cut are still delivered (as Go does).
    TruncatedCompound {
        /// Parts the compound announced.
        announced: usize,
        /// Parts missing at its end.
        missing: usize,
    },
    /// A compressed message (`09`) that names an algorithm other than LZW (0).
    UnknownCompression {
        /// The algorithm number.
        algo: u64,
    },
    /// LZW data that Go's `compress/lzw` reader would refuse (an invalid
    /// code, or no end code).
    BadCompression,
    /// A message larger than this decoder accepts (announced or, for
    /// compressed data, once decompressed). Checked before allocating.
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size (announced or reached).
        len: u64,
        /// The limit.
        max: u64,
    },
    /// Wrappers (compound, compress) nested deeper than any sender writes.
    TooDeep,
    /// A stream ended inside a message.
    Truncated {
        /// The message type being read, when known.
        message: Option<MessageType>,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Empty => f.write_str("empty memberlist message: no type byte"),
            WireError::UnknownType(t) => write!(f, "unknown memberlist message type {t}"),
            WireError::UnexpectedType { found, context } => {
                write!(f, "memberlist message type {found:?} cannot appear {context}")
            }
            WireError::Decode { message, error } => write!(f, "bad {message:?} message: {error}"),
            WireError::MissingLabel { expected } => write!(
                f,
                "unlabeled traffic refused: this node's label is {expected:?}; give the sender the same label (or enable skip-inbound-label-check during a rollout)"
            ),
            WireError::UnexpectedLabel { found } => write!(
                f,
                "traffic labeled {found:?} refused: this node has no label; give both nodes the same label"
            ),
            WireError::LabelMismatch { expected, found } => write!(
                f,
                "traffic labeled {found:?} refused: this node's label is {expected:?} (different clusters)"
            ),
            WireError::BadLabelHeader => f.write_str("label header empty or truncated"),
            WireError::LabelTooLong { len } => {
                write!(f, "label of {len} bytes: memberlist labels are at most 255 bytes")
            }
            WireError::CrcMismatch { announced, computed } => write!(
                f,
                "CRC mismatch: packet says {announced:08x}, its bytes give {computed:08x} (damaged in transit)"
            ),
            WireError::TruncatedCompound { announced, missing } => write!(
                f,
                "compound message truncated: {missing} of its {announced} parts are missing"
            ),
            WireError::UnknownCompression { algo } => {
                write!(f, "unknown compression algorithm {algo} (memberlist knows LZW = 0)")
            }
            WireError::BadCompression => f.write_str("invalid LZW data"),
            WireError::TooLarge { what, len, max } => {
                write!(f, "{what} of {len} bytes exceeds the limit of {max} bytes")
            }
            WireError::TooDeep => f.write_str("compound/compressed messages nested too deep"),
            WireError::Truncated { message } => match message {
                Some(t) => write!(f, "stream ended inside a {t:?} message"),
                None => f.write_str("stream ended inside a message"),
            },
        }
    }
}

impl std::error::Error for WireError {}

impl WireError {
    /// Whether this refuses traffic for its label (missing, unexpected or
    /// another cluster's): a configuration problem an operator must hear
    /// about, unlike a damaged packet.
    pub fn is_label_refusal(&self) -> bool {
        matches!(
            self,
            WireError::MissingLabel { .. }
                | WireError::UnexpectedLabel { .. }
                | WireError::LabelMismatch { .. }
        )
    }
}
