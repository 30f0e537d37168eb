//! TLS for the HTTPS + WSS listener (`--tls-listen`): the operator's certificate and key, or a
//! local CA kept in the data dir (created on first start, reused afterwards, so users trust it
//! once) that signs a fresh server certificate for the names this server answers to.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::crypto::ring::cipher_suite as cs;
use rustls::crypto::CryptoProvider;
use rustls::{ServerConfig, SupportedCipherSuite};

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
        cert_pem: std::fs::read_to_string(cert).map_err(|e| {
            crate::startup::cannot_read("the TLS certificate", "--tls-cert", cert, &e)
        })?,
        key_pem: std::fs::read_to_string(key)
            .map_err(|e| crate::startup::cannot_read("the TLS key", "--tls-key", key, &e))?,
        ca_path: None,
    })
}

/// The protocol versions offered: TLS 1.3 and 1.2; SSL 3.0, TLS 1.0 and 1.1 are refused (rustls
/// implements none of them, and this list does not depend on that).
pub static PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The cipher suites offered, all AEAD with ephemeral (EC)DHE key exchange, so recorded traffic
/// stays secret if the server key leaks: TLS 1.3's three, and for TLS 1.2 only ECDHE with
/// AES-GCM or ChaCha20-Poly1305 (no CBC, no static-RSA key exchange, no SHA-1 MACs).
pub static CIPHER_SUITES: &[SupportedCipherSuite] = &[
    cs::TLS13_AES_256_GCM_SHA384,
    cs::TLS13_AES_128_GCM_SHA256,
    cs::TLS13_CHACHA20_POLY1305_SHA256,
    cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

/// The listener's rustls configuration: [`PROTOCOL_VERSIONS`], [`CIPHER_SUITES`], ring's
/// (EC)DHE groups (X25519, P-256, P-384), no client certificates, ALPN `h2` then `http/1.1`.
/// Written out rather than left to library defaults so a dependency update cannot widen it.
pub fn server_config(material: &TlsMaterial) -> anyhow::Result<ServerConfig> {
    let certs = rustls_pemfile::certs(&mut material.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("reading the TLS certificate chain")?;
    if certs.is_empty() {
        anyhow::bail!("the TLS certificate file holds no certificate");
    }
    let key = rustls_pemfile::private_key(&mut material.key_pem.as_bytes())
        .context("reading the TLS private key")?
        .context("the TLS key file holds no private key")?;
    let provider = CryptoProvider {
        cipher_suites: CIPHER_SUITES.to_vec(),
        ..rustls::crypto::ring::default_provider()
    };
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
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
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rustls::{CipherSuite, ServerConnection};

    /// One generated certificate for every test of this module.
    fn config() -> Arc<ServerConfig> {
        static CONFIG: std::sync::OnceLock<Arc<ServerConfig>> = std::sync::OnceLock::new();
        Arc::clone(CONFIG.get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("kvs-tls-cfg-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let material = generate(&dir, &["localhost".to_string()]).unwrap();
            let _ = std::fs::remove_dir_all(&dir);
            Arc::new(server_config(&material).unwrap())
        }))
    }

    #[test]
    fn only_tls_1_2_and_1_3_with_forward_secret_aead_suites() {
        let cfg = config();
        let suites: Vec<CipherSuite> = cfg
            .crypto_provider()
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect();
        for s in &suites {
            let name = format!("{s:?}");
            let tls13 = name.starts_with("TLS13_");
            let fs_aead = name.starts_with("TLS_ECDHE_")
                && (name.contains("_GCM_") || name.contains("CHACHA20_POLY1305"));
            assert!(tls13 || fs_aead, "{name}");
        }
        assert_eq!(suites.len(), 9);
        assert_eq!(cfg.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
    }

    /// A ClientHello record: `version` in the record and the hello, one `suite`, and the
    /// extensions a TLS 1.2 client sends for ECDHE (groups, point formats, signature algorithms).
    fn client_hello(version: u16, suites: &[u16]) -> Vec<u8> {
        let mut ext = Vec::new();
        let mut push_ext = |ty: u16, body: &[u8]| {
            ext.extend_from_slice(&ty.to_be_bytes());
            ext.extend_from_slice(&(body.len() as u16).to_be_bytes());
            ext.extend_from_slice(body);
        };
        // supported_groups: x25519, secp256r1.
        push_ext(10, &[0, 4, 0x00, 0x1d, 0x00, 0x17]);
        // ec_point_formats: uncompressed.
        push_ext(11, &[1, 0]);
        // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256.
        push_ext(13, &[0, 6, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01]);
        let mut hello = Vec::new();
        hello.extend_from_slice(&version.to_be_bytes());
        hello.extend_from_slice(&[7u8; 32]); // random
        hello.push(0); // session id
        hello.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
        for s in suites {
            hello.extend_from_slice(&s.to_be_bytes());
        }
        hello.extend_from_slice(&[1, 0]); // compression: null
        hello.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        hello.extend_from_slice(&ext);
        let mut hs = vec![1u8]; // ClientHello
        hs.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&hello);
        let mut record = vec![0x16];
        record.extend_from_slice(&version.to_be_bytes());
        record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        record.extend_from_slice(&hs);
        record
    }

    /// Feeds `hello` to a server connection: Ok(the server's first flight) or its error.
    fn handshake(hello: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let mut conn = ServerConnection::new(config()).unwrap();
        conn.read_tls(&mut &hello[..]).unwrap();
        let state = conn.process_new_packets();
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out).unwrap();
        }
        state.map(|_| out)
    }

    #[test]
    fn old_protocols_and_weak_suites_are_refused() {
        // The generated certificate's key is ECDSA P-256: ECDHE_ECDSA suites are the ones it
        // can serve; the ECDHE_RSA ones are offered too, as real clients do.
        const ECDHE_ECDSA_AES128_GCM: u16 = 0xc02b;
        const ECDHE_RSA_AES128_GCM: u16 = 0xc02f;
        const ECDHE_ECDSA_AES128_CBC_SHA: u16 = 0xc009;
        const ECDHE_RSA_AES128_CBC_SHA: u16 = 0xc013;
        const ECDHE_ECDSA_AES128_CBC_SHA256: u16 = 0xc023;
        const RSA_AES128_GCM: u16 = 0x009c; // static RSA key exchange: no forward secrecy
        const RSA_AES128_CBC_SHA: u16 = 0x002f;
        const RSA_3DES: u16 = 0x000a;
        const ECDHE_ECDSA_RC4: u16 = 0xc007;
        const ECDHE_ECDSA_NULL: u16 = 0xc006;
        let modern = [ECDHE_ECDSA_AES128_GCM, ECDHE_RSA_AES128_GCM];
        // The control: a TLS 1.2 hello with ECDHE-GCM suites gets a ServerHello.
        let flight = handshake(&client_hello(0x0303, &modern)).unwrap();
        assert_eq!(flight.first(), Some(&0x16), "a handshake record");
        assert_eq!(flight.get(5), Some(&2), "ServerHello");
        let weak = [
            ECDHE_ECDSA_AES128_CBC_SHA,
            ECDHE_RSA_AES128_CBC_SHA,
            ECDHE_ECDSA_AES128_CBC_SHA256,
            RSA_AES128_GCM,
            RSA_AES128_CBC_SHA,
            RSA_3DES,
            ECDHE_ECDSA_RC4,
            ECDHE_ECDSA_NULL,
        ];
        let all: Vec<u16> = modern.iter().chain(&weak).copied().collect();
        use rustls::PeerIncompatible::*;
        for (case, version, suites, want) in [
            ("SSL 3.0", 0x0300, &all[..], Tls12NotOffered),
            ("TLS 1.0", 0x0301, &all[..], Tls12NotOffered),
            ("TLS 1.1", 0x0302, &all[..], Tls12NotOffered),
            (
                "TLS 1.2, weak suites only",
                0x0303,
                &weak[..],
                NoCipherSuitesInCommon,
            ),
        ] {
            let e = handshake(&client_hello(version, suites)).unwrap_err();
            assert_eq!(e, rustls::Error::PeerIncompatible(want), "{case}");
        }
        // Each weak suite alone, too.
        for suite in weak {
            let e = handshake(&client_hello(0x0303, &[suite])).unwrap_err();
            assert_eq!(
                e,
                rustls::Error::PeerIncompatible(NoCipherSuitesInCommon),
                "{suite:#06x}"
            );
        }
    }

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
