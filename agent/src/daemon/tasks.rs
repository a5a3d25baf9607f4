//! The tasks that run beside the reader loop (emitter, probe log, pod
//! poller, API server): starting them under one supervisor, and stopping them.

use std::{future::Future, panic::AssertUnwindSafe, sync::Arc};

use anyhow::Result;
use futures::FutureExt;
use tokio::{sync::oneshot, task::JoinHandle};

use super::Agent;
use crate::{
    api::{ApiHandles, ApiServer},
    export::metrics::Metrics,
    pipeline::{emitter::Emitter, rate_limit::RateLimiter},
};

/// The reader loop's helpers, started by [`Agent::spawn_tasks`].
pub(super) struct Tasks {
    emitter: JoinHandle<Option<()>>,
    probe_log: Option<JoinHandle<Option<()>>>,
    pod_poll: Option<JoinHandle<Option<()>>>,
}

/// Runs task `name`. A panic, or an error it ends with, is an ERROR log, a
/// `proctor_task_failures_total{task}` count and a failing `/healthz`: a
/// dead task never leaves the agent looking healthy. `None` when it failed.
pub(super) fn supervise<T, F>(
    name: &'static str,
    metrics: Arc<Metrics>,
    task: F,
) -> JoinHandle<Option<T>>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    tokio::spawn(async move {
        let why = match AssertUnwindSafe(task).catch_unwind().await {
            Ok(Ok(v)) => return Some(v),
            Ok(Err(e)) => format!("stopped: {e:#}"),
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".into());
                format!("panicked: {msg}")
            }
        };
        tracing::error!("{name} {why}; /healthz fails from now on, restart the agent");
        metrics.task_failed(name, &why);
        None
    })
}

impl Agent {
    /// Starts the emitter, the probe log reader and the pod poller. Runs once.
    pub(super) fn spawn_tasks(&mut self) -> Tasks {
        let emitter = Emitter {
            node: self.node.clone(),
            sinks: self.sinks.clone(),
            counters: self.emit_counters.clone(),
            feed: self.feed.clone(),
            metrics: self.metrics.clone(),
            seq: self.seq.take().expect("run once"),
            limiter: RateLimiter::following(self.rate_limit.subscribe()),
            shutdown_grace: self.cfg.shutdown_grace,
            hash_wait: self.cfg.hash.emit_wait,
            series: Default::default(),
            last_time: Default::default(),
            previous: None,
        };
        let rx = self.rx.take().expect("run once");
        let m = &self.metrics;
        Tasks {
            emitter: supervise("emitter", m.clone(), emitter.run(rx).map(Ok)),
            probe_log: self.probes.logger.take().map(|l| {
                supervise("probe log reader", m.clone(), async move {
                    read_probe_log(l).await;
                    anyhow::bail!("its ring buffer fd failed; eBPF diagnostics are lost")
                })
            }),
            pod_poll: self.pod_source.poll_task().map(|poll| {
                supervise("pod poller", m.clone(), async move {
                    poll.await;
                    anyhow::bail!("it returned; pod metadata is no longer refreshed")
                })
            }),
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
    task: JoinHandle<Option<()>>,
}

impl ApiTask {
    pub fn spawn(server: ApiServer, handles: ApiHandles, metrics: Arc<Metrics>) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = supervise(
            "api server",
            metrics,
            server.run(handles, async move {
                let _ = stopped.await;
            }),
        );
        ApiTask { stop, task }
    }

    /// Ends open streams, removes the socket and waits for the server (whose
    /// failure the supervisor has reported).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Copies the probes' log records to the agent's log until the fd fails.
async fn read_probe_log(logger: aya_log::EbpfLogger<&'static dyn log::Log>) {
    let Ok(mut fd) = crate::kernel::watch_fd(logger) else {
        return;
    };
    loop {
        let Ok(mut guard) = fd.readable_mut().await else {
            return;
        };
        guard.get_inner_mut().flush();
        guard.clear_ready();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_panics_or_stops_is_reported_and_fails_healthz() {
        let m = Metrics::new();
        m.health.set_stall_after(std::time::Duration::from_secs(5));
        let fine = supervise("fine", m.clone(), async { Ok(7) });
        assert_eq!(fine.await.unwrap(), Some(7));
        assert_eq!(m.health.verdict(1), Ok(()));

        let poisoned = Arc::new(std::sync::Mutex::new(0u32));
        let p2 = poisoned.clone();
        let crash = supervise("pod poller", m.clone(), async move {
            let _held = p2.lock().unwrap();
            panic!("boom while holding the lock");
            #[allow(unreachable_code)]
            Ok(())
        });
        assert_eq!(
            crash.await.unwrap(),
            None,
            "the panic is caught, not a hang"
        );
        let err = m.health.verdict(1).unwrap_err();
        assert!(
            err.contains("pod poller: panicked: boom while holding the lock"),
            "{err}"
        );
        // The lock it held is poisoned; its data is still there for the rest.
        assert!(poisoned.is_poisoned());
        assert_eq!(*crate::sync::lock(&poisoned), 0);

        let stopped = supervise("api server", m.clone(), async {
            anyhow::bail!("socket gone")
        });
        assert_eq!(stopped.await.unwrap(), None::<()>);
        let text = m.encode();
        for task in ["pod poller", "api server"] {
            let line = format!("proctor_task_failures_total{{task=\"{task}\"}} 1");
            assert!(text.contains(&line), "{line} missing from:\n{text}");
        }
    }
}
