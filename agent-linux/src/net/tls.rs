//! rustls client configuration from the plan's TLS fields. Verification is on unless the plan
//! explicitly asks for `insecure_skip_verify`; the caller logs a warning when it does.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

#[derive(Debug)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    Pem { path: PathBuf, what: String },
    /// A CA certificate was rejected by the root store.
    BadCa { path: PathBuf, what: String },
    /// A client cert was given without a key, or the other way round.
    ClientCertWithoutKey,
    /// rustls refused the configuration (e.g. key does not match the certificate).
    Config { what: String },
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Pem { path, what } => write!(f, "{}: {what}", path.display()),
            TlsError::BadCa { path, what } => {
                write!(f, "{}: CA certificate rejected: {what}", path.display())
            }
            TlsError::ClientCertWithoutKey => {
                write!(f, "tls: client_cert and client_key must be given together")
            }
            TlsError::Config { what } => write!(f, "tls: {what}"),
        }
    }
}

impl std::error::Error for TlsError {}

fn pem_err(path: &Path, e: impl fmt::Display) -> TlsError {
    TlsError::Pem {
        path: path.to_path_buf(),
        what: e.to_string(),
    }
}

/// Builds the client config once at plan load; every connection to the same endpoint shares it.
pub fn client_config(
    ca_file: Option<&Path>,
    client_cert: Option<&Path>,
    client_key: Option<&Path>,
    insecure_skip_verify: bool,
) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config { what: e.to_string() })?;

    let builder = if insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SkipServerVerification(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        match ca_file {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path).map_err(|e| pem_err(path, e))?;
                let mut count = 0;
                for cert in certs {
                    let cert = cert.map_err(|e| pem_err(path, e))?;
                    roots.add(cert).map_err(|e| TlsError::BadCa {
                        path: path.to_path_buf(),
                        what: e.to_string(),
                    })?;
                    count += 1;
                }
                if count == 0 {
                    return Err(pem_err(path, "no CERTIFICATE block found"));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots)
    };

    let config = match (client_cert, client_key) {
        (Some(cert_path), Some(key_path)) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
                .map_err(|e| pem_err(cert_path, e))?
                .collect::<Result<_, _>>()
                .map_err(|e| pem_err(cert_path, e))?;
            if certs.is_empty() {
                return Err(pem_err(cert_path, "no CERTIFICATE block found"));
            }
            let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| pem_err(key_path, e))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| TlsError::Config {
                    what: format!(
                        "client certificate {} / key {}: {e}",
                        cert_path.display(),
                        key_path.display()
                    ),
                })?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err(TlsError::ClientCertWithoutKey),
    };
    Ok(Arc::new(config))
}

/// Accepts any server certificate but still checks the handshake signatures, so the peer must
/// hold the key of the certificate it shows (it just need not be trusted).
#[derive(Debug)]
struct SkipServerVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for SkipServerVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
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
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
