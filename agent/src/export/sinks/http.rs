//! HTTP sinks: Splunk HTTP Event Collector and OTLP/HTTP logs (JSON).
//!
//! Both confirm a batch with their answer: HEC with `{"code":0}`, OTLP with
//! 200. An answer that says the data itself is bad (400) will not get better
//! by retrying: that batch is counted as dropped and logged, and delivery
//! moves on. Everything else (refused, 5xx, 429, 401/403 while a token is
//! being fixed) is retried with backoff.

use std::io::Write;

use anyhow::{anyhow, Context, Result};
use flate2::{write::GzEncoder, Compression};
use hyper::{header, StatusCode};
use serde_json::{json, Value};

use super::{
    config::{client_tls, SinkConfig},
    spool::Record,
    worker::{Destination, Failure},
};
use crate::{
    event::{PRODUCT, PRODUCT_VERSION},
    net::http_client::{HttpClient, Options},
};

/// HEC and OTLP answer with a short JSON status; anything bigger is not one.
const MAX_ANSWER_BYTES: usize = 1 << 20;

fn client(cfg: &SinkConfig) -> Result<HttpClient> {
    let url = cfg.url.as_deref().context("http sink without url")?;
    HttpClient::new(
        url,
        Options {
            key: "url",
            timeout: cfg.timeout(),
            max_body: MAX_ANSWER_BYTES,
            server_name: cfg.tls.as_ref().and_then(|t| t.server_name.as_deref()),
        },
        || client_tls(cfg.tls.as_ref()),
    )
}

fn gzip(body: &[u8]) -> Result<Vec<u8>> {
    let mut e = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
    e.write_all(body)?;
    Ok(e.finish()?)
}

/// Sends one request; `Ok(body)` on a 2xx answer.
async fn post(
    client: &mut HttpClient,
    mut headers: header::HeaderMap,
    body: Vec<u8>,
    gzipped: bool,
) -> Result<(StatusCode, Value), Failure> {
    let body = if gzipped {
        gzip(&body).map_err(Failure::none)?
    } else {
        body
    };
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    if gzipped {
        headers.insert(
            header::CONTENT_ENCODING,
            header::HeaderValue::from_static("gzip"),
        );
    }
    let resp = client.post(headers, body).await.map_err(Failure::none)?;
    let url = client.url();
    let status = resp.status;
    let value = serde_json::from_slice(&resp.body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&resp.body).into_owned()));
    if status == StatusCode::BAD_REQUEST {
        return Err(Failure::none(anyhow!(
            "POST {url}: 400, the receiver rejected the data: {value}"
        ))
        .rejected());
    }
    if !status.is_success() {
        return Err(Failure::none(anyhow!("POST {url}: {status}: {value}")));
    }
    Ok((status, value))
}

pub struct Hec {
    client: HttpClient,
    auth: header::HeaderValue,
    batch: usize,
    gzip: bool,
}

impl Hec {
    pub fn new(cfg: &SinkConfig) -> Result<Self> {
        let token = match (&cfg.token, &cfg.token_file) {
            (Some(t), _) => t.trim().to_string(),
            (None, Some(f)) => std::fs::read_to_string(f)
                .with_context(|| format!("cannot read HEC token_file {}", f.display()))?
                .trim()
                .to_string(),
            (None, None) => anyhow::bail!("a HEC sink needs `token` or `token_file`"),
        };
        let mut auth = header::HeaderValue::from_str(&format!("Splunk {token}"))
            .map_err(|_| anyhow!("the HEC token has characters a header cannot carry"))?;
        auth.set_sensitive(true);
        Ok(Self {
            client: client(cfg)?,
            auth,
            batch: cfg.batch_events(),
            gzip: cfg.gzip(),
        })
    }
}

impl Destination for Hec {
    fn max_batch(&self) -> usize {
        self.batch
    }

    async fn send(&mut self, batch: &[Record]) -> Result<(), Failure> {
        // HEC takes events as concatenated JSON objects; one per line.
        let mut body = Vec::new();
        for r in batch {
            body.extend_from_slice(&r.bytes);
            body.push(b'\n');
        }
        let mut h = header::HeaderMap::new();
        h.insert(header::AUTHORIZATION, self.auth.clone());
        let (_, answer) = post(&mut self.client, h, body, self.gzip).await?;
        match answer.get("code").and_then(Value::as_i64) {
            Some(0) => Ok(()),
            _ => Err(Failure::none(anyhow!(
                "POST {}: HEC did not confirm the batch: {answer}",
                self.client.url()
            ))),
        }
    }
}

pub struct Otlp {
    client: HttpClient,
    headers: header::HeaderMap,
    resource: String,
    batch: usize,
    gzip: bool,
}

impl Otlp {
    pub fn new(cfg: &SinkConfig, node: &str) -> Result<Self> {
        let mut headers = header::HeaderMap::new();
        for (k, v) in cfg.headers.iter().flatten() {
            let name = header::HeaderName::from_bytes(k.as_bytes())
                .with_context(|| format!("headers: {k:?} is not an HTTP header name"))?;
            let mut value = header::HeaderValue::from_str(v)
                .map_err(|_| anyhow!("headers: the value of {k:?} cannot be sent in a header"))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let resource = json!({
            "attributes": [
                {"key": "host.name", "value": {"stringValue": node}},
                {"key": "service.name", "value": {"stringValue": PRODUCT}},
                {"key": "service.version", "value": {"stringValue": PRODUCT_VERSION}},
            ]
        })
        .to_string();
        Ok(Self {
            client: client(cfg)?,
            headers,
            resource,
            batch: cfg.batch_events(),
            gzip: cfg.gzip(),
        })
    }
}

impl Destination for Otlp {
    fn max_batch(&self) -> usize {
        self.batch
    }

    async fn send(&mut self, batch: &[Record]) -> Result<(), Failure> {
        let mut body = format!(
            r#"{{"resourceLogs":[{{"resource":{},"scopeLogs":[{{"scope":{{"name":"{PRODUCT}","version":"{PRODUCT_VERSION}"}},"logRecords":["#,
            self.resource
        )
        .into_bytes();
        for (i, r) in batch.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&r.bytes);
        }
        body.extend_from_slice(b"]}]}]}");
        let (_, answer) = post(&mut self.client, self.headers.clone(), body, self.gzip).await?;
        let rejected = answer["partialSuccess"]["rejectedLogRecords"]
            .as_u64()
            .or_else(|| {
                answer["partialSuccess"]["rejectedLogRecords"]
                    .as_str()?
                    .parse()
                    .ok()
            })
            .unwrap_or(0);
        if rejected > 0 {
            return Err(Failure::none(anyhow!(
                "POST {}: the collector rejected {rejected} of {} log records: {}",
                self.client.url(),
                batch.len(),
                answer["partialSuccess"]["errorMessage"]
            ))
            .partly_rejected(batch.len() - rejected.min(batch.len() as u64) as usize));
        }
        Ok(())
    }
}
