//! What alive, suspect and dead messages (gossiped, or merged from a
//! push-pull) do to the member list: memberlist's incarnation rules,
//! refutation, and the suspicion that ends in death.

use super::super::message::{Alive, Dead, Message, NodeState, PushNodeState, PushPull, Suspect};
use super::super::wire::EncodedMessage;
use super::members::{socket_addr, vsn_array, Member};
use super::output::{MemberChange, OutPacket, Output};
use super::suspicion::Suspicion;
use super::time::Time;
use super::Engine;

/// Refutations of our name at another address: at most one per this many
/// probe intervals.
pub(super) const CONFLICT_REFUTE_EVERY: u32 = 10;

/// How far an alive message is to be believed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Trust {
    /// Heard in gossip or a push-pull.
    Heard,
    /// The member answered a probe at the address the message names.
    Verified,
}

impl Engine {
    /// memberlist's `aliveNode`.
    pub(super) fn alive_node(&mut self, a: Alive, now: Time, trust: Trust) {
        if a.node.is_empty() {
            return;
        }
        // A leaving member does not come back to life by its own old news.
        if self.leaving.is_some() && a.node == self.name {
            return;
        }
        if a.vsn.len() >= 3 && (a.vsn[0] == 0 || a.vsn[1] == 0 || a.vsn[0] > a.vsn[1]) {
            return;
        }
        let Some(addr) = socket_addr(&a.addr, a.port) else {
            return;
        };
        if a.node == self.name {
            self.alive_about_us(&a, addr, now);
            return;
        }
        let verify = self.config.verify_revivals && trust == Trust::Heard;
        let Some(row) = self.members.get(&a.node) else {
            if verify && self.members.tombstone(&a.node).is_some() {
                self.verify_revival(a, addr, now);
                return;
            }
            let member = Member {
                name: a.node.clone(),
                addr,
                meta: a.meta.clone(),
                incarnation: a.incarnation,
                state: NodeState::Alive,
                state_change: now,
                vsn: vsn_array(&a.vsn),
            };
            let name = a.node.clone();
            self.members.insert(member, &mut self.rng);
            self.last_growth = now;
            self.queue_broadcast(name.clone(), Message::Alive(a), None);
            self.member_event(&name, MemberChange::Joined);
            return;
        };
        let addr_changed = row.addr != addr;
        let reclaimable = row.state == NodeState::Left
            || (row.state == NodeState::Dead
                && !self.config.dead_node_reclaim_time.is_zero()
                && now.since(row.state_change) > self.config.dead_node_reclaim_time);
        if a.incarnation <= row.incarnation && !(addr_changed && reclaimable) {
            return;
        }
        if addr_changed && !reclaimable && !self.config.verify_revivals {
            // memberlist's "Conflicting address": the old address stands
            // until its row is forgotten.
            return;
        }
        if verify && matches!(row.state, NodeState::Suspect | NodeState::Dead) {
            self.verify_revival(a, addr, now);
            return;
        }
        let old = row.clone();
        self.suspicions.remove(&a.node);
        let name = a.node.clone();
        let row = self.members.get_mut(&name).expect("looked up above");
        row.addr = addr;
        row.meta = a.meta.clone();
        row.incarnation = a.incarnation;
        if !a.vsn.is_empty() {
            row.vsn = vsn_array(&a.vsn);
        }
        if row.state != NodeState::Alive {
            row.state = NodeState::Alive;
            row.state_change = now;
        }
        // A higher incarnation with nothing else new is a refutation:
        // somewhere the member is held suspect.
        let refutes = old.state != NodeState::Alive || (old.meta == a.meta && !addr_changed);
        if refutes {
            self.queue_refutation(name.clone(), Message::Alive(a));
        } else {
            self.queue_broadcast(name.clone(), Message::Alive(a), None);
        }
        let change = match old.state {
            NodeState::Dead | NodeState::Left => Some(MemberChange::Joined),
            NodeState::Suspect => Some(MemberChange::Alive),
            NodeState::Alive
                if old.meta != self.members.get(&name).and_then(|m| m.meta.clone())
                    || addr_changed =>
            {
                Some(MemberChange::Updated)
            }
            NodeState::Alive => None,
        };
        if let Some(change) = change {
            self.member_event(&name, change);
        }
    }

    /// An alive message about ourselves: news older than our incarnation is
    /// ignored; anything else that differs from us (another address, meta,
    /// versions: a previous life of ours) is refuted.
    ///
    /// Another address is usually our previous life (we restarted
    /// elsewhere), but it may be another live process with our name: two
    /// such would refute each other at gossip speed forever, so a refutation
    /// of another address comes at most once per [`CONFLICT_REFUTE_EVERY`]
    /// probe intervals.
    fn alive_about_us(&mut self, a: &Alive, addr: std::net::SocketAddr, now: Time) {
        let me = self.local_member();
        if a.incarnation < me.incarnation {
            return;
        }
        let same = addr == me.addr && a.meta == me.meta && vsn_array(&a.vsn) == me.vsn;
        if a.incarnation == me.incarnation && same {
            return;
        }
        if addr != me.addr {
            if !self.config.verify_revivals {
                return; // memberlist: a conflict it only logs
            }
            let every = self
                .config
                .probe_interval
                .saturating_mul(CONFLICT_REFUTE_EVERY);
            if self
                .last_conflict_refute
                .is_some_and(|t| now.since(t) < every)
            {
                return;
            }
            self.last_conflict_refute = Some(now);
        }
        self.refute(a.incarnation);
    }

    /// Announces ourselves alive with an incarnation past `accused`.
    pub(super) fn refute(&mut self, accused: u32) {
        let name = self.name.clone();
        let me = self.members.get_mut(&name).expect("our own row");
        let mut inc = me.incarnation.wrapping_add(1);
        if accused >= inc {
            inc = accused.wrapping_add(1);
        }
        me.incarnation = inc;
        let alive = me.alive();
        // Having to refute means others could not hear us: less healthy.
        self.awareness.apply(1);
        self.queue_refutation(name, Message::Alive(alive));
    }

    /// memberlist's `suspectNode`.
    pub(super) fn suspect_node(&mut self, s: Suspect, now: Time) {
        let Some(row) = self.members.get(&s.node) else {
            return;
        };
        if s.incarnation < row.incarnation {
            return;
        }
        if let Some(suspicion) = self.suspicions.get_mut(&s.node) {
            if suspicion.confirm(&s.from) {
                let node = s.node.clone();
                self.queue_broadcast(node, Message::Suspect(s), None);
            }
            return;
        }
        if row.state != NodeState::Alive {
            return;
        }
        if s.node == self.name {
            if self.leaving.is_none() {
                self.refute(s.incarnation);
            }
            return;
        }
        let n = self.members.len();
        let mut k = self.config.suspicion_mult.saturating_sub(2);
        if (n as u64).saturating_sub(2) < u64::from(k) {
            k = 0;
        }
        let min = self.config.suspicion_min(n);
        let max = self.config.suspicion_max(n);
        self.suspicions
            .insert(s.node.clone(), Suspicion::new(&s.from, k, min, max, now));
        let row = self.members.get_mut(&s.node).expect("looked up above");
        row.incarnation = s.incarnation;
        row.state = NodeState::Suspect;
        row.state_change = now;
        let (addr, crc) = (row.addr, row.reads_crc());
        let node = s.node.clone();
        if self.config.tell_the_accused && s.from == self.name {
            self.outputs.push_back(Output::Packet(OutPacket {
                to: addr,
                node: Some(node.clone()),
                crc,
                messages: vec![EncodedMessage::new(&Message::Suspect(s.clone()))],
            }));
        }
        self.queue_broadcast(node.clone(), Message::Suspect(s), None);
        self.member_event(&node, MemberChange::Suspect);
    }

    /// memberlist's `deadNode`. A dead message about oneself (`from ==
    /// node`) is a leave: the member is recorded as left.
    pub(super) fn dead_node(&mut self, d: Dead, now: Time) {
        let Some(row) = self.members.get(&d.node) else {
            return;
        };
        if d.incarnation < row.incarnation {
            return;
        }
        self.suspicions.remove(&d.node);
        if row.is_gone() {
            return;
        }
        let mut token = None;
        if d.node == self.name {
            match &self.leaving {
                None => {
                    self.refute(d.incarnation);
                    return;
                }
                Some(leaving) => token = Some(leaving.token),
            }
        }
        let left = d.node == d.from;
        let row = self.members.get_mut(&d.node).expect("looked up above");
        row.incarnation = d.incarnation;
        row.state = if left {
            NodeState::Left
        } else {
            NodeState::Dead
        };
        row.state_change = now;
        let node = d.node.clone();
        self.queue_broadcast(node.clone(), Message::Dead(d), token);
        let change = if left {
            MemberChange::Left
        } else {
            MemberChange::Dead
        };
        self.member_event(&node, change);
    }

    /// Suspicions whose time is up: the suspect is declared dead.
    pub(super) fn tick_suspicions(&mut self, now: Time) {
        let due: Vec<String> = self
            .suspicions
            .iter()
            .filter(|(_, s)| s.deadline() <= now)
            .map(|(name, _)| name.clone())
            .collect();
        for name in due {
            self.suspicions.remove(&name);
            let Some(row) = self.members.get(&name) else {
                continue;
            };
            if row.state == NodeState::Suspect {
                let dead = Dead {
                    incarnation: row.incarnation,
                    node: name,
                    from: self.name.clone(),
                };
                self.dead_node(dead, now);
            }
        }
    }

    /// memberlist's `mergeState`: a remote view, row by row. A remote's dead
    /// is only a suspicion here (we give the member its chance to refute);
    /// a remote's left is final.
    pub(super) fn merge_remote(&mut self, remote: &PushPull, now: Time) {
        for r in &remote.nodes {
            match r.state {
                NodeState::Alive if self.knows_already(r) => {}
                NodeState::Alive => {
                    let alive = Alive {
                        incarnation: r.incarnation,
                        node: r.name.clone(),
                        addr: r.addr.clone(),
                        port: r.port,
                        meta: r.meta.clone(),
                        vsn: r.vsn.clone(),
                    };
                    self.alive_node(alive, now, Trust::Heard);
                }
                NodeState::Left => {
                    let dead = Dead {
                        incarnation: r.incarnation,
                        node: r.name.clone(),
                        from: r.name.clone(),
                    };
                    self.dead_node(dead, now);
                }
                NodeState::Dead | NodeState::Suspect => {
                    let suspect = Suspect {
                        incarnation: r.incarnation,
                        node: r.name.clone(),
                        from: self.name.clone(),
                    };
                    self.suspect_node(suspect, now);
                }
            }
        }
    }

    /// True when `r`, an alive row of a remote's push-pull, is about
    /// another member we hold at the same address with an incarnation as
    /// new: `alive_node` would ignore it. In a settled cluster every row of
    /// a push-pull is such a row; skipping them here saves building an
    /// alive message (and copying its name) for each.
    fn knows_already(&self, r: &PushNodeState) -> bool {
        r.name != self.name
            && self.members.get(&r.name).is_some_and(|row| {
                r.incarnation <= row.incarnation && socket_addr(&r.addr, r.port) == Some(row.addr)
            })
    }

    /// Our side of a push-pull: every row and the user state.
    pub(super) fn local_push_pull(&self, join: bool) -> PushPull {
        PushPull {
            join,
            nodes: self.members.iter().map(Member::push_state).collect(),
            user_state: self.user_state.clone(),
        }
    }
}
