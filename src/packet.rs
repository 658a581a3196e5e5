//! What the transport hands to the application, and how peers are named.

use crate::error::Error;
use bytes::Bytes;
use std::fmt;
use std::net::SocketAddr;

/// The base route of both endpoints.
pub const BASE_ROUTE: &str = "/api/v1/ckit/transport/";
/// The packet endpoint: a body of frames, each one packet.
pub const MESSAGE_PATH: &str = "/api/v1/ckit/transport/message";
/// The stream endpoint: a full-duplex byte pipe of frames.
pub const STREAM_PATH: &str = "/api/v1/ckit/transport/stream";
/// The `Content-Type` both endpoints require, matched exactly.
pub const CONTENT_TYPE: &str = "application/x.ckit";

/// One packet received from a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The packet's bytes: one frame's payload.
    pub payload: Bytes,
    /// The sender's TCP address (not its advertised address), as the
    /// reference reports it. For a packet a gossiphttp peer put in its
    /// answer to one of this transport's requests, the address that request
    /// went to (see [`Options::answers_in_responses`](crate::Options::answers_in_responses)).
    pub from: SocketAddr,
    /// When the request carrying the packet was received.
    #[cfg(not(target_arch = "wasm32"))]
    pub received_at: std::time::Instant,
}

/// Whether a peer is reached over cleartext HTTP/2 (h2c) or TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `http`: HTTP/2 with prior knowledge, no TLS.
    Http,
    /// `https`: TLS with ALPN `h2`.
    Https,
}

impl Scheme {
    /// `"http"` or `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// A peer's address: `host:port` as memberlist advertises it, or a URL
/// (`https://edge.example.com`) for a peer that is not a plain listener.
///
/// ```
/// use gossiphttp::{PeerAddr, Scheme};
///
/// let a: PeerAddr = "10.0.0.7:7946".parse().unwrap();
/// assert_eq!((a.host(), a.port(), a.scheme()), ("10.0.0.7", 7946, None));
///
/// let b: PeerAddr = "https://edge.example.com".parse().unwrap();
/// assert_eq!((b.host(), b.port(), b.scheme()), ("edge.example.com", 443, Some(Scheme::Https)));
///
/// let c: PeerAddr = "[::1]:80".parse().unwrap();
/// assert_eq!(c.host(), "::1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerAddr {
    scheme: Option<Scheme>,
    host: String,
    port: u16,
}

impl PeerAddr {
    /// The scheme a URL named; `None` for `host:port`, which uses the
    /// transport's setting.
    pub fn scheme(&self) -> Option<Scheme> {
        self.scheme
    }
    /// Host name or IP address, without IPv6 brackets.
    pub fn host(&self) -> &str {
        &self.host
    }
    /// TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }
    /// The socket address it names, when its host is an IP address (not a
    /// name to resolve).
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn ip_socket_addr(&self) -> Option<SocketAddr> {
        let ip = self.host.parse::<std::net::IpAddr>().ok()?;
        Some(SocketAddr::new(ip, self.port))
    }

    /// `host:port`, with brackets around IPv6 addresses.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scheme {
            Some(s) => write!(f, "{}://{}", s.as_str(), self.authority()),
            None => f.write_str(&self.authority()),
        }
    }
}

impl std::str::FromStr for PeerAddr {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::InvalidAddress {
            addr: s.to_string(),
            reason: reason.to_string(),
        };
        let (scheme, rest) = if let Some(r) = s.strip_prefix("http://") {
            (Some(Scheme::Http), r)
        } else if let Some(r) = s.strip_prefix("https://") {
            (Some(Scheme::Https), r)
        } else if s.contains("://") {
            return Err(bad("only http:// and https:// URLs are supported"));
        } else {
            (None, s)
        };
        // A URL may carry a trailing slash; nothing else after the authority.
        let authority = match scheme {
            Some(_) => rest.strip_suffix('/').unwrap_or(rest),
            None => rest,
        };
        if authority.contains('/') {
            return Err(bad("a peer address is host:port or scheme://host[:port]"));
        }
        let bracketed = authority.starts_with('[');
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None if after.is_empty() => (host, None),
                None => return Err(bad("unexpected text after ']'")),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, _)) if h.contains(':') => {
                    return Err(bad("IPv6 addresses need brackets: [addr]:port"))
                }
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        check_host(host, bracketed).map_err(|reason| bad(&reason))?;
        let port = match (port, scheme) {
            (Some(p), _) => p
                .parse::<u16>()
                .map_err(|_| bad("port is not a number 0-65535"))?,
            (None, Some(Scheme::Http)) => 80,
            (None, Some(Scheme::Https)) => 443,
            (None, None) => return Err(bad("missing port (host:port)")),
        };
        Ok(PeerAddr {
            scheme,
            host: host.to_string(),
            port,
        })
    }
}

/// The longest DNS name (RFC 1035), and so the longest host accepted.
const MAX_HOST_LEN: usize = 253;

/// Whether `host` can name a peer in a request URI: an IPv6 literal inside
/// brackets, else an IPv4 address or a name made of RFC 3986's unreserved
/// characters (letters, digits, `-`, `.`, `_`, `~`). Anything else (spaces,
/// `@`, `%`, `?`...) would be refused by the HTTP stack later, or change
/// what the URI means, so it is refused here, naming the culprit.
fn check_host(host: &str, bracketed: bool) -> Result<(), String> {
    if host.is_empty() {
        return Err("empty host".into());
    }
    if bracketed {
        return match host.parse::<std::net::Ipv6Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err(format!("{host:?} inside [] is not an IPv6 address")),
        };
    }
    if host.len() > MAX_HOST_LEN {
        return Err(format!(
            "host is {} characters long, more than a DNS name's {MAX_HOST_LEN}",
            host.len()
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~');
    match host.chars().find(|&c| !allowed(c)) {
        Some(c) => Err(format!(
            "host {host:?} contains {c:?}; a host is a DNS name (letters, digits, '-', '.', \
             '_', '~') or an IP address"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_an_address() {
        for bad in [
            "",
            "host",
            ":80",
            "host:http",
            "host:70000",
            "ftp://x:1",
            "::1:80",
            "[::1",
            "http://x/y",
            "a b:80",
            "a@b:80",
            "a?b:80",
            "a%20b:80",
            "http://a b",
            "[not-v6]:80",
            "h\u{e9}:80",
        ] {
            assert!(bad.parse::<PeerAddr>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn a_refused_host_says_why() {
        let err = "a b:80".parse::<PeerAddr>().unwrap_err();
        assert!(matches!(err, Error::InvalidAddress { .. }), "{err:?}");
        assert!(err.to_string().contains("contains ' '"), "{err}");
        let long = format!("{}:1", "a".repeat(MAX_HOST_LEN + 1));
        assert!(long.parse::<PeerAddr>().is_err());
    }

    #[test]
    fn accepts_names_and_literals() {
        for good in [
            "my_svc.ns:1",
            "a-b.example~x:2",
            "10.0.0.1:3",
            "[fe80::1]:4",
        ] {
            assert!(good.parse::<PeerAddr>().is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn display_round_trips() {
        for good in ["a:1", "[::1]:2", "https://h:3", "http://[fe80::1]:4"] {
            assert_eq!(good.parse::<PeerAddr>().unwrap().to_string(), good);
        }
    }
}
