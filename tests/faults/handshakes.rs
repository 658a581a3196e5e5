//! TLS handshakes that stall, on the client's side and on the server's.

use super::WAIT;
use crate::common::{metric, tls_pair};
use bytes::Bytes;
use gossiphttp::{ClientTls, Error, Options, Transport};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

/// 4a. A peer that accepts TCP and never speaks TLS: sends and dials fail
/// with a timeout, not a hang.
#[tokio::test]
async fn tls_handshake_stall_on_the_client_side_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            held.push(tcp);
        }
    });

    let mut opts = Options::default();
    opts.client_tls = Some(ClientTls::insecure());
    opts.packet_timeout = Duration::from_secs(1);
    let (a, a_metrics) = Transport::new(opts).unwrap();
    let r = timeout(WAIT, a.send(Bytes::from_static(b"x"), &addr))
        .await
        .expect("send to a silent TLS peer hung");
    assert!(
        matches!(r, Err(Error::Timeout { .. })),
        "send to a silent TLS peer: {r:?}"
    );
    assert_eq!(
        metric(&a_metrics, "cluster_transport_tx_packets_failed_total"),
        1.0
    );
    let r = timeout(WAIT, a.dial(&addr, Duration::from_secs(1)))
        .await
        .expect("dial to a silent TLS peer hung");
    assert!(
        matches!(r, Err(Error::Timeout { .. })),
        "dial to a silent TLS peer: {r:?}"
    );
    silent.abort();
    timeout(WAIT, a.shutdown()).await.unwrap();
}

/// 4b. A client that connects to a TLS server and never sends a ClientHello
/// is cut off after `header_read_timeout`, counted as
/// `tls_handshake_timeout`; a real TLS peer still gets through.
#[tokio::test]
async fn tls_handshake_stall_on_the_server_side_is_cut_off() {
    let (server_tls, client_tls) = tls_pair();
    let mut opts = Options::default();
    opts.server_tls = Some(server_tls);
    opts.header_read_timeout = Duration::from_secs(1);
    let (b, b_metrics) = Transport::new(opts).unwrap();
    let b_server = b
        .serve(TcpListener::bind("127.0.0.1:0").await.unwrap())
        .unwrap();
    let b_addr = b_server.local_addr();

    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(
            timeout(WAIT, TcpStream::connect(b_addr))
                .await
                .unwrap()
                .unwrap(),
        );
    }
    for tcp in &mut silent {
        let mut buf = [0u8; 16];
        let r = timeout(WAIT, tcp.read(&mut buf))
            .await
            .expect("a silent client was never cut off");
        assert!(matches!(r, Ok(0) | Err(_)), "server sent {r:?}");
    }
    let series = r#"cluster_transport_requests_refused_total{reason="tls_handshake_timeout"}"#;
    assert_eq!(metric(&b_metrics, series), 3.0);

    let mut opts = Options::default();
    opts.client_tls = Some(client_tls);
    let (a, _) = Transport::new(opts).unwrap();
    timeout(
        WAIT,
        a.send(Bytes::from_static(b"tls"), &b_addr.to_string()),
    )
    .await
    .unwrap()
    .unwrap();
    let p = timeout(WAIT, b.packets().recv()).await.unwrap().unwrap();
    assert_eq!(&p.payload[..], b"tls");
    timeout(WAIT, a.shutdown()).await.unwrap();
    timeout(WAIT, b.shutdown()).await.unwrap();
    timeout(WAIT, b_server.shutdown()).await.unwrap();
}
