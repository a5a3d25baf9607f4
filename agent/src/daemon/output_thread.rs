//! The second pipeline thread: the emitter (ordering, numbering, the wait
//! for hashes) and the sinks' workers (encoding, delivery, spools) run here,
//! the ring-buffer reader, the process table and the detections on the
//! main thread. Measured at the drop onset, the main thread was saturated
//! with half of its time in these two stages while the node's other core
//! sat idle; the stages already met only through a channel and the sinks'
//! queues, so splitting there costs one wakeup per batch, not per event.

use std::{thread::JoinHandle, time::Duration};

use anyhow::{Context, Result};
use tokio::{runtime::Handle, sync::oneshot};

/// How long the thread's runtime waits for a sink's blocking call (a file
/// write, a DNS lookup) at shutdown; the emitter has delivered or spooled
/// everything before.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// A thread running its own single-threaded runtime until dropped.
pub struct OutputThread {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl OutputThread {
    pub fn start() -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot build the output thread's runtime")?;
        let handle = rt.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("proctor-output".into())
            .spawn(move || {
                rt.block_on(async {
                    let _ = stopped.await;
                });
                rt.shutdown_timeout(SHUTDOWN_TIMEOUT);
            })
            .context("cannot start the output thread")?;
        Ok(Self {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where tasks of the output stages are spawned.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for OutputThread {
    /// Ends the runtime (whatever still runs there is cancelled: the agent
    /// has waited for the emitter and the sinks by then) and joins it.
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
