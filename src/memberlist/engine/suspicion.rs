//! Lifeguard's suspicion timer: a suspect member is declared dead after a
//! timeout that starts at `max` and shrinks toward `min` as independent
//! members confirm the suspicion (log-scaled, as memberlist does), so a
//! member many others cannot reach dies fast, and one a single confused
//! member accuses gets the full time to refute.

use std::collections::BTreeSet;
use std::time::Duration;

use super::time::Time;

/// The suspicion of one member.
#[derive(Clone, Debug)]
pub struct Suspicion {
    /// Confirmations wanted to reach `min` (0: none expected, `min` at once).
    k: u32,
    /// Independent confirmations seen so far.
    n: u32,
    min: Duration,
    max: Duration,
    start: Time,
    /// Members whose word already counted (the first accuser included).
    confirmed_by: BTreeSet<String>,
    /// When the member is declared dead.
    deadline: Time,
}

impl Suspicion {
    /// A suspicion raised by `from` at `now`.
    pub fn new(from: &str, k: u32, min: Duration, max: Duration, now: Time) -> Suspicion {
        let timeout = if k < 1 { min } else { max };
        Suspicion {
            k,
            n: 0,
            min,
            max,
            start: now,
            confirmed_by: BTreeSet::from([from.to_owned()]),
            deadline: now + timeout,
        }
    }

    /// When the suspect is to be declared dead.
    pub fn deadline(&self) -> Time {
        self.deadline
    }

    /// Confirmations counted.
    #[cfg(test)]
    pub fn confirmations(&self) -> u32 {
        self.n
    }

    /// Counts `from`'s suspicion if it is new and more are wanted, and
    /// shortens the deadline. True when it counted (the suspicion is then
    /// worth gossiping on).
    pub fn confirm(&mut self, from: &str) -> bool {
        if self.n >= self.k || self.confirmed_by.contains(from) {
            return false;
        }
        self.confirmed_by.insert(from.to_owned());
        self.n += 1;
        let frac = (f64::from(self.n) + 1.0).ln() / (f64::from(self.k) + 1.0).ln();
        let raw = self.max.as_secs_f64() - frac * (self.max.as_secs_f64() - self.min.as_secs_f64());
        let timeout = Duration::from_millis((raw * 1000.0).floor().max(0.0) as u64).max(self.min);
        self.deadline = self.start + timeout;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn without_expected_confirmations_the_timeout_is_min() {
        let s = Suspicion::new("a", 0, S(4), S(24), Time::ZERO);
        assert_eq!(s.deadline(), Time::from_origin(S(4)));
    }

    #[test]
    fn confirmations_shrink_the_timeout_from_max_to_min_once_per_member() {
        let start = Time::from_origin(S(10));
        let mut s = Suspicion::new("a", 3, S(2), S(30), start);
        assert_eq!(s.deadline(), start + S(30));
        assert!(!s.confirm("a"), "the accuser does not confirm itself");
        assert!(s.confirm("b"));
        assert!(!s.confirm("b"), "one confirmation per member");
        // 30 - ln(2)/ln(4) * 28 = 16 s
        assert_eq!(s.deadline(), start + S(16));
        assert!(s.confirm("c"));
        assert!(s.confirm("d"));
        assert_eq!(s.deadline(), start + S(2));
        assert!(!s.confirm("e"), "no more wanted after k");
        assert_eq!(s.confirmations(), 3);
    }
}
