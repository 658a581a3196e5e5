//! A simulated network for engines: a virtual clock, packets and streams
//! delivered after a random latency, loss, one-way blocks, killed and
//! restarted members, and starved members that handle their inputs late.
//! Deterministic for a seed.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use super::super::{Config, Engine, Event, Identity, MemberChange, Output, PushPullFailed, Time};
pub use super::starvation::Starvation;
use super::starvation::Starver;
use crate::memberlist::message::{Message, NodeState, Ping, PushPull};

mod delivery;

/// A member of the simulated cluster.
pub struct SimNode {
    pub engine: Engine,
    pub addr: SocketAddr,
    /// Its process runs.
    pub up: bool,
    /// Nothing reaches it (it can still send, and read the replies on
    /// streams it opens).
    pub inbound_blocked: bool,
    /// Bumped on restart: replies for the previous process are dropped.
    generation: u32,
    /// The state it holds for each other member, from its events.
    view: HashMap<String, NodeState>,
    /// It sees exactly the other up members alive.
    complete: bool,
    /// Every event, with its time.
    pub events: Vec<(Time, Event)>,
}

enum Delivery {
    Packet {
        from: usize,
        to: SocketAddr,
        messages: Vec<Message>,
    },
    PushPullOpen {
        origin: usize,
        generation: u32,
        id: u64,
        to: SocketAddr,
        state: PushPull,
    },
    PushPullReply {
        origin: usize,
        generation: u32,
        id: u64,
        result: Result<PushPull, PushPullFailed>,
    },
    StreamPingOpen {
        origin: usize,
        generation: u32,
        to: SocketAddr,
        ping: Ping,
    },
    StreamPingReply {
        origin: usize,
        generation: u32,
        seq: u32,
        ok: bool,
    },
    Join {
        node: usize,
        to: Vec<SocketAddr>,
    },
    /// A timer that fired for a starved member, handled late.
    Tick {
        node: usize,
        generation: u32,
    },
    /// An input a starved member handles now, after its delay.
    Late(Box<Delivery>),
}

pub struct Sim {
    pub now: Time,
    pub nodes: Vec<SimNode>,
    config: Config,
    by_addr: HashMap<SocketAddr, usize>,
    deliveries: BinaryHeap<Reverse<(Time, u64)>>,
    pending: BTreeMap<u64, Delivery>,
    timers: BinaryHeap<Reverse<(Time, usize)>>,
    armed: Vec<Option<Time>>,
    rng: Xoshiro256PlusPlus,
    next_id: u64,
    /// Probability that a packet is lost.
    pub loss: f64,
    /// Links that drop everything: (from, to).
    pub blocked: HashSet<(usize, usize)>,
    /// Members whose view is complete (they see every other up member alive).
    complete: usize,
    /// Packets delivered (for reports).
    pub packets: u64,
    /// Push-pulls a member answered (for reports).
    pub push_pulls: u64,
    /// Who sent a packet (not an answer) or a push-pull to whom: the
    /// connections a transport over TCP would open (for reports).
    pub links: HashSet<(usize, SocketAddr)>,
    /// Late handling of inputs (none: every input is handled on arrival).
    starver: Option<Starver>,
    /// Per member: a late timer tick is waiting (no other is armed).
    tick_pending: Vec<bool>,
}

pub fn addr_of(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 20000 + i as u16))
}

pub fn name_of(i: usize) -> String {
    format!("node-{i}")
}

impl Sim {
    /// `n` members, started (not joined) at time 0.
    pub fn new(n: usize, config: Config, seed: u64) -> Sim {
        let mut sim = Sim {
            now: Time::ZERO,
            nodes: Vec::new(),
            config,
            by_addr: HashMap::new(),
            deliveries: BinaryHeap::new(),
            pending: BTreeMap::new(),
            timers: BinaryHeap::new(),
            armed: Vec::new(),
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            next_id: 0,
            loss: 0.0,
            blocked: HashSet::new(),
            complete: 0,
            packets: 0,
            push_pulls: 0,
            links: HashSet::new(),
            starver: None,
            tick_pending: vec![false; n],
        };
        for i in 0..n {
            let engine = sim.new_engine(i, addr_of(i));
            sim.nodes.push(SimNode {
                engine,
                addr: addr_of(i),
                up: true,
                inbound_blocked: false,
                generation: 0,
                view: HashMap::new(),
                complete: false,
                events: Vec::new(),
            });
            sim.by_addr.insert(addr_of(i), i);
            sim.armed.push(None);
            sim.arm(i);
        }
        sim.recount();
        sim
    }

    fn new_engine(&mut self, i: usize, addr: SocketAddr) -> Engine {
        let identity = Identity {
            name: name_of(i),
            addr,
            meta: None,
        };
        let seed = self.rng.random::<u64>();
        Engine::new(self.config.clone(), identity, seed, self.now).expect("valid identity")
    }

    fn schedule(&mut self, after: Duration, delivery: Delivery) {
        self.next_id += 1;
        self.pending.insert(self.next_id, delivery);
        self.deliveries
            .push(Reverse((self.now + after, self.next_id)));
    }

    /// From now on every member handles its inputs late (see [`Starvation`]).
    pub fn starve(&mut self, starvation: Starvation) {
        self.starver = Some(Starver::new(starvation, self.nodes.len()));
    }

    /// The longest an input waited for the shared core.
    pub fn max_backlog(&self) -> Duration {
        self.starver
            .as_ref()
            .map_or(Duration::ZERO, Starver::max_backlog)
    }

    /// The member that handles `delivery`.
    fn handler(&self, delivery: &Delivery) -> Option<usize> {
        match delivery {
            Delivery::Packet { to, .. }
            | Delivery::PushPullOpen { to, .. }
            | Delivery::StreamPingOpen { to, .. } => self.by_addr.get(to).copied(),
            Delivery::PushPullReply { origin, .. } | Delivery::StreamPingReply { origin, .. } => {
                Some(*origin)
            }
            Delivery::Join { node, .. } | Delivery::Tick { node, .. } => Some(*node),
            Delivery::Late(_) => None,
        }
    }

    /// How many `cost`s of CPU handling `delivery` takes.
    fn cost_units(delivery: &Delivery) -> u32 {
        match delivery {
            Delivery::Tick { .. } | Delivery::Late(_) => 0,
            Delivery::PushPullOpen { state, .. } => 1 + state.nodes.len() as u32 / 16,
            Delivery::PushPullReply {
                result: Ok(state), ..
            } => 1 + state.nodes.len() as u32 / 16,
            _ => 1,
        }
    }

    fn latency(&mut self) -> Duration {
        Duration::from_micros(self.rng.random_range(500..1500))
    }

    /// Node `i` joins through `via` after `after`.
    pub fn join_later(&mut self, i: usize, via: &[usize], after: Duration) {
        let to = via.iter().map(|j| self.nodes[*j].addr).collect();
        self.schedule(after, Delivery::Join { node: i, to });
    }

    /// Stops node `i`'s process (a `kill -9`).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].up = false;
        self.recount();
    }

    /// Kills node `i` and tells `noticers` random up members' engines that
    /// its address is unreachable, as their transports do when its
    /// connections to them reset.
    pub fn kill_noticed(&mut self, i: usize, noticers: usize) {
        self.kill(i);
        let addr = self.nodes[i].addr;
        let mut up: Vec<usize> = (0..self.nodes.len())
            .filter(|j| self.nodes[*j].up)
            .collect();
        for _ in 0..noticers.min(up.len()) {
            let j = up.swap_remove(self.rng.random_range(0..up.len()));
            self.with(j, |engine, now| engine.peer_unreachable(addr, now));
        }
    }

    /// Starts a new process for node `i`'s name at `addr`, joining via `via`.
    pub fn restart(&mut self, i: usize, addr: SocketAddr, via: &[usize]) {
        let engine = self.new_engine(i, addr);
        self.by_addr.remove(&self.nodes[i].addr);
        self.by_addr.insert(addr, i);
        let node = &mut self.nodes[i];
        node.engine = engine;
        node.addr = addr;
        node.up = true;
        node.generation += 1;
        node.view.clear();
        self.tick_pending[i] = false;
        self.recount();
        self.arm(i);
        let to: Vec<SocketAddr> = via.iter().map(|j| self.nodes[*j].addr).collect();
        self.nodes[i].engine.join(&to, self.now);
        self.drain(i);
    }

    /// Runs `f` on node `i`'s engine now, then handles its outputs.
    pub fn with<R>(&mut self, i: usize, f: impl FnOnce(&mut Engine, Time) -> R) -> R {
        let now = self.now;
        let r = f(&mut self.nodes[i].engine, now);
        self.drain(i);
        r
    }

    /// Every up member sees every other up member alive.
    pub fn converged(&self) -> bool {
        self.complete == self.up_count()
    }

    fn up_count(&self) -> usize {
        self.nodes.iter().filter(|n| n.up).count()
    }

    /// Whether node `i` is up and sees exactly the other up members alive.
    fn is_complete(&self, i: usize) -> bool {
        let node = &self.nodes[i];
        if !node.up {
            return false;
        }
        let up = |name: &str| {
            name.strip_prefix("node-")
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|j| j < self.nodes.len() && j != i && self.nodes[j].up)
        };
        let alive: Vec<&String> = node
            .view
            .iter()
            .filter(|(_, s)| **s == NodeState::Alive)
            .map(|(n, _)| n)
            .collect();
        alive.len() == self.up_count() - 1 && alive.iter().all(|n| up(n))
    }

    fn recount(&mut self) {
        for i in 0..self.nodes.len() {
            self.nodes[i].complete = self.is_complete(i);
        }
        self.complete = self.nodes.iter().filter(|n| n.complete).count();
    }

    fn recount_one(&mut self, i: usize) {
        let is = self.is_complete(i);
        if is != self.nodes[i].complete {
            self.nodes[i].complete = is;
            if is {
                self.complete += 1;
            } else {
                self.complete -= 1;
            }
        }
    }

    fn arm(&mut self, i: usize) {
        if !self.nodes[i].up || self.tick_pending[i] {
            return;
        }
        let next = self.nodes[i]
            .engine
            .next_deadline()
            .map(|t| t.max(self.now));
        if next != self.armed[i] {
            self.armed[i] = next;
            if let Some(t) = next {
                self.timers.push(Reverse((t, i)));
            }
        }
    }

    fn tick(&mut self, i: usize) {
        if !self.nodes[i].up {
            return;
        }
        self.nodes[i].engine.tick(self.now);
        let next = self.nodes[i].engine.next_deadline();
        assert!(
            next.is_none_or(|t| t > self.now),
            "node-{i}: tick({:?}) left a deadline at {next:?}",
            self.now
        );
        self.drain(i);
    }

    /// Runs until `end`, or until `stop` holds (checked after every step);
    /// returns the time it stopped at.
    pub fn run_until(&mut self, end: Time, mut stop: impl FnMut(&Sim) -> bool) -> Time {
        loop {
            if stop(self) {
                return self.now;
            }
            let next_delivery = self.deliveries.peek().map(|Reverse((t, _))| *t);
            let next_timer = self.timers.peek().map(|Reverse((t, _))| *t);
            let next = match (next_delivery, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => end,
            };
            if next > end {
                self.now = end;
                return end;
            }
            self.now = next;
            if next_delivery == Some(next) {
                let Reverse((_, id)) = self.deliveries.pop().expect("peeked");
                let delivery = self.pending.remove(&id).expect("scheduled");
                self.deliver(delivery);
            } else {
                let Reverse((t, i)) = self.timers.pop().expect("peeked");
                if self.armed[i] != Some(t) || !self.nodes[i].up {
                    continue;
                }
                self.armed[i] = None;
                if self.starver.is_some() {
                    self.tick_pending[i] = true;
                    let generation = self.nodes[i].generation;
                    self.deliver(Delivery::Tick {
                        node: i,
                        generation,
                    });
                } else {
                    self.tick(i);
                }
            }
        }
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.run_until(end, |_| false);
    }

    /// The state node `viewer` holds for node `subject` (`None`: no row).
    pub fn state(&self, viewer: usize, subject: usize) -> Option<NodeState> {
        self.nodes[viewer]
            .engine
            .member(&name_of(subject))
            .map(|m| m.state)
    }

    /// Every up member other than `subject` holds `subject` in one of `states`.
    pub fn all_see(&self, subject: usize, states: &[Option<NodeState>]) -> bool {
        (0..self.nodes.len())
            .filter(|i| *i != subject && self.nodes[*i].up)
            .all(|i| states.contains(&self.state(i, subject)))
    }
}
