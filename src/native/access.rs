//! Who may use the endpoints: the CORS origin allowlist (for browser
//! clients) and the optional shared-secret token. Both are off by default,
//! because Go peers send neither an `Origin` nor a token.

use hyper::header::{
    HeaderMap, HeaderValue, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE, AUTHORIZATION, VARY,
};

/// The origins a browser page may call the endpoints from.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cors {
    any: bool,
    origins: Vec<HeaderValue>,
}

impl Cors {
    /// From [`Options::cors_allowed_origins`](crate::Options): exact origins
    /// (`https://app.example.com`), or `"*"` for any origin, which must be
    /// asked for explicitly.
    pub(crate) fn new(allowed: &[String]) -> Option<Cors> {
        if allowed.is_empty() {
            return None;
        }
        Some(Cors {
            any: allowed.iter().any(|o| o == "*"),
            origins: allowed
                .iter()
                .filter(|o| *o != "*")
                .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
                .collect(),
        })
    }

    pub(crate) fn allows(&self, origin: &HeaderValue) -> bool {
        self.any || self.origins.iter().any(|o| o == origin)
    }

    /// The headers that answer a preflight from an allowed `origin`.
    pub(crate) fn preflight_headers(
        &self,
        origin: &HeaderValue,
        with_auth: bool,
        headers: &mut HeaderMap,
    ) {
        Self::allow_origin(origin, headers);
        headers.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST"),
        );
        headers.insert(
            ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(if with_auth {
                "content-type, authorization"
            } else {
                "content-type"
            }),
        );
        headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    }

    /// Lets the page read a response (any status) to its request.
    pub(crate) fn allow_origin(origin: &HeaderValue, headers: &mut HeaderMap) {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.insert(VARY, HeaderValue::from_static("origin"));
    }
}

/// The shared-secret check: `Authorization: Bearer <token>`.
#[derive(Clone)]
pub(crate) struct Token(Vec<u8>);

impl Token {
    pub(crate) fn new(token: &str) -> Token {
        Token(format!("Bearer {token}").into_bytes())
    }

    /// The header value a client sends.
    pub(crate) fn header(&self) -> HeaderValue {
        let mut v = HeaderValue::from_bytes(&self.0).expect("validated token");
        v.set_sensitive(true);
        v
    }

    /// Compares in constant time, so the comparison leaks nothing about
    /// how much of a guess was right.
    pub(crate) fn accepts(&self, headers: &HeaderMap) -> bool {
        let Some(got) = headers.get(AUTHORIZATION) else {
            return false;
        };
        let got = got.as_bytes();
        if got.len() != self.0.len() {
            return false;
        }
        got.iter()
            .zip(&self.0)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }

    /// A token must be a valid header value without spaces or control bytes.
    pub(crate) fn validate(token: &str) -> Result<(), String> {
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("auth_token must be non-empty visible ASCII without spaces".into());
        }
        Ok(())
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_checks_the_whole_value() {
        let t = Token::new("s3cret");
        let mut h = HeaderMap::new();
        assert!(!t.accepts(&h));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer s3cre"));
        assert!(!t.accepts(&h));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer s3cret"));
        assert!(t.accepts(&h));
        assert!(Token::validate("has space").is_err());
    }

    #[test]
    fn cors_is_off_unless_configured_and_wildcard_only_when_asked() {
        assert!(Cors::new(&[]).is_none());
        let c = Cors::new(&["https://a.example".into()]).unwrap();
        assert!(c.allows(&HeaderValue::from_static("https://a.example")));
        assert!(!c.allows(&HeaderValue::from_static("https://b.example")));
        let any = Cors::new(&["*".into()]).unwrap();
        assert!(any.allows(&HeaderValue::from_static("https://b.example")));
    }
}
