//! HTTPS with rustls (ring provider, TLS 1.2 and 1.3, safe defaults), from PEM files.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::config::Tls;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate file {0}: no PEM certificate could be read")]
    Cert(String),
    #[error("key file {0}: no PEM private key could be read")]
    Key(String),
    #[error("certificate {cert} and key {key} do not form a usable TLS configuration: {error}")]
    Config {
        cert: String,
        key: String,
        error: rustls::Error,
    },
}

pub fn acceptor(tls: &Tls) -> Result<TlsAcceptor, TlsError> {
    let cert_name = tls.cert_file.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert_file)
        .map_err(|_| TlsError::Cert(cert_name.clone()))?
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::Cert(cert_name.clone()))?;
    if certs.is_empty() {
        return Err(TlsError::Cert(cert_name));
    }
    // Parse errors are not shown: they could quote key bytes.
    let key = PrivateKeyDer::from_pem_file(&tls.key_file)
        .map_err(|_| TlsError::Key(tls.key_file.display().to_string()))?;
    let config_error = |error| TlsError::Config {
        cert: tls.cert_file.display().to_string(),
        key: tls.key_file.display().to_string(),
        error,
    };
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(config_error)?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(config_error)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
