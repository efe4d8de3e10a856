//! Certificates made on the fly with rcgen and rustls server configs for the
//! TLS tests (`net_tls`, `agent_tls`, `faults_tenant_mtls`), so every test
//! makes its CAs, leaves and mutual-TLS receivers the same way.

#![allow(dead_code)]

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

/// A self-signed CA; the params and key stay to sign leaves with.
pub struct Ca {
    pub params: CertificateParams,
    pub key: KeyPair,
    pub pem: String,
    pub der: CertificateDer<'static>,
}

/// A certificate and its key, as files want them (PEM) and as rustls wants them (DER).
pub struct Leaf {
    pub pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
    pub key_der: PrivateKeyDer<'static>,
}

pub fn make_ca(common_name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        der: cert.der().clone(),
        params,
        key,
    }
}

/// A certificate with `names` as subject alternative names (DNS names or IP
/// addresses), signed by `ca`.
pub fn make_leaf(ca: &Ca, names: &[&str]) -> Leaf {
    let params = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    sign(ca, params)
}

/// A certificate for `name` as both subject CN and DNS SAN, signed by `ca`:
/// for receivers that tell clients apart by the CN they present.
pub fn make_named_leaf(ca: &Ca, name: &str) -> Leaf {
    let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    sign(ca, params)
}

fn sign(ca: &Ca, params: CertificateParams) -> Leaf {
    let key = KeyPair::generate().unwrap();
    let cert = params
        .signed_by(&key, &Issuer::from_params(&ca.params, &ca.key))
        .unwrap();
    Leaf {
        pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().clone(),
        key_der: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

/// The same crypto provider as the agent's client, chosen explicitly so the
/// tests do not depend on a process-wide default being installed.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server presenting `server`; with `client_ca`, every client must show a
/// certificate signed by it (mutual TLS), without, no client auth.
pub fn server_config(server: &Leaf, client_ca: Option<&Ca>) -> Arc<ServerConfig> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add(ca.der.clone()).unwrap();
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(
        builder
            .with_single_cert(vec![server.der.clone()], server.key_der.clone_key())
            .unwrap(),
    )
}
