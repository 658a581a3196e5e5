//! [`LostPeers`] fed by real connections on loopback: a peer whose process
//! dies (its connection closed with no `GOAWAY`) and a closed port are
//! reported; a peer that closes its connection in order is not.

use super::{Connector, PoolLimits, CONNECTION_WINDOW};
use crate::native::body::FrameBody;
use crate::PeerAddr;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn connector() -> Connector {
    let limits = PoolLimits {
        max_connections: 8,
        idle_timeout: Duration::from_secs(60),
        connection_window: CONNECTION_WINDOW,
    };
    Connector::new(
        None,
        None,
        false,
        limits,
        CancellationToken::new(),
        TaskTracker::new(),
    )
    .expect("a connector")
}

/// An HTTP/2 server for one connection that answers 200 to everything.
/// Sending on the returned channel ends it: `true` in order (`GOAWAY`, then
/// close), `false` as a killed process does (the socket just closes).
async fn one_connection_server() -> (PeerAddr, oneshot::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (end_tx, end_rx) = oneshot::channel::<bool>();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let service = service_fn(|_req: Request<Incoming>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
        });
        let conn =
            http2::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(tcp), service);
        let mut conn = std::pin::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => {}
            in_order = end_rx => {
                if in_order == Ok(true) {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
                // Otherwise dropped here: the socket closes, no GOAWAY.
            }
        }
    });
    (addr.to_string().parse().unwrap(), end_tx)
}

async fn request(connector: &Connector, peer: &PeerAddr) -> Result<(), crate::Error> {
    let req = connector.post(peer, "/", FrameBody::empty())?;
    connector.request(peer, req).await.map(|_| ())
}

/// The next report within `within`.
async fn next_report(rx: &mut broadcast::Receiver<Arc<str>>, within: Duration) -> Option<String> {
    tokio::time::timeout(within, rx.recv())
        .await
        .ok()
        .and_then(Result::ok)
        .map(|peer| peer.to_string())
}

/// How long to wait for a report: one due comes at once; one not due is
/// given half a second to show up anyway.
fn report_wait(due: bool) -> Duration {
    Duration::from_millis(if due { 5000 } else { 500 })
}

/// A connection to a [`one_connection_server`] that ends `in_order` or
/// not: the server's address and what was reported.
async fn connection_ended(in_order: bool) -> (String, Option<String>) {
    let connector = connector();
    let mut lost = connector.lost_peers();
    let (peer, end) = one_connection_server().await;
    request(&connector, &peer).await.expect("the peer answers");
    end.send(in_order).unwrap();
    let report = next_report(&mut lost, report_wait(!in_order)).await;
    (peer.authority(), report)
}

#[tokio::test]
async fn a_connection_closed_without_goaway_reports_its_peer() {
    let (peer, report) = connection_ended(false).await;
    assert_eq!(report, Some(peer));
}

#[tokio::test]
async fn a_connection_closed_in_order_reports_nothing() {
    let (_, report) = connection_ended(true).await;
    assert_eq!(report, None);
}

#[tokio::test]
async fn a_refused_connect_reports_its_peer() {
    let connector = connector();
    let mut lost = connector.lost_peers();
    // A port just bound and let go: nothing listens on it.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer: PeerAddr = closed.local_addr().unwrap().to_string().parse().unwrap();
    drop(closed);
    let err = request(&connector, &peer).await.unwrap_err();
    assert!(matches!(err, crate::Error::Connect { .. }), "{err}");
    assert_eq!(
        next_report(&mut lost, report_wait(true)).await,
        Some(peer.authority())
    );
}

/// Our own server, aborted (as `cluster::Node::kill` does) or shut down:
/// its address and what was reported.
#[cfg(feature = "cluster")]
async fn our_server_ended(abort: bool) -> (String, Option<String>) {
    let (transport, _) = crate::Transport::new(crate::Options::default()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = transport.serve(listener).unwrap();
    let peer: PeerAddr = server.local_addr().to_string().parse().unwrap();
    let connector = connector();
    let mut lost = connector.lost_peers();
    // Any answer will do (an empty body is refused): the connection is up.
    let _ = request(&connector, &peer).await;
    if abort {
        server.abort().await;
    } else {
        server.shutdown().await;
    }
    (
        peer.authority(),
        next_report(&mut lost, report_wait(abort)).await,
    )
}

#[cfg(feature = "cluster")]
#[tokio::test]
async fn an_aborted_server_is_reported_and_one_shut_down_is_not() {
    let (peer, report) = our_server_ended(true).await;
    assert_eq!(report, Some(peer), "abort: no GOAWAY, so reported");
    let (_, report) = our_server_ended(false).await;
    assert_eq!(report, None, "shutdown: GOAWAY");
}
