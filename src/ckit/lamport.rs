//! ckit's lamport clock (Go's `internal/lamport`): the logical time that
//! orders node-state messages.
//!
//! The rules, as ckit applies them:
//! - [`Clock::now`] reads the time without changing it;
//! - [`Clock::tick`] adds one and returns the new time (a node stamps its own
//!   state change with it);
//! - [`Clock::observe`] moves the clock past a time seen in a peer's message:
//!   a time behind ours changes nothing, a time at or ahead of ours sets ours
//!   to that time plus one.
//!
//! Each node owns its clock, starting at 0. The clock is plain data: whoever
//! owns the node's state owns the clock (`&mut`), so no atomics are needed.
//!
//! Where Go wraps around, this clock saturates: Go's `Observe(2^64-1)` sets
//! its clock to 0 (`t+1` overflows) and a `Tick` at `2^64-1` returns 0, which
//! would make every later message of the node look older than all it sent. A
//! peer can send such a time, so here the clock stops at [`Time::MAX`]
//! instead.

/// A lamport time (Go's `lamport.Time`, a `uint64`).
pub type Time = u64;

/// A node's lamport clock. See the module documentation for its rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    now: Time,
}

impl Clock {
    /// A clock at time 0, as every ckit node starts.
    pub const fn new() -> Self {
        Self { now: 0 }
    }

    /// A clock at `now`: a node restored from a snapshot, or a test.
    pub const fn at(now: Time) -> Self {
        Self { now }
    }

    /// The current time; the clock is not changed.
    pub const fn now(&self) -> Time {
        self.now
    }

    /// Advances the clock by one and returns the new time (saturating at
    /// [`Time::MAX`]).
    pub fn tick(&mut self) -> Time {
        self.now = self.now.saturating_add(1);
        self.now
    }

    /// Moves the clock past `seen`, a time read from a peer's message: if
    /// `seen` is behind the clock nothing changes, otherwise the clock
    /// becomes `seen + 1` (saturating at [`Time::MAX`]).
    pub fn observe(&mut self, seen: Time) {
        if seen >= self.now {
            self.now = seen.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_zero_and_tick_returns_the_new_time() {
        let mut clock = Clock::new();
        assert_eq!(clock.now(), 0);
        assert_eq!(clock.tick(), 1);
        assert_eq!(clock.tick(), 2);
        assert_eq!(clock.now(), 2);
    }

    #[test]
    fn observe_moves_past_a_time_at_or_ahead_and_ignores_one_behind() {
        // (now before, observed, now after): ckit_messages.json's cases.
        for (before, seen, after) in [(0, 0, 1), (0, 5, 6), (5, 3, 5), (5, 5, 6), (5, 6, 7)] {
            let mut clock = Clock::at(before);
            clock.observe(seen);
            assert_eq!(clock.now(), after, "observe({seen}) at {before}");
            assert_eq!(clock.tick(), after + 1);
        }
    }

    #[test]
    fn saturates_where_go_wraps() {
        let mut clock = Clock::new();
        clock.observe(Time::MAX);
        assert_eq!(clock.now(), Time::MAX);
        assert_eq!(clock.tick(), Time::MAX);
        clock.observe(3);
        assert_eq!(clock.now(), Time::MAX);
    }
}
