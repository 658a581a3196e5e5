//! `cargo bench --bench cluster [-- --quick] [FILTER...]`
//!
//! Issue 14's cluster measurements, on loopback, with memberlist's LAN
//! defaults (`NodeOptions::new`): time until every member sees every other
//! alive (5, 50, 100 and 500 members in this process, and 500 also at
//! the rates `gossiphttp cluster` scales to the process; 5, 50 and 100 as
//! separate `gossiphttp node` processes, as ckit's numbers were taken);
//! time until a killed member is dead everywhere; CPU, memory and gossip
//! bytes per member at rest; and the faults the issue lists: a member that
//! can send but not receive, a member restarted under the same name, and
//! `gossiphttp cluster --nodes 500` stopped with Ctrl-C. It prints one
//! markdown table, each row with the load average it was taken under;
//! `benches/RESULTS.md` keeps it.
//!
//! `--quick` runs small sizes once with short windows (CI's smoke run of
//! the harness). A FILTER runs only the rows whose id contains it, or is
//! it when it starts with `=` (ids: `converge`, `processes`, `rest`,
//! `rest-processes`, `send-only`, `restart`, `cluster-command`; `=processes`
//! runs the separate-process convergence rows without the at-rest one). For experiments,
//! `CLUSTER_BENCH_REST_MEMBERS` sets the at-rest rows' size,
//! `CLUSTER_BENCH_OWN_CLIENTS=1` gives each in-process member a
//! connection pool of its own instead of the process's one client,
//! `CLUSTER_BENCH_PEER_CONNECTIONS` that pool's budget,
//! `CLUSTER_BENCH_PROBE_MS` the probe interval, `CLUSTER_BENCH_GOSSIP_MS`
//! the gossip interval, `CLUSTER_BENCH_CATCH_UPS`
//! the catch-up push-pulls after a join,
//! `CLUSTER_BENCH_SIZES` (`100,500`) the in-process convergence
//! sizes, `CLUSTER_BENCH_RUNS` the runs per size,
//! `CLUSTER_BENCH_FAULT_SECS` the send-only row's window (60 s), and `BENCH_LOG` (an
//! `EnvFilter`, e.g. `gossiphttp=warn`) prints the in-process members'
//! logs on stderr.
//!
//! Each convergence run starts once the machine is quiet (under a tenth of
//! its CPU busy over a quarter of a second, waiting at most 10 s): the last
//! run's members wind down after it ends, and a run timed during that
//! starts on a busy machine.
//!
//! In-process members share one tokio runtime of 2 workers (the machine
//! this was written for has 2 cores), and the observers that time them run
//! on it too, with the allocator of `gossiphttp cluster` (mimalloc), as a
//! process running many members should have. Layout: `report` (the
//! table), `inproc` and `procs` (members in this process and as
//! processes), one module per row group:
//! `converge` (convergence and kills), `rest`, `faults`, `scale`.
//! `metrics` is the tests' strict metric reader.

#[path = "../../tests/common/cli.rs"]
mod cli_proc;
mod converge;
mod faults;
mod inproc;
#[path = "../../tests/common/metrics.rs"]
mod metrics;
mod procs;
mod report;
mod rest;
mod scale;
mod speed;

use report::Row;
use std::time::{Duration, Instant};

/// The binary's allocator (src/bin/gossiphttp/main.rs says why).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Runtime workers for the in-process members.
const WORKERS: usize = 2;

pub struct Cfg {
    quick: bool,
    filters: Vec<String>,
    /// Runs per convergence size.
    runs: usize,
    /// In-process convergence sizes.
    sizes: Vec<usize>,
    /// Separate-process convergence sizes; the kill row runs on the last
    /// run of the first of them of at least 5.
    process_sizes: Vec<usize>,
    /// Members of the at-rest rows.
    rest_members: usize,
    /// How long a converged cluster runs before the at-rest window. In
    /// full mode one probe round and then some (100 members probed in turn
    /// once a second: 100 s), so that every member has dialled every peer
    /// it probes once and the window sees the steady state, not the
    /// connections being made (0.112% of a core per member after 10 s,
    /// 0.087-0.095% after 120 s, the same binary).
    settle: Duration,
    rest_window: Duration,
    /// Members killed one after the other in the at-rest cluster.
    kills: usize,
    fault_members: usize,
    fault_window: Duration,
    /// How long a restarted member's single row must hold.
    restart_hold: Duration,
    /// Members of `gossiphttp cluster` in the Ctrl-C row.
    command_members: usize,
}

impl Cfg {
    fn from_args(args: &[String]) -> Cfg {
        let quick = args.iter().any(|a| a == "--quick");
        let filters = args
            .iter()
            .filter(|a| !a.starts_with("--"))
            .cloned()
            .collect();
        if quick {
            Cfg {
                quick,
                filters,
                runs: 1,
                sizes: vec![5, 20],
                process_sizes: vec![5],
                rest_members: 20,
                settle: Duration::from_secs(1),
                rest_window: Duration::from_secs(2),
                kills: 1,
                fault_members: 5,
                fault_window: Duration::from_secs(5),
                restart_hold: Duration::from_secs(2),
                command_members: 20,
            }
        } else {
            Cfg {
                quick,
                filters,
                runs: 5,
                sizes: vec![5, 50, 100, 500],
                process_sizes: vec![5, 50, 100],
                rest_members: 100,
                settle: Duration::from_secs(110),
                rest_window: Duration::from_secs(30),
                kills: 3,
                fault_members: 10,
                fault_window: Duration::from_secs(60),
                restart_hold: Duration::from_secs(5),
                command_members: 500,
            }
        }
    }

    fn wants(&self, id: &str) -> bool {
        self.filters.is_empty()
            || self.filters.iter().any(|f| match f.strip_prefix('=') {
                Some(exact) => id == exact,
                None => id.contains(f.as_str()),
            })
    }
}

/// An experiment's setting from the environment variable `name`, when it
/// is set and parses.
pub fn knob<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn main() {
    // For experiments: the in-process members' logs on stderr
    // (`BENCH_LOG=gossiphttp=warn`).
    if std::env::var("BENCH_LOG").is_ok() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("BENCH_LOG"))
            .with_writer(std::io::stderr)
            .init();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut cfg = Cfg::from_args(&args);
    // For experiments: another size for the at-rest rows.
    if let Some(n) = knob("CLUSTER_BENCH_REST_MEMBERS") {
        cfg.rest_members = n;
    }
    // For experiments: other in-process convergence sizes and run counts.
    if let Some(sizes) = std::env::var("CLUSTER_BENCH_SIZES").ok().map(|v| {
        v.split(',')
            .filter_map(|n| n.trim().parse().ok())
            .collect::<Vec<usize>>()
    }) {
        cfg.sizes = sizes;
    }
    if let Some(runs) = knob("CLUSTER_BENCH_RUNS") {
        cfg.runs = runs;
    }
    // For experiments: the send-only row's window (issue 14 measured
    // ckit and foca over 180 s).
    if let Some(secs) = knob("CLUSTER_BENCH_FAULT_SECS") {
        cfg.fault_window = Duration::from_secs(secs);
    }
    println!("{}", report::machine());
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut rows: Vec<Row> = Vec::new();
    let mut done = |row: Row| {
        eprintln!("done: {} -> {}", row.name, row.result);
        rows.push(row);
    };

    // First, so that this process's RSS growth is the members' alone (the
    // allocator keeps what the larger rows freed).
    if cfg.wants("rest") {
        for row in rt.block_on(rest::in_process_rows(&cfg, cfg.rest_members)) {
            done(row);
        }
    }
    if cfg.wants("converge") {
        let full_runs = cfg.runs;
        for n in cfg.sizes.clone() {
            // 500 members take a while to start and stop: fewer runs.
            cfg.runs = if n >= 500 {
                full_runs.min(3)
            } else {
                full_runs
            };
            done(rt.block_on(converge::in_process_row(&cfg, n, false)));
            // Past 100 members, also as the `cluster` command runs them
            // (and at the largest size of the quick run, which checks
            // that the row works).
            let largest = cfg.sizes.iter().max() == Some(&n);
            if n > 100 || (cfg.quick && largest) {
                done(rt.block_on(converge::in_process_row(&cfg, n, true)));
            }
        }
        cfg.runs = full_runs;
    }
    if cfg.wants("processes") {
        let full_runs = cfg.runs;
        for (i, n) in cfg.process_sizes.clone().into_iter().enumerate() {
            cfg.runs = if n >= 100 {
                full_runs.min(3)
            } else {
                full_runs
            };
            let kill = i + 1 == cfg.process_sizes.len().min(2);
            let (row, kill_row) = converge::processes_row(&cfg, n, kill);
            done(row);
            if let Some(k) = kill_row {
                done(k);
            }
        }
        cfg.runs = full_runs;
    }
    if cfg.wants("rest-processes") {
        done(rest::processes_row(&cfg, cfg.rest_members));
    }
    if cfg.wants("send-only") {
        done(rt.block_on(faults::send_only_row(&cfg, cfg.fault_members)));
    }
    if cfg.wants("restart") {
        done(rt.block_on(faults::restart_row(&cfg, cfg.fault_members, false)));
        done(rt.block_on(faults::restart_row(&cfg, cfg.fault_members, true)));
    }
    if cfg.wants("cluster-command") {
        done(scale::cluster_command_row(cfg.command_members));
    }
    drop(rt);
    println!("{}", report::table(&rows));
    println!(
        "Total time {:.1} s ({} mode).",
        started.elapsed().as_secs_f64(),
        if cfg.quick { "quick" } else { "full" }
    );
}
