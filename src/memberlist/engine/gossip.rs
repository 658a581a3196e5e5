//! Spreading news: gossip rounds (queued broadcasts to `GossipNodes`
//! random members, the recently dead included), push-pull anti-entropy
//! (on join, on its interval, and the catch-up ones after a join), and the
//! graceful leave.

use std::net::SocketAddr;
use std::time::Duration;

use super::super::message::{Dead, NodeState, PushPull};
use super::members::Member;
use super::output::{Event, OutPacket, Output, PushPullFailed, PushPullRequest};
use super::queue::{Finished, Lane};
use super::time::Time;
use super::Engine;

/// memberlist's compound message holds at most 255 parts.
pub(super) const MAX_PARTS: usize = 255;

/// A push-pull we asked the shell to open.
#[derive(Clone, Debug)]
pub(super) struct PendingPushPull {
    to: SocketAddr,
    /// The member we expect there.
    node: Option<String>,
    why: Why,
    /// Past this, the engine counts it failed even if the shell never says.
    pub(super) expires: Time,
}

/// Why a push-pull was started: its reply is handled accordingly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Why {
    /// Joining through this address (the join flag is set).
    Join,
    /// A catch-up after our join (see `Config::catch_up_push_pulls`).
    CatchUp,
    /// A reconnect attempt with a member we hold dead.
    Reconnect,
    /// The periodic one, or a reconnect's follow-up.
    Routine,
    /// A push-pull with the member our join went through, after the join
    /// (see `Config::join_follow_up`).
    FollowUp,
}

/// A leave in progress.
#[derive(Clone, Debug)]
pub(super) struct Leaving {
    /// Marks our dead broadcast in the queue.
    pub(super) token: u64,
    pub(super) deadline: Time,
    pub(super) finished: bool,
}

const LEAVE_TOKEN: u64 = 1;

/// The furthest the health score spaces gossip rounds: news still crosses
/// a hop within a second. The score falls by one per successful probe,
/// (score + 1) probe intervals apart, so an ill member stays ill for long:
/// uncapped, the `cluster` command's members at 500 (rounds every 1 s,
/// probes every 5 s) could gossip 5 s apart for a minute after a join
/// wave, and one run of that row waited 29 s for one member's news to
/// reach another (none in about 40 runs before the scaling, none since
/// the cap).
const MAX_STRETCHED_GOSSIP: Duration = Duration::from_secs(1);

impl Engine {
    /// A gossip round, when due: queued broadcasts to `GossipNodes` random
    /// members that are alive, suspect, or dead for less than
    /// `GossipToTheDeadTime`.
    pub(super) fn tick_gossip(&mut self, now: Time) {
        let Some(due) = self.gossip_due() else {
            return;
        };
        if now < due {
            return;
        }
        if now >= self.next_gossip {
            self.next_gossip = now + self.gossip_interval().max(Duration::from_millis(1));
        }
        self.last_gossip = now;
        if self.config.gossip_interval.is_zero() || self.config.gossip_nodes == 0 {
            return;
        }
        let me = self.name.clone();
        let dead_time = self.config.gossip_to_the_dead_time;
        let eligible = |m: &Member| {
            m.name != me
                && match m.state {
                    NodeState::Alive | NodeState::Suspect => true,
                    NodeState::Dead => now.since(m.state_change) <= dead_time,
                    NodeState::Left => false,
                }
        };
        // All but one among the members sent to lately (see `warm`), the
        // rest at random.
        let k = self.config.gossip_nodes;
        let warm_k = self.config.warm_gossip_nodes.min(k.saturating_sub(1));
        let mut targets = self.warm.pick(
            warm_k,
            self.config.warm_for,
            now,
            &self.members,
            &mut self.rng,
            eligible,
        );
        let picked: Vec<String> = targets.iter().map(|m| m.name.clone()).collect();
        targets.extend(self.members.random(k - targets.len(), &mut self.rng, |m| {
            eligible(m) && !picked.contains(&m.name)
        }));
        if targets.is_empty() {
            // No one to tell: no early rounds until there is new news.
            self.news_pending = false;
            return;
        }
        let budget = self.config.packet_budget(0);
        for target in targets {
            let mut messages = self.take_broadcasts(budget, usize::MAX);
            if messages.is_empty() {
                return;
            }
            // A compound holds at most MAX_PARTS: the rest go in more
            // packets (moved, not cloned).
            while !messages.is_empty() {
                let rest = messages.split_off(messages.len().min(MAX_PARTS));
                self.outputs.push_back(Output::Packet(OutPacket {
                    to: target.addr,
                    node: Some(target.name.clone()),
                    crc: target.reads_crc(),
                    messages,
                }));
                messages = rest;
            }
        }
    }

    /// `GossipInterval`, scaled by the health score while this member is
    /// not leaving (see `Config::scale_gossip_interval`), to at most
    /// [`MAX_STRETCHED_GOSSIP`] (an interval set longer is kept).
    pub(super) fn gossip_interval(&self) -> Duration {
        let plain = self.config.gossip_interval;
        if self.config.scale_gossip_interval && self.leaving.is_none() {
            self.awareness
                .scale(plain)
                .min(plain.max(MAX_STRETCHED_GOSSIP))
        } else {
            plain
        }
    }

    /// When the next gossip round is due: on the `GossipInterval` cadence,
    /// or sooner while never-sent news waits and this member is healthy
    /// (see `early_round_spacing`), or a never-sent refutation waits
    /// whatever its health; `None` while no broadcast is queued.
    ///
    /// memberlist's gossip ticker wakes every `GossipInterval` and finds
    /// nothing to send in a cluster at rest; a round with nothing queued
    /// sends nothing, so we skip the wake-up (5 a second per member with
    /// the LAN defaults: a resting member among 100 used a quarter less
    /// CPU without them, 0.105% of a core against 0.14%). The cadence is
    /// kept while news flows; news that arrives after a quiet spell goes
    /// out at once rather than on the next tick.
    pub(super) fn gossip_due(&self) -> Option<Time> {
        if self.queued_broadcasts() == 0 {
            return None;
        }
        if self.config.fresh_news_gossip.is_zero() || !self.news_pending {
            return Some(self.next_gossip);
        }
        // A refutation never sent goes in a round of its own at once,
        // whatever our health: until it arrives, members hold a live
        // member suspect (see `Config::refutations_first`).
        let spacing = if self.broadcasts.has_fresh_in(Lane::Refutation) {
            self.config.fresh_news_gossip
        } else if self.awareness.score() == 0
            && (self.broadcasts.has_fresh_in(Lane::Normal) || self.user_broadcasts.has_fresh())
        {
            self.early_round_spacing()
        } else {
            return Some(self.next_gossip);
        };
        Some(self.next_gossip.min(self.last_gossip + spacing))
    }

    /// How soon after the last round an early one (for never-sent news)
    /// may come: `fresh_news_gossip` among 10 members or fewer, stretched
    /// in proportion beyond, so that the early rounds of a whole cluster
    /// add about the same packets per second whatever its size (a member
    /// among `n` adds 1/n of them). Every member of a join wave has fresh
    /// news all the time: unstretched, 20 ms rounds made a 100-member wave
    /// cost four times the packets and converge later, not sooner (with
    /// the stretch, 10 ms costs about 1.5 times 20 ms and converges
    /// sooner). A member that is behind on its own work (a health score
    /// above 0) has no early rounds at all: they would only put it further
    /// behind.
    fn early_round_spacing(&self) -> Duration {
        let stretch = (self.members.len() as u32).div_ceil(10).max(1);
        self.config.fresh_news_gossip * stretch
    }

    /// Joins the cluster through `addrs`: a push-pull (with the join flag)
    /// to each. Each ends in an [`Event::JoinResult`].
    pub fn join(&mut self, addrs: &[SocketAddr], now: Time) {
        self.input_at(now);
        for addr in addrs {
            self.start_push_pull(*addr, None, Why::Join, now);
        }
    }

    fn start_push_pull(&mut self, to: SocketAddr, node: Option<String>, why: Why, now: Time) {
        self.next_push_pull_id += 1;
        let id = self.next_push_pull_id;
        let expires = now + self.config.tcp_timeout.saturating_mul(2);
        let pending = PendingPushPull {
            to,
            node: node.clone(),
            why,
            expires,
        };
        self.push_pulls.insert(id, pending);
        let state = self.local_push_pull(why == Why::Join);
        self.outputs.push_back(Output::PushPull(PushPullRequest {
            id,
            to,
            node,
            state,
        }));
    }

    fn push_pull_random(&mut self, why: Why, now: Time) {
        let me = self.name.clone();
        let target = self.members.random(1, &mut self.rng, |m| {
            m.name != me && m.state == NodeState::Alive
        });
        if let Some(target) = target.into_iter().next() {
            self.start_push_pull(target.addr, Some(target.name), why, now);
        }
    }

    /// A push-pull with `to` once the table is quiet, or
    /// `join_follow_up_within` from `now` at the latest.
    fn schedule_join_follow_up(&mut self, to: SocketAddr, now: Time) {
        let within = self.config.join_follow_up_within;
        let latest = (!within.is_zero()).then(|| now + within);
        self.join_follow_up = Some((to, latest));
    }

    /// The member the join went through and when the push-pull following
    /// the join up is due: once the table has not grown for
    /// `join_follow_up`, or `join_follow_up_within` after the join's reply
    /// if that comes first.
    pub(super) fn join_follow_up_due(&self) -> Option<(SocketAddr, Time)> {
        let (to, latest) = self.join_follow_up?;
        let quiet = self.last_growth + self.config.join_follow_up;
        Some((to, latest.map_or(quiet, |latest| quiet.min(latest))))
    }

    /// Periodic and catch-up push-pulls when due; push-pulls the shell
    /// never answered, failed.
    pub(super) fn tick_push_pull(&mut self, now: Time) {
        let leaving = self.leaving.is_some();
        if !leaving && !self.config.push_pull_interval.is_zero() && now >= self.next_push_pull {
            self.next_push_pull = now + self.config.push_pull_interval_for(self.members.len());
            self.push_pull_random(Why::Routine, now);
        }
        if let Some((at, left)) = self.catch_up.filter(|_| !leaving) {
            if now >= at {
                self.push_pull_random(Why::CatchUp, now);
                let done = self.config.catch_up_push_pulls - left + 1;
                self.catch_up = (left > 1).then(|| {
                    (
                        now + self.config.catch_up_base.saturating_mul(1 << done.min(16)),
                        left - 1,
                    )
                });
            }
        }
        if let Some((to, due)) = self.join_follow_up_due().filter(|_| !leaving) {
            if now >= due {
                self.join_follow_up = None;
                self.start_push_pull(to, None, Why::FollowUp, now);
            }
        }
        if !leaving && !self.config.reconnect_interval.is_zero() && now >= self.next_reconnect {
            self.next_reconnect = now + self.config.reconnect_interval;
            if let Some((name, addr)) = self.members.reconnect_candidate(&mut self.rng) {
                self.start_push_pull(addr, Some(name), Why::Reconnect, now);
            }
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.follow_ups)
            .into_iter()
            .partition(|(t, _, _)| *t <= now);
        self.follow_ups = later;
        if !leaving {
            for (_, addr, name) in due {
                self.start_push_pull(addr, Some(name), Why::Routine, now);
            }
        }
        let expired: Vec<u64> = self
            .push_pulls
            .iter()
            .filter(|(_, p)| p.expires <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            let failed = PushPullFailed {
                reason: "the shell never reported this push-pull's end".into(),
            };
            self.push_pull_result(id, Err(failed), now);
        }
    }

    /// A push-pull we started (an [`Output::PushPull`]) ended: its reply to
    /// merge, or how it failed. A reply whose versions are refused counts
    /// as a failure ([`Event::VersionsRefused`]).
    pub fn push_pull_result(
        &mut self,
        id: u64,
        result: Result<PushPull, PushPullFailed>,
        now: Time,
    ) {
        self.input_at(now);
        let Some(pending) = self.push_pulls.remove(&id) else {
            return;
        };
        let result = result.ok().filter(|remote| {
            let verified = self.verify_versions(remote);
            if let Err(error) = verified.clone() {
                self.emit(Event::VersionsRefused {
                    peer: Some(pending.to),
                    error,
                });
            }
            verified.is_ok()
        });
        let ok = result.is_some();
        let join = pending.why == Why::Join;
        if let Some(remote) = result {
            let known = self.members.len();
            self.merge_remote(&remote, now);
            if pending.why == Why::CatchUp && self.members.len() == known {
                // It brought no member we did not know: we have caught up,
                // and gossip carries the rest. Each further catch-up would
                // cost a whole table each way (50 KB among 500 members).
                self.catch_up = None;
            }
            if !remote.user_state.is_empty() {
                self.emit(Event::RemoteState {
                    state: remote.user_state,
                    join,
                });
            }
            if let (Why::Reconnect, Some(name)) = (pending.why, pending.node.clone()) {
                // It answered: our view told it that it died, so it refutes;
                // its reply told us whom its side holds dead, and they
                // refute. Push-pulls a moment later carry the refutations.
                let base = self.config.catch_up_base;
                for step in [1, 2, 4] {
                    self.follow_ups.push((
                        now + base.saturating_mul(step),
                        pending.to,
                        name.clone(),
                    ));
                }
            }
            if pending.why == Why::FollowUp
                && self.members.len() > known
                && self.join_follow_ups_left > 0
            {
                // It was still taking joins when it answered: ask again.
                self.join_follow_ups_left -= 1;
                self.schedule_join_follow_up(pending.to, now);
            }
            if join && !self.config.join_follow_up.is_zero() {
                self.join_follow_ups_left = self.config.join_follow_up_repeats;
                self.schedule_join_follow_up(pending.to, now);
            }
            if join && self.catch_up.is_none() && self.config.catch_up_push_pulls > 0 {
                self.catch_up = Some((
                    now + self.config.catch_up_base,
                    self.config.catch_up_push_pulls,
                ));
            }
        }
        if join {
            self.emit(Event::JoinResult {
                addr: pending.to,
                ok,
            });
        }
    }

    /// A push-pull another member opened: merges its view (unless its
    /// versions are refused, see [`Event::VersionsRefused`]) and returns
    /// ours (computed before the merge, as memberlist sends it).
    pub fn handle_push_pull(&mut self, remote: PushPull, now: Time) -> PushPull {
        self.input_at(now);
        let reply = self.local_push_pull(remote.join);
        if let Err(error) = self.verify_versions(&remote) {
            self.emit(Event::VersionsRefused { peer: None, error });
            return reply;
        }
        self.merge_remote(&remote, now);
        if !remote.user_state.is_empty() {
            self.emit(Event::RemoteState {
                state: remote.user_state,
                join: remote.join,
            });
        }
        reply
    }

    /// Leaves gracefully: broadcasts a dead message about ourselves (`From
    /// == Node`, which Go nodes record as left), stops probing, and emits
    /// [`Event::LeaveFinished`] once the broadcast has gone out as often as
    /// the retransmit limit asks, or after `timeout`. Keep driving the
    /// engine until then.
    pub fn leave(&mut self, timeout: Duration, now: Time) {
        self.input_at(now);
        if self.leaving.is_some() {
            return;
        }
        self.leaving = Some(Leaving {
            token: LEAVE_TOKEN,
            deadline: now + timeout,
            finished: false,
        });
        if let Some(seq) = self.current_probe.take() {
            self.probes.remove(&seq);
        }
        let anyone = self
            .members
            .iter()
            .any(|m| m.name != self.name && !m.is_gone());
        let me = self.local_member();
        let dead = Dead {
            incarnation: me.incarnation,
            node: me.name.clone(),
            from: me.name.clone(),
        };
        self.dead_node(dead, now);
        if !anyone {
            self.finish_leave(false);
        }
    }

    fn finish_leave(&mut self, timed_out: bool) {
        if let Some(leaving) = &mut self.leaving {
            if !leaving.finished {
                leaving.finished = true;
                self.emit(Event::LeaveFinished { timed_out });
            }
        }
    }

    pub(super) fn tick_leave(&mut self, now: Time) {
        if self
            .leaving
            .as_ref()
            .is_some_and(|l| !l.finished && now >= l.deadline)
        {
            self.finish_leave(true);
        }
    }

    /// Queued broadcasts that left the queue, sent out or replaced.
    pub(super) fn broadcasts_finished(&mut self, tokens: Vec<u64>, _why: Finished) {
        if tokens.contains(&LEAVE_TOKEN) {
            self.finish_leave(false);
        }
    }
}
