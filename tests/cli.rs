//! The `gossiphttp` binary, run as real processes on 127.0.0.1.
//!
//! Every child process is killed when its guard drops, and every wait is
//! bounded: a hung binary fails the test instead of hanging it.

mod common;

use common::metrics::metric_in;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_gossiphttp");
/// The longest any single step may take before the test fails.
const STEP: Duration = Duration::from_secs(20);

/// Drains a child's pipe into a shared string on a thread.
fn collect(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    text
}

/// A running `gossiphttp listen`, killed on drop.
struct Listener {
    child: Child,
    addr: String,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Listener {
    fn start(extra: &[&str]) -> Listener {
        let mut child = Command::new(BIN)
            .args(["listen", "--addr", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gossiphttp listen");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = collect(child.stderr.take().expect("piped stderr"));
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut listener = Listener {
            child,
            addr: String::new(),
            lines,
            stderr,
        };
        let first = listener.next_line();
        listener.addr = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .trim()
            .to_string();
        listener
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
        match self.lines.recv_timeout(STEP) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!(
                "listen printed nothing within {STEP:?}; stderr: {}",
                self.stderr.lock().unwrap()
            ),
            Err(RecvTimeoutError::Disconnected) => panic!(
                "listen closed stdout (exit {:?}); stderr: {}",
                self.child.try_wait(),
                self.stderr.lock().unwrap()
            ),
        }
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

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gossiphttp");
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
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    tcp.set_read_timeout(Some(STEP)).expect("set timeout");
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write request");
    let mut response = Vec::new();
    tcp.read_to_end(&mut response).expect("read response");
    String::from_utf8_lossy(&response).into_owned()
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

fn assert_packets(listener: &mut Listener, n: usize, hex: &str) {
    for p in listener.events("packet", n) {
        assert_eq!(p["hex"], hex, "{p}");
        assert_eq!(p["len"], hex.len() / 2, "{p}");
        let from = p["from"].as_str().expect("from is a string");
        assert!(from.starts_with("127.0.0.1:"), "{p}");
    }
}

#[test]
fn listen_and_send() {
    let mut listener = Listener::start(&[]);
    let out = run(&[
        "send",
        "--to",
        &listener.addr,
        "--hex",
        "68656c6c6f",
        "--count",
        "3",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    assert_packets(&mut listener, 3, "68656c6c6f");
}

#[test]
fn uppercase_and_empty_hex_are_accepted() {
    let mut listener = Listener::start(&[]);
    let out = run(&["send", "--to", &listener.addr, "--hex", "DEADbeef"]);
    assert!(out.status.success(), "{out:?}");
    assert_packets(&mut listener, 1, "deadbeef");
    // An empty packet is a valid frame (cc 00 00) and is delivered.
    let out = run(&["send", "--to", &listener.addr, "--hex", ""]);
    assert!(out.status.success(), "{out:?}");
    assert_packets(&mut listener, 1, "");
}

#[test]
fn stream_echo() {
    let mut listener = Listener::start(&["--echo-streams"]);
    let hex = "000102fffe68656c6c6f";
    let out = run(&["stream", "--to", &listener.addr, "--hex", hex]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout.trim(), hex, "{out:?}");

    let open = listener.next_event();
    assert_eq!(open["event"], "stream_open", "{open}");
    let mut data = String::new();
    let close = loop {
        let e = listener.next_event();
        match e["event"].as_str() {
            Some("stream_data") => data.push_str(e["hex"].as_str().expect("hex")),
            Some("stream_close") => break e,
            _ => panic!("unexpected event {e}"),
        }
    };
    assert_eq!(data, hex);
    assert_eq!(close["bytes"], hex.len() / 2, "{close}");
    assert!(close.get("error").is_none(), "{close}");
}

#[test]
fn stream_echo_large() {
    // Near the largest single argument Linux accepts (128 KiB).
    let payload: Vec<u8> = (0..60_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let hex: String = payload.iter().map(|b| format!("{b:02x}")).collect();
    let mut listener = Listener::start(&["--echo-streams"]);
    let out = run(&["stream", "--to", &listener.addr, "--hex", &hex]);
    assert!(out.status.success(), "{}\n{}", out.status, out.stderr);
    assert!(
        out.stdout.trim() == hex,
        "echo differs; stderr: {}",
        out.stderr
    );
    let close = listener.events("stream_close", 1);
    assert_eq!(close[0]["bytes"], payload.len(), "{}", close[0]);
}

#[test]
fn stream_without_echo_prints_nothing_back() {
    let mut listener = Listener::start(&[]);
    let out = run(&["stream", "--to", &listener.addr, "--hex", "6869"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, "\n", "{out:?}");
    let data = listener.events("stream_data", 1);
    assert_eq!(data[0]["hex"], "6869");
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("local addr").port();
    drop(l);
    port
}

#[test]
fn send_to_closed_port_fails_promptly() {
    let to = format!("127.0.0.1:{}", closed_port());
    let started = Instant::now();
    let out = run_within(
        Duration::from_secs(10),
        &["send", "--to", &to, "--hex", "00", "--timeout", "2"],
    );
    assert!(!out.status.success(), "{out:?}");
    assert!(out.stderr.starts_with("error: "), "{out:?}");
    assert!(out.stderr.contains(&to), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn stream_to_closed_port_fails() {
    let to = format!("127.0.0.1:{}", closed_port());
    let out = run_within(
        Duration::from_secs(10),
        &["stream", "--to", &to, "--hex", "00", "--timeout", "2"],
    );
    assert!(!out.status.success(), "{out:?}");
    assert!(out.stderr.starts_with("error: "), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
}

#[test]
fn usage_errors() {
    for (bad, why) in [("zz", "invalid character"), ("abc", "odd number")] {
        let out = run(&["send", "--to", "127.0.0.1:1", "--hex", bad]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(
            out.stderr.contains("error: --hex is not valid hex: "),
            "{out:?}"
        );
        assert!(out.stderr.contains(why), "{out:?}");
    }

    let out = run(&["send", "--hex", "00"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("--to"), "{out:?}");

    let out = run(&["send", "--to", "127.0.0.1:1", "--hex", "00", "--tls"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        out.stderr.contains("--ca") && out.stderr.contains("--insecure"),
        "{out:?}"
    );

    let out = run(&["send", "--to", "127.0.0.1:1", "--hex", "00", "--count", "0"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    let out = run(&[
        "send",
        "--to",
        "127.0.0.1:1",
        "--hex",
        "00",
        "--timeout",
        "-1",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    let out = run(&["listen", "--addr", "127.0.0.1:0", "--tls-cert", "c.pem"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("--tls-key"), "{out:?}");

    let out = run(&[
        "listen",
        "--addr",
        "127.0.0.1:0",
        "--tls-cert",
        "/nonexistent/c.pem",
        "--tls-key",
        "/nonexistent/k.pem",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("/nonexistent/c.pem"), "{out:?}");

    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn metrics_count_received_packets() {
    let mut listener = Listener::start(&[]);
    let out = run(&[
        "send",
        "--to",
        &listener.addr,
        "--hex",
        "68656c6c6f",
        "--count",
        "3",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_packets(&mut listener, 3, "68656c6c6f");

    let response = get_metrics(listener.port());
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("cluster_transport_rx_packets_total 3"),
        "{response}"
    );
    assert_eq!(
        metric_in(&response, "cluster_transport_rx_packets_total"),
        3.0,
        "{response}"
    );
    assert_eq!(
        metric_in(&response, "cluster_transport_rx_bytes_total"),
        15.0,
        "{response}"
    );
}

#[test]
fn tls_send_and_stream() {
    let dir = TempDir::new();
    let (cert, key) = self_signed(dir.path());
    let mut listener = Listener::start(&["--tls-cert", &cert, "--tls-key", &key, "--echo-streams"]);

    let out = run(&[
        "send",
        "--to",
        &listener.addr,
        "--hex",
        "746c73",
        "--tls",
        "--insecure",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_packets(&mut listener, 1, "746c73");

    // Verified against the certificate itself, by its IP SAN.
    let out = run(&[
        "send",
        "--to",
        &listener.addr,
        "--hex",
        "636121",
        "--tls",
        "--ca",
        &cert,
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_packets(&mut listener, 1, "636121");

    let out = run(&[
        "stream",
        "--to",
        &listener.addr,
        "--hex",
        "6563686f",
        "--tls",
        "--ca",
        &cert,
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout.trim(), "6563686f", "{out:?}");

    // Without TLS the client speaks h2c to a TLS server: a clear failure.
    let out = run_within(
        Duration::from_secs(10),
        &[
            "send",
            "--to",
            &listener.addr,
            "--hex",
            "00",
            "--timeout",
            "2",
        ],
    );
    assert!(!out.status.success(), "{out:?}");
    assert!(out.stderr.starts_with("error: "), "{out:?}");
}

#[test]
fn tls_with_untrusted_certificate_fails() {
    let dir = TempDir::new();
    let (cert, key) = self_signed(dir.path());
    let other = TempDir::new();
    let (other_cert, _) = self_signed(other.path());
    let listener = Listener::start(&["--tls-cert", &cert, "--tls-key", &key]);
    let out = run_within(
        Duration::from_secs(10),
        &[
            "send",
            "--to",
            &listener.addr,
            "--hex",
            "00",
            "--tls",
            "--ca",
            &other_cert,
            "--timeout",
            "2",
        ],
    );
    assert!(!out.status.success(), "{out:?}");
    assert!(out.stderr.starts_with("error: "), "{out:?}");
}

#[cfg(unix)]
#[test]
fn listen_exits_cleanly_on_sigterm() {
    let mut listener = Listener::start(&[]);
    let out = run(&["send", "--to", &listener.addr, "--hex", "01"]);
    assert!(out.status.success(), "{out:?}");
    assert_packets(&mut listener, 1, "01");

    let pid = listener.child.id().to_string();
    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(kill.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = listener.child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            started.elapsed() < STEP,
            "listen still running {STEP:?} after SIGTERM"
        );
        thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status}");
}

/// `gossiphttp cluster --nodes 3` converges and serves the members JSON.
#[test]
fn local_cluster_converges_and_serves_members() {
    use std::io::{Read, Write};
    let base = {
        // Three free consecutive ports are likely right above a free one.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gossiphttp"))
        .args(["cluster", "--nodes", "3", "--base-port", &base.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut last = String::new();
    let ok = loop {
        if std::time::Instant::now() > deadline {
            break false;
        }
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", base)) {
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let _ = s
                .write_all(b"GET /api/v1/members HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            last.clear();
            let _ = s.read_to_string(&mut last);
            if last.matches("\"state\":\"alive\"").count() == 3 {
                break true;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok, "the local cluster never showed 3 alive members: {last}");
}
