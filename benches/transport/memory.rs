//! The memory rows, each measured in a child process (this binary run
//! again with `--child KIND N`), so that heap freed by earlier rows cannot
//! hide growth.

use crate::harness::{consume, open_fds, rss_bytes, served};
use crate::report::{kib, Row};
use crate::{runtime, Cfg, Res};
use bytes::Bytes;
use gossiphttp::{Options, Transport};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::time::sleep;

/// Runs a memory measurement in a child process; returns its `N` numbers.
fn child<const N: usize>(kind: &str, n: usize) -> Res<[u64; N]> {
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
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    v.as_slice()
        .try_into()
        .map_err(|_| format!("unexpected child output {v:?}").into())
}

pub fn mem_peers_row(cfg: &Cfg) -> Res<Row> {
    let [rss0, rss1, rss2, fds, n] = child("mem-peers", cfg.mem_n)?;
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

pub fn mem_streams_row(cfg: &Cfg) -> Res<Row> {
    let [rss1, rss2, n] = child("mem-streams", cfg.mem_n)?;
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

pub fn child_main(kind: &str, n: usize) {
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

pub fn settle() -> tokio::time::Sleep {
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
