//! TLS material for tests: certificates made on the spot with rcgen.

use gossiphttp::{ClientTls, ServerTls};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A fresh self-signed certificate for 127.0.0.1 and localhost: the
/// server's config, and a client's that trusts it.
pub fn tls_pair() -> (ServerTls, ClientTls) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let der = CertificateDer::from(cert.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    (
        ServerTls::from_der(vec![der.clone()], key).unwrap(),
        ClientTls::from_roots(vec![der]).unwrap(),
    )
}
