//! How long a `kill -9`ed member takes to be dead everywhere, over many
//! seeds: the spread of memberlist's detection (first probe, confirmations,
//! the suspicion timeout) that the bench's single kills only sample, and
//! what the transport's hints (`Engine::peer_unreachable`) change.

use std::time::Duration;

use super::super::{Config, Time};
use super::cluster::converge;
use super::load::env_list;
use super::sim::Sim;
use crate::memberlist::message::NodeState;

const S: fn(u64) -> Duration = Duration::from_secs;

/// One kill in a converged cluster of `n`, with `noticers` members hinted
/// at once: (first suspicion anywhere, dead everywhere), from the kill.
fn kill_run(n: usize, config: Config, seed: u64, noticers: usize) -> (Duration, Duration) {
    let (mut sim, _) = converge(n, config, seed, S(10));
    sim.run_for(S(2));
    let victim = n / 2;
    sim.kill_noticed(victim, noticers);
    let start = sim.now;
    let mut suspected: Option<Time> = None;
    let end = sim.run_until(start + S(60), |s: &Sim| {
        if suspected.is_none() && !s.all_see(victim, &[Some(NodeState::Alive)]) {
            suspected = Some(s.now);
        }
        s.all_see(victim, &[Some(NodeState::Dead)])
    });
    (suspected.unwrap_or(end).since(start), end.since(start))
}

fn quantiles(v: &mut [f64]) -> String {
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    format!(
        "{:.2} / {:.2} / {:.2} / {:.2} s",
        at(0.0),
        at(0.5),
        at(0.9),
        at(1.0)
    )
}

/// The LAN defaults, with every gossip target random when
/// `MEASURE_RANDOM_TARGETS` is set (memberlist's way).
fn measured_config() -> Config {
    let mut config = Config::lan();
    if std::env::var_os("MEASURE_RANDOM_TARGETS").is_some() {
        config.warm_gossip_nodes = 0;
    }
    config
}

/// The kill's spread at `MEASURE_KILL_N` sizes (50,100) over
/// `MEASURE_KILL_SEEDS` seeds (40), with no member hinted, one, and all
/// (`MEASURE_RANDOM_TARGETS`: see `measured_config`).
#[test]
#[ignore = "a measurement: cargo test --release --lib measure_kill -- --ignored --nocapture"]
fn measure_kill() {
    let sizes: Vec<usize> = env_list("MEASURE_KILL_N", "50,100");
    let seeds: u64 = std::env::var("MEASURE_KILL_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    eprintln!("min / median / 90% / max over {seeds} seeds");
    for n in sizes {
        for noticers in [0, 1, n] {
            let (mut first, mut dead) = (Vec::new(), Vec::new());
            for seed in 0..seeds {
                let (f, d) = kill_run(n, measured_config(), 1000 + seed, noticers);
                first.push(f.as_secs_f64());
                dead.push(d.as_secs_f64());
            }
            let past_10 = dead.iter().filter(|d| **d > 10.0).count();
            eprintln!(
                "kill in {n}, {noticers} hinted: first suspicion {}; dead everywhere {} ({past_10} past 10 s)",
                quantiles(&mut first),
                quantiles(&mut dead)
            );
        }
    }
}

#[test]
fn a_kill_one_member_notices_is_suspected_at_once_and_dead_one_timeout_later() {
    // Without the hint the first suspicion waits for some member's
    // round-robin to reach the victim (1.0-5.6 s at 100 members above).
    let config = Config::lan();
    let n = 20;
    for seed in 0..3 {
        let (first, dead) = kill_run(n, config.clone(), 2000 + seed, 1);
        assert!(
            first <= Duration::from_millis(1300),
            "seed {seed}: first suspicion after {first:?}"
        );
        let bound = first + config.suspicion_min(n) + Duration::from_millis(500);
        assert!(dead <= bound, "seed {seed}: dead everywhere after {dead:?}");
    }
}
