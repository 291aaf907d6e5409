//! The webhook's serving certificate: from files (a cert-manager or operator-provided Secret,
//! reloaded when it changes), or generated at start with rcgen — a self-signed CA and a leaf for
//! the Service's DNS names, written out so the CA can go into the webhook configuration's
//! `caBundle`. A generated pair is reused across restarts while it is valid for 30 more days.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, anyhow};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

/// Where the serving certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    Files {
        cert: PathBuf,
        key: PathBuf,
    },
    /// Generate into `dir` (`ca.crt`, `tls.crt`, `tls.key`) for these DNS names / IPs.
    Generate {
        dir: PathBuf,
        names: Vec<String>,
    },
}

impl TlsSource {
    /// (certificate file, key file) the server loads.
    pub fn files(&self) -> (PathBuf, PathBuf) {
        match self {
            TlsSource::Files { cert, key } => (cert.clone(), key.clone()),
            TlsSource::Generate { dir, .. } => (dir.join("tls.crt"), dir.join("tls.key")),
        }
    }
}

/// Make sure the generated files exist and are usable; returns the CA certificate (PEM).
pub fn ensure_generated(dir: &Path, names: &[String]) -> anyhow::Result<String> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (ca_p, crt_p, key_p) = (dir.join("ca.crt"), dir.join("tls.crt"), dir.join("tls.key"));
    if let (Ok(ca), Ok(crt), Ok(_)) = (std::fs::read_to_string(&ca_p), std::fs::read(&crt_p), std::fs::read(&key_p))
        && still_valid(&crt, names)
    {
        return Ok(ca);
    }
    let ca_key = KeyPair::generate().map_err(|e| anyhow!("generating the CA key: {e}"))?;
    let mut ca = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "trustmirror webhook CA");
    ca.distinguished_name = dn;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = time::OffsetDateTime::now_utc();
    ca.not_before = now - time::Duration::hours(1);
    ca.not_after = now + time::Duration::days(3650);
    let ca_cert = ca.self_signed(&ca_key).map_err(|e| anyhow!("CA certificate: {e}"))?;
    let issuer = Issuer::new(ca, &ca_key);

    let key = KeyPair::generate().map_err(|e| anyhow!("generating the serving key: {e}"))?;
    let mut p = CertificateParams::new(names.to_vec()).map_err(|e| anyhow!("serving certificate names: {e}"))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, names.first().cloned().unwrap_or_else(|| "trustmirror".into()));
    p.distinguished_name = dn;
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.not_before = now - time::Duration::hours(1);
    p.not_after = now + time::Duration::days(365);
    let cert = p.signed_by(&key, &issuer).map_err(|e| anyhow!("serving certificate: {e}"))?;

    // key first, certificate last: a reader that sees the new certificate sees its key
    write_atomic(&key_p, key.serialize_pem().as_bytes(), true)?;
    write_atomic(&ca_p, ca_cert.pem().as_bytes(), false)?;
    write_atomic(&crt_p, format!("{}{}", cert.pem(), ca_cert.pem()).as_bytes(), false)?;
    Ok(ca_cert.pem())
}

fn write_atomic(p: &Path, b: &[u8], secret: bool) -> anyhow::Result<()> {
    crate::files::write_atomic_mode(p, b, if secret { 0o600 } else { 0o644 }).with_context(|| format!("writing {}", p.display()))
}

/// The leaf parses, is valid for 30 more days and covers every name.
fn still_valid(pem: &[u8], names: &[String]) -> bool {
    use x509_cert::der::DecodePem;
    let Ok(c) = x509_cert::Certificate::from_pem(first_pem_block(pem)) else { return false };
    let not_after = c.tbs_certificate.validity.not_after.to_unix_duration().as_secs() as i64;
    if not_after < jiff::Timestamp::now().as_second() + 30 * 86400 {
        return false;
    }
    let text = String::from_utf8_lossy(
        &c.tbs_certificate.extensions.iter().flatten().flat_map(|e| e.extn_value.as_bytes().to_vec()).collect::<Vec<u8>>(),
    )
    .into_owned();
    names.iter().all(|n| n.parse::<std::net::IpAddr>().is_ok() || text.contains(n.as_str()))
}

fn first_pem_block(pem: &[u8]) -> &[u8] {
    let s = pem;
    let end = b"-----END CERTIFICATE-----";
    match s.windows(end.len()).position(|w| w == end) {
        Some(i) => &s[..i + end.len()],
        None => s,
    }
}

/// A rustls server configuration (aws-lc-rs, TLS 1.2/1.3, ALPN h2 and http/1.1) from PEM files.
pub fn server_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing certificate {}", cert.display()))?;
    if certs.is_empty() {
        return Err(anyhow!("{}: no certificate", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading private key {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow!("TLS versions: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| anyhow!("certificate and key do not form a usable pair: {e}"))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A rustls client configuration trusting `ca_pem` (tests, the demo, the benchmark).
pub fn client_config(ca_pem: &str) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.map_err(|e| anyhow!("CA PEM: {e}"))?).map_err(|e| anyhow!("CA: {e}"))?;
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow!("{e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificates_are_reused_while_valid_and_load() {
        let d = tempfile::tempdir().unwrap();
        let names = vec!["trustmirror.trustmirror-system.svc".to_string(), "127.0.0.1".to_string()];
        let ca1 = ensure_generated(d.path(), &names).unwrap();
        let ca2 = ensure_generated(d.path(), &names).unwrap();
        assert_eq!(ca1, ca2, "a valid pair is reused: the caBundle stays right across restarts");
        let cfg = server_config(&d.path().join("tls.crt"), &d.path().join("tls.key")).unwrap();
        assert_eq!(cfg.alpn_protocols[1], b"http/1.1");
        // a new name forces a new pair
        let ca3 = ensure_generated(d.path(), &["other.svc".to_string()]).unwrap();
        assert_ne!(ca1, ca3);
        assert!(client_config(&ca3).is_ok());
        std::fs::write(d.path().join("tls.key"), "not a key").unwrap();
        assert!(server_config(&d.path().join("tls.crt"), &d.path().join("tls.key")).unwrap_err().to_string().contains("private key"));
    }
}
