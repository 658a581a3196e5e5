//! rustls configurations: server certificates from PEM files, client trust.
//!
//! Both sides negotiate HTTP/2 with ALPN `h2`, as Go peers do. The server
//! also offers `http/1.1`, so that an HTTP/1.1 client gets a clear `505`
//! instead of a failed handshake.

mod verify;

pub(crate) use verify::is_ca_used_as_end_entity;

/// Whether a failed handshake means the other side does not speak TLS at
/// all: what it sent is no TLS record (an HTTP/2 preface, an HTTP/1
/// answer). Both ends name it so: h2c on one side, TLS on the other.
pub(crate) fn is_not_tls(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. }
    )
}

use crate::Error;
use rustls::client::WantsClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::NoClientAuth;
use rustls::{ClientConfig, ConfigBuilder, RootCertStore, ServerConfig};
use std::path::Path;
use std::sync::Arc;
use verify::{AcceptAnyCert, ClientRootsVerifier, RootsVerifier};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn config_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Config(format!("{what}: {e}"))
}

/// Reads every certificate in a PEM file.
pub fn load_certs(path: impl AsRef<Path>) -> Result<Vec<CertificateDer<'static>>, Error> {
    let path = path.as_ref();
    let pem = read_pem(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| config_err(&format!("parsing certificates in {}", path.display()), e))?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "no certificate found in {} (expected a PEM \"BEGIN CERTIFICATE\" block)",
            path.display()
        )));
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn load_private_key(path: impl AsRef<Path>) -> Result<PrivateKeyDer<'static>, Error> {
    let path = path.as_ref();
    let pem = read_pem(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        pem::Error::NoItemsFound => Error::Config(format!(
            "no private key found in {} (expected a PEM \"BEGIN PRIVATE KEY\", \
             \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\" block)",
            path.display()
        )),
        e => config_err(&format!("parsing key in {}", path.display()), e),
    })
}

fn read_pem(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| config_err(&format!("reading {}", path.display()), e))
}

/// TLS settings for the server side.
///
/// Its `Debug` output names the protocols offered, and nothing of the
/// certificates or keys (it ends up in logs).
#[derive(Clone)]
pub struct ServerTls(pub(crate) Arc<ServerConfig>);

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("alpn", &alpn_names(&self.0.alpn_protocols))
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// A server presenting the certificate chain and key from PEM files.
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Self, Error> {
        Self::from_der(load_certs(cert)?, load_private_key(key)?)
    }

    /// A server presenting an in-memory certificate chain and key.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, Error> {
        Self::serving(chain, key, Arc::new(NoClientAuth))
    }

    /// Mutual TLS: like [`from_pem_files`](Self::from_pem_files), and every
    /// client must present a certificate issued by a CA in `client_ca` (a
    /// PEM file), or one of those CA certificates itself, as Go accepts.
    /// Clients without one, or with one from another CA, are refused during
    /// the handshake.
    pub fn from_pem_files_with_client_auth(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
        client_ca: impl AsRef<Path>,
    ) -> Result<Self, Error> {
        Self::from_der_with_client_auth(
            load_certs(cert)?,
            load_private_key(key)?,
            load_certs(client_ca)?,
        )
    }

    /// Mutual TLS from in-memory certificates; see
    /// [`from_pem_files_with_client_auth`](Self::from_pem_files_with_client_auth).
    pub fn from_der_with_client_auth(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        client_ca: Vec<CertificateDer<'static>>,
    ) -> Result<Self, Error> {
        Self::serving(chain, key, ClientRootsVerifier::new(client_ca)?)
    }

    /// A server presenting `chain`/`key`; `clients` decides whether client
    /// certificates are asked for and which are accepted.
    fn serving(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        clients: Arc<dyn ClientCertVerifier>,
    ) -> Result<Self, Error> {
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| config_err("TLS versions", e))?
            .with_client_cert_verifier(clients)
            .with_single_cert(chain, key)
            .map_err(|e| config_err("server certificate", e))?;
        Ok(Self::from_config(config))
    }

    /// Uses a rustls configuration as given, setting ALPN to `h2` and
    /// `http/1.1`.
    pub fn from_config(mut config: ServerConfig) -> Self {
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        ServerTls(Arc::new(config))
    }
}

/// TLS settings for the client side: whom to trust.
///
/// Its `Debug` output says whether a client certificate is presented, and
/// nothing of the certificates or keys (it ends up in logs).
#[derive(Clone)]
pub struct ClientTls {
    pub(crate) config: Arc<ClientConfig>,
    /// The name verified in every peer's certificate instead of the
    /// peer's host (see [`ClientTls::with_server_name`]).
    pub(crate) server_name: Option<rustls::pki_types::ServerName<'static>>,
}

fn alpn_names(protocols: &[Vec<u8>]) -> Vec<String> {
    protocols
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect()
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field(
                "client_cert",
                &self.config.client_auth_cert_resolver.has_certs(),
            )
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Trusts the CA certificates in a PEM file.
    pub fn from_ca_pem_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::from_roots(load_certs(path)?)
    }

    /// Trusts the given CA certificates. A peer may also present one of
    /// them as its own certificate even though it is a CA (what
    /// `openssl req -x509` makes), as Go accepts: its name and validity are
    /// still checked.
    pub fn from_roots(roots: Vec<CertificateDer<'static>>) -> Result<Self, Error> {
        let config = trusting(roots)?.with_no_client_auth();
        Ok(Self::from_config(config))
    }

    /// Trusts the CA certificates in `ca` and presents the client
    /// certificate chain and key from PEM files (for mutual TLS).
    pub fn from_pem_files_with_client_cert(
        ca: impl AsRef<Path>,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, Error> {
        Self::from_roots_with_client_cert(
            load_certs(ca)?,
            load_certs(cert)?,
            load_private_key(key)?,
        )
    }

    /// Trusts `roots` (as [`from_roots`](Self::from_roots) does) and
    /// presents `chain`/`key` as client certificate.
    pub fn from_roots_with_client_cert(
        roots: Vec<CertificateDer<'static>>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, Error> {
        let config = trusting(roots)?
            .with_client_auth_cert(chain, key)
            .map_err(|e| config_err("client certificate", e))?;
        Ok(Self::from_config(config))
    }

    /// Accepts any server certificate. **For tests only**: it gives no
    /// protection against an attacker in the middle.
    pub fn insecure() -> Self {
        let provider = provider();
        let config = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default TLS versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
            .with_no_client_auth();
        Self::from_config(config)
    }

    /// Uses a rustls configuration as given, setting ALPN to `h2`.
    pub fn from_config(mut config: ClientConfig) -> Self {
        config.alpn_protocols = vec![b"h2".to_vec()];
        ClientTls {
            config: Arc::new(config),
            server_name: None,
        }
    }

    /// Verifies `name` in every peer's certificate (and sends it as SNI)
    /// instead of the address dialed: for members reached by IP whose
    /// certificates name a service (Alloy's `--cluster.tls-server-name`).
    pub fn with_server_name(mut self, name: &str) -> Result<Self, Error> {
        let name = rustls::pki_types::ServerName::try_from(name.to_string()).map_err(|e| {
            Error::Config(format!(
                "TLS server name {name:?} is not a DNS name or IP address: {e}"
            ))
        })?;
        self.server_name = Some(name);
        Ok(self)
    }
}

/// A client configuration that trusts `roots` (see [`RootsVerifier`]), or
/// nothing when there are none: every handshake then fails with "unknown
/// issuer" (a URL peer reached without client TLS configured).
fn trusting(
    roots: Vec<CertificateDer<'static>>,
) -> Result<ConfigBuilder<ClientConfig, WantsClientCert>, Error> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_err("TLS versions", e))?;
    if roots.is_empty() {
        return Ok(builder.with_root_certificates(RootCertStore::empty()));
    }
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(RootsVerifier::new(roots)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, contents: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("gossiphttp-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn reads_a_pem_certificate_and_key() {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert_path = temp_file("cert.pem", &cert.cert.pem());
        let key_path = temp_file("key.pem", &cert.key_pair.serialize_pem());
        let certs = load_certs(&cert_path).unwrap();
        assert_eq!(certs, vec![cert.cert.der().clone()]);
        let key = load_private_key(&key_path).unwrap();
        assert_eq!(key.secret_der(), cert.key_pair.serialize_der());
        ServerTls::from_pem_files(&cert_path, &key_path).unwrap();
    }

    #[test]
    fn errors_name_the_file() {
        let empty = temp_file("empty.pem", "not pem at all\n");
        for err in [
            load_certs(&empty).unwrap_err(),
            load_private_key(&empty).unwrap_err(),
            load_certs(empty.with_extension("missing")).unwrap_err(),
        ] {
            assert!(err.to_string().contains("empty."), "{err}");
        }
        let broken = temp_file(
            "broken.pem",
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        );
        let err = load_certs(&broken).unwrap_err();
        assert!(err.to_string().contains("broken.pem"), "{err}");
    }
}
