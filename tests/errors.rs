//! Errors an operator can act on (issue 13): bad addresses are refused when
//! parsed instead of panicking a task, secrets stay out of `Debug`, and
//! every failure names its likely cause and fix.

mod common;

use bytes::Bytes;
use common::{within, Peer, WAIT};
use gossiphttp::{ClientTls, Error, Options, ServerTls, Transport};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Hosts `http::Uri` refuses (or reads as something else): each used to
/// panic the peer's send task or the dialing caller.
const BAD_ADDRESSES: [&str; 5] = ["a b:80", "a@b:80", "a?b:80", "a%b:80", "http://a b:80"];

fn is_invalid_address<T: std::fmt::Debug>(r: &Result<T, Error>) -> bool {
    matches!(r, Err(Error::InvalidAddress { .. }))
}

#[tokio::test]
async fn addresses_the_uri_refuses_are_refused_not_panicked_on() {
    let peer = Peer::start(Options::default()).await;
    let (t, _) = Transport::new(Options::default()).unwrap();
    for bad in BAD_ADDRESSES {
        let r = t.write_to(Bytes::from_static(b"x"), bad);
        assert!(is_invalid_address(&r), "write_to {bad:?}: {r:?}");
        let r = within("send", t.send(Bytes::from_static(b"x"), bad)).await;
        assert!(is_invalid_address(&r), "send {bad:?}: {r:?}");
        let r = within("dial", t.dial(bad, WAIT)).await;
        assert!(is_invalid_address(&r), "dial {bad:?}: {r:?}");
    }
    // Nothing panicked: the transport still delivers.
    within("send", t.send(Bytes::from_static(b"ok"), &peer.addr))
        .await
        .expect("a good send after the bad ones");
    let got = within("recv", peer.transport.packets().recv()).await;
    assert_eq!(got.unwrap().payload, Bytes::from_static(b"ok"));
    within("shutdown", t.shutdown()).await;
    peer.stop().await;
}

#[tokio::test]
async fn the_auth_token_stays_out_of_debug_output() {
    const SECRET: &str = "s3cret-token-value";
    let mut opts = Options::default();
    opts.auth_token = Some(SECRET.into());
    let shown = format!("{opts:?}");
    assert!(!shown.contains(SECRET), "Options: {shown}");
    assert!(shown.contains("auth_token: Some(<redacted>)"), "{shown}");
    let (t, _) = Transport::new(opts).unwrap();
    let shown = format!("{t:?}");
    assert!(!shown.contains(SECRET), "Transport: {shown}");
    let shown = format!("{t:#?}");
    assert!(!shown.contains(SECRET), "Transport: {shown}");
}

#[tokio::test]
async fn an_oversize_packet_names_the_limit_and_the_fix() {
    let mut opts = Options::default();
    opts.max_packet_size = 1024;
    let (t, _) = Transport::new(opts).unwrap();
    let err = t
        .write_to(Bytes::from(vec![0; 1025]), "127.0.0.1:1")
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::PacketTooLarge {
                len: 1025,
                max: 1024
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    for part in [
        "1025 bytes",
        "max_packet_size (1024)",
        "Options::max_packet_size",
    ] {
        assert!(text.contains(part), "{part:?} missing in: {text}");
    }
    let err = within("send", t.send(Bytes::from(vec![0; 1025]), "127.0.0.1:1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "packet_too_large");
}

/// A self-signed certificate for 127.0.0.1 and `names`, flagged as a CA
/// when `ca` (as `openssl req -x509` makes them), valid from `not_before`
/// to `not_after` (years).
fn self_signed(
    names: &[&str],
    ca: bool,
    years: (i32, i32),
) -> (CertificateDer<'static>, ServerTls) {
    let mut sans: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    sans.push("127.0.0.1".into());
    let mut params = rcgen::CertificateParams::new(sans).unwrap();
    if ca {
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    params.not_before = rcgen::date_time_ymd(years.0, 1, 1);
    params.not_after = rcgen::date_time_ymd(years.1, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let der = CertificateDer::from(cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (der.clone(), ServerTls::from_der(vec![der], key).unwrap())
}

const VALID: (i32, i32) = (2020, 2100);

/// What a send from a transport with `client` options to a peer served
/// with `server` options ends with.
async fn send_between(client: Options, server: Options) -> Result<(), Error> {
    let peer = Peer::start(server).await;
    let (t, _) = Transport::new(client).unwrap();
    let r = within("send", t.send(Bytes::from_static(b"x"), &peer.addr)).await;
    within("shutdown", t.shutdown()).await;
    peer.stop().await;
    r
}

fn tls_server(tls: ServerTls) -> Options {
    let mut opts = Options::default();
    opts.server_tls = Some(tls);
    opts
}

fn tls_client(roots: Vec<CertificateDer<'static>>) -> Options {
    let mut opts = Options::default();
    opts.client_tls = Some(ClientTls::from_roots(roots).unwrap());
    opts
}

fn assert_says(r: Result<(), Error>, parts: &[&str]) {
    let err = r.expect_err("the send should fail");
    let text = err.to_string();
    for part in parts {
        assert!(text.contains(part), "{part:?} missing in: {text}");
    }
}

#[tokio::test]
async fn a_self_signed_ca_certificate_given_as_the_root_is_accepted_as_go_does() {
    let (der, server) = self_signed(&["localhost"], true, VALID);
    send_between(tls_client(vec![der]), tls_server(server))
        .await
        .expect("a CA-flagged self-signed certificate that is the root");
}

#[tokio::test]
async fn a_self_signed_ca_certificate_is_still_checked() {
    // Expired: webpki checks validity before the CA flag.
    let (der, server) = self_signed(&["localhost"], true, (2000, 2001));
    let r = send_between(tls_client(vec![der]), tls_server(server)).await;
    assert_says(r, &["validity period"]);
    // Another host's certificate: the name is checked.
    let mut params = rcgen::CertificateParams::new(vec!["elsewhere.example".into()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let der = CertificateDer::from(cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let server = ServerTls::from_der(vec![der.clone()], key).unwrap();
    let r = send_between(tls_client(vec![der]), tls_server(server)).await;
    assert_says(r, &["does not name \"127.0.0.1\"", "subjectAltName"]);
    // Not one of the roots: refused, saying what to do.
    let (_, server) = self_signed(&["localhost"], true, VALID);
    let (other, _) = self_signed(&["localhost"], true, VALID);
    let r = send_between(tls_client(vec![other]), tls_server(server)).await;
    assert_says(r, &["CA certificate", "--ca"]);
}

#[tokio::test]
async fn a_certificate_from_another_ca_says_which_ca_to_give() {
    // rcgen names every certificate alike: the other one looks like the
    // issuer, and its signature does not match.
    let (_, server) = self_signed(&["localhost"], false, VALID);
    let (other, _) = self_signed(&["localhost"], false, VALID);
    let r = send_between(tls_client(vec![other]), tls_server(server)).await;
    assert_says(r, &["was not signed by it", "--ca"]);
    // Another name: no issuer at all.
    let mut params = rcgen::CertificateParams::new(vec!["x.example".into()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "another CA");
    let key = rcgen::KeyPair::generate().unwrap();
    let other = CertificateDer::from(params.self_signed(&key).unwrap().der().to_vec());
    let (_, server) = self_signed(&["localhost"], false, VALID);
    let r = send_between(tls_client(vec![other]), tls_server(server)).await;
    assert_says(r, &["not issued by a CA this side trusts", "--ca"]);
}

#[tokio::test]
async fn h2c_to_a_tls_port_says_the_peer_expects_tls() {
    let (_, server) = self_signed(&["localhost"], false, VALID);
    let r = send_between(Options::default(), tls_server(server)).await;
    assert_says(
        r,
        &["the peer may expect TLS: use https:// or set client TLS"],
    );
}

#[tokio::test]
async fn tls_to_an_h2c_port_says_the_peer_is_not_speaking_tls() {
    let (der, _) = self_signed(&["localhost"], false, VALID);
    let r = send_between(tls_client(vec![der.clone()]), Options::default()).await;
    assert_says(r, &["not speaking TLS", "drop --tls"]);
    // The same with HTTP/1.1 accepted, where the server answers in HTTP/1.
    let mut server = Options::default();
    server.accept_http1 = true;
    let r = send_between(tls_client(vec![der]), server).await;
    assert_says(r, &["not speaking TLS", "drop --tls"]);
}

/// An HTTP/1.1 server that answers `505` only once the request body ended,
/// as Go's does.
async fn go_like_http1_server() -> (String, tokio::task::JoinHandle<()>) {
    use http_body_util::{BodyExt, Empty};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let service =
                hyper::service::service_fn(|req: hyper::Request<hyper::body::Incoming>| async {
                    let _ = req.into_body().collect().await;
                    let mut resp = hyper::Response::new(Empty::<Bytes>::new());
                    *resp.status_mut() = hyper::StatusCode::HTTP_VERSION_NOT_SUPPORTED;
                    Ok::<_, std::convert::Infallible>(resp)
                });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service),
            );
        }
    });
    (addr, task)
}

#[tokio::test]
async fn an_http1_dial_to_an_http2_only_peer_says_why() {
    let mut opts = Options::default();
    opts.client_http1 = true;
    let (t, _) = Transport::new(opts).unwrap();

    // A Rust peer without accept_http1 answers 505 at once.
    let peer = Peer::start(Options::default()).await;
    let err = within("dial", t.dial(&peer.addr, WAIT)).await.unwrap_err();
    assert!(matches!(err, Error::Status { status: 505, .. }), "{err:?}");
    let text = err.to_string();
    for part in [
        "does not take HTTP/1.1",
        "accept_http1",
        "drop client_http1",
    ] {
        assert!(text.contains(part), "{part:?} missing in: {text}");
    }
    peer.stop().await;

    // A Go peer answers only once the request ends, which a stream's never
    // does: the timeout names the likely cause.
    let (addr, server) = go_like_http1_server().await;
    let timeout = std::time::Duration::from_millis(300);
    let err = within("dial", t.dial(&addr, timeout)).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    let text = err.to_string();
    for part in ["may speak only HTTP/2", "drop client_http1"] {
        assert!(text.contains(part), "{part:?} missing in: {text}");
    }
    server.abort();
    within("shutdown", t.shutdown()).await;
}

#[tokio::test]
async fn private_keys_stay_out_of_debug_output() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let der = CertificateDer::from(cert.cert.der().to_vec());
    let key_der = cert.key_pair.serialize_der();
    let key = || PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der.clone()));
    let mut opts = Options::default();
    opts.server_tls = Some(ServerTls::from_der(vec![der.clone()], key()).unwrap());
    opts.client_tls =
        Some(ClientTls::from_roots_with_client_cert(vec![der.clone()], vec![der], key()).unwrap());
    let shown = format!("{opts:?}");
    // The private scalar of the PKCS#8 EC key rcgen makes (bytes 36..68),
    // as Debug prints bytes and as hex; nor the certificates (the output
    // ends up in logs).
    let secret = &key_der[36..68];
    let list = format!("{secret:?}");
    let list = list.trim_start_matches('[').trim_end_matches(']');
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!shown.contains(list), "key bytes in: {shown}");
    assert!(!shown.contains(&hex), "key hex in: {shown}");
    assert!(!shown.contains("CertificateDer"), "{shown}");
    assert!(
        shown.contains("ClientTls { client_cert: true, server_name: None, .. }"),
        "{shown}"
    );
    assert!(
        shown.contains(r#"ServerTls { alpn: ["h2", "http/1.1"], .. }"#),
        "{shown}"
    );
}

#[tokio::test]
async fn a_closed_port_says_nothing_listens_there() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap().to_string();
    drop(closed);
    let (t, _) = Transport::new(Options::default()).unwrap();
    let err = within("send", t.send(Bytes::from_static(b"x"), &addr))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains("nothing listens there"), "{err}");
    within("shutdown", t.shutdown()).await;
}

#[tokio::test]
async fn a_self_signed_ca_client_certificate_given_as_the_client_ca_is_accepted() {
    let (server_der, server) = {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let der = CertificateDer::from(cert.cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
        (der, key)
    };
    let mut params = rcgen::CertificateParams::new(vec!["client".into()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "client made by openssl req -x509",
    );
    let key = rcgen::KeyPair::generate().unwrap();
    let client_der = CertificateDer::from(params.self_signed(&key).unwrap().der().to_vec());
    let client_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));

    let mut server_opts = Options::default();
    server_opts.server_tls = Some(
        ServerTls::from_der_with_client_auth(
            vec![server_der.clone()],
            server,
            vec![client_der.clone()],
        )
        .unwrap(),
    );
    let mut client_opts = Options::default();
    client_opts.client_tls = Some(
        ClientTls::from_roots_with_client_cert(vec![server_der], vec![client_der], client_key)
            .unwrap(),
    );
    send_between(client_opts, server_opts)
        .await
        .expect("a CA-flagged self-signed client certificate that is the client CA");
}

#[tokio::test]
async fn a_refused_client_certificate_says_so() {
    let server_cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let server_der = CertificateDer::from(server_cert.cert.der().to_vec());
    let server_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        server_cert.key_pair.serialize_der(),
    ));
    let trusted = rcgen::generate_simple_self_signed(vec!["trusted".into()]).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["stranger".into()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "stranger");
    let key = rcgen::KeyPair::generate().unwrap();
    let stranger = CertificateDer::from(params.self_signed(&key).unwrap().der().to_vec());
    let stranger_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));

    let mut server_opts = Options::default();
    server_opts.server_tls = Some(
        ServerTls::from_der_with_client_auth(
            vec![server_der.clone()],
            server_key,
            vec![CertificateDer::from(trusted.cert.der().to_vec())],
        )
        .unwrap(),
    );
    let mut client_opts = Options::default();
    client_opts.client_tls = Some(
        ClientTls::from_roots_with_client_cert(vec![server_der], vec![stranger], stranger_key)
            .unwrap(),
    );
    let r = send_between(client_opts, server_opts).await;
    assert_says(r, &["refused this side's certificate", "mutual TLS"]);
}

/// The server's side of a TLS mismatch: counted (and logged) under its own
/// reason, with the fix, instead of a bare handshake or HTTP parse error.
#[tokio::test]
async fn the_server_names_a_tls_mismatch_too() {
    use common::metrics::metric;
    let (der, server) = self_signed(&["localhost"], false, VALID);
    let cases = [
        (Options::default(), tls_server(server), "cleartext_on_tls"),
        (
            tls_client(vec![der]),
            Options::default(),
            "tls_on_cleartext",
        ),
    ];
    for (client, server, reason) in cases {
        let peer = Peer::start(server).await;
        let (t, _) = Transport::new(client).unwrap();
        let r = within("send", t.send(Bytes::from_static(b"x"), &peer.addr)).await;
        assert!(r.is_err(), "{reason}: the send should fail");
        let series = format!("cluster_transport_requests_refused_total{{reason=\"{reason}\"}}");
        let counted = common::eventually(WAIT, || metric(&peer.registry, &series) >= 1.0).await;
        assert!(
            counted,
            "{series} not counted:\n{}",
            peer.registry.encode_text()
        );
        within("shutdown", t.shutdown()).await;
        peer.stop().await;
    }
}
