//! The node's event loop: the one owner of foca. Packets, timers, commands
//! and sync results come in; packets, timer registrations and a fresh
//! membership view go out.

use super::broadcast::{Handler, Item, Learned};
use super::identity::NodeId;
use super::sync::{self, Snapshot, SYNC_TIMEOUT};
use super::{MemberState, MemberView, NodeOptions, PeerFilter};
use crate::{Error, Transport};
use bytes::Bytes;
use foca::{AccumulatingRuntime, Foca, Member, OwnedNotification, PostcardCodec, State, Timer};
use futures_util::StreamExt;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use rand::rngs::StdRng;
use rand::RngExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::time::DelayQueue;

pub(crate) enum Command {
    SetState {
        key: String,
        value: Bytes,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    /// A peer's snapshot arrived (from a sync we dialed or accepted); the
    /// reply, if any, gets ours.
    Sync {
        theirs: Snapshot,
        reply: Option<oneshot::Sender<Snapshot>>,
    },
    Leave {
        reply: oneshot::Sender<()>,
    },
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StateLabel {
    pub state: &'static str,
}

pub(crate) type MemberGauges = Family<StateLabel, Gauge>;

pub(crate) struct Actor {
    pub foca: Foca<NodeId, PostcardCodec, StdRng, Handler>,
    pub rt: AccumulatingRuntime<NodeId>,
    pub timers: DelayQueue<Timer<NodeId>>,
    pub transport: Transport,
    pub learned: Arc<Mutex<Learned>>,
    pub view: watch::Sender<Arc<Vec<MemberView>>>,
    pub gauges: MemberGauges,
    pub options: NodeOptions,
    pub commands: mpsc::UnboundedReceiver<Command>,
    /// For syncs we start: their results come back as commands.
    pub self_commands: mpsc::UnboundedSender<Command>,
    pub rng: StdRng,
    pub version: u64,
    /// Names last seen down or left, so a comeback triggers a state sync.
    pub was_down: HashMap<String, bool>,
    /// Set once leaving: going defunct is then the plan, not news.
    pub leaving: bool,
}

impl Actor {
    fn me(&self) -> &NodeId {
        self.foca.identity()
    }

    fn allowed(filter: &Option<PeerFilter>, addr: &str) -> bool {
        filter.as_ref().is_none_or(|f| f(addr))
    }

    pub(crate) async fn run(mut self) {
        self.join();
        self.publish();
        let mut packets = self.transport.packets();
        let mut rejoin = tokio::time::interval(self.options.rejoin_interval);
        let mut resync = tokio::time::interval(self.options.sync_interval);
        rejoin.tick().await;
        resync.tick().await;
        // Sync with the join list right away: a new node converges at once.
        for addr in self.options.join.clone() {
            self.start_sync(addr);
        }
        loop {
            tokio::select! {
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Leave { reply }) => {
                        self.leave().await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(cmd) => self.command(cmd),
                    None => return,
                },
                packet = packets.recv() => match packet {
                    Some(p) => {
                        if let Err(e) = self.foca.handle_data(&p.payload, &mut self.rt) {
                            tracing::debug!(from = %p.from, error = %e, "ignored a membership packet");
                        }
                    }
                    None => return,
                },
                Some(expired) = self.timers.next(), if !self.timers.is_empty() => {
                    if let Err(e) = self.foca.handle_timer(expired.into_inner(), &mut self.rt) {
                        tracing::debug!(error = %e, "membership timer failed");
                    }
                }
                _ = rejoin.tick() => {
                    if self.foca.num_members() == 0 {
                        self.join();
                    }
                }
                _ = resync.tick() => {
                    if let Some(addr) = self.pick_sync_peer() {
                        self.start_sync(addr);
                    }
                }
            }
            self.flush();
        }
    }

    /// Announces to every address of the join list.
    fn join(&mut self) {
        for addr in self.options.join.clone() {
            if addr == self.me().addr {
                continue;
            }
            // Only the address matters for sending; foca learns the real
            // identity from the answer.
            let dst = NodeId {
                name: String::new(),
                addr,
                generation: 0,
            };
            if let Err(e) = self.foca.announce(dst, &mut self.rt) {
                tracing::debug!(error = %e, "announce failed");
            }
        }
        self.flush();
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::SetState { key, value, reply } => {
                self.version += 1;
                let item = Item::User {
                    origin: self.me().name.clone(),
                    key,
                    version: self.version,
                    value: value.to_vec(),
                };
                let result = self
                    .foca
                    .add_broadcast(&item.encode())
                    .map(|_| ())
                    .map_err(|e| Error::Config(format!("state not broadcast: {e}")));
                let _ = reply.send(result);
            }
            Command::Sync { theirs, reply } => {
                if let Some(reply) = reply {
                    let _ = reply.send(self.snapshot());
                }
                self.apply(theirs);
            }
            Command::Leave { .. } => unreachable!("handled by run"),
        }
    }

    fn snapshot(&self) -> Snapshot {
        let learned = self.learned.lock().unwrap();
        let mut members: Vec<Member<NodeId>> = self.foca.iter_membership_state().cloned().collect();
        members.push(Member::alive(self.me().clone()));
        Snapshot {
            from: self.me().clone(),
            members,
            left: learned.left.iter().cloned().collect(),
            state: learned
                .state
                .iter()
                .map(|((o, k), (v, val))| (o.clone(), k.clone(), *v, val.to_vec()))
                .collect(),
        }
    }

    fn apply(&mut self, theirs: Snapshot) {
        // Leave notices and state go through the broadcast handler, which
        // keeps only what is new and spreads it further.
        for id in theirs.left {
            let _ = self.foca.add_broadcast(&Item::Left { id }.encode());
        }
        for (origin, key, version, value) in theirs.state {
            let item = Item::User {
                origin,
                key,
                version,
                value,
            };
            let _ = self.foca.add_broadcast(&item.encode());
        }
        if let Err(e) = self
            .foca
            .apply_many(theirs.members.into_iter(), true, &mut self.rt)
        {
            tracing::debug!(error = %e, "state sync not applied");
        }
    }

    /// A random member to sync with: alive ones, down ones (to heal a
    /// partition) and the join list.
    fn pick_sync_peer(&mut self) -> Option<String> {
        let mut candidates: Vec<String> = self
            .foca
            .iter_membership_state()
            .map(|m| m.id().addr.clone())
            .chain(self.options.join.iter().cloned())
            .filter(|a| *a != self.me().addr)
            .collect();
        candidates.dedup();
        if candidates.is_empty() {
            return None;
        }
        Some(candidates.swap_remove(self.rng.random_range(0..candidates.len())))
    }

    fn start_sync(&mut self, addr: String) {
        if addr == self.me().addr || !Self::allowed(&self.options.outgoing_filter, &addr) {
            return;
        }
        let transport = self.transport.clone();
        let ours = self.snapshot();
        let back = self.self_commands.clone();
        let filter = self.options.outgoing_filter.clone();
        tokio::spawn(async move {
            let exchange = async {
                let mut conn = transport.dial(&addr, SYNC_TIMEOUT).await?;
                sync::write_snapshot(&mut conn, &ours).await?;
                sync::read_snapshot(&mut conn).await
            };
            match tokio::time::timeout(SYNC_TIMEOUT, exchange).await {
                // The partition hook may have closed the door meanwhile.
                Ok(Ok(theirs)) if Self::allowed(&filter, &addr) => {
                    let _ = back.send(Command::Sync {
                        theirs,
                        reply: None,
                    });
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::debug!(peer = %addr, error = %e, "state sync failed"),
                Err(_) => tracing::debug!(peer = %addr, "state sync timed out"),
            }
        });
    }

    async fn leave(&mut self) {
        self.leaving = true;
        let me = self.me().clone();
        let _ = self.foca.add_broadcast(&Item::Left { id: me }.encode());
        // Spread the notice, then the departure itself.
        let _ = self.foca.gossip(&mut self.rt);
        if let Err(e) = self.foca.leave_cluster(&mut self.rt) {
            tracing::debug!(error = %e, "leave failed");
        }
        self.flush();
        tracing::info!(name = %self.me().name, "left the cluster");
        // Let the packets go out before the transport stops.
        tokio::time::sleep(self.options.leave_grace).await;
    }

    /// Sends what foca wants sent, schedules its timers, and republishes the
    /// membership view if it changed.
    fn flush(&mut self) {
        while let Some((to, data)) = self.rt.to_send() {
            if !Self::allowed(&self.options.outgoing_filter, &to.addr) {
                continue;
            }
            if let Err(e) = self.transport.write_to(data, &to.addr) {
                tracing::debug!(peer = %to.addr, error = %e, "membership packet not sent");
            }
        }
        while let Some((after, timer)) = self.rt.to_schedule() {
            self.timers.insert(timer, after);
        }
        while let Some(n) = self.rt.to_notify() {
            match n {
                OwnedNotification::Defunct if self.leaving => {}
                OwnedNotification::Defunct => {
                    tracing::warn!("this node was declared down and cannot rejoin")
                }
                OwnedNotification::Rejoin(id) => {
                    tracing::info!(
                        generation = id.generation,
                        "declared down; rejoined as a new generation"
                    )
                }
                OwnedNotification::Idle => tracing::info!("no other live members"),
                OwnedNotification::Active => tracing::info!("joined the cluster"),
                _ => {}
            }
        }
        self.publish();
    }

    fn publish(&mut self) {
        let learned = self.learned.lock().unwrap();
        let mut members: Vec<MemberView> = self
            .foca
            .iter_membership_state()
            .map(|m| {
                let state = match m.state() {
                    State::Alive => MemberState::Alive,
                    State::Suspect => MemberState::Suspect,
                    State::Down if learned.left.contains(m.id()) => MemberState::Left,
                    State::Down => MemberState::Dead,
                };
                MemberView::new(m.id(), state, m.incarnation())
            })
            .collect();
        drop(learned);
        members.push(MemberView::new(self.me(), MemberState::Alive, 0).local());
        members.sort_by(|a, b| a.name.cmp(&b.name));

        let old = self.view.borrow().clone();
        if *old == members {
            return;
        }
        let mut comebacks = Vec::new();
        for m in &members {
            let before = old.iter().find(|o| o.name == m.name);
            let changed = before.is_none_or(|b| b.state != m.state || b.generation != m.generation);
            if changed && !m.local {
                match m.state {
                    MemberState::Alive => {
                        tracing::info!(member = %m.name, addr = %m.addr, "member alive")
                    }
                    MemberState::Suspect => tracing::warn!(member = %m.name, "member suspected"),
                    MemberState::Dead => tracing::warn!(member = %m.name, "member dead"),
                    MemberState::Left => tracing::info!(member = %m.name, "member left"),
                }
            }
            let down = matches!(m.state, MemberState::Dead | MemberState::Left);
            if self.was_down.insert(m.name.clone(), down) == Some(true) && !down {
                comebacks.push(m.addr.clone());
            }
        }
        for state in [
            MemberState::Alive,
            MemberState::Suspect,
            MemberState::Dead,
            MemberState::Left,
        ] {
            let n = members.iter().filter(|m| m.state == state).count();
            self.gauges
                .get_or_create(&StateLabel {
                    state: state.as_str(),
                })
                .set(n as i64);
        }
        let _ = self.view.send(Arc::new(members));
        // A member back from the dead (restart, healed partition) may have
        // missed everything: swap full state with it.
        for addr in comebacks {
            self.start_sync(addr);
        }
    }
}

/// Serves incoming state syncs: reads the dialer's snapshot, asks the actor
/// to apply it and for ours, writes ours back.
pub(crate) async fn serve_syncs(
    transport: Transport,
    commands: mpsc::UnboundedSender<Command>,
    filter: Option<PeerFilter>,
) {
    let mut streams = transport.streams();
    while let Some(mut conn) = streams.accept().await {
        let commands = commands.clone();
        let filter = filter.clone();
        tokio::spawn(async move {
            let exchange = async {
                let theirs = sync::read_snapshot(&mut conn).await?;
                // Drop syncs from peers the partition hook has cut off, as
                // packets are (the stream's source is a TCP address, so look
                // at who the snapshot says sent it).
                if !Actor::allowed(&filter, &theirs.from.addr) {
                    return Ok(());
                }
                let (reply, ours) = oneshot::channel();
                commands
                    .send(Command::Sync {
                        theirs,
                        reply: Some(reply),
                    })
                    .map_err(|_| Error::Shutdown)?;
                let ours = ours.await.map_err(|_| Error::Shutdown)?;
                sync::write_snapshot(&mut conn, &ours).await
            };
            match tokio::time::timeout(SYNC_TIMEOUT, exchange).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(peer = %conn.remote_addr(), error = %e, "incoming state sync failed")
                }
                Err(_) => {
                    tracing::debug!(peer = %conn.remote_addr(), "incoming state sync timed out")
                }
            }
        });
    }
}
