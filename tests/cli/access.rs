//! The library's server extensions as flags of `listen` and `node`
//! (`--accept-http1`, `--cors`, `--token`, `--tls-client-ca`), and the
//! client side of `send`/`stream` (`--token`, `--tls-cert`/`--tls-key`),
//! each given as a flag or through its environment variable.

use super::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};

const TOKEN: &str = "s3cret-token";

#[test]
fn accept_http1_lets_http1_clients_in() {
    let without = Listener::start(&[]);
    let out = run(&["send", "--http1", "--to", &without.addr, "--hex", "01"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("505"), "{out:?}");

    let mut with = Listener::start(&["--accept-http1"]);
    send_delivers(&mut with, "02", 1, &["--http1"]);

    let mut from_env = Listener::start_env(&[], &[("GOSSIPHTTP_ACCEPT_HTTP1", "1")]);
    send_delivers(&mut from_env, "03", 1, &["--http1"]);
    let out = run(&["stream", "--http1", "--to", &from_env.addr, "--hex", "04"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(from_env.events("stream_data", 1)[0]["hex"], "04");
}

#[test]
fn token_is_required_when_set_and_sent_when_given() {
    let mut listener = Listener::start_env(&[], &[("GOSSIPHTTP_TOKEN", TOKEN)]);
    let to = listener.addr.clone();
    for refused in [
        vec!["send", "--to", &to, "--hex", "00"],
        vec!["send", "--to", &to, "--hex", "00", "--token", "wrong"],
    ] {
        let out = run(&refused);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(out.stderr.contains("401"), "{out:?}");
    }
    send_delivers(&mut listener, "0a", 1, &["--token", TOKEN]);
    let out = run_env(
        STEP,
        &[("GOSSIPHTTP_TOKEN", TOKEN)],
        &["send", "--to", &to, "--hex", "0b"],
    );
    assert!(out.status.success(), "{out:?}");
    assert_packets(&mut listener, 1, "0b");

    let out = run(&["stream", "--to", &to, "--hex", "0c"]);
    assert!(!out.status.success(), "{out:?}");
    let out = run(&["stream", "--to", &to, "--hex", "0d", "--token", TOKEN]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(listener.events("stream_data", 1)[0]["hex"], "0d");

    // An empty token would lock everyone out: refused as a usage error.
    let out = run_env(
        STEP,
        &[("GOSSIPHTTP_TOKEN", "")],
        &["listen", "--addr", "127.0.0.1:0"],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("GOSSIPHTTP_TOKEN"), "{out:?}");
    // `--help` names the variable but never shows the secret.
    let out = run_env(STEP, &[("GOSSIPHTTP_TOKEN", TOKEN)], &["listen", "--help"]);
    assert!(out.stdout.contains("GOSSIPHTTP_TOKEN"), "{out:?}");
    assert!(!out.stdout.contains(TOKEN), "{out:?}");
}

/// A CORS preflight for the message endpoint over h2c, from `origin`:
/// the status and the `Access-Control-Allow-Origin` it got.
fn preflight(addr: &str, origin: &str) -> (u16, Option<String>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .expect("h2 handshake");
        tokio::spawn(conn);
        let request = Request::options(format!("http://{addr}{}", gossiphttp::MESSAGE_PATH))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .body(Empty::<Bytes>::new())
            .expect("request");
        let response = tokio::time::timeout(STEP, send.send_request(request))
            .await
            .expect("preflight answered in time")
            .expect("preflight");
        let allowed = response
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap_or_default().to_string());
        let status = response.status().as_u16();
        let _ = response.into_body().collect().await;
        (status, allowed)
    })
}

#[test]
fn cors_origins_are_answered_from_a_list_or_repeated_flags() {
    let (a, b, c) = ("http://a.example", "http://b.example", "http://c.example");
    let listener = Listener::start(&["--cors", &format!("{a},{b}"), "--cors", c]);
    for origin in [a, b, c] {
        assert_eq!(
            preflight(&listener.addr, origin),
            (204, Some(origin.to_string()))
        );
    }
    assert_eq!(preflight(&listener.addr, "http://evil.example").0, 403);

    let from_env = Listener::start_env(&[], &[("GOSSIPHTTP_CORS", a)]);
    assert_eq!(preflight(&from_env.addr, a), (204, Some(a.to_string())));
    assert_eq!(preflight(&from_env.addr, b).0, 403);
}

/// A CA and certificates it issued, written as PEM files.
struct Pki {
    _dir: TempDir,
    ca: String,
    server: (String, String),
    client: (String, String),
}

impl Pki {
    /// The flags that make `listen` or `node` serve TLS with the server
    /// certificate and require client certificates issued by the CA.
    fn mutual_tls_server_flags(&self) -> [&str; 6] {
        let (cert, key) = &self.server;
        [
            "--tls-cert",
            cert,
            "--tls-key",
            key,
            "--tls-client-ca",
            &self.ca,
        ]
    }
}

fn pki() -> Pki {
    let dir = TempDir::new();
    let write = |name: &str, pem: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).expect("write pem");
        path.to_string_lossy().into_owned()
    };
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).expect("ca cert");
    let leaf = |name: &str, san: &str| {
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let cert = rcgen::CertificateParams::new(vec![san.to_string()])
            .expect("leaf params")
            .signed_by(&key, &ca, &ca_key)
            .expect("leaf cert");
        (
            write(&format!("{name}.pem"), cert.pem()),
            write(&format!("{name}-key.pem"), key.serialize_pem()),
        )
    };
    let server = leaf("server", "127.0.0.1");
    let client = leaf("client", "client.example");
    let ca = write("ca.pem", ca.pem());
    Pki {
        _dir: dir,
        ca,
        server,
        client,
    }
}

#[test]
fn mutual_tls_refuses_clients_without_a_certificate() {
    let pki = pki();
    let mut listener =
        Listener::start(&[&pki.mutual_tls_server_flags()[..], &["--echo-streams"]].concat());
    let to = listener.addr.clone();
    let tls = ["--tls", "--ca", pki.ca.as_str(), "--timeout", "3"];

    let out = run(&[&["send", "--to", &to, "--hex", "00"][..], &tls].concat());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.starts_with("error: "), "{out:?}");

    // Its own certificate is no client certificate the server trusts.
    let foreign = TempDir::new();
    let (other_cert, other_key) = self_signed(foreign.path());
    let untrusted = ["--tls-cert", &other_cert, "--tls-key", &other_key];
    let out = run(&[&["send", "--to", &to, "--hex", "00"][..], &tls, &untrusted].concat());
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    let (client_cert, client_key) = &pki.client;
    let mine = ["--tls-cert", client_cert.as_str(), "--tls-key", client_key];
    send_delivers(&mut listener, "6d746c73", 1, &[&tls[..], &mine].concat());
    let out = run(&[
        &["stream", "--to", &to, "--hex", "6563686f"][..],
        &tls,
        &mine,
    ]
    .concat());
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout.trim(), "6563686f", "{out:?}");

    // A client certificate needs a CA to verify the server with.
    let out = run(&[
        &["send", "--to", &to, "--hex", "00", "--tls", "--insecure"][..],
        &mine,
    ]
    .concat());
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[cfg(feature = "cluster")]
#[test]
fn node_takes_the_server_flags() {
    let args = [
        "node",
        "--name",
        "a",
        "--listen",
        "127.0.0.1:0",
        "--accept-http1",
    ];
    let node = Listener::spawn(&args, &[("GOSSIPHTTP_TOKEN", TOKEN)], " listening on ");
    let to = node.addr.as_str();
    let out = run(&["send", "--http1", "--to", to, "--hex", "00"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("401"), "{out:?}");
    // Past the token over HTTP/1.1: the node's transport took the packet
    // (SWIM then ignores the byte).
    let out = run(&[
        "send", "--http1", "--to", to, "--hex", "00", "--token", TOKEN,
    ]);
    assert!(out.status.success(), "{out:?}");
}

/// Two members under mutual TLS: each presents its certificate when it
/// reaches the other, so `b` joins `a`, which requires client certificates.
#[cfg(feature = "cluster")]
#[test]
fn nodes_under_mutual_tls_present_their_certificate_to_each_other() {
    let pki = pki();
    let node = |name: &str, join: &[&str]| {
        let args = [
            &["node", "--name", name, "--listen", "127.0.0.1:0", "--fast"][..],
            &pki.mutual_tls_server_flags(),
            &["--tls-ca", &pki.ca],
            join,
        ]
        .concat();
        Listener::spawn(&args, &[], " listening on ")
    };
    let a = node("a", &[]);
    let _b = node("b", &["--join", &a.addr]);
    let started = Instant::now();
    while !a.stderr.lock().unwrap().contains("member joined") {
        assert!(
            started.elapsed() < STEP,
            "a never saw b alive; a's log: {}",
            a.stderr.lock().unwrap()
        );
        thread::sleep(Duration::from_millis(50));
    }
}
