//! memberlist's transmit-limited broadcast queue: every broadcast is sent
//! at most `retransmit_limit(n)` times; the least sent go first, and among
//! those the largest that still fits, then the newest. A broadcast about a
//! member replaces any older one about the same member (an alive after a
//! suspect makes the suspect moot). One departure: broadcasts queued in
//! [`Lane::Refutation`] all go before any other, however often they were
//! sent (memberlist has one lane).

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};

// SipHash on every push and take was 2% of a 500-member process's CPU in
// its join wave; names come from peers, so the hash stays seeded.
use foldhash::fast::RandomState;

use super::super::message::Message;
use super::super::wire::EncodedMessage;

/// Why a queued broadcast left the queue (for whoever waits on it, e.g. a
/// leave).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finished {
    /// Sent as often as the retransmit limit allows.
    Sent,
    /// Replaced by a newer broadcast about the same member.
    Replaced,
}

/// Which broadcasts go first: a lane before the other, then within a lane
/// memberlist's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lane {
    /// A member's news that undoes a suspicion or a death (a refutation,
    /// a restart): every member holding the old state needs it.
    Refutation,
    /// Everything else (memberlist has only this lane).
    Normal,
}

/// Order: the lane, then fewest transmits, then largest, then newest (the
/// id).
type Key = (Lane, u32, Reverse<usize>, Reverse<u64>);

#[derive(Clone, Debug)]
struct Entry {
    lane: Lane,
    /// The member the broadcast is about (`None`: a user broadcast that
    /// replaces nothing).
    about: Option<String>,
    /// Encoded once, shared by every packet that carries it.
    message: EncodedMessage,
    /// Times sent so far.
    transmits: u32,
    /// A token the engine gets back when the broadcast finishes.
    token: Option<u64>,
}

impl Entry {
    fn key(&self, id: u64) -> Key {
        (
            self.lane,
            self.transmits,
            Reverse(self.message.len()),
            Reverse(id),
        )
    }
}

/// The queue.
///
/// The order lives in a set of small keys and the broadcasts in a map by
/// id, so taking one and putting it back moves 24 bytes, not the message.
/// With the messages in the ordered map itself, `take` was 21% of the CPU
/// of a 500-member process in its join wave, most of it moving entries
/// around the map's nodes; 15% since (`benches/RESULTS.md`).
#[derive(Clone, Debug, Default)]
pub struct BroadcastQueue {
    order: BTreeSet<Key>,
    entries: HashMap<u64, Entry, RandomState>,
    /// The id of the queued broadcast about a member.
    by_member: HashMap<String, u64, RandomState>,
    next_id: u64,
}

impl BroadcastQueue {
    /// Queues `message` (encoded here, once) in the normal lane, about
    /// `about` when it is a membership broadcast; returns the tokens of
    /// broadcasts it replaced.
    pub fn push(
        &mut self,
        about: Option<String>,
        message: Message,
        token: Option<u64>,
    ) -> Vec<u64> {
        self.push_in(Lane::Normal, about, message, token)
    }

    /// [`BroadcastQueue::push`] into `lane`.
    pub fn push_in(
        &mut self,
        lane: Lane,
        about: Option<String>,
        message: Message,
        token: Option<u64>,
    ) -> Vec<u64> {
        let mut replaced = Vec::new();
        if let Some(name) = &about {
            if let Some(id) = self.by_member.remove(name) {
                if let Some(old) = self.entries.remove(&id) {
                    self.order.remove(&old.key(id));
                    replaced.extend(old.token);
                }
            }
        }
        self.next_id += 1;
        let id = self.next_id;
        if let Some(name) = &about {
            self.by_member.insert(name.clone(), id);
        }
        let entry = Entry {
            lane,
            about,
            message: EncodedMessage::new(&message),
            transmits: 0,
            token,
        };
        self.order.insert(entry.key(id));
        self.entries.insert(id, entry);
        replaced
    }

    /// True when a queued broadcast was never sent.
    pub fn has_fresh(&self) -> bool {
        self.has_fresh_in(Lane::Refutation) || self.has_fresh_in(Lane::Normal)
    }

    /// True when a broadcast queued in `lane` was never sent.
    pub fn has_fresh_in(&self, lane: Lane) -> bool {
        self.order
            .range(tier_start(lane, 0)..)
            .next()
            .is_some_and(|k| k.0 == lane && k.1 == 0)
    }

    /// Broadcasts queued.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Takes broadcasts for one packet: each costs its encoded length plus
    /// `overhead`, within `limit` bytes in all. Each taken broadcast counts
    /// one transmit; one that reached `transmit_limit` leaves the queue and
    /// its token is pushed to `finished`.
    pub fn take(
        &mut self,
        overhead: usize,
        limit: usize,
        transmit_limit: u32,
        max_count: usize,
        finished: &mut Vec<u64>,
    ) -> Vec<EncodedMessage> {
        let mut out = Vec::new();
        let mut used = 0usize;
        let mut reinsert = Vec::new();
        let Some(mut tier) = self.order.first().map(|k| (k.0, k.1)) else {
            return out;
        };
        while out.len() < max_count {
            let free = limit.saturating_sub(used + overhead);
            if free == 0 {
                break;
            }
            // The first entry in this tier whose length fits in `free`.
            let (lane, transmits) = tier;
            let found = self
                .order
                .range(
                    (lane, transmits, Reverse(free), Reverse(u64::MAX))
                        ..tier_start(lane, transmits.saturating_add(1)),
                )
                .next()
                .copied();
            let Some(key) = found else {
                // On to the next tier that has entries.
                match self
                    .order
                    .range(tier_start(lane, transmits.saturating_add(1))..)
                    .next()
                {
                    Some(k) => tier = (k.0, k.1),
                    None => break,
                }
                continue;
            };
            self.order.remove(&key);
            let id = key.3 .0;
            used += overhead + key.2 .0;
            let entry = self.entries.get_mut(&id).expect("ordered ids are queued");
            entry.transmits += 1;
            if entry.transmits >= transmit_limit {
                // Its last transmission takes the message itself.
                let entry = self.entries.remove(&id).expect("just found");
                if let Some(name) = &entry.about {
                    self.by_member.remove(name);
                }
                finished.extend(entry.token);
                out.push(entry.message);
            } else {
                out.push(entry.message.clone());
                // Back in order after this packet, so it is not taken twice.
                reinsert.push(entry.key(id));
            }
        }
        self.order.extend(reinsert);
        out
    }
}

/// The smallest key of a tier (a lane and a transmit count).
fn tier_start(lane: Lane, transmits: u32) -> Key {
    (lane, transmits, Reverse(usize::MAX), Reverse(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memberlist::message::Suspect;
    use bytes::Bytes;

    fn suspect(node: &str, inc: u32) -> Message {
        Message::Suspect(Suspect {
            incarnation: inc,
            node: node.into(),
            from: "x".into(),
        })
    }

    fn encoded(messages: &[Message]) -> Vec<EncodedMessage> {
        messages.iter().map(EncodedMessage::new).collect()
    }

    #[test]
    fn a_broadcast_about_a_member_replaces_the_older_one() {
        let mut q = BroadcastQueue::default();
        q.push(Some("a".into()), suspect("a", 1), Some(7));
        let replaced = q.push(Some("a".into()), suspect("a", 2), None);
        assert_eq!(replaced, vec![7]);
        assert_eq!(q.len(), 1);
        let mut done = Vec::new();
        assert_eq!(
            q.take(2, 1400, 4, usize::MAX, &mut done),
            encoded(&[suspect("a", 2)])
        );
    }

    #[test]
    fn each_broadcast_goes_out_at_most_the_transmit_limit_and_then_finishes() {
        let mut q = BroadcastQueue::default();
        q.push(Some("a".into()), suspect("a", 1), Some(1));
        let mut done = Vec::new();
        for _ in 0..3 {
            assert_eq!(q.take(2, 1400, 3, usize::MAX, &mut done).len(), 1);
        }
        assert_eq!(done, vec![1]);
        assert!(q.take(2, 1400, 3, usize::MAX, &mut done).is_empty());
    }

    #[test]
    fn least_sent_first_then_largest_within_the_budget() {
        let mut q = BroadcastQueue::default();
        let big = Message::User(Bytes::from(vec![0u8; 100]));
        let small = Message::User(Bytes::from(vec![1u8; 10]));
        q.push(None, small.clone(), None);
        q.push(None, big.clone(), None);
        let mut done = Vec::new();
        // Room for the big one only: it is taken first as the largest.
        assert_eq!(
            q.take(2, 103, 10, usize::MAX, &mut done),
            encoded(std::slice::from_ref(&big))
        );
        // Now the small one has fewer transmits and goes first.
        assert_eq!(
            q.take(2, 200, 10, usize::MAX, &mut done),
            encoded(&[small, big])
        );
        // Nothing fits in too small a budget.
        assert!(q.take(2, 10, 10, usize::MAX, &mut done).is_empty());
    }

    #[test]
    fn the_refutation_lane_goes_first_however_often_it_was_sent() {
        let mut q = BroadcastQueue::default();
        for i in 0..3 {
            q.push(
                Some(format!("joined-{i}")),
                suspect("a-longer-name", i),
                None,
            );
        }
        q.push_in(Lane::Refutation, Some("r".into()), suspect("r", 2), None);
        let mut done = Vec::new();
        // Sent once already, and the smallest: still first.
        assert_eq!(
            q.take(2, 1400, 10, 1, &mut done),
            encoded(&[suspect("r", 2)])
        );
        assert_eq!(
            q.take(2, 1400, 10, 1, &mut done),
            encoded(&[suspect("r", 2)])
        );
        assert!(q.has_fresh(), "the normal lane was never sent");
        let rest = q.take(2, 1400, 10, usize::MAX, &mut done);
        assert_eq!(rest[0], EncodedMessage::new(&suspect("r", 2)));
        assert_eq!(rest.len(), 4);
        assert!(!q.has_fresh());
    }
}
