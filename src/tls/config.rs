//! TLS configuration helpers on rustls 0.23 with the `ring` provider: a client config that
//! trusts the system's roots, one from a CA file, a server config from PEM files, and the
//! (loudly named) way to turn verification off.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

pub use rustls;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_err(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: {e}"))
}

fn client_with_roots(roots: RootCertStore) -> io::Result<ClientConfig> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err("TLS client config", e))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A client config that verifies servers against the system's trust roots
/// (`rustls-native-certs`), or Mozilla's (`webpki-roots`) when the system has none.
///
/// # Errors
/// If no usable root could be loaded at all.
pub fn client_config() -> io::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for c in native.certs {
        roots.add(c).ok();
    }
    if roots.is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    Ok(Arc::new(client_with_roots(roots)?))
}

/// A client config that trusts only the CA certificates in the PEM file `cafile`
/// (e.g. a self-signed server certificate).
///
/// # Errors
/// If the file cannot be read or holds no certificate.
pub fn client_config_from_ca_file(cafile: impl AsRef<Path>) -> io::Result<Arc<ClientConfig>> {
    let path = cafile.as_ref();
    let mut roots = RootCertStore::empty();
    for c in
        CertificateDer::pem_file_iter(path).map_err(|e| tls_err(&path.display().to_string(), e))?
    {
        let c = c.map_err(|e| tls_err(&path.display().to_string(), e))?;
        roots
            .add(c)
            .map_err(|e| tls_err(&path.display().to_string(), e))?;
    }
    if roots.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: no certificate found", path.display()),
        ));
    }
    Ok(Arc::new(client_with_roots(roots)?))
}

/// A client config trusting the given DER certificates (handy in tests).
///
/// # Errors
/// If a certificate is malformed.
pub fn client_config_with_roots(
    certs: impl IntoIterator<Item = CertificateDer<'static>>,
) -> io::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for c in certs {
        roots.add(c).map_err(|e| tls_err("root certificate", e))?;
    }
    Ok(Arc::new(client_with_roots(roots)?))
}

/// A server config from a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or
/// SEC1).
///
/// # Errors
/// If a file cannot be read, holds nothing usable, or the key does not match.
pub fn server_config_from_pem_files(
    cert_chain: impl AsRef<Path>,
    key: impl AsRef<Path>,
) -> io::Result<Arc<ServerConfig>> {
    let (cp, kp) = (cert_chain.as_ref(), key.as_ref());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cp)
        .map_err(|e| tls_err(&cp.display().to_string(), e))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(&cp.display().to_string(), e))?;
    let key =
        PrivateKeyDer::from_pem_file(kp).map_err(|e| tls_err(&kp.display().to_string(), e))?;
    server_config(certs, key)
}

/// A server config from DER certificates and key (handy with `rcgen`).
///
/// # Errors
/// If the key does not suit the certificate.
pub fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> io::Result<Arc<ServerConfig>> {
    Ok(Arc::new(
        ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err("TLS server config", e))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| tls_err("TLS server certificate", e))?,
    ))
}

/// **Dangerous**: a client config that accepts *any* server certificate for any name — no
/// authentication at all, so anyone on the path can read and change the traffic. For tests
/// against throw-away servers only. Verification is on everywhere else in tulip.
pub fn dangerous_client_config_without_certificate_verification() -> Arc<ClientConfig> {
    let p = provider();
    let cfg = ClientConfig::builder_with_provider(p.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoVerification(p)))
        .with_no_client_auth();
    Arc::new(cfg)
}

#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
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
