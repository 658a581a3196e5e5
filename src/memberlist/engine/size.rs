//! How many bytes a message takes on the wire, for the gossip budget: the
//! codec's exact length, so packets fill as memberlist's do.
//!
//! The codec measures a message by encoding it (`Message::encoded_len`
//! allocates a fresh buffer each time); the engine measures every broadcast
//! it queues and every packet it fills, so it encodes into one buffer per
//! thread, kept between calls, and allocates only when a message is longer
//! than any before. (A codec whose writers took a counting sink could
//! measure without writing at all.)

use std::cell::RefCell;

use super::super::message::Message;

thread_local! {
    /// The scratch buffer messages are measured in.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The encoded length of `message`, type byte included.
pub fn encoded_len(message: &Message) -> usize {
    if let Message::User(payload) = message {
        return 1 + payload.len();
    }
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            message.encode(&mut buf);
            buf.len()
        }
        // Only reachable by re-entry, which the encoder never does.
        Err(_) => message.encoded_len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memberlist::message::{Alive, Dead, Suspect};
    use bytes::Bytes;

    #[test]
    fn lengths_are_the_codec_s_and_the_buffer_is_reused() {
        let alive = Message::Alive(Alive {
            incarnation: 3,
            node: "node-1".into(),
            addr: Bytes::from_static(&[127, 0, 0, 1]),
            port: 7946,
            meta: Some(Bytes::from_static(b"meta")),
            vsn: Bytes::from_static(&[1, 5, 2, 0, 0, 0]),
        });
        let suspect = Message::Suspect(Suspect {
            incarnation: 1,
            node: "a".into(),
            from: "b".into(),
        });
        let dead = Message::Dead(Dead {
            incarnation: 70_000,
            node: "a-long-member-name".into(),
            from: "b".into(),
        });
        let user = Message::User(Bytes::from_static(b"hello"));
        for m in [&alive, &suspect, &dead, &user, &alive] {
            assert_eq!(encoded_len(m), m.to_vec().len(), "{m:?}");
        }
        let capacity = SCRATCH.with(|s| s.borrow().capacity());
        encoded_len(&suspect);
        encoded_len(&dead);
        assert_eq!(
            SCRATCH.with(|s| s.borrow().capacity()),
            capacity,
            "shorter messages reuse the buffer"
        );
    }
}
