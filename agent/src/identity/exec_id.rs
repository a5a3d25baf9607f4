//! `exec_id`: one id per exec, unique across PID reuse, reboots and nodes.
//!
//! The id hashes the boot id, the process id and a kernel timestamp of the
//! exec (or of the process start, for forks and for processes found at
//! start-up). Two programs that end up with the same PID differ in the
//! timestamp; two nodes differ in the boot id.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::clock::boot_id;

#[derive(Debug, Clone, Copy)]
pub enum Origin {
    /// Seen by the exec probe; the timestamp is when the probe ran.
    Exec,
    /// A fork that has not exec'd; the timestamp is the child's start time.
    Fork,
    /// Found in /proc at start-up; the timestamp is the start time in clock ticks.
    Scan,
}

pub fn exec_id(origin: Origin, pid: u32, time: u64) -> Arc<str> {
    let tag: &[u8] = match origin {
        Origin::Exec => b"exec",
        Origin::Fork => b"fork",
        Origin::Scan => b"scan",
    };
    let mut h = Sha256::new();
    h.update(boot_id().as_bytes());
    h.update(tag);
    h.update(pid.to_le_bytes());
    h.update(time.to_le_bytes());
    hex::encode(&h.finalize()[..16]).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differs_by_time_pid_and_origin() {
        let a = exec_id(Origin::Exec, 42, 1000);
        assert_eq!(a.len(), 32);
        assert_eq!(a, exec_id(Origin::Exec, 42, 1000));
        assert_ne!(a, exec_id(Origin::Exec, 42, 1001));
        assert_ne!(a, exec_id(Origin::Exec, 43, 1000));
        assert_ne!(a, exec_id(Origin::Fork, 42, 1000));
    }
}
