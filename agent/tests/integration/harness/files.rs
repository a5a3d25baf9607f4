//! What the tests know about a file without asking the agent: its sha256,
//! inode and device, and its real path, to compare with what events say.

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

pub fn sha256_file(p: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
}

pub fn ino_dev(p: &Path) -> (u64, u64) {
    let m = std::fs::metadata(p).unwrap();
    (m.ino(), m.dev())
}

pub fn resolve(p: &str) -> PathBuf {
    std::fs::canonicalize(p).unwrap()
}

/// A tmpfs of this test run's own, mounted on a fresh directory in the
/// agent's mount namespace (/dev/shm is skipped as a pseudo filesystem by
/// the catalog scan). A detached reaper unmounts it when this test process
/// has exited, since the fixtures using it live as long as the process.
pub fn own_tmpfs() -> PathBuf {
    let dir = tempfile::tempdir().unwrap().keep();
    let out = std::process::Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=1m,mode=0700",
            "proctor-test-tmpfs",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "mount tmpfs: {out:?}");
    let reaper = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; umount -l '{d}'; rmdir '{d}'",
        pid = std::process::id(),
        d = dir.display()
    );
    // `setsid -f` forks the reaper off and returns at once.
    let started = std::process::Command::new("setsid")
        .args(["-f", "sh", "-c", &reaper])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(started.success(), "tmpfs reaper: {started}");
    dir
}

/// The filesystem type of `p` as statfs(2) names it.
pub fn fs_type(p: &Path) -> String {
    let out = std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(p)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
