//! A real Go memberlist node under test control: `tests/go/memberlist-peer`
//! (Debian's memberlist 0.2.2 over our transport contract), built by
//! `scripts/go-peer.sh` into `target/go-peer/`.
//!
//! [`GoPeerConfig::spawn`] starts one on a free 127.0.0.1 port and waits for
//! its `ready` line; the [`GoPeer`] reads its JSON event lines, queries its
//! `/debug` routes, leaves, and is `kill -9`ed on [`GoPeer::kill_9`] or when
//! dropped. The peer's flags, events and routes are in its README.md.
//!
//! Without Go's Debian packages, [`available`] prints why and returns false
//! so that a test can skip; with the env var `CI` set (to anything but
//! `false` or `0`) it panics instead: CI must run these tests.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::Value;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// The bound on waiting for a peer's start-up, its answers and its events
/// (membership changes are waited for with the caller's own bound).
pub const PEER_WAIT: Duration = Duration::from_secs(20);

/// How many of a peer's last stderr lines are kept for failure messages.
const STDERR_LINES: usize = 200;

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// What is missing for building the Go peer, if anything.
fn missing_go() -> Option<String> {
    let go = Command::new("go")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !go.is_ok_and(|s| s.success()) {
        return Some("`go` (Debian package golang-go)".into());
    }
    let sources = [
        (
            "github.com/hashicorp/memberlist",
            "golang-github-hashicorp-memberlist-dev",
        ),
        (
            "github.com/hashicorp/go-msgpack/codec",
            "golang-github-hashicorp-go-msgpack-dev",
        ),
        ("golang.org/x/net/http2/h2c", "golang-golang-x-net-dev"),
    ];
    sources.iter().find_map(|(dir, deb)| {
        let path = Path::new("/usr/share/gocode/src").join(dir);
        (!path.is_dir()).then(|| format!("{} (Debian package {deb})", path.display()))
    })
}

/// Builds the peer once per test process; `Err` says why it cannot run.
fn build() -> &'static Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(|| {
        if let Some(missing) = missing_go() {
            return Err(format!(
                "Go is not installed: missing {missing}; run scripts/go-peer.sh to install it"
            ));
        }
        // The script rebuilds only when the sources changed; it never
        // installs from here.
        let out = Command::new(repo_root().join("scripts/go-peer.sh"))
            .env("GO_PEER_SKIP_INSTALL", "1")
            .output()
            .expect("run scripts/go-peer.sh");
        assert!(
            out.status.success(),
            "scripts/go-peer.sh failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok(repo_root().join(bin))
    })
}

/// Whether the Go peer can run here, building it if needed. False (after
/// printing why) when Go is missing outside CI; a panic when it is missing
/// in CI or its build fails.
pub fn available() -> bool {
    match build() {
        Ok(_) => true,
        Err(why) if in_ci() => panic!("CI is set and the Go peer cannot run: {why}"),
        Err(why) => {
            // Straight to stderr: libtest captures eprintln! of passing tests.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED (Go memberlist interop): {why}; CI=true makes this a failure"
            );
            false
        }
    }
}

fn binary() -> &'static Path {
    match build() {
        Ok(path) => path,
        Err(why) => panic!("the Go peer cannot run ({why}); check go_peer::available() first"),
    }
}

/// One row of a peer's `GET /debug/members`: a node as memberlist knows it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Member {
    pub name: String,
    /// The node's advertised IP.
    pub addr: String,
    pub port: u16,
    /// `alive`, `suspect`, `dead` or `left`.
    pub state: String,
    pub incarnation: u32,
    pub meta: String,
}

impl Member {
    /// The advertised `host:port`.
    pub fn address(&self) -> String {
        format!("{}:{}", self.addr, self.port)
    }
}

/// How to start a Go peer: its flags (see the peer's README.md).
#[derive(Debug, Clone)]
pub struct GoPeerConfig {
    name: String,
    args: Vec<String>,
}

impl GoPeerConfig {
    /// A peer named `name` on a free 127.0.0.1 port, memberlist's LAN
    /// defaults.
    pub fn new(name: &str) -> Self {
        GoPeerConfig {
            name: name.to_string(),
            args: vec!["--name".into(), name.into()],
        }
    }

    /// Short timings, so that tests of failure detection are quick: probes
    /// every 200 ms (timeout 100 ms), push-pull every 2 s.
    pub fn fast(name: &str) -> Self {
        Self::new(name)
            .probe_interval(Duration::from_millis(200))
            .push_pull_interval(Duration::from_secs(2))
    }

    /// Any flag of the peer, with its value.
    pub fn flag(mut self, flag: &str, value: impl Into<String>) -> Self {
        self.args.push(format!("--{flag}"));
        self.args.push(value.into());
        self
    }

    /// `host:port` addresses joined after start.
    pub fn join<S: AsRef<str>>(self, addrs: impl IntoIterator<Item = S>) -> Self {
        let list: Vec<String> = addrs.into_iter().map(|a| a.as_ref().to_string()).collect();
        self.flag("join", list.join(","))
    }

    pub fn label(self, label: &str) -> Self {
        self.flag("label", label)
    }

    /// `lan` or `ckit`.
    pub fn preset(self, preset: &str) -> Self {
        self.flag("preset", preset)
    }

    /// Where to serve, `host:port` (say, the port of a peer that was
    /// killed, to restart it there).
    pub fn bind(self, addr: &str) -> Self {
        self.flag("bind", addr)
    }

    /// The address gossiped to others instead of the bound one.
    pub fn advertise(self, addr: &str) -> Self {
        self.flag("advertise", addr)
    }

    /// A boolean flag, set (`--ckit`: a grafana/ckit node).
    pub fn switch(mut self, flag: &str) -> Self {
        self.args.push(format!("--{flag}"));
        self
    }

    /// ckit mode: the peer behaves as a grafana/ckit node (its node states
    /// in gossip and push-pull, `/debug/ckit` routes).
    pub fn ckit(self) -> Self {
        self.switch("ckit")
    }

    pub fn meta(self, meta: &str) -> Self {
        self.flag("meta", meta)
    }

    pub fn probe_interval(self, every: Duration) -> Self {
        self.flag("probe-interval", go_duration(every))
    }

    pub fn push_pull_interval(self, every: Duration) -> Self {
        self.flag("push-pull-interval", go_duration(every))
    }

    /// Starts the peer and waits for its `ready` line.
    pub async fn spawn(self) -> GoPeer {
        let mut child = Command::new(binary())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn the Go peer {:?}: {e}", self.args));
        let (tx, events) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let event = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({"event": "unparsed", "line": line}));
                if tx.send(event).is_err() {
                    break;
                }
            }
        });
        let stderr_lines = Arc::new(Mutex::new(VecDeque::new()));
        let sink = stderr_lines.clone();
        let stderr = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut lines = sink.lock().unwrap();
                if lines.len() == STDERR_LINES {
                    lines.pop_front();
                }
                lines.push_back(line);
            }
        });
        let mut peer = GoPeer {
            name: self.name,
            addr: String::new(),
            bind: String::new(),
            child,
            events,
            seen: Vec::new(),
            stderr: stderr_lines,
        };
        let ready = peer
            .wait_event("its ready line", PEER_WAIT, |e| e["event"] == "ready")
            .await;
        peer.addr = format!("{}:{}", ready["addr"].as_str().unwrap(), ready["port"]);
        peer.bind = ready["bind"].as_str().unwrap().to_string();
        peer
    }
}

/// A duration as Go's flag package parses it.
fn go_duration(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// A running Go memberlist peer, killed (`kill -9`) when dropped.
pub struct GoPeer {
    pub name: String,
    /// The advertised `host:port`: where other nodes reach it.
    pub addr: String,
    /// The bound `host:port`: where its transport and `/debug` are served.
    pub bind: String,
    child: Child,
    events: mpsc::UnboundedReceiver<Value>,
    seen: Vec<Value>,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl GoPeer {
    /// The process id (to stop or signal the peer: `kill -STOP` freezes it
    /// without closing its connections).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every event line received so far, oldest first.
    pub fn events(&mut self) -> &[Value] {
        while let Ok(event) = self.events.try_recv() {
            self.seen.push(event);
        }
        &self.seen
    }

    /// The first event, past or future, that `matches`; panics (with the
    /// peer's stderr) if none came within `limit`.
    pub async fn wait_event(
        &mut self,
        what: &str,
        limit: Duration,
        mut matches: impl FnMut(&Value) -> bool,
    ) -> Value {
        if let Some(event) = self.events().iter().find(|e| matches(e)) {
            return event.clone();
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => {
                    self.seen.push(event.clone());
                    if matches(&event) {
                        return event;
                    }
                }
                Ok(None) => {
                    let report = self.report();
                    panic!("{}: exited before {what}\n{report}", self.name)
                }
                Err(_) => {
                    let report = self.report();
                    panic!("{}: no {what} within {limit:?}\n{report}", self.name)
                }
            }
        }
    }

    /// The last lines the peer wrote to stderr (memberlist's log).
    pub fn stderr_tail(&self) -> String {
        let lines = self.stderr.lock().unwrap();
        lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Waits until the peer's stderr (memberlist's log) has a line
    /// containing `needle`; panics with its report if none came within
    /// `limit`.
    pub async fn wait_log(&mut self, needle: &str, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while !self
            .stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
        {
            if tokio::time::Instant::now() >= deadline {
                let report = self.report();
                panic!(
                    "{}: no log line with {needle:?} within {limit:?}\n{report}",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Its events and stderr, for failure messages.
    pub fn report(&mut self) -> String {
        let events: Vec<String> = self.events().iter().map(Value::to_string).collect();
        format!(
            "--- {} events ---\n{}\n--- {} stderr ---\n{}",
            self.name,
            events.join("\n"),
            self.name,
            self.stderr_tail()
        )
    }

    /// Sends a request to the peer's control routes and returns the status
    /// and body.
    pub async fn request(&self, method: Method, path_and_query: &str) -> (StatusCode, Bytes) {
        self.request_with(method, path_and_query, Bytes::new())
            .await
    }

    /// [`request`](Self::request) with a body (JSON for the ckit routes).
    pub async fn request_with(
        &self,
        method: Method,
        path_and_query: &str,
        body: Bytes,
    ) -> (StatusCode, Bytes) {
        let what = format!("{method} {path_and_query} on {}", self.name);
        let exchange = async {
            let tcp = TcpStream::connect(&self.bind).await?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
            tokio::spawn(conn);
            let req = Request::builder()
                .method(method)
                .uri(path_and_query)
                .header(hyper::header::HOST, &self.bind)
                .body(Full::new(body))?;
            let resp = sender.send_request(req).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, body))
        };
        match tokio::time::timeout(PEER_WAIT, exchange).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => panic!("{what}: {e}"),
            Err(_) => panic!("{what}: no answer within {PEER_WAIT:?}"),
        }
    }

    async fn post_ok(&self, path_and_query: &str) -> Bytes {
        let (status, body) = self.request(Method::POST, path_and_query).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "POST {path_and_query} on {}: {}",
            self.name,
            String::from_utf8_lossy(&body)
        );
        body
    }

    /// Every node the peer's memberlist knows, itself and dead or left
    /// nodes included, sorted by name.
    pub async fn members(&self) -> Vec<Member> {
        let (status, body) = self.request(Method::GET, "/debug/members").await;
        assert_eq!(
            status,
            StatusCode::OK,
            "GET /debug/members on {}",
            self.name
        );
        serde_json::from_slice(&body).expect("/debug/members answers JSON")
    }

    /// The peer's row for `name`, if it knows that node.
    pub async fn member(&self, name: &str) -> Option<Member> {
        self.members().await.into_iter().find(|m| m.name == name)
    }

    /// Polls [`members`](Self::members) until `holds`; panics if it did not
    /// within `limit`, with the last list and the peer's log.
    pub async fn wait_members(
        &mut self,
        what: &str,
        limit: Duration,
        mut holds: impl FnMut(&[Member]) -> bool,
    ) -> Vec<Member> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let members = self.members().await;
            if holds(&members) {
                return members;
            }
            if tokio::time::Instant::now() >= deadline {
                let report = self.report();
                panic!(
                    "{}: {what} not seen within {limit:?}; members: {members:#?}\n{report}",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sets `key` in the peer's user state (broadcast to the cluster).
    pub async fn set(&self, key: &str, value: &str) {
        self.post_ok(&format!("/debug/set?{key}={value}")).await;
    }

    /// memberlist's graceful `Leave`; the process keeps running.
    pub async fn leave(&self) {
        self.post_ok("/debug/leave").await;
    }

    /// Stops memberlist (no leave) through `/debug/shutdown` and waits for
    /// the process to exit; true if it exited with success.
    pub async fn shutdown(&mut self) -> bool {
        self.post_ok("/debug/shutdown").await;
        let deadline = tokio::time::Instant::now() + PEER_WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the Go peer") {
                return status.success();
            }
            if tokio::time::Instant::now() >= deadline {
                let report = self.report();
                panic!(
                    "{}: still running {PEER_WAIT:?} after /debug/shutdown\n{report}",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `kill -9`: the process ends with no word to the cluster.
    pub fn kill_9(&mut self) {
        // std's Child::kill sends SIGKILL on Unix.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for GoPeer {
    fn drop(&mut self) {
        self.kill_9();
    }
}
