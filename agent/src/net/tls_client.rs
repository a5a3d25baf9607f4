//! The one rustls client configuration builder: syslog over TLS, the HEC and
//! OTLP sinks and the kubelet / API server fetch all trust servers the same
//! way (ring provider, no OpenSSL).

use std::{path::Path, sync::Arc};

use anyhow::{bail, Context, Result};
use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName, UnixTime},
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// Debian's (and most distributions') CA bundle, used when no CA file is given.
const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What a client trusts and who it is.
#[derive(Debug, Default)]
pub struct ClientTls<'a> {
    /// The config section these settings come from ("tls", "kubernetes"):
    /// errors name the key (`tls.ca_file`) so the fix is obvious.
    pub section: &'a str,
    /// PEM file of the CA(s); `None`: the system bundle.
    pub ca_file: Option<&'a Path>,
    /// Client certificate and key (PEM) for mutual TLS.
    pub cert_file: Option<&'a Path>,
    pub key_file: Option<&'a Path>,
    /// Accept any server certificate (the handshake signature is still
    /// checked). Only for endpoints whose certificate cannot be verified,
    /// such as a kubelet with a self-signed serving certificate.
    pub insecure_skip_verify: bool,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read {key} {}", path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{key} {} is not a PEM certificate file", path.display()))?;
    if certs.is_empty() {
        bail!("{key} {} holds no PEM certificate", path.display());
    }
    Ok(certs)
}

/// A rustls client configuration from `tls`.
pub fn client_config(tls: &ClientTls) -> Result<Arc<ClientConfig>> {
    let section = tls.section;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
    } else {
        let key = format!("{section}.ca_file");
        let ca = tls.ca_file.unwrap_or_else(|| Path::new(SYSTEM_CAS));
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(certs(ca, &key).with_context(|| {
            format!("{key} must name the PEM file of the CA that signed the server's certificate")
        })?);
        if added == 0 {
            bail!("{key} {}: no usable CA certificate", ca.display());
        }
        builder.with_root_certificates(roots)
    };
    let cfg = match (tls.cert_file, tls.key_file) {
        (Some(cert), Some(key)) => {
            let key = PrivateKeyDer::from_pem_file(key).with_context(|| {
                format!(
                    "{section}.key_file {}: not a PEM private key",
                    key.display()
                )
            })?;
            builder
                .with_client_auth_cert(certs(cert, &format!("{section}.cert_file"))?, key)
                .with_context(|| {
                    format!(
                        "{section}.cert_file and {section}.key_file do not form a usable client \
                         identity"
                    )
                })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}

/// Checks nothing about who the certificate names, but still that the
/// handshake is signed by the key it presents (`insecure_skip_verify`).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_key_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("token");
        std::fs::write(&not_pem, "abc\n").unwrap();
        let e = client_config(&ClientTls {
            section: "kubernetes",
            ca_file: Some(&not_pem),
            ..Default::default()
        })
        .unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.contains("kubernetes.ca_file") && e.contains("no PEM certificate"),
            "{e}"
        );
        let missing = dir.path().join("missing.pem");
        let e = client_config(&ClientTls {
            section: "tls",
            ca_file: Some(&missing),
            ..Default::default()
        })
        .unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.contains("cannot read tls.ca_file") && e.contains("missing.pem"),
            "{e}"
        );
        assert!(client_config(&ClientTls {
            section: "kubernetes",
            insecure_skip_verify: true,
            ..Default::default()
        })
        .is_ok());
    }
}
