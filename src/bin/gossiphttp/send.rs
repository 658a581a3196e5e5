//! `gossiphttp send`: deliver one packet N times, each answered `200`.

use crate::client::ClientArgs;
use crate::output::{describe, emit, CmdResult, Failure};
use clap::Args;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct SendArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// How many times to send the packet.
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    count: u64,
}

pub async fn run(args: SendArgs) -> CmdResult {
    let (transport, payload) = args.client.transport()?;
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
