//! The transport's request rules, written once for both servers: the native
//! handler (`Transport::handler`, hyper) and the worker handler
//! (`handleRequest`, `fetch`). Like [`crate::codec`], this module does no
//! I/O: a server reads the plain facts of a request, asks [`Rules::decide`]
//! what to answer, and carries the answer out in its own runtime.
//!
//! # The rules, in the order they are applied
//!
//! For a request whose path is an endpoint ([`route`]: `<base>/message` or
//! `<base>/stream`; anything else is not the transport's to answer):
//!
//! 1. **CORS**, only when an allowlist is configured and the request
//!    carries `Origin`: an origin outside the list is refused `403`
//!    (without CORS headers, so the page cannot read it); an allowed
//!    origin's `OPTIONS` preflight is answered `204` with
//!    `Access-Control-Allow-Origin`, `-Methods: POST`,
//!    `-Headers: content-type` (`, authorization` when a token is set) and
//!    `-Max-Age: 600`. Every other answer to an allowed origin, refusals
//!    included, carries `Access-Control-Allow-Origin` and `Vary: origin`.
//!    Requests without `Origin` (peers) are not affected.
//! 2. **Shutting down**: `503`.
//! 3. **HTTP version**: HTTP/1.x is refused `505` (as the reference does)
//!    unless HTTP/1.1 is accepted (`accept_http1`, an extension).
//! 4. **Token**, when one is set: `Authorization: Bearer <token>`, compared
//!    in constant time, else `401`. Nothing is read or delivered.
//! 5. **Content type**: exactly `application/x.ckit`, else `400`. Checked
//!    before the method, as the reference does: a bare `GET` is a `400`.
//! 6. **Method**: `POST`, else `405` with `Allow: POST`.
//!
//! Then the endpoint itself: `/message` delivers each frame as soon as it
//! is whole ([`MessageReader`]) and answers `200` at the end of the body, or
//! at the first bad frame stops with `413` for a frame whose header
//! announces more than the maximum packet size (refused before anything is
//! allocated for it) and `400` for any other malformed frame, the frames
//! before it delivered ([`Refusal::for_frame`]). `/stream` answers `200` at
//! once (Go dialers wait for the headers before they write); what is written
//! to it is cut into frames by [`stream_frames`].
//!
//! A server answering a refusal before it has read the request's body first
//! reads and discards up to [`DRAIN_LIMIT`] bytes of it, for at most
//! [`DRAIN_TIME`]: an answer sent while the client is still about to send
//! its body is followed by a stream reset, and some clients (curl) then
//! report the reset instead of the status. Go's server drains the same way.

use crate::codec::FrameError;
use crate::CONTENT_TYPE;
use std::time::Duration;

mod access;
mod body;

pub use access::{Cors, Token};
pub use body::{stream_frames, MessageReader, StreamFrame};

/// Where both endpoints live by default (no trailing slash).
pub const BASE_PATH: &str = "/api/v1/ckit/transport";

/// At most this much of a refused request's body is read and discarded
/// before the refusal is answered.
pub const DRAIN_LIMIT: usize = 256 << 10;

/// At most this long is spent reading a refused request's body before the
/// refusal is answered.
pub const DRAIN_TIME: Duration = Duration::from_millis(250);

/// The longest payload the worker puts in one outgoing `/stream` frame:
/// bigger chunks are split (frame boundaries mean nothing on a stream),
/// which bounds what one write copies.
pub const MAX_STREAM_FRAME: usize = 1 << 20;

/// One of the two endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `<base>/message`: a body of frames, each one packet.
    Message,
    /// `<base>/stream`: a full-duplex byte pipe of frames.
    Stream,
}

/// Where a request path leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// One of the endpoints.
    Endpoint(Endpoint),
    /// Under the base path but no endpoint (`<base>`, `<base>/nope`): a
    /// server that owns the base path answers `404`.
    UnderBase,
    /// Outside the base path: not the transport's to answer.
    Elsewhere,
}

/// Where `path` (without its query) leads, for endpoints under `base`
/// (given without a trailing slash; empty for the root). Paths match
/// exactly: `<base>/message/` and `<base>/MESSAGE` are no endpoint.
pub fn route(base: &str, path: &str) -> Route {
    let Some(rest) = path.strip_prefix(base) else {
        return Route::Elsewhere;
    };
    match rest {
        "/message" => Route::Endpoint(Endpoint::Message),
        "/stream" => Route::Endpoint(Endpoint::Stream),
        // `<base>X/message` is not under `<base>`.
        _ if rest.is_empty() || rest.starts_with('/') => Route::UnderBase,
        _ => Route::Elsewhere,
    }
}

/// The facts of a request the rules look at, as raw header bytes
/// (whitespace around a value is ignored).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestFacts<'a> {
    /// The method, such as `"POST"`.
    pub method: &'a str,
    /// Whether the request came over HTTP/1.x (below HTTP/2).
    pub http1: bool,
    /// The `Content-Type` header.
    pub content_type: Option<&'a [u8]>,
    /// The `Origin` header.
    pub origin: Option<&'a [u8]>,
    /// The `Authorization` header.
    pub authorization: Option<&'a [u8]>,
}

/// The settings the rules apply, borrowed from a server's options.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rules<'a> {
    /// The CORS allowlist; `None`: CORS is off and `Origin` is ignored.
    pub cors: Option<&'a Cors>,
    /// The shared secret; `None`: no token is asked for.
    pub token: Option<&'a Token>,
    /// Whether HTTP/1.1 is accepted (else `505`).
    pub accept_http1: bool,
    /// Whether the server is shutting down (everything is `503`).
    pub shutting_down: bool,
}

/// What to answer a request for an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Serve the endpoint; add [`allow_origin_headers`] for `allow_origin`
    /// to whatever it answers.
    Accept {
        /// The allowed page origin to echo, if the request had one.
        allow_origin: Option<&'a [u8]>,
    },
    /// Answer a CORS preflight `204` with [`Decision::headers`].
    Preflight {
        /// The allowed origin that asked.
        origin: &'a [u8],
        /// Whether a token is set (then `authorization` is an allowed header).
        with_token: bool,
    },
    /// Refuse with [`Refusal::status`] and [`Decision::headers`].
    Refuse {
        /// Why.
        refusal: Refusal,
        /// The allowed page origin to echo, if the request had one.
        allow_origin: Option<&'a [u8]>,
    },
}

impl<'a> Decision<'a> {
    /// The status to answer with, or `None` when the endpoint decides.
    pub fn status(&self) -> Option<u16> {
        match self {
            Decision::Accept { .. } => None,
            Decision::Preflight { .. } => Some(204),
            Decision::Refuse { refusal, .. } => Some(refusal.status()),
        }
    }

    /// The headers the answer carries (lowercase names).
    pub fn headers(&self) -> Vec<(&'static str, &'a [u8])> {
        let mut out = Vec::new();
        match *self {
            Decision::Accept { allow_origin } => {
                out.extend(allow_origin.map(allow_origin_headers).into_iter().flatten());
            }
            Decision::Preflight { origin, with_token } => {
                out.extend(allow_origin_headers(origin));
                out.push(("access-control-allow-methods", b"POST".as_slice()));
                out.push((
                    "access-control-allow-headers",
                    if with_token {
                        b"content-type, authorization".as_slice()
                    } else {
                        b"content-type".as_slice()
                    },
                ));
                out.push(("access-control-max-age", b"600".as_slice()));
            }
            Decision::Refuse {
                refusal,
                allow_origin,
            } => {
                out.extend(allow_origin.map(allow_origin_headers).into_iter().flatten());
                if refusal == Refusal::Method {
                    out.push(("allow", b"POST".as_slice()));
                }
            }
        }
        out
    }
}

/// The headers that let an allowed page read an answer (any status).
pub fn allow_origin_headers(origin: &[u8]) -> [(&'static str, &[u8]); 2] {
    [
        ("access-control-allow-origin", origin),
        ("vary", b"origin".as_slice()),
    ]
}

impl Rules<'_> {
    /// What to answer a request for an endpoint, applying the rules in the
    /// order the module docs give.
    pub fn decide<'r>(&self, req: &RequestFacts<'r>) -> Decision<'r> {
        let req = RequestFacts {
            content_type: req.content_type.map(field_value),
            origin: req.origin.map(field_value),
            authorization: req.authorization.map(field_value),
            ..*req
        };
        let mut allow_origin = None;
        if let (Some(cors), Some(origin)) = (self.cors, req.origin) {
            if !cors.allows(origin) {
                return Decision::Refuse {
                    refusal: Refusal::Origin,
                    allow_origin: None,
                };
            }
            if req.method == "OPTIONS" {
                return Decision::Preflight {
                    origin,
                    with_token: self.token.is_some(),
                };
            }
            allow_origin = Some(origin);
        }
        let refusal = if self.shutting_down {
            Some(Refusal::ShuttingDown)
        } else if req.http1 && !self.accept_http1 {
            Some(Refusal::Http1)
        } else if self.token.is_some_and(|t| !t.accepts(req.authorization)) {
            Some(Refusal::Token)
        } else if req.content_type != Some(CONTENT_TYPE.as_bytes()) {
            Some(Refusal::ContentType)
        } else if req.method != "POST" {
            Some(Refusal::Method)
        } else {
            None
        };
        match refusal {
            Some(refusal) => Decision::Refuse {
                refusal,
                allow_origin,
            },
            None => Decision::Accept { allow_origin },
        }
    }
}

/// A header's value without the whitespace around it, which is not part
/// of it (RFC 9110, section 5.5). Fetch's `Headers` strip it before a
/// worker sees a value and HTTP/1 parsers drop it, but HTTP/2 hands it
/// over as sent: trimmed here, both servers judge the same value.
fn field_value(v: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = v.iter().position(|b| !is_ows(b)).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !is_ows(b)).map_or(start, |i| i + 1);
    &v[start..end]
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `403`: an `Origin` outside the CORS allowlist.
    Origin,
    /// `503`: the server is shutting down.
    ShuttingDown,
    /// `505`: HTTP/1.x where only HTTP/2 is accepted.
    Http1,
    /// `401`: no `Authorization: Bearer <token>`, or a wrong one.
    Token,
    /// `400`: a `Content-Type` other than exactly `application/x.ckit`.
    ContentType,
    /// `405`: a method other than `POST`.
    Method,
    /// `413`: a frame announcing more than the maximum packet size.
    TooLarge,
    /// `400`: a malformed frame (bad magic byte, or the body ended inside
    /// a frame).
    Malformed,
    /// `400`: the request body failed before its end.
    BodyFailed,
    /// `408`: the body took longer than the server allows.
    BodyTimeout,
}

impl Refusal {
    /// The HTTP status that answers it.
    pub fn status(self) -> u16 {
        match self {
            Refusal::Origin => 403,
            Refusal::ShuttingDown => 503,
            Refusal::Http1 => 505,
            Refusal::Token => 401,
            Refusal::ContentType | Refusal::Malformed | Refusal::BodyFailed => 400,
            Refusal::Method => 405,
            Refusal::TooLarge => 413,
            Refusal::BodyTimeout => 408,
        }
    }

    /// The `reason` label it is counted under in `requests_refused`, for
    /// the refusals a server counts and logs (rate-limited): access rules
    /// and refused bodies. The others are the client's own doing and are
    /// only answered.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Refusal::Origin => Some("origin"),
            Refusal::Token => Some("auth"),
            Refusal::TooLarge => Some("packet_size"),
            Refusal::Malformed => Some("malformed"),
            Refusal::BodyFailed => Some("body_error"),
            Refusal::BodyTimeout => Some("body_timeout"),
            Refusal::ShuttingDown | Refusal::Http1 | Refusal::ContentType | Refusal::Method => None,
        }
    }

    /// A one-line explanation for a client (the worker's answer body).
    pub fn explanation(self) -> &'static str {
        match self {
            Refusal::Origin => "origin not allowed",
            Refusal::ShuttingDown => "shutting down",
            Refusal::Http1 => "HTTP/1.1 is not accepted here: use HTTP/2",
            Refusal::Token => "missing or wrong bearer token",
            Refusal::ContentType => "content-type must be exactly application/x.ckit",
            Refusal::Method => "method not allowed: use POST",
            Refusal::TooLarge => "packet too large",
            Refusal::Malformed => "malformed frame",
            Refusal::BodyFailed => "reading the body failed",
            Refusal::BodyTimeout => "the body took too long",
        }
    }

    /// A frame error ends a `/message` body with `413` when the frame is
    /// well formed but over the maximum packet size (more than this server
    /// takes), and `400` otherwise (malformed). Any non-`200` is a failed
    /// send to a Go peer.
    pub fn for_frame(e: &FrameError) -> Refusal {
        match e {
            FrameError::TooLarge { .. } => Refusal::TooLarge,
            _ => Refusal::Malformed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &[u8] = b"application/x.ckit";

    fn post() -> RequestFacts<'static> {
        RequestFacts {
            method: "POST",
            http1: false,
            content_type: Some(CT),
            origin: None,
            authorization: None,
        }
    }

    fn refusal(d: Decision<'_>) -> Option<Refusal> {
        match d {
            Decision::Refuse { refusal, .. } => Some(refusal),
            _ => None,
        }
    }

    #[test]
    fn routes_match_exactly_under_the_base() {
        let b = BASE_PATH;
        assert_eq!(
            route(b, &format!("{b}/message")),
            Route::Endpoint(Endpoint::Message)
        );
        assert_eq!(
            route(b, &format!("{b}/stream")),
            Route::Endpoint(Endpoint::Stream)
        );
        for under in ["", "/", "/messages", "/message/", "/MESSAGE"] {
            assert_eq!(
                route(b, &format!("{b}{under}")),
                Route::UnderBase,
                "{under}"
            );
        }
        for other in ["/metrics", "/", "/api/v1/ckit/transportX/message"] {
            assert_eq!(route(b, other), Route::Elsewhere, "{other}");
        }
        assert_eq!(route("", "/message"), Route::Endpoint(Endpoint::Message));
    }

    #[test]
    fn a_good_request_is_accepted() {
        assert_eq!(
            Rules::default().decide(&post()),
            Decision::Accept { allow_origin: None }
        );
    }

    #[test]
    fn rules_apply_in_order() {
        let token = Token::new("tok");
        let cors = Cors::new(&["https://a.example"]).unwrap();
        let all_wrong = RequestFacts {
            method: "GET",
            http1: true,
            content_type: None,
            origin: Some(b"https://b.example"),
            authorization: None,
        };
        let mut rules = Rules {
            cors: Some(&cors),
            token: Some(&token),
            accept_http1: false,
            shutting_down: true,
        };
        let mut req = all_wrong;
        let mut seen = Vec::new();
        // Fix each fault in turn: the next rule answers.
        seen.push(refusal(rules.decide(&req)));
        req.origin = Some(b"https://a.example");
        seen.push(refusal(rules.decide(&req)));
        rules.shutting_down = false;
        seen.push(refusal(rules.decide(&req)));
        rules.accept_http1 = true;
        seen.push(refusal(rules.decide(&req)));
        req.authorization = Some(b"Bearer tok");
        seen.push(refusal(rules.decide(&req)));
        req.content_type = Some(CT);
        seen.push(refusal(rules.decide(&req)));
        req.method = "POST";
        seen.push(refusal(rules.decide(&req)));
        use Refusal as R;
        assert_eq!(
            seen,
            [
                Some(R::Origin),
                Some(R::ShuttingDown),
                Some(R::Http1),
                Some(R::Token),
                Some(R::ContentType),
                Some(R::Method),
                None
            ]
        );
        let statuses: Vec<u16> = seen.iter().flatten().map(|r| r.status()).collect();
        assert_eq!(statuses, [403, 503, 505, 401, 400, 405]);
    }

    #[test]
    fn cors_headers_on_preflight_accept_and_refusal_but_not_on_403() {
        let cors = Cors::new(&["https://a.example/"]).unwrap();
        let rules = Rules {
            cors: Some(&cors),
            ..Rules::default()
        };
        let origin = Some(b"https://a.example".as_slice());
        let pre = rules.decide(&RequestFacts {
            method: "OPTIONS",
            content_type: None,
            origin,
            ..post()
        });
        assert_eq!(pre.status(), Some(204));
        let h = pre.headers();
        assert!(h.contains(&("access-control-allow-origin", b"https://a.example")));
        assert!(h.contains(&("access-control-allow-headers", b"content-type")));
        assert!(h.contains(&("access-control-allow-methods", b"POST")));

        let accept = rules.decide(&RequestFacts { origin, ..post() });
        assert_eq!(
            accept,
            Decision::Accept {
                allow_origin: origin
            }
        );
        assert!(accept.headers().contains(&("vary", b"origin")));

        let refused = rules.decide(&RequestFacts {
            method: "PUT",
            origin,
            ..post()
        });
        assert_eq!(refused.status(), Some(405));
        let h = refused.headers();
        assert!(h.contains(&("allow", b"POST")));
        assert!(h.contains(&("access-control-allow-origin", b"https://a.example")));

        let other = rules.decide(&RequestFacts {
            origin: Some(b"https://b.example"),
            ..post()
        });
        assert_eq!(other.status(), Some(403));
        assert!(other.headers().is_empty());

        // A peer sends no Origin: CORS does not apply.
        assert_eq!(rules.decide(&post()).status(), None);
        // Without an allowlist, Origin is ignored.
        let off = Rules::default().decide(&RequestFacts {
            origin: Some(b"https://b.example"),
            ..post()
        });
        assert_eq!(off, Decision::Accept { allow_origin: None });
    }

    /// Whitespace around a header value is not part of it, whatever the
    /// HTTP version carried it.
    #[test]
    fn whitespace_around_header_values_is_ignored() {
        let token = Token::new("tok");
        let rules = Rules {
            token: Some(&token),
            ..Rules::default()
        };
        let padded = RequestFacts {
            content_type: Some(b" application/x.ckit\t"),
            authorization: Some(b"Bearer tok "),
            ..post()
        };
        assert_eq!(rules.decide(&padded).status(), None);
        let inside = RequestFacts {
            authorization: Some(b"Bearer  tok"),
            ..post()
        };
        assert_eq!(rules.decide(&inside).status(), Some(401));
        assert_eq!(field_value(b" \t "), b"");
    }

    #[test]
    fn preflight_allows_authorization_when_a_token_is_set() {
        let cors = Cors::new(&["*"]).unwrap();
        let token = Token::new("tok");
        let rules = Rules {
            cors: Some(&cors),
            token: Some(&token),
            ..Rules::default()
        };
        let pre = rules.decide(&RequestFacts {
            method: "OPTIONS",
            origin: Some(b"https://any.example"),
            ..RequestFacts::default()
        });
        assert!(pre.headers().contains(&(
            "access-control-allow-headers",
            b"content-type, authorization"
        )));
    }

    #[test]
    fn frame_errors_map_to_413_or_400() {
        let too_large = FrameError::TooLarge { len: 9, max: 8 };
        assert_eq!(Refusal::for_frame(&too_large).status(), 413);
        assert_eq!(Refusal::for_frame(&FrameError::BadMagic(1)).status(), 400);
        let truncated = FrameError::Truncated {
            received: 1,
            expected: None,
        };
        assert_eq!(Refusal::for_frame(&truncated), Refusal::Malformed);
        assert_eq!(Refusal::TooLarge.reason(), Some("packet_size"));
        assert_eq!(Refusal::Method.reason(), None);
    }
}
