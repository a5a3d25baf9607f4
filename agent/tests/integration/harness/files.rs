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
