//! The kubelet's `/pods` endpoint as a pod metadata source: fetched every
//! `refresh_interval`, and sooner (at most every `min_refresh_interval`)
//! when a lookup meets a pod or container the cache does not know yet.

use std::{sync::Arc, time::Instant};

use reqwest::header::{HeaderValue, AUTHORIZATION};

use super::{podlist, KubernetesConfig, PodCache, SourceStats};

/// Larger answers are refused rather than buffered without bound (a
/// 110-pod node answers a few MiB).
const MAX_BODY_BYTES: usize = 64 << 20;

/// The stats a kubelet source starts with.
pub fn initial_stats(url: &str) -> SourceStats {
    SourceStats {
        source: "kubelet",
        state: "starting",
        url: Some(url.to_string()),
        ..Default::default()
    }
}

/// An error and its causes on one line (reqwest's own message names only
/// the outermost layer).
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

fn client(cfg: &KubernetesConfig) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .timeout(cfg.timeout)
        .connect_timeout(cfg.timeout)
        .tls_built_in_root_certs(false);
    if cfg.insecure_skip_verify {
        b = b.danger_accept_invalid_certs(true);
    } else if let Some(ca) = &cfg.ca_file {
        let pem = std::fs::read(ca).map_err(|e| {
            format!(
                "cannot read kubernetes.ca_file {}: {e}; point it at the CA that signed the \
                 kubelet's serving certificate, or set insecure_skip_verify: true",
                ca.display()
            )
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("kubernetes.ca_file {}: {}", ca.display(), chain(&e)))?;
        if certs.is_empty() {
            return Err(format!(
                "kubernetes.ca_file {} holds no PEM certificate",
                ca.display()
            ));
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    } else {
        return Err(
            "kubernetes.ca_file is null and insecure_skip_verify is false: no way to check \
             the kubelet's certificate; set one of them"
                .into(),
        );
    }
    b.build()
        .map_err(|e| format!("cannot build the HTTPS client: {}", chain(&e)))
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
    client_slot: &mut Option<reqwest::Client>,
) -> Result<podlist::PodList, String> {
    if client_slot.is_none() {
        *client_slot = Some(client(cfg)?);
    }
    let client = client_slot.as_ref().expect("set above");
    let auth = bearer(cfg)?;
    let mut resp = client
        .get(url)
        .header(AUTHORIZATION, auth)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {}", chain(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        let hint = match status.as_u16() {
            401 => "; the kubelet refused the token (is it a service-account token of this cluster?)",
            403 => "; the service account may not read the kubelet's pods (RBAC: get on nodes/pods, or nodes/proxy before Kubernetes 1.33)",
            _ => "",
        };
        return Err(format!("GET {url}: HTTP {status}{hint}"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("GET {url}: reading the answer: {}", chain(&e)))?
    {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(format!(
                "GET {url}: the answer is larger than {MAX_BODY_BYTES} bytes; refused"
            ));
        }
        body.extend_from_slice(&chunk);
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
    let mut client = None;
    loop {
        let r = fetch(&cfg, &url, &mut client).await;
        if r.is_err() {
            // Rebuilt on the next try: the CA file may have been fixed.
            client = None;
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
