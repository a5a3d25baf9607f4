//! A sink's on-disk spool: the overflow of its memory queue while the
//! destination is slow or down, and what survives an agent restart.
//!
//! A directory of segment files named by the sequence number of their first
//! record (20 digits, so names sort in seq order). A record is
//! `seq: u64 LE, len: u32 LE, payload`. Appends go to the newest segment;
//! the sink's worker takes whole segments from the oldest end and deletes
//! each once every record in it was delivered. The delivered high-water mark
//! ([`Spool::delivered`]) is kept in `delivered` beside the segments, so a
//! record delivered before a restart is not sent again after it.
//!
//! The directory is locked (flock) while an agent uses it: two agents
//! sharing a state dir and a sink name would otherwise send each other's
//! events.

use std::{
    fs::{File, OpenOptions},
    io::{Read, Write},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};

use crate::private_files;

/// One encoded event, ready for its destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub bytes: Vec<u8>,
}

const HEADER: u64 = 12;

pub struct Spool {
    dir: PathBuf,
    cap: u64,
    segment_max: u64,
    /// Segments on disk, oldest first: (first seq, bytes).
    segments: std::collections::VecDeque<(u64, u64)>,
    /// The newest segment while it takes appends.
    open: Option<File>,
    /// Bytes on disk, including segments handed to the worker.
    bytes: u64,
    /// Records on disk not yet handed to the worker.
    records: u64,
    delivered: u64,
    _lock: File,
}

impl Spool {
    /// Opens (creating) the spool of one sink; `cap` bounds its bytes.
    pub fn open(dir: &Path, cap: u64) -> Result<Self> {
        for d in dir.parent().into_iter().chain([dir]) {
            private_files::private_dir(d)
                .with_context(|| format!("cannot create spool directory {}", d.display()))?;
        }
        let lock = private_files::open_private(
            &dir.join("lock"),
            OpenOptions::new().write(true).create(true).truncate(true),
        )
        .with_context(|| format!("cannot create {}", dir.join("lock").display()))?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            bail!(
                "spool {} is in use by another proctor agent; give this agent its own \
                 state_dir, or the sink another `name`",
                dir.display()
            );
        }
        let delivered = std::fs::read_to_string(dir.join("delivered"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let mut segments = Vec::new();
        let mut bytes = 0;
        let mut records = 0;
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            // Files an older agent left with its umask's mode.
            if e.file_type()?.is_file() {
                let path = e.path();
                let f =
                    File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
                private_files::restrict(&f, &path, private_files::FILE_MODE, None)
                    .with_context(|| format!("cannot restrict {} to mode 0600", path.display()))?;
            }
            let name = e.file_name();
            let Some(first) = name.to_str().and_then(|n| n.strip_suffix(".seg")) else {
                continue;
            };
            let Ok(first) = first.parse::<u64>() else {
                continue;
            };
            let len = e.metadata()?.len();
            records += count_records(&e.path()).unwrap_or(0);
            bytes += len;
            segments.push((first, len));
        }
        segments.sort();
        Ok(Self {
            dir: dir.to_path_buf(),
            cap,
            segment_max: (cap / 8).clamp(64 << 10, 8 << 20),
            segments: segments.into(),
            open: None,
            bytes,
            records,
            delivered,
            _lock: lock,
        })
    }

    fn path(&self, first: u64) -> PathBuf {
        self.dir.join(format!("{first:020}.seg"))
    }

    /// Whether records wait on disk that the worker has not taken yet.
    pub fn has_records(&self) -> bool {
        self.records > 0
    }

    pub fn records(&self) -> u64 {
        self.records
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends a record; `Ok(false)` when the spool is full (the caller counts
    /// the drop).
    pub fn append(&mut self, r: &Record) -> Result<bool> {
        let len = HEADER + r.bytes.len() as u64;
        if self.bytes + len > self.cap {
            return Ok(false);
        }
        let tail_full = self
            .segments
            .back()
            .is_none_or(|(_, b)| *b + len > self.segment_max);
        if self.open.is_none() || tail_full {
            let path = self.path(r.seq);
            let f =
                private_files::open_private(&path, OpenOptions::new().create(true).append(true))
                    .with_context(|| format!("cannot create spool segment {}", path.display()))?;
            self.open = Some(f);
            self.segments.push_back((r.seq, 0));
        }
        let mut buf = Vec::with_capacity(len as usize);
        buf.extend_from_slice(&r.seq.to_le_bytes());
        buf.extend_from_slice(&(r.bytes.len() as u32).to_le_bytes());
        buf.extend_from_slice(&r.bytes);
        let f = self.open.as_mut().expect("opened above");
        f.write_all(&buf).context("spool write")?;
        if let Some(last) = self.segments.back_mut() {
            last.1 += len;
        }
        self.bytes += len;
        self.records += 1;
        Ok(true)
    }

    /// Writes `records` (older than everything spooled) as a segment of their
    /// own, ignoring the cap: at shutdown, what sat in memory must not be lost.
    pub fn prepend(&mut self, records: &[Record]) -> Result<()> {
        let Some(first) = records.first() else {
            return Ok(());
        };
        let path = self.path(first.seq);
        let mut buf = Vec::new();
        for r in records {
            buf.extend_from_slice(&r.seq.to_le_bytes());
            buf.extend_from_slice(&(r.bytes.len() as u32).to_le_bytes());
            buf.extend_from_slice(&r.bytes);
        }
        private_files::write_private(&path, &buf)
            .with_context(|| format!("cannot write spool segment {}", path.display()))?;
        self.bytes += buf.len() as u64;
        self.records += records.len() as u64;
        let at = self.segments.partition_point(|(s, _)| *s < first.seq);
        self.segments.insert(at, (first.seq, buf.len() as u64));
        Ok(())
    }

    /// Takes the oldest segment's records not yet delivered. The segment
    /// stays on disk until [`Spool::release`].
    pub fn take_oldest(&mut self) -> Result<Option<(u64, Vec<Record>)>> {
        let Some(&(first, _)) = self.segments.front() else {
            return Ok(None);
        };
        if self.segments.len() == 1 {
            // Later appends start a new segment.
            self.open = None;
        }
        let all = read_records(&self.path(first))?;
        self.segments.pop_front();
        self.records = self.records.saturating_sub(all.len() as u64);
        let delivered = self.delivered;
        Ok(Some((
            first,
            all.into_iter().filter(|r| r.seq > delivered).collect(),
        )))
    }

    /// Notes that `seq` (from a spooled segment) was delivered.
    pub fn mark_delivered(&mut self, seq: u64) {
        self.delivered = self.delivered.max(seq);
    }

    /// Deletes a taken segment whose records were all delivered.
    pub fn release(&mut self, first: u64) -> Result<()> {
        self.save_delivered()?;
        let path = self.path(first);
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        std::fs::remove_file(&path)
            .with_context(|| format!("cannot remove spool segment {}", path.display()))?;
        self.bytes = self.bytes.saturating_sub(len);
        Ok(())
    }

    /// Persists the delivered high-water mark (write and rename).
    pub fn save_delivered(&self) -> Result<()> {
        let tmp = self.dir.join("delivered.tmp");
        private_files::write_private(&tmp, format!("{}\n", self.delivered).as_bytes())?;
        std::fs::rename(&tmp, self.dir.join("delivered"))?;
        Ok(())
    }
}

fn read_records(path: &Path) -> Result<Vec<Record>> {
    let mut data = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .with_context(|| format!("cannot read spool segment {}", path.display()))?;
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + HEADER as usize <= data.len() {
        let seq = u64::from_le_bytes(data[at..at + 8].try_into().expect("8 bytes"));
        let len = u32::from_le_bytes(data[at + 8..at + 12].try_into().expect("4 bytes")) as usize;
        let start = at + HEADER as usize;
        if start + len > data.len() {
            // A torn tail (the agent was killed mid-write): the record never
            // completed, so it was never counted as spooled either.
            tracing::warn!(
                "spool segment {} ends in an incomplete record; ignoring its last {} bytes",
                path.display(),
                data.len() - at
            );
            break;
        }
        out.push(Record {
            seq,
            bytes: data[start..start + len].to_vec(),
        });
        at = start + len;
    }
    Ok(out)
}

fn count_records(path: &Path) -> Result<u64> {
    Ok(read_records(path)?.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64) -> Record {
        Record {
            seq,
            bytes: format!("event {seq}").into_bytes(),
        }
    }

    #[test]
    fn survives_reopen_in_order_and_skips_delivered() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
            for seq in 10..20 {
                assert!(s.append(&rec(seq)).unwrap());
            }
            s.prepend(&[rec(5), rec(6)]).unwrap();
            let (first, got) = s.take_oldest().unwrap().unwrap();
            assert_eq!(first, 5);
            assert_eq!(got, vec![rec(5), rec(6)]);
            s.mark_delivered(6);
            s.release(first).unwrap();
            let (_, got) = s.take_oldest().unwrap().unwrap();
            assert_eq!(got.len(), 10);
            // Delivered up to 12, then the agent stops.
            s.mark_delivered(12);
            s.save_delivered().unwrap();
        }
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(s.records(), 10);
        let (_, got) = s.take_oldest().unwrap().unwrap();
        let seqs: Vec<u64> = got.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (13..20).collect::<Vec<_>>());
    }

    #[test]
    fn cap_is_enforced_and_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 100).unwrap();
        let mut n = 0;
        while s.append(&rec(n)).unwrap() {
            n += 1;
        }
        assert!(n > 0 && s.bytes() <= 100, "{n} {}", s.bytes());
        let err = Spool::open(dir.path(), 100).err().unwrap();
        assert!(format!("{err:#}").contains("in use"), "{err:#}");
    }
}
