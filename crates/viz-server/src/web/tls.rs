//! HTTPS for the web page: browsers give a page the microphone only on https:// or
//! http://localhost, so a friend on the LAN needs a certificate. Either the admin's
//! own (`--tls-cert/--tls-key`, PEM) or one we generate (`--tls-self-signed`), kept in
//! the state directory so its fingerprint, and the browser's exception for it, survive
//! restarts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

pub const SELF_SIGNED_CERT: &str = "tls-cert.pem";
pub const SELF_SIGNED_KEY: &str = "tls-key.pem";

#[derive(Debug, Clone, Default)]
pub enum TlsMode {
    #[default]
    Off,
    /// PEM files: the certificate chain and its private key.
    Files { cert: PathBuf, key: PathBuf },
    /// Generated on first use into `dir`, valid for `names` (DNS names or IPs).
    SelfSigned { dir: PathBuf, names: Vec<String> },
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("cannot use the certificate and key: {0}")]
    Config(String),
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
    #[error("cannot save the generated certificate to {path}: {reason}")]
    Write { path: PathBuf, reason: String },
}

/// A server configuration ready for the HTTPS listener, with the leaf certificate's
/// SHA-256 fingerprint (what a browser shows, and what a user compares).
pub struct Loaded {
    pub config: Arc<rustls::ServerConfig>,
    pub fingerprint: String,
}

/// The fingerprint as browsers show it: SHA-256, upper-case hex pairs with colons.
pub fn fingerprint(cert: &[u8]) -> String {
    let digest = Sha256::digest(cert);
    digest.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// Loads (or for `SelfSigned`, creates and then loads) the certificate; `None` for `Off`.
pub fn load(mode: &TlsMode) -> Result<Option<Loaded>, TlsError> {
    let (cert_path, key_path) = match mode {
        TlsMode::Off => return Ok(None),
        TlsMode::Files { cert, key } => (cert.clone(), key.clone()),
        TlsMode::SelfSigned { dir, names } => {
            let cert = dir.join(SELF_SIGNED_CERT);
            let key = dir.join(SELF_SIGNED_KEY);
            if !cert.exists() || !key.exists() {
                generate(&cert, &key, names)?;
            }
            (cert, key)
        }
    };
    let read = |p: &Path| std::fs::read(p).map_err(|e| TlsError::Read { path: p.to_owned(), reason: e.to_string() });
    let cert_pem = read(&cert_path)?;
    let key_pem = read(&key_path)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Read { path: cert_path.clone(), reason: e.to_string() })?;
    let leaf = certs.first().ok_or_else(|| TlsError::NoCertificate { path: cert_path.clone() })?;
    let fingerprint = fingerprint(leaf);
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| TlsError::Read { path: key_path.clone(), reason: format!("no usable private key: {e}") })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Loaded { config: Arc::new(config), fingerprint }))
}

fn generate(cert_path: &Path, key_path: &Path, names: &[String]) -> Result<(), TlsError> {
    let certified =
        rcgen::generate_simple_self_signed(names.to_vec()).map_err(|e| TlsError::Generate(e.to_string()))?;
    let write = |p: &Path, data: &str, mode: u32| {
        viz_client::store::write_atomic(p, data.as_bytes(), mode)
            .map_err(|e| TlsError::Write { path: p.to_owned(), reason: e.to_string() })
    };
    // The key first (owner-only): a crash between the two leaves no certificate, so the
    // next start generates both again instead of pairing a certificate with a lost key.
    write(key_path, &certified.signing_key.serialize_pem(), 0o600)?;
    write(cert_path, &certified.cert.pem(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificate_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mode = TlsMode::SelfSigned { dir: dir.path().to_owned(), names: vec!["localhost".into()] };
        let first = load(&mode).unwrap().unwrap();
        let second = load(&mode).unwrap().unwrap();
        assert_eq!(first.fingerprint, second.fingerprint, "a restart must keep the certificate");
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
        let files = TlsMode::Files { cert: dir.path().join(SELF_SIGNED_CERT), key: dir.path().join(SELF_SIGNED_KEY) };
        assert_eq!(load(&files).unwrap().unwrap().fingerprint, first.fingerprint);
    }

    #[test]
    fn unreadable_or_wrong_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = TlsMode::Files { cert: dir.path().join("nope.pem"), key: dir.path().join("nokey.pem") };
        assert!(matches!(load(&missing), Err(TlsError::Read { .. })));
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let both_junk = TlsMode::Files { cert: junk.clone(), key: junk };
        let err = load(&both_junk).err().unwrap().to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
    }
}
