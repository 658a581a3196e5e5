//! Who may call the endpoints: the CORS allowlist (browser pages) and the
//! shared-secret token. Both are off by default, because Go peers send
//! neither an `Origin` nor a token.

use subtle::ConstantTimeEq;

/// The origins a browser page may call the endpoints from: exact origins
/// (`https://app.example.com`, a trailing `/` ignored), or `"*"` for any
/// origin, which must be asked for explicitly. Off by default, because Go
/// peers send no `Origin`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cors {
    any: bool,
    origins: Vec<Vec<u8>>,
}

impl Cors {
    /// The allowlist of `allowed`; `None` (CORS off) when it is empty.
    pub fn new<S: AsRef<str>>(allowed: &[S]) -> Option<Cors> {
        if allowed.is_empty() {
            return None;
        }
        let allowed = allowed.iter().map(AsRef::as_ref);
        Some(Cors {
            any: allowed.clone().any(|o| o == "*"),
            origins: allowed
                .filter(|o| *o != "*")
                .map(|o| o.trim_end_matches('/').as_bytes().to_vec())
                .collect(),
        })
    }

    /// Whether a page from `origin` (the `Origin` header, exactly) may call.
    pub fn allows(&self, origin: &[u8]) -> bool {
        self.any || self.origins.iter().any(|o| o == origin)
    }
}

/// The shared secret: requests carry `Authorization: Bearer <token>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// The whole header value, `Bearer <token>`.
    header: Vec<u8>,
}

impl Token {
    /// The check for `token`; see [`validate`](Self::validate) for what a
    /// usable token looks like.
    pub fn new(token: &str) -> Token {
        Token {
            header: format!("Bearer {token}").into_bytes(),
        }
    }

    /// A token must be non-empty visible ASCII without spaces, so that it
    /// fits a header value as it is.
    pub fn validate(token: &str) -> Result<(), String> {
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(
                "must be non-empty visible ASCII without spaces (it travels in an Authorization header)"
                    .into(),
            );
        }
        Ok(())
    }

    /// The `Authorization` value a client sends.
    pub fn authorization(&self) -> &[u8] {
        &self.header
    }

    /// Whether `authorization` (the header, if any) carries the token. The
    /// comparison takes the same time wherever a wrong guess differs, so it
    /// leaks nothing about how much of it was right (only the length).
    pub fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        authorization.is_some_and(|got| bool::from(got.ct_eq(&self.header)))
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
        assert!(!t.accepts(None));
        assert!(!t.accepts(Some(b"Bearer s3cre")));
        assert!(!t.accepts(Some(b"bearer s3cret")));
        assert!(t.accepts(Some(b"Bearer s3cret")));
        assert_eq!(t.authorization(), b"Bearer s3cret");
        assert!(Token::validate("has space").is_err());
        assert!(Token::validate("").is_err());
        assert!(Token::validate("ok").is_ok());
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
    }

    #[test]
    fn cors_is_off_unless_configured_and_wildcard_only_when_asked() {
        assert!(Cors::new::<&str>(&[]).is_none());
        let c = Cors::new(&["https://a.example"]).unwrap();
        assert!(c.allows(b"https://a.example"));
        assert!(!c.allows(b"https://b.example"));
        assert!(!c.allows(b"https://a.example/"));
        let any = Cors::new(&["*"]).unwrap();
        assert!(any.allows(b"https://b.example"));
    }
}
