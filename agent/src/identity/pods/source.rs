//! Where pod lists come from: the kubelet's `/pods` endpoint, or the API
//! server's pod list restricted to this node (`fieldSelector
//! spec.nodeName=NODE`); both answer a `v1.PodList`. Fetched every
//! `refresh_interval`, and sooner (at most every `min_refresh_interval`)
//! when a lookup meets a pod or container the cache does not know yet.

use std::{sync::Arc, time::Instant};

use hyper::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION};

use super::{config::Source, podlist, KubernetesConfig, PodCache, SourceStats};
use crate::{
    net::http_client::{HttpClient, Options},
    net::tls_client::{client_config, ClientTls},
};

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

fn tls_config(cfg: &KubernetesConfig) -> Result<Arc<rustls::ClientConfig>, String> {
    if cfg.ca_file.is_none() && !cfg.insecure_skip_verify {
        return Err(
            "kubernetes.ca_file is null and insecure_skip_verify is false: no way to check \
             the kubelet's certificate; set one of them"
                .into(),
        );
    }
    client_config(&ClientTls {
        section: "kubernetes",
        ca_file: cfg.ca_file.as_deref(),
        insecure_skip_verify: cfg.insecure_skip_verify,
        ..Default::default()
    })
    .map_err(|e| format!("{e:#}; or set kubernetes.insecure_skip_verify: true"))
}

/// The client for the pod list URL.
fn client(cfg: &KubernetesConfig, url: &str) -> Result<HttpClient, String> {
    let key = match cfg.source {
        Source::Kubelet => "kubernetes.kubelet_url",
        Source::ApiServer => "kubernetes.api_server_url",
    };
    let opts = Options {
        key,
        timeout: cfg.timeout,
        max_body: MAX_BODY_BYTES,
        server_name: None,
    };
    HttpClient::new(url, opts, || tls_config(cfg).map_err(anyhow::Error::msg))
        .map_err(|e| format!("{e:#}"))
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

/// One GET of the pod list.
async fn fetch(
    cfg: &KubernetesConfig,
    url: &str,
    http: &mut Option<HttpClient>,
) -> Result<podlist::PodList, String> {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    headers.insert(AUTHORIZATION, bearer(cfg)?);
    let http = match http {
        Some(c) => c,
        None => http.insert(client(cfg, url)?),
    };
    let resp = http.get(headers).await.map_err(|e| format!("{e:#}"))?;
    let (status, body) = (resp.status.as_u16(), resp.body);
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
    let mut http = None;
    loop {
        let r = fetch(&cfg, &url, &mut http).await;
        if r.is_err() {
            // Rebuilt on the next try: the CA file may have been fixed.
            http = None;
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
        let kubelet = KubernetesConfig::default();
        let e = client(&kubelet, "ftp://h/pods").err().unwrap();
        assert!(
            e.contains("scheme") && e.contains("kubernetes.kubelet_url"),
            "{e}"
        );
        assert!(client(&kubelet, "not a url")
            .err()
            .unwrap()
            .contains("kubelet_url"));
        assert!(client(&kubelet, "http://127.0.0.1:10255/pods").is_ok());

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
        assert!(tls_config(&cfg)
            .err()
            .unwrap()
            .contains("no PEM certificate"));
        let cfg = KubernetesConfig {
            ca_file: None,
            ..Default::default()
        };
        assert!(tls_config(&cfg)
            .err()
            .unwrap()
            .contains("insecure_skip_verify"));
        let cfg = KubernetesConfig {
            ca_file: None,
            insecure_skip_verify: true,
            ..Default::default()
        };
        assert!(tls_config(&cfg).is_ok());
    }
}
