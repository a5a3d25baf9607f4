//! Stopping the daemon: the signals that ask for it, and the order in which
//! everything is flushed and detached.

use std::future::Future;

use anyhow::{Context, Result};
use aya::maps::{MapData, RingBuf};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{signal, SignalKind},
};

use super::{tasks::Tasks, Agent};

/// Completes on SIGTERM or SIGINT, with the signal's name.
pub(super) fn stop_signal() -> Result<impl Future<Output = &'static str>> {
    let mut sigterm = signal(SignalKind::terminate()).context("install SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("install SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = sigterm.recv() => "SIGTERM",
            _ = sigint.recv() => "SIGINT",
        }
    })
}

impl Agent {
    /// Handles what the kernel still holds, reports `stopped`, lets the
    /// emitter deliver everything, then detaches the probes.
    pub(super) async fn shutdown(mut self, mut events: AsyncFd<RingBuf<MapData>>, tasks: Tasks) {
        self.ingest.drain(events.get_mut()).await;
        self.emit_status("stopped").await;
        drop(events);
        let Agent { probes, ingest, .. } = self;
        // The emitter ends when its input closes.
        drop(ingest.tx);
        tasks.finish().await;
        // Dropping the Ebpf object closes every program and link fd: nothing stays in the kernel.
        drop(probes);
    }
}
