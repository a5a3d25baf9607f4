//! A file of events (JSON Lines or CEF lines), rotated at a size cap:
//! `<path>` -> `<path>.1` -> ... -> `<path>.<keep>`, the oldest removed.

use std::{
    fs::{DirBuilder, File, OpenOptions, Permissions},
    io::Write,
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

use crate::private_files::{self, FILE_MODE};

use super::{
    config::SinkConfig,
    spool::Record,
    worker::{Destination, Failure},
};

pub struct FileDest {
    path: PathBuf,
    /// 0600, or 0640 when `group` lets a log shipper read the file.
    mode: u32,
    gid: Option<u32>,
    max_bytes: u64,
    keep: usize,
    file: Option<(File, u64)>,
}

/// A sink directory the agent creates: owner-only, or 0750 and owned by the
/// group that reads the files in it. An existing directory (`/var/log`) is
/// not the agent's to change.
fn create_dir(dir: &Path, gid: Option<u32>) -> std::io::Result<()> {
    let Some(gid) = gid else {
        return private_files::private_dir(dir);
    };
    DirBuilder::new().recursive(true).mode(0o750).create(dir)?;
    std::os::unix::fs::chown(dir, None, Some(gid))?;
    // The umask may have narrowed 0750.
    std::fs::set_permissions(dir, Permissions::from_mode(0o750))
}

fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl FileDest {
    pub fn new(cfg: &SinkConfig) -> Result<Self> {
        let path = cfg.path.clone().context("file sink without path")?;
        let gid = cfg.group_id().map_err(anyhow::Error::msg)?;
        if let Some(dir) = path.parent().filter(|d| !d.exists()) {
            create_dir(dir, gid)
                .with_context(|| format!("cannot create directory {}", dir.display()))?;
        }
        let mut f = Self {
            path,
            mode: if gid.is_some() { 0o640 } else { FILE_MODE },
            gid,
            max_bytes: cfg.max_bytes(),
            keep: cfg.keep(),
            file: None,
        };
        // Fail at start-up, not at the first event, when the file cannot be written.
        f.open()?;
        Ok(f)
    }

    fn open(&mut self) -> Result<&mut (File, u64)> {
        if self.file.is_none() {
            let file = private_files::open_with_mode(
                &self.path,
                OpenOptions::new().create(true).append(true),
                self.mode,
                self.gid,
            )
            .with_context(|| format!("cannot open {} for appending", self.path.display()))?;
            let len = file.metadata()?.len();
            self.file = Some((file, len));
        }
        Ok(self.file.as_mut().expect("opened above"))
    }

    fn rotate(&mut self) -> Result<()> {
        self.file = None;
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
            return Ok(());
        }
        let _ = std::fs::remove_file(numbered(&self.path, self.keep));
        for n in (1..self.keep).rev() {
            let from = numbered(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, numbered(&self.path, n + 1))?;
            }
        }
        std::fs::rename(&self.path, numbered(&self.path, 1))
            .with_context(|| format!("cannot rotate {}", self.path.display()))
    }

    fn write(&mut self, batch: &[Record]) -> Result<(), Failure> {
        for (i, r) in batch.iter().enumerate() {
            let fail = |e: anyhow::Error| Failure {
                delivered: i,
                error: e,
                rejected: false,
            };
            let (_, len) = self.open().map_err(fail)?;
            if *len > 0 && *len + r.bytes.len() as u64 > self.max_bytes {
                self.rotate().map_err(fail)?;
            }
            let (f, len) = self.open().map_err(fail)?;
            if let Err(e) = f.write_all(&r.bytes) {
                // A partial line may be on disk; reopen so the next write starts clean.
                self.file = None;
                return Err(fail(e.into()));
            }
            *len += r.bytes.len() as u64;
        }
        Ok(())
    }
}

impl Destination for FileDest {
    fn max_batch(&self) -> usize {
        512
    }

    async fn send(&mut self, batch: &[Record]) -> Result<(), Failure> {
        // Appends land in the page cache: short enough to do in place on
        // the agent's single-threaded runtime, like the spool's writes.
        self.write(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rotates_and_keeps_n() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let cfg: SinkConfig = serde_yaml_ng::from_str(&format!(
            "type: file\npath: {}\nmax_bytes: 4096\nkeep: 2",
            path.display()
        ))
        .unwrap();
        let mut f = FileDest::new(&cfg).unwrap();
        let line = vec![b'x'; 1023]
            .into_iter()
            .chain([b'\n'])
            .collect::<Vec<_>>();
        for seq in 0..20 {
            f.send(&[Record {
                seq,
                bytes: line.clone(),
            }])
            .await
            .unwrap();
        }
        for p in [path.clone(), numbered(&path, 1), numbered(&path, 2)] {
            let len = std::fs::metadata(&p).unwrap().len();
            assert!(len <= 4096 && len % 1024 == 0, "{}: {len}", p.display());
        }
        assert!(!numbered(&path, 3).exists());
    }
}
