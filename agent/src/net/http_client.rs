//! The one HTTP(S) client: hyper's HTTP/1.1 client connection over TCP or
//! tokio-rustls, used by the HEC and OTLP sinks and the pod list fetch.
//!
//! One client talks to one URL and keeps one connection open between
//! requests (a sink posts a batch every few seconds to the same receiver);
//! a connection that failed or that the server closed is replaced by a new
//! one on the next request.

use std::{sync::Arc, time::Duration};

use anyhow::{anyhow, bail, Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::{
    body::Bytes,
    client::conn::http1::SendRequest,
    header::{HeaderMap, HeaderValue, HOST, USER_AGENT},
    Method, Request, StatusCode, Uri,
};
use hyper_util::rt::TokioIo;
use rustls::{pki_types::ServerName, ClientConfig};
use tokio::{net::TcpStream, task::JoinHandle};
use tokio_rustls::TlsConnector;

use crate::event::{PRODUCT, PRODUCT_VERSION};

/// Where a URL points and what to ask for there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// `host[:port]` as written, for the Host header.
    pub authority: String,
    /// Path and query.
    pub path: String,
}

impl Target {
    /// An http:// or https:// URL with a host; the error says what is wrong.
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err("the scheme must be https:// or http://".into()),
        };
        let host = uri.host().filter(|h| !h.is_empty()).ok_or("no host")?;
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
}

/// A status and the whole body.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub body: Bytes,
}

/// How a client reaches its URL.
pub struct Options<'a> {
    /// The config key holding the URL, for errors (`url`, `kubernetes.kubelet_url`).
    pub key: &'a str,
    /// Whole-request limit: connect, TLS handshake, request and answer.
    pub timeout: Duration,
    /// Larger answers are refused rather than buffered without bound.
    pub max_body: usize,
    /// The name the server's certificate must carry; default: the URL's host.
    pub server_name: Option<&'a str>,
}

struct Conn {
    sender: SendRequest<Full<Bytes>>,
    task: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub struct HttpClient {
    url: String,
    target: Target,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    timeout: Duration,
    max_body: usize,
    conn: Option<Conn>,
}

impl HttpClient {
    /// A client for `url`; `tls` builds the TLS settings, asked only for
    /// an https:// URL.
    pub fn new(
        url: &str,
        opts: Options,
        tls: impl FnOnce() -> Result<Arc<ClientConfig>>,
    ) -> Result<Self> {
        let key = opts.key;
        let target = Target::parse(url).map_err(|e| anyhow!("{key} {url:?}: {e}"))?;
        let tls = if target.tls {
            let name = opts.server_name.unwrap_or(&target.host).to_string();
            let server = ServerName::try_from(name.clone())
                .map_err(|e| anyhow!("TLS server name {name:?} for {url}: {e}"))?;
            Some((TlsConnector::from(tls()?), server))
        } else {
            None
        };
        Ok(Self {
            url: url.to_string(),
            target,
            tls,
            timeout: opts.timeout,
            max_body: opts.max_body,
            conn: None,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub async fn get(&mut self, headers: HeaderMap) -> Result<Response> {
        self.request(Method::GET, headers, Bytes::new()).await
    }

    pub async fn post(&mut self, headers: HeaderMap, body: Vec<u8>) -> Result<Response> {
        self.request(Method::POST, headers, Bytes::from(body)).await
    }

    /// One request and its whole answer, whatever the status; errors name
    /// the method, the URL and the cause. An empty body is sent as none
    /// (`Full` of nothing ends at once, like `Empty`).
    pub async fn request(
        &mut self,
        method: Method,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response> {
        let what = format!("{method} {}", self.url);
        match tokio::time::timeout(self.timeout, self.exchange(method, headers, body)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.conn = None;
                Err(anyhow!("{what}: {e:#}"))
            }
            Err(_) => {
                self.conn = None;
                Err(anyhow!(
                    "{what}: no answer within {}",
                    humantime::format_duration(self.timeout)
                ))
            }
        }
    }

    async fn exchange(
        &mut self,
        method: Method,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response> {
        let user_agent = HeaderValue::from_str(&format!("{PRODUCT}/{PRODUCT_VERSION}"))
            .context("User-Agent header")?;
        headers.insert(
            HOST,
            HeaderValue::from_str(&self.target.authority).context("Host header")?,
        );
        headers
            .entry(USER_AGENT)
            .or_insert_with(|| user_agent.clone());
        let mut req = Request::builder()
            .method(method)
            .uri(self.target.path.as_str())
            .body(Full::new(body))
            .context("request")?;
        *req.headers_mut() = headers;
        let mut conn = match self.conn.take() {
            Some(c) if !c.sender.is_closed() => c,
            _ => self.connect().await?,
        };
        let resp = match conn.sender.try_send_request(req).await {
            Ok(r) => r,
            // The kept connection went away before the request left: once
            // more on a new one.
            Err(mut e) => match e.take_message() {
                Some(req) => {
                    conn = self.connect().await?;
                    conn.sender.send_request(req).await?
                }
                None => return Err(e.into_error().into()),
            },
        };
        let status = resp.status();
        let mut body = resp.into_body();
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.context("reading the answer")?;
            if let Some(chunk) = frame.data_ref() {
                if out.len() + chunk.len() > self.max_body {
                    bail!("the answer is larger than {} bytes; refused", self.max_body);
                }
                out.extend_from_slice(chunk);
            }
        }
        self.conn = Some(conn);
        Ok(Response {
            status,
            body: out.into(),
        })
    }

    async fn connect(&self) -> Result<Conn> {
        let t = &self.target;
        let tcp = TcpStream::connect((t.host.as_str(), t.port))
            .await
            .with_context(|| format!("connect to {}:{}", t.host, t.port))?;
        tcp.set_nodelay(true)?;
        let (sender, task) = match &self.tls {
            Some((connector, name)) => {
                let stream = connector
                    .connect(name.clone(), tcp)
                    .await
                    .context("TLS handshake")?;
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                (sender, tokio::spawn(async move { drop(conn.await) }))
            }
            None => {
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
                (sender, tokio::spawn(async move { drop(conn.await) }))
            }
        };
        Ok(Conn { sender, task })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = Target::parse("https://10.1.2.3:10250/pods").unwrap();
        assert!(t.tls);
        assert_eq!((t.host.as_str(), t.port), ("10.1.2.3", 10250));
        assert_eq!(t.path, "/pods");
        assert_eq!(t.authority, "10.1.2.3:10250");
        let t = Target::parse("http://[::1]/pods?x=1").unwrap();
        assert!(!t.tls);
        assert_eq!((t.host.as_str(), t.port), ("::1", 80));
        assert_eq!(t.path, "/pods?x=1");
        let t = Target::parse("https://splunk.example").unwrap();
        assert_eq!((t.port, t.path.as_str()), (443, "/"));
        assert!(Target::parse("ftp://h/pods")
            .unwrap_err()
            .contains("scheme"));
        assert!(Target::parse("collector:4318/v1/logs").is_err());
        assert!(Target::parse("not a url")
            .unwrap_err()
            .contains("not a URL"));
    }
}
