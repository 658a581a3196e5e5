//! Certificate verifiers: webpki's, plus what Go accepts and webpki does
//! not, and the test-only one that accepts anything.

use super::{config_err, provider};
use crate::Error;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use std::sync::Arc;

/// The handshake signature checks of a verifier wrapping webpki's (in its
/// `webpki` field): webpki's own, unchanged, since the wrapper only widens
/// which certificates are trusted, never how signatures are checked.
macro_rules! webpki_signature_checks {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.webpki.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.webpki.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.webpki.supported_verify_schemes()
        }
    };
}

/// Server certificates checked as webpki does against the configured roots,
/// plus what Go accepts and webpki refuses: a server presenting exactly one
/// of the roots as its own certificate although it is a CA (`CA:TRUE`, as
/// `openssl req -x509` makes). Such a certificate still has its name
/// checked here, and its validity period by webpki, which checks it before
/// the CA flag that fails it.
#[derive(Debug)]
pub(super) struct RootsVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    roots: Vec<CertificateDer<'static>>,
}

impl RootsVerifier {
    pub(super) fn new(roots: Vec<CertificateDer<'static>>) -> Result<Arc<Self>, Error> {
        let store = root_store(&roots, "CA certificate")?;
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider())
            .build()
            .map_err(|e| config_err("certificate verifier", e))?;
        Ok(Arc::new(RootsVerifier { webpki, roots }))
    }
}

impl ServerCertVerifier for RootsVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(e) if is_ca_used_as_end_entity(&e) && is_one_of(&self.roots, end_entity) => {
                let cert = ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&cert, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
            verdict => verdict,
        }
    }

    webpki_signature_checks!();
}

/// Client certificates checked as webpki does against the configured CAs,
/// plus what Go accepts and webpki refuses: a client presenting exactly one
/// of the CA certificates as its own. Its validity period is still checked,
/// by webpki, before the CA flag that fails it.
#[derive(Debug)]
pub(super) struct ClientRootsVerifier {
    webpki: Arc<dyn ClientCertVerifier>,
    roots: Vec<CertificateDer<'static>>,
}

impl ClientRootsVerifier {
    pub(super) fn new(roots: Vec<CertificateDer<'static>>) -> Result<Arc<Self>, Error> {
        let store = root_store(&roots, "client CA certificate")?;
        let webpki = WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider())
            .build()
            .map_err(|e| config_err("client certificate verifier", e))?;
        Ok(Arc::new(ClientRootsVerifier { webpki, roots }))
    }
}

impl ClientCertVerifier for ClientRootsVerifier {
    fn offer_client_auth(&self) -> bool {
        self.webpki.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.webpki.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match self
            .webpki
            .verify_client_cert(end_entity, intermediates, now)
        {
            Err(e) if is_ca_used_as_end_entity(&e) && is_one_of(&self.roots, end_entity) => {
                Ok(ClientCertVerified::assertion())
            }
            verdict => verdict,
        }
    }

    webpki_signature_checks!();
}

fn root_store(roots: &[CertificateDer<'static>], what: &str) -> Result<RootCertStore, Error> {
    let mut store = RootCertStore::empty();
    for cert in roots {
        store.add(cert.clone()).map_err(|e| config_err(what, e))?;
    }
    Ok(store)
}

/// Whether `cert` is exactly one of `roots`.
fn is_one_of(roots: &[CertificateDer<'static>], cert: &CertificateDer<'_>) -> bool {
    roots.iter().any(|r| r.as_ref() == cert.as_ref())
}

/// Whether webpki refused a certificate for being a CA used as a server's
/// own (`CaUsedAsEndEntity`, which rustls passes on as an "other" error).
pub(crate) fn is_ca_used_as_end_entity(e: &rustls::Error) -> bool {
    match e {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => matches!(
            other.0.downcast_ref::<webpki::Error>(),
            Some(webpki::Error::CaUsedAsEndEntity)
        ),
        _ => false,
    }
}

/// The verifier behind [`ClientTls::insecure`]: checks signatures (so the
/// handshake is well-formed) but trusts every certificate.
#[derive(Debug)]
pub(super) struct AcceptAnyCert(pub(super) Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
