//! Processes that were running before the agent: found in /proc at start-up
//! and marked `attestation: procfs-scan`, because no probe saw their exec.

use std::{os::unix::fs::MetadataExt, path::PathBuf, sync::Arc};

use procfs::process::Process as ProcProcess;

use crate::{
    clock::{tick_ns, to_epoch_ns},
    event::{Attestation, Cgroup, Exe, Process},
    identity::cgroups::CgroupResolver,
    identity::exec_id::{exec_id, Origin},
    identity::hash_cache::{FileKey, HashCache, Source},
    identity::host_path::{self, PathNamespace},
    identity::snapshot::Snapshot,
    redact::redact_args,
};

/// A process found in /proc, before it is placed in the table.
pub struct Scanned {
    pub snapshot: Snapshot,
    pub start_boottime_ns: u64,
}

impl Scanned {
    /// The table record of a process found in /proc: its start time is known
    /// to clock-tick precision only. `announced`: whether consumers were told
    /// about it (start-up scan) or it was only looked up (a reader nobody
    /// saw exec).
    pub fn into_record(self, announced: bool) -> crate::identity::process_table::Record {
        crate::identity::process_table::Record {
            snapshot: self.snapshot,
            start_boottime_ns: self.start_boottime_ns,
            coarse_start: true,
            since_boottime_ns: self.start_boottime_ns,
            announced,
        }
    }
}

/// Reads one process from /proc. `None` when it is gone or is a kernel thread.
pub fn scan_pid(pid: u32, cgroups: &mut CgroupResolver, hashes: &HashCache) -> Option<Scanned> {
    let p = ProcProcess::new(pid as i32).ok()?;
    let stat = p.stat().ok()?;
    let status = p.status().ok()?;
    let proc_exe = PathBuf::from(format!("/proc/{pid}/exe"));
    // Kernel threads have no executable.
    let meta = std::fs::metadata(&proc_exe).ok()?;
    let target = std::fs::read_link(&proc_exe).ok()?;
    let target = target.to_string_lossy();
    let (path, deleted) = match target.strip_suffix(" (deleted)") {
        Some(t) => (t.to_string(), true),
        None => (target.to_string(), false),
    };
    let fileless = deleted && path.starts_with("/memfd:");
    let mut args = p.cmdline().unwrap_or_default();
    let args_redacted = redact_args(&mut args);
    let start_boottime_ns = stat.starttime * tick_ns();
    // The resolver knows where cgroup2 is mounted: no mountinfo read per process.
    let cgroup_id = cgroups.id_of_pid(pid).unwrap_or(0);
    let key = FileKey::of(&meta);
    let exe_hash = hashes.request(key, vec![Source::Path(proc_exe)]);
    let place = (!deleted).then(|| host_path::check(key, &path));
    let cgroup_path = cgroups.path(cgroup_id, pid);
    let workload = cgroups.workload(cgroup_id, cgroup_path.as_deref());
    let process = Process {
        pid,
        ppid: stat.ppid.max(0) as u32,
        exec_id: exec_id(Origin::Scan, pid, stat.starttime),
        parent_exec_id: None,
        start_time_ns: to_epoch_ns(start_boottime_ns),
        uid: status.ruid,
        gid: status.rgid,
        euid: status.euid,
        egid: status.egid,
        comm: stat.comm.clone(),
        args,
        args_truncated: false,
        args_redacted,
        exe: Exe {
            path: if fileless {
                path.trim_start_matches('/').to_string()
            } else {
                path
            },
            sha256: None,
            hash_status: "pending",
            inode: meta.ino(),
            dev: meta.dev(),
            size: meta.size(),
            fileless,
            deleted: deleted && !fileless,
            modified_after_exec: false,
            path_namespace: if deleted {
                PathNamespace::Process.as_str()
            } else {
                host_path::PENDING
            },
        },
        interpreter: None,
        cgroup: Cgroup {
            id: cgroup_id,
            path: cgroup_path,
        },
        container: None,
        pod: None,
        attestation: Attestation::ProcfsScan,
    };
    Some(Scanned {
        snapshot: Snapshot::new(Arc::new(process), Some(exe_hash), None)
            .with_exe_place(place)
            .with_workload(workload),
        start_boottime_ns,
    })
}

/// Every user-space process in /proc right now.
pub fn scan_all(cgroups: &mut CgroupResolver, hashes: &HashCache) -> Vec<Scanned> {
    let Ok(iter) = procfs::process::all_processes() else {
        return Vec::new();
    };
    iter.flatten()
        .filter_map(|p| scan_pid(p.pid() as u32, cgroups, hashes))
        .collect()
}
