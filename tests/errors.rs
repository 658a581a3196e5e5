//! Errors an operator can act on (issue 13): bad addresses are refused when
//! parsed instead of panicking a task, secrets stay out of `Debug`, and
//! every failure names its likely cause and fix.

mod common;

use bytes::Bytes;
use common::{within, Peer, WAIT};
use gossiphttp::{Error, Options, Transport};

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
