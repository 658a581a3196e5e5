//! A converged cluster at rest: CPU, memory and gossip bytes per member.

use crate::converge;
use crate::inproc;
use crate::metrics::metric_in;
use crate::procs::{self, Proc};
use crate::report::{secs, Row};
use crate::{Cfg, Res};
use gossiphttp::cluster::Node;
use std::time::{Duration, Instant};

const TX_BYTES: &str = "cluster_transport_tx_bytes_total";
const TX_PACKETS: &str = "cluster_transport_tx_packets_total";
const STREAM_TX_BYTES: &str = "cluster_transport_stream_tx_bytes_total";
const TX_LOST: [&str; 2] = [
    "cluster_transport_tx_packets_dropped_total",
    "cluster_transport_tx_packets_failed_total",
];

/// Sums of the transport counters that carry gossip, over members.
#[derive(Default, Clone, Copy)]
pub struct Sent {
    pub bytes: f64,
    pub packets: f64,
    pub stream_bytes: f64,
    /// Packets dropped from a full send queue or failed to send.
    pub lost: f64,
}

impl Sent {
    fn add(&mut self, text: &str) {
        self.bytes += metric_in(text, TX_BYTES);
        self.packets += metric_in(text, TX_PACKETS);
        self.stream_bytes += metric_in(text, STREAM_TX_BYTES);
        self.lost += TX_LOST.iter().map(|m| metric_in(text, m)).sum::<f64>();
    }

    pub fn since(self, before: Sent) -> Sent {
        Sent {
            bytes: self.bytes - before.bytes,
            packets: self.packets - before.packets,
            stream_bytes: self.stream_bytes - before.stream_bytes,
            lost: self.lost - before.lost,
        }
    }
}

pub fn sent_in_process(nodes: &[Node]) -> Sent {
    let mut sent = Sent::default();
    for node in nodes {
        sent.add(&node.metrics_text());
    }
    sent
}

/// What the rest rows print: per member, over `window`.
fn describe(cpu: Duration, window: Duration, n: usize, sent: Sent) -> String {
    let w = window.as_secs_f64();
    let per = |x: f64| x / w / n as f64;
    format!(
        "CPU {:.3}% of a core per member; gossip {:.0} B/s per member in {:.1} packets/s (+{:.0} B/s push-pull over streams)",
        cpu.as_secs_f64() / w / n as f64 * 100.0,
        per(sent.bytes),
        per(sent.packets),
        per(sent.stream_bytes),
    )
}

/// `n` members in this process: converge, settle, then measure a window;
/// then the in-process kill row on the same cluster.
pub async fn in_process_rows(cfg: &Cfg, n: usize) -> Vec<Row> {
    let me = std::process::id().to_string();
    let rss0 = inproc::rss(&me);
    let mut cluster = match inproc::start(n, |_, _, _| {}).await {
        Ok(c) => c,
        Err(e) => return vec![Row::failed(format!("at rest, {n} in one process"), e)],
    };
    let times =
        inproc::first_seen_all(&cluster.nodes, n, cluster.t0, Duration::from_secs(60)).await;
    let converged = inproc::slowest(&times);
    tokio::time::sleep(cfg.settle).await;
    let cpu0 = inproc::process_cpu(&me);
    let sent0 = sent_in_process(&cluster.nodes);
    let w0 = Instant::now();
    tokio::time::sleep(cfg.rest_window).await;
    let window = w0.elapsed();
    let cpu = inproc::process_cpu(&me).saturating_sub(cpu0);
    let sent = sent_in_process(&cluster.nodes).since(sent0);
    let rss = inproc::rss(&me).saturating_sub(rss0);
    let all_alive = cluster
        .nodes
        .iter()
        .all(|node| inproc::alive(&node.members()) == n);

    let mut row = Row::new(format!("at rest, {n} in one process"));
    row.result = format!(
        "{}; RSS {:.0} KiB per member",
        describe(cpu, window, n, sent),
        rss as f64 / 1024.0 / n as f64
    );
    row.target = "CPU ≤ 0.1% of a core per member".into();
    row.ckit = "0.09% per member (today's foca cluster: 0.3%)".into();
    row.notes = format!(
        "window {} after {} settled (converged in {}); CPU is this process's (user + system, /proc/self/stat) ÷ {n}, the bench's own idle included; RSS growth of this process from before the first member ÷ {n}; bytes from each node's transport counters ({TX_BYTES}); every member still saw all alive at the end: {all_alive}; LAN defaults, {}",
        secs(window),
        secs(cfg.settle),
        match converged {
            Ok((t, _)) => secs(t),
            Err(m) => format!("not: {m} short"),
        },
        inproc::connections_note(cluster.client.is_some(), n),
    );
    let kill = converge::kill_in_process(&mut cluster, cfg.kills).await;
    inproc::kill_all(cluster.nodes).await;
    vec![row, kill]
}

/// `n` separate `gossiphttp node` processes at rest: CPU and RSS of each
/// process, gossip bytes from each one's `/metrics`.
pub fn processes_row(cfg: &Cfg, n: usize) -> Row {
    let name = format!("at rest, {n} processes");
    match processes(cfg, n) {
        Ok(row) => row,
        Err(e) => Row::failed(name, e),
    }
}

fn processes(cfg: &Cfg, n: usize) -> Res<Row> {
    let (procs, t0, _) = procs::start_cluster(n)?;
    let times = procs::wait_joined(&procs, n, t0, Duration::from_secs(60));
    let converged = inproc::slowest(&times);
    std::thread::sleep(cfg.settle);
    let cpu_of =
        |procs: &[Proc]| -> Duration { procs.iter().map(|p| inproc::process_cpu(&p.pid())).sum() };
    let sent_of = |procs: &[Proc]| -> Res<Sent> {
        let mut sent = Sent::default();
        for p in procs {
            sent.add(&p.get("/metrics")?);
        }
        Ok(sent)
    };
    // The counters are read outside the CPU window: reading them costs
    // each member an HTTP request.
    let sent0 = sent_of(&procs)?;
    let cpu0 = cpu_of(&procs);
    let w0 = Instant::now();
    std::thread::sleep(cfg.rest_window);
    let cpu = cpu_of(&procs).saturating_sub(cpu0);
    let window = w0.elapsed();
    let sent = sent_of(&procs)?.since(sent0);
    let rss: u64 = procs.iter().map(|p| inproc::rss(&p.pid())).sum();
    let mut row = Row::new(format!("at rest, {n} processes"));
    row.result = format!(
        "{}; RSS {:.1} MiB per member (process)",
        describe(cpu, window, n, sent),
        rss as f64 / 1024.0 / 1024.0 / n as f64
    );
    row.target = "CPU ≤ 0.1% of a core per member".into();
    row.ckit = "0.09% per member".into();
    row.notes = format!(
        "window {} after {} settled (converged in {}); CPU summed over the {n} processes (/proc/PID/stat); the `/metrics` reads before and after fall outside the CPU window; LAN defaults",
        secs(window),
        secs(cfg.settle),
        match converged {
            Ok((t, _)) => secs(t),
            Err(m) => format!("not: {m} short"),
        },
    );
    Ok(row)
}
