//! What a failed connection or exchange most likely means, in words an
//! operator can act on: the lower layers' own errors ("connection error",
//! `InvalidCertificate(UnknownIssuer)`) name a symptom, not a fix.

use super::sniff::FirstAnswer;
use crate::native::stream::with_causes;
use crate::native::tls::{is_ca_used_as_end_entity, is_not_tls};
use crate::{BoxError, Error, PeerAddr};
use rustls::{AlertDescription, CertificateError};
use std::fmt;

/// A lower layer's error with its causes on one line, then the likely
/// cause and fix when there is one. The original stays its `source`.
#[derive(Debug)]
pub(super) struct Diagnosed {
    text: String,
    cause: BoxError,
}

impl Diagnosed {
    fn new(cause: BoxError, hint: Option<String>) -> Self {
        let mut text = with_causes(&*cause);
        // The hint may have come through the causes already.
        if let Some(hint) = hint.filter(|h| !text.contains(h.as_str())) {
            text.push_str("; ");
            text.push_str(&hint);
        }
        Diagnosed { text, cause }
    }
}

impl fmt::Display for Diagnosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for Diagnosed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.cause)
    }
}

/// An HTTP exchange that failed once the connection was made, with what
/// the connection's first answer said was wrong (whether the peer expects
/// TLS, say), if anything.
pub(super) fn exchange(
    e: impl Into<BoxError>,
    peer: &PeerAddr,
    first_answer: &FirstAnswer,
) -> Error {
    let hint = first_answer.misread().map(str::to_string);
    Error::Http {
        addr: peer.to_string(),
        source: Box::new(Diagnosed::new(e.into(), hint)),
    }
}

/// A TCP connection that could not be made.
pub(super) fn tcp_connect(e: std::io::Error) -> BoxError {
    let hint = (e.kind() == std::io::ErrorKind::ConnectionRefused).then(|| {
        "nothing listens there: is the peer running, and is this the address it listens on?"
            .to_string()
    });
    Box::new(Diagnosed::new(e.into(), hint))
}

/// A TLS handshake that failed, with what the failure most likely means.
pub(super) fn tls_handshake(e: std::io::Error, peer: &PeerAddr) -> BoxError {
    let hint = match e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        Some(tls) => tls_hint(tls, peer),
        None if e.kind() == std::io::ErrorKind::UnexpectedEof => Some(
            "the peer closed the connection during the TLS handshake: it may not speak TLS \
             (h2c: drop --tls, or use http://), or refused this side's client certificate"
                .into(),
        ),
        None => None,
    };
    Box::new(Diagnosed::new(e.into(), hint))
}

const CERTIFICATE_REFUSED: &str = "the peer refused this side's certificate: it requires \
     mutual TLS with a client certificate issued by a CA it trusts";

fn refuses_our_certificate(alert: AlertDescription) -> bool {
    matches!(
        alert,
        AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
    )
}

/// What a TLS connection's read error means, when the peer refused our
/// client certificate after the handshake (TLS 1.3 tells it then).
pub(super) fn tls_alert(e: &std::io::Error) -> Option<&'static str> {
    match e.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(alert) if refuses_our_certificate(*alert) => {
            Some(CERTIFICATE_REFUSED)
        }
        _ => None,
    }
}

fn tls_hint(e: &rustls::Error, peer: &PeerAddr) -> Option<String> {
    use CertificateError as C;
    let hint = match e {
        e if is_not_tls(e) => {
            "peer is not speaking TLS; it may be h2c: drop --tls (client TLS), or use http://"
                .into()
        }
        rustls::Error::InvalidCertificate(cert) => match cert {
            C::UnknownIssuer => "the peer's certificate was not issued by a CA this side \
                trusts: give the CA that issued it to --ca (ClientTls roots); a self-signed \
                certificate is its own CA"
                .into(),
            C::BadSignature => "the peer's certificate names a CA this side trusts as its \
                issuer but was not signed by it: give --ca (ClientTls roots) the CA that \
                really issued it (two CAs with the same name?)"
                .into(),
            C::NotValidForName | C::NotValidForNameContext { .. } => format!(
                "the peer's certificate does not name {:?}: dial a name or IP address it \
                 lists (subjectAltName), or reissue it with {:?} in subjectAltName",
                peer.host(),
                peer.host()
            ),
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => "the peer's certificate is outside its \
                validity period: renew it, or check both machines' clocks"
                .into(),
            _ if is_ca_used_as_end_entity(e) => "the peer presents a CA certificate \
                (basicConstraints CA:TRUE) as its own: give that very certificate to --ca \
                (ClientTls roots) to trust it as Go does, or issue the peer a certificate \
                signed by the CA, without CA:TRUE"
                .into(),
            _ => return None,
        },
        rustls::Error::AlertReceived(alert) if refuses_our_certificate(*alert) => {
            CERTIFICATE_REFUSED.into()
        }
        rustls::Error::AlertReceived(AlertDescription::NoApplicationProtocol)
        | rustls::Error::NoApplicationProtocol => "the peer does not offer HTTP/2 over TLS \
            (ALPN h2): it is not a gossiphttp peer, or takes HTTP/1.1 only (client_http1)"
            .into(),
        _ => return None,
    };
    Some(hint)
}
