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

/// A verifier's handshake signature checks: `$algorithms`, the crypto
/// provider's, as webpki's own verifiers check them. Every verifier here
/// differs from webpki's only in which certificates it trusts.
macro_rules! signature_checks {
    ($self:ident => $algorithms:expr) => {
        fn verify_tls12_signature(
            &$self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, $algorithms)
        }

        fn verify_tls13_signature(
            &$self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, $algorithms)
        }

        fn supported_verify_schemes(&$self) -> Vec<SignatureScheme> {
            $algorithms.supported_schemes()
        }
    };
}

/// A webpki verifier `V` for the certificates issued by `roots`, plus what
/// Go accepts and webpki refuses: a peer presenting exactly one of the roots
/// as its own certificate although it is a CA (`CA:TRUE`, as `openssl req
/// -x509` makes). Its validity period is still checked, by webpki, which
/// checks it before the CA flag that fails it.
#[derive(Debug)]
pub(super) struct WebPkiAndRoots<V: ?Sized> {
    webpki: Arc<V>,
    roots: Vec<CertificateDer<'static>>,
    /// The provider `webpki` was built with.
    provider: Arc<CryptoProvider>,
}

/// Server certificates checked as [`WebPkiAndRoots`] says; one of the roots
/// presented as a server's own still has its name checked here.
pub(super) type RootsVerifier = WebPkiAndRoots<WebPkiServerVerifier>;

/// Client certificates checked as [`WebPkiAndRoots`] says.
pub(super) type ClientRootsVerifier = WebPkiAndRoots<dyn ClientCertVerifier>;

impl<V: ?Sized> WebPkiAndRoots<V> {
    /// Builds webpki's verifier over a store of `roots`; `side` starts the
    /// names of what fails ("" for servers, "client " for clients).
    fn build<E: std::fmt::Display>(
        roots: Vec<CertificateDer<'static>>,
        side: &str,
        webpki: impl FnOnce(Arc<RootCertStore>, Arc<CryptoProvider>) -> Result<Arc<V>, E>,
    ) -> Result<Arc<Self>, Error> {
        let store = root_store(&roots, &format!("{side}CA certificate"))?;
        let provider = provider();
        let webpki = webpki(Arc::new(store), provider.clone())
            .map_err(|e| config_err(&format!("{side}certificate verifier"), e))?;
        Ok(Arc::new(WebPkiAndRoots {
            webpki,
            roots,
            provider,
        }))
    }

    /// Whether webpki's refusal `e` is the one Go does not make: of a
    /// certificate that is exactly one of the roots, for being a CA.
    fn go_accepts(&self, e: &rustls::Error, end_entity: &CertificateDer<'_>) -> bool {
        is_ca_used_as_end_entity(e) && self.roots.iter().any(|r| r.as_ref() == end_entity.as_ref())
    }
}

impl RootsVerifier {
    pub(super) fn new(roots: Vec<CertificateDer<'static>>) -> Result<Arc<Self>, Error> {
        Self::build(roots, "", |store, provider| {
            WebPkiServerVerifier::builder_with_provider(store, provider).build()
        })
    }
}

impl ClientRootsVerifier {
    pub(super) fn new(roots: Vec<CertificateDer<'static>>) -> Result<Arc<Self>, Error> {
        Self::build(roots, "client ", |store, provider| {
            WebPkiClientVerifier::builder_with_provider(store, provider).build()
        })
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
            Err(e) if self.go_accepts(&e, end_entity) => {
                let cert = ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&cert, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
            verdict => verdict,
        }
    }

    signature_checks!(self => &self.provider.signature_verification_algorithms);
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
            Err(e) if self.go_accepts(&e, end_entity) => Ok(ClientCertVerified::assertion()),
            verdict => verdict,
        }
    }

    signature_checks!(self => &self.provider.signature_verification_algorithms);
}

fn root_store(roots: &[CertificateDer<'static>], what: &str) -> Result<RootCertStore, Error> {
    let mut store = RootCertStore::empty();
    for cert in roots {
        store.add(cert.clone()).map_err(|e| config_err(what, e))?;
    }
    Ok(store)
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

/// The verifier behind [`ClientTls::insecure`](super::ClientTls::insecure): checks signatures (so the
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

    signature_checks!(self => &self.0.signature_verification_algorithms);
}
