//! `proctor.v1.Events`: the JSON event contract, one message per event,
//! filtered by kind and (for findings) severity on the server.
//!
//! The server keeps the most recent events in memory so that `proctor
//! events` without `--follow` has something to show. A live subscriber that
//! falls behind the agent's event broadcast is ended with DATA_LOSS naming
//! the number of events it lost: never a silent gap.

use std::{pin::Pin, sync::Arc};

use tokio::sync::{
    broadcast::{self, error::RecvError},
    mpsc, watch,
};
use tokio_stream::{wrappers::ReceiverStream, Stream};
use tonic::{Request, Response, Status};

use crate::{
    api::pb::{events_server, EventJson, StreamRequest},
    event::Severity,
    event::{Event, Kind},
    pipeline::feed::Feed,
};

/// Which events a subscriber wants.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Empty: all kinds.
    pub kinds: Vec<Kind>,
    /// Findings below this are dropped; other kinds are not affected.
    pub min_severity: Option<Severity>,
}

pub const KIND_NAMES: [(&str, Kind); 7] = [
    ("process_exec", Kind::ProcessExec),
    ("process_exit", Kind::ProcessExit),
    ("file_open", Kind::FileOpen),
    ("net_connect", Kind::NetConnect),
    ("finding", Kind::Finding),
    ("agent_status", Kind::AgentStatus),
    ("process_hash", Kind::ProcessHash),
];

const SEVERITIES: [(&str, Severity); 5] = [
    ("info", Severity::Info),
    ("low", Severity::Low),
    ("medium", Severity::Medium),
    ("high", Severity::High),
    ("critical", Severity::Critical),
];

impl Filter {
    /// From the request's strings; unknown names are INVALID_ARGUMENT.
    pub fn parse(kinds: &[String], min_severity: &str) -> Result<Self, Status> {
        fn names<T>(list: &[(&str, T)]) -> String {
            list.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
        }
        let mut out = Filter::default();
        for k in kinds {
            let Some((_, kind)) = KIND_NAMES.iter().find(|(n, _)| n == k) else {
                return Err(Status::invalid_argument(format!(
                    "unknown event kind {k:?}; kinds are: {}",
                    names(&KIND_NAMES)
                )));
            };
            if !out.kinds.contains(kind) {
                out.kinds.push(*kind);
            }
        }
        if !min_severity.is_empty() {
            let Some((_, s)) = SEVERITIES
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(min_severity))
            else {
                return Err(Status::invalid_argument(format!(
                    "unknown severity {min_severity:?}; severities are: {}",
                    names(&SEVERITIES)
                )));
            };
            out.min_severity = Some(*s);
        }
        Ok(out)
    }

    pub fn keeps(&self, ev: &Event) -> bool {
        if !self.kinds.is_empty() && !self.kinds.contains(&ev.kind) {
            return false;
        }
        match (&ev.finding, self.min_severity) {
            (Some(f), Some(min)) => f.severity >= min,
            _ => true,
        }
    }
}

/// The Events service.
#[derive(Clone)]
pub struct EventsService {
    pub events: Feed,
    pub shutdown: watch::Receiver<bool>,
}

fn to_json(ev: &Event) -> Result<EventJson, Status> {
    serde_json::to_string(ev)
        .map(|json| EventJson { json })
        .map_err(|e| Status::internal(format!("cannot serialize event {}: {e}", ev.seq)))
}

type Tx = mpsc::Sender<Result<EventJson, Status>>;

async fn follow(
    tx: Tx,
    mut rx: broadcast::Receiver<Arc<Event>>,
    filter: Filter,
    after_seq: Option<u64>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last_seen = after_seq;
    loop {
        let msg = tokio::select! {
            _ = tx.closed() => return,
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() {
                    Err(Status::unavailable("the agent is shutting down"))
                } else {
                    continue;
                }
            }
            r = rx.recv() => match r {
                Ok(ev) => {
                    last_seen = Some(ev.seq);
                    if after_seq.is_some_and(|s| ev.seq <= s) || !filter.keeps(&ev) {
                        continue;
                    }
                    to_json(&ev)
                }
                // The stream ends here: what was skipped plus what is still
                // queued (and will not be sent) is lost.
                Err(RecvError::Lagged(n)) => Err(Status::data_loss(format!(
                    "this subscriber fell behind the agent and lost {} events{}; the stream \
                     ends here: reconnect, and read faster or filter more (--kind)",
                    n + rx.len() as u64,
                    last_seen.map(|s| format!(" after seq {s}")).unwrap_or_default(),
                ))),
                Err(RecvError::Closed) => Err(Status::unavailable("the agent stopped")),
            },
        };
        let end = msg.is_err();
        if tx.send(msg).await.is_err() || end {
            return;
        }
    }
}

impl EventsService {
    pub fn stream(
        &self,
        req: StreamRequest,
    ) -> Result<mpsc::Receiver<Result<EventJson, Status>>, Status> {
        let filter = Filter::parse(&req.kinds, &req.min_severity)?;
        // Subscribe before reading the history: an event is in one or the other.
        let live = req.follow.then(|| self.events.subscribe());
        let limit = req.backlog.map_or(usize::MAX, |n| n as usize);
        let (backlog, last_seq) = self.events.recent.snapshot(|e| filter.keeps(e), limit);
        let (tx, rx) = mpsc::channel(256);
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            for ev in backlog {
                if tx.send(to_json(&ev)).await.is_err() {
                    return;
                }
            }
            if let Some(live) = live {
                follow(tx, live, filter, last_seq, shutdown).await;
            }
        });
        Ok(rx)
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<EventJson, Status>> + Send>>;

#[tonic::async_trait]
impl events_server::Events for EventsService {
    type StreamStream = EventStream;

    async fn stream(
        &self,
        request: Request<StreamRequest>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let rx = EventsService::stream(self, request.into_inner())?;
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_parsing() {
        let f = Filter::parse(&["finding".into(), "finding".into()], "HIGH").unwrap();
        assert_eq!(f.kinds, vec![Kind::Finding]);
        assert_eq!(f.min_severity, Some(Severity::High));
        let e = Filter::parse(&["process-exec".into()], "").unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("process_exec"), "{}", e.message());
        let e = Filter::parse(&[], "severe").unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(Filter::parse(&[], "").unwrap().kinds.is_empty());
    }
}
