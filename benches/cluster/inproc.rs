//! Members as `cluster::Node`s in this process, on one 2-worker tokio
//! runtime: starting a cluster, waiting for it to converge, stopping it.

use crate::{knob, Res};
use gossiphttp::cluster::{MemberState, MemberView, Node, NodeOptions, SharedClient};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A cluster of nodes in this process; node 0 is the seed every other
/// joined through.
pub struct Cluster {
    pub nodes: Vec<Node>,
    /// When the seed was started: what convergence is timed from.
    pub t0: Instant,
    /// How long starting every node took (binding excluded).
    pub started_in: Duration,
    /// The connections every member sends over (see [`process_client`]).
    pub client: Option<SharedClient>,
}

/// memberlist's LAN defaults (`NodeOptions::new`), sending over the
/// process's `client` as the `cluster` command's members do (or, without
/// one, each over a pool of its own with the budget [`peer_connections`]).
pub fn lan_options(name: String, n: usize, client: Option<&SharedClient>) -> NodeOptions {
    let mut options = NodeOptions::new(name);
    match client {
        Some(client) => options = options.sharing(client),
        None => options.transport.max_peer_connections = peer_connections(n),
    }
    // For experiments: another packet budget (memberlist's UDPBufferSize).
    if let Some(bytes) = knob("CLUSTER_BENCH_PACKET_BUDGET") {
        options.membership.udp_buffer_size = bytes;
    }
    // For experiments: another limit than `SharedClient`'s 4 per member.
    if let Some(streams) = knob("CLUSTER_BENCH_STREAMS_PER_CONNECTION") {
        options.transport.max_concurrent_streams_per_connection = streams;
    }
    if let Some(on) = knob::<u8>("CLUSTER_BENCH_COMPRESS") {
        options.membership.enable_compression = on == 1;
    }
    // For experiments: probing (600000: none in a run) and catch-ups.
    if let Some(ms) = knob("CLUSTER_BENCH_PROBE_MS") {
        options.membership.probe_interval = Duration::from_millis(ms);
    }
    if let Some(ms) = knob("CLUSTER_BENCH_GOSSIP_MS") {
        options.membership.gossip_interval = Duration::from_millis(ms);
    }
    if let Some(n) = knob("CLUSTER_BENCH_CATCH_UPS") {
        options.membership.catch_up_push_pulls = n;
    }
    if let Some(ms) = knob("CLUSTER_BENCH_FRESH_NEWS_MS") {
        options.membership.fresh_news_gossip = Duration::from_millis(ms);
    }
    options
}

/// Each member's connection budget when it has a pool of its own:
/// `CLUSTER_BENCH_PEER_CONNECTIONS` if set (to compare budgets above and
/// below the number of peers), else what the `cluster` command gave each
/// member before they shared one client.
pub fn peer_connections(n: usize) -> usize {
    knob("CLUSTER_BENCH_PEER_CONNECTIONS").unwrap_or((8_000 / n.max(1)).clamp(8, 256))
}

/// Whether members share [`process_client`] (unless
/// `CLUSTER_BENCH_OWN_CLIENTS=1`).
pub fn shares_client() -> bool {
    knob::<u8>("CLUSTER_BENCH_OWN_CLIENTS") != Some(1)
}

/// How the members were connected, for a row's notes.
pub fn connections_note(shared: bool, n: usize) -> String {
    if shared {
        "every member sending over one client (a connection per peer for the process)".into()
    } else {
        format!(
            "{} pooled connections per member (CLUSTER_BENCH_OWN_CLIENTS)",
            peer_connections(n)
        )
    }
}

/// The one client `n` members of this process send over (a connection per
/// peer for the whole process, as in the `cluster` command), or `None`
/// with `CLUSTER_BENCH_OWN_CLIENTS=1`: each member then pools connections
/// of its own, as it did before members shared a client.
pub fn process_client(n: usize) -> Res<Option<SharedClient>> {
    if !shares_client() {
        return Ok(None);
    }
    let transport = NodeOptions::new("").transport;
    Ok(Some(SharedClient::new(n, &transport)?))
}

/// Binds `n` listeners on 127.0.0.1 (ports chosen by the kernel).
pub async fn bind(n: usize) -> Res<Vec<TcpListener>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(TcpListener::bind("127.0.0.1:0").await?);
    }
    Ok(out)
}

/// Starts `n` members (names `m-1`..), every one but the seed joining
/// through the seed; `tweak` may change each member's options (it gets the
/// index and every member's address).
pub async fn start(n: usize, tweak: impl Fn(usize, &[String], &mut NodeOptions)) -> Res<Cluster> {
    let listeners = bind(n).await?;
    let addrs: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.to_string()))
        .collect::<Result<_, _>>()?;
    let client = process_client(n)?;
    let t0 = Instant::now();
    let mut nodes = Vec::with_capacity(n);
    for (i, listener) in listeners.into_iter().enumerate() {
        let mut options = lan_options(format!("m-{}", i + 1), n, client.as_ref());
        if i > 0 {
            options.join = vec![addrs[0].clone()];
        }
        tweak(i, &addrs, &mut options);
        nodes.push(Node::start(options, listener).await?);
    }
    Ok(Cluster {
        nodes,
        t0,
        started_in: t0.elapsed(),
        client,
    })
}

/// When each member first saw `want` members alive (itself included), as
/// time since `t0`; `None` for a member that did not within `timeout`.
pub async fn first_seen_all(
    nodes: &[Node],
    want: usize,
    t0: Instant,
    timeout: Duration,
) -> Vec<Option<Duration>> {
    progress(nodes, want, t0, timeout)
        .await
        .into_iter()
        .map(|p| p.all)
        .collect()
}

/// The fractions of the cluster [`Progress::marks`] records.
pub const MARKS: [f64; 3] = [0.5, 0.9, 0.99];

/// How one member's view filled up.
#[derive(Clone, Copy, Default)]
pub struct Progress {
    /// When it first saw each fraction of [`MARKS`] of the members alive.
    pub marks: [Option<Duration>; 3],
    /// When it first saw all of them alive.
    pub all: Option<Duration>,
    /// When it first listed all of them as members, alive or suspect
    /// (memberlist's `Members()` and ckit's peers: not dead, not left).
    pub listed: Option<Duration>,
    /// How many members it saw suspect, dead or left at least once while
    /// it waited: none of them failed, so each is a false suspicion.
    pub accused: usize,
}

/// [`first_seen_all`] with the times each member reached [`MARKS`] too:
/// where the time to converge goes.
pub async fn progress(
    nodes: &[Node],
    want: usize,
    t0: Instant,
    timeout: Duration,
) -> Vec<Progress> {
    let waits = nodes.iter().map(|node| {
        let view = node.watch_members();
        async move {
            let mut p = Progress::default();
            let mut accused = std::collections::HashSet::new();
            let at = wait_view(view, timeout, |v| {
                // One walk per table: the observers share the members'
                // runtime, so what they spend is taken from the cluster.
                let (mut n, mut suspect) = (0, 0);
                for m in v {
                    match m.state {
                        MemberState::Alive => n += 1,
                        MemberState::Suspect => suspect += 1,
                        _ => {}
                    }
                    if m.state != MemberState::Alive && !accused.contains(&m.name) {
                        accused.insert(m.name.clone());
                    }
                }
                if p.listed.is_none() && n + suspect == want {
                    p.listed = Some(t0.elapsed());
                }
                for (mark, fraction) in p.marks.iter_mut().zip(MARKS) {
                    if mark.is_none() && n as f64 >= fraction * want as f64 {
                        *mark = Some(t0.elapsed());
                    }
                }
                n == want
            })
            .await;
            p.all = at.map(|at| at.duration_since(t0));
            p.accused = accused.len();
            p
        }
    });
    futures_util::future::join_all(waits).await
}

/// Rows not alive over every member's table: (suspect, dead or left).
pub fn not_alive(nodes: &[Node]) -> (usize, usize) {
    let mut suspect = 0;
    let mut dead = 0;
    for node in nodes {
        for m in node.members() {
            match m.state {
                MemberState::Alive => {}
                MemberState::Suspect => suspect += 1,
                _ => dead += 1,
            }
        }
    }
    (suspect, dead)
}

/// The median of the members' times to reach each mark (members that never
/// did count as the slowest).
pub fn median_marks(progress: &[Progress]) -> String {
    let mut out = Vec::new();
    for (i, fraction) in MARKS.iter().enumerate() {
        let mut v: Vec<Duration> = progress
            .iter()
            .map(|p| p.marks[i].unwrap_or(Duration::MAX))
            .collect();
        v.sort();
        let median = v[v.len() / 2];
        out.push(format!(
            "{:.0}% by {}",
            fraction * 100.0,
            if median == Duration::MAX {
                "never".into()
            } else {
                crate::report::secs(median)
            }
        ));
    }
    out.join(", ")
}

/// Waits until `ready` holds for the member's table; the instant it first
/// did, or `None` after `timeout`.
pub async fn wait_view(
    mut view: watch::Receiver<Arc<Vec<MemberView>>>,
    timeout: Duration,
    mut ready: impl FnMut(&[MemberView]) -> bool,
) -> Option<Instant> {
    tokio::time::timeout(timeout, async {
        view.wait_for(|v| ready(v)).await.ok()?;
        Some(Instant::now())
    })
    .await
    .ok()
    .flatten()
}

pub fn alive(view: &[MemberView]) -> usize {
    view.iter()
        .filter(|m| m.state == MemberState::Alive)
        .count()
}

/// The state `name` has in `view`, if it has a row.
pub fn state_of(view: &[MemberView], name: &str) -> Option<MemberState> {
    view.iter().find(|m| m.name == name).map(|m| m.state)
}

/// Stops every node without leaving (fast; the next run binds new ports).
pub async fn kill_all(nodes: Vec<Node>) {
    futures_util::future::join_all(nodes.into_iter().map(Node::kill)).await;
}

/// The member times as a summary: the slowest, and the time by which 95%
/// of members saw everyone.
pub fn slowest(times: &[Option<Duration>]) -> Result<(Duration, Duration), usize> {
    let missing = times.iter().filter(|t| t.is_none()).count();
    if missing > 0 {
        return Err(missing);
    }
    let mut v: Vec<Duration> = times.iter().flatten().copied().collect();
    v.sort();
    let p95 = v[(v.len() * 95).div_ceil(100).saturating_sub(1)];
    Ok((*v.last().unwrap_or(&Duration::ZERO), p95))
}

/// This process's CPU time (user + system) so far.
pub fn process_cpu(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the name.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<u64>().ok())
        .sum();
    Duration::from_secs_f64(ticks as f64 / clock_ticks())
}

/// Waits (up to 10 s) until the machine is quiet: under a tenth of its
/// CPU busy over a quarter of a second. The members of a row's last run
/// wind down after it ends (tasks dropped, connections closed, a GB of
/// heap returned), and a run timed during that starts on a busy machine.
/// Blocks the calling thread (from async code: `spawn_blocking`).
pub fn settle() {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = machine_cpu();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        let now = machine_cpu();
        let (busy, total) = (now.0 - last.0, now.1 - last.1);
        last = now;
        if total > 0 && busy * 10 < total {
            return;
        }
    }
}

/// The machine's busy and total CPU ticks so far (`/proc/stat`'s `cpu`
/// line: idle and iowait are not busy).
fn machine_cpu() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    let total: u64 = ticks.iter().sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux this runs on.
fn clock_ticks() -> f64 {
    100.0
}

/// A process's resident memory in bytes (`VmRSS`).
pub fn rss(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Open file descriptors of a process.
pub fn open_files(pid: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}
