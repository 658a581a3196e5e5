//! The simulator's model of a starved process: when each input is handled.

use std::time::Duration;

use rand::rngs::Xoshiro256PlusPlus;
use rand::RngExt;

use super::super::Time;

/// How a starved process handles its members' inputs (a tokio runtime with
/// too little CPU): every input (packet, stream, reply, timer) waits before
/// its member handles it, so acks leave late and timers fire late, and
/// every input costs CPU time on one core all members share, so more
/// traffic means longer waits (the feedback of a collapse).
#[derive(Clone, Copy, Debug)]
pub struct Starvation {
    /// Each input waits a random delay in this range (uniform); a member
    /// handles its inputs in the order they came.
    pub delay: (Duration, Duration),
    /// CPU time a packet or a stream takes on the shared core (zero:
    /// free); a push-pull costs one more for every 16 rows it carries, a
    /// timer nothing.
    pub cost: Duration,
}

/// The state of the model: each member's queue and the shared core.
#[derive(Debug)]
pub(super) struct Starver {
    starvation: Starvation,
    /// Per member: when its last input accepted so far is handled.
    late_until: Vec<Time>,
    /// When the shared core is next free.
    cpu_free: Time,
    /// The longest wait for the shared core an input had.
    max_backlog: Duration,
}

impl Starver {
    pub(super) fn new(starvation: Starvation, members: usize) -> Starver {
        Starver {
            starvation,
            late_until: vec![Time::ZERO; members],
            cpu_free: Time::ZERO,
            max_backlog: Duration::ZERO,
        }
    }

    pub(super) fn max_backlog(&self) -> Duration {
        self.max_backlog
    }

    /// When member `i` handles an input that arrives `now` and takes
    /// `units` of CPU.
    pub(super) fn handled_at(
        &mut self,
        i: usize,
        now: Time,
        units: u32,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Time {
        let (lo, hi) = self.starvation.delay;
        let delay = if hi > lo {
            Duration::from_nanos(rng.random_range(lo.as_nanos() as u64..hi.as_nanos() as u64))
        } else {
            lo
        };
        let mut start = (now + delay).max(self.late_until[i]);
        let cost = self.starvation.cost.saturating_mul(units);
        if !cost.is_zero() {
            self.max_backlog = self.max_backlog.max(self.cpu_free.since(start));
            start = start.max(self.cpu_free);
            self.cpu_free = start + cost;
        }
        let done = start + cost;
        self.late_until[i] = done;
        done
    }
}
