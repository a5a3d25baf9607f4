//! Turns an exec record from the kernel into a process identity: the path
//! and hash of the binary the kernel ran, the script for `#!` files, and the
//! integrity flags (fileless, deleted); whether the path is the host's name
//! for that file is checked off the event loop (`identity::host_path`).
//!
//! The names in an exec record are the exec'ing process's, and may be
//! hostile: a script path can be retargeted to a FIFO or a device right after
//! the exec. Files are opened only through [`crate::safe_open`], and the
//! script is hashed through the very fd whose `fstat` gave its identity.

use std::{
    fs::File,
    num::NonZeroUsize,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::{Arc, LazyLock, Mutex},
};

use lru::LruCache;

use crate::{
    clock::to_epoch_ns,
    event::{Attestation, Cgroup, Exe, Interpreter, Process, ScriptIdentity},
    identity::exec_id::{exec_id, Origin},
    identity::hash_cache::{FileKey, HashCache, HashFuture, HashOutcome, Source},
    identity::host_path::{self, PathNamespace},
    identity::liveness,
    identity::snapshot::Snapshot,
    kernel::decode::ExecRecord,
    paths::normalize,
    redact::redact_args,
    safe_open::{self, Links, SafeOpenError},
};

/// `name` made absolute against the process's cwd when it is still readable.
fn absolutize(name: &str, pid: u32) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.is_absolute() {
        return normalize(p);
    }
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
    normalize(&cwd.join(p))
}

fn same_file(meta: &std::fs::Metadata, ino: u64, dev: u64) -> bool {
    meta.ino() == ino && meta.dev() == dev
}

/// /proc/<pid>/exe opened at once, while it still is the file the kernel
/// ran: the process may exit (or exec again) a moment later. Returns the open
/// file and the link's target.
fn open_proc_exe(rec: &ExecRecord) -> Option<(File, Option<String>)> {
    // A short-lived program has usually exited before its exec is read, and
    // a /proc lookup of a pid that is gone was an eighth of the agent's CPU
    // per exec in an exec storm.
    if !liveness::pid_exists(rec.tgid) {
        return None;
    }
    let p = format!("/proc/{}/exe", rec.tgid);
    let (f, _) = safe_open::open_exe_link(Path::new(&p), Some((rec.dev, rec.ino))).ok()?;
    let target = std::fs::read_link(&p)
        .ok()
        .map(|t| t.to_string_lossy().into_owned());
    Some((f, target))
}

/// The best path for the exec'd file: the /proc/<pid>/exe target when we
/// got one, else a candidate path that resolves to that inode. The flag says
/// whether the link showed the file deleted.
fn exe_path(rec: &ExecRecord, proc_target: Option<&str>, candidates: &[PathBuf]) -> (String, bool) {
    if let Some(t) = proc_target {
        return match t.strip_suffix(" (deleted)") {
            Some(stripped) => (stripped.to_string(), true),
            None => (t.to_string(), false),
        };
    }
    for c in candidates {
        if let Ok(meta) = std::fs::metadata(c) {
            if same_file(&meta, rec.ino, rec.dev) {
                return (canonical(c, rec.dev, rec.ino), false);
            }
        }
    }
    let fallback = candidates
        .first()
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|| rec.filename.clone());
    (fallback, false)
}

/// (candidate path, dev, inode) -> canonical path, for [`canonical`].
type CanonicalPaths = LruCache<(PathBuf, u64, u64), String>;

static CANONICAL: LazyLock<Mutex<CanonicalPaths>> =
    LazyLock::new(|| Mutex::new(LruCache::new(NonZeroUsize::new(1024).unwrap())));

/// `c` with every symlink resolved, `c` itself if that fails. A short-lived
/// program (a build's compilers, a shell loop's tools) has usually exited
/// before its exec record is read, so its path comes from a candidate, and
/// walking the candidate's links (a readlink per component) was a fifth of
/// the agent's CPU per exec in the exec bench. The stat proving that the
/// candidate still reaches the exec'd inode is made every time by the
/// caller; only the walk is remembered, per inode.
fn canonical(c: &Path, dev: u64, ino: u64) -> String {
    let key = (c.to_path_buf(), dev, ino);
    if let Some(p) = crate::sync::lock(&CANONICAL).get(&key) {
        return p.clone();
    }
    match std::fs::canonicalize(c) {
        Ok(p) => {
            let p = p.to_string_lossy().into_owned();
            crate::sync::lock(&CANONICAL).put(key, p.clone());
            p
        }
        Err(_) => c.to_string_lossy().into_owned(),
    }
}

/// `p` as the exec'ing process means it: `/proc/self/...`, `/dev/fd/N` and
/// `/proc/thread-self/...` name the agent's own files when the agent looks,
/// so they are rewritten to the process's own /proc entries (`fexecve` and
/// `#!` scripts run through `/proc/self/fd/N` name the file that way).
fn as_seen_by(p: PathBuf, rec: &ExecRecord) -> PathBuf {
    let (tgid, tid) = (rec.tgid, rec.pid);
    if let Ok(rest) = p.strip_prefix("/proc/self") {
        Path::new(&format!("/proc/{tgid}")).join(rest)
    } else if let Ok(rest) = p.strip_prefix("/dev/fd") {
        Path::new(&format!("/proc/{tgid}/fd")).join(rest)
    } else if let Ok(rest) = p.strip_prefix("/proc/thread-self") {
        Path::new(&format!("/proc/{tgid}/task/{tid}")).join(rest)
    } else {
        p
    }
}

pub struct ParentRef {
    pub exec_id: Arc<str>,
}

/// Builds the identity of a freshly exec'd process and starts hashing what needs it.
pub fn from_exec(
    rec: &ExecRecord,
    parent: Option<ParentRef>,
    cgroup_path: Option<String>,
    hashes: &HashCache,
) -> Snapshot {
    let fileless = rec.nlink == 0 && rec.dname.starts_with("memfd:");
    // For scripts the kernel ran the interpreter; the filename is the script.
    let binary_name = rec.interp.as_deref().unwrap_or(&rec.filename);
    let candidates: Vec<PathBuf> = absolutize(binary_name, rec.tgid)
        .into_iter()
        .map(|p| as_seen_by(p, rec))
        .collect();
    let opened = open_proc_exe(rec);
    let (path, deleted_now) = if fileless {
        (rec.dname.clone(), false)
    } else {
        let target = opened.as_ref().and_then(|(_, t)| t.as_deref());
        exe_path(rec, target, &candidates)
    };
    let deleted = !fileless && (rec.nlink == 0 || deleted_now);

    let key = FileKey {
        dev: rec.dev,
        ino: rec.ino,
        size: rec.size,
        mtime: rec.mtime,
        ctime: rec.ctime,
    };
    let mut sources: Vec<Source> = opened.map(|(f, _)| Source::Open(f)).into_iter().collect();
    sources.extend(candidates.into_iter().map(Source::Path));
    // A tool that exits at once in a mount namespace of its own (a
    // container's) leaves no /proc/<pid>/exe and a path the agent cannot
    // resolve; its parent usually shares that namespace and root.
    if let Ok(rel) = Path::new(&path).strip_prefix("/") {
        sources.push(Source::Path(
            Path::new(&format!("/proc/{}/root", rec.ppid)).join(rel),
        ));
    }
    let exe_hash = hashes.request(key, sources);
    // A memfd or deleted file has no path that leads to it anywhere.
    let place = (!fileless && !deleted).then(|| host_path::check(key, &path));
    let path_namespace = match place {
        Some(_) => host_path::PENDING,
        None => PathNamespace::Process.as_str(),
    };

    let (interpreter, script_hash) = match &rec.interp {
        None => (None, None),
        Some(interp) => {
            let (script, hash) = script_identity(rec, hashes);
            (
                Some(Interpreter {
                    path: interp.clone(),
                    script,
                }),
                hash,
            )
        }
    };

    let mut args = rec.args.clone();
    let args_redacted = redact_args(&mut args);
    let process = Process {
        pid: rec.tgid,
        ppid: rec.ppid,
        exec_id: exec_id(Origin::Exec, rec.tgid, rec.ktime_ns),
        parent_exec_id: parent.map(|p| p.exec_id),
        start_time_ns: to_epoch_ns(rec.start_boottime_ns),
        uid: rec.uid,
        gid: rec.gid,
        euid: rec.euid,
        egid: rec.egid,
        comm: rec.comm.clone(),
        args,
        args_truncated: rec.args_truncated,
        args_redacted,
        exe: Exe {
            path,
            sha256: None,
            hash_status: "pending",
            inode: rec.ino,
            dev: rec.dev,
            size: rec.size,
            fileless,
            deleted,
            modified_after_exec: false,
            path_namespace,
        },
        interpreter,
        cgroup: Cgroup {
            id: rec.cgroup_id,
            path: cgroup_path,
        },
        // Filled from the cgroup's verdict (`Snapshot::with_workload`).
        container: None,
        pod: None,
        attestation: Attestation::KernelExec,
    };
    Snapshot::new(Arc::new(process), Some(exe_hash), script_hash).with_exe_place(place)
}

/// The script's identity from the file its path leads to now, and its hash
/// started through that same open fd. A path that leads to something other
/// than a regular file gets `not_regular` at once and costs no hash worker.
fn script_identity(rec: &ExecRecord, hashes: &HashCache) -> (ScriptIdentity, Option<HashFuture>) {
    let named = absolutize(&rec.filename, rec.tgid);
    let mut script = ScriptIdentity {
        path: named
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|| rec.filename.clone()),
        sha256: None,
        hash_status: HashOutcome::Unavailable.status(),
        inode: None,
        dev: None,
        size: None,
    };
    let describe = |script: &mut ScriptIdentity, meta: &std::fs::Metadata| {
        script.inode = Some(meta.ino());
        script.dev = Some(meta.dev());
        script.size = Some(meta.size());
    };
    // A relative name whose cwd is gone names nothing the agent can find.
    let Some(path) = named.map(|p| as_seen_by(p, rec)) else {
        return (script, None);
    };
    match safe_open::open_regular(&path, Links::Follow, None) {
        Ok((file, meta)) => {
            describe(&mut script, &meta);
            script.hash_status = "pending";
            let hash = hashes.request(FileKey::of(&meta), vec![Source::Open(file)]);
            (script, Some(hash))
        }
        Err(e @ SafeOpenError::NotRegular { .. }) => {
            tracing::debug!("script not hashed: {e}");
            // A stat never blocks, whatever the file is.
            if let Ok(meta) = std::fs::metadata(&path) {
                describe(&mut script, &meta);
            }
            script.hash_status = HashOutcome::NotRegular.status();
            hashes.count_not_regular();
            (script, None)
        }
        Err(_) => (script, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_resolves_dots() {
        let n = |p: &str| normalize(Path::new(p)).unwrap();
        assert_eq!(n("/etc/../etc/./shadow"), Path::new("/etc/shadow"));
        assert_eq!(n("/../../x"), Path::new("/x"));
        assert_eq!(n("/a//b/"), Path::new("/a/b"));
    }
}
