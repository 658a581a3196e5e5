//! The transport keeps a bounded number of connections to peers: past
//! `max_peer_connections` the least recently used one is closed, and so is
//! one left unused for `idle_peer_timeout` (a cluster member talks with
//! every other in turn; unbounded, a large cluster runs out of files).
//! A connection that left the pool counts until it really closes, and the
//! server bounds its side too: past `max_accepted_connections` it closes
//! the least recently used connection, and an idle one after
//! `idle_connection_timeout`. Transports handed one `Client` share its
//! connections. What is open is read from the kernel's TCP table, not
//! from the transport's own view.

mod common;

use common::metrics::metric;
use common::{within, Peer, WAIT};
use gossiphttp::contract::MessageReader;
use gossiphttp::{Client, Options, Transport};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// A bare HTTP/2 server that answers every request `200` once its body
/// ended, and counts its open connections.
struct CountingPeer {
    addr: String,
    open: Arc<AtomicUsize>,
    /// Requests begun, and the frames (packets) their bodies carried.
    requests: Arc<AtomicUsize>,
    frames: Arc<AtomicUsize>,
}

impl CountingPeer {
    async fn start() -> CountingPeer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let open = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let frames = Arc::new(AtomicUsize::new(0));
        let counter = open.clone();
        let counts = (requests.clone(), frames.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let counter = counter.clone();
                let (requests, frames) = counts.clone();
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Ok(mut conn) = h2::server::handshake(tcp).await {
                        while let Some(Ok((req, mut respond))) = conn.accept().await {
                            requests.fetch_add(1, Ordering::SeqCst);
                            let frames = frames.clone();
                            tokio::spawn(async move {
                                let mut body = req.into_body();
                                let mut reader = MessageReader::new(1 << 20);
                                while let Some(Ok(chunk)) = body.data().await {
                                    let _ = body.flow_control().release_capacity(chunk.len());
                                    reader.push(chunk);
                                    while let Ok(Some(_)) = reader.next_packet() {
                                        frames.fetch_add(1, Ordering::SeqCst);
                                    }
                                }
                                let resp = http::Response::builder().status(200).body(()).unwrap();
                                let _ = respond.send_response(resp, true);
                            });
                        }
                    }
                    counter.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        CountingPeer {
            addr,
            open,
            requests,
            frames,
        }
    }

    fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    async fn wait_open(&self, n: usize, what: &str) {
        within(what, async {
            while self.open() != n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }
}

fn client(max_peer_connections: usize, idle: Duration) -> Transport {
    let mut options = Options::default();
    options.max_peer_connections = max_peer_connections;
    options.idle_peer_timeout = idle;
    options.message_body_linger = Duration::ZERO;
    Transport::new(options).unwrap().0
}

#[tokio::test]
async fn past_the_limit_the_least_recently_used_connection_is_closed() {
    let peers = [
        CountingPeer::start().await,
        CountingPeer::start().await,
        CountingPeer::start().await,
    ];
    let transport = client(2, Duration::from_secs(60));
    for peer in &peers[..2] {
        within("send", transport.send("a".into(), &peer.addr))
            .await
            .unwrap();
    }
    peers[0]
        .wait_open(1, "a connection to the first peer")
        .await;
    peers[1]
        .wait_open(1, "a connection to the second peer")
        .await;
    // Using the first again makes the second the least recently used.
    within("send", transport.send("b".into(), &peers[0].addr))
        .await
        .unwrap();
    within("send", transport.send("c".into(), &peers[2].addr))
        .await
        .unwrap();
    peers[1]
        .wait_open(0, "the least recently used connection closed")
        .await;
    assert_eq!((peers[0].open(), peers[2].open()), (1, 1));
    // A peer whose connection was closed is reached again on a new one.
    within("send", transport.send("d".into(), &peers[1].addr))
        .await
        .unwrap();
    peers[1]
        .wait_open(1, "a new connection to the second peer")
        .await;
    transport.shutdown().await;
}

#[tokio::test]
async fn a_connection_unused_for_the_idle_timeout_is_closed() {
    let peers = [CountingPeer::start().await, CountingPeer::start().await];
    let transport = client(100, Duration::from_millis(200));
    within("send", transport.send("a".into(), &peers[0].addr))
        .await
        .unwrap();
    peers[0]
        .wait_open(1, "a connection to the first peer")
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The next new connection sweeps the idle ones out.
    within("send", transport.send("b".into(), &peers[1].addr))
        .await
        .unwrap();
    peers[0].wait_open(0, "the idle connection closed").await;
    transport.shutdown().await;
}

/// Established TCP connections on loopback whose local port is `port`
/// (server ends, for a listening port) and whose remote port is (client
/// ends), read from the kernel's table: what is really open, whatever the
/// transport believes.
fn tcp_ends(port: u16) -> (usize, usize) {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    let port_of = |field: &str| {
        field
            .rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    let (mut server, mut client) = (0, 0);
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // Column 3 is the state: 01 is ESTABLISHED.
        if fields.len() < 4 || fields[3] != "01" {
            continue;
        }
        if port_of(fields[1]) == Some(port) {
            server += 1;
        }
        if port_of(fields[2]) == Some(port) {
            client += 1;
        }
    }
    (server, client)
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// Polls `tcp_ends(port)` until it is `(server, client)`.
async fn wait_ends(port: u16, want: (usize, usize), what: &str) {
    let waited = tokio::time::timeout(WAIT, async {
        while tcp_ends(port) != want {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "{what}: (server ends, client ends) on port {port} are {:?}, not {want:?}",
        tcp_ends(port)
    );
}

#[tokio::test]
async fn a_connection_the_client_evicts_is_closed_on_the_server_too() {
    let servers = [
        Peer::start(Options::default()).await,
        Peer::start(Options::default()).await,
        Peer::start(Options::default()).await,
    ];
    let transport = client(1, Duration::from_secs(60));
    for round in 0..3 {
        for server in &servers {
            within(
                "send",
                transport.send(format!("{round}").into(), &server.addr),
            )
            .await
            .unwrap();
        }
    }
    // One connection is pooled (to the last server); the evicted ones are
    // closed on both ends.
    for server in &servers[..2] {
        wait_ends(port_of(&server.addr), (0, 0), "an evicted connection").await;
    }
    wait_ends(port_of(&servers[2].addr), (1, 1), "the pooled connection").await;
    transport.shutdown().await;
}

fn server_options(max_accepted: usize, idle: Duration) -> Options {
    let mut options = Options::default();
    options.max_accepted_connections = max_accepted;
    options.idle_connection_timeout = idle;
    options.serve_metrics = true;
    options
}

fn closed(server: &Peer, reason: &str) -> f64 {
    common::metric(
        &server.registry,
        &format!("cluster_transport_connections_closed_total{{reason=\"{reason}\"}}"),
    )
}

#[tokio::test]
async fn past_max_accepted_connections_the_server_closes_the_least_recently_used() {
    let server = Peer::start(server_options(2, Duration::from_secs(60))).await;
    let port = port_of(&server.addr);
    let clients: Vec<Transport> = (0..3)
        .map(|_| client(10, Duration::from_secs(60)))
        .collect();
    for (i, c) in clients[..2].iter().enumerate() {
        within("send", c.send(format!("{i}").into(), &server.addr))
            .await
            .unwrap();
        // The server records use to the millisecond: keep the order clear.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    wait_ends(port, (2, 2), "two clients connected").await;
    // The first client's connection is now the least recently used: the
    // third client's takes its place, and the first client's end closes
    // too (GOAWAY, then the server closes it).
    within("send", clients[2].send("2".into(), &server.addr))
        .await
        .unwrap();
    wait_ends(port, (2, 2), "the third in, the first out").await;
    assert_eq!(closed(&server, "least_recently_used"), 1.0);
    // The client whose connection was closed reconnects for its next
    // packet (and the server makes room again).
    within("send", clients[0].send("again".into(), &server.addr))
        .await
        .unwrap();
    wait_ends(port, (2, 2), "the first back in").await;
    assert_eq!(closed(&server, "least_recently_used"), 2.0);
    let mut packets = server.transport.packets();
    let mut got = Vec::new();
    for _ in 0..4 {
        let p = within("packet", packets.recv()).await.unwrap();
        got.push(String::from_utf8(p.payload.to_vec()).unwrap());
    }
    got.sort();
    assert_eq!(got, ["0", "1", "2", "again"]);
    for c in &clients {
        c.shutdown().await;
    }
}

#[tokio::test]
async fn the_server_closes_a_connection_idle_for_idle_connection_timeout() {
    let server = Peer::start(server_options(100, Duration::from_millis(200))).await;
    let port = port_of(&server.addr);
    // The client would keep its end for a minute.
    let transport = client(10, Duration::from_secs(60));
    within("send", transport.send("a".into(), &server.addr))
        .await
        .unwrap();
    wait_ends(port, (0, 0), "the idle connection closed on both ends").await;
    assert_eq!(closed(&server, "idle"), 1.0);
    within("send", transport.send("b".into(), &server.addr))
        .await
        .unwrap();
    transport.shutdown().await;
}

/// A bare HTTP/2 server that takes requests and never answers them, until
/// `release` closes its connections.
struct HangingPeer {
    addr: String,
    release: Arc<tokio::sync::Notify>,
    requests: Arc<AtomicUsize>,
}

impl HangingPeer {
    async fn start() -> HangingPeer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let release = Arc::new(tokio::sync::Notify::new());
        let requests = Arc::new(AtomicUsize::new(0));
        let (gate, seen) = (release.clone(), requests.clone());
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut conn = h2::server::handshake(tcp).await.unwrap();
            let mut held = Vec::new();
            loop {
                tokio::select! {
                    r = conn.accept() => match r {
                        Some(Ok(request)) => {
                            seen.fetch_add(1, Ordering::SeqCst);
                            held.push(request);
                        }
                        _ => return,
                    },
                    // Dropping the connection closes it.
                    _ = gate.notified() => return,
                }
            }
        });
        HangingPeer {
            addr,
            release,
            requests,
        }
    }
}

#[tokio::test]
async fn a_connection_that_left_the_pool_counts_until_it_closes() {
    let hanging = HangingPeer::start().await;
    let peers = [CountingPeer::start().await, CountingPeer::start().await];
    // One pooled connection, so two open at most.
    let transport = client(1, Duration::from_secs(60));
    transport
        .write_to("unanswered".into(), &hanging.addr)
        .unwrap();
    within("the request reaches the hanging peer", async {
        while hanging.requests.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // The first peer's connection takes the pool's place; the hanging one
    // left the pool but stays open while its request waits.
    within("send", transport.send("a".into(), &peers[0].addr))
        .await
        .unwrap();
    // A third connection would make three open: it waits.
    let third = tokio::spawn({
        let transport = transport.clone();
        let addr = peers[1].addr.clone();
        async move { transport.send("b".into(), &addr).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        peers[1].open(),
        0,
        "a third connection opened while two were open"
    );
    assert!(!third.is_finished());
    // Once the hanging connection closes, the third goes through.
    hanging.release.notify_one();
    within("the third send", third).await.unwrap().unwrap();
    peers[1].wait_open(1, "the third connection").await;
    transport.shutdown().await;
}

/// Transports handed one `Client` share its connections (many cluster
/// members in one process): three of them sending to one peer open one
/// connection, one of them shutting down leaves it to the others, and it
/// closes once the client and the last transport using it are gone.
#[tokio::test]
async fn transports_sharing_a_client_share_its_connections() {
    let peer = CountingPeer::start().await;
    let mut options = Options::default();
    options.message_body_linger = Duration::ZERO;
    let shared = Client::new(&options).unwrap();
    let members: Vec<Transport> = (0..3)
        .map(|_| {
            let mut options = options.clone();
            options.client = Some(shared.clone());
            Transport::new(options).unwrap().0
        })
        .collect();
    for (i, member) in members.iter().enumerate() {
        within("send", member.send(format!("p{i}").into(), &peer.addr))
            .await
            .unwrap();
    }
    assert_eq!(peer.open(), 1, "three transports, one shared connection");

    members[0].shutdown().await;
    within("send after another member shut down", async {
        members[1].send("q".into(), &peer.addr).await
    })
    .await
    .unwrap();
    assert_eq!(peer.open(), 1, "the shutdown left the shared connection");

    // A transport with no client given opens its own.
    let own = client(4, Duration::from_secs(60));
    within("send", own.send("r".into(), &peer.addr))
        .await
        .unwrap();
    assert_eq!(peer.open(), 2);
    own.shutdown().await;
    peer.wait_open(1, "the own connection closed with its transport")
        .await;

    drop(shared);
    for member in members {
        member.shutdown().await;
    }
    peer.wait_open(0, "the shared connection closed with its last user")
        .await;
}

/// Transports sharing a client share its senders too: the packets of
/// several members to one peer ride one `/message` body (a process's
/// members each send a given peer a packet every few seconds, the process
/// several a second), each counted in its own transport's metrics; a
/// member that shut down takes no more packets, and the others go on.
#[tokio::test]
async fn transports_sharing_a_client_share_its_message_bodies() {
    let peer = CountingPeer::start().await;
    let shared = Client::new(&Options::default()).unwrap();
    let members: Vec<_> = (0..3)
        .map(|_| {
            let mut options = Options::default();
            options.client = Some(shared.clone());
            Transport::new(options).unwrap()
        })
        .collect();
    // The first packet to a quiet peer goes alone; the peer is busy from
    // then on, and the next body lingers for more.
    within("first send", members[0].0.send("p0".into(), &peer.addr))
        .await
        .unwrap();
    for (i, (member, _)) in members.iter().enumerate() {
        for j in 0..=i {
            member
                .write_to(format!("{i}-{j}").into(), &peer.addr)
                .unwrap();
        }
    }
    // Awaited: it ends the body.
    within("last send", members[1].0.send("p1".into(), &peer.addr))
        .await
        .unwrap();
    assert_eq!(peer.frames.load(Ordering::SeqCst), 8);
    assert_eq!(
        peer.requests.load(Ordering::SeqCst),
        2,
        "the first packet, then one body for the three members' seven"
    );
    let sent: Vec<f64> = members
        .iter()
        .map(|(_, registry)| metric(registry, "cluster_transport_tx_packets_total"))
        .collect();
    assert_eq!(sent, [2.0, 3.0, 3.0]);

    members[2].0.shutdown().await;
    assert!(matches!(
        members[2].0.write_to("late".into(), &peer.addr),
        Err(gossiphttp::Error::Shutdown)
    ));
    within("send after another member shut down", async {
        members[0].0.send("q".into(), &peer.addr).await
    })
    .await
    .unwrap();
    assert_eq!(peer.frames.load(Ordering::SeqCst), 9);
}

/// A shared client sends with its own settings, so a transport whose
/// token or HTTP version differs from the client's is refused at once,
/// naming the setting, instead of failing at every peer.
#[test]
fn a_client_built_with_other_settings_is_refused() {
    let client = Client::new(&Options::default()).unwrap();
    for (what, change) in [
        (
            "auth_token",
            (|o: &mut Options| o.auth_token = Some("s3cret".into())) as fn(&mut Options),
        ),
        ("client_http1", |o: &mut Options| o.client_http1 = true),
    ] {
        let mut options = Options::default();
        change(&mut options);
        options.client = Some(client.clone());
        let err = Transport::new(options).unwrap_err();
        assert!(
            err.to_string().contains(what) && err.to_string().contains("Client::new"),
            "{err}"
        );
    }
    let mut options = Options::default();
    options.client = Some(client);
    assert!(Transport::new(options).is_ok());
}
