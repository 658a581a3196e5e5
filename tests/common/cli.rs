//! A `gossiphttp` process for the tests and the benches (`tests/cli`,
//! `tests/go_peer`, `benches/cluster` include this file by `#[path]`):
//! spawned with stdin closed and its output piped and read on threads (so
//! it never blocks on a full pipe, read or not), its first line's address,
//! a plain HTTP/1.1 GET of its endpoints, and a kill when it drops.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// The binary cargo built beside the test or bench.
pub const BIN: &str = env!("CARGO_BIN_EXE_gossiphttp");

/// Starts the binary with `args` and `envs` added to its environment, stdin
/// closed and stdout and stderr piped for the caller to read.
pub fn spawn_piped(args: &[&str], envs: &[(&str, &str)]) -> Result<Child, String> {
    Command::new(BIN)
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn gossiphttp {args:?}: {e}"))
}

/// Drains a child's pipe into a shared string on a thread.
pub fn collect(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<String>> {
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

/// Hands each line of a child's pipe to `on_line` on a thread.
pub fn each_line(
    pipe: impl Read + Send + 'static,
    mut on_line: impl FnMut(String) + Send + 'static,
) {
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            on_line(line);
        }
    });
}

/// A running `gossiphttp`, killed (SIGKILL) and reaped on drop.
pub struct CliProc {
    pub child: Child,
    /// Its stdout, line by line, as it comes.
    lines: Receiver<String>,
    /// Its stderr so far (empty when a line hook takes it).
    pub stderr: Arc<Mutex<String>>,
}

impl CliProc {
    /// Spawns `gossiphttp ARGS` with `envs`, keeping its stderr.
    pub fn spawn(args: &[&str], envs: &[(&str, &str)]) -> Result<CliProc, String> {
        let mut child = spawn_piped(args, envs)?;
        let stderr = collect(child.stderr.take().expect("piped stderr"));
        Ok(CliProc::reading_stdout(child, stderr))
    }

    /// Spawns `gossiphttp ARGS` with `envs`, handing each stderr line to
    /// `on_line` as it arrives (say, to timestamp log lines).
    pub fn spawn_with_stderr(
        args: &[&str],
        envs: &[(&str, &str)],
        on_line: impl FnMut(String) + Send + 'static,
    ) -> Result<CliProc, String> {
        let mut child = spawn_piped(args, envs)?;
        each_line(child.stderr.take().expect("piped stderr"), on_line);
        Ok(CliProc::reading_stdout(child, Default::default()))
    }

    fn reading_stdout(mut child: Child, stderr: Arc<Mutex<String>>) -> CliProc {
        let (tx, lines) = mpsc::channel();
        // Lines nobody takes any more are dropped; the pipe is still drained.
        each_line(child.stdout.take().expect("piped stdout"), move |line| {
            let _ = tx.send(line);
        });
        CliProc {
            child,
            lines,
            stderr,
        }
    }

    /// The next stdout line, within `within`; the error says whether the
    /// process printed nothing or exited, with its stderr.
    pub fn next_line(&mut self, within: Duration) -> Result<String, String> {
        match self.lines.recv_timeout(within) {
            Ok(line) => Ok(line),
            Err(RecvTimeoutError::Timeout) => Err(format!(
                "gossiphttp printed nothing within {within:?}; stderr: {}",
                self.stderr_text()
            )),
            Err(RecvTimeoutError::Disconnected) => Err(format!(
                "gossiphttp closed stdout (exit {:?}); stderr: {}",
                self.child.try_wait(),
                self.stderr_text()
            )),
        }
    }

    /// Waits for the next stdout line and takes the address in it after
    /// `marker` (`listening on `, as `listen` and `node` print first).
    pub fn address(&mut self, marker: &str, within: Duration) -> Result<String, String> {
        let line = self.next_line(within)?;
        address_after(&line, marker).ok_or_else(|| format!("unexpected first line {line:?}"))
    }

    /// Its stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for CliProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The word after `marker` in `line`.
pub fn address_after(line: &str, marker: &str) -> Option<String> {
    line.split_once(marker)
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .map(str::to_string)
}

/// `GET path` on `addr` over HTTP/1.1 (the node's own routes take it); the
/// whole response, head and body.
pub fn http_get_raw(addr: &str, path: &str, timeout: Duration) -> Result<String, String> {
    let failed = |e: std::io::Error| format!("GET {path} on {addr}: {e}");
    let mut tcp = std::net::TcpStream::connect(addr).map_err(failed)?;
    tcp.set_read_timeout(Some(timeout)).map_err(failed)?;
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .map_err(failed)?;
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).map_err(failed)?;
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

/// [`http_get_raw`] with a 10 s bound: the body of a 200 response
/// (content-length or chunked), an error for any other.
pub fn http_get(addr: &str, path: &str) -> Result<String, String> {
    let text = http_get_raw(addr, path, Duration::from_secs(10))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP response from {addr}"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "GET {path} on {addr}: {}",
            head.lines().next().unwrap_or("")
        ));
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Ok(dechunk(body));
    }
    Ok(body.to_string())
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A node's `GET /api/v1/members`, parsed (JSON null when it is not JSON).
pub fn members_json(addr: &str) -> serde_json::Value {
    http_get(addr, "/api/v1/members")
        .ok()
        .and_then(|body| serde_json::from_str(&body).ok())
        .unwrap_or(serde_json::Value::Null)
}
