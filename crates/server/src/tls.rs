//! TLS: a local CA created on first start (`tls/ca.pem`), and a server
//! certificate signed by it for localhost, loopback, the vault suffix and
//! `*.` the vault suffix; or a user-supplied certificate and key.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::bootstrap::write_private_file;
use crate::listener::ServeError;

/// Where the local CA certificate is written.
pub fn ca_cert_path(data_dir: &Path) -> PathBuf {
    data_dir.join("tls").join("ca.pem")
}

fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Lockstep local CA");
    dn.push(DnType::OrganizationName, "Lockstep");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
    Ok(params)
}

fn tls_err(what: &str, e: impl std::fmt::Display) -> ServeError {
    ServeError::Tls(format!("{what}: {e}"))
}

/// Builds the rustls configuration, creating the CA and server certificate
/// as needed. Returns the config and the CA path clients should trust (when
/// Lockstep's own CA is in use).
pub fn server_config(
    data_dir: &Path,
    names: &[String],
    user_cert: Option<&Path>,
    user_key: Option<&Path>,
) -> Result<(Arc<ServerConfig>, Option<PathBuf>), ServeError> {
    let (chain, key, ca) = match (user_cert, user_key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| tls_err(&format!("cannot read {}", cert.display()), e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| tls_err(&format!("cannot parse {}", cert.display()), e))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| tls_err(&format!("cannot read {}", key.display()), e))?;
            (chain, key, None)
        }
        (None, None) => {
            let (chain, key) = local_ca_chain(data_dir, names)?;
            (chain, key, Some(ca_cert_path(data_dir)))
        }
        _ => {
            return Err(ServeError::Config(
                "--tls-cert and --tls-key must be given together".into(),
            ))
        }
    };
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| tls_err("invalid certificate or key", e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(config), ca))
}

/// Loads (or creates) the local CA and signs a fresh server certificate for
/// `names`. The server certificate is re-issued at every start so that it
/// always carries the configured names.
fn local_ca_chain(
    data_dir: &Path,
    names: &[String],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ServeError> {
    let dir = data_dir.join("tls");
    std::fs::create_dir_all(&dir)
        .map_err(|e| tls_err(&format!("cannot create {}", dir.display()), e))?;
    let ca_cert_file = ca_cert_path(data_dir);
    let ca_key_file = dir.join("ca-key.pem");
    let params = ca_params().map_err(|e| tls_err("CA parameters", e))?;
    let (ca_key, ca_pem) = if ca_key_file.exists() && ca_cert_file.exists() {
        let key_pem = std::fs::read_to_string(&ca_key_file)
            .map_err(|e| tls_err(&format!("cannot read {}", ca_key_file.display()), e))?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| tls_err("CA key", e))?;
        let cert_pem = std::fs::read_to_string(&ca_cert_file)
            .map_err(|e| tls_err(&format!("cannot read {}", ca_cert_file.display()), e))?;
        (key, cert_pem)
    } else {
        let key = KeyPair::generate().map_err(|e| tls_err("CA key generation", e))?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| tls_err("CA certificate", e))?;
        write_private_file(&ca_key_file, key.serialize_pem().as_bytes())?;
        std::fs::write(&ca_cert_file, cert.pem())
            .map_err(|e| tls_err(&format!("cannot write {}", ca_cert_file.display()), e))?;
        (key, cert.pem())
    };
    let issuer = Issuer::new(params, ca_key);
    let server_key = KeyPair::generate().map_err(|e| tls_err("server key generation", e))?;
    let mut sp = CertificateParams::new(names.to_vec()).map_err(|e| tls_err("server names", e))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Lockstep server");
    sp.distinguished_name = dn;
    sp.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = time::OffsetDateTime::now_utc();
    sp.not_before = now - time::Duration::days(1);
    sp.not_after = now + time::Duration::days(397);
    let cert = sp
        .signed_by(&server_key, &issuer)
        .map_err(|e| tls_err("server certificate", e))?;
    let ca_der = CertificateDer::from_pem_slice(ca_pem.as_bytes())
        .map_err(|e| tls_err("CA certificate", e))?;
    let key = PrivateKeyDer::from_pem_slice(server_key.serialize_pem().as_bytes())
        .map_err(|e| tls_err("server key", e))?;
    Ok((vec![cert.der().clone(), ca_der], key))
}
