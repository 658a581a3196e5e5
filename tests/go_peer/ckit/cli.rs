//! `gossiphttp node --ckit-state` in a cluster with a Go ckit node: the Go
//! node lists each of ours with the state it announced, and ours list the
//! Go node as ckit's default, a viewer.

use super::go_ckit;
use crate::common::go_peer;
use crate::CONVERGE;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `gossiphttp node`, killed on drop.
struct CliNode {
    child: Child,
    addr: String,
}

impl CliNode {
    fn spawn(name: &str, join: &str, ckit_state: Option<&str>) -> CliNode {
        let mut args = vec![
            "node",
            "--name",
            name,
            "--listen",
            "127.0.0.1:0",
            "--preset",
            "fast",
            "--join",
            join,
        ];
        if let Some(state) = ckit_state {
            args.extend(["--ckit-state", state]);
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_gossiphttp"))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn gossiphttp {args:?}: {e}"));
        // Its first stdout line says where it listens; the rest is drained
        // so that the node never blocks on a full pipe.
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines
            .next()
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("gossiphttp node {name} printed nothing"));
        std::thread::spawn(move || lines.for_each(drop));
        let addr = first
            .split_once(" listening on ")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_string();
        CliNode { child, addr }
    }

    /// `GET /api/v1/members`, the JSON body.
    fn members(&self) -> serde_json::Value {
        let mut s = std::net::TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /api/v1/members HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
    }
}

impl Drop for CliNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The ckit state a members JSON gives `name`.
fn ckit_state_in(members: &serde_json::Value, name: &str) -> Option<String> {
    let rows = members
        .as_array()
        .or_else(|| members["members"].as_array())?;
    rows.iter()
        .find(|m| m["name"] == name)
        .and_then(|m| m["ckit_state"].as_str())
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_ckit_node_lists_cli_nodes_with_the_state_they_announce() {
    if !go_peer::available() {
        return;
    }
    let mut g1 = go_ckit("g1").spawn().await;
    let viewer = CliNode::spawn("c-viewer", &g1.addr, Some("viewer"));
    let participant = CliNode::spawn("c-default", &g1.addr, None);
    g1.wait_ckit("the CLI nodes with their states", |v| {
        v.state_of("c-viewer") == Some("viewer") && v.state_of("c-default") == Some("participant")
    })
    .await;
    let started = Instant::now();
    loop {
        let members = viewer.members();
        if ckit_state_in(&members, "g1").as_deref() == Some("viewer")
            && ckit_state_in(&members, "c-default").as_deref() == Some("participant")
        {
            break;
        }
        assert!(
            started.elapsed() < CONVERGE,
            "c-viewer's members never listed g1 a viewer and c-default a participant: {members}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(participant);
}
