//! Membership over gossiphttp: a SWIM cluster member (on [foca]) that uses
//! the transport for its packets and `/stream` for full-state syncs.
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
//! node.set_state("role", "leader").await?;          // gossiped to every member
//! for m in node.members() {
//!     println!("{} {} {:?}", m.name, m.addr, m.state);
//! }
//! node.leave().await;                                  // seen as "left", not dead
//! # Ok(()) }
//! ```
//!
//! Besides the transport endpoints, a node's port answers `GET /` (a live
//! membership page), `GET /api/v1/members` (JSON) and `GET /metrics`
//! (transport metrics and `cluster_members{state=...}`).

mod actor;
mod broadcast;
mod http;
mod identity;
mod sync;

pub use broadcast::StateUpdate;
pub use foca::Config as MembershipConfig;
pub use identity::NodeId;

use crate::{Error, Options, Server, Transport};
use actor::{Actor, Command, MemberGauges};
use bytes::Bytes;
use foca::{AccumulatingRuntime, Foca, PostcardCodec};
use serde::Serialize;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::{broadcast as bcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::time::DelayQueue;

/// Decides whether this node may send to a peer address; for fault
/// injection (partitions) in tests. `true` lets the packet or sync through.
pub type PeerFilter = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// How a [`Node`] runs.
#[derive(Clone)]
#[non_exhaustive]
pub struct NodeOptions {
    /// This member's name, unique in the cluster.
    pub name: String,
    /// The `host:port` other members reach this node at; defaults to the
    /// listener's address.
    pub advertise_addr: Option<String>,
    /// Members to join through (`host:port`); retried while the node knows
    /// no live member.
    pub join: Vec<String>,
    /// The transport's options (TLS, timeouts, queues).
    pub transport: Options,
    /// foca's SWIM settings: probe period, suspicion timeout, gossip fanout.
    pub membership: MembershipConfig,
    /// How often to swap full state with a random member (heals partitions
    /// and missed gossip). Default 30 s.
    pub sync_interval: Duration,
    /// How often to announce to the join list while alone. Default 5 s.
    pub rejoin_interval: Duration,
    /// How long [`Node::leave`] keeps running so the leave notice goes out.
    pub leave_grace: Duration,
    /// Drops outgoing packets and syncs to addresses it refuses (tests).
    pub outgoing_filter: Option<PeerFilter>,
}

impl NodeOptions {
    /// Defaults for a LAN cluster of a few dozen members (memberlist's LAN
    /// profile, via foca).
    pub fn new(name: impl Into<String>) -> Self {
        NodeOptions {
            name: name.into(),
            advertise_addr: None,
            join: Vec::new(),
            transport: Options::default(),
            membership: MembershipConfig::new_lan(NonZeroU32::new(32).expect("nonzero")),
            sync_interval: Duration::from_secs(30),
            rejoin_interval: Duration::from_secs(5),
            leave_grace: Duration::from_millis(500),
            outgoing_filter: None,
        }
    }

    /// Faster failure detection, for loopback clusters and tests: probes
    /// every 250 ms, a member is dead 1.5 s after suspicion.
    pub fn fast(mut self) -> Self {
        let m = &mut self.membership;
        m.probe_period = Duration::from_millis(250);
        m.probe_rtt = Duration::from_millis(100);
        m.suspect_to_down_after = Duration::from_millis(1500);
        m.periodic_gossip = Some(foca::PeriodicParams {
            frequency: Duration::from_millis(100),
            num_members: NonZeroUsize::new(3).expect("nonzero"),
        });
        m.periodic_announce_to_down_members = Some(foca::PeriodicParams {
            frequency: Duration::from_secs(1),
            num_members: NonZeroUsize::new(2).expect("nonzero"),
        });
        self.sync_interval = Duration::from_secs(2);
        self.rejoin_interval = Duration::from_millis(500);
        self.leave_grace = Duration::from_millis(300);
        self.transport.packet_timeout = Duration::from_secs(1);
        self
    }
}

impl std::fmt::Debug for NodeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeOptions")
            .field("name", &self.name)
            .field("advertise_addr", &self.advertise_addr)
            .field("join", &self.join)
            .field("sync_interval", &self.sync_interval)
            .finish_non_exhaustive()
    }
}

/// A member's state as this node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    /// Answering probes.
    Alive,
    /// Missed a probe; dead unless it refutes in time.
    Suspect,
    /// Declared down without saying goodbye.
    Dead,
    /// Left the cluster on purpose.
    Left,
}

impl MemberState {
    /// `"alive"`, `"suspect"`, `"dead"` or `"left"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Dead => "dead",
            MemberState::Left => "left",
        }
    }
}

/// One row of the membership table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberView {
    /// The member's name.
    pub name: String,
    /// Its advertised address.
    pub addr: String,
    /// Its state.
    pub state: MemberState,
    /// Its SWIM incarnation (grows as it refutes suspicions).
    pub incarnation: u16,
    /// Which life of the member this is (grows on restart).
    pub generation: u64,
    /// True for the node's own row.
    pub local: bool,
}

impl MemberView {
    fn new(id: &NodeId, state: MemberState, incarnation: u16) -> Self {
        MemberView {
            name: id.name.clone(),
            addr: id.addr.clone(),
            state,
            incarnation,
            generation: id.generation,
            local: false,
        }
    }

    fn local(mut self) -> Self {
        self.local = true;
        self
    }
}

/// A running cluster member.
pub struct Node {
    id: NodeId,
    transport: Transport,
    server: Option<Server>,
    commands: mpsc::UnboundedSender<Command>,
    view: watch::Receiver<Arc<Vec<MemberView>>>,
    learned: Arc<Mutex<broadcast::Learned>>,
    updates: bcast::Sender<StateUpdate>,
    actor: JoinHandle<()>,
    syncs: JoinHandle<()>,
    registry: Arc<prometheus_client::registry::Registry>,
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
        let addr = options
            .advertise_addr
            .clone()
            .unwrap_or_else(|| local.to_string());
        let _: crate::PeerAddr = addr.parse()?;
        let id = NodeId {
            name: options.name.clone(),
            addr,
            // A restart is a new life: it must win over the old one.
            generation: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_micros() as u64)
                .unwrap_or(1),
        };
        let mut transport_options = options.transport.clone();
        transport_options.serve_metrics = false; // the node serves its own /metrics
        let (transport, transport_metrics) = Transport::new(transport_options)?;
        if let Ok(sock) = id.addr.parse::<std::net::SocketAddr>() {
            let _ = transport.final_advertise_addr(&sock.ip().to_string(), sock.port());
        }

        let gauges = MemberGauges::default();
        let mut registry = prometheus_client::registry::Registry::default();
        transport_metrics.register_into(&mut registry);
        registry.register(
            "cluster_members",
            "Members of the cluster by state, as this node sees them",
            gauges.clone(),
        );
        let registry = Arc::new(registry);

        let learned = Arc::new(Mutex::new(broadcast::Learned::default()));
        let (updates, _) = bcast::channel(1024);
        let handler = broadcast::Handler {
            learned: learned.clone(),
            updates: updates.clone(),
        };
        let mut membership = options.membership.clone();
        // Gossip packets must fit the transport's packet limit.
        let max_packet = membership
            .max_packet_size
            .get()
            .min(options.transport.max_packet_size);
        membership.max_packet_size = NonZeroUsize::new(max_packet.max(512)).expect("nonzero");
        let foca = Foca::with_custom_broadcast(
            id.clone(),
            membership,
            rand::make_rng(),
            PostcardCodec,
            handler,
        );

        let (view_tx, view) = watch::channel(Arc::new(Vec::new()));
        let (commands, command_rx) = mpsc::unbounded_channel();
        let actor = Actor {
            foca,
            rt: AccumulatingRuntime::new(),
            timers: DelayQueue::new(),
            transport: transport.clone(),
            learned: learned.clone(),
            view: view_tx,
            gauges,
            options: options.clone(),
            commands: command_rx,
            self_commands: commands.clone(),
            rng: rand::make_rng(),
            version: 0,
            was_down: Default::default(),
            leaving: false,
        };

        let fallback = http::routes(view.clone(), registry.clone());
        let server =
            transport.serve_service(listener, transport.handler().with_fallback(fallback))?;
        let syncs = tokio::spawn(actor::serve_syncs(
            transport.clone(),
            commands.clone(),
            options.outgoing_filter.clone(),
        ));
        let actor = tokio::spawn(actor.run());
        tracing::info!(name = %id.name, addr = %id.addr, "node started");
        Ok(Node {
            id,
            transport,
            server: Some(server),
            commands,
            view,
            learned,
            updates,
            actor,
            syncs,
            registry,
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

    /// The membership table now, this node included, sorted by name.
    pub fn members(&self) -> Vec<MemberView> {
        self.view.borrow().as_ref().clone()
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

    /// Every member's gossiped state known here (the latest version of each
    /// key), this node's own included.
    pub fn state(&self) -> Vec<StateUpdate> {
        let learned = self.learned.lock().unwrap();
        let mut all: Vec<StateUpdate> = learned
            .state
            .iter()
            .map(|((origin, key), (version, value))| StateUpdate {
                origin: origin.clone(),
                key: key.clone(),
                version: *version,
                value: value.clone(),
            })
            .collect();
        all.sort_by(|a, b| (&a.origin, &a.key).cmp(&(&b.origin, &b.key)));
        all
    }

    /// New state updates as they arrive from any member.
    pub fn subscribe(&self) -> bcast::Receiver<StateUpdate> {
        self.updates.subscribe()
    }

    /// Metrics in the Prometheus text format: the transport's and
    /// `cluster_members{state=...}`.
    pub fn metrics_text(&self) -> String {
        http::encode(&self.registry)
    }

    /// Leaves gracefully (others see this member as `left`), then stops.
    pub async fn leave(mut self) {
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Leave { reply }).is_ok() {
            let _ = done.await;
        }
        self.stop().await;
    }

    /// Stops at once without leaving, as a crash would: others will find
    /// this member dead.
    pub async fn kill(mut self) {
        self.actor.abort();
        self.stop().await;
    }

    async fn stop(&mut self) {
        self.actor.abort();
        self.syncs.abort();
        // Transport first: it ends open streams, so the server's graceful
        // shutdown has nothing to wait for.
        self.transport.shutdown().await;
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.actor.abort();
        self.syncs.abort();
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}
