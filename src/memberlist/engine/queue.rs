//! memberlist's transmit-limited broadcast queue: every broadcast is sent
//! at most `retransmit_limit(n)` times; the least sent go first, and among
//! those the largest that still fits, then the newest. A broadcast about a
//! member replaces any older one about the same member (an alive after a
//! suspect makes the suspect moot).

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

use super::super::message::Message;

/// Why a queued broadcast left the queue (for whoever waits on it, e.g. a
/// leave).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finished {
    /// Sent as often as the retransmit limit allows.
    Sent,
    /// Replaced by a newer broadcast about the same member.
    Replaced,
}

/// Order: fewest transmits, then largest, then newest.
type Key = (u32, Reverse<usize>, Reverse<u64>);

#[derive(Clone, Debug)]
struct Entry {
    /// The member the broadcast is about (`None`: a user broadcast that
    /// replaces nothing).
    about: Option<String>,
    message: Message,
    /// A token the engine gets back when the broadcast finishes.
    token: Option<u64>,
}

/// The queue.
#[derive(Clone, Debug, Default)]
pub struct BroadcastQueue {
    entries: BTreeMap<Key, Entry>,
    by_member: HashMap<String, Key>,
    next_id: u64,
}

impl BroadcastQueue {
    /// Queues `message`, about `about` when it is a membership broadcast;
    /// returns the tokens of broadcasts it replaced.
    pub fn push(
        &mut self,
        about: Option<String>,
        message: Message,
        token: Option<u64>,
    ) -> Vec<u64> {
        let mut replaced = Vec::new();
        if let Some(name) = &about {
            if let Some(key) = self.by_member.remove(name) {
                if let Some(old) = self.entries.remove(&key) {
                    replaced.extend(old.token);
                }
            }
        }
        self.next_id += 1;
        let key = (0, Reverse(message.encoded_len()), Reverse(self.next_id));
        if let Some(name) = &about {
            self.by_member.insert(name.clone(), key);
        }
        self.entries.insert(
            key,
            Entry {
                about,
                message,
                token,
            },
        );
        replaced
    }

    /// True when a queued broadcast was never sent.
    pub fn has_fresh(&self) -> bool {
        self.entries.keys().next().is_some_and(|k| k.0 == 0)
    }

    /// Broadcasts queued.
    pub fn len(&self) -> usize {
        self.entries.len()
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
    ) -> Vec<Message> {
        let mut out = Vec::new();
        let mut used = 0usize;
        let mut reinsert = Vec::new();
        let Some(mut tier) = self.entries.keys().next().map(|k| k.0) else {
            return out;
        };
        let max_tier = self.entries.keys().next_back().map_or(0, |k| k.0);
        while tier <= max_tier && out.len() < max_count {
            let free = limit.saturating_sub(used + overhead);
            if free == 0 {
                break;
            }
            // The first entry in this tier whose length fits in `free`.
            let found = self
                .entries
                .range(
                    (tier, Reverse(free), Reverse(u64::MAX))
                        ..(tier + 1, Reverse(usize::MAX), Reverse(u64::MAX)),
                )
                .next()
                .map(|(k, _)| *k);
            let Some(key) = found else {
                tier += 1;
                continue;
            };
            let entry = self.entries.remove(&key).expect("key just found");
            used += overhead + key.1 .0;
            out.push(entry.message.clone());
            let transmits = key.0 + 1;
            if transmits >= transmit_limit {
                if let Some(name) = &entry.about {
                    self.by_member.remove(name);
                }
                finished.extend(entry.token);
            } else {
                reinsert.push(((transmits, key.1, key.2), entry));
            }
        }
        for (key, entry) in reinsert {
            // Its name still maps to the key it was taken under.
            if let Some(slot) = entry.about.as_ref().and_then(|n| self.by_member.get_mut(n)) {
                *slot = key;
            }
            self.entries.insert(key, entry);
        }
        out
    }
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
            vec![suspect("a", 2)]
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
        assert_eq!(q.take(2, 103, 10, usize::MAX, &mut done), vec![big.clone()]);
        // Now the small one has fewer transmits and goes first.
        assert_eq!(
            q.take(2, 200, 10, usize::MAX, &mut done),
            vec![small.clone(), big.clone()]
        );
        // Nothing fits in too small a budget.
        assert!(q.take(2, 10, 10, usize::MAX, &mut done).is_empty());
    }
}
