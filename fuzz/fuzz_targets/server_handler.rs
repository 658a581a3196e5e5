//! The whole server handler (`Transport::handler()`, a tower `Service`) fed
//! one arbitrary request per run: method, path, content type, HTTP version,
//! `Authorization` and `Origin` headers, transport options (limit, queue,
//! CORS, token, HTTP/1.1, metrics, shut down or not), and a body of
//! arbitrary bytes in arbitrary chunks, maybe ending in trailers or a body
//! error.
//!
//! Checks: no panic and no hang (every run has a time budget); the status
//! is the one the contract and the options call for; for `/message`, the
//! packets in `transport.packets()` are exactly the whole frames before the
//! first bad one, byte-exact, with the right source address, and nothing is
//! delivered when the request is refused; for `/stream`, the accepted
//! connection reads exactly the model's byte pipe, then ends the way the
//! body did, and what is written back arrives as frames in the response.
//!
//! Input layout (see `seed.py`), one byte each unless said:
//! `path`, `method`, `content_type`, `version`, `options` (bit 0
//! accept_http1, bit 1 auth token "tok", bit 2 serve_metrics, bit 3 shut down
//! first, bits 4-5 CORS: off / one origin / "*" / one origin with a trailing
//! slash, bits 6-7 remote address: for_peer / extension / none / both),
//! `authorization`, `origin`, `max_packet_size` (u16 BE), `packet_queue`,
//! `body_end` (bits 0-6: 0 none, n: a body error after chunk (n-1) mod
//! (chunks+1); bit 7: trailers after the data), `k`, `k` cut points (u16
//! BE), then the body. Each selector byte is taken modulo its table.
#![no_main]

use bytes::{Bytes, BytesMut};
use futures_util::stream;
use gossiphttp::codec::StreamDecoder;
use gossiphttp::{Options, RemoteAddr, Transport, CONTENT_TYPE, MESSAGE_PATH, STREAM_PATH};
use gossiphttp_fuzz::{model, pieces, End, Reader};
use http::header::{ACCESS_CONTROL_ALLOW_ORIGIN, AUTHORIZATION, CONTENT_TYPE as CT, ORIGIN};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Version};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use libfuzzer_sys::fuzz_target;
use std::io;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower_service::Service;

/// Far longer than any run takes; reached only when something hangs.
const BUDGET: Duration = Duration::from_secs(10);

const PATHS: &[&str] = &[
    MESSAGE_PATH,
    STREAM_PATH,
    "/api/v1/ckit/transport/message?x=1",
    "/api/v1/ckit/transport/stream?",
    "/metrics",
    "/api/v1/ckit/transport/",
    "/api/v1/ckit/transport/messages",
    "/api/v1/ckit/transport/message/",
    "/api/v1/ckit/transport/MESSAGE",
    "//api/v1/ckit/transport/message",
    "/",
];

const METHODS: &[&str] = &[
    "POST", "GET", "PUT", "OPTIONS", "DELETE", "HEAD", "PATCH", "GOSSIP",
];

/// `None`: no header.
const CONTENT_TYPES: &[Option<&[u8]>] = &[
    Some(b"application/x.ckit"),
    None,
    Some(b"application/x.ckit; charset=utf-8"),
    Some(b"Application/X.Ckit"),
    Some(b"application/x.ckit "),
    Some(b"application/octet-stream"),
    Some(b""),
    Some(b"application/x.cki"),
];

const VERSIONS: &[Version] = &[
    Version::HTTP_2,
    Version::HTTP_11,
    Version::HTTP_10,
    Version::HTTP_3,
];

const TOKEN: &str = "tok";
const AUTHS: &[Option<&[u8]>] = &[
    None,
    Some(b"Bearer tok"),
    Some(b"bearer tok"),
    Some(b"Bearer to"),
    Some(b"Bearer tok "),
    Some(b"Bearer tokk"),
    Some(b"Basic dG9r"),
    Some(b""),
];

const ALLOWED_ORIGIN: &str = "https://a.example";
const ORIGINS: &[Option<&[u8]>] = &[
    None,
    Some(b"https://a.example"),
    Some(b"https://b.example"),
    Some(b"null"),
    Some(b"https://a.example/"),
    Some(b"HTTPS://A.EXAMPLE"),
];

const PEER: ([u8; 4], u16) = ([192, 0, 2, 7], 7946);
const EXT_PEER: ([u8; 4], u16) = ([198, 51, 100, 9], 1234);

#[derive(Debug)]
struct Case<'a> {
    path: &'static str,
    method: Method,
    content_type: Option<&'static [u8]>,
    version: Version,
    accept_http1: bool,
    token: bool,
    serve_metrics: bool,
    shut_down: bool,
    cors: u8,
    remote: u8,
    auth: Option<&'static [u8]>,
    origin: Option<&'static [u8]>,
    max_packet: usize,
    queue: usize,
    error_after: Option<usize>,
    trailers: bool,
    chunks: Vec<&'a [u8]>,
    body: &'a [u8],
}

fn pick<T: Copy>(table: &[T], b: u8) -> T {
    table[b as usize % table.len()]
}

impl<'a> Case<'a> {
    fn parse(data: &'a [u8]) -> Case<'a> {
        let mut r = Reader::new(data);
        let path = pick(PATHS, r.u8());
        let method = Method::from_bytes(pick(METHODS, r.u8()).as_bytes()).unwrap();
        let content_type = pick(CONTENT_TYPES, r.u8());
        let version = pick(VERSIONS, r.u8());
        let flags = r.u8();
        let auth = pick(AUTHS, r.u8());
        let origin = pick(ORIGINS, r.u8());
        let max_packet = r.u16() as usize;
        let queue = 1 + r.u8() as usize % 8;
        let end = r.u8();
        let cuts = r.cuts();
        let body = r.rest();
        let chunks = pieces(body, &cuts);
        let error_after = match end & 0x7f {
            0 => None,
            n => Some((n as usize - 1) % (chunks.len() + 1)),
        };
        Case {
            path,
            method,
            content_type,
            version,
            accept_http1: flags & 1 != 0,
            token: flags & 2 != 0,
            serve_metrics: flags & 4 != 0,
            shut_down: flags & 8 != 0,
            cors: (flags >> 4) & 3,
            remote: flags >> 6,
            auth,
            origin,
            max_packet,
            queue,
            error_after,
            trailers: end & 0x80 != 0,
            chunks,
            body,
        }
    }

    fn options(&self) -> Options {
        let mut o = Options::default();
        o.max_packet_size = self.max_packet;
        o.packet_queue_size = self.queue;
        o.accept_http1 = self.accept_http1;
        o.serve_metrics = self.serve_metrics;
        o.auth_token = self.token.then(|| TOKEN.to_string());
        o.cors_allowed_origins = match self.cors {
            0 => vec![],
            1 => vec![ALLOWED_ORIGIN.to_string()],
            2 => vec!["*".to_string()],
            _ => vec![format!("{ALLOWED_ORIGIN}/")],
        };
        o
    }

    /// The body bytes the handler reads before the body fails, if it does.
    fn readable(&self) -> &'a [u8] {
        match self.error_after {
            None => self.body,
            Some(n) => {
                let len: usize = self.chunks[..n].iter().map(|c| c.len()).sum();
                &self.body[..len]
            }
        }
    }

    /// The source address packets and streams must report.
    fn source(&self) -> SocketAddr {
        match self.remote {
            1 => SocketAddr::from(EXT_PEER),
            2 => SocketAddr::from(([0, 0, 0, 0], 0)),
            _ => SocketAddr::from(PEER),
        }
    }

    fn request(&self) -> Request<StreamBody<stream::Iter<std::vec::IntoIter<BodyFrame>>>> {
        let mut frames: Vec<BodyFrame> = Vec::new();
        for (i, c) in self.chunks.iter().enumerate() {
            if self.error_after == Some(i) {
                frames.push(Err(io::Error::other("injected body error")));
            }
            frames.push(Ok(Frame::data(Bytes::copy_from_slice(c))));
        }
        if self.trailers {
            let mut t = HeaderMap::new();
            t.insert("x-trailer", HeaderValue::from_static("1"));
            frames.push(Ok(Frame::trailers(t)));
        }
        if self.error_after == Some(self.chunks.len()) {
            frames.push(Err(io::Error::other("injected body error")));
        }
        let mut req = Request::builder()
            .method(self.method.clone())
            .uri(format!("http://peer.test{}", self.path))
            .version(self.version);
        let headers = req.headers_mut().unwrap();
        for (name, value) in [
            (CT, self.content_type),
            (AUTHORIZATION, self.auth),
            (ORIGIN, self.origin),
        ] {
            if let Some(v) = value {
                headers.insert(name, HeaderValue::from_bytes(v).unwrap());
            }
        }
        if self.remote & 1 == 1 {
            req = req.extension(RemoteAddr(SocketAddr::from(EXT_PEER)));
        }
        req.body(StreamBody::new(stream::iter(frames))).unwrap()
    }

    fn cors_allows(&self, origin: &[u8]) -> bool {
        match self.cors {
            2 => true,
            _ => origin == ALLOWED_ORIGIN.as_bytes(),
        }
    }

    /// The status the request must get before its body matters, in the
    /// order the contract documents: path, CORS, shutdown, HTTP version,
    /// token, content type, method (whitespace around a header value
    /// ignored). `None`: the body decides.
    fn refusal(&self) -> Option<StatusCode> {
        let path = self.path.split('?').next().unwrap();
        if path != MESSAGE_PATH && path != STREAM_PATH {
            return Some(
                if self.serve_metrics && path == "/metrics" && self.method == Method::GET {
                    StatusCode::OK
                } else {
                    StatusCode::NOT_FOUND
                },
            );
        }
        if let (true, Some(origin)) = (self.cors != 0, self.origin) {
            if !self.cors_allows(origin) {
                return Some(StatusCode::FORBIDDEN);
            }
            if self.method == Method::OPTIONS {
                return Some(StatusCode::NO_CONTENT);
            }
        }
        if self.shut_down {
            return Some(StatusCode::SERVICE_UNAVAILABLE);
        }
        if self.version < Version::HTTP_2 && !self.accept_http1 {
            return Some(StatusCode::HTTP_VERSION_NOT_SUPPORTED);
        }
        if self.token && self.auth.map(trim) != Some(format!("Bearer {TOKEN}").as_bytes()) {
            return Some(StatusCode::UNAUTHORIZED);
        }
        if self.content_type.map(trim) != Some(CONTENT_TYPE.as_bytes()) {
            return Some(StatusCode::BAD_REQUEST);
        }
        if self.method != Method::POST {
            return Some(StatusCode::METHOD_NOT_ALLOWED);
        }
        None
    }

    fn is_stream(&self) -> bool {
        self.path.split('?').next() == Some(STREAM_PATH)
    }
}

/// A header value without the whitespace around it, which is not part of
/// it (RFC 9110): the contract compares values so.
fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b" \t".contains(b))
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b" \t".contains(b))
        .map_or(start, |i| i + 1);
    &v[start..end]
}

type BodyFrame = Result<Frame<Bytes>, io::Error>;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let case = Case::parse(data);
    runtime().block_on(async {
        match tokio::time::timeout(BUDGET, run(&case)).await {
            Ok(()) => {}
            Err(_) => panic!("the handler hung (> {BUDGET:?}) on {case:?}"),
        }
    });
});

async fn run(case: &Case<'_>) {
    let (transport, _registry) = Transport::new(case.options()).expect("valid options");
    if case.shut_down {
        transport.shutdown().await;
    }
    let mut handler = transport.handler();
    if case.remote != 1 && case.remote != 2 {
        handler = handler.for_peer(SocketAddr::from(PEER));
    }
    let mut packets = transport.packets();
    let mut delivered = Vec::new();
    let call = handler.call(case.request());
    tokio::pin!(call);
    // Drain the packet queue while the handler runs: with a queue of a few
    // packets it waits for room, as it must.
    let resp = loop {
        tokio::select! {
            r = &mut call => break r.expect("infallible"),
            Some(p) = packets.recv() => delivered.push(p),
        }
    };
    while let Some(p) = packets.try_recv() {
        delivered.push(p);
    }
    let status = resp.status();
    let allowed_origin = case.cors != 0 && case.origin.is_some_and(|o| case.cors_allows(o));
    if allowed_origin && status != StatusCode::NOT_FOUND && case.refusal() != Some(StatusCode::OK) {
        assert_eq!(
            resp.headers()
                .get(ACCESS_CONTROL_ALLOW_ORIGIN)
                .map(|v| v.as_bytes()),
            case.origin,
            "an allowed origin's response lacks Access-Control-Allow-Origin"
        );
    }

    if let Some(want) = case.refusal() {
        assert_eq!(status, want, "status for {case:?}");
        assert!(delivered.is_empty(), "a refused request delivered packets");
        // Whatever body comes with it ends, and is small.
        let body = read_body(resp.into_body(), 1 << 20).await;
        if want != StatusCode::OK {
            assert!(body.is_empty(), "a {want} with a body");
        }
        return;
    }

    let readable = case.readable();
    let broken = case.error_after.is_some();
    if case.is_stream() {
        assert_eq!(status, StatusCode::OK, "a stream refused: {case:?}");
        assert!(delivered.is_empty());
        stream_echo(&transport, case, readable, broken, resp.into_body()).await;
        return;
    }

    // `/message`: the whole frames before the first bad one, then a status
    // for how the body ended.
    let m = model(readable, case.max_packet);
    let want = match (&m.packet_end, broken) {
        (End::TooLarge, _) => StatusCode::PAYLOAD_TOO_LARGE,
        (End::BadMagic, _) => StatusCode::BAD_REQUEST,
        (_, true) => StatusCode::BAD_REQUEST,
        (End::Truncated, false) => StatusCode::BAD_REQUEST,
        (End::Clean, false) => StatusCode::OK,
    };
    assert_eq!(status, want, "status for a body ending {:?}", m.packet_end);
    assert_eq!(
        delivered.len(),
        m.packets.len(),
        "packets delivered: {} instead of {}",
        delivered.len(),
        m.packets.len()
    );
    for (i, (got, want)) in delivered.iter().zip(&m.packets).enumerate() {
        assert!(got.payload == want[..], "packet {i} differs");
        assert_eq!(got.from, case.source(), "packet {i}'s source");
    }
    assert!(read_body(resp.into_body(), 0).await.is_empty());
}

/// Reads an accepted stream to its end, compares it with the model, then
/// writes what it read back and checks that the response body carries it.
async fn stream_echo<B>(
    transport: &Transport,
    case: &Case<'_>,
    readable: &[u8],
    broken: bool,
    body: B,
) where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let mut conn = transport
        .streams()
        .accept()
        .await
        .expect("a 200 stream is queued");
    assert_eq!(conn.remote_addr(), case.source());
    let m = model(readable, usize::MAX);
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    let end = loop {
        match conn.read(&mut buf).await {
            Ok(0) => break Ok(()),
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                assert!(got.len() <= readable.len(), "read more than was sent");
            }
            Err(e) => break Err(e.kind()),
        }
    };
    assert!(got == m.stream, "stream bytes differ from the model");
    let want = match (&m.stream_end, broken) {
        (End::BadMagic, _) => Err(io::ErrorKind::InvalidData),
        (_, true) => Err(io::ErrorKind::ConnectionReset),
        (End::Truncated, false) => Err(io::ErrorKind::UnexpectedEof),
        (End::Clean, false) => Ok(()),
        (End::TooLarge, false) => unreachable!("a stream has no limit"),
    };
    assert_eq!(end, want, "the stream ended otherwise than its body");

    // Our half: what we write arrives as frames in the response body.
    let write = async move {
        conn.write_all(&got).await.expect("write to the stream");
        conn.shutdown().await.expect("shut the stream down");
        drop(conn);
        got
    };
    let bound = readable.len() + 3 * (readable.len() / 0xFFFF + 1);
    let (sent, wire) = tokio::join!(write, read_body(body, bound));
    let mut dec = StreamDecoder::new();
    let mut wire = BytesMut::from(&wire[..]);
    let mut echoed = Vec::new();
    while let Some(run) = dec.decode_eof(&mut wire).expect("our own frames decode") {
        echoed.extend_from_slice(&run);
    }
    assert!(
        echoed == sent,
        "the response body does not carry what was written"
    );
}

/// A response body's data, up to `bound` bytes (more is a failure).
async fn read_body<B>(body: B, bound: usize) -> Vec<u8>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let mut body = std::pin::pin!(body);
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("response bodies do not fail").into_data() {
            out.extend_from_slice(&data);
            assert!(out.len() <= bound, "response body over {bound} bytes");
        }
    }
    out
}
