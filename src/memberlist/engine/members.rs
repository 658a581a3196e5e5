//! The member list: one row per member name (this member included), in a
//! shuffled order that round-robin probing walks, and the tombstones of
//! forgotten dead members.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;
use rand::rngs::Xoshiro256PlusPlus;
use rand::RngExt;

use super::super::message::{Alive, NodeState, PushNodeState};
use super::time::Time;

/// One member as this engine sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its name: the key of its row.
    pub name: String,
    /// Where it takes packets and streams.
    pub addr: SocketAddr,
    /// Its metadata (nil from ckit nodes).
    pub meta: Option<Bytes>,
    /// The last incarnation heard.
    pub incarnation: u32,
    /// Alive, suspect, dead or left.
    pub state: NodeState,
    /// When `state` last changed.
    pub state_change: Time,
    /// Protocol min, max, current, delegate min, max, current (zeros when
    /// never announced).
    pub vsn: [u8; 6],
}

impl Member {
    /// The highest protocol version it understands.
    pub fn protocol_max(&self) -> u8 {
        self.vsn[1]
    }

    /// Whether packets to it carry the CRC wrapper (protocol 5 added it).
    pub fn reads_crc(&self) -> bool {
        self.protocol_max() >= 5
    }

    /// Dead or left.
    pub fn is_gone(&self) -> bool {
        matches!(self.state, NodeState::Dead | NodeState::Left)
    }

    /// Its `alive` message.
    pub fn alive(&self) -> Alive {
        let (addr, port) = ip_bytes(self.addr);
        Alive {
            incarnation: self.incarnation,
            node: self.name.clone(),
            addr,
            port,
            meta: self.meta.clone(),
            vsn: Bytes::copy_from_slice(&self.vsn),
        }
    }

    /// Its row in a push-pull.
    pub fn push_state(&self) -> PushNodeState {
        let (addr, port) = ip_bytes(self.addr);
        PushNodeState {
            name: self.name.clone(),
            addr,
            port,
            meta: self.meta.clone(),
            incarnation: self.incarnation,
            state: self.state,
            vsn: Bytes::copy_from_slice(&self.vsn),
        }
    }
}

/// An address as memberlist carries it: the IP's 4 or 16 bytes and a port.
pub fn ip_bytes(addr: SocketAddr) -> (Bytes, u16) {
    let ip = match addr.ip() {
        IpAddr::V4(ip) => Bytes::copy_from_slice(&ip.octets()),
        IpAddr::V6(ip) => Bytes::copy_from_slice(&ip.octets()),
    };
    (ip, addr.port())
}

/// The address memberlist's IP bytes and port name, or `None` when the
/// bytes are neither 4 nor 16 long.
pub fn socket_addr(ip: &[u8], port: u16) -> Option<SocketAddr> {
    let ip = match ip.len() {
        4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(ip).ok()?)),
        16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(ip).ok()?)),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// A `Vsn` as six bytes; shorter ones (old protocol) read as zeros.
pub fn vsn_array(vsn: &[u8]) -> [u8; 6] {
    let mut out = [0u8; 6];
    for (o, v) in out.iter_mut().zip(vsn) {
        *o = *v;
    }
    out
}

/// What is remembered of a forgotten dead member.
#[derive(Clone, Debug)]
pub struct Tombstone {
    /// Where it was.
    pub addr: SocketAddr,
    /// When its row was forgotten.
    pub buried: Time,
}

/// The rows, their probe order, and the tombstones.
#[derive(Clone, Debug, Default)]
pub struct Members {
    rows: BTreeMap<String, Member>,
    /// Probe order: every name in `rows`, shuffled.
    order: Vec<String>,
    probe_index: usize,
    tombstones: BTreeMap<String, Tombstone>,
}

impl Members {
    /// The row of `name`.
    pub fn get(&self, name: &str) -> Option<&Member> {
        self.rows.get(name)
    }

    /// The row of `name`, to change it.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Member> {
        self.rows.get_mut(name)
    }

    /// Rows, this member included (memberlist's `numNodes`).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Every row, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Member> {
        self.rows.values()
    }

    /// Adds a new row at a random place in the probe order (so a member
    /// joining is probed soon by some and late by others, as memberlist
    /// does to keep the failure-detection bound low on average).
    pub fn insert(&mut self, member: Member, rng: &mut Xoshiro256PlusPlus) {
        let name = member.name.clone();
        self.tombstones.remove(&name);
        if self.rows.insert(name.clone(), member).is_none() {
            self.order.push(name);
            let last = self.order.len() - 1;
            let at = rng.random_range(0..=last);
            self.order.swap(at, last);
        }
    }

    /// The tombstone of `name`, if its row was forgotten recently.
    pub fn tombstone(&self, name: &str) -> Option<&Tombstone> {
        self.tombstones.get(name)
    }

    /// The next member to probe in round-robin order, skipping `skip` and
    /// dead members. At the end of a round the dead past `reap_after` are
    /// forgotten (returned, tombstoned) and the order is shuffled.
    pub fn next_to_probe(
        &mut self,
        skip: &str,
        now: Time,
        reap_after: std::time::Duration,
        tombstone_time: std::time::Duration,
        rng: &mut Xoshiro256PlusPlus,
        reaped: &mut Vec<Member>,
    ) -> Option<String> {
        let mut checked = 0;
        loop {
            if checked >= self.order.len() {
                return None;
            }
            if self.probe_index >= self.order.len() {
                reaped.extend(self.reap(now, reap_after, tombstone_time));
                self.shuffle(rng);
                self.probe_index = 0;
                checked += 1;
                continue;
            }
            let name = &self.order[self.probe_index];
            self.probe_index += 1;
            let row = &self.rows[name];
            if name == skip || row.is_gone() {
                checked += 1;
                continue;
            }
            return Some(name.clone());
        }
    }

    fn shuffle(&mut self, rng: &mut Xoshiro256PlusPlus) {
        for i in (1..self.order.len()).rev() {
            let j = rng.random_range(0..=i);
            self.order.swap(i, j);
        }
    }

    /// Forgets members dead or left for longer than `after`, leaving a
    /// tombstone for `tombstone_time`; drops expired tombstones.
    fn reap(
        &mut self,
        now: Time,
        after: std::time::Duration,
        tombstone_time: std::time::Duration,
    ) -> Vec<Member> {
        let gone: Vec<String> = self
            .rows
            .values()
            .filter(|m| m.is_gone() && now.since(m.state_change) > after)
            .map(|m| m.name.clone())
            .collect();
        let mut out = Vec::new();
        for name in gone {
            let row = self.rows.remove(&name).expect("listed above");
            if row.state == NodeState::Dead && !tombstone_time.is_zero() {
                self.tombstones.insert(
                    name.clone(),
                    Tombstone {
                        addr: row.addr,
                        buried: now,
                    },
                );
            }
            out.push(row);
        }
        if !out.is_empty() {
            self.order.retain(|n| self.rows.contains_key(n));
        }
        self.tombstones
            .retain(|_, t| now.since(t.buried) < tombstone_time);
        out
    }

    /// A random member to try to reconnect with: one we hold dead (not
    /// left), or a forgotten dead one.
    pub fn reconnect_candidate(
        &self,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Option<(String, SocketAddr)> {
        let dead = self.rows.values().filter(|m| m.state == NodeState::Dead);
        let mut candidates: Vec<(String, SocketAddr)> =
            dead.map(|m| (m.name.clone(), m.addr)).collect();
        candidates.extend(self.tombstones.iter().map(|(n, t)| (n.clone(), t.addr)));
        if candidates.is_empty() {
            return None;
        }
        let at = rng.random_range(0..candidates.len());
        Some(candidates.swap_remove(at))
    }

    /// Up to `k` distinct random members that `keep` accepts, drawn as
    /// memberlist does (at most `3 * len` tries).
    pub fn random(
        &self,
        k: usize,
        rng: &mut Xoshiro256PlusPlus,
        keep: impl Fn(&Member) -> bool,
    ) -> Vec<Member> {
        let n = self.order.len();
        let mut out: Vec<Member> = Vec::with_capacity(k);
        if n == 0 {
            return out;
        }
        for _ in 0..3 * n {
            if out.len() >= k {
                break;
            }
            let row = &self.rows[&self.order[rng.random_range(0..n)]];
            if !keep(row) || out.iter().any(|m| m.name == row.name) {
                continue;
            }
            out.push(row.clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::time::Duration;

    fn member(name: &str, state: NodeState, at: Time) -> Member {
        Member {
            name: name.into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            meta: None,
            incarnation: 1,
            state,
            state_change: at,
            vsn: [1, 5, 2, 0, 0, 0],
        }
    }

    #[test]
    fn probing_visits_every_live_member_once_per_round_and_reaps_the_long_dead() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let mut m = Members::default();
        for name in ["me", "a", "b", "c"] {
            m.insert(member(name, NodeState::Alive, Time::ZERO), &mut rng);
        }
        m.insert(member("d", NodeState::Dead, Time::ZERO), &mut rng);
        let now = Time::from_origin(Duration::from_secs(31));
        let thirty = Duration::from_secs(30);
        let mut reaped = Vec::new();
        let mut seen: Vec<String> = (0..3)
            .map(|_| {
                m.next_to_probe("me", now, thirty, thirty, &mut rng, &mut reaped)
                    .unwrap()
            })
            .collect();
        seen.sort();
        assert_eq!(seen, ["a", "b", "c"]);
        m.next_to_probe("me", now, thirty, thirty, &mut rng, &mut reaped)
            .unwrap();
        assert_eq!(reaped.len(), 1, "the round's end forgot d");
        assert!(m.get("d").is_none() && m.tombstone("d").is_some());
        assert_eq!(m.len(), 4);
    }

    #[test]
    fn addresses_round_trip_and_bad_lengths_are_refused() {
        let v4: SocketAddr = "10.1.2.3:7946".parse().unwrap();
        let (ip, port) = ip_bytes(v4);
        assert_eq!(socket_addr(&ip, port), Some(v4));
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        let (ip, port) = ip_bytes(v6);
        assert_eq!(socket_addr(&ip, port), Some(v6));
        assert_eq!(socket_addr(&[1, 2, 3], 1), None);
    }
}
