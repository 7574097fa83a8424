//! TLS: the daemon's key pair and the client's certificate policy.
//!
//! The daemon keeps its key pair in `<config>/ssl/daemon.cert` and `daemon.pkey` (PEM,
//! mode 0600), generated at first start (ECDSA P-256, self-signed) and reused after; a
//! Deluge RSA pair copied there works too. Deluge clients do not verify the certificate;
//! our client accepts any certificate or pins one.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::rpc::RpcError;

/// Paths of the daemon's certificate and key under a config dir.
pub fn key_pair_paths(config_dir: &Path) -> (PathBuf, PathBuf) {
    let ssl = config_dir.join("ssl");
    (ssl.join("daemon.cert"), ssl.join("daemon.pkey"))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn write_private(path: &Path, text: &str) -> Result<(), RpcError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| RpcError::io("create", path, e))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| RpcError::io("write", path, e))
}

/// Loads the daemon's key pair, generating it first if it does not exist.
pub fn server_config(config_dir: &Path) -> Result<Arc<rustls::ServerConfig>, RpcError> {
    let (cert_path, key_path) = key_pair_paths(config_dir);
    if !cert_path.exists() || !key_path.exists() {
        let dir = cert_path.parent().expect("ssl dir");
        fs::create_dir_all(dir).map_err(|e| RpcError::io("create", dir, e))?;
        let key = rcgen::KeyPair::generate().map_err(|e| RpcError::Tls(e.to_string()))?;
        let params = rcgen::CertificateParams::new(vec!["localhost".into()])
            .map_err(|e| RpcError::Tls(e.to_string()))?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| RpcError::Tls(e.to_string()))?;
        write_private(&key_path, &key.serialize_pem())?;
        write_private(&cert_path, &cert.pem())?;
        tracing::info!(cert = %cert_path.display(), "generated the daemon's TLS key pair");
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|it| it.collect())
        .map_err(|e| RpcError::Tls(format!("{}: {e}", cert_path.display())))?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| RpcError::Tls(format!("{}: {e}", key_path.display())))?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| RpcError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| RpcError::Tls(e.to_string()))?;
    Ok(Arc::new(config))
}

/// Which server certificates a client accepts.
#[derive(Debug, Clone)]
pub enum CertPolicy {
    /// Any certificate (what Deluge's own clients do).
    AnyCertificate,
    /// Only this certificate (DER), e.g. read from the daemon's `ssl/daemon.cert`.
    Pinned(Vec<u8>),
}

impl CertPolicy {
    /// Pins the first certificate of a PEM file.
    pub fn pin_pem_file(path: &Path) -> Result<Self, RpcError> {
        let cert = CertificateDer::from_pem_file(path)
            .map_err(|e| RpcError::Tls(format!("{}: {e}", path.display())))?;
        Ok(CertPolicy::Pinned(cert.as_ref().to_vec()))
    }
}

#[derive(Debug)]
struct Verifier {
    policy: CertPolicy,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.policy {
            CertPolicy::AnyCertificate => Ok(ServerCertVerified::assertion()),
            CertPolicy::Pinned(der) if der.as_slice() == end_entity.as_ref() => {
                Ok(ServerCertVerified::assertion())
            }
            CertPolicy::Pinned(_) => Err(rustls::Error::General(
                "server certificate does not match the pinned one".into(),
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client TLS configuration with the given certificate policy.
pub fn client_config(policy: CertPolicy) -> Result<Arc<rustls::ClientConfig>, RpcError> {
    let provider = provider();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| RpcError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Verifier { policy, provider }))
        .with_no_client_auth();
    Ok(Arc::new(config))
}
