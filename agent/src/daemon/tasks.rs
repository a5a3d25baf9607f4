//! The tasks that run beside the reader loop (emitter, probe log, pod
//! poller, API server): starting them, and stopping them.

use std::os::fd::AsRawFd;

use anyhow::Result;
use tokio::{io::unix::AsyncFd, sync::oneshot, task::JoinHandle};

use super::Agent;
use crate::{
    api::{ApiHandles, ApiServer},
    pipeline::{emitter::Emitter, rate_limit::RateLimiter},
};

/// The reader loop's helpers, started by [`Agent::spawn_tasks`].
pub(super) struct Tasks {
    emitter: JoinHandle<()>,
    probe_log: Option<JoinHandle<()>>,
    pod_poll: Option<JoinHandle<()>>,
}

impl Agent {
    /// Starts the emitter, the probe log reader and the pod poller. Runs once.
    pub(super) fn spawn_tasks(&mut self) -> Tasks {
        let emitter = Emitter {
            node: self.node.clone(),
            sinks: self.sinks.clone(),
            counters: self.emit_counters.clone(),
            subscribers: self.subscribers.clone(),
            metrics: self.metrics.clone(),
            seq: self.seq.take().expect("run once"),
            limiter: RateLimiter::new(self.cfg.rate_limit.clone()),
            shutdown_grace: self.cfg.shutdown_grace,
        };
        Tasks {
            emitter: tokio::spawn(emitter.run(self.rx.take().expect("run once"))),
            probe_log: self.probes.logger.take().map(spawn_probe_log),
            pod_poll: self.pod_source.spawn_poll(),
        }
    }
}

impl Tasks {
    /// Waits for the emitter to deliver what it holds (its input must be
    /// closed first), then stops the rest.
    pub async fn finish(self) {
        self.emitter.await.ok();
        for t in [self.probe_log, self.pod_poll].into_iter().flatten() {
            t.abort();
        }
    }
}

/// The API server, serving until [`ApiTask::stop`].
pub(super) struct ApiTask {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<()>>,
}

impl ApiTask {
    pub fn spawn(server: ApiServer, handles: ApiHandles) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(handles, async move {
            let _ = stopped.await;
        }));
        ApiTask { stop, task }
    }

    /// Ends open streams, removes the socket and waits for the server.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("api: {e:#}"),
            Err(e) => tracing::warn!("api task: {e}"),
        }
    }
}

fn spawn_probe_log(logger: aya_log::EbpfLogger<&'static dyn log::Log>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let Ok(mut fd) = watch_fd(logger) else {
            return;
        };
        loop {
            let Ok(mut guard) = fd.readable_mut().await else {
                return;
            };
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    })
}

/// Registers a map fd with the tokio reactor.
pub(super) fn watch_fd<T: AsRawFd>(inner: T) -> std::io::Result<AsyncFd<T>> {
    // SAFETY: `inner` (an aya map) owns its fd and keeps it open, unchanged,
    // for as long as it lives, and the AsyncFd owns `inner`.
    Ok(unsafe { AsyncFd::register(inner) }?)
}
