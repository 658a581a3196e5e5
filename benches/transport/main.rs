//! `cargo bench --bench transport [-- --quick] [FILTER...]`
//!
//! A custom-main benchmark (no harness) of the transport on 127.0.0.1, next
//! to the baselines it is judged against: UDP datagrams, raw hyper HTTP/2
//! requests and raw TCP. It prints one markdown table, every row measured in
//! this run; `benches/RESULTS.md` says how to read it.
//!
//! `--quick` runs every row for a fraction of a second (a smoke test of the
//! harness, as CI runs it). A FILTER runs only the rows whose id contains it
//! (ids: `udp`, `udp-latency`, `h2`, `tcp`, `packets-64`, `packets-1400`,
//! `packets-1400-open`, `fanout`, `latency`, `stream`, `dead-peer`,
//! `dead-peer-paced`, `dead-write`, `mem-peers`, `mem-streams`); ratios to
//! a baseline that did not run show `-`.
//!
//! Throughput method, the same for the transport and UDP: for a fixed window
//! a producer writes as fast as it can while at most `WINDOW` packets per
//! receiver are outstanding (written but not yet taken by the receiving
//! application), yielding every `YIELD_EVERY` writes; what the receivers took
//! inside the window is the delivered rate. `packets-1400-open` has no
//! window: it shows what overdriving the transport does (drops). Producers
//! cycle through `PAYLOADS` distinct buffers, as an application writes a
//! fresh buffer per packet.
//!
//! The dead-peer row sets up a clean, a dirty and a floor flow and runs
//! them in turn (`dead_rounds` windows each), so that the machine's drift
//! lands on all three; the paced dead-peer row does the same below
//! saturation.
//!
//! Memory rows run in child processes (this binary re-executed with
//! `--child`), so that heap freed by earlier rows cannot hide growth.
//!
//! Layout: this file parses the arguments and runs the rows in the table's
//! order; `report` holds the table and number formats, `harness` what every
//! row builds on, `flow` the closed-loop packet flow; one module per row
//! group: `baseline` (UDP, raw h2, TCP), `packets`, `latency`, `stream`,
//! `dead_peer`, `memory`. `metrics` is the tests' strict metric reader.

mod baseline;
mod dead_peer;
mod flow;
mod harness;
mod latency;
mod memory;
#[path = "../../tests/common/metrics.rs"]
mod metrics;
mod packets;
mod report;
mod stream;

use report::{Baselines, Row};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Runtime workers: the machine this was written for has 2 cores.
const WORKERS: usize = 2;

#[derive(Clone)]
struct Cfg {
    quick: bool,
    filters: Vec<String>,
    warm: Duration,
    dur: Duration,
    dead_dur: Duration,
    /// The clean and the dirty flow of the dead-peer row take turns, one
    /// window each per round, so that a change in the machine's load (it is
    /// shared) or in where the runtime put the tasks lands on both sides
    /// alike rather than on whichever ran second.
    dead_rounds: u32,
    /// Rounds and window per flow of the paced dead-peer row.
    paced_rounds: u32,
    paced_window: Duration,
    /// Calls per round of the dead-write row.
    write_loop: usize,
    lat_packets: u64,
    mem_n: usize,
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
                warm: Duration::from_millis(100),
                dur: Duration::from_millis(250),
                dead_dur: Duration::from_millis(500),
                dead_rounds: 2,
                paced_rounds: 1,
                paced_window: Duration::from_millis(250),
                write_loop: 100_000,
                lat_packets: 300,
                mem_n: 200,
            }
        } else {
            Cfg {
                quick,
                filters,
                warm: Duration::from_millis(500),
                dur: Duration::from_secs(3),
                dead_dur: Duration::from_secs(12),
                dead_rounds: 24,
                paced_rounds: 4,
                paced_window: Duration::from_secs(1),
                write_loop: 2_000_000,
                lat_packets: 5000,
                mem_n: 1000,
            }
        }
    }

    /// Whether the row `id` runs: a filter selects every row whose id
    /// contains it (`latency` runs the latency row and its UDP baseline,
    /// `dead-peer` both dead-peer rows, `1400` every 1400 B row).
    fn wants(&self, id: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| id.contains(f.as_str()))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let kind = args.get(i + 1).cloned().unwrap_or_default();
        let n = args.get(i + 2).and_then(|s| s.parse().ok()).unwrap_or(1000);
        memory::child_main(&kind, n);
        return;
    }
    let cfg = Cfg::from_args(&args);
    println!("{}", report::machine());
    let started = Instant::now();
    let table = runtime().block_on(run(&cfg));
    println!("{table}");
    println!(
        "Total time {:.1} s ({} mode).",
        started.elapsed().as_secs_f64(),
        if cfg.quick { "quick" } else { "full" }
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

async fn run(cfg: &Cfg) -> String {
    let mut rows: Vec<Row> = Vec::new();
    let mut base = Baselines::default();
    let report = |rows: &mut Vec<Row>, name: &'static str, r: Res<Row>| match r {
        Ok(row) => {
            eprintln!("done: {name}");
            rows.push(row)
        }
        Err(e) => {
            eprintln!("failed: {name}: {e}");
            rows.push(Row {
                name,
                result: format!("failed: {e}"),
                drops: "-".into(),
                vs: "-".into(),
                notes: String::new(),
            })
        }
    };

    // Memory first and in child processes, before this process's heap holds
    // anything.
    let mut mem_rows = Vec::new();
    if cfg.wants("mem-peers") {
        report(
            &mut mem_rows,
            "memory: idle peer connection",
            memory::mem_peers_row(cfg),
        );
    }
    if cfg.wants("mem-streams") {
        report(
            &mut mem_rows,
            "memory: open stream",
            memory::mem_streams_row(cfg),
        );
    }

    // Baselines.
    let mut base_rows = Vec::new();
    if cfg.wants("udp") {
        let r = baseline::udp_row(cfg).await.map(|(row, best)| {
            base.udp = Some(best);
            row
        });
        report(&mut base_rows, "baseline: UDP 1400 B", r);
    }
    if cfg.wants("udp-latency") {
        let r = latency::udp_row(cfg).await.map(|(row, lat)| {
            base.udp_lat = Some(lat);
            row
        });
        report(&mut base_rows, "baseline: UDP latency", r);
    }
    if cfg.wants("h2") {
        let r = baseline::h2_row(cfg).await.map(|(row, rate)| {
            base.h2 = Some(rate);
            row
        });
        report(&mut base_rows, "baseline: raw h2", r);
    }
    if cfg.wants("tcp") {
        let r = baseline::tcp_row(cfg).await.map(|(row, rates)| {
            base.tcp = Some(rates);
            row
        });
        report(&mut base_rows, "baseline: TCP", r);
    }

    // The transport.
    if cfg.wants("packets-64") {
        let r = packets::packets_row(cfg, &base, "packets 64 B, 1→1", 64, 1).await;
        report(&mut rows, "packets 64 B", r);
    }
    if cfg.wants("packets-1400") {
        let r = packets::packets_row(cfg, &base, "packets 1400 B, 1→1", 1400, 1).await;
        report(&mut rows, "packets 1400 B", r);
    }
    if cfg.wants("packets-1400-open") {
        let r = packets::open_loop_row(cfg, &base).await;
        report(&mut rows, "packets 1400 B open loop", r);
    }
    if cfg.wants("fanout") {
        let r = packets::packets_row(cfg, &base, "packets 1400 B, 1→10", 1400, 10).await;
        report(&mut rows, "packets 1400 B 1→10", r);
    }
    if cfg.wants("latency") {
        let r = latency::packet_row(cfg, &base).await;
        report(&mut rows, "latency", r);
    }
    if cfg.wants("stream") {
        let r = stream::stream_row(cfg, &base).await;
        report(&mut rows, "stream", r);
    }
    if cfg.wants("dead-peer") {
        let r = dead_peer::dead_peer_row(cfg).await;
        report(&mut rows, "dead peer", r);
    }
    if cfg.wants("dead-peer-paced") {
        let r = dead_peer::dead_peer_paced_row(cfg).await;
        report(&mut rows, "dead peer, paced", r);
    }
    if cfg.wants("dead-write") {
        let r = dead_peer::dead_write_row(cfg).await;
        report(&mut rows, "dead write", r);
    }

    rows.extend(mem_rows);
    rows.extend(base_rows);
    let mut out = String::new();
    out.push_str("| row | result | dropped | vs baseline | notes |\n|---|---|---|---|---|\n");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            r.name, r.result, r.drops, r.vs, r.notes
        );
    }
    out
}
