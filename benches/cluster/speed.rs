//! How fast this machine is right now, for reading a row's time.
//!
//! The convergence rows of 100 and 500 members keep both cores busy from
//! start to end, so their time is their CPU work divided by the speed the
//! VM gives us at that moment, which has varied by half within a day
//! (`benches/RESULTS.md`). A short fixed piece of the same kind of work,
//! timed just before each run, tells a slow spell from a slower build.

use bytes::{Bytes, BytesMut};
use gossiphttp::memberlist::message::{NodeState, PushNodeState, PushPull};
use gossiphttp::memberlist::stream::{StreamDecoder, StreamMessage};
use std::time::{Duration, Instant};

/// A push-pull among 500 members, as the 500-member rows send hundreds of.
fn table() -> StreamMessage {
    let nodes = (0..500u16)
        .map(|i| PushNodeState {
            name: format!("m-{i}"),
            addr: Bytes::from_static(&[127, 0, 0, 1]),
            port: 20_000 + i,
            meta: None,
            incarnation: u32::from(i % 7) + 1,
            state: NodeState::Alive,
            vsn: Bytes::from_static(&[1, 5, 5, 0, 0, 0]),
        })
        .collect();
    StreamMessage::PushPull(PushPull {
        join: false,
        nodes,
        user_state: Bytes::new(),
    })
}

/// The reference work, on this thread: the push-pull compressed and read
/// back 200 times (about 80 ms here). The median of three rounds, so one
/// preemption does not count.
pub fn reference() -> Duration {
    let message = table();
    let mut rounds: Vec<Duration> = (0..3)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..200 {
                let bytes = message.encode(true);
                let mut src = BytesMut::from(&bytes[..]);
                let read = StreamDecoder::response().decode(&mut src);
                assert!(matches!(read, Ok(Some(StreamMessage::PushPull(_)))));
            }
            start.elapsed()
        })
        .collect();
    rounds.sort();
    rounds[1]
}

/// `runs` in milliseconds.
pub fn summary(runs: &[Duration]) -> String {
    runs.iter()
        .map(|d| format!("{:.1} ms", d.as_secs_f64() * 1e3))
        .collect::<Vec<_>>()
        .join(", ")
}
