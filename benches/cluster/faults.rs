//! The faults issue 14 lists for the old cluster, as rows: a member that
//! can send but not receive, and a member restarted under the same name.

use crate::inproc;
use crate::report::{secs, verdict, Row, Spread};
use crate::Cfg;
use gossiphttp::cluster::{MemberState, MemberView, Node};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// What observers saw during the send-only window.
#[derive(Default)]
struct Tally {
    /// Healthy members entering suspect or dead, as healthy members saw it.
    healthy_down: usize,
    /// The same, as the send-only member saw it.
    healthy_down_by_deaf: usize,
    /// The send-only member coming back to alive on a healthy member.
    deaf_revived: usize,
    /// When each healthy member first held the send-only one dead.
    deaf_dead_at: Vec<Duration>,
}

/// `n` members, the last one unreachable (every other member's outgoing
/// filter drops everything to it, as a blocked inbound port would), for
/// `cfg.fault_window`.
pub async fn send_only_row(cfg: &Cfg, n: usize) -> Row {
    let name = format!(
        "send-only member among {n}, {} s",
        cfg.fault_window.as_secs()
    );
    let deaf_index = n - 1;
    let cluster = match inproc::start(n, |i, addrs, options| {
        if i != deaf_index {
            let blocked = addrs[deaf_index].clone();
            options.outgoing_filter = Some(Arc::new(move |to: &str| to != blocked));
        }
    })
    .await
    {
        Ok(c) => c,
        Err(e) => return Row::failed(name, e),
    };
    let deaf = cluster.nodes[deaf_index].id().name.clone();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut observers = Vec::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        let mut view = node.watch_members();
        let tally = tally.clone();
        let deaf = deaf.clone();
        let t0 = cluster.t0;
        let observer_is_deaf = i == deaf_index;
        observers.push(tokio::spawn(async move {
            let mut previous: HashMap<String, MemberState> = HashMap::new();
            let mut deaf_dead = false;
            loop {
                let rows: Vec<(String, MemberState)> = view
                    .borrow_and_update()
                    .iter()
                    .map(|m| (m.name.clone(), m.state))
                    .collect();
                {
                    let mut t = tally.lock().unwrap();
                    for (name, state) in rows {
                        let before = previous.insert(name.clone(), state);
                        if before == Some(state) {
                            continue;
                        }
                        let down = state != MemberState::Alive;
                        if name == deaf {
                            if !observer_is_deaf && state == MemberState::Alive && before.is_some()
                            {
                                t.deaf_revived += 1;
                            }
                            if !observer_is_deaf && state == MemberState::Dead && !deaf_dead {
                                deaf_dead = true;
                                t.deaf_dead_at.push(t0.elapsed());
                            }
                        } else if down && before != Some(state) {
                            if observer_is_deaf {
                                t.healthy_down_by_deaf += 1;
                            } else {
                                t.healthy_down += 1;
                            }
                        }
                    }
                }
                if view.changed().await.is_err() {
                    return;
                }
            }
        }));
    }
    tokio::time::sleep(cfg.fault_window.saturating_sub(cluster.t0.elapsed())).await;
    for o in &observers {
        o.abort();
    }
    let end: Vec<Option<MemberState>> = cluster.nodes[..deaf_index]
        .iter()
        .map(|node| inproc::state_of(&node.members(), &deaf))
        .collect();
    inproc::kill_all(cluster.nodes).await;
    let t = tally.lock().unwrap();
    let dead_end = end
        .iter()
        .filter(|s| **s == Some(MemberState::Dead))
        .count();
    // A dead member's row is forgotten `GossipToTheDeadTime` (30 s) after
    // it died.
    let forgotten = end.iter().filter(|s| s.is_none()).count();
    let suspect_end = end
        .iter()
        .filter(|s| **s == Some(MemberState::Suspect))
        .count();
    let alive_end = end
        .iter()
        .filter(|s| **s == Some(MemberState::Alive))
        .count();
    let mut dead_at = Spread(t.deaf_dead_at.clone());
    dead_at.0.sort();
    let mut row = Row::new(name);
    row.result = format!(
        "healthy members seen non-alive {} times ({} more by the send-only member itself); the send-only member back to alive {} times; at the end dead on {dead_end}, forgotten (dead, then removed) on {forgotten}, suspect on {suspect_end}, alive on {alive_end} of {} healthy members (first held dead after {})",
        t.healthy_down,
        t.healthy_down_by_deaf,
        t.deaf_revived,
        n - 1,
        dead_at.0.first().map_or("never".into(), |d| secs(*d)),
    );
    row.target = "healthy never non-alive; the send-only member stays dead".into();
    row.ckit = "ckit: never dead in 180 s (flaps suspect/alive), healthy seen non-alive 3–12 times; foca: dead in 7.8 s, alive again every 30 s, healthy declared down 4–7 times in 180 s".into();
    row.notes = format!(
        "in one process, LAN defaults; the send-only member joins with the others and every other member's `outgoing_filter` drops everything to it (packets and streams), as a blocked inbound port would; counted from every membership table each member published (a state held for less than one publish can be missed); healthy members that held it dead by: {}",
        dead_at.runs()
    );
    row
}

/// A member killed and started again under the same name (on a new port,
/// or on the same one) in a converged cluster of `n`: time until every
/// member, the new life included, holds it alive at its new address, in
/// one row.
pub async fn restart_row(cfg: &Cfg, n: usize, same_addr: bool) -> Row {
    let name = format!(
        "restart under the same name, {} address, {n} members",
        if same_addr { "same" } else { "new" }
    );
    let mut times = Spread::default();
    let mut failures = Vec::new();
    for _ in 0..cfg.runs {
        match restart_once(n, same_addr, cfg.restart_hold).await {
            Ok(t) => times.push(t),
            Err(e) => failures.push(e),
        }
    }
    let mut row = Row::new(name);
    row.result = format!(
        "{} (one alive row at the new address on every member)",
        times.summary()
    );
    row.target = verdict(Duration::from_secs(1), &times, failures.len());
    row.ckit = if same_addr {
        "-"
    } else {
        "ckit: \"Conflicting address\" for 83–94 s; foca: a stale row for the previous life"
    }
    .into();
    row.notes = format!(
        "{} runs: {}; `Node::kill` then `Node::start` at once, joining the first member; timed from the new start, and checked again {} later; LAN defaults, in one process{}",
        cfg.runs,
        times.runs(),
        secs(cfg.restart_hold),
        if failures.is_empty() { String::new() } else { format!("; failed: {}", failures.join("; ")) }
    );
    row
}

async fn restart_once(n: usize, same_addr: bool, hold: Duration) -> Result<Duration, String> {
    let mut cluster = inproc::start(n, |_, _, _| {})
        .await
        .map_err(|e| e.to_string())?;
    let times =
        inproc::first_seen_all(&cluster.nodes, n, cluster.t0, Duration::from_secs(30)).await;
    inproc::slowest(&times).map_err(|m| format!("{m} short before the restart"))?;
    let victim = cluster.nodes.remove(n / 2);
    let name = victim.id().name.clone();
    let old_addr = victim.id().addr.clone();
    let seed = cluster.nodes[0].id().addr.clone();
    victim.kill().await;
    let listener = TcpListener::bind(if same_addr {
        old_addr.as_str()
    } else {
        "127.0.0.1:0"
    })
    .await
    .map_err(|e| format!("bind: {e}"))?;
    let mut options = inproc::lan_options(name.clone(), n, cluster.client.as_ref());
    options.join = vec![seed];
    let t0 = Instant::now();
    let node = Node::start(options, listener)
        .await
        .map_err(|e| e.to_string())?;
    let new_addr = node.id().addr.clone();
    cluster.nodes.push(node);
    let one_row = |v: &[MemberView]| {
        let rows: Vec<&MemberView> = v.iter().filter(|m| m.name == name).collect();
        rows.len() == 1
            && rows[0].addr == new_addr
            && rows[0].state == MemberState::Alive
            && inproc::alive(v) == n
    };
    let waits = cluster
        .nodes
        .iter()
        .map(|node| inproc::wait_view(node.watch_members(), Duration::from_secs(30), one_row));
    let done = futures_util::future::join_all(waits).await;
    // Still so after the old life's probes and gossip had time to say
    // otherwise (a probe of the old address, its suspicion, news of it).
    tokio::time::sleep(hold).await;
    let lost = cluster
        .nodes
        .iter()
        .filter(|node| !one_row(&node.members()))
        .count();
    inproc::kill_all(cluster.nodes).await;
    let done: Vec<Option<Duration>> = done.iter().map(|t| t.map(|t| t - t0)).collect();
    let (slowest, _) = inproc::slowest(&done)
        .map_err(|m| format!("{m} of {n} members without one alive row after 30 s"))?;
    if lost > 0 {
        return Err(format!(
            "after {}, {lost} of {n} members no longer had one alive row {} later",
            secs(slowest),
            secs(hold)
        ));
    }
    Ok(slowest)
}
