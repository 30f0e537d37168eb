//! TLS for the HTTPS + WSS listener (`--tls-listen`): the operator's certificate and key, or a
//! local CA kept in the data dir (created on first start, reused afterwards, so users trust it
//! once) that signs a fresh server certificate for the names this server answers to.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// PEM certificate chain and key for the listener.
pub struct TlsMaterial {
    pub cert_pem: String,
    pub key_pem: String,
    /// Where the generated CA's certificate is, when one is used.
    pub ca_path: Option<PathBuf>,
}

/// The operator's files.
pub fn load(cert: &Path, key: &Path) -> anyhow::Result<TlsMaterial> {
    Ok(TlsMaterial {
        cert_pem: std::fs::read_to_string(cert)
            .with_context(|| format!("reading --tls-cert {}", cert.display()))?,
        key_pem: std::fs::read_to_string(key)
            .with_context(|| format!("reading --tls-key {}", key.display()))?,
        ca_path: None,
    })
}

/// The rustls configuration of the HTTPS + WSS listener: rustls's defaults (TLS 1.2 and 1.3,
/// AEAD suites with forward secrecy only), HTTP/2 and HTTP/1.1 offered by ALPN.
pub fn server_config(
    material: &TlsMaterial,
) -> anyhow::Result<std::sync::Arc<rustls::ServerConfig>> {
    let certs = rustls_pemfile::certs(&mut material.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("reading the TLS certificate chain")?;
    if certs.is_empty() {
        anyhow::bail!("the TLS certificate file holds no certificate");
    }
    let key = rustls_pemfile::private_key(&mut material.key_pem.as_bytes())
        .context("reading the TLS private key")?
        .context("the TLS key file holds no private key")?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(std::sync::Arc::new(config))
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(days);
}

/// Loads the local CA from `dir` (creating it on first use) and issues a server certificate for
/// `names` (DNS names or IP addresses).
pub fn generate(dir: &Path, names: &[String]) -> anyhow::Result<TlsMaterial> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ca_cert_path = dir.join("ca.pem");
    let ca_key_path = dir.join("ca-key.pem");
    let (ca_pem, ca_key) = if ca_cert_path.exists() && ca_key_path.exists() {
        let pem = std::fs::read_to_string(&ca_cert_path)?;
        let key = KeyPair::from_pem(&std::fs::read_to_string(&ca_key_path)?)
            .context("reading the local CA key")?;
        (pem, key)
    } else {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "kvs-signaling local CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, 3650);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        write_private(&ca_key_path, &key.serialize_pem())?;
        std::fs::write(&ca_cert_path, cert.pem())?;
        (cert.pem(), key)
    };
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).context("loading the local CA")?;
    let mut params = CertificateParams::new(names.to_vec())?;
    params.distinguished_name.push(
        DnType::CommonName,
        names.first().map_or("localhost", String::as_str),
    );
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut params, 397);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    let chain = format!("{}{}", cert.pem(), ca_pem);
    std::fs::write(dir.join("server.pem"), &chain)?;
    write_private(&dir.join("server-key.pem"), &key.serialize_pem())?;
    Ok(TlsMaterial {
        cert_pem: chain,
        key_pem: key.serialize_pem(),
        ca_path: Some(ca_cert_path),
    })
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("kvs-tls-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let first = generate(&dir, &names).unwrap();
        let ca1 = std::fs::read_to_string(first.ca_path.as_ref().unwrap()).unwrap();
        let second = generate(&dir, &names).unwrap();
        let ca2 = std::fs::read_to_string(second.ca_path.as_ref().unwrap()).unwrap();
        assert_eq!(ca1, ca2, "the CA is reused");
        assert_ne!(first.key_pem, second.key_pem, "server keys are fresh");
        assert!(second.cert_pem.ends_with(&ca1), "the chain carries the CA");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
