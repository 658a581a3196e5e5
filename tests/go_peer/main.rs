//! Real Go memberlist nodes (Debian's 0.2.2, `tests/go/memberlist-peer`)
//! over our transport contract. `membership`: they form a cluster through
//! each other, see a graceful leave as left and a `kill -9` as dead, refute
//! their death after a restart, carry user state, refuse a foreign label.
//! `transport`: our `Transport` carries their packets and streams,
//! `gossiphttp send` delivers to them, and the peer answers as the contract
//! says. `ckit`: the peer in ckit mode (`--ckit`, grafana/ckit's node
//! states) beside our nodes: each lists the other's state, changes, push-pull
//! to late joiners, stale messages, restarts, and the vectors' bytes.
//!
//! Skipped, with a printed reason, when Go is not installed outside CI; a
//! failure in CI (see `common::go_peer`).

mod ckit;
#[path = "../common/cli.rs"]
mod cli_proc;
#[path = "../common/mod.rs"]
mod common;
mod membership;
mod mixed;
mod transport;

use cli_proc::CliProc;
use common::go_peer::{GoPeer, GoPeerConfig, Member, PEER_WAIT};
use common::ports::restartable_addr;
use std::collections::BTreeSet;
use std::time::Duration;

/// The bound on membership changes (joins, leaves, failure detection with
/// 200 ms probes): generous, only reached when something is broken.
pub const CONVERGE: Duration = Duration::from_secs(30);

pub fn names(members: &[Member], state: &str) -> BTreeSet<String> {
    members
        .iter()
        .filter(|m| m.state == state)
        .map(|m| m.name.clone())
        .collect()
}

/// Waits until `node`'s view satisfies `ready`; panics with its view if it
/// never does within [`CONVERGE`].
pub async fn rust_sees(
    node: &gossiphttp::cluster::Node,
    what: &str,
    ready: impl FnMut(&[gossiphttp::cluster::MemberView]) -> bool,
) {
    if let Err(e) = node.wait_for(CONVERGE, ready).await {
        panic!(
            "{} never saw {what}: {e}; its view: {:#?}",
            node.id().name,
            node.members()
        );
    }
}

pub fn set_of(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

pub fn state_of(members: &[Member], name: &str) -> Option<String> {
    members
        .iter()
        .find(|m| m.name == name)
        .map(|m| m.state.clone())
}

/// A running `gossiphttp node` (the binary cargo built), killed (SIGKILL)
/// when dropped.
pub struct CliNode {
    process: CliProc,
    /// Where it listens (and advertises).
    pub addr: String,
}

impl CliNode {
    /// `gossiphttp node --preset fast` named `name`, joining `join`,
    /// announcing `ckit_state` if given; returns once it said where it
    /// listens.
    pub fn spawn(name: &str, join: &str, ckit_state: Option<&str>) -> CliNode {
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
        let mut process = CliProc::spawn(&args, &[]).unwrap_or_else(|e| panic!("{e}"));
        // Its first stdout line says where it listens.
        let addr = process
            .address(" listening on ", PEER_WAIT)
            .unwrap_or_else(|e| panic!("gossiphttp node {name}: {e}"));
        CliNode { process, addr }
    }

    /// `GET /api/v1/members`, the JSON body.
    pub fn members(&self) -> serde_json::Value {
        cli_proc::members_json(&self.addr)
    }

    /// Sends it `signal` (`-USR1`, ...) with `kill`.
    pub fn signal(&self, signal: &str) {
        let pid = self.process.pid().to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        self.process.stderr_text()
    }

    /// `kill -9`: the process ends with no word to the cluster (std's
    /// `Child::kill` sends SIGKILL on Unix), and is reaped.
    pub fn kill_9(&mut self) {
        let _ = self.process.child.kill();
        let _ = self.process.child.wait();
    }
}

/// Three fast peers, b joining a and c joining b, each seeing all three
/// alive.
pub async fn converged_three() -> [GoPeer; 3] {
    let a = GoPeerConfig::fast("a").spawn().await;
    let b = GoPeerConfig::fast("b").join([&a.addr]).spawn().await;
    // c is the one tests restart on its port.
    let c = GoPeerConfig::fast("c")
        .bind(&restartable_addr())
        .join([&b.addr])
        .spawn()
        .await;
    let mut peers = [a, b, c];
    for peer in &mut peers {
        peer.wait_members("a, b and c alive", CONVERGE, |m| {
            names(m, "alive") == set_of(&["a", "b", "c"])
        })
        .await;
    }
    peers
}
