//! `gossiphttp node`: run one cluster member (memberlist over gossiphttp,
//! with ckit's node states), able to join a Go ckit / Grafana Alloy cluster.

use crate::output::{describe, emit, CmdResult, Failure};
use crate::serve::ServeArgs;
use clap::{Args, ValueEnum};
use gossiphttp::ckit::shard::Hasher;
use gossiphttp::cluster::{CkitState, MembershipConfig, Node, NodeOptions};
use gossiphttp::ClientTls;
use std::path::PathBuf;

/// The memberlist settings a node starts from.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Preset {
    /// memberlist's DefaultLANConfig: probe every 1 s, push-pull every 30 s.
    Lan,
    /// What grafana/ckit (and Alloy) nodes use: probe every 5 s, timeout 2 s,
    /// no TCP pings.
    Ckit,
    /// Faster failure detection for local clusters (probe every 200 ms).
    Fast,
}

/// The ckit node state announced at start.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AnnouncedState {
    /// Owns keys in ckit's sharding.
    Participant,
    /// Sees the cluster, owns no keys.
    Viewer,
}

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// This member's name, unique in the cluster (Alloy: --cluster.node-name).
    #[arg(long, env = "GOSSIPHTTP_NAME", help_heading = "Cluster")]
    name: String,
    /// Address to listen on.
    #[arg(
        long,
        default_value = "127.0.0.1:7946",
        value_name = "HOST:PORT",
        env = "GOSSIPHTTP_LISTEN",
        help_heading = "Cluster"
    )]
    listen: String,
    /// The ip:port other members reach this node at, when it is not the
    /// listen address (behind NAT, in a container; Alloy:
    /// --cluster.advertise-address). Without a port, or with port 0, the
    /// listen port (as memberlist's AdvertisePort 0). A host name is
    /// resolved at start.
    #[arg(
        long,
        value_name = "HOST[:PORT]",
        env = "GOSSIPHTTP_ADVERTISE",
        help_heading = "Cluster"
    )]
    advertise: Option<String>,
    #[arg(
        long,
        value_name = "ENTRY,...",
        value_delimiter = ',',
        env = "GOSSIPHTTP_JOIN",
        help_heading = "Cluster",
        help = "Members to join, comma-separated: ip:port, name:port (A/AAAA) or \
                _service._proto.name (SRV); resolved again on every attempt (Alloy: \
                --cluster.join-addresses)",
        long_help = gossiphttp::discovery::JOIN_HELP
    )]
    join: Vec<gossiphttp::discovery::JoinEntry>,
    /// The cluster's label: traffic with another label is refused (Alloy:
    /// --cluster.name).
    #[arg(
        long,
        value_name = "NAME",
        env = "GOSSIPHTTP_LABEL",
        help_heading = "Cluster"
    )]
    label: Option<String>,
    /// Accept traffic without a label although --label is set (during a
    /// rollout that adds a label).
    #[arg(long, env = "GOSSIPHTTP_SKIP_INBOUND_LABEL_CHECK", help_heading = "Cluster",
          value_parser = clap::builder::BoolishValueParser::new())]
    skip_inbound_label_check: bool,
    /// The ckit node state to announce at start. Later, SIGUSR1 makes a
    /// viewer a participant, SIGUSR2 a participant terminating.
    #[arg(
        long,
        value_enum,
        default_value = "participant",
        env = "GOSSIPHTTP_CKIT_STATE",
        help_heading = "Cluster"
    )]
    ckit_state: AnnouncedState,
    /// How keys are sharded between the participants, as ckit's `shard`
    /// package does it: ring (Alloy's, 512 tokens per member), ring:N,
    /// rendezvous or multiprobe. Every member must use the same; it is what
    /// /api/v1/shards and the page measure unless asked for another.
    #[arg(
        long,
        value_name = "HASHER",
        default_value = "ring",
        env = "GOSSIPHTTP_HASHER",
        help_heading = "Cluster"
    )]
    hasher: Hasher,
    /// The memberlist settings: lan (memberlist's defaults), ckit (what Go
    /// ckit and Alloy nodes use) or fast (local clusters).
    #[arg(
        long,
        value_enum,
        default_value = "lan",
        env = "GOSSIPHTTP_PRESET",
        help_heading = "Cluster"
    )]
    preset: Preset,
    /// Same as --preset fast.
    #[arg(long, hide = true)]
    fast: bool,
    /// With --tls-cert, peers are reached over TLS too, trusting the CA
    /// certificates in this PEM file (default: --tls-cert itself).
    #[arg(
        long,
        value_name = "FILE",
        env = "GOSSIPHTTP_TLS_CA",
        help_heading = "TLS"
    )]
    tls_ca: Option<PathBuf>,
    /// With --tls-cert, the certificate this node presents to peers that
    /// ask for one (mutual TLS); default: --tls-cert.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_client_key",
        env = "GOSSIPHTTP_TLS_CLIENT_CERT",
        help_heading = "TLS"
    )]
    tls_client_cert: Option<PathBuf>,
    /// The private key for --tls-client-cert.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_client_cert",
        env = "GOSSIPHTTP_TLS_CLIENT_KEY",
        help_heading = "TLS"
    )]
    tls_client_key: Option<PathBuf>,
    /// With --tls-cert, the name to verify in peers' certificates instead
    /// of their address (Alloy: --cluster.tls-server-name).
    #[arg(
        long,
        value_name = "NAME",
        env = "GOSSIPHTTP_TLS_SERVER_NAME",
        help_heading = "TLS"
    )]
    tls_server_name: Option<String>,
    #[command(flatten)]
    serve: ServeArgs,
}

/// The flags that set how the node dials its peers over TLS, with their
/// environment variables: they apply only when it serves TLS.
const CLIENT_TLS_FLAGS: [(&str, &str); 4] = [
    ("--tls-ca", "GOSSIPHTTP_TLS_CA"),
    ("--tls-client-cert", "GOSSIPHTTP_TLS_CLIENT_CERT"),
    ("--tls-client-key", "GOSSIPHTTP_TLS_CLIENT_KEY"),
    ("--tls-server-name", "GOSSIPHTTP_TLS_SERVER_NAME"),
];

/// Refuses the client-side TLS flags without --tls-cert: a node dials TLS
/// only when it serves it, so they would be ignored. (clap's `requires`
/// would refuse them too, but its message lists --tls-cert as missing
/// without saying which flag needs it, nor that the flag came from a
/// variable.)
fn check_client_tls_flags(args: &NodeArgs) -> Result<(), Failure> {
    if args.serve.tls_cert.is_some() {
        return Ok(());
    }
    let given = [
        args.tls_ca.is_some(),
        args.tls_client_cert.is_some(),
        args.tls_client_key.is_some(),
        args.tls_server_name.is_some(),
    ];
    let mut named: Vec<String> = CLIENT_TLS_FLAGS
        .iter()
        .zip(given)
        .filter(|(_, given)| *given)
        .map(|((flag, var), _)| format!("{flag} (or {var})"))
        .collect();
    let Some(last) = named.pop() else {
        return Ok(());
    };
    let (flags, them, verb) = if named.is_empty() {
        (last, "it", "needs")
    } else {
        (format!("{} and {last}", named.join(", ")), "them", "need")
    };
    Err(Failure::usage(format!(
        "{flags} {verb} --tls-cert/--tls-key: a node dials its peers over TLS \
         only when it serves TLS, and would ignore {them}; give --tls-cert and \
         --tls-key, or drop {them}"
    )))
}

pub async fn run(args: NodeArgs) -> CmdResult {
    check_client_tls_flags(&args)?;
    let mut options = NodeOptions::new(args.name.clone());
    options.membership = match args.preset {
        Preset::Lan | Preset::Fast => MembershipConfig::lan(),
        Preset::Ckit => MembershipConfig::ckit(),
    };
    if args.fast || matches!(args.preset, Preset::Fast) {
        options = options.fast();
    }
    options.advertise_addr = args.advertise.clone();
    options.join = args.join.iter().map(ToString::to_string).collect();
    options.label = args.label.unwrap_or_default();
    options.skip_inbound_label_check = args.skip_inbound_label_check;
    options.ckit_state = match args.ckit_state {
        AnnouncedState::Participant => CkitState::Participant,
        AnnouncedState::Viewer => CkitState::Viewer,
    };
    options.hasher = args.hasher;
    // Members are peers: the server flags (token included) also set what
    // this node sends.
    args.serve.apply(&mut options.transport)?;
    if let (Some(cert), Some(key)) = (&args.serve.tls_cert, &args.serve.tls_key) {
        let ca = args.tls_ca.as_ref().unwrap_or(cert);
        let client_cert = args.tls_client_cert.as_ref().unwrap_or(cert);
        let client_key = args.tls_client_key.as_ref().unwrap_or(key);
        let mut client = ClientTls::from_pem_files_with_client_cert(ca, client_cert, client_key)
            .map_err(|e| Failure::usage(format!("--tls-ca: {}", describe(&e))))?;
        if let Some(name) = &args.tls_server_name {
            client = client
                .with_server_name(name)
                .map_err(|e| Failure::usage(format!("--tls-server-name: {}", describe(&e))))?;
        }
        options.transport.client_tls = Some(client);
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| Failure::runtime(format!("cannot listen on {}: {e}", args.listen)))?;
    let node = Node::start(options, listener)
        .await
        .map_err(|e| Failure::usage(describe(&e)))?;
    let addr = &node.id().addr;
    let scheme = if args.serve.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    emit(&format!(
        "node {} listening on {addr} (members: {scheme}://{addr}/api/v1/members, page: {scheme}://{addr}/)",
        args.name,
    ));
    tokio::select! {
        _ = crate::signals::shutdown() => {}
        _ = crate::signals::ckit_state_changes(&node) => {}
    }
    node.leave().await;
    Ok(())
}
