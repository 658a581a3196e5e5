//! The goodbyes of many members leaving at once, as a process running
//! many members does when it stops ([`Node::leave_all`](super::Node::leave_all)).
//!
//! Each member telling every member outside the process on its own costs
//! n × (members outside) requests, each through that member's connection
//! allowance (shared with its gossip) and its actor (late when the process
//! is busy): at 500 members most goodbyes never left the process before it
//! stopped, and outside members recorded the members dead. A leave is
//! memberlist's dead message about a member from itself (`from == node`),
//! whoever carries it, so the process sends every member's leave, packed
//! into compound packets, straight to each member outside it over a
//! transport of its own: one request per member outside.

use super::view::{MemberState, MemberView};
use super::PeerFilter;
use crate::memberlist::message::{Dead, Message};
use crate::memberlist::packet::{encode_packets, PacketOptions};
use crate::memberlist::WireError;
use crate::{Options, Transport};
use bytes::Bytes;
use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

/// Leaves per packet: a packet stays a few kilobytes, as memberlist's
/// gossip packets are (any peer's packet limit takes it).
const LEAVES_PER_PACKET: usize = 64;

/// Who says goodbye, at which memberlist incarnation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Leaver {
    pub name: String,
    pub incarnation: u32,
}

/// The addresses of every member that some view of `views` holds alive or
/// suspect, outside `leaving` (they are told nothing: they leave too) and
/// allowed by `filter`, each once.
pub(super) fn outside_members<'a>(
    views: impl IntoIterator<Item = &'a [MemberView]>,
    leaving: &HashSet<String>,
    filter: Option<&PeerFilter>,
) -> Vec<String> {
    let mut addrs = BTreeSet::new();
    for view in views {
        for m in view {
            let reachable = matches!(m.state, MemberState::Alive | MemberState::Suspect);
            if reachable && !leaving.contains(&m.name) && filter.is_none_or(|f| f(&m.addr)) {
                addrs.insert(m.addr.clone());
            }
        }
    }
    addrs.into_iter().collect()
}

/// Each leaver's leave (a dead message from itself), packed
/// [`LEAVES_PER_PACKET`] to a packet.
pub(super) fn leave_packets(leavers: &[Leaver], label: &str) -> Result<Vec<Bytes>, WireError> {
    let options = PacketOptions {
        label,
        crc: false,
        compress: true,
    };
    let mut packets = Vec::new();
    for chunk in leavers.chunks(LEAVES_PER_PACKET) {
        let leaves: Vec<Message> = chunk
            .iter()
            .map(|l| {
                Message::Dead(Dead {
                    incarnation: l.incarnation,
                    node: l.name.clone(),
                    from: l.name.clone(),
                })
            })
            .collect();
        packets.extend(encode_packets(&leaves, &options)?);
    }
    Ok(packets)
}

/// Sends `packets` to every address of `targets`, all at once, and
/// returns how many targets answered within `deadline`.
///
/// It runs on a thread and runtime of its own, over a transport (and
/// connections) of its own (made from `options`): in a process whose
/// runtime is queued seconds deep with many members' work, and whose
/// members' pools have no connection to spare, the goodbyes otherwise wait
/// behind both (measured at 500 members: none arrived within the
/// deadline).
pub(super) async fn send_leaves(
    options: Options,
    packets: Vec<Bytes>,
    targets: Vec<String>,
    deadline: Duration,
) -> usize {
    if targets.is_empty() || packets.is_empty() {
        return targets.len();
    }
    let (told_tx, told) = tokio::sync::oneshot::channel();
    let apart = std::thread::Builder::new()
        .name("gossiphttp-goodbyes".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let count = match runtime {
                Ok(runtime) => runtime.block_on(send_now(options, &packets, &targets, deadline)),
                Err(e) => {
                    tracing::warn!(error = %e, "leave: no runtime for the goodbyes");
                    0
                }
            };
            let _ = told_tx.send(count);
        });
    if let Err(e) = apart {
        tracing::warn!(error = %e, "leave: no thread for the goodbyes");
        return 0;
    }
    told.await.unwrap_or(0)
}

async fn send_now(
    mut options: Options,
    packets: &[Bytes],
    targets: &[String],
    deadline: Duration,
) -> usize {
    options.serve_metrics = false;
    // Connections of its own, driven by this runtime: a shared client's
    // belong to the process's runtime and its other members.
    options.client = None;
    options.max_peer_connections = options.max_peer_connections.max(targets.len());
    options.max_packet_size = packets
        .iter()
        .map(Bytes::len)
        .max()
        .unwrap_or(0)
        .max(options.max_packet_size);
    let transport = match Transport::new(options) {
        Ok((transport, _metrics)) => transport,
        Err(e) => {
            tracing::warn!(error = %e, "leave: no transport for the goodbyes");
            return 0;
        }
    };
    let sends = targets.iter().map(|to| {
        let transport = &transport;
        async move {
            for packet in packets {
                transport.send(packet.clone(), to).await?;
            }
            Ok::<(), crate::Error>(())
        }
    });
    let told = match tokio::time::timeout(deadline, futures_util::future::join_all(sends)).await {
        Ok(results) => results.iter().filter(|r| r.is_ok()).count(),
        Err(_) => 0,
    };
    if told < targets.len() {
        tracing::warn!(
            told,
            of = targets.len(),
            ?deadline,
            "leave: not every member outside answered in time; the rest hear it by gossip"
        );
    }
    transport.shutdown().await;
    told
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Node, NodeOptions};
    use crate::memberlist::packet::{decode_packet, LabelPolicy};

    fn row(name: &str, addr: &str, state: MemberState) -> MemberView {
        MemberView {
            name: name.into(),
            addr: addr.into(),
            state,
            incarnation: 0,
            ckit_state: None,
            state_since_ms: 0,
            local: false,
        }
    }

    #[test]
    fn outside_members_are_the_reachable_ones_not_leaving_once_each() {
        let a = vec![
            row("in-1", "127.0.0.1:1", MemberState::Alive),
            row("out-1", "127.0.0.1:9", MemberState::Alive),
            row("out-2", "127.0.0.1:8", MemberState::Dead),
        ];
        let b = vec![
            row("out-1", "127.0.0.1:9", MemberState::Suspect),
            row("out-3", "127.0.0.1:7", MemberState::Suspect),
            row("out-4", "127.0.0.1:6", MemberState::Left),
        ];
        let leaving: HashSet<String> = ["in-1".to_string()].into();
        let views = [a.as_slice(), b.as_slice()];
        assert_eq!(
            outside_members(views, &leaving, None),
            vec!["127.0.0.1:7".to_string(), "127.0.0.1:9".to_string()]
        );
        let not_7: PeerFilter = std::sync::Arc::new(|addr: &str| addr != "127.0.0.1:7");
        assert_eq!(
            outside_members(views, &leaving, Some(&not_7)),
            vec!["127.0.0.1:9".to_string()]
        );
    }

    #[test]
    fn every_leaver_leaves_from_itself_in_packets_a_peer_decodes() {
        let leavers: Vec<Leaver> = (0..150)
            .map(|i| Leaver {
                name: format!("node-{i}"),
                incarnation: i,
            })
            .collect();
        let packets = leave_packets(&leavers, "lab").unwrap();
        assert_eq!(packets.len(), 3);
        let mut seen = Vec::new();
        for packet in &packets {
            let decoded = decode_packet(packet, &LabelPolicy::new("lab")).unwrap();
            for message in decoded.messages {
                match message {
                    Message::Dead(d) => {
                        assert_eq!(d.node, d.from, "a leave is a dead message from itself");
                        seen.push(Leaver {
                            name: d.node,
                            incarnation: d.incarnation,
                        });
                    }
                    other => panic!("not a leave: {other:?}"),
                }
            }
        }
        assert_eq!(seen, leavers);
    }

    async fn start(name: &str, join: Vec<String>) -> Node {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut options = NodeOptions::new(name).fast();
        options.join = join;
        Node::start(options, listener).await.unwrap()
    }

    fn count(view: &[MemberView], state: MemberState) -> usize {
        view.iter().filter(|m| m.state == state).count()
    }

    /// The leaves go out without the members' actors: members whose actors
    /// never run again (as in a process too busy to schedule them) are
    /// still recorded left, not dead, by a member outside.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn members_whose_actors_never_run_again_still_leave() {
        let outside = start("outside", Vec::new()).await;
        let mut inside = Vec::new();
        for i in 0..3 {
            inside.push(start(&format!("inside-{i}"), vec![outside.id().addr.clone()]).await);
        }
        let converged = |v: &[MemberView]| count(v, MemberState::Alive) == 4;
        outside
            .wait_for(Duration::from_secs(30), converged)
            .await
            .unwrap();
        for node in &inside {
            node.wait_for(Duration::from_secs(30), converged)
                .await
                .unwrap();
            node.actor.abort();
        }
        Node::leave_all(inside).await;
        let seen = outside
            .wait_for(Duration::from_secs(10), |v| {
                count(v, MemberState::Left) == 3
            })
            .await;
        assert!(
            seen.is_ok(),
            "the outside member saw {:?}",
            outside.members()
        );
        assert_eq!(count(&outside.members(), MemberState::Dead), 0);
        outside.leave().await;
    }
}
