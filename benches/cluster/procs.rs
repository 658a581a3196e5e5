//! Members as separate processes of the release `gossiphttp` binary, as
//! ckit's numbers were taken: spawning, reading what each logs (joins and
//! deaths at `info`, timestamped on arrival here), and its HTTP endpoints.

use crate::cli_proc::{self, CliProc};
use crate::Res;
use std::collections::HashSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A membership change a member logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    Joined(String),
    Dead(String),
    Left(String),
}

/// A running child; killed (SIGKILL) and reaped on drop.
pub struct Proc {
    pub process: CliProc,
    /// Its member name (empty for a `cluster` process).
    pub name: String,
    pub addr: String,
    /// Membership changes from its log, with the instant each line arrived.
    pub seen: Arc<Mutex<Vec<(Instant, Seen)>>>,
}

impl Proc {
    /// Spawns `gossiphttp ARGS` and starts reading its output; the address
    /// is filled in by [`Proc::ready`].
    pub fn spawn(args: &[&str]) -> Res<Proc> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let process = CliProc::spawn_with_stderr(args, &[("RUST_LOG", "info")], move |line| {
            if let Some(change) = parse_log(&line) {
                sink.lock().unwrap().push((Instant::now(), change));
            }
        })?;
        Ok(Proc {
            process,
            name: String::new(),
            addr: String::new(),
            seen,
        })
    }

    /// `gossiphttp node` on a kernel-chosen port, joining `join` if given.
    pub fn node(name: &str, join: Option<&str>, extra: &[&str]) -> Res<Proc> {
        let mut args = vec![
            "node",
            "--name",
            name,
            "--listen",
            "127.0.0.1:0",
            "--accept-http1",
        ];
        if let Some(join) = join {
            args.extend(["--join", join]);
        }
        args.extend_from_slice(extra);
        let mut proc_ = Proc::spawn(&args)?;
        proc_.name = name.to_string();
        Ok(proc_)
    }

    /// Waits for the first stdout line and takes the address after
    /// `listening on ` (a node's) from it; returns the line.
    pub fn ready(&mut self, within: Duration) -> Res<String> {
        let line = self.process.next_line(within)?;
        if let Some(addr) = cli_proc::address_after(&line, "listening on ") {
            self.addr = addr;
        }
        Ok(line)
    }

    pub fn pid(&self) -> String {
        self.process.pid().to_string()
    }

    /// When it had logged `want` distinct other members as joined.
    pub fn joined_all(&self, want: usize) -> Option<Instant> {
        let seen = self.seen.lock().unwrap();
        let mut names = HashSet::new();
        for (at, change) in seen.iter() {
            if let Seen::Joined(name) = change {
                if *name == self.name {
                    continue;
                }
                names.insert(name.as_str());
                if names.len() == want {
                    return Some(*at);
                }
            }
        }
        None
    }

    /// When it first logged `change`.
    pub fn first(&self, change: &Seen) -> Option<Instant> {
        let seen = self.seen.lock().unwrap();
        seen.iter().find(|(_, c)| c == change).map(|(at, _)| *at)
    }

    /// `GET path` over HTTP/1.1 (nodes run with `--accept-http1`); the body.
    pub fn get(&self, path: &str) -> Res<String> {
        Ok(cli_proc::http_get(&self.addr, path)?)
    }

    /// Sends SIGINT (what Ctrl-C sends).
    pub fn interrupt(&self) -> Res<()> {
        let status = Command::new("kill").args(["-INT", &self.pid()]).status()?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill -INT {} failed", self.pid()).into())
        }
    }
}

/// `member joined member=NAME`, `member dead member=NAME`, `member left
/// member=NAME` from a node's log line (no colours: stderr is a pipe).
fn parse_log(line: &str) -> Option<Seen> {
    let name = || {
        line.split_once("member=").map(|(_, rest)| {
            rest.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string()
        })
    };
    if line.contains("member joined") {
        Some(Seen::Joined(name()?))
    } else if line.contains("member dead") {
        Some(Seen::Dead(name()?))
    } else if line.contains("member left") {
        Some(Seen::Left(name()?))
    } else {
        None
    }
}

/// The states in a node's `/api/v1/members`: (name, state) per row.
pub fn member_states(proc_: &Proc) -> Res<Vec<(String, String)>> {
    let body = proc_.get("/api/v1/members")?;
    let json: serde_json::Value = serde_json::from_str(&body)?;
    let rows = json["members"].as_array().ok_or("no members array")?;
    Ok(rows
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or_default().to_string(),
                m["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect())
}

/// Starts a seed and `n - 1` members joining it; every member's address
/// known. Returns the members and when the seed was spawned.
pub fn start_cluster(n: usize) -> Res<(Vec<Proc>, Instant, Duration)> {
    let t0 = Instant::now();
    let mut seed = Proc::node("p-1", None, &[])?;
    seed.ready(Duration::from_secs(20))?;
    let seed_addr = seed.addr.clone();
    let mut procs = vec![seed];
    for i in 1..n {
        procs.push(Proc::node(&format!("p-{}", i + 1), Some(&seed_addr), &[])?);
    }
    let spawned = t0.elapsed();
    for p in procs.iter_mut().skip(1) {
        p.ready(Duration::from_secs(30))?;
    }
    Ok((procs, t0, spawned))
}

/// Waits until every member has logged `n - 1` joins; each member's time
/// from `t0`, `None` for those that had not within `timeout`.
pub fn wait_joined(
    procs: &[Proc],
    n: usize,
    t0: Instant,
    timeout: Duration,
) -> Vec<Option<Duration>> {
    let deadline = Instant::now() + timeout;
    loop {
        let times: Vec<Option<Duration>> = procs
            .iter()
            .map(|p| p.joined_all(n - 1).map(|at| at.duration_since(t0)))
            .collect();
        if times.iter().all(Option::is_some) || Instant::now() > deadline {
            return times;
        }
        thread::sleep(Duration::from_millis(10));
    }
}
