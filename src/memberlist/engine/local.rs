//! Changes this member makes to its own row.

use super::{Engine, MemberChange, Message, Time};
use bytes::Bytes;

impl Engine {
    /// Replaces this member's metadata (memberlist's `UpdateNode`): our
    /// incarnation goes up and a new `alive` carrying `meta` is gossiped, so
    /// every member (Go ones included) sees the change.
    pub fn set_meta(&mut self, meta: Option<Bytes>, _now: Time) {
        let name = self.name.clone();
        let Some(me) = self.members.get_mut(&name) else {
            return;
        };
        me.meta = meta;
        me.incarnation = me.incarnation.wrapping_add(1);
        let alive = me.alive();
        self.queue_broadcast(name.clone(), Message::Alive(alive), None);
        self.member_event(&name, MemberChange::Updated);
    }
}
