//! TLS for both endpoints from one certificate chain and private key (PEM
//! files), read and checked once when the server starts, so a wrong path or
//! a key that does not match the certificate fails `serve` rather than the
//! first client. rustls with ring: the process has two crypto providers
//! built in (ring and aws-lc, through the object store's HTTP client), so
//! the provider is named here rather than installed for the process; that
//! is also why the Flight SQL endpoint's TLS is done here and not by tonic,
//! whose TLS needs a process-wide provider. Key
//! material stays in memory and never reaches a message.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring::default_provider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{ServerError, TlsFiles};

pub(super) struct Certificate {
    config: ServerConfig,
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, ServerError> {
    std::fs::read(path).map_err(|error| ServerError::Tls {
        what,
        path: path.display().to_string(),
        message: format!("cannot be read ({error})"),
    })
}

impl Certificate {
    pub fn read(files: &TlsFiles) -> Result<Certificate, ServerError> {
        let chain_pem = read("certificate", &files.certificate)?;
        let key_pem = read("key", &files.key)?;
        let bad = |what: &'static str, path: &Path, message: String| ServerError::Tls {
            what,
            path: path.display().to_string(),
            message,
        };
        let chain = CertificateDer::pem_slice_iter(&chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                bad(
                    "certificate",
                    &files.certificate,
                    format!("is not PEM ({e})"),
                )
            })?;
        if chain.is_empty() {
            return Err(bad(
                "certificate",
                &files.certificate,
                "holds no certificate".into(),
            ));
        }
        // The key's own error text could quote it: say only what failed.
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|_| bad("key", &files.key, "holds no PEM private key".into()))?;
        let config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| bad("certificate", &files.certificate, e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| {
                bad(
                    "key",
                    &files.key,
                    format!("does not fit the certificate ({e})"),
                )
            })?;
        Ok(Certificate { config })
    }

    pub fn mysql_acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::new(self.config.clone()))
    }

    /// gRPC clients insist on HTTP/2 being agreed by ALPN.
    pub fn flight_acceptor(&self) -> TlsAcceptor {
        let mut config = self.config.clone();
        config.alpn_protocols = vec![b"h2".to_vec()];
        TlsAcceptor::from(Arc::new(config))
    }
}
