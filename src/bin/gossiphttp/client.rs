//! The flags `send` and `stream` share, and the client transport they make.

use crate::output::{describe, Failure};
use crate::serve::{cert_and_key, token, TOKEN_ENV};
use clap::Args;
use gossiphttp::{ClientTls, Options, Transport};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The peer: HOST:PORT, or a URL (http:// or https://).
    #[arg(long, value_name = "HOST:PORT")]
    pub to: String,
    /// The bytes to send, as hex (e.g. 68656c6c6f).
    #[arg(long, value_name = "HEX")]
    pub hex: String,
    /// Seconds to wait for the peer.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs)]
    pub timeout: Duration,
    /// Speak HTTP/1.1 instead of HTTP/2 (an extension: for peers such as a
    /// local workerd that only take HTTP/1.1, or `listen --accept-http1`;
    /// Go peers answer 505).
    #[arg(long)]
    pub http1: bool,
    /// Reach the peer over TLS (https, ALPN h2); needs --ca or --insecure.
    #[arg(long, help_heading = "TLS")]
    pub tls: bool,
    /// With --tls: trust the CA certificates in this PEM file.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls",
        env = "GOSSIPHTTP_CA",
        help_heading = "TLS"
    )]
    pub ca: Option<PathBuf>,
    /// With --tls: accept any server certificate (testing only).
    #[arg(long, requires = "tls", conflicts_with = "ca", help_heading = "TLS")]
    pub insecure: bool,
    /// With --tls and --ca: present this PEM client certificate chain to a
    /// peer that requires one (mutual TLS; needs --tls-key).
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_key"],
          conflicts_with = "insecure", env = "GOSSIPHTTP_CLIENT_CERT", help_heading = "TLS")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_cert",
        env = "GOSSIPHTTP_CLIENT_KEY",
        help_heading = "TLS"
    )]
    pub tls_key: Option<PathBuf>,
    /// Extension: send `Authorization: Bearer TOKEN`, for a peer that
    /// requires it. Prefer the environment variable: a flag shows in `ps`.
    #[arg(long, value_name = "TOKEN", env = TOKEN_ENV, hide_env_values = true,
          help_heading = "Access (extensions)")]
    pub token: Option<String>,
}

impl ClientArgs {
    /// A transport for `send` and `stream`, and the payload to send.
    pub fn transport(&self) -> Result<(Transport, Vec<u8>), Failure> {
        let payload = hex::decode(self.hex.trim())
            .map_err(|e| Failure::usage(format!("--hex is not valid hex: {e}")))?;
        let mut options = Options::default();
        options.packet_timeout = self.timeout;
        options.client_http1 = self.http1;
        options.client_tls = self.client_tls()?;
        options.auth_token = token(self.token.as_deref(), "--token")?;
        let (transport, _registry) =
            Transport::new(options).map_err(|e| Failure::usage(describe(&e)))?;
        Ok((transport, payload))
    }

    fn client_tls(&self) -> Result<Option<ClientTls>, Failure> {
        if !self.tls {
            // clap enforces these too; kept so the rules hold whatever the flags.
            if self.ca.is_some() || self.insecure || self.tls_cert.is_some() {
                return Err(Failure::usage(
                    "--ca, --insecure and --tls-cert only apply with --tls",
                ));
            }
            return Ok(None);
        }
        let client_cert = cert_and_key(&self.tls_cert, &self.tls_key)?;
        let tls = match (&self.ca, self.insecure, client_cert) {
            (Some(ca), false, None) => ClientTls::from_ca_pem_file(ca)
                .map_err(|e| Failure::usage(format!("--ca: {}", describe(&e))))?,
            (Some(ca), false, Some((cert, key))) => {
                ClientTls::from_pem_files_with_client_cert(ca, cert, key).map_err(|e| {
                    Failure::usage(format!("--ca/--tls-cert/--tls-key: {}", describe(&e)))
                })?
            }
            (None, true, None) => ClientTls::insecure(),
            (None, true, Some(_)) => {
                return Err(Failure::usage(
                    "--tls-cert needs --ca, not --insecure: give the CA that issued \
                     the peer's certificate",
                ));
            }
            (Some(_), true, _) => {
                return Err(Failure::usage("--ca and --insecure exclude each other"));
            }
            (None, false, _) => {
                return Err(Failure::usage(
                    "--tls needs to know whom to trust: give --ca FILE to verify the \
                     peer's certificate against a CA, or --insecure to accept any \
                     certificate (testing only)",
                ));
            }
        };
        Ok(Some(tls))
    }
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if secs.is_nan() || secs <= 0.0 {
        return Err("must be more than 0 seconds".into());
    }
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}
