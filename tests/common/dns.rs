//! A DNS server a test starts on 127.0.0.1: it answers A, AAAA and SRV
//! questions from records the test sets, and changes while it runs (a
//! rollout). UDP, and TCP on the same port for answers too large for UDP
//! (the resolver retries a truncated answer over TCP, as it would against a
//! Kubernetes DNS listing hundreds of pods). Built on hickory-proto's
//! message types; no other traffic than loopback.
#![allow(dead_code)]

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

/// Long enough that a resolver keeping answers between calls would serve
/// a stale one: the rollout tests rely on it.
const TTL: u32 = 300;

/// The largest UDP answer when the question carries no EDNS size (RFC 1035).
const CLASSIC_UDP_LIMIT: usize = 512;

/// The names the server knows, each with its records, or the error code
/// it answers for the name.
#[derive(Default)]
struct Zone {
    records: HashMap<String, Vec<Record>>,
    failing: HashMap<String, ResponseCode>,
    questions: HashMap<String, usize>,
}

/// A running server; stops when dropped.
pub struct DnsServer {
    pub addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

impl DnsServer {
    /// Serves UDP and TCP on one fresh loopback port.
    pub async fn start() -> DnsServer {
        let (udp, tcp) = bind_pair().await;
        let addr = udp.local_addr().expect("udp address");
        let zone = Arc::new(Mutex::new(Zone::default()));
        let tasks = vec![
            tokio::spawn(serve_udp(udp, zone.clone())),
            tokio::spawn(serve_tcp(tcp, zone.clone())),
        ];
        DnsServer { addr, zone, tasks }
    }

    /// Replaces the A records of `name` (its other records stay; a name
    /// left with none is answered NXDOMAIN).
    pub fn set_a(&self, name: &str, ips: &[Ipv4Addr]) {
        let data = ips.iter().map(|ip| RData::A(A(*ip))).collect();
        self.set(name, RecordType::A, data);
    }

    /// Replaces the AAAA records of `name`.
    pub fn set_aaaa(&self, name: &str, ips: &[Ipv6Addr]) {
        let data = ips.iter().map(|ip| RData::AAAA(AAAA(*ip))).collect();
        self.set(name, RecordType::AAAA, data);
    }

    /// Replaces the SRV records of `name`: `(target, port)` each.
    pub fn set_srv(&self, name: &str, targets: &[(&str, u16)]) {
        let data = targets
            .iter()
            .map(|(target, port)| RData::SRV(SRV::new(0, 10, *port, fqdn(target))))
            .collect();
        self.set(name, RecordType::SRV, data);
    }

    /// Forgets `name`: it is answered NXDOMAIN from now on.
    pub fn remove(&self, name: &str) {
        self.zone.lock().unwrap().records.remove(&key(name));
    }

    /// Answers every question about `name` with `code` (SERVFAIL, REFUSED).
    pub fn fail(&self, name: &str, code: ResponseCode) {
        self.zone.lock().unwrap().failing.insert(key(name), code);
    }

    /// How many questions (any type, either transport) asked about `name`.
    pub fn questions(&self, name: &str) -> usize {
        let zone = self.zone.lock().unwrap();
        zone.questions.get(&key(name)).copied().unwrap_or(0)
    }

    /// How many questions were asked in all.
    pub fn total_questions(&self) -> usize {
        self.zone.lock().unwrap().questions.values().sum()
    }

    fn set(&self, name: &str, record_type: RecordType, data: Vec<RData>) {
        let mut zone = self.zone.lock().unwrap();
        let records = zone.records.entry(key(name)).or_default();
        records.retain(|r| r.record_type() != record_type);
        records.extend(
            data.into_iter()
                .map(|d| Record::from_rdata(fqdn(name), TTL, d)),
        );
    }
}

/// A server that receives questions and never answers (UDP and TCP): a
/// nameserver that is down or blackholed.
pub struct SilentServer {
    pub addr: SocketAddr,
    _udp: UdpSocket,
    _tcp: TcpListener,
}

impl SilentServer {
    pub async fn start() -> SilentServer {
        let (udp, tcp) = bind_pair().await;
        SilentServer {
            addr: udp.local_addr().expect("udp address"),
            _udp: udp,
            _tcp: tcp,
        }
    }
}

/// A UDP socket and a TCP listener on the same loopback port (the
/// resolver asks both transports at one address).
async fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..20 {
        let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
        let addr = udp.local_addr().expect("udp address");
        if let Ok(tcp) = TcpListener::bind(addr).await {
            return (udp, tcp);
        }
    }
    panic!("no loopback port free for both UDP and TCP in 20 tries");
}

fn fqdn(name: &str) -> Name {
    Name::from_str(&format!("{}.", name.trim_end_matches('.'))).expect("a valid test name")
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

async fn serve_udp(socket: UdpSocket, zone: Arc<Mutex<Zone>>) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let Ok((len, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if let Some(answer) = answer(&zone, &buf[..len], Transport::Udp) {
            let _ = socket.send_to(&answer, from).await;
        }
    }
}

async fn serve_tcp(listener: TcpListener, zone: Arc<Mutex<Zone>>) {
    loop {
        if let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_tcp_conn(stream, zone.clone()));
        }
    }
}

/// DNS over TCP: each message after its two-byte length (RFC 1035 4.2.2).
async fn serve_tcp_conn(mut stream: TcpStream, zone: Arc<Mutex<Zone>>) {
    loop {
        let Ok(len) = stream.read_u16().await else {
            return;
        };
        let mut question = vec![0u8; usize::from(len)];
        if stream.read_exact(&mut question).await.is_err() {
            return;
        }
        let Some(answer) = answer(&zone, &question, Transport::Tcp) else {
            return;
        };
        let Ok(len) = u16::try_from(answer.len()) else {
            return;
        };
        if stream.write_u16(len).await.is_err() || stream.write_all(&answer).await.is_err() {
            return;
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Transport {
    Udp,
    Tcp,
}

/// The answer to one question message, or `None` for bytes that are not one.
fn answer(zone: &Mutex<Zone>, question: &[u8], transport: Transport) -> Option<Vec<u8>> {
    let request = Message::from_vec(question).ok()?;
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.authoritative = true;
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.queries = request.queries.clone();
    let Some(query) = request.queries.first() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return response.to_vec().ok();
    };
    {
        let mut zone = zone.lock().unwrap();
        let name = key(&query.name().to_ascii());
        *zone.questions.entry(name.clone()).or_default() += 1;
        if let Some(code) = zone.failing.get(&name) {
            response.metadata.response_code = *code;
        } else if let Some(records) = zone.records.get(&name).filter(|r| !r.is_empty()) {
            // The name as asked (resolvers may vary its case).
            response.answers = records
                .iter()
                .filter(|r| r.record_type() == query.query_type())
                .map(|r| Record::from_rdata(query.name().clone(), r.ttl, r.data.clone()))
                .collect();
        } else {
            response.metadata.response_code = ResponseCode::NXDomain;
        }
    }
    let bytes = response.to_vec().ok()?;
    let udp_limit = request
        .edns
        .as_ref()
        .map_or(CLASSIC_UDP_LIMIT, |e| usize::from(e.max_payload()));
    if transport == Transport::Udp && bytes.len() > udp_limit {
        response.answers.clear();
        response.metadata.truncation = true;
        return response.to_vec().ok();
    }
    Some(bytes)
}
