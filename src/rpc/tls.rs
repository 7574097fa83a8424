//! TLS: the daemon's key pair and the client's certificate policy.
//!
//! The daemon keeps its key pair in `<config>/ssl/daemon.cert` and `daemon.pkey` (PEM,
//! mode 0600; a key other users may read is refused), generated at first start (ECDSA P-256, self-signed) and reused after; a
//! Deluge RSA pair copied there works too. `ServedKeyPair::reload` (the daemon calls it
//! on SIGHUP) replaces the pair for new connections, so a renewed certificate needs no
//! restart. Deluge clients do not verify the certificate; our client accepts any
//! certificate or pins one.

#[cfg(feature = "rpc")]
use std::fs;
#[cfg(feature = "rpc")]
use std::io::Write;
#[cfg(feature = "rpc")]
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    ring, verify_tls12_signature, verify_tls13_signature, verify_tls13_signature_with_raw_key,
    CryptoProvider, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::pem::PemObject;
#[cfg(feature = "rpc")]
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
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

/// Writes a new private file (mode 0600). Whatever is at the path is removed first
/// (`remove_file` unlinks a symlink, not its target) and the file is created new
/// (`O_EXCL` and `O_NOFOLLOW` never follow a symlink), so a planted symlink cannot
/// redirect the write.
#[cfg(feature = "rpc")]
fn write_private(path: &Path, text: &str) -> Result<(), RpcError> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(RpcError::io("remove", path, e)),
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| RpcError::io("create", path, e))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| RpcError::io("write", path, e))
}

/// Loads the daemon's key pair, generating it first if it does not exist. A key that
/// other users may read is refused (the message says to `chmod 600` it).
#[cfg(feature = "rpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "rpc")))]
pub fn server_config(config_dir: &Path) -> Result<Arc<rustls::ServerConfig>, RpcError> {
    Ok(server_tls(config_dir)?.0)
}

/// The same, with the [`ServedKeyPair`] behind the configuration, to reload it.
#[cfg(feature = "rpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "rpc")))]
pub(crate) fn server_tls(
    config_dir: &Path,
) -> Result<(Arc<rustls::ServerConfig>, Arc<ServedKeyPair>), RpcError> {
    let (cert_path, key_path) = ensure_key_pair(config_dir)?;
    let served = ServedKeyPair::open(&cert_path, &key_path)?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| RpcError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(served.clone());
    Ok((Arc::new(config), served))
}

/// The paths of the daemon's key pair ([`key_pair_paths`]), generated first if either
/// file is missing (ECDSA P-256, self-signed for `localhost`, both files mode 0600).
#[cfg(feature = "rpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "rpc")))]
pub(crate) fn ensure_key_pair(config_dir: &Path) -> Result<(PathBuf, PathBuf), RpcError> {
    let (cert_path, key_path) = key_pair_paths(config_dir);
    let present = |p: &Path| fs::symlink_metadata(p).is_ok();
    if !present(&cert_path) || !present(&key_path) {
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
    Ok((cert_path, key_path))
}

/// The key pair the daemon's TLS handshakes use, replaceable while it serves: connections
/// made after a [`reload`](ServedKeyPair::reload) get the new pair, open ones keep theirs.
#[cfg(feature = "rpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "rpc")))]
#[derive(Debug)]
pub(crate) struct ServedKeyPair {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: std::sync::RwLock<Arc<rustls::sign::CertifiedKey>>,
}

#[cfg(feature = "rpc")]
impl ServedKeyPair {
    /// Serves the pair in `cert_path` and `key_path` (PEM), read now ([`read`](Self::read)).
    pub(crate) fn open(cert_path: &Path, key_path: &Path) -> Result<Arc<Self>, RpcError> {
        let pair = Self::read(cert_path, key_path)?;
        Ok(Arc::new(ServedKeyPair {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            current: std::sync::RwLock::new(pair),
        }))
    }

    /// Reads a certificate chain and its key (`ssl/daemon.cert` and `ssl/daemon.pkey` for
    /// the daemon's own): the key must be private ([`crate::auth::check_private`]) and
    /// match the certificate; errors name the file.
    fn read(
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<Arc<rustls::sign::CertifiedKey>, RpcError> {
        crate::auth::check_private(key_path)?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
            .and_then(|it| it.collect())
            .map_err(|e| RpcError::Tls(format!("{}: {e}", cert_path.display())))?;
        if certs.is_empty() {
            return Err(RpcError::Tls(format!(
                "{}: no certificate in it",
                cert_path.display()
            )));
        }
        let key = PrivateKeyDer::from_pem_file(key_path)
            .map_err(|e| RpcError::Tls(format!("{}: {e}", key_path.display())))?;
        let pair = rustls::sign::CertifiedKey::from_der(certs, key, &provider()).map_err(|e| {
            let why = match e {
                rustls::Error::InconsistentKeys(_) => {
                    "the key is not the certificate's (they do not match)".to_string()
                }
                e => e.to_string(),
            };
            RpcError::Tls(format!(
                "{} and {}: {why}",
                cert_path.display(),
                key_path.display()
            ))
        })?;
        Ok(Arc::new(pair))
    }

    /// Reads the pair again; new connections use it from now on. A pair that cannot be
    /// used (unreadable, readable by others, not matching) is refused and the one in use
    /// stays.
    pub fn reload(&self) -> Result<(), RpcError> {
        let pair = Self::read(&self.cert_path, &self.key_path)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = pair;
        Ok(())
    }
}

#[cfg(feature = "rpc")]
impl rustls::server::ResolvesServerCert for ServedKeyPair {
    fn resolve(
        &self,
        _client_hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// Which server certificates a client accepts.
#[derive(Debug, Clone)]
#[non_exhaustive]
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
        let algs = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algs)
            .or_else(|e| verify_with_spki(message, cert, dss, algs, false).ok_or(e))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algs)
            .or_else(|e| verify_with_spki(message, cert, dss, algs, true).ok_or(e))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Verifies a handshake signature with the certificate's public key, read directly from
/// its DER. The fallback for certificates webpki refuses to parse: Deluge generates X.509
/// **version 1** certificates, which webpki rejects (`UnsupportedCertVersion`), so without
/// this our client cannot talk to a real `deluged`. The certificate itself was already
/// accepted by the policy in `verify_server_cert`.
fn verify_with_spki(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    algs: &WebPkiSupportedAlgorithms,
    tls13: bool,
) -> Option<HandshakeSignatureValid> {
    let spki = subject_public_key_info(cert.as_ref())?;
    if tls13 {
        let spki = SubjectPublicKeyInfoDer::from(spki);
        return verify_tls13_signature_with_raw_key(message, &spki, dss, algs).ok();
    }
    let key = public_key_bits(spki)?;
    let candidates = algs.mapping.iter().find(|(s, _)| *s == dss.scheme)?.1;
    candidates
        .iter()
        .any(|alg| alg.verify_signature(key, message, dss.signature()).is_ok())
        .then(HandshakeSignatureValid::assertion)
}

/// One DER element: (tag, content, rest).
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

const DER_SEQUENCE: u8 = 0x30;

/// The `subjectPublicKeyInfo` element (tag and length included) of an X.509 certificate of
/// any version.
fn subject_public_key_info(cert: &[u8]) -> Option<&[u8]> {
    let (DER_SEQUENCE, cert, _) = der_element(cert)? else {
        return None;
    };
    let (DER_SEQUENCE, mut tbs, _) = der_element(cert)? else {
        return None;
    };
    // [0] version (absent in v1), serialNumber, signature, issuer, validity, subject,
    // subjectPublicKeyInfo.
    let (tag, _, rest) = der_element(tbs)?;
    if tag == 0xa0 {
        tbs = rest;
    }
    for _ in 0..5 {
        tbs = der_element(tbs)?.2;
    }
    let (DER_SEQUENCE, _, rest) = der_element(tbs)? else {
        return None;
    };
    Some(&tbs[..tbs.len() - rest.len()])
}

/// The `subjectPublicKey` bits of a `subjectPublicKeyInfo` element.
fn public_key_bits(spki: &[u8]) -> Option<&[u8]> {
    let (DER_SEQUENCE, spki, _) = der_element(spki)? else {
        return None;
    };
    let (DER_SEQUENCE, _algorithm, rest) = der_element(spki)? else {
        return None;
    };
    let (0x03, bits, _) = der_element(rest)? else {
        return None;
    };
    match bits.split_first()? {
        (0, key) => Some(key),
        _ => None,
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

#[cfg(all(test, feature = "rpc"))]
mod spki_tests {
    use super::*;
    use rcgen::PublicKeyData;

    #[test]
    fn finds_the_public_key_of_a_v3_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let spki = subject_public_key_info(cert.der()).unwrap();
        assert_eq!(spki, key.subject_public_key_info().as_slice());
        assert_eq!(public_key_bits(spki).unwrap(), key.der_bytes());
        assert_eq!(subject_public_key_info(&cert.der()[..40]), None);
        assert_eq!(subject_public_key_info(b""), None);
    }

    /// A certificate as Deluge 2.0.3 generates it: X.509 version 1, which webpki rejects.
    const DELUGE_CERT: &str = "-----BEGIN CERTIFICATE-----\n\
MIICpDCCAYwCAQAwDQYJKoZIhvcNAQELBQAwGDEWMBQGA1UEAwwNRGVsdWdlIERh\n\
ZW1vbjAeFw0yNjExMjUwOTUxMjJaFw0yOTExMjQwOTUxMjJaMBgxFjAUBgNVBAMM\n\
DURlbHVnZSBEYWVtb24wggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQDL\n\
mXZN4HKtY+AXL9WW8w9IR4ecub0UD0eqL6VwUh7z6q/JurJ8tU0fBH16SxdjQiFf\n\
XFhLg9kJtEXn7fraziywWZ9yZvzTG5OQfbrm6cq9CJrz2UOuwvYmGuvdihDpMJ8r\n\
XeXzX7VtxGECxI6Y3AkMZNUXHxy5XDzvTyogjGJRDJc5FCB0KFzy8TCo/1aPwfZg\n\
R4V5sEJE3ExuVRetw+qS2eMxCht5JDX5yVezreEPYDtVMd2wcjFvNTF4gwmbj8D/\n\
Gq7cpgXccLHRpRJUWLCzLe2+kb6JDXnwF1PM+gb1YsysXyu1HUWuBzl8vE6dguvk\n\
wgAXe89b7Td9XNmwLMF7AgMBAAEwDQYJKoZIhvcNAQELBQADggEBAAj2O9Ckkn9a\n\
y+tezmD0r6CQDTeUq9AuFzqyKIBnYt51NFFyMGM2vPF4kAl1moUbQ3HjZSzS/tft\n\
8O0rh/uYrIKpw4a0FONOrmk/OCcurDT7kefCF4RR4ex+hf3pgLm7VuUJzVllcRe3\n\
zVygLqmFOasTTOls6avzFLPBgPhIluJncoFm8srdhDJBBBKnrXvqNnoROe+9qQrQ\n\
sCw88fYzSbpr566lw5OyGcwRZbu0wdA38STzM3WUlBQ1MmavXjIIuiGBFoYHOIfz\n\
MZ+efha6olI+y9Yn+J5f7EdPtKdXM/TPwZHlp1Xj/+9feAHhAINaeI60I3HgwLk0\n\
D1iv3hyAofk=\n\
-----END CERTIFICATE-----";
    const DELUGE_SPKI: &str = "-----BEGIN PUBLIC KEY-----\n\
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAy5l2TeByrWPgFy/VlvMP\n\
SEeHnLm9FA9Hqi+lcFIe8+qvybqyfLVNHwR9eksXY0IhX1xYS4PZCbRF5+362s4s\n\
sFmfcmb80xuTkH265unKvQia89lDrsL2Jhrr3YoQ6TCfK13l81+1bcRhAsSOmNwJ\n\
DGTVFx8cuVw8708qIIxiUQyXORQgdChc8vEwqP9Wj8H2YEeFebBCRNxMblUXrcPq\n\
ktnjMQobeSQ1+clXs63hD2A7VTHdsHIxbzUxeIMJm4/A/xqu3KYF3HCx0aUSVFiw\n\
sy3tvpG+iQ158BdTzPoG9WLMrF8rtR1Frgc5fLxOnYLr5MIAF3vPW+03fVzZsCzB\n\
ewIDAQAB\n\
-----END PUBLIC KEY-----";

    #[test]
    fn finds_the_public_key_of_a_deluge_v1_certificate() {
        let cert = CertificateDer::from_pem_slice(DELUGE_CERT.as_bytes()).unwrap();
        let want = SubjectPublicKeyInfoDer::from_pem_slice(DELUGE_SPKI.as_bytes()).unwrap();
        assert!(rustls::server::ParsedCertificate::try_from(&cert).is_err());
        assert_eq!(subject_public_key_info(&cert).unwrap(), want.as_ref());
    }
}
