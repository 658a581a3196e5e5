//! `gossiphttp listen`: serve the transport and print every packet and
//! stream event as a JSON line.

use crate::output::{describe, emit, CmdResult, Event, Failure};
use crate::serve::ServeArgs;
use clap::Args;
use gossiphttp::{Options, Packet, StreamConn, Transport};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:7946", value_name = "HOST:PORT")]
    addr: String,
    /// Write every byte a stream sends back to it.
    #[arg(long)]
    echo_streams: bool,
    #[command(flatten)]
    serve: ServeArgs,
}

pub async fn run(args: ListenArgs) -> CmdResult {
    let mut options = Options::default();
    options.serve_metrics = true;
    args.serve.apply(&mut options)?;
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
    let mut opened: u64 = 0;
    let signal = crate::signals::shutdown();
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
                    opened += 1;
                    stream_tasks.spawn(handle_stream(conn, opened, args.echo_streams));
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

fn emit_packet(p: &Packet) {
    Event::Packet {
        from: &p.from.to_string(),
        len: p.payload.len(),
        hex: hex::encode(&p.payload),
    }
    .emit();
}

/// Reports one stream's bytes as they arrive (echoing them with `echo`),
/// then its end.
async fn handle_stream(mut conn: StreamConn, stream: u64, echo: bool) {
    let from = conn.remote_addr().to_string();
    Event::StreamOpen {
        stream,
        from: &from,
    }
    .emit();
    let mut bytes: u64 = 0;
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
        bytes += n as u64;
        let data = &buf[..n];
        Event::StreamData {
            stream,
            from: &from,
            len: n,
            hex: hex::encode(data),
        }
        .emit();
        if echo {
            if let Err(e) = conn.write_all(data).await {
                break Some(format!("echoing: {e}"));
            }
        }
    };
    Event::StreamClose {
        stream,
        from: &from,
        bytes,
        error,
    }
    .emit();
}
