//! The server-side flags `listen` and `node` share: TLS (optionally mutual)
//! and the library's access extensions (HTTP/1.1, CORS, a bearer token).

use crate::output::{describe, Failure};
use clap::Args;
use gossiphttp::{Options, ServerTls};
use std::path::PathBuf;

/// Environment variable for `--token` on every command (a token given as a
/// flag shows in `ps`; one in the environment does not).
pub const TOKEN_ENV: &str = "GOSSIPHTTP_TOKEN";

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Serve TLS (h2) with this PEM certificate chain (needs --tls-key).
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        env = "GOSSIPHTTP_TLS_CERT",
        help_heading = "TLS"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_cert",
        env = "GOSSIPHTTP_TLS_KEY",
        help_heading = "TLS"
    )]
    pub tls_key: Option<PathBuf>,
    /// Mutual TLS: refuse clients that do not present a certificate issued
    /// by a CA in this PEM file (needs --tls-cert).
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_cert",
        env = "GOSSIPHTTP_TLS_CLIENT_CA",
        help_heading = "TLS"
    )]
    pub tls_client_ca: Option<PathBuf>,
    /// Extension: also accept HTTP/1.1 (Go peers answer it 505). For Node's
    /// fetch and a local workerd, which cannot speak HTTP/2.
    /// (The variable takes true/false, yes/no, on/off or 1/0.)
    #[arg(long, env = "GOSSIPHTTP_ACCEPT_HTTP1", help_heading = "Access (extensions)",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub accept_http1: bool,
    /// Extension: let pages from this browser origin (e.g.
    /// https://app.example.com; `*` for any) call the endpoints;
    /// repeatable or comma-separated. Other origins get 403.
    #[arg(
        long = "cors",
        value_name = "ORIGIN",
        value_delimiter = ',',
        env = "GOSSIPHTTP_CORS",
        help_heading = "Access (extensions)"
    )]
    pub cors: Vec<String>,
    /// Extension: require `Authorization: Bearer TOKEN` on every request
    /// (401 otherwise); `node` also sends it to its peers. Go peers send no
    /// token. Prefer the environment variable: a flag shows in `ps`.
    #[arg(long, value_name = "TOKEN", env = TOKEN_ENV, hide_env_values = true,
          help_heading = "Access (extensions)")]
    pub token: Option<String>,
}

impl ServeArgs {
    /// Sets the server side of `options` from the flags.
    pub fn apply(&self, options: &mut Options) -> Result<(), Failure> {
        options.server_tls = self.server_tls()?;
        options.accept_http1 = self.accept_http1;
        options.cors_allowed_origins = self
            .cors
            .iter()
            .map(|o| o.trim().to_string())
            .filter(|o| !o.is_empty())
            .collect();
        options.auth_token = token(self.token.as_deref(), "--token")?;
        Ok(())
    }

    fn server_tls(&self) -> Result<Option<ServerTls>, Failure> {
        let Some((cert, key)) = cert_and_key(&self.tls_cert, &self.tls_key)? else {
            return match self.tls_client_ca {
                None => Ok(None),
                // clap enforces this too; kept so the rule holds whatever the flags.
                Some(_) => Err(Failure::usage("--tls-client-ca needs --tls-cert")),
            };
        };
        let tls = match &self.tls_client_ca {
            None => ServerTls::from_pem_files(cert, key),
            Some(ca) => ServerTls::from_pem_files_with_client_auth(cert, key, ca),
        };
        let which = if self.tls_client_ca.is_some() {
            "--tls-cert/--tls-key/--tls-client-ca"
        } else {
            "--tls-cert/--tls-key"
        };
        tls.map(Some)
            .map_err(|e| Failure::usage(format!("{which}: {}", describe(&e))))
    }
}

/// The certificate chain and private key from `--tls-cert` and `--tls-key`
/// (on the server side and the client side alike): both or neither.
pub fn cert_and_key<'a>(
    cert: &'a Option<PathBuf>,
    key: &'a Option<PathBuf>,
) -> Result<Option<(&'a PathBuf, &'a PathBuf)>, Failure> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some((cert, key))),
        (None, None) => Ok(None),
        // clap enforces this too; kept so the rule holds whatever the flags.
        _ => Err(Failure::usage(
            "--tls-cert and --tls-key must be given together",
        )),
    }
}

/// A bearer token as given, refused when empty (an empty `GOSSIPHTTP_TOKEN`
/// would otherwise turn the check on with a token no one can send).
pub fn token(value: Option<&str>, flag: &str) -> Result<Option<String>, Failure> {
    match value {
        None => Ok(None),
        Some("") => Err(Failure::usage(format!(
            "{flag} (or {TOKEN_ENV}) is empty: give a token, or unset {TOKEN_ENV}"
        ))),
        Some(t) => Ok(Some(t.to_string())),
    }
}
