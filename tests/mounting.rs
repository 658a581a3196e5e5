//! The handler mounted in someone else's server: axum beside other routes,
//! and plain hyper with one service per connection.

use axum::extract::ConnectInfo;
use bytes::Bytes;
use gossiphttp::{Options, RemoteAddr, Transport, MESSAGE_PATH, STREAM_PATH};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

/// Sends a packet and a stream exchange from a fresh client transport to
/// `addr`, checking what `server` receives.
async fn check_peer(server: &Transport, addr: SocketAddr) {
    let (client, _) = Transport::new(Options::default()).unwrap();
    let to = addr.to_string();
    timeout(WAIT, client.send(Bytes::from_static(b"ping"), &to))
        .await
        .unwrap()
        .unwrap();
    let p = timeout(WAIT, server.packets().recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&p.payload[..], b"ping");
    assert!(
        p.from.ip().is_loopback(),
        "source address not passed through: {}",
        p.from
    );
    assert_ne!(p.from.port(), 0);

    let mut streams = server.streams();
    let echo = tokio::spawn(async move {
        let mut conn = timeout(WAIT, streams.accept()).await.unwrap().unwrap();
        let mut buf = Vec::new();
        conn.read_to_end(&mut buf).await.unwrap();
        conn.write_all(&buf).await.unwrap();
        conn.shutdown().await.unwrap();
    });
    let mut conn = client.dial(&to, WAIT).await.unwrap();
    conn.write_all(b"over the stream").await.unwrap();
    conn.shutdown().await.unwrap();
    let mut back = Vec::new();
    timeout(WAIT, conn.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, b"over the stream");
    echo.await.unwrap();
    client.shutdown().await;
}

#[tokio::test]
async fn mounted_in_axum_beside_other_routes() {
    let (transport, _) = Transport::new(Options::default()).unwrap();
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route_service(MESSAGE_PATH, transport.handler())
        .route_service(STREAM_PATH, transport.handler())
        // Pass the TCP peer address on, so packets carry their source.
        .layer(axum::middleware::map_request(
            |ConnectInfo(remote): ConnectInfo<SocketAddr>, mut req: axum::extract::Request| async move {
                req.extensions_mut().insert(RemoteAddr(remote));
                req
            },
        ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    check_peer(&transport, addr).await;
}

#[tokio::test]
async fn mounted_in_plain_hyper() {
    let (transport, _) = Transport::new(Options::default()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = transport.handler();
    tokio::spawn(async move {
        loop {
            let (tcp, remote) = listener.accept().await.unwrap();
            let service = handler.clone().for_peer(remote);
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    check_peer(&transport, addr).await;
}
