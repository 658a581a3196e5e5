//! `gossiphttp cluster`: a local cluster of N members in this process.

use crate::output::{describe, emit, CmdResult, Failure};
use clap::Args;
use gossiphttp::cluster::{MemberState, Node, NodeOptions};
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
        let mut options = NodeOptions::new(format!("node-{}", i + 1));
        // Fast failure detection for a handful of members; memberlist's LAN
        // settings for more, which one process on a laptop can carry.
        if args.nodes <= 20 {
            options = options.fast();
        }
        // One process carries every member's packets, and a packet costs
        // the process about half a millisecond of CPU (a request on each
        // end; benches/RESULTS.md): 2 cores carry about 2,200 a second.
        // With memberlist's LAN rates 500 members ask 1,000 a second at
        // rest and up to 7,500 in a join wave, and the cluster accuses
        // itself. Past 100 members each member probes and gossips as much
        // less often as there are more of them, so the process sends what
        // 100 LAN members send; failure detection slows by as much.
        let crowd = u32::from(args.nodes).div_ceil(100);
        if crowd > 1 {
            let membership = &mut options.membership;
            membership.probe_interval *= crowd;
            membership.gossip_interval *= crowd;
        }
        // Every member of this process shares its file limit, and both
        // ends of each connection between two of them are in it (two
        // files): 2,500 pooled connections in all (8 per member at 500,
        // 25 at 100) are 5,000 files, plus the connections that left a
        // pool and still finish a request, well within the 20,000 a shell
        // commonly allows. Bodies end with their batch (no linger): a
        // connection that left its pool closes as soon as its request is
        // answered. Each member accepts twice what it dials (the members
        // that dial it are not spread evenly) and lets go of connections
        // idle for seconds rather than a minute: members gossip with every
        // other in turn, so an idle connection is one the next round will
        // not use.
        let budget = (2_500 / usize::from(args.nodes)).clamp(8, 256);
        options.transport.max_peer_connections = budget;
        options.transport.max_accepted_connections = 2 * budget;
        options.transport.idle_peer_timeout = Duration::from_secs(10);
        options.transport.idle_connection_timeout = Duration::from_secs(15);
        if args.nodes > 20 {
            options.transport.message_body_linger = Duration::ZERO;
        }
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
    let stop = crate::shutdown_signal();
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
