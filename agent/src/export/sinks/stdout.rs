//! Standard output: the default sink (JSON Lines unless `format` says otherwise).

use tokio::io::{AsyncWriteExt, BufWriter};

use super::{
    spool::Record,
    worker::{Destination, Failure},
};

pub struct Stdout {
    out: BufWriter<tokio::io::Stdout>,
}

impl Stdout {
    pub fn new() -> Self {
        Self {
            out: BufWriter::with_capacity(256 * 1024, tokio::io::stdout()),
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
        for r in batch {
            self.out.write_all(&r.bytes).await.map_err(Failure::none)?;
        }
        // Written means flushed: a reader of the pipe sees the events now.
        self.out.flush().await.map_err(Failure::none)
    }
}
