//! A cluster member speaking HashiCorp memberlist's protocol over
//! gossiphttp, with grafana/ckit's node states on top: Go ckit and Alloy
//! nodes, Rust nodes and this crate's CLI form one cluster.
//!
//! The protocol itself lives in [`crate::memberlist`] (messages, wire, and
//! the SWIM + Lifeguard engine, a state machine) and [`crate::ckit`]; this
//! module is their async shell: it feeds the engine packets, streams and
//! time, and carries out what the engine asks for.
//!
//! ```no_run
//! # async fn demo() -> Result<(), gossiphttp::Error> {
//! use gossiphttp::cluster::{Node, NodeOptions};
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7946").await?;
//! let mut options = NodeOptions::new("node-1");
//! options.join = vec!["127.0.0.1:7947".into()];
//! let node = Node::start(options, listener).await?;
//!
//! node.set_state("role", "leader").await?;          // in this member's metadata
//! for m in node.members() {
//!     println!("{} {} {:?} {:?}", m.name, m.addr, m.state, m.ckit_state);
//! }
//! node.leave().await;                                  // seen as "left", not dead
//! # Ok(()) }
//! ```
//!
//! Besides the transport endpoints, a node's port answers `GET /` (the
//! cluster page: members, a timeline, the key space), `GET /api/v1/members`,
//! `/api/v1/events` and `/api/v1/shards` (JSON) and `GET /metrics`
//! (transport metrics and `cluster_members{state=...}`).

mod actor;
mod custom;
mod goodbye;
mod http;
mod lookup;
mod options;
mod shared_client;
mod shares;
mod streams;
mod timeline;
mod view;

pub use crate::ckit::peer::NodeState as CkitState;
pub use crate::memberlist::engine::Config as MembershipConfig;
pub use custom::META_MAX_SIZE;
pub use options::{NodeOptions, PeerFilter};
pub use shared_client::SharedClient;
pub use view::{MemberState, MemberView};

use crate::ckit::peer::Peer;
use crate::ckit::shard::{Hasher, Key, LookupError, Op};
use crate::ckit::states::NodeStates;
use crate::discovery::{Discovery, JoinEntry};
use crate::memberlist::engine::{Engine, Identity, Time};
use crate::memberlist::packet::LabelPolicy;
use crate::{Error, Server, Transport};
use actor::{Actor, Command, Shared};
use bytes::Bytes;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use streams::StreamSettings;
use tokio::net::TcpListener;
use tokio::sync::{broadcast as bcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use view::MemberGauges;

/// A member's custom state changed ([`Node::subscribe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateUpdate {
    /// The member that set the value.
    pub origin: String,
    /// The key it set.
    pub key: String,
    /// The origin's memberlist incarnation when it set it (grows with every
    /// change).
    pub version: u64,
    /// The value.
    pub value: Bytes,
}

/// Who this node is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeId {
    /// Its name.
    pub name: String,
    /// The `ip:port` it advertises.
    pub addr: String,
}

/// A running cluster member.
pub struct Node {
    id: NodeId,
    transport: Transport,
    server: Option<Server>,
    commands: mpsc::UnboundedSender<Command>,
    view: watch::Receiver<Arc<Vec<MemberView>>>,
    shared: Arc<Shared>,
    actor: JoinHandle<()>,
    registry: Arc<prometheus_client::registry::Registry>,
    leave_timeout: Duration,
    /// The cluster's label, which a leave sent for this member carries.
    label: String,
    outgoing_filter: Option<PeerFilter>,
    hasher: Hasher,
    owners: lookup::Owners,
}

impl Node {
    /// Starts a member serving on `listener`: joins through
    /// `options.join`, then gossips until [`leave`](Self::leave) or
    /// [`kill`](Self::kill).
    pub async fn start(options: NodeOptions, listener: TcpListener) -> Result<Node, Error> {
        if options.name.is_empty() {
            return Err(Error::Config("a node needs a name".into()));
        }
        let local = listener.local_addr()?;
        let addr = options.advertised(local).await?;
        let entries = options
            .join
            .iter()
            .filter(|e| !e.trim().is_empty())
            .map(|e| e.parse::<JoinEntry>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Config(e.to_string()))?;
        let discovery = if entries.is_empty() {
            None
        } else if let Some(ns) = options.nameserver {
            Some(Discovery::with_nameservers(entries, &[ns]))
        } else {
            Some(Discovery::new(entries).map_err(|e| Error::Config(e.to_string()))?)
        };
        let id = NodeId {
            name: options.name.clone(),
            addr: addr.to_string(),
        };
        let mut transport_options = options.transport.clone();
        transport_options.serve_metrics = false; // the node serves its own /metrics
        let (transport, transport_metrics) = Transport::new(transport_options)?;
        let _ = transport.final_advertise_addr(&addr.ip().to_string(), addr.port());

        let gauges = MemberGauges::default();
        let mut registry = prometheus_client::registry::Registry::default();
        transport_metrics.register_into(&mut registry);
        registry.register(
            "cluster_members",
            "Members of the cluster by state, as this node sees them",
            gauges.clone(),
        );
        let registry = Arc::new(registry);

        let mut membership = options.membership.clone();
        membership.label = options.label.clone();
        // A packet must fit the transport's packet limit.
        membership.udp_buffer_size = membership
            .udp_buffer_size
            .min(options.transport.max_packet_size);
        let origin = Instant::now();
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(addr.port()).rotate_left(32);
        let settings = StreamSettings {
            label: options.label.clone(),
            policy: LabelPolicy {
                label: options.label.clone(),
                skip_inbound_label_check: options.skip_inbound_label_check,
            },
            compress: membership.enable_compression,
            timeout: membership.tcp_timeout,
            label_warnings: Default::default(),
            last_push_pull: Default::default(),
        };
        let engine = Engine::new(
            membership,
            Identity {
                name: options.name.clone(),
                addr,
                meta: None,
            },
            seed,
            Time::ZERO,
        )
        .map_err(|e| Error::Config(e.to_string()))?;
        let shared = Arc::new(Shared::default());
        let (view_tx, view) = watch::channel(Arc::new(Vec::new()));
        let timeline = timeline::Timeline::default();
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let actor = Actor {
            engine,
            ckit: NodeStates::new(options.name.clone()),
            ckit_version: u64::MAX,
            user_state_version: u64::MAX,
            own_state: Default::default(),
            shared: shared.clone(),
            transport: transport.clone(),
            options: options.clone(),
            discovery,
            settings,
            origin,
            commands: command_rx,
            self_commands: commands.clone(),
            done_tx,
            done_rx,
            publisher: view::Publisher::new(view_tx, gauges, timeline.clone(), SystemTime::now()),
            leaving: None,
            resolving: false,
            last_resolved: None,
            dirty: true,
        };

        let fallback = http::routes(view.clone(), registry.clone(), timeline, options.hasher);
        let server =
            transport.serve_service(listener, transport.handler().with_fallback(fallback))?;
        let actor = tokio::spawn(actor.run());
        tracing::info!(name = %id.name, addr = %id.addr, "node started");
        Ok(Node {
            id,
            transport,
            server: Some(server),
            commands,
            view,
            shared,
            actor,
            registry,
            leave_timeout: options.leave_timeout,
            label: options.label.clone(),
            outgoing_filter: options.outgoing_filter.clone(),
            hasher: options.hasher,
            owners: Default::default(),
        })
    }

    /// This node's identity.
    pub fn id(&self) -> &NodeId {
        &self.id
    }

    /// The transport the node gossips over.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The membership table, this node included, sorted by name. It is
    /// republished at most once per n x 200 µs for n members (up to
    /// 100 ms), so it may trail the node's engine by that much.
    pub fn members(&self) -> Vec<MemberView> {
        self.view.borrow().as_ref().clone()
    }

    /// The `n` owners of `key`, first owner first, as a ckit node with the
    /// same peers picks them (its sharder's `Lookup(key, n, OpReadWrite)`):
    /// the peers are the members alive or suspect, in their ckit state
    /// (none heard yet is a viewer), and only participants own keys for
    /// writes. The hasher is [`NodeOptions::hasher`]. An error when fewer
    /// than `n` participants are known.
    ///
    /// ```no_run
    /// # async fn demo(node: gossiphttp::cluster::Node) -> Result<(), Box<dyn std::error::Error>> {
    /// use gossiphttp::ckit::shard::string_key;
    ///
    /// let owners = node.lookup(string_key("tenant-42"), 1)?;
    /// if owners[0].is_self {
    ///     // This node owns tenant-42: do its work here.
    /// }
    /// # Ok(()) }
    /// ```
    pub fn lookup(&self, key: Key, n: usize) -> Result<Vec<Peer>, LookupError> {
        self.lookup_for(key, n, Op::ReadWrite)
    }

    /// [`lookup`](Self::lookup) for `op`: [`Op::Read`] also counts peers
    /// that are terminating (ckit's `OpRead`).
    pub fn lookup_for(&self, key: Key, n: usize, op: Op) -> Result<Vec<Peer>, LookupError> {
        let members = self.view.borrow().clone();
        self.owners.lookup(&members, self.hasher, key, n, op)
    }

    /// A receiver that sees every new membership table.
    pub fn watch_members(&self) -> watch::Receiver<Arc<Vec<MemberView>>> {
        self.view.clone()
    }

    /// Waits until `ready` holds for the membership table, or `timeout`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut ready: impl FnMut(&[MemberView]) -> bool,
    ) -> Result<Vec<MemberView>, Error> {
        let mut view = self.view.clone();
        let result = tokio::time::timeout(timeout, async {
            view.wait_for(|v| ready(v))
                .await
                .map(|v| v.as_ref().clone())
        })
        .await;
        match result {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(Error::Shutdown),
            Err(_) => Err(Error::Timeout {
                what: "membership condition",
                after: timeout,
            }),
        }
    }

    /// Sets `key` to `value` in this node's gossiped state: every member
    /// learns it (see [`subscribe`](Self::subscribe)). Keep values small:
    /// they ride on membership packets (at most about 1 KB each).
    pub async fn set_state(
        &self,
        key: impl Into<String>,
        value: impl Into<Bytes>,
    ) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::SetState {
                key: key.into(),
                value: value.into(),
                reply,
            })
            .map_err(|_| Error::Shutdown)?;
        rx.await.unwrap_or(Err(Error::Shutdown))
    }

    /// Every member's custom state known here (the latest value of each
    /// key), this node's own included.
    pub fn state(&self) -> Vec<StateUpdate> {
        let all = self.shared.state.lock().unwrap();
        let mut out = Vec::new();
        for (origin, (version, state)) in all.iter() {
            for (key, value) in state {
                out.push(StateUpdate {
                    origin: origin.clone(),
                    key: key.clone(),
                    version: *version,
                    value: value.clone(),
                });
            }
        }
        out
    }

    /// Changes this node's ckit state (viewer -> participant ->
    /// terminating, as ckit allows); gossiped to every member, Go ckit nodes
    /// included.
    pub async fn set_ckit_state(&self, state: CkitState) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::SetCkitState { state, reply })
            .map_err(|_| Error::Shutdown)?;
        rx.await.unwrap_or(Err(Error::Shutdown))
    }

    /// New state updates as they arrive from any member.
    pub fn subscribe(&self) -> bcast::Receiver<StateUpdate> {
        self.shared
            .updates
            .get_or_init(|| bcast::channel(Shared::UPDATES_CAPACITY).0)
            .subscribe()
    }

    /// Metrics in the Prometheus text format: the transport's and
    /// `cluster_members{state=...}`.
    pub fn metrics_text(&self) -> String {
        http::encode(&self.registry)
    }

    /// Leaves gracefully (others see this member as `left`), then stops:
    /// the leave goes straight to every member this one knows, all at once,
    /// and is gossiped too; this returns once every member answered, or
    /// after [`NodeOptions::leave_timeout`], and the transport and server
    /// have stopped.
    pub async fn leave(mut self) {
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Leave { reply }).is_ok() {
            // The actor bounds the leave by `leave_timeout` from when it
            // takes the command; a starved actor may take it late, and the
            // leave must end all the same: half as long again at most.
            let limit = self.leave_timeout + self.leave_timeout / 2;
            if tokio::time::timeout(limit, done).await.is_err() {
                tracing::warn!(?limit, "leave: stopping before every member was told");
            }
        }
        self.stop(Stop::InOrder).await;
    }

    /// Every node of `nodes` leaves at once (others see each as `left`), as
    /// a process running many members does when it stops, and stops: the
    /// members stop gossiping at once, and every member's leave goes
    /// straight to each member outside `nodes` that any of them knows,
    /// packed together, from a thread of its own (the private `goodbye` module): one
    /// request per member outside rather than one per member inside and
    /// outside, waiting on no member's busy actor or connection allowance.
    /// Returns once every member outside answered and the nodes stopped,
    /// or once the first node's [`NodeOptions::leave_timeout`] passed (what
    /// is left of their work then ends in the background).
    pub async fn leave_all(mut nodes: Vec<Node>) {
        let Some(first) = nodes.first() else {
            return;
        };
        let names: HashSet<String> = nodes.iter().map(|n| n.id.name.clone()).collect();
        let views: Vec<Arc<Vec<MemberView>>> =
            nodes.iter().map(|n| n.view.borrow().clone()).collect();
        let leavers: Vec<goodbye::Leaver> = nodes
            .iter()
            .zip(&views)
            .map(|(node, view)| goodbye::Leaver {
                name: node.id.name.clone(),
                incarnation: view.iter().find(|m| m.local).map_or(0, |m| m.incarnation),
            })
            .collect();
        let targets = goodbye::outside_members(
            views.iter().map(|v| v.as_slice()),
            &names,
            first.outgoing_filter.as_ref(),
        );
        let leave_timeout = first.leave_timeout;
        let goodbyes = match goodbye::leave_packets(&leavers, &first.label) {
            Ok(packets) => Some(goodbye::send_leaves(
                first.transport.options().clone(),
                packets,
                targets.clone(),
                leave_timeout,
            )),
            Err(e) => {
                tracing::warn!(error = %e, "leave not encoded");
                None
            }
        };
        // No member gossips from here on (nor refutes its own leave when
        // gossip brings it back): the process's work shrinks to stopping.
        for node in &nodes {
            node.actor.abort();
        }
        // The stops are polled first: each transport drops its queued
        // packets at once, so none of them (an old alive message) reaches
        // a member outside after the leaves do.
        let stops =
            futures_util::future::join_all(nodes.iter_mut().map(|node| node.stop(Stop::InOrder)));
        let stopped = tokio::time::timeout(leave_timeout, stops);
        let (stopped, told) = futures_util::future::join(stopped, async {
            match goodbyes {
                Some(sending) => sending.await,
                None => 0,
            }
        })
        .await;
        if stopped.is_err() {
            tracing::warn!("leave: members still stopping; the rest ends in the background");
        }
        tracing::info!(
            members = leavers.len(),
            told,
            of = targets.len(),
            "left together"
        );
    }

    /// Stops at once without leaving, as a crash would: others will find
    /// this member dead.
    pub async fn kill(mut self) {
        self.stop(Stop::Crash).await;
    }

    async fn stop(&mut self, how: Stop) {
        self.actor.abort();
        // Transport first: it ends open streams, so the server's graceful
        // shutdown has nothing to wait for.
        self.transport.shutdown().await;
        if let Some(server) = self.server.take() {
            match how {
                // Whatever peers still have under way with a member that
                // stopped gossiping carries nothing it needs: half a
                // second for it.
                Stop::InOrder => server.shutdown_within(Duration::from_millis(500)).await,
                // No GOAWAY: peers see their connections to it end in an
                // error, as after a `kill -9`.
                Stop::Crash => server.abort().await,
            }
        }
    }
}

/// How [`Node::stop`] ends the member's server.
enum Stop {
    /// `GOAWAY`, and a moment for requests under way (after a leave).
    InOrder,
    /// Connections dropped as a crashed process's are ([`Node::kill`]).
    Crash,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.actor.abort();
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}
