//! Time until every member sees every other alive, in this process and as
//! separate processes; and time until a killed member is dead everywhere.

use crate::inproc::{self, Cluster};
use crate::procs::{self, Proc, Seen};
use crate::report::{secs, verdict, Row, Spread};
use crate::rest;
use crate::Cfg;
use gossiphttp::cluster::{MemberState, NodeOptions};
use std::time::{Duration, Instant};

/// The target for `n` members, and what it measured for ckit.
pub fn target(n: usize) -> (Duration, &'static str) {
    match n {
        0..=5 => (
            Duration::from_millis(200),
            "0.20–0.23 s (5 members, separate processes)",
        ),
        6..=50 => (Duration::from_millis(500), "0.42–0.76 s (50)"),
        51..=100 => (
            Duration::from_millis(1500),
            "98% of nodes in 3 s, the last 3–104 s (3 of 6 runs past 96 s)",
        ),
        _ => (Duration::from_secs(5), "-"),
    }
}

/// `n` members as `Node`s in this process, `cfg.runs` times: with the LAN
/// defaults, or `scaled` as `gossiphttp cluster --nodes n` runs them
/// (`NodeOptions::scaled_for_process`).
pub async fn in_process_row(cfg: &Cfg, n: usize, scaled: bool) -> Row {
    let mut all = Spread::default();
    let mut p95 = Spread::default();
    let mut cpu_busy = Vec::new();
    let mut start_times = Spread::default();
    let mut failures = Vec::new();
    let mut marks = Vec::new();
    let mut traffic = Vec::new();
    let mut accusations = Vec::new();
    let mut all_listed = Spread::default();
    let timeout = if n >= 500 {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(30)
    };
    let me = std::process::id().to_string();
    let mut speed = Vec::new();
    for _ in 0..cfg.runs {
        // The last run's (or row's) members wind down first.
        let _ = tokio::task::spawn_blocking(inproc::settle).await;
        speed.push(crate::speed::reference());
        let cpu0 = inproc::process_cpu(&me);
        let tweak = |_: usize, _: &[String], options: &mut NodeOptions| {
            if scaled {
                *options = options.clone().scaled_for_process(n);
            }
        };
        let cluster: Cluster = match inproc::start(n, tweak).await {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("start: {e}"));
                continue;
            }
        };
        start_times.push(cluster.started_in);
        let progress = inproc::progress(&cluster.nodes, n, cluster.t0, timeout).await;
        let times: Vec<Option<Duration>> = progress.iter().map(|p| p.all).collect();
        let wall = cluster.t0.elapsed();
        let cpu = inproc::process_cpu(&me).saturating_sub(cpu0);
        cpu_busy.push(cpu.as_secs_f64() / wall.as_secs_f64());
        let sent = rest::sent_in_process(&cluster.nodes);
        traffic.push(format!(
            "{:.0} packets ({:.0} dropped or failed), {:.1} MB, +{:.1} MB over streams, {:.2} s of CPU",
            sent.packets,
            sent.lost,
            sent.bytes / 1e6,
            sent.stream_bytes / 1e6,
            cpu.as_secs_f64()
        ));
        marks.push(inproc::median_marks(&progress));
        accusations.push(progress.iter().map(|p| p.accused).sum::<usize>());
        let listed: Vec<_> = progress.iter().map(|p| p.listed).collect();
        if let Ok((slowest, _)) = inproc::slowest(&listed) {
            all_listed.push(slowest);
        }
        match inproc::slowest(&times) {
            Ok((slowest, at95)) => {
                all.push(slowest);
                p95.push(at95);
            }
            Err(missing) => {
                let (suspect, dead) = inproc::not_alive(&cluster.nodes);
                let fewest = cluster
                    .nodes
                    .iter()
                    .map(|node| inproc::alive(&node.members()))
                    .min()
                    .unwrap_or(0);
                failures.push(format!(
                    "{missing} of {n} members short after {timeout:?} (the emptiest saw {fewest} alive; {suspect} suspect and {dead} dead rows over all tables)"
                ))
            }
        }
        inproc::kill_all(cluster.nodes).await;
    }
    let _ = tokio::task::spawn_blocking(inproc::settle).await;
    speed.push(crate::speed::reference());
    let (limit, ckit) = target(n);
    let mut row = Row::new(if scaled {
        format!("converge {n}, one process, the `cluster` command's rates")
    } else {
        format!("converge {n}, one process")
    });
    row.result = format!("{} (every member sees all {n} alive)", all.summary());
    row.target = verdict(limit, &all, failures.len());
    row.ckit = ckit.into();
    row.notes = format!(
        "{} runs: {}; every member listing all {n} (alive or suspect, memberlist's `Members()`) {}; 95% of members by {}; starting the {n} `Node`s took {}; the reference work (`speed.rs`) before each run and after the last took {}; CPU busy during convergence {} cores; sent until then (per run) {}; the median member saw (per run) {}; members seen not alive until then, summed over the members' tables (per run; every one a false suspicion) {:?}; {}, {}, all join the first{}",
        cfg.runs,
        all.runs(),
        all_listed.runs(),
        p95.summary(),
        start_times.summary(),
        crate::speed::summary(&speed),
        cpu_busy.iter().map(|c| format!("{c:.2}")).collect::<Vec<_>>().join(", "),
        traffic.join("; "),
        marks.join("; "),
        accusations,
        if scaled {
            "rates scaled to the process (`NodeOptions::scaled_for_process`: probes and gossip rounds n/100 times less often), as the `cluster` command runs its members"
        } else {
            "LAN defaults"
        },
        inproc::connections_note(inproc::shares_client(), n),
        if failures.is_empty() { String::new() } else { format!("; failed: {}", failures.join("; ")) }
    );
    row
}

/// `n` members as separate `gossiphttp node` processes (release build),
/// `cfg.runs` times; the last run's cluster then has a member killed with
/// SIGKILL when `kill` is set, for the kill row.
pub fn processes_row(cfg: &Cfg, n: usize, kill: bool) -> (Row, Option<Row>) {
    let mut all = Spread::default();
    let mut spawned = Spread::default();
    let mut failures = Vec::new();
    let mut kill_row = None;
    let timeout = Duration::from_secs(if n >= 100 { 60 } else { 30 });
    let mut speed = Vec::new();
    for run in 0..cfg.runs {
        inproc::settle();
        speed.push(crate::speed::reference());
        let (procs, t0, spawn_time) = match procs::start_cluster(n) {
            Ok(x) => x,
            Err(e) => {
                failures.push(format!("start: {e}"));
                continue;
            }
        };
        spawned.push(spawn_time);
        let times = procs::wait_joined(&procs, n, t0, timeout);
        match inproc::slowest(&times) {
            Ok((slowest, _)) => all.push(slowest),
            Err(missing) => failures.push(format!("{missing} of {n} short after {timeout:?}")),
        }
        if kill && run + 1 == cfg.runs {
            kill_row = Some(kill_process_row(procs, n));
        }
    }
    inproc::settle();
    speed.push(crate::speed::reference());
    let (limit, ckit) = target(n);
    let mut row = Row::new(format!("converge {n}, separate processes"));
    row.result = format!(
        "{} (every member logged all {} others joined)",
        all.summary(),
        n - 1
    );
    row.target = verdict(limit, &all, failures.len());
    row.ckit = ckit.into();
    row.notes = format!(
        "{} runs: {}; timed from spawning the first process; spawning all {n} took {}; the reference work (`speed.rs`) before each run and after the last took {}; LAN defaults (`gossiphttp node`), all join the first{}",
        cfg.runs,
        all.runs(),
        spawned.summary(),
        crate::speed::summary(&speed),
        if failures.is_empty() { String::new() } else { format!("; failed: {}", failures.join("; ")) }
    );
    (row, kill_row)
}

/// SIGKILLs one member of a converged process cluster; the time until every
/// other member logged it dead.
fn kill_process_row(mut procs: Vec<Proc>, n: usize) -> Row {
    let mut row = Row::new(format!("kill -9 dead everywhere, {n} processes"));
    row.target = "10 s".into();
    row.ckit = "suspected in 10 s, dead everywhere in 30 s".into();
    let victim_index = n / 2;
    let victim = procs.remove(victim_index);
    let name = victim.name.clone();
    let t0 = Instant::now();
    drop(victim); // SIGKILL and reap
    let deadline = t0 + Duration::from_secs(60);
    let dead = Seen::Dead(name.clone());
    let times = loop {
        let times: Vec<Option<Duration>> = procs
            .iter()
            .map(|p| p.first(&dead).map(|at| at.saturating_duration_since(t0)))
            .collect();
        if times.iter().all(Option::is_some) || Instant::now() > deadline {
            break times;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    match inproc::slowest(&times) {
        Ok((slowest, _)) => {
            let first = times.iter().flatten().min().copied().unwrap_or_default();
            row.result = format!(
                "{} (first member to log it dead: {})",
                secs(slowest),
                secs(first)
            );
            row.target = verdict(Duration::from_secs(10), &Spread(vec![slowest]), 0);
            row.notes = format!(
                "{name} killed with SIGKILL; every other of the {} logged `member dead`; LAN defaults (probe 1 s, suspicion 4 × log10(n) s, shortened by confirmations)",
                n - 1
            );
        }
        Err(missing) => {
            row.result = format!("**{missing} of {} never logged it dead in 60 s**", n - 1);
        }
    }
    row
}

/// Kills members of a converged in-process cluster one after the other
/// (`Node::kill`: no goodbye); per kill, the time until every other member
/// holds it dead.
pub async fn kill_in_process(cluster: &mut Cluster, kills: usize) -> Row {
    let n = cluster.nodes.len();
    let mut row = Row::new(format!("kill dead everywhere, {n} in one process"));
    row.ckit = "suspected in 10 s, dead everywhere in 30 s (kill -9)".into();
    let mut dead_all = Spread::default();
    let mut suspected = Spread::default();
    let mut failures = 0;
    for k in 0..kills {
        let index = cluster.nodes.len() / 2 + k;
        let victim = cluster.nodes.remove(index);
        let name = victim.id().name.clone();
        let t0 = Instant::now();
        victim.kill().await;
        let waits = cluster.nodes.iter().map(|node| {
            let view = node.watch_members();
            let name = name.clone();
            async move {
                inproc::wait_view(view, Duration::from_secs(60), |v| {
                    inproc::state_of(v, &name) == Some(MemberState::Dead)
                })
                .await
            }
        });
        let first_suspect = cluster.nodes.iter().map(|node| {
            let view = node.watch_members();
            let name = name.clone();
            async move {
                inproc::wait_view(view, Duration::from_secs(60), |v| {
                    inproc::state_of(v, &name) != Some(MemberState::Alive)
                })
                .await
            }
        });
        let (dead, susp) = tokio::join!(
            futures_util::future::join_all(waits),
            futures_util::future::join_all(first_suspect)
        );
        let dead: Vec<Option<Duration>> = dead.iter().map(|t| t.map(|t| t - t0)).collect();
        match inproc::slowest(&dead) {
            Ok((slowest, _)) => dead_all.push(slowest),
            Err(_) => failures += 1,
        }
        if let Some(first) = susp.iter().flatten().min() {
            suspected.push(*first - t0);
        }
    }
    row.result = format!("{} (every other member holds it dead)", dead_all.summary());
    row.target = verdict(Duration::from_secs(10), &dead_all, failures);
    row.notes = format!(
        "{kills} kills, one after the other in the same cluster: {}; first member to suspect it: {}; `Node::kill` (the task and transport stop, no goodbye); LAN defaults",
        dead_all.runs(),
        suspected.runs()
    );
    row
}
