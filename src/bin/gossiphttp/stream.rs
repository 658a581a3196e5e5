//! `gossiphttp stream`: open a stream, write bytes, print what comes back.

use crate::client::ClientArgs;
use crate::output::{describe, emit, warn, CmdResult, Failure};
use clap::Args;
use gossiphttp::Transport;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Args)]
pub struct StreamArgs {
    #[command(flatten)]
    client: ClientArgs,
}

pub async fn run(args: StreamArgs) -> CmdResult {
    let (transport, payload) = args.client.transport()?;
    let to = args.client.to.as_str();
    let timeout = args.client.timeout;
    let result = exchange(&transport, to, &payload, timeout).await;
    transport.shutdown().await;
    let received = result?;
    emit(&hex::encode(received));
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
    let mut received = Vec::new();
    // Write and read at once, so a peer that echoes more than the flow
    // control windows hold cannot stall us.
    let (mut reader, mut writer) = tokio::io::split(&mut conn);
    let write = async {
        if let Err(e) = writer.write_all(payload).await {
            warn(&format!("writing to the stream: {e}"));
        } else if let Err(e) = writer.shutdown().await {
            warn(&format!("closing the write side: {e}"));
        }
    };
    let read = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) => {
                    warn(&format!("reading from the stream: {e}"));
                    break;
                }
            }
        }
    };
    let io = async {
        tokio::join!(write, read);
    };
    if tokio::time::timeout(timeout, io).await.is_err() {
        warn(&format!(
            "the peer did not end the stream within {timeout:?}; printing what came back"
        ));
    }
    Ok(received)
}
