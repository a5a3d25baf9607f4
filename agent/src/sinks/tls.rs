//! TLS client settings shared by syslog over TLS, HEC and OTLP (rustls).

use std::{path::Path, sync::Arc};

use anyhow::{bail, Context, Result};
use rustls::{
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    ClientConfig, RootCertStore,
};

use super::config::TlsConfig;

/// Debian's (and most distributions') CA bundle, used when no `ca_file` is given.
const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not a PEM certificate file", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no PEM certificate", path.display());
    }
    Ok(certs)
}

/// A rustls client configuration: the CA file (or the system bundle) as
/// roots, and the client certificate when one is configured.
pub fn client_config(tls: Option<&TlsConfig>) -> Result<Arc<ClientConfig>> {
    let default = TlsConfig::default();
    let tls = tls.unwrap_or(&default);
    let mut roots = RootCertStore::empty();
    let ca = tls
        .ca_file
        .as_deref()
        .unwrap_or_else(|| Path::new(SYSTEM_CAS));
    let (added, _) = roots.add_parsable_certificates(
        certs(ca).with_context(|| "tls.ca_file (the CA that signed the server's certificate)")?,
    );
    if added == 0 {
        bail!("{}: no usable CA certificate", ca.display());
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_root_certificates(roots);
    let cfg = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let key = PrivateKeyDer::from_pem_file(key).with_context(|| {
                format!("tls.key_file {}: not a PEM private key", key.display())
            })?;
            builder
                .with_client_auth_cert(certs(cert).context("tls.cert_file")?, key)
                .context("tls.cert_file and tls.key_file do not form a usable client identity")?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}
