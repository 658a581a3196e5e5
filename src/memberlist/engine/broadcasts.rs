//! What the engine gossips: news queued by lane, and packets that carry
//! as much of it as fits after their own message.

use super::{gossip, queue, Engine, OutPacket, Output};
use crate::memberlist::message::Message;
use crate::memberlist::wire::EncodedMessage;
use std::net::SocketAddr;

impl Engine {
    pub(super) fn queue_broadcast(&mut self, about: String, message: Message, token: Option<u64>) {
        self.queue_in(queue::Lane::Normal, about, message, token);
    }

    /// Queues news that undoes a suspicion or a death ahead of the rest
    /// (when `refutations_first` says so).
    pub(super) fn queue_refutation(&mut self, about: String, message: Message) {
        let lane = if self.config.refutations_first {
            queue::Lane::Refutation
        } else {
            queue::Lane::Normal
        };
        self.queue_in(lane, about, message, None);
    }

    pub(super) fn queue_in(
        &mut self,
        lane: queue::Lane,
        about: String,
        message: Message,
        token: Option<u64>,
    ) {
        let replaced = self.broadcasts.push_in(lane, Some(about), message, token);
        self.news_pending = true;
        self.broadcasts_finished(replaced, queue::Finished::Replaced);
    }

    /// A packet with `message` first and as many broadcasts as fit after it.
    pub(super) fn send_with_piggyback(
        &mut self,
        to: SocketAddr,
        node: Option<String>,
        message: Message,
    ) {
        let message = EncodedMessage::new(&message);
        let budget = self.config.packet_budget(message.len());
        let mut messages = vec![message];
        messages.extend(self.take_broadcasts(budget, gossip::MAX_PARTS - 1));
        self.outputs.push_back(Output::Packet(OutPacket {
            to,
            node,
            crc: false,
            messages,
        }));
    }

    /// Broadcasts for a packet, within `budget` bytes: membership first,
    /// then user messages in what is left (memberlist's `getBroadcasts`).
    pub(super) fn take_broadcasts(
        &mut self,
        budget: usize,
        max_count: usize,
    ) -> Vec<EncodedMessage> {
        const COMPOUND_OVERHEAD: usize = 2;
        let limit = self.config.retransmit_limit(self.members.len());
        let mut finished = Vec::new();
        let mut out =
            self.broadcasts
                .take(COMPOUND_OVERHEAD, budget, limit, max_count, &mut finished);
        let used: usize = out.iter().map(|m| m.len() + COMPOUND_OVERHEAD).sum();
        let left = budget.saturating_sub(used);
        if left > COMPOUND_OVERHEAD + 1 {
            let room = max_count.saturating_sub(out.len());
            let user =
                self.user_broadcasts
                    .take(COMPOUND_OVERHEAD, left, limit, room, &mut Vec::new());
            out.extend(user);
        }
        self.broadcasts_finished(finished, queue::Finished::Sent);
        out
    }
}
