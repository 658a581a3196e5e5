//! Members in a starved process (issue 14: 100 and 500 members in one
//! process collapsed): every input is handled late and costs time on one
//! shared core, so probes miss their timeouts, and every false suspicion
//! and refutation is more traffic to handle late.

use std::time::Duration;

use super::super::{Config, Event, MemberChange, Time};
use super::sim::{name_of, Sim, Starvation};

const S: fn(u64) -> Duration = Duration::from_secs;
const MS: fn(u64) -> Duration = Duration::from_millis;

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// When every member first saw every other alive, after the last join.
    pub converged: Option<Duration>,
    /// Every member sees every other alive at the end.
    pub converged_at_end: bool,
    /// Suspect events (anyone's view) about members that never died.
    pub false_suspects: usize,
    /// Dead events about members that never died.
    pub false_deaths: usize,
    /// Refutations: incarnations members raised for themselves.
    pub refutations: u64,
    /// Packets delivered per member per second in the run's last 10 s.
    pub packets_per_member_s: f64,
    /// The longest an input waited for the shared core.
    pub max_backlog: Duration,
    /// Packets and push-pulls delivered until convergence (or the end):
    /// what the process must carry in that time.
    pub packets_until_converged: u64,
    pub push_pulls_until_converged: u64,
    /// Distinct (sender, target) pairs of packets and push-pulls until
    /// convergence (or the end): the connections a TCP transport opens.
    pub links_until_converged: usize,
}

/// A light load: inputs handled 0-100 ms late, 20 us of a shared core each.
pub const LIGHT: Starvation = Starvation {
    delay: (Duration::ZERO, Duration::from_millis(100)),
    cost: Duration::from_micros(20),
};

/// A starved runtime: inputs handled 50-800 ms late, 100 us of a shared
/// core each (what 100 members in one process cost, about 0.17 ms per
/// packet sent and received, bench cluster's at-rest row): 500 members
/// collapse under it without the late-tick rules.
pub const STARVED: Starvation = Starvation {
    delay: (Duration::from_millis(50), Duration::from_millis(800)),
    cost: Duration::from_micros(100),
};

/// `n` members joining the first within 50 ms, starved from the start,
/// run for `length` of virtual time.
pub fn run(
    n: usize,
    config: Config,
    starvation: Option<Starvation>,
    seed: u64,
    length: Duration,
) -> (Sim, Report) {
    let mut sim = Sim::new(n, config, seed);
    if let Some(s) = starvation {
        sim.starve(s);
    }
    let mut last = Duration::ZERO;
    for i in 1..n {
        let at = Duration::from_micros((i as u64 * 7919) % spread_us());
        last = last.max(at);
        sim.join_later(i, &[0], at);
    }
    let last = Time::from_origin(last);
    let end = Time::from_origin(length);
    let quiet_from = end - S(10);
    let converged = |s: &Sim| s.now >= last && s.converged();
    let mut t = sim.run_until(quiet_from, converged);
    let early = sim.converged();
    let mut carried = (sim.packets, sim.push_pulls, sim.links.len());
    sim.run_until(quiet_from, |_| false);
    let before = sim.packets;
    if !early {
        t = sim.run_until(end, converged);
        carried = (sim.packets, sim.push_pulls, sim.links.len());
    }
    let mut report = Report {
        converged: sim.converged().then(|| t.since(last)),
        packets_until_converged: carried.0,
        push_pulls_until_converged: carried.1,
        links_until_converged: carried.2,
        ..Report::default()
    };
    sim.run_until(end, |_| false);
    report.packets_per_member_s = (sim.packets - before) as f64 / n as f64 / 10.0;
    report.converged_at_end = sim.converged();
    report.max_backlog = sim.max_backlog();
    tally_accusations(&sim, &mut report);
    (sim, report)
}

/// Counts accusations of members that are up, and refutations.
fn tally_accusations(sim: &Sim, report: &mut Report) {
    let up: std::collections::HashSet<String> = (0..sim.nodes.len())
        .filter(|i| sim.nodes[*i].up)
        .map(name_of)
        .collect();
    for node in &sim.nodes {
        for (_, event) in &node.events {
            if let Event::Member { member, change } = event {
                if up.contains(&member.name) {
                    report.false_suspects += usize::from(*change == MemberChange::Suspect);
                    report.false_deaths += usize::from(*change == MemberChange::Dead);
                }
            }
        }
        report.refutations += u64::from(node.engine.local_member().incarnation - 1);
    }
}

/// The comma-separated values of the environment variable `name` (a
/// measurement's knob), or `default` when it is unset.
pub fn env_list<T: std::str::FromStr>(name: &str, default: &str) -> Vec<T> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// Joins come within this window: 50 ms, or `MEASURE_SPREAD_MS` (members
/// started as separate processes join over about a second).
fn spread_us() -> u64 {
    std::env::var("MEASURE_SPREAD_MS")
        .ok()
        .and_then(|ms| ms.parse::<u64>().ok())
        .map_or(50_000, |ms| (ms * 1000).max(1))
}

/// `MEASURE_DELAY_MS=lo-hi` and `MEASURE_COST_US=c`: a load to try.
fn custom_load() -> Option<Starvation> {
    let delay = std::env::var("MEASURE_DELAY_MS").ok()?;
    let (lo, hi) = delay.split_once('-')?;
    let cost = std::env::var("MEASURE_COST_US")
        .map_or(Ok(0), |c| c.parse())
        .ok()?;
    Some(Starvation {
        delay: (MS(lo.parse().ok()?), MS(hi.parse().ok()?)),
        cost: Duration::from_micros(cost),
    })
}

/// The engine as it was before the load work: its newer switches off and
/// the catch-up push-pulls at 0.5, 1, 2 and 4 s.
pub fn as_on_main(config: Config) -> Config {
    Config {
        scale_probe_timeout: false,
        scale_gossip_interval: false,
        notice_late_ticks: false,
        join_follow_up: Duration::ZERO,
        catch_up_push_pulls: 4,
        catch_up_base: MS(500),
        ..config
    }
}

fn row(label: &str, r: &Report) {
    eprintln!(
        "| {label} | {} | {} / {} / {} | {} | {} | {} | {} | {:.1} | {:.2} s |",
        r.converged
            .map_or("never".to_owned(), |d| format!("{:.2} s", d.as_secs_f64())),
        r.packets_until_converged,
        r.push_pulls_until_converged,
        r.links_until_converged,
        if r.converged_at_end { "yes" } else { "no" },
        r.false_suspects,
        r.false_deaths,
        r.refutations,
        r.packets_per_member_s,
        r.max_backlog.as_secs_f64()
    );
}

/// Prints the load table for the report (`cargo test --lib measure_load --
/// --ignored --nocapture`; MEASURE_N picks sizes, e.g. `100,500`,
/// MEASURE_PRESET presets separated by `|`, MEASURE_LOAD loads by `,`,
/// MEASURE_SEEDS seeds by `,`, 7 by default).
#[test]
#[ignore]
fn measure_load() {
    let sizes: Vec<usize> = env_list("MEASURE_N", "100,500");
    let seeds: Vec<u64> = env_list("MEASURE_SEEDS", "7");
    let only = std::env::var("MEASURE_PRESET").ok();
    let presets: Vec<(&str, Config)> = vec![
        ("lan as on main", as_on_main(Config::lan())),
        ("lan", Config::lan()),
        (
            "lan, 1 warm target",
            Config {
                warm_gossip_nodes: 1,
                ..Config::lan()
            },
        ),
        (
            "lan, targets all random",
            Config {
                warm_gossip_nodes: 0,
                ..Config::lan()
            },
        ),
        ("lan, memberlist's rules", Config::lan().as_memberlist()),
        (
            "lan, probe timeout scaled only",
            Config {
                notice_late_ticks: false,
                ..Config::lan()
            },
        ),
        (
            "lan, no join follow-up",
            Config {
                join_follow_up: Duration::ZERO,
                ..Config::lan()
            },
        ),
        (
            "lan, catch-up from 0.5 s",
            Config {
                catch_up_base: MS(500),
                catch_up_push_pulls: 4,
                ..Config::lan()
            },
        ),
        (
            "lan, 2 catch-ups",
            Config {
                catch_up_push_pulls: 2,
                ..Config::lan()
            },
        ),
        (
            "lan, no catch-ups",
            Config {
                catch_up_push_pulls: 0,
                ..Config::lan()
            },
        ),
        (
            "lan, 16,000-byte packets",
            Config {
                udp_buffer_size: 16_000,
                ..Config::lan()
            },
        ),
        (
            "lan, fresh-news rounds from 10 ms",
            Config {
                fresh_news_gossip: MS(10),
                ..Config::lan()
            },
        ),
        (
            "lan, no fresh-news rounds",
            Config {
                fresh_news_gossip: Duration::ZERO,
                ..Config::lan()
            },
        ),
        (
            "lan, gossip unscaled",
            Config {
                scale_gossip_interval: false,
                ..Config::lan()
            },
        ),
        (
            "lan, late ticks only",
            Config {
                scale_probe_timeout: false,
                ..Config::lan()
            },
        ),
    ]
    .into_iter()
    .filter(|(name, _)| {
        only.as_deref()
            .is_none_or(|o| o.split('|').any(|x| x == *name))
    })
    .collect();
    eprintln!("| run | converged after last join | packets / push-pulls / links until then | converged at 30 s | false suspects | false deaths | refutations | packets/member/s (last 10 s) | longest wait for the core |");
    eprintln!("|---|---|---|---|---|---|---|---|---|");
    for n in sizes {
        for (name, config) in &presets {
            let loads = [
                ("fed", None),
                ("light", Some(LIGHT)),
                ("starved", Some(STARVED)),
                ("custom", custom_load()),
            ];
            let only = std::env::var("MEASURE_LOAD").ok();
            for (load, starvation) in loads {
                if only
                    .as_deref()
                    .is_some_and(|o| !o.split(',').any(|x| x == load))
                {
                    continue;
                }
                if load == "custom" && starvation.is_none() {
                    continue;
                }
                for &seed in &seeds {
                    let (_, r) = run(n, config.clone(), starvation, seed, S(30));
                    row(&format!("{n}, {name}, {load}, seed {seed}"), &r);
                }
            }
        }
    }
}

#[test]
fn the_starvation_model_delays_inputs_without_losing_them() {
    let (_, fed) = run(20, Config::lan(), None, 1, S(12));
    let (_, starved) = run(20, Config::lan(), Some(STARVED), 1, S(12));
    assert!(fed.converged.is_some() && starved.converged.is_some());
    assert!(
        starved.converged > fed.converged,
        "late inputs slow convergence: {fed:?} vs {starved:?}"
    );
}

/// A member killed in a converged cluster of `n`, starved from 10 s before
/// the kill when `starvation` says so: how long until every other member
/// holds it dead (`None`: not within 60 s), and accusations of live members
/// from the starvation on.
pub fn kill_run(
    n: usize,
    config: Config,
    starvation: Option<Starvation>,
    seed: u64,
) -> (Option<Duration>, usize) {
    let (mut sim, _) = run(n, config, None, seed, S(12));
    if let Some(s) = starvation {
        sim.starve(s);
    }
    let since = sim.now;
    sim.run_for(S(10));
    let victim = n / 2;
    sim.kill(victim);
    let start = sim.now;
    let dead = [Some(crate::memberlist::message::NodeState::Dead)];
    sim.run_until(start + S(60), |s| s.all_see(victim, &dead));
    let took = sim.all_see(victim, &dead).then(|| sim.now.since(start));
    let mut report = Report::default();
    let mut late = sim;
    for node in &mut late.nodes {
        node.events.retain(|(at, _)| *at >= since);
    }
    tally_accusations(&late, &mut report);
    (took, report.false_suspects + report.false_deaths)
}

/// Prints kill-to-dead-everywhere times (`cargo test --lib
/// measure_kill_under_load -- --ignored --nocapture`; MEASURE_N as above).
#[test]
#[ignore]
fn measure_kill_under_load() {
    let sizes: Vec<usize> = std::env::var("MEASURE_N")
        .unwrap_or_else(|_| "100,500".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let configs = [
        ("lan as on main", as_on_main(Config::lan())),
        ("lan", Config::lan()),
        (
            "lan, suspicion_mult 3",
            Config {
                suspicion_mult: 3,
                ..Config::lan()
            },
        ),
    ];
    eprintln!("| kill | dead everywhere after | live members accused |");
    eprintln!("|---|---|---|");
    for n in sizes {
        for (name, config) in &configs {
            let only = std::env::var("MEASURE_LOAD").ok();
            for (load, starvation) in [("fed", None), ("starved", custom_load().or(Some(STARVED)))]
            {
                if only.as_deref().is_some_and(|o| o != load) {
                    continue;
                }
                for seed in 0..2 {
                    let (took, accused) = kill_run(n, config.clone(), starvation, 300 + seed);
                    eprintln!(
                        "| {n}, {name}, {load}, seed {seed} | {} | {accused} |",
                        took.map_or("not in 60 s".into(), |d| format!(
                            "{:.2} s",
                            d.as_secs_f64()
                        ))
                    );
                }
            }
        }
    }
}
