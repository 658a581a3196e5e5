//! `gossiphttp`: an operator's tool to talk to any gossiphttp peer, Go
//! (grafana/ckit) or Rust, over h2c or TLS.
//!
//! # Commands
//!
//! - `gossiphttp listen --addr HOST:PORT [--echo-streams] [server flags]`
//!   serves the transport's endpoints (and `GET /metrics`), prints
//!   `listening on ADDR` (the address actually bound, so port `0` works),
//!   then one JSON line per received packet and per stream event (`stream`
//!   numbers the streams of the run from 1):
//!
//!   ```text
//!   {"event":"packet","from":"127.0.0.1:53122","len":5,"hex":"68656c6c6f"}
//!   {"event":"stream_open","stream":1,"from":"127.0.0.1:53130"}
//!   {"event":"stream_data","stream":1,"from":"127.0.0.1:53130","len":2,"hex":"6869"}
//!   {"event":"stream_close","stream":1,"from":"127.0.0.1:53130","bytes":2}
//!   ```
//!
//!   `stream_close` carries `"error"` when the stream ended abnormally.
//!   With `--echo-streams` every byte a stream sends is written back, and
//!   the write side is closed once the peer's side ends. It runs until
//!   Ctrl-C or SIGTERM.
//!
//! - `gossiphttp send --to HOST:PORT --hex HEX [--count N] [client flags]`
//!   delivers the packet `N` times (default 1), each time waiting for the
//!   peer's `200`. It exits 0 only if every packet was answered `200`.
//!
//! - `gossiphttp stream --to HOST:PORT --hex HEX [client flags]` opens a
//!   stream, writes the bytes, closes its write side, reads what comes back
//!   until end of stream or the timeout, and prints it as hex on one line.
//!   It exits 0 when the stream could be opened.
//!
//! - `gossiphttp node --name NAME [--listen HOST:PORT] [--join ADDR,...]
//!   [--fast] [--tls-ca FILE] [server flags]` runs one cluster member and
//!   serves `/metrics`, `/api/v1/members` and a live page at `/`; with TLS
//!   it reaches its peers over TLS too (and presents its certificate to
//!   them). With the `cluster` feature (on by default). Ctrl-C or SIGTERM
//!   leaves the cluster; SIGUSR1 makes a viewer a ckit participant, SIGUSR2
//!   a participant terminating.
//!
//! - `gossiphttp cluster [--nodes N] [--base-port PORT]` runs N members on
//!   loopback in this process and prints the membership table as it
//!   converges. With the `cluster` feature.
//!
//! Server flags (`listen`, `node`): `--tls-cert FILE --tls-key FILE` serve
//! TLS; `--tls-client-ca FILE` also requires client certificates issued by
//! that CA (mutual TLS); `--accept-http1` accepts HTTP/1.1 (for Node's
//! `fetch` and workerd; the Go reference answers `505`); `--cors ORIGIN`
//! (repeatable or comma-separated) lets browser pages from those origins
//! call the endpoints; `--token TOKEN` requires `Authorization: Bearer
//! TOKEN` (and `node` sends it).
//!
//! Client flags (`send`, `stream`): `--timeout SECS` (default 5);
//! `--http1`; h2c unless `--tls` is given; with `--tls`, trust comes from
//! `--ca FILE` (a PEM CA bundle) or `--insecure` (accept any certificate:
//! testing only), and `--tls-cert FILE --tls-key FILE` (with `--ca`)
//! present a client certificate; `--token TOKEN` sends the bearer token.
//!
//! Every TLS and access flag can come from the environment instead
//! (`--help` names each variable). Give the token as `GOSSIPHTTP_TOKEN`
//! rather than `--token`: command lines show in `ps`.
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
//! {"event":"stream_open","stream":1,"from":"127.0.0.1:53130"}
//! {"event":"stream_data","stream":1,"from":"127.0.0.1:53130","len":2,"hex":"6869"}
//! {"event":"stream_close","stream":1,"from":"127.0.0.1:53130","bytes":2}
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
//! Logs go to stderr; set `RUST_LOG` (default `warn`; `info` for `node`)
//! for more.

mod client;
#[cfg(feature = "cluster")]
mod cluster;
mod listen;
#[cfg(feature = "cluster")]
mod node;
mod output;
mod send;
mod serve;
mod signals;
mod stream;

use clap::{Parser, Subcommand};
use std::io::Write;
use std::process::ExitCode;

/// mimalloc, not glibc's malloc: `cluster --nodes 500` runs 500 members'
/// engines on a few threads, and with glibc's allocator a fifth of its CPU
/// went to `malloc` and `free` (their arenas' locks and consolidation) and
/// the cluster never converged; with mimalloc it does (benches/RESULTS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    Listen(listen::ListenArgs),
    /// Send a packet (N times) and wait for the peer's 200 for each.
    Send(send::SendArgs),
    /// Open a stream, write bytes, and print what comes back as hex.
    Stream(stream::StreamArgs),
    /// Run one cluster member (memberlist over gossiphttp, ckit-compatible:
    /// joins Go ckit and Alloy clusters); serves /metrics,
    /// /api/v1/members and a live membership page at / on the same port.
    #[cfg(feature = "cluster")]
    Node(node::NodeArgs),
    /// Run a local cluster of N members on loopback in this process and
    /// print the membership table as it converges; Ctrl-C stops it.
    #[cfg(feature = "cluster")]
    Cluster(cluster::ClusterArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // One cluster member does little at a time (about 4 packets a second at
    // rest), and a second worker only cost it: a node
    // on one worker used 0.088% of a core at rest among 100, on two 0.109%
    // (benches/RESULTS.md). tokio's TOKIO_WORKER_THREADS still decides when
    // set. `cluster` carries every member of its cluster and keeps them all.
    #[cfg(feature = "cluster")]
    if matches!(cli.command, Command::Node(_)) && std::env::var_os("TOKIO_WORKER_THREADS").is_none()
    {
        builder.worker_threads(1);
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "error: cannot start the async runtime: {e}"
            );
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run(cli));
    // Work that outlived its command (a stopped cluster's connections
    // still closing) is not waited for: the process is exiting, and
    // dropping a large cluster's leftovers took over a second.
    runtime.shutdown_background();
    code
}

async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Listen(args) => {
            init_logging("warn");
            listen::run(args).await
        }
        Command::Send(args) => {
            init_logging("warn");
            send::run(args).await
        }
        Command::Stream(args) => {
            init_logging("warn");
            stream::run(args).await
        }
        // A node logs joins, suspicions and deaths.
        #[cfg(feature = "cluster")]
        Command::Node(args) => {
            init_logging("info");
            node::run(args).await
        }
        #[cfg(feature = "cluster")]
        Command::Cluster(args) => {
            init_logging("warn");
            cluster::run(args).await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            let _ = writeln!(std::io::stderr(), "error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// Logs to stderr at `default` level unless `RUST_LOG` says otherwise, in
/// colour only on a terminal (escape codes would litter a log file).
fn init_logging(default: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
