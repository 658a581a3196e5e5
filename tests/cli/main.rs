//! The `gossiphttp` binary, run as real processes on 127.0.0.1.
//!
//! Every child process is killed when its guard drops, and every wait is
//! bounded: a hung binary fails the test instead of hanging it. This file is
//! the harness; `basics` has the commands' own behaviour, `access` the
//! server extensions (HTTP/1.1, CORS, token, mutual TLS) as flags.

mod access;
mod basics;
#[path = "../common/cli.rs"]
mod cli_proc;
#[cfg(feature = "cluster")]
mod cluster_scale;
#[path = "../common/metrics.rs"]
mod metrics;
#[cfg(feature = "cluster")]
mod node_flags;

use cli_proc::{collect, spawn_piped as try_spawn_piped, CliProc};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The longest any single step may take before the test fails.
const STEP: Duration = Duration::from_secs(20);

/// [`cli_proc::spawn_piped`], a failure to start failing the test.
fn spawn_piped(args: &[&str], envs: &[(&str, &str)]) -> Child {
    try_spawn_piped(args, envs).unwrap_or_else(|e| panic!("{e}"))
}

/// A running `gossiphttp listen` (or `node`), killed on drop; the process
/// (`child`, `stderr`) through `Deref`.
struct Listener {
    process: CliProc,
    addr: String,
}

impl std::ops::Deref for Listener {
    type Target = CliProc;

    fn deref(&self) -> &CliProc {
        &self.process
    }
}

impl std::ops::DerefMut for Listener {
    fn deref_mut(&mut self) -> &mut CliProc {
        &mut self.process
    }
}

impl Listener {
    fn start(extra: &[&str]) -> Listener {
        Listener::start_env(extra, &[])
    }

    /// `listen` with `extra` flags and `envs` added to its environment.
    fn start_env(extra: &[&str], envs: &[(&str, &str)]) -> Listener {
        let args = [&["listen", "--addr", "127.0.0.1:0"], extra].concat();
        Listener::spawn(&args, envs, "listening on ")
    }

    /// Runs the binary with `args` and reads the address it serves on from
    /// its first line: the word after `marker`.
    fn spawn(args: &[&str], envs: &[(&str, &str)], marker: &str) -> Listener {
        let mut process = CliProc::spawn(args, envs).unwrap_or_else(|e| panic!("{e}"));
        let addr = process
            .address(marker, STEP)
            .unwrap_or_else(|e| panic!("gossiphttp {args:?}: {e}"));
        Listener { process, addr }
    }

    fn port(&self) -> u16 {
        self.addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {:?}", self.addr))
    }

    /// The next stdout line, within `STEP`.
    fn next_line(&mut self) -> String {
        self.process
            .next_line(STEP)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The next JSON event line.
    fn next_event(&mut self) -> serde_json::Value {
        let line = self.next_line();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"))
    }

    /// The next `n` events whose `event` field is `kind`, skipping others.
    fn events(&mut self, kind: &str, n: usize) -> Vec<serde_json::Value> {
        let mut found = Vec::new();
        while found.len() < n {
            let event = self.next_event();
            if event["event"] == kind {
                found.push(event);
            }
        }
        found
    }
}

/// A finished command: status, stdout, stderr.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n--- stdout\n{}--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Kills a child on drop unless it was reaped.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs the binary to completion, failing the test if it takes over `limit`.
fn run_within(limit: Duration, args: &[&str]) -> Run {
    run_env(limit, &[], args)
}

/// [`run_within`] with `envs` added to the binary's environment.
fn run_env(limit: Duration, envs: &[(&str, &str)], args: &[&str]) -> Run {
    let mut child = spawn_piped(args, envs);
    let stdout = collect(child.stdout.take().expect("piped stdout"));
    let stderr = collect(child.stderr.take().expect("piped stderr"));
    let mut guard = ChildGuard(Some(child));
    let started = Instant::now();
    let status = loop {
        let child = guard.0.as_mut().expect("child present");
        if let Some(status) = child.try_wait().expect("try_wait") {
            guard.0 = None;
            break status;
        }
        if started.elapsed() > limit {
            panic!(
                "gossiphttp {args:?} still running after {limit:?}; stderr so far: {}",
                stderr.lock().unwrap()
            );
        }
        thread::sleep(Duration::from_millis(10));
    };
    // The pipes close with the process; give the reader threads a moment.
    let wait_eof = Instant::now();
    let text = |s: &Arc<Mutex<String>>| s.lock().unwrap().clone();
    while Arc::strong_count(&stdout) > 1 || Arc::strong_count(&stderr) > 1 {
        if wait_eof.elapsed() > Duration::from_secs(5) {
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    Run {
        status,
        stdout: text(&stdout),
        stderr: text(&stderr),
    }
}

fn run(args: &[&str]) -> Run {
    run_within(STEP, args)
}

/// `GET /metrics` over plain HTTP/1.1; returns the whole response.
fn get_metrics(port: u16) -> String {
    cli_proc::http_get_raw(&format!("127.0.0.1:{port}"), "/metrics", STEP)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "gossiphttp-cli-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a self-signed certificate for localhost and 127.0.0.1.
fn self_signed(dir: &Path) -> (String, String) {
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("generate certificate");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key_pair.serialize_pem()).expect("write key");
    (
        cert_path.to_string_lossy().into_owned(),
        key_path.to_string_lossy().into_owned(),
    )
}

/// Runs `send --to <listener> --hex <hex>` with `flags` (and `--count` when
/// `count` is not the default 1), checks that it succeeds and that `count`
/// packets of `hex` arrive, and returns the run for further checks.
fn send_delivers(listener: &mut Listener, hex: &str, count: usize, flags: &[&str]) -> Run {
    let count_text = count.to_string();
    let mut args = vec!["send", "--to", &listener.addr, "--hex", hex];
    if count != 1 {
        args.extend(["--count", &count_text]);
    }
    args.extend_from_slice(flags);
    let out = run(&args);
    assert!(out.status.success(), "{out:?}");
    assert_packets(listener, count, hex);
    out
}

fn assert_packets(listener: &mut Listener, n: usize, hex: &str) {
    for p in listener.events("packet", n) {
        assert_eq!(p["hex"], hex, "{p}");
        assert_eq!(p["len"], hex.len() / 2, "{p}");
        let from = p["from"].as_str().expect("from is a string");
        assert!(from.starts_with("127.0.0.1:"), "{p}");
    }
}

/// Runs `command --to <to> --hex 00 --timeout 2` with `flags`, and checks
/// that it fails, within 10 s, with an `error: ` line on stderr.
fn fails_with_error(command: &str, to: &str, flags: &[&str]) -> Run {
    let args = [
        &[command, "--to", to, "--hex", "00", "--timeout", "2"][..],
        flags,
    ]
    .concat();
    let out = run_within(Duration::from_secs(10), &args);
    assert!(!out.status.success(), "{out:?}");
    assert!(out.stderr.starts_with("error: "), "{out:?}");
    out
}

/// A port no one listens on (it was free a moment ago).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("local addr").port();
    drop(l);
    port
}
