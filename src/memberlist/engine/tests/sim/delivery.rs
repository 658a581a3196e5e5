//! What the simulated network does with what an engine asks for: its
//! outputs carried out ([`Sim::drain`]) and what they become at the other
//! end ([`Sim::deliver`]), late for a starved member.

use super::*;

impl Sim {
    pub(super) fn drain(&mut self, i: usize) {
        let mut view_changed = false;
        while let Some(output) = self.nodes[i].engine.poll_output() {
            match output {
                Output::Packet(p) => {
                    if !p.is_answer() {
                        self.links.insert((i, p.to));
                    }
                    if self.loss > 0.0 && self.rng.random::<f64>() < self.loss {
                        continue;
                    }
                    let after = self.latency();
                    self.schedule(
                        after,
                        Delivery::Packet {
                            from: i,
                            to: p.to,
                            messages: super::super::rules::decoded(&p),
                        },
                    );
                }
                Output::PushPull(req) => {
                    self.links.insert((i, req.to));
                    let after = self.latency();
                    let generation = self.nodes[i].generation;
                    self.schedule(
                        after,
                        Delivery::PushPullOpen {
                            origin: i,
                            generation,
                            id: req.id,
                            to: req.to,
                            state: req.state,
                        },
                    );
                }
                Output::StreamPing(req) => {
                    let after = self.latency();
                    let generation = self.nodes[i].generation;
                    self.schedule(
                        after,
                        Delivery::StreamPingOpen {
                            origin: i,
                            generation,
                            to: req.to,
                            ping: req.ping,
                        },
                    );
                }
                Output::Event(event) => {
                    if let Event::Member { member, change } = &event {
                        let state = match change {
                            MemberChange::Removed => None,
                            _ => Some(member.state),
                        };
                        let view = &mut self.nodes[i].view;
                        match state {
                            Some(s) => view.insert(member.name.clone(), s),
                            None => view.remove(&member.name),
                        };
                        view_changed = true;
                    }
                    self.nodes[i].events.push((self.now, event));
                }
            }
        }
        if view_changed {
            self.recount_one(i);
        }
        self.arm(i);
    }

    fn reachable(&self, from: usize, to: usize) -> bool {
        self.nodes[to].up && !self.nodes[to].inbound_blocked && !self.blocked.contains(&(from, to))
    }

    /// Handles `delivery` now, or later when its member is starved.
    pub(super) fn deliver(&mut self, delivery: Delivery) {
        if let (true, Some(i)) = (self.starver.is_some(), self.handler(&delivery)) {
            if self.nodes[i].up {
                let units = Self::cost_units(&delivery);
                let starver = self.starver.as_mut().expect("checked");
                let at = starver.handled_at(i, self.now, units, &mut self.rng);
                if at > self.now {
                    let late = Delivery::Late(Box::new(delivery));
                    self.schedule(at.since(self.now), late);
                    return;
                }
            }
        }
        self.deliver_now(delivery);
    }

    fn deliver_now(&mut self, delivery: Delivery) {
        match delivery {
            Delivery::Packet { from, to, messages } => {
                let Some(&j) = self.by_addr.get(&to) else {
                    return;
                };
                if !self.reachable(from, j) {
                    return;
                }
                self.packets += 1;
                let source = self.nodes[from].addr;
                for message in messages {
                    self.nodes[j]
                        .engine
                        .handle_message(source, message, self.now);
                }
                self.drain(j);
            }
            Delivery::PushPullOpen {
                origin,
                generation,
                id,
                to,
                state,
            } => {
                let target = self
                    .by_addr
                    .get(&to)
                    .copied()
                    .filter(|j| self.reachable(origin, *j));
                let result = match target {
                    Some(j) => {
                        self.push_pulls += 1;
                        let reply = self.nodes[j].engine.handle_push_pull(state, self.now);
                        self.drain(j);
                        Ok(reply)
                    }
                    None => Err(PushPullFailed {
                        reason: "connection refused".into(),
                    }),
                };
                let after = self.latency();
                self.schedule(
                    after,
                    Delivery::PushPullReply {
                        origin,
                        generation,
                        id,
                        result,
                    },
                );
            }
            Delivery::PushPullReply {
                origin,
                generation,
                id,
                result,
            } => {
                // The reply comes back on the origin's own connection: an
                // inbound block does not stop it.
                if self.nodes[origin].up && self.nodes[origin].generation == generation {
                    self.nodes[origin]
                        .engine
                        .push_pull_result(id, result, self.now);
                    self.drain(origin);
                }
            }
            Delivery::StreamPingOpen {
                origin,
                generation,
                to,
                ping,
            } => {
                let ok = self
                    .by_addr
                    .get(&to)
                    .copied()
                    .filter(|j| self.reachable(origin, *j))
                    .and_then(|j| self.nodes[j].engine.handle_stream_ping(&ping))
                    .is_some();
                let after = self.latency();
                self.schedule(
                    after,
                    Delivery::StreamPingReply {
                        origin,
                        generation,
                        seq: ping.seq_no,
                        ok,
                    },
                );
            }
            Delivery::StreamPingReply {
                origin,
                generation,
                seq,
                ok,
            } => {
                if self.nodes[origin].up && self.nodes[origin].generation == generation {
                    self.nodes[origin]
                        .engine
                        .stream_ping_result(seq, ok, self.now);
                    self.drain(origin);
                }
            }
            Delivery::Join { node, to } => {
                if self.nodes[node].up {
                    self.nodes[node].engine.join(&to, self.now);
                    self.drain(node);
                }
            }
            Delivery::Tick { node, generation } => {
                if self.nodes[node].generation == generation {
                    self.tick_pending[node] = false;
                    self.tick(node);
                }
            }
            Delivery::Late(delivery) => self.deliver_now(*delivery),
        }
    }
}
