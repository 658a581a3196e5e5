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

use bytes::Bytes;
use gossiphttp::{MetricsRegistry, Options, Server, StreamConn, Transport};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Runtime workers: the machine this was written for has 2 cores.
const WORKERS: usize = 2;
/// Packets written per receiver before the producer looks at the others.
const BURST: u64 = 32;
/// Writes between two `yield_now` of the producer.
const YIELD_EVERY: u64 = 64;
/// A consumer wakes a waiting producer every this many packets.
const NOTIFY_EVERY: u64 = 16;
/// Distinct payload buffers a producer cycles through (see `Producer`).
const PAYLOADS: usize = 4096;
/// Packets outstanding per receiver in the closed-loop transport rows:
/// the default `peer_queue_size`, so no packet can be dropped by design.
const WINDOW: u64 = 1000;
/// Datagrams outstanding in the closed-loop UDP baseline: what fits in the
/// default 208 KiB socket receive buffer (a 1400 B datagram takes ~2.3 KiB
/// of it on loopback).
const UDP_WINDOW: u64 = 64;
/// Concurrent requests on the one connection of the raw h2 baseline.
const H2_CONCURRENCY: usize = 32;
/// Stream write size.
const CHUNK: usize = 64 << 10;
/// How long a producer waits for any delivery before it counts what is
/// outstanding as lost (UDP loses datagrams) and goes on.
const STALL: Duration = Duration::from_millis(20);

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
        child_main(&kind, n);
        return;
    }
    let cfg = Cfg::from_args(&args);
    println!("{}", machine());
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

// ---------------------------------------------------------------- the table

struct Row {
    name: &'static str,
    result: String,
    drops: String,
    vs: String,
    notes: String,
}

#[derive(Default)]
struct Baselines {
    /// UDP 1400 B datagrams/s delivered (the better of closed and open loop).
    udp: Option<f64>,
    /// Raw hyper h2 requests/s.
    h2: Option<f64>,
    /// Raw TCP MB/s, one direction and both.
    tcp: Option<(f64, f64)>,
    udp_lat: Option<Lat>,
}

impl Baselines {
    fn vs_packets(&self, rate: f64) -> String {
        let udp = self
            .udp
            .map_or("-".to_string(), |b| format!("{:.2}", rate / b));
        let h2 = self
            .h2
            .map_or("-".to_string(), |b| format!("{:.2}", rate / b));
        format!("{udp}× UDP, {h2}× h2 req/s")
    }
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
            mem_peers_row(cfg),
        );
    }
    if cfg.wants("mem-streams") {
        report(&mut mem_rows, "memory: open stream", mem_streams_row(cfg));
    }

    // Baselines.
    let mut base_rows = Vec::new();
    if cfg.wants("udp") {
        let r = udp_row(cfg).await.map(|(row, best)| {
            base.udp = Some(best);
            row
        });
        report(&mut base_rows, "baseline: UDP 1400 B", r);
    }
    if cfg.wants("udp-latency") {
        let r = udp_latency(cfg).await.map(|lat| {
            base.udp_lat = Some(lat);
            Row {
                name: "baseline: UDP latency at 1000 pkt/s",
                result: lat.show(),
                drops: "-".into(),
                vs: "-".into(),
                notes: format!("{} 64 B datagrams, same pacing and clock", lat.n),
            }
        });
        report(&mut base_rows, "baseline: UDP latency", r);
    }
    if cfg.wants("h2") {
        let r = h2_baseline(cfg).await.map(|rate| {
            base.h2 = Some(rate);
            Row {
                name: "baseline: raw h2",
                result: format!("{} req/s", group(rate)),
                drops: "-".into(),
                vs: "-".into(),
                notes: format!(
                    "hyper alone: POST, empty body, empty handler; {H2_CONCURRENCY} requests in flight on one h2c connection"
                ),
            }
        });
        report(&mut base_rows, "baseline: raw h2", r);
    }
    if cfg.wants("tcp") {
        let r = tcp_baseline(cfg).await.map(|(one, ab, ba)| {
            base.tcp = Some((one, ab + ba));
            Row {
                name: "baseline: TCP 64 KiB writes",
                result: format!(
                    "{one:.0} MB/s one way; {ab:.0} + {ba:.0} = {:.0} MB/s both ways",
                    ab + ba
                ),
                drops: "-".into(),
                vs: "-".into(),
                notes: "tokio TcpStream, write_all 64 KiB chunks, 64 KiB reads".into(),
            }
        });
        report(&mut base_rows, "baseline: TCP", r);
    }

    // The transport.
    if cfg.wants("packets-64") {
        let r = packets_row(cfg, &base, "packets 64 B, 1→1", 64, 1).await;
        report(&mut rows, "packets 64 B", r);
    }
    if cfg.wants("packets-1400") {
        let r = packets_row(cfg, &base, "packets 1400 B, 1→1", 1400, 1).await;
        report(&mut rows, "packets 1400 B", r);
    }
    if cfg.wants("packets-1400-open") {
        let r = open_loop_row(cfg, &base).await;
        report(&mut rows, "packets 1400 B open loop", r);
    }
    if cfg.wants("fanout") {
        let r = packets_row(cfg, &base, "packets 1400 B, 1→10", 1400, 10).await;
        report(&mut rows, "packets 1400 B 1→10", r);
    }
    if cfg.wants("latency") {
        let r = packet_latency(cfg).await.map(|lat| Row {
            name: "latency at 1000 pkt/s",
            result: lat.show(),
            drops: "-".into(),
            vs: base.udp_lat.map_or("-".into(), |u| {
                format!(
                    "{:.1}× UDP p50, {:.1}× UDP p99",
                    lat.p50 / u.p50,
                    lat.p99 / u.p99
                )
            }),
            notes: format!(
                "{} packets of 64 B, write_to paced by a 1 ms tokio interval, measured on receipt",
                lat.n
            ),
        });
        report(&mut rows, "latency", r);
    }
    if cfg.wants("stream") {
        let r = stream_row(cfg, &base).await;
        report(&mut rows, "stream", r);
    }
    if cfg.wants("dead-peer") {
        let r = dead_peer_row(cfg).await;
        report(&mut rows, "dead peer", r);
    }
    if cfg.wants("dead-peer-paced") {
        let r = dead_peer_paced_row(cfg).await;
        report(&mut rows, "dead peer, paced", r);
    }
    if cfg.wants("dead-write") {
        let r = dead_write_row(cfg).await;
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

// ---------------------------------------------------------------- helpers

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "Machine: nproc {nproc}, CPU \"{model}\", {:.1} GiB RAM, Linux {}; tokio multi-thread runtime with {WORKERS} workers.\n",
        mem_kb as f64 / (1 << 20) as f64,
        kernel.trim()
    )
}

/// This process's resident set size in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

/// A series' value from the metrics text (`name value` lines).
fn metric(registry: &MetricsRegistry, series: &str) -> u64 {
    registry
        .encode_text()
        .lines()
        .find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0) as u64
}

/// 1234567 → "1,234,567".
fn group(x: f64) -> String {
    let s = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mb(bytes_per_s: f64) -> f64 {
    bytes_per_s / 1e6
}

/// The rate of `count()` over `dur`, after `warm`.
async fn window_rate(count: impl Fn() -> u64, warm: Duration, dur: Duration) -> f64 {
    sleep(warm).await;
    let (c0, t0) = (count(), Instant::now());
    sleep(dur).await;
    let (c1, dt) = (count(), t0.elapsed());
    (c1 - c0) as f64 / dt.as_secs_f64()
}

async fn listen() -> Res<TcpListener> {
    Ok(TcpListener::bind("127.0.0.1:0").await?)
}

/// A transport serving on a fresh loopback port.
async fn served(opts: Options) -> Res<(Transport, MetricsRegistry, Server, String)> {
    let (t, reg) = Transport::new(opts)?;
    let server = t.serve(listen().await?)?;
    let addr = server.local_addr().to_string();
    Ok((t, reg, server, addr))
}

/// Shuts clients down first (their connections close), then servers.
async fn close(transports: &[&Transport], servers: Vec<Server>) {
    for t in transports {
        let _ = timeout(Duration::from_secs(5), t.shutdown()).await;
    }
    for s in servers {
        let _ = timeout(Duration::from_secs(6), s.shutdown()).await;
    }
}

/// Counts packets taken from a transport, waking the producer now and then.
fn consume(t: &Transport, notify: Arc<Notify>) -> (Arc<AtomicU64>, JoinHandle<()>) {
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    let mut packets = t.packets();
    let task = tokio::spawn(async move {
        let mut n = 0u64;
        while packets.recv().await.is_some() {
            n += 1;
            c.store(n, Relaxed);
            if n.is_multiple_of(NOTIFY_EVERY) {
                notify.notify_one();
            }
        }
        notify.notify_one();
    });
    (count, task)
}

struct Target {
    addr: String,
    received: Arc<AtomicU64>,
    sent: u64,
}

/// What a producer does after each write to a live receiver.
#[derive(Clone, Copy, PartialEq)]
enum Between {
    Nothing,
    /// One write to a dead peer (alternating between the flow's two).
    DeadWrite,
    /// What any write costs its caller before the transport is involved: a
    /// payload clone, dropped, and a clock read (the `Instant` `write_to`
    /// returns); no transport call. The floor under the dead-peer ratio: no
    /// transport can make a dead write cheaper than this.
    Floor,
}

struct Producer {
    transport: Transport,
    targets: Vec<Target>,
    between: Between,
    /// The dead peers for `Between::DeadWrite`.
    dead: Vec<String>,
    /// Distinct buffers written in turn. An application writes a fresh
    /// buffer per packet; one `Bytes` cloned for every write would instead
    /// have both cores hammer a single reference count, a contention no
    /// real sender has (and which doubles with the dead-peer row's writes).
    payloads: Vec<Bytes>,
    next: usize,
    window: u64,
    notify: Arc<Notify>,
    stop: Arc<AtomicBool>,
}

impl Producer {
    /// Writes until stopped, at most `window` outstanding per target;
    /// returns how often it stalled.
    async fn run(&mut self) -> u64 {
        let (mut since_yield, mut d, mut stalls) = (0u64, 0usize, 0u64);
        while !self.stop.load(Relaxed) {
            let mut wrote = false;
            for tg in self.targets.iter_mut() {
                let out = tg.sent.saturating_sub(tg.received.load(Relaxed));
                let n = self.window.saturating_sub(out).min(BURST);
                for _ in 0..n {
                    if self
                        .transport
                        .write_to(self.payloads[self.next].clone(), &tg.addr)
                        .is_err()
                    {
                        return stalls;
                    }
                    tg.sent += 1;
                    self.next = (self.next + 1) % self.payloads.len();
                    match self.between {
                        Between::Nothing => {}
                        Between::DeadWrite => {
                            let _ = self.transport.write_to(
                                self.payloads[self.next].clone(),
                                &self.dead[d % self.dead.len()],
                            );
                            self.next = (self.next + 1) % self.payloads.len();
                            d += 1;
                        }
                        Between::Floor => {
                            let payload = self.payloads[self.next].clone();
                            std::hint::black_box(Instant::now());
                            drop(std::hint::black_box(payload));
                            self.next = (self.next + 1) % self.payloads.len();
                        }
                    }
                }
                wrote |= n > 0;
                since_yield += n;
            }
            if !wrote {
                if timeout(STALL, self.notify.notified()).await.is_err() {
                    stalls += 1;
                    for tg in self.targets.iter_mut() {
                        tg.sent = tg.received.load(Relaxed);
                    }
                }
            } else if since_yield >= YIELD_EVERY {
                since_yield = 0;
                tokio::task::yield_now().await;
            }
        }
        stalls
    }
}

// ---------------------------------------------------------------- packets

struct FlowSpec {
    size: usize,
    receivers: usize,
    window: u64,
    between: Between,
    dur: Duration,
}

struct FlowOut {
    /// Packets/s taken by the live receivers' applications.
    rate: f64,
    sent: u64,
    received: u64,
    dropped: u64,
    failed: u64,
    stalls: u64,
}

/// `PAYLOADS` distinct buffers of `size` bytes (see `Producer`).
fn payload_pool(size: usize) -> Vec<Bytes> {
    (0..PAYLOADS)
        .map(|_| Bytes::from(vec![0xA5u8; size]))
        .collect()
}

/// When `wanted`, two dead peers: a listener that accepts TCP and never
/// reads or answers (kept by the returned task), and a closed port; when
/// not, none.
async fn dead_peers(wanted: bool) -> Res<(Vec<String>, Option<JoinHandle<()>>)> {
    if !wanted {
        return Ok((Vec::new(), None));
    }
    let l = listen().await?;
    let mut dead = vec![l.local_addr()?.to_string()];
    let blackhole = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    let closed = listen().await?;
    dead.push(closed.local_addr()?.to_string());
    drop(closed);
    Ok((dead, Some(blackhole)))
}

/// A packet flow set up and ready to run: live receivers, a sender, and
/// (when asked) the dead peers. It can run several measurement windows, so
/// that two flows can take turns (see [`dead_peer_row`]).
struct Flow {
    producer: Option<Producer>,
    receivers: Vec<(Transport, Server, Arc<AtomicU64>)>,
    consumers: Vec<JoinHandle<()>>,
    sender: Transport,
    sender_reg: MetricsRegistry,
    blackhole: Option<JoinHandle<()>>,
    stalls: u64,
}

impl Flow {
    async fn start(spec: &FlowSpec) -> Res<Flow> {
        let notify = Arc::new(Notify::new());
        let mut receivers = Vec::new();
        let mut targets = Vec::new();
        let mut consumers = Vec::new();
        for _ in 0..spec.receivers {
            let (t, _reg, server, addr) = served(Options::default()).await?;
            let (received, task) = consume(&t, notify.clone());
            consumers.push(task);
            targets.push(Target {
                addr,
                received: received.clone(),
                sent: 0,
            });
            receivers.push((t, server, received));
        }
        let (sender, sender_reg) = Transport::new(Options::default())?;

        // Dead peers: one that accepts TCP and never answers (nor reads), and
        // a closed port.
        let (dead, blackhole) = dead_peers(spec.between == Between::DeadWrite).await?;
        Ok(Flow {
            producer: Some(Producer {
                transport: sender.clone(),
                targets,
                between: spec.between,
                dead,
                payloads: payload_pool(spec.size),
                next: 0,
                window: spec.window,
                notify,
                stop: Arc::new(AtomicBool::new(false)),
            }),
            receivers,
            consumers,
            sender,
            sender_reg,
            blackhole,
            stalls: 0,
        })
    }

    /// Packets taken by the live receivers' applications so far.
    fn received(&self) -> u64 {
        self.receivers.iter().map(|r| r.2.load(Relaxed)).sum()
    }

    /// Runs the producer for `warm` + `dur`; returns the delivered rate in
    /// `dur` as (packets, seconds).
    async fn run(&mut self, warm: Duration, dur: Duration) -> Res<(u64, f64)> {
        let mut producer = self.producer.take().ok_or("flow already failed")?;
        let stop = producer.stop.clone();
        stop.store(false, Relaxed);
        let task = tokio::spawn(async move {
            let stalls = producer.run().await;
            (producer, stalls)
        });
        sleep(warm).await;
        let (c0, t0) = (self.received(), Instant::now());
        sleep(dur).await;
        let (c1, dt) = (self.received(), t0.elapsed());
        stop.store(true, Relaxed);
        let (producer, stalls) = task.await?;
        self.stalls += stalls;
        self.producer = Some(producer);
        Ok((c1 - c0, dt.as_secs_f64()))
    }

    async fn finish(mut self) -> Res<FlowOut> {
        let sent = self
            .producer
            .as_ref()
            .map_or(0, |p| p.targets.iter().map(|t| t.sent).sum());
        let dropped = metric(
            &self.sender_reg,
            "cluster_transport_tx_packets_dropped_total",
        );
        let failed = metric(
            &self.sender_reg,
            "cluster_transport_tx_packets_failed_total",
        );
        // Let what is in flight land before counting what arrived in all.
        sleep(Duration::from_millis(100)).await;
        let received = self.received();

        if let Some(b) = self.blackhole.take() {
            b.abort();
        }
        let (rts, servers): (Vec<Transport>, Vec<Server>) =
            self.receivers.drain(..).map(|(t, s, _)| (t, s)).unzip();
        let mut all: Vec<&Transport> = vec![&self.sender];
        all.extend(rts.iter());
        close(&all, servers).await;
        for c in self.consumers.drain(..) {
            c.abort();
        }
        Ok(FlowOut {
            rate: 0.0,
            sent,
            received,
            dropped,
            failed,
            stalls: self.stalls,
        })
    }
}

/// One flow, one window.
async fn packet_flow(cfg: &Cfg, spec: FlowSpec) -> Res<FlowOut> {
    let mut flow = Flow::start(&spec).await?;
    let (n, secs) = flow.run(cfg.warm, spec.dur).await?;
    let mut out = flow.finish().await?;
    out.rate = n as f64 / secs;
    Ok(out)
}

async fn packets_row(
    cfg: &Cfg,
    base: &Baselines,
    name: &'static str,
    size: usize,
    receivers: usize,
) -> Res<Row> {
    let out = packet_flow(
        cfg,
        FlowSpec {
            size,
            receivers,
            window: WINDOW,
            between: Between::Nothing,
            dur: cfg.dur,
        },
    )
    .await?;
    let mut result = format!("{} pkt/s", group(out.rate));
    if size >= 1000 {
        let _ = write!(result, ", {:.0} MB/s", mb(out.rate * size as f64));
    }
    let per = if receivers > 1 {
        format!(" (total over {receivers} receivers)")
    } else {
        String::new()
    };
    Ok(Row {
        name,
        result: result + &per,
        drops: format!("{} (failed {})", out.dropped, out.failed),
        vs: base.vs_packets(out.rate),
        notes: format!(
            "closed loop: ≤{WINDOW} outstanding per receiver (= default peer_queue_size), default Options; sent {}, received {}{}",
            group(out.sent as f64),
            group(out.received as f64),
            stall_note(out.stalls)
        ),
    })
}

fn stall_note(stalls: u64) -> String {
    if stalls == 0 {
        String::new()
    } else {
        format!("; producer stalled {stalls}× for {STALL:?}")
    }
}

async fn open_loop_row(cfg: &Cfg, base: &Baselines) -> Res<Row> {
    let out = packet_flow(
        cfg,
        FlowSpec {
            size: 1400,
            receivers: 1,
            window: u64::MAX,
            between: Between::Nothing,
            dur: cfg.dur,
        },
    )
    .await?;
    Ok(Row {
        name: "packets 1400 B, 1→1, open loop",
        result: format!(
            "{} pkt/s, {:.0} MB/s delivered",
            group(out.rate),
            mb(out.rate * 1400.0)
        ),
        drops: format!(
            "{} of {} ({:.0}%)",
            group(out.dropped as f64),
            group(out.sent as f64),
            100.0 * out.dropped as f64 / out.sent.max(1) as f64
        ),
        vs: base.vs_packets(out.rate),
        notes: format!(
            "no window: write_to as fast as the producer can (yield every {YIELD_EVERY}); default Options; received {}",
            group(out.received as f64)
        ),
    })
}

/// Values rounded and listed, each followed by `unit`.
fn joined(v: &[f64], unit: &str) -> String {
    v.iter()
        .map(|x| format!("{x:.0}{unit}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Warm-up before each later round of the dead-peer row: the flows are
/// already connected and flowing by then.
const DEAD_REWARM: Duration = Duration::from_millis(100);

/// The dead-peer row: a clean flow, a dirty one (a write to a dead peer
/// after every live packet) and a floor flow (the caller's share of a write,
/// without the transport, after every live packet) take turns, one window
/// each per round, the order rotating every round.
async fn dead_peer_row(cfg: &Cfg) -> Res<Row> {
    let spec = |between| FlowSpec {
        size: 1400,
        receivers: 1,
        window: WINDOW,
        between,
        dur: cfg.dead_dur,
    };
    let mut flows = [
        Flow::start(&spec(Between::Nothing)).await?,
        Flow::start(&spec(Between::DeadWrite)).await?,
        Flow::start(&spec(Between::Floor)).await?,
    ];
    let window = cfg.dead_dur / cfg.dead_rounds;
    // Packets and seconds per flow, and each round's rates.
    let mut totals = [(0u64, 0.0f64); 3];
    let (mut dirty_rounds, mut floor_rounds) = (Vec::new(), Vec::new());
    for round in 0..cfg.dead_rounds {
        let warm = if round == 0 { cfg.warm } else { DEAD_REWARM };
        let mut rates = [0.0; 3];
        for k in 0..3 {
            let i = (round as usize + k) % 3;
            let (n, secs) = flows[i].run(warm, window).await?;
            rates[i] = n as f64 / secs;
            totals[i] = (totals[i].0 + n, totals[i].1 + secs);
        }
        dirty_rounds.push(100.0 * rates[1] / rates[0]);
        floor_rounds.push(100.0 * rates[2] / rates[0]);
    }
    let [clean_rate, dirty_rate, floor_rate] = totals.map(|(n, secs)| n as f64 / secs);
    let [clean, dirty, floor] = flows;
    let clean = clean.finish().await?;
    let dirty = dirty.finish().await?;
    let floor = floor.finish().await?;
    Ok(Row {
        name: "dead peer in the set",
        result: format!(
            "{:.0}% ({} vs {} pkt/s to the live peer; median round {:.0}%); floor {:.0}% (median round {:.0}%)",
            100.0 * dirty_rate / clean_rate,
            group(dirty_rate),
            group(clean_rate),
            median(&dirty_rounds),
            100.0 * floor_rate / clean_rate,
            median(&floor_rounds),
        ),
        drops: format!(
            "{} (failed {})",
            group(dirty.dropped as f64),
            group(dirty.failed as f64)
        ),
        vs: format!(
            "ratio to the same run without dead peers; each packet to a dead peer cost the live flow {:.0} ns, the floor's stand-in {:.0} ns",
            // Wall time per live packet, minus the clean flow's: what one
            // write to a dead peer (or the floor's stand-in) takes from the
            // live pipeline on this machine.
            1e9 / dirty_rate - 1e9 / clean_rate,
            1e9 / floor_rate - 1e9 / clean_rate
        ),
        notes: format!(
            "1400 B, closed loop (the live flow at saturation, so the ratio is the share of the producer's time the dead writes take); after every packet to the live peer one goes to a dead one, alternating a listener that accepts and never reads or answers, and a closed port; default Options (packet_timeout 5 s). Floor: the same flow with each dead write replaced by what any write costs its caller before the transport is involved (a payload clone, dropped, and a clock read for the `Instant` write_to returns), no transport call: no transport can score above it. {} rounds of a {window:?} window per flow, in turn (dead: {}; floor: {}){}{}",
            cfg.dead_rounds,
            joined(&dirty_rounds, "%"),
            joined(&floor_rounds, "%"),
            stall_note(dirty.stalls),
            if clean.dropped + floor.dropped > 0 {
                format!("; clean and floor flows dropped {}", clean.dropped + floor.dropped)
            } else {
                String::new()
            },
        ),
    })
}

/// Live packets per second offered in the paced dead-peer row: a fifth of
/// what the transport delivers at saturation here, the load a busy gossip
/// cluster puts on one peer being far lower still.
const PACED_RATE: u64 = 200_000;

/// A paced flow of stamped 1400 B packets to one receiver, with (when
/// asked) a write to a dead peer after each.
struct PacedFlow {
    sender: Transport,
    receiver: Transport,
    server: Option<Server>,
    addr: String,
    dead: Vec<String>,
    blackhole: Option<JoinHandle<()>>,
    dead_payloads: Vec<Bytes>,
    base: Instant,
    samples: Arc<Mutex<Vec<u64>>>,
    received: Arc<AtomicU64>,
    consumer: JoinHandle<()>,
    sent: u64,
}

impl PacedFlow {
    async fn start(with_dead: bool, base: Instant) -> Res<PacedFlow> {
        let (receiver, _reg, server, addr) = served(Options::default()).await?;
        let (sender, _) = Transport::new(Options::default())?;
        let (dead, blackhole) = dead_peers(with_dead).await?;
        let samples = Arc::new(Mutex::new(Vec::new()));
        let received = Arc::new(AtomicU64::new(0));
        let (s, r) = (samples.clone(), received.clone());
        let mut packets = receiver.packets();
        let consumer = tokio::spawn(async move {
            while let Some(p) = packets.recv().await {
                if let Some(a) = age(base, &p.payload) {
                    s.lock().unwrap().push(a);
                }
                r.fetch_add(1, Relaxed);
            }
        });
        Ok(PacedFlow {
            sender,
            receiver,
            server: Some(server),
            addr,
            dead,
            blackhole,
            dead_payloads: payload_pool(1400),
            base,
            samples,
            received,
            consumer,
            sent: 0,
        })
    }

    /// Offers `PACED_RATE` for `warm` + `dur`, a burst every millisecond;
    /// returns what arrived in `dur` (packets/s) and its latencies.
    async fn run(&mut self, warm: Duration, dur: Duration) -> Res<(f64, Vec<u64>)> {
        let mut tick = ticker();
        let mut d = 0usize;
        let t0 = Instant::now();
        let mut window: Option<(u64, Instant)> = None;
        loop {
            tick.tick().await;
            match window {
                None if t0.elapsed() >= warm => {
                    self.samples.lock().unwrap().clear();
                    window = Some((self.received.load(Relaxed), Instant::now()));
                }
                Some((_, w0)) if w0.elapsed() >= dur => break,
                _ => {}
            }
            for _ in 0..PACED_RATE / 1000 {
                self.sender.write_to(stamp(self.base, 1400), &self.addr)?;
                self.sent += 1;
                if !self.dead.is_empty() {
                    let _ = self.sender.write_to(
                        self.dead_payloads[d % PAYLOADS].clone(),
                        &self.dead[d % self.dead.len()],
                    );
                    d += 1;
                }
            }
        }
        let (c0, w0) = window.expect("the window opened");
        let rate = (self.received.load(Relaxed) - c0) as f64 / w0.elapsed().as_secs_f64();
        // Let what is in flight land, so the window's latencies are whole.
        sleep(Duration::from_millis(50)).await;
        let lat = std::mem::take(&mut *self.samples.lock().unwrap());
        Ok((rate, lat))
    }

    /// Closes the flow; returns the live packets never delivered.
    async fn finish(mut self) -> u64 {
        sleep(Duration::from_millis(100)).await;
        let lost = self.sent.saturating_sub(self.received.load(Relaxed));
        if let Some(b) = self.blackhole.take() {
            b.abort();
        }
        close(
            &[&self.sender, &self.receiver],
            self.server.take().into_iter().collect(),
        )
        .await;
        self.consumer.abort();
        lost
    }
}

/// What one `write_to` to a dead peer costs its caller's thread, next to
/// the floor flow's stand-in (the caller's part of any write), in a tight
/// loop on one thread: the transport's share of a dead write without the
/// pipeline's noise.
async fn dead_write_row(cfg: &Cfg) -> Res<Row> {
    let (t, _) = Transport::new(Options::default())?;
    let (dead, blackhole) = dead_peers(true).await?;
    let payloads = payload_pool(1400);
    let n = cfg.write_loop;
    // Fill the dead peers' queues first: the steady state is a full queue.
    for i in 0..2 * Options::default().peer_queue_size {
        let _ = t.write_to(payloads[i % PAYLOADS].clone(), &dead[i % dead.len()]);
    }
    let (mut dead_ns, mut floor_ns) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let t0 = Instant::now();
        for i in 0..n {
            let _ = t.write_to(payloads[i % PAYLOADS].clone(), &dead[i % dead.len()]);
        }
        dead_ns.push(t0.elapsed().as_nanos() as f64 / n as f64);
        let t0 = Instant::now();
        for i in 0..n {
            let payload = payloads[i % PAYLOADS].clone();
            std::hint::black_box(Instant::now());
            drop(std::hint::black_box(payload));
        }
        floor_ns.push(t0.elapsed().as_nanos() as f64 / n as f64);
        // Let the runtime's other tasks (the dead peers' own) run.
        tokio::task::yield_now().await;
    }
    if let Some(b) = blackhole {
        b.abort();
    }
    close(&[&t], Vec::new()).await;
    let (d, f) = (median(&dead_ns), median(&floor_ns));
    Ok(Row {
        name: "write_to to a dead peer, one thread",
        result: format!(
            "{d:.0} ns per call; the caller's part alone {f:.0} ns; the transport's share {:.0} ns",
            d - f
        ),
        drops: "-".into(),
        vs: "the dead-peer row's floor flow does the caller's part".into(),
        notes: format!(
            "a tight loop on one runtime thread, {} calls per round alternating the two dead peers, queues full (each call drops the oldest); the caller's part: a payload clone, dropped, and a clock read; median of 5 rounds (dead: {} ns; caller's part: {} ns)",
            group(n as f64),
            joined(&dead_ns, ""),
            joined(&floor_ns, "")
        ),
    })
}

/// The dead-peer row below saturation: the same dead writes, with the live
/// flow paced at `PACED_RATE`, so what it shows is isolation (does the
/// live peer still get every packet, as fast), not CPU share.
async fn dead_peer_paced_row(cfg: &Cfg) -> Res<Row> {
    let base = Instant::now();
    let mut clean = PacedFlow::start(false, base).await?;
    let mut dirty = PacedFlow::start(true, base).await?;
    let (mut clean_rates, mut dirty_rates) = (Vec::new(), Vec::new());
    let (mut clean_lat, mut dirty_lat) = (Vec::new(), Vec::new());
    for round in 0..cfg.paced_rounds {
        let warm = if round == 0 { cfg.warm } else { DEAD_REWARM };
        let (cr, cl) = clean.run(warm, cfg.paced_window).await?;
        let (dr, dl) = dirty.run(warm, cfg.paced_window).await?;
        clean_rates.push(cr);
        dirty_rates.push(dr);
        clean_lat.extend(cl);
        dirty_lat.extend(dl);
    }
    let dropped = |f: &PacedFlow| {
        metric(
            f.sender.metrics(),
            "cluster_transport_tx_packets_dropped_total",
        )
    };
    let (clean_dropped, all_dropped) = (dropped(&clean), dropped(&dirty));
    let clean_lost = clean.finish().await;
    let dirty_lost = dirty.finish().await;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (clean_rate, dirty_rate) = (mean(&clean_rates), mean(&dirty_rates));
    let (cl, dl) = (Lat::from_nanos(clean_lat)?, Lat::from_nanos(dirty_lat)?);
    Ok(Row {
        name: "dead peer in the set, paced",
        result: format!(
            "{:.0}% ({} vs {} pkt/s delivered of {} offered); live p50 {:.0} vs {:.0} µs, p99 {:.0} vs {:.0} µs",
            100.0 * dirty_rate / clean_rate,
            group(dirty_rate),
            group(clean_rate),
            group(PACED_RATE as f64),
            dl.p50,
            cl.p50,
            dl.p99,
            cl.p99,
        ),
        drops: format!(
            "live: {} lost with dead peers, {} without ({} of them dropped from the full send queue); dead peers: {} dropped",
            group(dirty_lost as f64),
            group(clean_lost as f64),
            group(clean_dropped as f64),
            group(all_dropped.saturating_sub(dirty_lost) as f64)
        ),
        vs: "with dead peers vs without, same run".into(),
        notes: format!(
            "the dead-peer row's dead writes with the live flow paced at {} pkt/s (1400 B, stamped; a burst of {} every 1 ms tokio tick), below saturation: isolation, not CPU share; {} rounds of a {:?} window per flow, in turn",
            group(PACED_RATE as f64),
            PACED_RATE / 1000,
            cfg.paced_rounds,
            cfg.paced_window,
        ),
    })
}

// ---------------------------------------------------------------- latency

#[derive(Clone, Copy)]
struct Lat {
    n: usize,
    p50: f64,
    p99: f64,
    max: f64,
}

impl Lat {
    fn from_nanos(mut v: Vec<u64>) -> Res<Lat> {
        if v.is_empty() {
            return Err("no samples".into());
        }
        v.sort_unstable();
        let at =
            |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1] as f64 / 1e3;
        Ok(Lat {
            n: v.len(),
            p50: at(0.50),
            p99: at(0.99),
            max: *v.last().unwrap() as f64 / 1e3,
        })
    }

    fn show(&self) -> String {
        format!(
            "p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
            self.p50, self.p99, self.max
        )
    }
}

fn stamp(base: Instant, size: usize) -> Bytes {
    let mut v = vec![0u8; size];
    v[..8].copy_from_slice(&(base.elapsed().as_nanos() as u64).to_le_bytes());
    Bytes::from(v)
}

fn age(base: Instant, payload: &[u8]) -> Option<u64> {
    let sent = u64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
    Some((base.elapsed().as_nanos() as u64).saturating_sub(sent))
}

fn ticker() -> tokio::time::Interval {
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

async fn packet_latency(cfg: &Cfg) -> Res<Lat> {
    let (rx, _reg, server, addr) = served(Options::default()).await?;
    let (tx, _) = Transport::new(Options::default())?;
    let base = Instant::now();
    let samples = Arc::new(Mutex::new(Vec::with_capacity(
        cfg.lat_packets as usize + 200,
    )));
    let s = samples.clone();
    let mut packets = rx.packets();
    let consumer = tokio::spawn(async move {
        while let Some(p) = packets.recv().await {
            if let Some(a) = age(base, &p.payload) {
                s.lock().unwrap().push(a);
            }
        }
    });
    let mut tick = ticker();
    // Warm up: the connection and the peer's task exist before measuring.
    for _ in 0..100 {
        tick.tick().await;
        tx.write_to(stamp(base, 64), &addr)?;
    }
    sleep(Duration::from_millis(50)).await;
    samples.lock().unwrap().clear();
    for _ in 0..cfg.lat_packets {
        tick.tick().await;
        tx.write_to(stamp(base, 64), &addr)?;
    }
    sleep(Duration::from_millis(100)).await;
    let v = std::mem::take(&mut *samples.lock().unwrap());
    close(&[&tx, &rx], vec![server]).await;
    consumer.abort();
    Lat::from_nanos(v)
}

async fn udp_latency(cfg: &Cfg) -> Res<Lat> {
    let rx = UdpSocket::bind("127.0.0.1:0").await?;
    let tx = UdpSocket::bind("127.0.0.1:0").await?;
    tx.connect(rx.local_addr()?).await?;
    let base = Instant::now();
    let samples = Arc::new(Mutex::new(Vec::with_capacity(
        cfg.lat_packets as usize + 200,
    )));
    let s = samples.clone();
    let consumer = tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok(n) = rx.recv(&mut buf).await {
            if let Some(a) = age(base, &buf[..n]) {
                s.lock().unwrap().push(a);
            }
        }
    });
    let mut tick = ticker();
    for _ in 0..100 {
        tick.tick().await;
        tx.send(&stamp(base, 64)).await?;
    }
    sleep(Duration::from_millis(50)).await;
    samples.lock().unwrap().clear();
    for _ in 0..cfg.lat_packets {
        tick.tick().await;
        tx.send(&stamp(base, 64)).await?;
    }
    sleep(Duration::from_millis(100)).await;
    consumer.abort();
    let v = std::mem::take(&mut *samples.lock().unwrap());
    Lat::from_nanos(v)
}

// ---------------------------------------------------------------- UDP

struct UdpOut {
    rate: f64,
    sent: u64,
    received: u64,
}

async fn udp_flow(cfg: &Cfg, window: u64) -> Res<UdpOut> {
    let rx = UdpSocket::bind("127.0.0.1:0").await?;
    let tx = UdpSocket::bind("127.0.0.1:0").await?;
    tx.connect(rx.local_addr()?).await?;
    let notify = Arc::new(Notify::new());
    let received = Arc::new(AtomicU64::new(0));
    let (r, nt) = (received.clone(), notify.clone());
    let consumer = tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        let mut n = 0u64;
        while rx.recv(&mut buf).await.is_ok() {
            n += 1;
            r.store(n, Relaxed);
            if n.is_multiple_of(NOTIFY_EVERY) {
                nt.notify_one();
            }
        }
    });
    let stop = Arc::new(AtomicBool::new(false));
    let (st, r, nt) = (stop.clone(), received.clone(), notify.clone());
    let producer = tokio::spawn(async move {
        let payload = vec![0xA5u8; 1400];
        let (mut sent, mut since_yield) = (0u64, 0u64);
        while !st.load(Relaxed) {
            let out = sent.saturating_sub(r.load(Relaxed));
            let n = window.saturating_sub(out).min(BURST);
            if n == 0 {
                if timeout(STALL, nt.notified()).await.is_err() {
                    sent = r.load(Relaxed);
                }
                continue;
            }
            for _ in 0..n {
                if tx.send(&payload).await.is_err() {
                    return sent;
                }
                sent += 1;
            }
            since_yield += n;
            if since_yield >= YIELD_EVERY {
                since_yield = 0;
                tokio::task::yield_now().await;
            }
        }
        sent
    });
    let rate = window_rate(|| received.load(Relaxed), cfg.warm, cfg.dur).await;
    stop.store(true, Relaxed);
    let sent = producer.await?;
    sleep(Duration::from_millis(50)).await;
    consumer.abort();
    Ok(UdpOut {
        rate,
        sent,
        received: received.load(Relaxed),
    })
}

async fn udp_row(cfg: &Cfg) -> Res<(Row, f64)> {
    let closed = udp_flow(cfg, UDP_WINDOW).await?;
    let open = udp_flow(cfg, u64::MAX).await?;
    let best = closed.rate.max(open.rate);
    let lost = |o: &UdpOut| o.sent.saturating_sub(o.received);
    let row = Row {
        name: "baseline: UDP 1400 B",
        result: format!(
            "{} datagrams/s, {:.0} MB/s",
            group(best),
            mb(best * 1400.0)
        ),
        drops: format!(
            "closed loop {} lost, open loop {} of {} lost",
            group(lost(&closed) as f64),
            group(lost(&open) as f64),
            group(open.sent as f64)
        ),
        vs: "-".into(),
        notes: format!(
            "tokio UdpSocket, one sender task, one receiver task; the better of closed loop (≤{UDP_WINDOW} outstanding: {} /s) and open loop ({} /s)",
            group(closed.rate),
            group(open.rate)
        ),
    };
    Ok((row, best))
}

// ---------------------------------------------------------------- raw h2

async fn h2_baseline(cfg: &Cfg) -> Res<f64> {
    use http_body_util::Empty;
    use hyper::{Request, Response};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let listener = listen().await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(|_req: Request<hyper::body::Incoming>| async {
                        Ok::<_, std::convert::Infallible>(Response::new(Empty::<Bytes>::new()))
                    });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake::<_, Empty<Bytes>>(TokioIo::new(tcp))
        .await?;
    let driver = tokio::spawn(conn);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let uri = format!("http://{addr}/api/v1/ckit/transport/message");
    let mut loops = Vec::new();
    for _ in 0..H2_CONCURRENCY {
        let (mut s, done, stop, uri) = (sender.clone(), done.clone(), stop.clone(), uri.clone());
        loops.push(tokio::spawn(async move {
            while !stop.load(Relaxed) {
                let req = Request::post(uri.as_str())
                    .header("content-type", "application/x.ckit")
                    .body(Empty::<Bytes>::new())
                    .expect("a request");
                if s.ready().await.is_err() {
                    return;
                }
                match s.send_request(req).await {
                    Ok(resp) => {
                        drop(resp);
                        done.fetch_add(1, Relaxed);
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    let rate = window_rate(|| done.load(Relaxed), cfg.warm, cfg.dur).await;
    stop.store(true, Relaxed);
    for l in loops {
        let _ = l.await;
    }
    drop(sender);
    driver.abort();
    server.abort();
    Ok(rate)
}

// ---------------------------------------------------------------- streams

/// Writes 64 KiB chunks until `stop`, then ends its side.
fn writer<W>(mut w: W, stop: Arc<AtomicBool>) -> JoinHandle<()>
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let chunk = vec![0x5Au8; CHUNK];
        while !stop.load(Relaxed) {
            if w.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = w.shutdown().await;
    })
}

/// Reads until end of stream, counting bytes.
fn reader<R>(mut r: R) -> (Arc<AtomicU64>, JoinHandle<()>)
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK];
        let mut n = 0u64;
        while let Ok(k) = r.read(&mut buf).await {
            if k == 0 {
                break;
            }
            n += k as u64;
            c.store(n, Relaxed);
        }
    });
    (count, task)
}

/// One-way MB/s over the first pair of connected ends, then both ways at
/// once over the second (a→b and b→a MB/s).
async fn duplex_rates<A, B>(cfg: &Cfg, one_way: (A, B), two_way: (A, B)) -> Res<(f64, f64, f64)>
where
    A: AsyncRead + AsyncWrite + Send + 'static,
    B: AsyncRead + AsyncWrite + Send + 'static,
{
    let settle = Duration::from_secs(5);
    let (a, b) = one_way;
    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(Box::pin(a), stop.clone());
    let (count, r) = reader(Box::pin(b));
    let one = mb(window_rate(|| count.load(Relaxed), cfg.warm, cfg.dur).await);
    stop.store(true, Relaxed);
    let _ = timeout(settle, w).await;
    let _ = timeout(settle, r).await;

    let (a, b) = two_way;
    let (ar, aw) = tokio::io::split(a);
    let (br, bw) = tokio::io::split(b);
    let stop = Arc::new(AtomicBool::new(false));
    let wa = writer(aw, stop.clone());
    let wb = writer(bw, stop.clone());
    let (to_b, rb) = reader(br);
    let (to_a, ra) = reader(ar);
    sleep(cfg.warm).await;
    let (ab0, ba0, t0) = (to_b.load(Relaxed), to_a.load(Relaxed), Instant::now());
    sleep(cfg.dur).await;
    let (ab1, ba1, dt) = (to_b.load(Relaxed), to_a.load(Relaxed), t0.elapsed());
    stop.store(true, Relaxed);
    for t in [wa, wb, rb, ra] {
        let _ = timeout(settle, t).await;
    }
    let secs = dt.as_secs_f64();
    Ok((
        one,
        mb((ab1 - ab0) as f64 / secs),
        mb((ba1 - ba0) as f64 / secs),
    ))
}

async fn tcp_pair() -> Res<(TcpStream, TcpStream)> {
    let l = listen().await?;
    let (a, b) = tokio::join!(TcpStream::connect(l.local_addr()?), l.accept());
    let (a, (b, _)) = (a?, b?);
    a.set_nodelay(true)?;
    b.set_nodelay(true)?;
    Ok((a, b))
}

async fn tcp_baseline(cfg: &Cfg) -> Res<(f64, f64, f64)> {
    let one = tcp_pair().await?;
    let two = tcp_pair().await?;
    duplex_rates(cfg, one, two).await
}

async fn stream_pair(a: &Transport, b: &Transport, addr: &str) -> Res<(StreamConn, StreamConn)> {
    let mut streams = b.streams();
    let (dialed, accepted) = tokio::join!(a.dial(addr, Duration::from_secs(5)), streams.accept());
    Ok((dialed?, accepted.ok_or("no stream accepted")?))
}

async fn stream_row(cfg: &Cfg, base: &Baselines) -> Res<Row> {
    let (b, _reg, server, addr) = served(Options::default()).await?;
    let (a, _) = Transport::new(Options::default())?;
    let one = stream_pair(&a, &b, &addr).await?;
    let two = stream_pair(&a, &b, &addr).await?;
    let (one, ab, ba) = duplex_rates(cfg, one, two).await?;
    close(&[&a, &b], vec![server]).await;
    let vs = base.tcp.map_or("-".into(), |(t1, t2)| {
        format!(
            "{:.2}× TCP one way, {:.2}× TCP both ways",
            one / t1,
            (ab + ba) / t2
        )
    });
    Ok(Row {
        name: "stream 64 KiB writes",
        result: format!(
            "{one:.0} MB/s one way; {ab:.0} + {ba:.0} = {:.0} MB/s both ways",
            ab + ba
        ),
        drops: "-".into(),
        vs,
        notes: "dial, write_all 64 KiB chunks, read 64 KiB on the other side; both ways on a second stream of the same connection; default Options (1 MiB stream / 4 MiB connection windows)".into(),
    })
}

// ---------------------------------------------------------------- memory

/// Runs a memory measurement in a child process; returns its numbers.
fn child(kind: &str, n: usize) -> Res<Vec<u64>> {
    let exe = std::env::current_exe()?;
    let out = std::process::Command::new(exe)
        .args(["--child", kind, &n.to_string()])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .ok_or_else(|| {
            format!(
                "child {kind} gave no result ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )
        })?;
    Ok(line
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect())
}

fn kib(bytes: f64) -> String {
    format!("{:.1} KiB", bytes / 1024.0)
}

fn mem_peers_row(cfg: &Cfg) -> Res<Row> {
    let v = child("mem-peers", cfg.mem_n)?;
    let [rss0, rss1, rss2, fds, n] = v[..] else {
        return Err(format!("unexpected child output {v:?}").into());
    };
    let per_conn = rss2.saturating_sub(rss1) as f64 / n as f64;
    let per_transport = rss1.saturating_sub(rss0) as f64 / n as f64;
    Ok(Row {
        name: "memory: idle peer connection",
        result: format!("{} per peer connection", kib(per_conn)),
        drops: "-".into(),
        vs: "-".into(),
        notes: format!(
            "child process: {n} client Transports (default Options) each `send` one 64 B packet to one served Transport, then idle; VmRSS growth from before the first packet to after all were delivered, ÷ {n}. Counts both ends in this process: client h2 connection + its driver task + the peer's send task, and the server's h2 connection task ({fds} fds opened). Kernel socket buffers are not in RSS. Creating the {n} idle Transports themselves cost {} each (not counted)",
            kib(per_transport)
        ),
    })
}

fn mem_streams_row(cfg: &Cfg) -> Res<Row> {
    let v = child("mem-streams", cfg.mem_n)?;
    let [rss1, rss2, n] = v[..] else {
        return Err(format!("unexpected child output {v:?}").into());
    };
    let per = rss2.saturating_sub(rss1) as f64 / n as f64;
    Ok(Row {
        name: "memory: open stream",
        result: format!("{} per open stream", kib(per)),
        drops: "-".into(),
        vs: "-".into(),
        notes: format!(
            "child process: {n} streams dialed over one connection and accepted, both StreamConn ends held open, idle (nothing written); VmRSS growth ÷ {n}, both ends counted. The server's max_streams and max_concurrent_streams_per_connection raised to {} so that all fit on one connection",
            n + 16
        ),
    })
}

fn child_main(kind: &str, n: usize) {
    let rt = runtime();
    let result = rt.block_on(async {
        match kind {
            "mem-peers" => mem_peers(n).await,
            "mem-streams" => mem_streams(n).await,
            other => Err(format!("unknown child {other:?}").into()),
        }
    });
    match result {
        Ok(v) => {
            let s: Vec<String> = v.iter().map(u64::to_string).collect();
            println!("RESULT {}", s.join(" "));
        }
        Err(e) => {
            eprintln!("child {kind} failed: {e}");
            std::process::exit(1);
        }
    }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) -> Res<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

fn settle() -> tokio::time::Sleep {
    sleep(Duration::from_millis(500))
}

/// [rss before the client transports, rss before connecting, rss after,
/// fds opened, n]
async fn mem_peers(n: usize) -> Res<Vec<u64>> {
    let (server_t, _reg, _server, addr) = served(Options::default()).await?;
    let (received, _consumer) = consume(&server_t, Arc::new(Notify::new()));
    let payload = Bytes::from(vec![0u8; 64]);
    // One end-to-end exchange first, so lazily built state exists.
    let (warm, _) = Transport::new(Options::default())?;
    warm.send(payload.clone(), &addr).await?;
    settle().await;
    let rss0 = rss_bytes();
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        clients.push(Transport::new(Options::default())?.0);
    }
    settle().await;
    let (rss1, fds1) = (rss_bytes(), open_fds());
    let mut set = tokio::task::JoinSet::new();
    for c in &clients {
        let (c, a, p) = (c.clone(), addr.clone(), payload.clone());
        set.spawn(async move { c.send(p, &a).await });
        if set.len() >= 64 {
            set.join_next().await.ok_or("join")???;
        }
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    wait_for("packets", || received.load(Relaxed) > n as u64).await?;
    settle().await;
    let (rss2, fds2) = (rss_bytes(), open_fds());
    Ok(vec![rss0, rss1, rss2, fds2.saturating_sub(fds1), n as u64])
}

/// [rss before, rss after, n]
async fn mem_streams(n: usize) -> Res<Vec<u64>> {
    let mut o = Options::default();
    o.max_streams = n + 16;
    o.max_concurrent_streams_per_connection = (n + 16) as u32;
    let (b, _reg, _server, addr) = served(o).await?;
    let (a, _) = Transport::new(Options::default())?;
    let accepted = Arc::new(AtomicU64::new(0));
    let held = Arc::new(Mutex::new(Vec::with_capacity(n + 1)));
    let (acc, h) = (accepted.clone(), held.clone());
    let mut streams = b.streams();
    tokio::spawn(async move {
        while let Some(s) = streams.accept().await {
            let mut v = h.lock().unwrap();
            v.push(s);
            acc.store(v.len() as u64, Relaxed);
        }
    });
    // One stream first, so the connection and lazily built state exist.
    let mut dialed = Vec::with_capacity(n + 1);
    dialed.push(a.dial(&addr, Duration::from_secs(10)).await?);
    wait_for("the first stream", || accepted.load(Relaxed) >= 1).await?;
    settle().await;
    let rss1 = rss_bytes();
    for _ in 0..n {
        dialed.push(a.dial(&addr, Duration::from_secs(10)).await?);
    }
    wait_for("streams", || accepted.load(Relaxed) > n as u64).await?;
    settle().await;
    let rss2 = rss_bytes();
    drop(dialed);
    Ok(vec![rss1, rss2, n as u64])
}
