//! `gossiphttp cluster`: a local cluster of N members in this process.

use crate::output::{describe, emit, CmdResult, Failure};
use clap::Args;
use gossiphttp::cluster::{MemberState, Node, NodeOptions, SharedClient};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// How many members to start.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    nodes: u16,
    /// Port of the first member; the others take the following ports.
    #[arg(long, default_value_t = 7946)]
    base_port: u16,
}

pub async fn run(args: ClusterArgs) -> CmdResult {
    // Every member sends over one client: a connection per member for the
    // whole process (both ends in this process, two files each: 2,000 at
    // 1,000 members), not one per pair of members that talked lately.
    let shared = SharedClient::new(usize::from(args.nodes), &NodeOptions::new("").transport)
        .map_err(|e| Failure::runtime(describe(&e)))?;
    let mut nodes = Vec::new();
    let mut seed = Vec::new();
    for i in 0..args.nodes {
        let port = args
            .base_port
            .checked_add(i)
            .ok_or_else(|| Failure::usage("--base-port + --nodes exceeds 65535"))?;
        let addr = format!("127.0.0.1:{port}");
        let listener = tokio::net::TcpListener::bind(&addr).await.map_err(|e| {
            Failure::runtime(format!("cannot listen on {addr}: {e} (try --base-port)"))
        })?;
        let mut options = NodeOptions::new(format!("node-{}", i + 1)).sharing(&shared);
        // Fast failure detection for a handful of members; memberlist's LAN
        // settings for more, which one process on a laptop can carry.
        if args.nodes <= 20 {
            options = options.fast();
        }
        // One process carries every member's packets: past 100 members
        // each probes and gossips as much less often as there are more of
        // them (`scaled_for_process` says why, and what was measured).
        options = options.scaled_for_process(usize::from(args.nodes));
        // Ctrl-C stops the process within 2 s: `Node::leave_all` takes at
        // most this long (1.5 s measured at 500 members, benches/RESULTS.md).
        options.leave_timeout = options.leave_timeout.min(Duration::from_millis(800));
        options.join = seed.clone();
        let node = Node::start(options, listener)
            .await
            .map_err(|e| Failure::runtime(describe(&e)))?;
        if seed.is_empty() {
            seed.push(node.id().addr.clone());
        }
        nodes.push(node);
    }
    emit(&format!(
        "started {} members on 127.0.0.1:{}..; open http://{}/ for the live view; Ctrl-C stops",
        nodes.len(),
        args.base_port,
        seed[0]
    ));
    let mut last = String::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let stop = crate::signals::shutdown();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {
                let table = membership_table(&nodes);
                if table != last {
                    emit(&table);
                    last = table;
                }
            }
        }
    }
    // Every member leaves at once, telling the members outside this
    // process directly (the ones inside are leaving too).
    let stopping = std::time::Instant::now();
    tracing::info!(members = nodes.len(), "stopping: every member leaves");
    Node::leave_all(nodes).await;
    tracing::info!(took = ?stopping.elapsed(), "every member left");
    Ok(())
}

/// One line per member: how many members see it in each state.
fn membership_table(nodes: &[Node]) -> String {
    let mut seen: BTreeMap<String, (String, [usize; 4])> = BTreeMap::new();
    for node in nodes {
        for m in node.members() {
            let row = seen
                .entry(m.name.clone())
                .or_insert((m.addr.clone(), [0; 4]));
            let i = match m.state {
                MemberState::Alive => 0,
                MemberState::Suspect => 1,
                MemberState::Dead => 2,
                MemberState::Left => 3,
            };
            row.1[i] += 1;
        }
    }
    let mut out = format!(
        "{:<10} {:<16} {:>5} {:>7} {:>4} {:>4}   (how many members see it so)\n",
        "member", "address", "alive", "suspect", "dead", "left"
    );
    for (name, (addr, c)) in seen {
        out.push_str(&format!(
            "{name:<10} {addr:<16} {:>5} {:>7} {:>4} {:>4}\n",
            c[0], c[1], c[2], c[3]
        ));
    }
    out
}
