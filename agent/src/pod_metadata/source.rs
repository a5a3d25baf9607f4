//! Where pod lists come from: the kubelet's `/pods` endpoint, or the API
//! server's pod list restricted to this node (`fieldSelector
//! spec.nodeName=NODE`); both answer a `v1.PodList`. Fetched every
//! `refresh_interval`, and sooner (at most every `min_refresh_interval`)
//! when a lookup meets a pod or container the cache does not know yet.

use std::{sync::Arc, time::Instant};

use http_body_util::{BodyExt, Empty};
use hyper::{
    body::Bytes,
    header::{HeaderValue, ACCEPT, AUTHORIZATION, HOST},
    Request, Uri,
};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{
    rustls::{
        self,
        client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
        crypto::CryptoProvider,
        pki_types::{pem::PemObject, CertificateDer, ServerName, UnixTime},
        DigitallySignedStruct, SignatureScheme,
    },
    TlsConnector,
};

use super::{config::Source, podlist, KubernetesConfig, PodCache, SourceStats};

/// Larger answers are refused rather than buffered without bound (a
/// 110-pod node answers a few MiB).
const MAX_BODY_BYTES: usize = 64 << 20;

/// The stats a source starts with.
pub fn initial_stats(source: Source, url: &str) -> SourceStats {
    SourceStats {
        source: source.name(),
        state: "starting",
        url: Some(url.to_string()),
        ..Default::default()
    }
}

/// An error and its causes on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Where to connect and what to ask for.
#[derive(Debug)]
struct Target {
    tls: bool,
    host: String,
    port: u16,
    authority: String,
    path: String,
}

fn target(url: &str) -> Result<Target, String> {
    let bad = |why: &str| format!("kubernetes.kubelet_url {url:?}: {why}");
    let uri: Uri = url.parse().map_err(|e| bad(&format!("{e}")))?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(bad("the scheme must be https (or http)")),
    };
    let host = uri.host().ok_or_else(|| bad("no host"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok(Target {
        tls,
        port: uri.port_u16().unwrap_or(if tls { 443 } else { 80 }),
        authority: uri.authority().map(|a| a.to_string()).unwrap_or_default(),
        path: uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), |p| p.to_string()),
        host,
    })
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
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

fn tls_connector(cfg: &KubernetesConfig) -> Result<TlsConnector, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let config = if cfg.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
            .with_no_client_auth()
    } else {
        let Some(ca) = &cfg.ca_file else {
            return Err(
                "kubernetes.ca_file is null and insecure_skip_verify is false: no way to check \
                 the kubelet's certificate; set one of them"
                    .into(),
            );
        };
        let pem = std::fs::read(ca).map_err(|e| {
            format!(
                "cannot read kubernetes.ca_file {}: {e}; point it at the CA that signed the \
                 kubelet's serving certificate, or set insecure_skip_verify: true",
                ca.display()
            )
        })?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("kubernetes.ca_file {}: {e}", ca.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("kubernetes.ca_file {}: {e}", ca.display()))?;
        }
        if roots.is_empty() {
            return Err(format!(
                "kubernetes.ca_file {} holds no PEM certificate",
                ca.display()
            ));
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

fn bearer(cfg: &KubernetesConfig) -> Result<HeaderValue, String> {
    let token = std::fs::read_to_string(&cfg.token_file).map_err(|e| {
        format!(
            "cannot read kubernetes.token_file {}: {e}",
            cfg.token_file.display()
        )
    })?;
    let token = token.trim();
    if token.is_empty() {
        return Err(format!(
            "kubernetes.token_file {} is empty",
            cfg.token_file.display()
        ));
    }
    // Never echo the value: the message names the file only.
    let mut v = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        format!(
            "kubernetes.token_file {} holds characters a token cannot have",
            cfg.token_file.display()
        )
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// One HTTP/1.1 exchange on `io`: (status, body).
async fn exchange<T>(io: T, req: Request<Empty<Bytes>>) -> Result<(u16, Vec<u8>), String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| chain(&e))?;
    let conn = tokio::spawn(conn);
    let result = async {
        let resp = sender.send_request(req).await.map_err(|e| chain(&e))?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("reading the answer: {}", chain(&e)))?;
            if let Some(chunk) = frame.data_ref() {
                if out.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(format!(
                        "the answer is larger than {MAX_BODY_BYTES} bytes; refused"
                    ));
                }
                out.extend_from_slice(chunk);
            }
        }
        Ok((status, out))
    }
    .await;
    conn.abort();
    result
}

/// One GET of the pod list.
async fn fetch(
    cfg: &KubernetesConfig,
    url: &str,
    tls: &mut Option<TlsConnector>,
) -> Result<podlist::PodList, String> {
    let t = target(url)?;
    let auth = bearer(cfg)?;
    let req = Request::get(t.path.as_str())
        .header(HOST, t.authority.as_str())
        .header(ACCEPT, "application/json")
        .header(AUTHORIZATION, auth)
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("GET {url}: {e}"))?;
    let connector = if t.tls {
        if tls.is_none() {
            *tls = Some(tls_connector(cfg)?);
        }
        tls.clone()
    } else {
        None
    };
    let get = async {
        let tcp = tokio::net::TcpStream::connect((t.host.as_str(), t.port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        match connector {
            Some(c) => {
                let name = ServerName::try_from(t.host.clone())
                    .map_err(|e| format!("TLS server name {:?}: {e}", t.host))?;
                let stream = c
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS handshake: {}", chain(&e)))?;
                exchange(stream, req).await
            }
            None => exchange(tcp, req).await,
        }
    };
    let (status, body) = tokio::time::timeout(cfg.timeout, get)
        .await
        .map_err(|_| {
            format!(
                "GET {url}: no answer within {}",
                humantime::format_duration(cfg.timeout)
            )
        })?
        .map_err(|e| format!("GET {url}: {e}"))?;
    if !(200..300).contains(&status) {
        let hint = match (status, cfg.source) {
            (401, _) => "; the token was refused (is it a service-account token of this cluster?)",
            (403, Source::Kubelet) => "; the service account may not read the kubelet's pods (RBAC: get on nodes/pods, or nodes/proxy before Kubernetes 1.33)",
            (403, Source::ApiServer) => "; the service account may not list pods (RBAC: list on pods)",
            _ => "",
        };
        return Err(format!("GET {url}: HTTP {status}{hint}"));
    }
    // A big list takes milliseconds to parse: off the event thread.
    tokio::task::spawn_blocking(move || podlist::parse(&body))
        .await
        .map_err(|e| format!("parser task: {e}"))?
        .map_err(|e| format!("GET {url}: {e}"))
}

fn record(
    cache: &PodCache,
    url: &str,
    cfg: &KubernetesConfig,
    r: Result<podlist::PodList, String>,
) {
    match r {
        Ok(list) => {
            cache.replace(list.pods, Instant::now());
            let mut back_after = 0;
            cache.update_stats(|s| {
                back_after = s.consecutive_failures;
                s.state = "ok";
                s.fetches_ok += 1;
                s.consecutive_failures = 0;
                s.skipped_items += list.skipped as u64;
                s.last_success = Some(crate::event::rfc3339_ns(crate::clock::now_ns()));
            });
            if back_after > 0 {
                tracing::info!(
                    "pod metadata: {url} answers again after {back_after} failed fetches"
                );
            }
        }
        Err(e) => {
            let mut first = false;
            cache.update_stats(|s| {
                first = s.consecutive_failures == 0;
                s.state = "failing";
                s.fetches_failed += 1;
                s.consecutive_failures += 1;
                if first {
                    s.outages += 1;
                }
                s.last_error = Some(e.clone());
            });
            // One warning per outage, not one per retry.
            if first {
                tracing::warn!(
                    "pod metadata unavailable: {e}. Events and attestation carry the pod uid and \
                     container id from cgroups only until it answers; retrying every {}",
                    humantime::format_duration(cfg.refresh_interval)
                );
            }
        }
    }
}

/// Fetches until the task is dropped.
pub async fn run(cfg: KubernetesConfig, url: String, cache: Arc<PodCache>) {
    let mut tls = None;
    loop {
        let r = fetch(&cfg, &url, &mut tls).await;
        if r.is_err() {
            // Rebuilt on the next try: the CA file may have been fixed.
            tls = None;
        }
        record(&cache, &url, &cfg, r);
        let fetched = tokio::time::Instant::now();
        tokio::select! {
            _ = tokio::time::sleep(cfg.refresh_interval) => {}
            _ = cache.wanted() => {
                tokio::time::sleep_until(fetched + cfg.min_refresh_interval).await;
                cache.update_stats(|s| s.on_demand_refreshes += 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_tokens() {
        let t = target("https://10.1.2.3:10250/pods").unwrap();
        assert!(t.tls);
        assert_eq!((t.host.as_str(), t.port), ("10.1.2.3", 10250));
        assert_eq!(t.path, "/pods");
        assert_eq!(t.authority, "10.1.2.3:10250");
        let t = target("http://[::1]/pods?x=1").unwrap();
        assert!(!t.tls);
        assert_eq!((t.host.as_str(), t.port), ("::1", 80));
        assert_eq!(t.path, "/pods?x=1");
        assert!(target("ftp://h/pods").unwrap_err().contains("scheme"));
        assert!(target("not a url").unwrap_err().contains("kubelet_url"));

        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        let cfg = KubernetesConfig {
            token_file: token.clone(),
            ..Default::default()
        };
        assert!(bearer(&cfg).unwrap_err().contains("cannot read"));
        std::fs::write(&token, "\n").unwrap();
        assert!(bearer(&cfg).unwrap_err().contains("is empty"));
        std::fs::write(&token, "s3cr3t\u{7f}x").unwrap();
        let e = bearer(&cfg).unwrap_err();
        assert!(!e.contains("s3cr3t"), "the token leaked into {e}");
        std::fs::write(&token, "abc.def\n").unwrap();
        let v = bearer(&cfg).unwrap();
        assert_eq!(v.to_str().unwrap(), "Bearer abc.def");
        assert!(v.is_sensitive());

        let cfg = KubernetesConfig {
            ca_file: Some(token.clone()),
            ..Default::default()
        };
        assert!(tls_connector(&cfg)
            .err()
            .unwrap()
            .contains("no PEM certificate"));
        let cfg = KubernetesConfig {
            ca_file: None,
            ..Default::default()
        };
        assert!(tls_connector(&cfg)
            .err()
            .unwrap()
            .contains("insecure_skip_verify"));
        let cfg = KubernetesConfig {
            ca_file: None,
            insecure_skip_verify: true,
            ..Default::default()
        };
        assert!(tls_connector(&cfg).is_ok());
    }
}
