//! The engine's clock: an instant is a [`Duration`] since an origin the
//! shell chooses (process start, a test's zero). The engine never reads a
//! clock; every input carries `now`, so virtual time drives it in tests and
//! the same code runs on wasm32, where `std::time::Instant` panics.

use std::ops::{Add, Sub};
use std::time::Duration;

/// An instant on the shell's clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(Duration);

impl Time {
    /// The origin.
    pub const ZERO: Time = Time(Duration::ZERO);

    /// The instant `since_origin` after the origin.
    pub const fn from_origin(since_origin: Duration) -> Time {
        Time(since_origin)
    }

    /// How long after the origin this instant is.
    pub const fn since_origin(self) -> Duration {
        self.0
    }

    /// How long after `earlier` this instant is; zero if it is not after it.
    pub fn since(self, earlier: Time) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, rhs: Duration) -> Time {
        Time(self.0.saturating_add(rhs))
    }
}

impl Sub<Duration> for Time {
    type Output = Time;
    fn sub(self, rhs: Duration) -> Time {
        Time(self.0.saturating_sub(rhs))
    }
}
