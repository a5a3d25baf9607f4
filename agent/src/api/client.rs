//! Client side of the API, for `proctor attest`, `proctor events` and tests.
//!
//! Errors from the agent come back as [`CallError`] (inside the
//! `anyhow::Error`, reachable with `downcast_ref`), carrying the gRPC code.

use std::{io::Write, path::Path, pin::Pin};

use anyhow::{Context as _, Result};
use futures::{Stream, StreamExt};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::api::pb::{
    attestation_client::AttestationClient, events_client::EventsClient,
    inventory_client::InventoryClient, AttestRequest, Identity, ListRequest, StreamRequest,
    WatchEvent, WatchRequest,
};

pub use crate::api::selectors::render_identity_text;

/// An error status from the agent.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message} ({code:?})")]
pub struct CallError {
    pub code: tonic::Code,
    pub message: String,
}

impl From<tonic::Status> for CallError {
    fn from(s: tonic::Status) -> Self {
        Self {
            code: s.code(),
            message: s.message().to_string(),
        }
    }
}

fn call_error(s: tonic::Status) -> anyhow::Error {
    anyhow::Error::new(CallError::from(s))
}

/// The gRPC code of an error returned by this module, if the agent sent one.
pub fn code_of(e: &anyhow::Error) -> Option<tonic::Code> {
    e.downcast_ref::<CallError>().map(|c| c.code)
}

/// A channel to the agent's socket. Fails at once (with a hint) when nobody
/// listens there or the caller may not open it.
pub async fn connect(socket: &Path) -> Result<Channel> {
    // Fail early with a clear message (the channel itself would only say "transport error").
    if let Err(e) = UnixStream::connect(socket).await {
        let hint = match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                "is `proctor run` running, with the API enabled (api.enabled) on this socket?"
            }
            std::io::ErrorKind::PermissionDenied => {
                "the socket is for root and the agent's api.group only: run as root, or ask for \
                 api.group (every service) or api.services.<service> (one service)"
            }
            _ => "",
        };
        return Err(anyhow::anyhow!(
            "cannot connect to the proctor agent at {}: {e}{}{hint}",
            socket.display(),
            if hint.is_empty() { "" } else { "; " }
        ));
    }
    let path = socket.to_path_buf();
    // The URI is a placeholder: the connector below always dials the socket.
    Endpoint::try_from("http://proctor.local")?
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
        .with_context(|| {
            format!(
                "cannot connect to the proctor agent at {}",
                socket.display()
            )
        })
}

/// `Attestation.Attest` with every field.
pub async fn attest_request(socket: &Path, req: AttestRequest) -> Result<Identity> {
    let mut c = AttestationClient::new(connect(socket).await?);
    let pid = req.pid;
    let resp = c.attest(req).await.map_err(call_error)?.into_inner();
    resp.identity
        .with_context(|| format!("the agent answered for pid {pid} without an identity"))
}

/// Who `pid` is.
pub async fn attest(socket: &Path, pid: i32) -> Result<Identity> {
    attest_request(
        socket,
        AttestRequest {
            pid,
            ..Default::default()
        },
    )
    .await
}

/// `Attestation.Watch`: CURRENT, then CHANGED on re-exec, EXITED at the end.
pub async fn watch(
    socket: &Path,
    pid: i32,
    exec_id: Option<String>,
) -> Result<Pin<Box<dyn Stream<Item = Result<WatchEvent>> + Send>>> {
    let mut c = AttestationClient::new(connect(socket).await?);
    let s = c
        .watch(WatchRequest { pid, exec_id })
        .await
        .map_err(call_error)?
        .into_inner();
    Ok(Box::pin(s.map(|r| r.map_err(call_error))))
}

/// What to ask `Events.Stream` for.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Event kinds (`process_exec`, `finding`, ...); empty: all.
    pub kinds: Vec<String>,
    /// Findings below this severity are left out (`info` .. `critical`).
    pub min_severity: Option<String>,
    /// Keep streaming live events after the recent ones.
    pub follow: bool,
    /// At most this many recent events first.
    pub backlog: Option<u32>,
}

/// The agent's events, one JSON line (the event contract) per item. Without
/// `follow` it ends after the recent events the agent keeps.
pub async fn stream_events(
    socket: &Path,
    query: EventQuery,
) -> Result<Pin<Box<dyn Stream<Item = Result<String>> + Send>>> {
    let mut c = EventsClient::new(connect(socket).await?);
    let s = c
        .stream(StreamRequest {
            kinds: query.kinds,
            min_severity: query.min_severity.unwrap_or_default(),
            follow: query.follow,
            backlog: query.backlog,
        })
        .await
        .map_err(call_error)?
        .into_inner();
    Ok(Box::pin(s.map(|r| r.map(|e| e.json).map_err(call_error))))
}

/// Writes the events to `out`, one per line, flushing after each. Returns
/// the number written; a closed output (e.g. `| head`) ends it quietly.
pub async fn print_events(socket: &Path, query: EventQuery, mut out: impl Write) -> Result<u64> {
    let mut s = stream_events(socket, query).await?;
    let mut n = 0;
    while let Some(line) = s.next().await {
        let line = line?;
        if let Err(e) = writeln!(out, "{line}").and_then(|_| out.flush()) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                break;
            }
            return Err(e).context("write events");
        }
        n += 1;
    }
    Ok(n)
}

/// The static-secret inventory (a JSON array of items) from the agent.
pub async fn inventory(socket: &Path) -> Result<serde_json::Value> {
    let mut c = InventoryClient::new(connect(socket).await?);
    let json = c
        .list(ListRequest::default())
        .await
        .map_err(call_error)?
        .into_inner()
        .json;
    serde_json::from_str(&json).context("the agent sent an inventory that is not JSON")
}

/// The blast radius of the secrets `secret` names (path, catalog id or
/// fingerprint) from the agent: a JSON array, empty when none matches.
pub async fn blast_radius(socket: &Path, secret: &str) -> Result<serde_json::Value> {
    let mut c = InventoryClient::new(connect(socket).await?);
    let json = c
        .list(ListRequest {
            secret: secret.to_string(),
        })
        .await
        .map_err(call_error)?
        .into_inner()
        .json;
    serde_json::from_str(&json).context("the agent sent a blast radius that is not JSON")
}

/// An identity as JSON (`proctor attest --json`).
pub fn identity_json(id: &Identity) -> serde_json::Value {
    serde_json::to_value(id).unwrap_or(serde_json::Value::Null)
}
