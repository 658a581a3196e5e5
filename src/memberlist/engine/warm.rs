//! Gossip targets among the members this one sent to lately
//! (`Config::warm_gossip_nodes`).
//!
//! memberlist picks every gossip round's `GossipNodes` targets at random:
//! over UDP a new target costs nothing. Over HTTP/2 a target this member
//! has not sent to lately costs a TCP connection and an HTTP/2 handshake
//! at both ends, buffers on both, and a teardown later. Among 100 members
//! joining as separate processes each opened connections to about 40 of
//! the others in the first second, and setting up, serving and tearing
//! down connections took about a third of the wave's CPU
//! (`benches/RESULTS.md`). So all but one of a round's targets
//! come from the members sent to within `Config::warm_for` (at the address
//! they have now), and the last one at random from everyone: news still
//! reaches a random member every round, as the epidemic needs, and a
//! member's set of connections grows by at most one a round rather than
//! by `GossipNodes`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use rand::rngs::Xoshiro256PlusPlus;
use rand::RngExt;

use super::members::{Member, Members};
use super::time::Time;

/// Members this one sent a packet or a push-pull to, by name, with the
/// address and the time of the last one. At most one entry per member
/// sent to within the window (older ones are dropped at each pick), so it
/// is bounded by the table.
#[derive(Debug, Default)]
pub(super) struct WarmPeers {
    sent: BTreeMap<String, (SocketAddr, Time)>,
}

impl WarmPeers {
    /// Notes that something went to `name` at `addr`.
    pub(super) fn sent(&mut self, name: &str, addr: SocketAddr, now: Time) {
        match self.sent.get_mut(name) {
            Some(entry) => *entry = (addr, now),
            None => {
                self.sent.insert(name.to_owned(), (addr, now));
            }
        }
    }

    /// Up to `k` members among those sent to within `window` (at the
    /// address sent to) that `keep` accepts, those sent to longest ago
    /// first (ties at random), so that successive rounds go to different
    /// ones: a broadcast is sent several times, and each time to members
    /// that did not get it from us yet. Entries older than `window` are
    /// forgotten.
    pub(super) fn pick(
        &mut self,
        k: usize,
        window: Duration,
        now: Time,
        members: &Members,
        rng: &mut Xoshiro256PlusPlus,
        keep: impl Fn(&Member) -> bool,
    ) -> Vec<Member> {
        self.sent.retain(|_, (_, at)| now.since(*at) <= window);
        if k == 0 {
            return Vec::new();
        }
        let mut candidates: Vec<(Time, u64, &Member)> = self
            .sent
            .iter()
            .filter_map(|(name, (addr, at))| {
                let member = members.get(name).filter(|m| m.addr == *addr && keep(m))?;
                Some((*at, rng.random::<u64>(), member))
            })
            .collect();
        let take = k.min(candidates.len());
        if take < candidates.len() {
            candidates.select_nth_unstable_by_key(take, |(at, tie, _)| (*at, *tie));
        }
        candidates.truncate(take);
        candidates.into_iter().map(|(_, _, m)| m.clone()).collect()
    }

    /// How many members are remembered (for tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.sent.len()
    }

    /// Whether `name` is remembered (for tests).
    #[cfg(test)]
    pub(super) fn contains(&self, name: &str) -> bool {
        self.sent.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memberlist::message::NodeState;
    use rand::SeedableRng;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn table(names: &[(&str, u16)], rng: &mut Xoshiro256PlusPlus) -> Members {
        let mut members = Members::default();
        for &(name, port) in names {
            members.insert(
                Member {
                    name: name.into(),
                    addr: addr(port),
                    meta: None,
                    incarnation: 1,
                    state: NodeState::Alive,
                    state_change: Time::ZERO,
                    vsn: [1, 5, 2, 0, 0, 0],
                },
                rng,
            );
        }
        members
    }

    fn names(picked: &[Member]) -> Vec<&str> {
        let mut names: Vec<&str> = picked.iter().map(|m| m.name.as_str()).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn the_members_sent_to_longest_ago_come_first() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let members = table(&[("a", 1), ("b", 2), ("c", 3), ("d", 4)], &mut rng);
        let mut warm = WarmPeers::default();
        let at = |s| Time::from_origin(S(s));
        warm.sent("c", addr(3), at(1));
        warm.sent("a", addr(1), at(2));
        warm.sent("d", addr(4), at(3));
        warm.sent("b", addr(2), at(4));
        let picked = warm.pick(2, S(60), at(5), &members, &mut rng, |_| true);
        assert_eq!(names(&picked), ["a", "c"]);
        // Sent to again: now the others are the oldest.
        warm.sent("c", addr(3), at(5));
        warm.sent("a", addr(1), at(5));
        let picked = warm.pick(2, S(60), at(6), &members, &mut rng, |_| true);
        assert_eq!(names(&picked), ["b", "d"]);
        // More asked for than there are: all of them, no repeats.
        let picked = warm.pick(9, S(60), at(6), &members, &mut rng, |_| true);
        assert_eq!(names(&picked), ["a", "b", "c", "d"]);
    }

    #[test]
    fn only_members_the_filter_keeps_at_the_address_sent_to() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(2);
        // b has moved to port 22 since we sent to it at port 2; e is no
        // longer in the table.
        let members = table(&[("a", 1), ("b", 22), ("c", 3)], &mut rng);
        let mut warm = WarmPeers::default();
        for (name, port) in [("a", 1), ("b", 2), ("c", 3), ("e", 5)] {
            warm.sent(name, addr(port), Time::ZERO);
        }
        let picked = warm.pick(3, S(60), Time::ZERO, &members, &mut rng, |m| m.name != "a");
        assert_eq!(names(&picked), ["c"]);
    }

    #[test]
    fn members_not_sent_to_within_the_window_are_forgotten() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let members = table(&[("a", 1), ("b", 2)], &mut rng);
        let mut warm = WarmPeers::default();
        warm.sent("a", addr(1), Time::ZERO);
        warm.sent("b", addr(2), Time::from_origin(S(30)));
        let at = Time::from_origin(S(61));
        let picked = warm.pick(2, S(60), at, &members, &mut rng, |_| true);
        assert_eq!(names(&picked), ["b"]);
        assert_eq!(warm.len(), 1, "a is forgotten, not kept");
        // Asking for none still forgets.
        warm.pick(
            0,
            S(60),
            Time::from_origin(S(91)),
            &members,
            &mut rng,
            |_| true,
        );
        assert_eq!(warm.len(), 0);
    }
}
