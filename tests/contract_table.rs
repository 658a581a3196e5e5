//! The contract's request table (`tests/contract/requests.json`) against
//! the native server: every row is sent to a served [`Transport`] on
//! 127.0.0.1 and must get its status, headers and delivered packets. The
//! worker handler runs the same table (`tests/wasm/contract.test.mjs`), so
//! the two servers cannot drift apart unnoticed.

use bytes::Bytes;
use gossiphttp::{Options, Server, Transport};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

/// Bound on every wait; only reached when something hangs.
const WAIT: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
struct Table {
    profiles: BTreeMap<String, Profile>,
    requests: Vec<Row>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Profile {
    max_packet_size: Option<usize>,
    token: Option<String>,
    #[serde(default)]
    cors_allowed_origins: Vec<String>,
    #[serde(default)]
    accept_http1: bool,
    #[serde(default)]
    shut_down: bool,
    /// Worker-only settings: a profile using them has no native rows.
    base_path: Option<String>,
    handlers: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Row {
    name: String,
    profile: String,
    method: String,
    path: String,
    version: Option<String>,
    headers: BTreeMap<String, String>,
    body: String,
    status: u16,
    delivered: Option<Vec<String>>,
    #[serde(default)]
    response_headers: BTreeMap<String, String>,
    #[serde(default)]
    absent_headers: Vec<String>,
    only: Option<String>,
}

fn table() -> Table {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/contract/requests.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("a valid request table")
}

async fn serve(profile: &Profile) -> (Transport, Server) {
    assert!(
        profile.base_path.is_none() && profile.handlers.is_none(),
        "a native row uses a worker-only profile"
    );
    let mut o = Options::default();
    if let Some(max) = profile.max_packet_size {
        o.max_packet_size = max;
    }
    o.auth_token = profile.token.clone();
    o.cors_allowed_origins = profile.cors_allowed_origins.clone();
    o.accept_http1 = profile.accept_http1;
    let (t, _) = Transport::new(o).unwrap();
    let server = t
        .serve(TcpListener::bind("127.0.0.1:0").await.unwrap())
        .unwrap();
    if profile.shut_down {
        t.shutdown().await;
    }
    (t, server)
}

/// Sends `row` on a connection of its own (HTTP/2 prior knowledge, or
/// HTTP/1.1), and returns the response with its body read (a `/stream`
/// body stays open, so only its head is returned).
async fn send(addr: &str, row: &Row) -> Response<Bytes> {
    let mut req = Request::builder()
        .method(row.method.as_str())
        .uri(format!("http://{addr}{}", row.path));
    for (name, value) in &row.headers {
        req = req.header(name, value);
    }
    let body = Full::new(Bytes::from(hex::decode(&row.body).expect("hex body")));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let resp = match row.version.as_deref() {
        None | Some("2") => {
            let (mut send, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
            tokio::spawn(conn);
            send.send_request(req.body(body).unwrap()).await
        }
        Some("1.1") => {
            let (mut send, conn) = http1::handshake(TokioIo::new(tcp)).await.unwrap();
            tokio::spawn(conn);
            let req = req.header("host", addr).body(body).unwrap();
            send.send_request(req).await
        }
        Some(other) => panic!("{}: unknown version {other}", row.name),
    };
    let (head, body) = resp.expect("a response").into_parts();
    let is_stream = head.headers.get("content-type").map(|v| v.as_bytes())
        == Some(b"application/x.ckit".as_slice());
    let bytes = if is_stream {
        Bytes::new()
    } else {
        body.collect().await.expect("a response body").to_bytes()
    };
    Response::from_parts(head, bytes)
}

#[tokio::test]
async fn the_native_server_answers_every_row() {
    let table = table();
    let mut failures = Vec::new();
    let mut ran = 0;
    for (name, profile) in &table.profiles {
        let rows: Vec<&Row> = table
            .requests
            .iter()
            .filter(|r| &r.profile == name && r.only.as_deref() != Some("worker"))
            .collect();
        if rows.is_empty() {
            continue;
        }
        let (t, server) = serve(profile).await;
        let addr = server.local_addr().to_string();
        let mut packets = t.packets();
        for row in rows {
            ran += 1;
            let resp = timeout(WAIT, send(&addr, row))
                .await
                .unwrap_or_else(|_| panic!("{}: no answer", row.name));
            let mut delivered = Vec::new();
            while let Some(p) = packets.try_recv() {
                delivered.push(hex::encode(&p.payload));
            }
            let mut wrong = Vec::new();
            if resp.status().as_u16() != row.status {
                wrong.push(format!("status {} (want {})", resp.status(), row.status));
            }
            for (h, want) in &row.response_headers {
                let got = resp
                    .headers()
                    .get(h)
                    .map(|v| v.to_str().unwrap_or("<binary>"));
                if got != Some(want.as_str()) {
                    wrong.push(format!("{h}: {got:?} (want {want:?})"));
                }
            }
            for h in &row.absent_headers {
                if let Some(v) = resp.headers().get(h) {
                    wrong.push(format!("{h}: {v:?} (want none)"));
                }
            }
            if let Some(want) = &row.delivered {
                if &delivered != want {
                    wrong.push(format!("delivered {delivered:?} (want {want:?})"));
                }
            }
            if !wrong.is_empty() {
                failures.push(format!("[{name}] {}: {}", row.name, wrong.join("; ")));
            }
        }
        server.shutdown_with(&t).await;
    }
    assert!(ran > 30, "only {ran} native rows");
    assert!(
        failures.is_empty(),
        "rows answered wrong:\n{}",
        failures.join("\n")
    );
}
