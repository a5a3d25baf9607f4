//! Standard output: the default sink (JSON Lines unless `format` says otherwise).

use std::io::Write;

use super::{
    spool::Record,
    worker::{Destination, Failure},
};

pub struct Stdout {
    /// A batch's records laid end to end, written by one blocking write and
    /// kept for the next batch. (tokio's `Stdout` behind a `BufWriter`
    /// copied every byte twice before the write.)
    batch: Vec<u8>,
}

/// The pipe buffer asked for when standard output is a pipe (a container
/// runtime's log pipe, a shipper started with the agent): the default 64 KiB
/// is a fraction of a second of events at a high rate, and a reader that
/// falls behind for longer fills the sink's queue.
const PIPE_BYTES: libc::c_int = 1 << 20;

impl Stdout {
    pub fn new() -> Self {
        grow_pipe(libc::STDOUT_FILENO);
        Self { batch: Vec::new() }
    }
}

/// Asks for a [`PIPE_BYTES`] buffer if `fd` is a pipe; the kernel may give
/// less (`fs.pipe-max-size`, the user's pipe quota), which only costs
/// smoothing, so a refusal is logged and nothing more.
fn grow_pipe(fd: libc::c_int) {
    // SAFETY: fstat and fcntl on a descriptor number only read or set
    // kernel state; `st` is plain data the call fills.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 || st.st_mode & libc::S_IFMT != libc::S_IFIFO {
            return;
        }
        if libc::fcntl(fd, libc::F_GETPIPE_SZ) >= PIPE_BYTES {
            return;
        }
        if libc::fcntl(fd, libc::F_SETPIPE_SZ, PIPE_BYTES) < 0 {
            tracing::debug!(
                "stdout sink: the pipe buffer stays at its size ({}); a slow reader fills the sink's queue sooner",
                std::io::Error::last_os_error()
            );
        }
    }
}

impl Default for Stdout {
    fn default() -> Self {
        Self::new()
    }
}

impl Destination for Stdout {
    fn max_batch(&self) -> usize {
        1024
    }

    async fn send(&mut self, batch: &[Record]) -> Result<(), Failure> {
        let mut bytes = std::mem::take(&mut self.batch);
        bytes.clear();
        for r in batch {
            bytes.extend_from_slice(&r.bytes);
        }
        // Written means flushed: a reader of the pipe sees the events now.
        // (The records end in newlines, so stdout's line buffer passes the
        // whole batch straight to the write.)
        let (bytes, written) = tokio::task::spawn_blocking(move || {
            let mut out = std::io::stdout().lock();
            let written = out.write_all(&bytes).and_then(|()| out.flush());
            (bytes, written)
        })
        .await
        .map_err(Failure::none)?;
        self.batch = bytes;
        written.map_err(Failure::none)
    }
}
