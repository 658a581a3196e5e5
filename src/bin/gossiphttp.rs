//! `gossiphttp`: an operator's tool to talk to any gossiphttp peer, Go
//! (grafana/ckit) or Rust, over h2c or TLS.
//!
//! # Commands
//!
//! - `gossiphttp listen --addr HOST:PORT [--tls-cert FILE --tls-key FILE]
//!   [--echo-streams]` serves the transport's endpoints (and `GET /metrics`),
//!   prints `listening on ADDR` (the address actually bound, so port `0`
//!   works), then one JSON line per received packet and per stream event:
//!
//!   ```text
//!   {"event":"packet","from":"127.0.0.1:53122","len":5,"hex":"68656c6c6f"}
//!   {"event":"stream_open","from":"127.0.0.1:53130"}
//!   {"event":"stream_data","from":"127.0.0.1:53130","len":2,"hex":"6869"}
//!   {"event":"stream_close","from":"127.0.0.1:53130","bytes":2}
//!   ```
//!
//!   With `--echo-streams` every byte a stream sends is written back, and
//!   the write side is closed once the peer's side ends. It runs until
//!   Ctrl-C or SIGTERM.
//!
//! - `gossiphttp send --to HOST:PORT --hex HEX [--count N]` delivers the
//!   packet `N` times (default 1), each time waiting for the peer's `200`.
//!   It exits 0 only if every packet was answered `200`.
//!
//! - `gossiphttp stream --to HOST:PORT --hex HEX` opens a stream, writes the
//!   bytes, closes its write side, reads what comes back until end of stream
//!   or the timeout, and prints it as hex on one line. It exits 0 when the
//!   stream could be opened.
//!
//! `send` and `stream` take `--timeout SECS` (default 5) and speak h2c
//! unless `--tls` is given; with `--tls`, trust comes from `--ca FILE` (a PEM
//! CA bundle) or `--insecure` (accept any certificate: testing only).
//!
//! Exit codes: 0 success, 1 a failure talking to the peer (or binding), 2 a
//! usage error (bad flags, invalid hex, unreadable certificates).
//!
//! # Example
//!
//! ```text
//! # terminal 1: a peer that echoes streams
//! $ gossiphttp listen --addr 127.0.0.1:7946 --echo-streams
//! listening on 127.0.0.1:7946
//! {"event":"packet","from":"127.0.0.1:53122","len":5,"hex":"68656c6c6f"}
//! {"event":"packet","from":"127.0.0.1:53122","len":5,"hex":"68656c6c6f"}
//! {"event":"stream_open","from":"127.0.0.1:53130"}
//! {"event":"stream_data","from":"127.0.0.1:53130","len":2,"hex":"6869"}
//! {"event":"stream_close","from":"127.0.0.1:53130","bytes":2}
//!
//! # terminal 2
//! $ gossiphttp send --to 127.0.0.1:7946 --hex 68656c6c6f --count 2
//! sent 2 packets (5 bytes each) to 127.0.0.1:7946
//! $ gossiphttp stream --to 127.0.0.1:7946 --hex 6869
//! 6869
//! $ curl -s http://127.0.0.1:7946/metrics | grep rx_packets_total
//! cluster_transport_rx_packets_total 2
//! $ gossiphttp send --to peer.example.com:7946 --hex 00 --tls --ca ca.pem
//! ```
//!
//! Logs go to stderr; set `RUST_LOG` (default `warn`) for more.

use clap::{Args, Parser, Subcommand};
use gossiphttp::{ClientTls, Options, ServerTls, StreamConn, Transport};
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

/// Exit code for a failure talking to a peer (or serving).
const EXIT_FAILURE: u8 = 1;
/// Exit code for a usage error, as clap uses.
const EXIT_USAGE: u8 = 2;

/// Talk to gossiphttp peers (grafana/ckit's HTTP/2 gossip transport).
#[derive(Debug, Parser)]
#[command(name = "gossiphttp", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the transport and print every packet and stream event as JSON.
    Listen(ListenArgs),
    /// Send a packet (N times) and wait for the peer's 200 for each.
    Send(SendArgs),
    /// Open a stream, write bytes, and print what comes back as hex.
    Stream(StreamArgs),
    /// Run one cluster member (SWIM over gossiphttp); serves /metrics,
    /// /api/v1/members and a live membership page at / on the same port.
    Node(NodeArgs),
    /// Run a local cluster of N members on loopback in this process and
    /// print the membership table as it converges; Ctrl-C stops it.
    Cluster(ClusterArgs),
}

#[derive(Debug, Args)]
struct NodeArgs {
    /// This member's name, unique in the cluster.
    #[arg(long)]
    name: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7946", value_name = "HOST:PORT")]
    listen: String,
    /// Members to join through, comma-separated.
    #[arg(long, value_name = "HOST:PORT,...", value_delimiter = ',')]
    join: Vec<String>,
    /// Serve TLS (h2) with this PEM certificate chain (needs --tls-key);
    /// peers are then reached over TLS too, trusting --tls-ca.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// CA certificates (PEM) to trust for peers; defaults to --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_ca: Option<PathBuf>,
    /// Faster failure detection (probes every 250 ms), for local clusters.
    #[arg(long)]
    fast: bool,
}

#[derive(Debug, Args)]
struct ClusterArgs {
    /// How many members to start.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=200))]
    nodes: u16,
    /// Port of the first member; the others take the following ports.
    #[arg(long, default_value_t = 7946)]
    base_port: u16,
}

#[derive(Debug, Args)]
struct ListenArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:7946", value_name = "HOST:PORT")]
    addr: String,
    /// Serve TLS (h2) with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Write every byte a stream sends back to it.
    #[arg(long)]
    echo_streams: bool,
}

#[derive(Debug, Args)]
struct ClientArgs {
    /// The peer: HOST:PORT, or a URL (http:// or https://).
    #[arg(long, value_name = "HOST:PORT")]
    to: String,
    /// The bytes to send, as hex (e.g. 68656c6c6f).
    #[arg(long, value_name = "HEX")]
    hex: String,
    /// Reach the peer over TLS (https, ALPN h2); needs --ca or --insecure.
    #[arg(long)]
    tls: bool,
    /// With --tls: accept any server certificate (testing only).
    #[arg(long, requires = "tls", conflicts_with = "ca")]
    insecure: bool,
    /// With --tls: trust the CA certificates in this PEM file.
    #[arg(long, value_name = "FILE", requires = "tls")]
    ca: Option<PathBuf>,
    /// Seconds to wait for the peer.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs)]
    timeout: Duration,
    /// Speak HTTP/1.1 instead of HTTP/2 (an extension: for peers such as a
    /// local workerd that only take HTTP/1.1; Go peers answer 505).
    #[arg(long)]
    http1: bool,
}

#[derive(Debug, Args)]
struct SendArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// How many times to send the packet.
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    count: u64,
}

#[derive(Debug, Args)]
struct StreamArgs {
    #[command(flatten)]
    client: ClientArgs,
}

/// A failed command: its message and exit code.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    fn runtime(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_FAILURE,
            message: message.into(),
        }
    }
}

type CmdResult = Result<(), Failure>;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // A node logs joins, suspicions and deaths; the tools only warnings.
    init_logging(match cli.command {
        Command::Node(_) => "info",
        Command::Cluster(_) => "warn",
        _ => "warn",
    });
    let result = match cli.command {
        Command::Listen(args) => listen(args).await,
        Command::Send(args) => send(args).await,
        Command::Stream(args) => stream(args).await,
        Command::Node(args) => node(args).await,
        Command::Cluster(args) => cluster(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            let _ = writeln!(std::io::stderr(), "error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn init_logging(default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if secs.is_nan() || secs <= 0.0 {
        return Err("must be more than 0 seconds".into());
    }
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

/// Decodes hex digits (either case), two per byte.
fn hex_decode(s: &str) -> Result<Vec<u8>, String> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return Err(format!("odd number of digits ({})", bytes.len()));
    }
    bytes
        .chunks_exact(2)
        .enumerate()
        .map(|(i, pair)| {
            let bad = |at: usize| {
                let c = s[at..].chars().next().unwrap_or('?');
                format!("invalid character {c:?} at position {at}")
            };
            let hi = digit(pair[0]).ok_or_else(|| bad(2 * i))?;
            let lo = digit(pair[1]).ok_or_else(|| bad(2 * i + 1))?;
            Ok(hi << 4 | lo)
        })
        .collect()
}

fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// An error with its chain of causes, each once.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !s_text.is_empty() && !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// Writes one line to stdout and flushes it. A closed stdout is ignored:
/// there is no one left to tell.
fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Writes a JSON object with its fields in the given order (`event` first
/// reads best), each value encoded by serde_json.
fn emit_json(fields: &[(&str, Value)]) {
    let mut line = String::from("{");
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        line.push_str(&Value::from(*key).to_string());
        line.push(':');
        line.push_str(&value.to_string());
    }
    line.push('}');
    emit(&line);
}

/// Resolves when Ctrl-C or (on Unix) SIGTERM arrives.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn listen(args: ListenArgs) -> CmdResult {
    let mut options = Options::default();
    options.serve_metrics = true;
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = ServerTls::from_pem_files(cert, key)
                .map_err(|e| Failure::usage(format!("--tls-cert/--tls-key: {}", describe(&e))))?;
            options.server_tls = Some(tls);
        }
        (None, None) => {}
        // clap enforces this too; kept so the rule holds whatever the flags.
        _ => {
            return Err(Failure::usage(
                "--tls-cert and --tls-key must be given together",
            ))
        }
    }
    let (transport, _registry) =
        Transport::new(options).map_err(|e| Failure::usage(describe(&e)))?;
    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .map_err(|e| Failure::runtime(format!("cannot listen on {}: {e}", args.addr)))?;
    let server = transport.serve(listener).map_err(|e| {
        Failure::runtime(format!("cannot serve on {}: {}", args.addr, describe(&e)))
    })?;
    emit(&format!("listening on {}", server.local_addr()));

    let mut packets = transport.packets();
    let mut streams = transport.streams();
    let mut stream_tasks = JoinSet::new();
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            _ = &mut signal => break,
            packet = packets.recv() => match packet {
                Some(p) => emit_packet(&p),
                None => break,
            },
            conn = streams.accept() => match conn {
                Some(conn) => {
                    stream_tasks.spawn(handle_stream(conn, args.echo_streams));
                }
                None => break,
            },
            // Reap finished stream tasks so the set does not grow.
            Some(_) = stream_tasks.join_next(), if !stream_tasks.is_empty() => {}
        }
    }

    tracing::info!("shutting down");
    transport.shutdown().await;
    // Packets received before the shutdown are still worth printing.
    while let Some(p) = packets.try_recv() {
        emit_packet(&p);
    }
    // Open streams fail once the transport is shut down; let them report.
    let drained = tokio::time::timeout(Duration::from_secs(2), async {
        while stream_tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        stream_tasks.abort_all();
    }
    server.shutdown().await;
    Ok(())
}

fn emit_packet(p: &gossiphttp::Packet) {
    emit_json(&[
        ("event", "packet".into()),
        ("from", p.from.to_string().into()),
        ("len", p.payload.len().into()),
        ("hex", hex_encode(&p.payload).into()),
    ]);
}

async fn handle_stream(mut conn: StreamConn, echo: bool) {
    let from = conn.remote_addr().to_string();
    emit_json(&[
        ("event", "stream_open".into()),
        ("from", from.as_str().into()),
    ]);
    let mut total: u64 = 0;
    let mut buf = vec![0u8; 16 * 1024];
    let error = loop {
        let n = match conn.read(&mut buf).await {
            Ok(0) => {
                if echo {
                    if let Err(e) = conn.shutdown().await {
                        break Some(format!("closing the write side: {e}"));
                    }
                }
                break None;
            }
            Ok(n) => n,
            Err(e) => break Some(e.to_string()),
        };
        total += n as u64;
        let data = &buf[..n];
        emit_json(&[
            ("event", "stream_data".into()),
            ("from", from.as_str().into()),
            ("len", n.into()),
            ("hex", hex_encode(data).into()),
        ]);
        if echo {
            if let Err(e) = conn.write_all(data).await {
                break Some(format!("echoing: {e}"));
            }
        }
    };
    let mut fields = vec![
        ("event", "stream_close".into()),
        ("from", from.as_str().into()),
        ("bytes", total.into()),
    ];
    if let Some(e) = error {
        fields.push(("error", e.into()));
    }
    emit_json(&fields);
}

/// A transport for `send` and `stream`, and the payload to send.
fn client(args: &ClientArgs) -> Result<(Transport, Vec<u8>), Failure> {
    let payload = hex_decode(args.hex.trim())
        .map_err(|e| Failure::usage(format!("--hex is not valid hex: {e}")))?;
    let mut options = Options::default();
    options.packet_timeout = args.timeout;
    options.client_http1 = args.http1;
    if args.tls {
        let tls = match (&args.ca, args.insecure) {
            (Some(ca), false) => ClientTls::from_ca_pem_file(ca)
                .map_err(|e| Failure::usage(format!("--ca: {}", describe(&e))))?,
            (None, true) => ClientTls::insecure(),
            (Some(_), true) => {
                return Err(Failure::usage("--ca and --insecure exclude each other"));
            }
            (None, false) => {
                return Err(Failure::usage(
                    "--tls needs to know whom to trust: give --ca FILE to verify the \
                     peer's certificate against a CA, or --insecure to accept any \
                     certificate (testing only)",
                ));
            }
        };
        options.client_tls = Some(tls);
    } else if args.ca.is_some() || args.insecure {
        return Err(Failure::usage("--ca and --insecure only apply with --tls"));
    }
    let (transport, _registry) =
        Transport::new(options).map_err(|e| Failure::usage(describe(&e)))?;
    Ok((transport, payload))
}

async fn send(args: SendArgs) -> CmdResult {
    let (transport, payload) = client(&args.client)?;
    let to = args.client.to.as_str();
    let payload = bytes::Bytes::from(payload);
    let len = payload.len();
    let count = args.count;
    // The transport enforces the packet timeout; this guards against a
    // delivery that somehow outlives it.
    let guard = args.client.timeout * 2 + Duration::from_secs(1);
    let mut result = Ok(());
    for i in 1..=count {
        let outcome = match tokio::time::timeout(guard, transport.send(payload.clone(), to)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(describe(&e)),
            Err(_) => Err(format!("no answer from {to} within {guard:?}")),
        };
        if let Err(e) = outcome {
            let message = if count == 1 {
                e
            } else {
                format!("packet {i} of {count}: {e}")
            };
            result = Err(Failure::runtime(message));
            break;
        }
    }
    transport.shutdown().await;
    result?;
    let noun = if count == 1 { "packet" } else { "packets" };
    let each = if count == 1 { "" } else { " each" };
    let unit = if len == 1 { "byte" } else { "bytes" };
    emit(&format!("sent {count} {noun} ({len} {unit}{each}) to {to}"));
    Ok(())
}

async fn stream(args: StreamArgs) -> CmdResult {
    let (transport, payload) = client(&args.client)?;
    let to = args.client.to.as_str();
    let timeout = args.client.timeout;
    let result = exchange(&transport, to, &payload, timeout).await;
    transport.shutdown().await;
    let received = result?;
    emit(&hex_encode(&received));
    Ok(())
}

/// Dials, writes `payload`, closes the write side and reads until end of
/// stream or `timeout`. Only a failed dial is an error; later trouble is
/// reported on stderr with what was received so far.
async fn exchange(
    transport: &Transport,
    to: &str,
    payload: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, Failure> {
    let mut conn = transport
        .dial(to, timeout)
        .await
        .map_err(|e| Failure::runtime(describe(&e)))?;
    let warn = |msg: String| {
        let _ = writeln!(std::io::stderr(), "warning: {msg}");
    };
    let mut received = Vec::new();
    // Write and read at once, so a peer that echoes more than the flow
    // control windows hold cannot stall us.
    let (mut reader, mut writer) = tokio::io::split(&mut conn);
    let write = async {
        if let Err(e) = writer.write_all(payload).await {
            warn(format!("writing to the stream: {e}"));
        } else if let Err(e) = writer.shutdown().await {
            warn(format!("closing the write side: {e}"));
        }
    };
    let read = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) => {
                    warn(format!("reading from the stream: {e}"));
                    break;
                }
            }
        }
    };
    let io = async {
        tokio::join!(write, read);
    };
    if tokio::time::timeout(timeout, io).await.is_err() {
        warn(format!(
            "the peer did not end the stream within {timeout:?}; printing what came back"
        ));
    }
    Ok(received)
}

async fn node(args: NodeArgs) -> CmdResult {
    use gossiphttp::cluster::{Node, NodeOptions};
    let mut options = NodeOptions::new(args.name.clone());
    if args.fast {
        options = options.fast();
    }
    options.join = args.join.into_iter().filter(|a| !a.is_empty()).collect();
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let server = ServerTls::from_pem_files(cert, key)
            .map_err(|e| Failure::usage(format!("--tls-cert/--tls-key: {}", describe(&e))))?;
        let ca = args.tls_ca.as_ref().unwrap_or(cert);
        let client = gossiphttp::ClientTls::from_ca_pem_file(ca)
            .map_err(|e| Failure::usage(format!("--tls-ca: {}", describe(&e))))?;
        options.transport.server_tls = Some(server);
        options.transport.client_tls = Some(client);
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| Failure::runtime(format!("cannot listen on {}: {e}", args.listen)))?;
    let node = Node::start(options, listener)
        .await
        .map_err(|e| Failure::usage(describe(&e)))?;
    emit(&format!(
        "node {} listening on {} (members: http://{}/api/v1/members, page: http://{}/)",
        args.name,
        node.id().addr,
        node.id().addr,
        node.id().addr
    ));
    shutdown_signal().await;
    node.leave().await;
    Ok(())
}

async fn cluster(args: ClusterArgs) -> CmdResult {
    use gossiphttp::cluster::{Node, NodeOptions};
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
        let mut options = NodeOptions::new(format!("node-{}", i + 1)).fast();
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
    let stop = shutdown_signal();
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
    for node in nodes {
        node.leave().await;
    }
    Ok(())
}

/// One line per member: how many members see it in each state.
fn membership_table(nodes: &[gossiphttp::cluster::Node]) -> String {
    use gossiphttp::cluster::MemberState;
    use std::collections::BTreeMap;
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
