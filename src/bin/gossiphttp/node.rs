//! `gossiphttp node`: run one cluster member (SWIM over gossiphttp).

use crate::output::{describe, emit, CmdResult, Failure};
use crate::serve::ServeArgs;
use clap::Args;
use gossiphttp::cluster::{Node, NodeOptions};
use gossiphttp::ClientTls;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// This member's name, unique in the cluster.
    #[arg(long)]
    name: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7946", value_name = "HOST:PORT")]
    listen: String,
    /// Members to join through, comma-separated.
    #[arg(long, value_name = "HOST:PORT,...", value_delimiter = ',')]
    join: Vec<String>,
    /// Faster failure detection (probes every 250 ms), for local clusters.
    #[arg(long)]
    fast: bool,
    /// With --tls-cert, peers are reached over TLS too, trusting the CA
    /// certificates in this PEM file (default: --tls-cert itself). The
    /// node presents --tls-cert to them, for members that set
    /// --tls-client-ca.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_cert",
        env = "GOSSIPHTTP_TLS_CA",
        help_heading = "TLS"
    )]
    tls_ca: Option<PathBuf>,
    #[command(flatten)]
    serve: ServeArgs,
}

pub async fn run(args: NodeArgs) -> CmdResult {
    let mut options = NodeOptions::new(args.name.clone());
    if args.fast {
        options = options.fast();
    }
    options.join = args.join.into_iter().filter(|a| !a.is_empty()).collect();
    // Members are peers: the server flags (token included) also set what
    // this node sends.
    args.serve.apply(&mut options.transport)?;
    if let (Some(cert), Some(key)) = (&args.serve.tls_cert, &args.serve.tls_key) {
        let ca = args.tls_ca.as_ref().unwrap_or(cert);
        let client = ClientTls::from_pem_files_with_client_cert(ca, cert, key)
            .map_err(|e| Failure::usage(format!("--tls-ca: {}", describe(&e))))?;
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
    crate::shutdown_signal().await;
    node.leave().await;
    Ok(())
}
