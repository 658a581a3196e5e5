//! How many bytes a message takes on the wire, for the gossip budget: the
//! codec's exact length, so packets fill as memberlist's do.

use super::super::message::Message;

/// The encoded length of `message`, type byte included.
pub fn encoded_len(message: &Message) -> usize {
    message.encoded_len()
}
