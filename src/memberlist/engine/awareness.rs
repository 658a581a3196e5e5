//! Lifeguard's local health awareness: a score that rises when this member
//! misses acks and nacks or has to refute, and falls on every successful
//! probe. Timeouts are scaled by `score + 1`, so a member that is itself
//! slow or cut off probes less often and gives others longer to answer
//! before it accuses them.

use std::time::Duration;

/// The health score, in `0..max`.
#[derive(Clone, Debug)]
pub struct Awareness {
    max: u32,
    score: u32,
}

impl Awareness {
    /// A healthy score that never goes past `max - 1` (memberlist's
    /// `AwarenessMaxMultiplier`).
    pub fn new(max: u32) -> Awareness {
        Awareness {
            max: max.max(1),
            score: 0,
        }
    }

    /// Adds `delta` (negative to improve), clamped to `0..max`.
    pub fn apply(&mut self, delta: i64) {
        let next = (i64::from(self.score) + delta).clamp(0, i64::from(self.max - 1));
        self.score = next as u32;
    }

    /// The score: 0 is healthy.
    pub fn score(&self) -> u32 {
        self.score
    }

    /// `timeout` scaled by `score + 1`.
    pub fn scale(&self, timeout: Duration) -> Duration {
        timeout.saturating_mul(self.score + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_score_stays_within_zero_and_max_minus_one() {
        let mut a = Awareness::new(8);
        a.apply(-3);
        assert_eq!(a.score(), 0);
        a.apply(20);
        assert_eq!(a.score(), 7);
        assert_eq!(a.scale(Duration::from_secs(1)), Duration::from_secs(8));
        a.apply(-1);
        assert_eq!(
            a.scale(Duration::from_millis(500)),
            Duration::from_millis(3500)
        );
    }
}
