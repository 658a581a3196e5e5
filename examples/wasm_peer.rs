//! A native peer for the JavaScript clients (browser, Node, workerd): a
//! [`Transport`] served over TLS (a self-signed certificate made with rcgen,
//! or PEM files you give) or h2c, with CORS origins and the HTTP/1.1 opt-in
//! as asked. It prints one JSON line per event on stdout and echoes every
//! stream back to its sender.
//!
//! ```text
//! cargo run --example wasm_peer -- [--listen 127.0.0.1:0]
//!     [--tls-dir DIR | --cert cert.pem --key key.pem | --plain]
//!     [--cors https://page.example]... [--http1]
//! ```
//!
//! Lines printed (one JSON object each):
//! - `{"event":"listening","addr":"127.0.0.1:7946","url":"https://127.0.0.1:7946","cert":"…/cert.pem",…}`
//! - `{"event":"packet","from":"127.0.0.1:50000","len":5,"hex":"68656c6c6f"}`
//! - `{"event":"stream_open","from":"…"}`, then, once the peer ended its
//!   side, `{"event":"stream_closed","from":"…","len":N,"hex":"…"}` with
//!   every byte the peer sent (each was echoed back as it arrived).
//!
//! Without `--tls-dir`, `--cert` or `--plain`, the certificate goes to a
//! fresh directory under the system temp dir. The certificate names
//! `127.0.0.1` and `localhost`.

use gossiphttp::{Options, ServerTls, StreamConn, Transport};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Args {
    listen: String,
    tls: Tls,
    cors: Vec<String>,
    http1: bool,
}

enum Tls {
    Plain,
    /// Make a self-signed certificate and write it (and its key) here.
    Generate(PathBuf),
    Files(PathBuf, PathBuf),
}

const USAGE: &str = "usage: wasm_peer [--listen ADDR] [--tls-dir DIR | --cert PEM --key PEM | --plain] [--cors ORIGIN]... [--http1]";

fn parse_args() -> Result<Args, String> {
    let mut listen = "127.0.0.1:0".to_string();
    let (mut tls_dir, mut cert, mut key, mut plain) = (None, None, None, false);
    let mut cors = Vec::new();
    let mut http1 = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--listen" => listen = value("--listen")?,
            "--tls-dir" => tls_dir = Some(PathBuf::from(value("--tls-dir")?)),
            "--cert" => cert = Some(PathBuf::from(value("--cert")?)),
            "--key" => key = Some(PathBuf::from(value("--key")?)),
            "--plain" => plain = true,
            "--cors" => cors.push(value("--cors")?),
            "--http1" => http1 = true,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let tls = match (plain, tls_dir, cert, key) {
        (true, None, None, None) => Tls::Plain,
        (false, Some(dir), None, None) => Tls::Generate(dir),
        (false, None, Some(c), Some(k)) => Tls::Files(c, k),
        (false, None, None, None) => Tls::Generate(
            std::env::temp_dir().join(format!("gossiphttp-wasm-peer-{}", std::process::id())),
        ),
        _ => {
            return Err(format!(
                "pick one of --plain, --tls-dir, --cert with --key\n{USAGE}"
            ))
        }
    };
    Ok(Args {
        listen,
        tls,
        cors,
        http1,
    })
}

/// Writes a self-signed certificate for 127.0.0.1 and localhost to `dir`.
fn generate_cert(dir: &std::path::Path) -> Result<(PathBuf, PathBuf), String> {
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .map_err(|e| format!("generating a certificate: {e}"))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem())
        .and_then(|()| std::fs::write(&key_path, key_pair.serialize_pem()))
        .map_err(|e| format!("writing the certificate to {}: {e}", dir.display()))?;
    Ok((cert_path, key_path))
}

/// Echoes a stream back as it arrives; reports what came in once it ends.
async fn echo(mut conn: StreamConn) {
    let from = conn.remote_addr().to_string();
    println!("{}", json!({ "event": "stream_open", "from": from }));
    let mut received = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let outcome = loop {
        match conn.read(&mut buf).await {
            Ok(0) => break conn.shutdown().await,
            Ok(n) => {
                received.extend_from_slice(&buf[..n]);
                if let Err(e) = conn.write_all(&buf[..n]).await {
                    break Err(e);
                }
                if let Err(e) = conn.flush().await {
                    break Err(e);
                }
            }
            Err(e) => break Err(e),
        }
    };
    let mut line = json!({
        "event": "stream_closed",
        "from": from,
        "len": received.len(),
        "hex": hex::encode(&received),
    });
    if let Err(e) = outcome {
        line["error"] = json!(e.to_string());
    }
    println!("{line}");
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wasm_peer: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let files = match &args.tls {
        Tls::Plain => None,
        Tls::Generate(dir) => Some(generate_cert(dir)?),
        Tls::Files(c, k) => Some((c.clone(), k.clone())),
    };
    let mut opts = Options::default();
    if let Some((cert, key)) = &files {
        opts.server_tls = Some(ServerTls::from_pem_files(cert, key).map_err(|e| e.to_string())?);
    }
    opts.cors_allowed_origins = args.cors.clone();
    opts.accept_http1 = args.http1;
    let (transport, _metrics) = Transport::new(opts).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("binding {}: {e}", args.listen))?;
    let server = transport.serve(listener).map_err(|e| e.to_string())?;
    let addr = server.local_addr();
    let scheme = if files.is_some() { "https" } else { "http" };
    println!(
        "{}",
        json!({
            "event": "listening",
            "addr": addr.to_string(),
            "url": format!("{scheme}://{addr}"),
            "cert": files.as_ref().map(|f| f.0.display().to_string()),
            "key": files.as_ref().map(|f| f.1.display().to_string()),
            "cors": args.cors,
            "http1": args.http1,
        })
    );

    let mut packets = transport.packets();
    let mut streams = transport.streams();
    loop {
        tokio::select! {
            Some(p) = packets.recv() => println!(
                "{}",
                json!({
                    "event": "packet",
                    "from": p.from.to_string(),
                    "len": p.payload.len(),
                    "hex": hex::encode(&p.payload),
                })
            ),
            Some(conn) = streams.accept() => {
                tokio::spawn(echo(conn));
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    transport.shutdown().await;
    server.shutdown().await;
    Ok(())
}
