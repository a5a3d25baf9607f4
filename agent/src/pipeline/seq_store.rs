//! The per-node event sequence number, kept in `state_dir/seq` so that it
//! continues across restarts and a seq never names two events on a node.
//!
//! Numbers are reserved from the file in blocks (one write per block, under
//! flock, so agents sharing a state dir get disjoint blocks); at a clean stop
//! the unused rest of the block is handed back when nobody reserved after us.
//! A crash leaves a gap, never a repeat.

use std::{
    fs::{File, OpenOptions},
    io::{Read, Seek, SeekFrom, Write},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

use crate::private_files;

const BLOCK: u64 = 1 << 16;

pub struct SeqStore {
    path: PathBuf,
    /// The last seq handed out.
    last: u64,
    /// The end of the reserved block (inclusive).
    reserved: u64,
}

struct Locked(File);

impl Locked {
    fn open(path: &Path) -> Result<Self> {
        let f = private_files::open_private(
            path,
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false),
        )
        .with_context(|| format!("cannot open the sequence file {}", path.display()))?;
        // SAFETY: flock on an fd we own; released when the file closes.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("cannot lock {}", path.display()));
        }
        Ok(Self(f))
    }

    fn read(&mut self) -> Result<u64> {
        let mut s = String::new();
        self.0.seek(SeekFrom::Start(0))?;
        self.0.read_to_string(&mut s)?;
        Ok(s.trim().parse().unwrap_or(0))
    }

    fn write(&mut self, v: u64) -> Result<()> {
        self.0.set_len(0)?;
        self.0.seek(SeekFrom::Start(0))?;
        self.0.write_all(format!("{v}\n").as_bytes())?;
        Ok(())
    }
}

impl SeqStore {
    pub fn open(state_dir: &Path) -> Result<Self> {
        // The first thing to touch state_dir: it creates it 0700 or tightens it.
        private_files::private_dir(state_dir).with_context(|| {
            format!(
                "cannot create state_dir {} or make it mode 0700; run the agent as the \
                 directory's owner, or point state_dir elsewhere",
                state_dir.display()
            )
        })?;
        let path = state_dir.join("seq");
        let mut s = Self {
            path,
            last: 0,
            reserved: 0,
        };
        s.reserve()?;
        Ok(s)
    }

    fn reserve(&mut self) -> Result<()> {
        let mut f = Locked::open(&self.path)?;
        let stored = f.read()?;
        let start = stored.max(self.last);
        f.write(start + BLOCK)?;
        self.last = start;
        self.reserved = start + BLOCK;
        Ok(())
    }

    /// The next seq.
    pub fn take(&mut self) -> u64 {
        if self.last >= self.reserved {
            if let Err(e) = self.reserve() {
                // Unique within this run still; a restart could repeat
                // numbers past the last reservation, so say so.
                tracing::error!("cannot reserve more sequence numbers: {e:#}");
                self.reserved = self.last + BLOCK;
            }
        }
        self.last += 1;
        self.last
    }

    /// Gives the unused rest of the block back when nobody reserved after us.
    pub fn close(&self) {
        let r = Locked::open(&self.path).and_then(|mut f| {
            if f.read()? == self.reserved {
                f.write(self.last)?;
            }
            Ok(())
        });
        if let Err(e) = r {
            tracing::warn!("sequence file not updated at stop: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continues_across_restarts_and_never_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = SeqStore::open(dir.path()).unwrap();
        assert_eq!((a.take(), a.take()), (1, 2));
        // A second agent on the same state dir gets a disjoint block.
        let mut b = SeqStore::open(dir.path()).unwrap();
        assert_eq!(b.take(), BLOCK + 1);
        a.close();
        b.close();
        let mut c = SeqStore::open(dir.path()).unwrap();
        assert_eq!(c.take(), BLOCK + 2);
        for _ in 0..BLOCK + 4 {
            c.take();
        }
        assert_eq!(c.take(), 2 * BLOCK + 7);
        c.close();
        assert_eq!(SeqStore::open(dir.path()).unwrap().take(), 2 * BLOCK + 8);
    }
}
