//! What an operator joining a real cluster sets on `gossiphttp node`: the
//! label (from the environment, as container deployments give it), the
//! advertise address, the ckit state, how it dials TLS (the server name it
//! verifies, its client certificate); each seen in the members' JSON.

use super::*;

/// `GET /api/v1/members` from a node, the whole response as text (or why
/// there is none).
fn members_json(addr: &str) -> String {
    cli_proc::http_get_raw(addr, "/api/v1/members", STEP).unwrap_or_else(|e| e)
}

/// Polls `addr`'s members JSON until `ready` holds for it.
fn wait_members(addr: &str, what: &str, ready: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    loop {
        let json = members_json(addr);
        if ready(&json) {
            return json;
        }
        assert!(started.elapsed() < STEP * 4, "{what}: {json}");
        thread::sleep(Duration::from_millis(100));
    }
}

fn node(name: &str, extra: &[&str], envs: &[(&str, &str)]) -> Listener {
    let args = [
        &[
            "node",
            "--name",
            name,
            "--listen",
            "127.0.0.1:0",
            "--preset",
            "fast",
        ][..],
        extra,
    ]
    .concat();
    Listener::spawn(&args, envs, " listening on ")
}

#[test]
fn the_label_from_the_environment_admits_its_cluster_and_refuses_others() {
    let a = node("a", &[], &[("GOSSIPHTTP_LABEL", "prod")]);
    let _b = node("b", &["--join", &a.addr], &[("GOSSIPHTTP_LABEL", "prod")]);
    let stranger = node(
        "stranger",
        &["--join", &a.addr],
        &[("GOSSIPHTTP_LABEL", "dev")],
    );
    wait_members(&a.addr, "b joins a", |j| j.contains("\"name\":\"b\""));
    // The stranger has tried by now (it joins at start), and was refused.
    thread::sleep(Duration::from_millis(500));
    let json = members_json(&a.addr);
    assert!(!json.contains("stranger"), "{json}");
    // Both operators hear about it, with the labels named.
    let a_log = a.stderr.lock().unwrap().clone();
    assert!(
        a_log.contains("WARN") && a_log.contains("refused for its label") && a_log.contains("dev"),
        "a's log: {a_log}"
    );
    let stranger_log = stranger.stderr.lock().unwrap().clone();
    assert!(
        stranger_log.contains("WARN") && stranger_log.contains("could not join"),
        "the stranger's log: {stranger_log}"
    );
}

#[test]
fn the_advertised_address_and_the_ckit_state_are_what_others_list() {
    let a = node("a", &[], &[]);
    // b listens on one port and advertises the same address by name.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let advertise = format!("localhost:{port}");
    let args = [
        "node",
        "--name",
        "b",
        "--listen",
        &listen,
        "--preset",
        "fast",
        "--join",
        &a.addr,
        "--ckit-state",
        "viewer",
    ];
    let _b = Listener::spawn(
        &args,
        &[("GOSSIPHTTP_ADVERTISE", &advertise)],
        " listening on ",
    );
    let json = wait_members(&a.addr, "b with its ckit state", |j| {
        j.contains("\"name\":\"b\"") && j.contains("\"ckit_state\":\"viewer\"")
    });
    // The name was resolved at start: memberlist carries an IP.
    assert!(
        json.contains(&format!("\"addr\":\"127.0.0.1:{port}\"")),
        "{json}"
    );
}

#[test]
fn an_advertise_address_without_a_port_or_with_port_0_takes_the_listen_port() {
    let a = node("a", &[], &[]);
    // Both listen on a port picked at bind time; memberlist's rule for
    // AdvertisePort 0 is the bound port, and so is ours.
    let b = node("b", &["--join", &a.addr, "--advertise", "127.0.0.1:0"], &[]);
    let c = node(
        "c",
        &["--join", &a.addr],
        &[("GOSSIPHTTP_ADVERTISE", "localhost")],
    );
    let json = wait_members(&a.addr, "b and c join a", |j| {
        j.contains("\"name\":\"b\"") && j.contains("\"name\":\"c\"")
    });
    for listening in [&b.addr, &c.addr] {
        assert!(!listening.ends_with(":0"), "{listening}");
        assert!(
            json.contains(&format!("\"addr\":\"{listening}\"")),
            "{listening} not listed: {json}"
        );
    }
}

#[test]
fn the_hasher_from_the_environment_is_what_the_shards_endpoint_measures() {
    let a = node("a", &[], &[("GOSSIPHTTP_HASHER", "ring:64")]);
    let shards = cli_proc::http_get_raw(&a.addr, "/api/v1/shards", STEP).unwrap_or_else(|e| e);
    assert!(
        shards.contains("\"hasher\":\"ring\"") && shards.contains("\"tokens_per_peer\":64"),
        "{shards}"
    );
    let other = cli_proc::http_get_raw(&a.addr, "/api/v1/shards?hasher=rendezvous", STEP)
        .unwrap_or_else(|e| e);
    assert!(other.contains("\"hasher\":\"rendezvous\""), "{other}");
    // A name ckit does not have is refused at start, with the choices.
    let out = run(&[
        "node",
        "--name",
        "b",
        "--listen",
        "127.0.0.1:0",
        "--hasher",
        "md5",
    ]);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("md5") && out.stderr.contains("rendezvous"),
        "{}",
        out.stderr
    );
}

/// A certificate authority made for one test, its certificate (`pem`) and
/// the certificates it issues written as PEM files in its own directory.
struct Ca {
    dir: TempDir,
    pem: String,
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    /// A CA named `name` (distinct names: a verifier looks issuers up by
    /// name, and rcgen gives every certificate the same one otherwise).
    fn new(name: &str) -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().expect("ca key");
        let cert = params.self_signed(&key).expect("ca cert");
        let dir = TempDir::new();
        let pem = dir.path().join("ca.pem");
        std::fs::write(&pem, cert.pem()).expect("write ca");
        Ca {
            pem: pem.to_string_lossy().into_owned(),
            dir,
            cert,
            key,
        }
    }

    /// A certificate for `san` issued by this CA, written as `file`.pem and
    /// `file`-key.pem: their paths.
    fn issue(&self, file: &str, san: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let cert = rcgen::CertificateParams::new(vec![san.to_string()])
            .expect("leaf params")
            .signed_by(&key, &self.cert, &self.key)
            .expect("leaf cert");
        let write = |name: String, pem: String| {
            let path = self.dir.path().join(name);
            std::fs::write(&path, pem).expect("write pem");
            path.to_string_lossy().into_owned()
        };
        (
            write(format!("{file}.pem"), cert.pem()),
            write(format!("{file}-key.pem"), key.serialize_pem()),
        )
    }
}

/// How the test reaches a node that serves TLS: the CA file it trusts,
/// the name it verifies, the client certificate it presents if any.
struct TlsView<'a> {
    ca: &'a str,
    name: &'a str,
    client: Option<&'a (String, String)>,
}

/// `GET /api/v1/members` over TLS (HTTP/1.1, which the node's own routes
/// take): the body, or why there is none.
fn members_over_tls(addr: &str, view: &TlsView) -> String {
    let get = || -> Result<String, String> {
        let err = |e: &dyn std::fmt::Display| format!("GET /api/v1/members on {addr}: {e}");
        let mut roots = rustls::RootCertStore::empty();
        for cert in gossiphttp::tls::load_certs(view.ca).map_err(|e| err(&e))? {
            roots.add(cert).map_err(|e| err(&e))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| err(&e))?
            .with_root_certificates(roots);
        let mut config = match view.client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    gossiphttp::tls::load_certs(cert).map_err(|e| err(&e))?,
                    gossiphttp::tls::load_private_key(key).map_err(|e| err(&e))?,
                )
                .map_err(|e| err(&e))?,
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name =
            rustls::pki_types::ServerName::try_from(view.name.to_string()).map_err(|e| err(&e))?;
        let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| err(&e))?;
        let tcp = std::net::TcpStream::connect(addr).map_err(|e| err(&e))?;
        tcp.set_read_timeout(Some(STEP)).map_err(|e| err(&e))?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        std::io::Write::write_all(
            &mut tls,
            b"GET /api/v1/members HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .map_err(|e| err(&e))?;
        let mut raw = Vec::new();
        // A peer that closes without close_notify still sent it all.
        if let Err(e) = std::io::Read::read_to_end(&mut tls, &mut raw) {
            if raw.is_empty() || e.kind() != std::io::ErrorKind::UnexpectedEof {
                return Err(err(&e));
            }
        }
        let text = String::from_utf8_lossy(&raw);
        let (_, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| err(&"no HTTP response"))?;
        Ok(body.to_string())
    };
    get().unwrap_or_else(|e| e)
}

/// The names a members JSON lists as alive (none when it is no JSON).
fn alive(json: &str) -> Vec<String> {
    let value: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let members = value["members"].as_array().cloned().unwrap_or_default();
    members
        .iter()
        .filter(|m| m["state"] == "alive")
        .filter_map(|m| m["name"].as_str().map(str::to_string))
        .collect()
}

/// Polls a node serving TLS until it lists every one of `names` alive.
fn wait_alive_over_tls(addr: &str, view: &TlsView, names: &[&str]) -> String {
    let started = Instant::now();
    loop {
        let json = members_over_tls(addr, view);
        let listed = alive(&json);
        if names.iter().all(|n| listed.iter().any(|l| l == n)) {
            return json;
        }
        assert!(
            started.elapsed() < STEP * 4,
            "{addr} never listed {names:?} alive: {json}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `node`'s log has `needle` in it (what `who` should have
/// logged): the log.
fn wait_log(node: &Listener, who: &str, needle: &str) -> String {
    let started = Instant::now();
    loop {
        let log = node.stderr_text();
        if log.contains(needle) {
            return log;
        }
        assert!(
            started.elapsed() < STEP * 2,
            "{who} never logged {needle:?}; its log: {log}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Two members whose certificates name a service (`gossip.internal`), not
/// their IP, as Alloy deployments issue them: with --tls-server-name (as
/// a flag or from the environment) each verifies that name and they form
/// a cluster; a member without it checks the IP, and cannot join them.
#[test]
fn tls_server_name_is_the_name_verified_instead_of_the_ip() {
    const NAME: &str = "gossip.internal";
    let ca = Ca::new("gossip CA");
    let tls_node = |name: &str, join: &[&str], server_name: &[&str], envs: &[(&str, &str)]| {
        let (cert, key) = ca.issue(name, NAME);
        let tls = ["--tls-cert", &cert, "--tls-key", &key, "--tls-ca", &ca.pem];
        node(name, &[&tls[..], join, server_name].concat(), envs)
    };
    let a = tls_node("a", &[], &["--tls-server-name", NAME], &[]);
    let b = tls_node(
        "b",
        &["--join", &a.addr],
        &[],
        &[("GOSSIPHTTP_TLS_SERVER_NAME", NAME)],
    );
    let view = TlsView {
        ca: &ca.pem,
        name: NAME,
        client: None,
    };
    wait_alive_over_tls(&a.addr, &view, &["a", "b"]);
    wait_alive_over_tls(&b.addr, &view, &["a", "b"]);

    let stranger = tls_node("stranger", &["--join", &a.addr], &[], &[]);
    let who = "the member without --tls-server-name";
    let log = wait_log(&stranger, who, "could not join");
    assert!(
        log.contains("not valid for name \"127.0.0.1\""),
        "the stranger's log: {log}"
    );
    let json = members_over_tls(&a.addr, &view);
    assert!(!json.contains("stranger"), "{json}");
    assert_eq!(alive(&json).len(), 2, "{json}");
}

/// Mutual TLS between members: `a` requires client certificates issued by
/// its CA; `b` presents one through --tls-client-cert/--tls-client-key
/// (from the environment) and joins; a member presenting one from another
/// CA is refused, and never listed.
#[test]
fn a_client_certificate_from_the_required_ca_joins_and_one_from_another_is_refused() {
    // Every member serves the same self-signed certificate, which each
    // trusts (--tls-ca defaults to --tls-cert): only client certificates
    // differ.
    let server = TempDir::new();
    let (cert, key) = self_signed(server.path());
    let serving = ["--tls-cert", cert.as_str(), "--tls-key", key.as_str()];
    let clients = Ca::new("clients CA");
    let others = Ca::new("another CA");
    let mine = clients.issue("b", "b.example");
    let foreign = others.issue("stranger", "stranger.example");

    let a = node(
        "a",
        &[&serving[..], &["--tls-client-ca", &clients.pem]].concat(),
        &[],
    );
    let b = node(
        "b",
        &[&serving[..], &["--join", &a.addr]].concat(),
        &[
            ("GOSSIPHTTP_TLS_CLIENT_CERT", &mine.0),
            ("GOSSIPHTTP_TLS_CLIENT_KEY", &mine.1),
        ],
    );
    // `a` answers only a client with a certificate it trusts; `b` anyone.
    let a_view = TlsView {
        ca: &cert,
        name: "127.0.0.1",
        client: Some(&mine),
    };
    let b_view = TlsView {
        client: None,
        ..a_view
    };
    wait_alive_over_tls(&a.addr, &a_view, &["a", "b"]);
    wait_alive_over_tls(&b.addr, &b_view, &["a", "b"]);

    let foreign_flags = [
        "--tls-client-cert",
        &foreign.0,
        "--tls-client-key",
        &foreign.1,
    ];
    let stranger = node(
        "stranger",
        &[&serving[..], &foreign_flags, &["--join", &a.addr]].concat(),
        &[],
    );
    let who = "the member with another CA's certificate";
    let log = wait_log(&stranger, who, "could not join");
    // Both name the certificate: the refused member, whether its read saw
    // the alert or its write saw the connection closed first (a race), and
    // `a` the reason.
    assert!(
        log.contains("refused this side's"),
        "the refused member's log: {log}"
    );
    wait_log(&a, "a", "UnknownIssuer");
    let json = members_over_tls(&a.addr, &a_view);
    assert!(!json.contains("stranger"), "{json}");
    assert_eq!(alive(&json).len(), 2, "{json}");
}

/// The flags that set how a node dials TLS do nothing unless it serves TLS:
/// given without --tls-cert, as flags or variables, they are refused at
/// start, the message naming them and the fix.
#[test]
fn client_tls_flags_without_tls_cert_are_usage_errors() {
    let refused = |flags: &[&str], envs: &[(&str, &str)], named: &[&str]| {
        let node = ["node", "--name", "a", "--listen", "127.0.0.1:0"];
        let args = [&node[..], &["--preset", "fast"], flags].concat();
        // A node that took the flags would run: the bound fails the test.
        let out = run_env(Duration::from_secs(10), envs, &args);
        assert_eq!(out.status.code(), Some(2), "{flags:?} {envs:?}: {out:?}");
        assert!(out.stderr.starts_with("error: "), "{out:?}");
        for name in named {
            assert!(out.stderr.contains(name), "{name} not named: {out:?}");
        }
        assert!(
            out.stderr.contains("need --tls-cert/--tls-key")
                || out.stderr.contains("needs --tls-cert/--tls-key"),
            "{out:?}"
        );
        assert!(
            out.stderr
                .contains("give --tls-cert and --tls-key, or drop"),
            "{out:?}"
        );
    };
    let name = "gossip.internal";
    refused(&["--tls-server-name", name], &[], &["--tls-server-name"]);
    refused(
        &[],
        &[("GOSSIPHTTP_TLS_SERVER_NAME", name)],
        &["GOSSIPHTTP_TLS_SERVER_NAME"],
    );
    let (cert, key) = ("client.pem", "client-key.pem");
    refused(
        &["--tls-client-cert", cert, "--tls-client-key", key],
        &[],
        &["--tls-client-cert", "--tls-client-key"],
    );
    refused(
        &[],
        &[
            ("GOSSIPHTTP_TLS_CLIENT_CERT", cert),
            ("GOSSIPHTTP_TLS_CLIENT_KEY", key),
        ],
        &["GOSSIPHTTP_TLS_CLIENT_CERT", "GOSSIPHTTP_TLS_CLIENT_KEY"],
    );
    refused(&["--tls-ca", "ca.pem"], &[], &["--tls-ca"]);
}
