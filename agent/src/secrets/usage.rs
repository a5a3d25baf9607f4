//! Who uses which secret: bindings of secret fingerprints to workload
//! identities (secret-replay), secrets carried by processes towards the
//! network (secret-exfil) and into io_uring (secret-io-uring).
//!
//! An identity is the attested workload (binary hash and cgroup, see
//! [`identity_key`]), never a pid: a restart of the same
//! workload is the same identity, a different binary reading the same
//! secret is not.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    detect::connect::is_remote_peer,
    event::rule::{SECRET_EXFIL, SECRET_IO_URING, SECRET_REPLAY},
    event::Severity,
    event::{Evidence, Finding, Process, SecretInfo},
    identity::per_process::{PerProcess, ProcessKey},
    secrets::policy::{Destination, ReplayMode},
};

/// A workload bound to a secret, with the exec that showed it.
#[derive(Debug, Clone)]
struct BoundIdentity {
    identity: String,
    exe_path: String,
    exec_id: Arc<str>,
}

#[derive(Debug)]
struct Binding {
    bound: Vec<BoundIdentity>,
    first_use: Instant,
    /// Identities already reported for this secret.
    reported: HashSet<String>,
}

/// A secret a process has read, remembered for the exfiltration window.
#[derive(Debug, Clone)]
pub struct Taint {
    pub at: Instant,
    pub secret: Arc<SecretInfo>,
    pub allowed: Arc<[Destination]>,
    /// Whether `allowed` comes from policy (else the defaults).
    pub declared: bool,
    pub reader_exec_id: Arc<str>,
}

pub struct SecretUsage {
    mode: ReplayMode,
    learning_window: Duration,
    bindings: HashMap<String, Binding>,
    /// Shared between a parent and the children that inherited them, copied
    /// only when one of them changes (a fork must not copy hundreds).
    taints: PerProcess<Arc<Vec<Taint>>>,
    exfil_window: Duration,
    metadata: Vec<Destination>,
    /// (fingerprint, destination) already reported as exfiltration, per process.
    exfil_reported: PerProcess<HashSet<(String, String)>>,
    /// Fingerprints already reported as carried into io_uring, per process.
    io_uring_reported: PerProcess<HashSet<String>>,
}

impl SecretUsage {
    pub fn new(
        mode: ReplayMode,
        learning_window: Duration,
        exfil_window: Duration,
        metadata: Vec<Destination>,
    ) -> Self {
        Self {
            mode,
            learning_window,
            bindings: HashMap::new(),
            taints: PerProcess::default(),
            exfil_window,
            metadata,
            exfil_reported: PerProcess::default(),
            io_uring_reported: PerProcess::default(),
        }
    }

    /// New replay and exfil settings (a config reload); bindings and taints stay.
    pub fn reconfigure(
        &mut self,
        mode: ReplayMode,
        learning_window: Duration,
        exfil_window: Duration,
        metadata: Vec<Destination>,
    ) {
        self.mode = mode;
        self.learning_window = learning_window;
        self.exfil_window = exfil_window;
        self.metadata = metadata;
    }

    /// A use of the secret `secret` (with a fingerprint) by `p`, whose
    /// [`identity_key`] is `who`. `owners` is whether policy declares owners
    /// for it and `is_owner` whether `p` is one. Returns a secret-replay
    /// finding when `p` is not among its identities. A use by a bound
    /// identity (nearly every use) allocates nothing.
    pub fn on_use(
        &mut self,
        secret: &Arc<SecretInfo>,
        p: &Process,
        who: &str,
        owners_declared: bool,
        is_owner: bool,
        now: Instant,
    ) -> Option<Finding> {
        let fp = secret.fingerprint.as_deref()?;
        match self.mode {
            ReplayMode::Off => return None,
            ReplayMode::Policy if !owners_declared || is_owner => return None,
            ReplayMode::Learn if owners_declared && is_owner => return None,
            _ => {}
        }
        if !self.bindings.contains_key(fp) {
            let binding = Binding {
                bound: Vec::new(),
                first_use: now,
                reported: HashSet::new(),
            };
            self.bindings.insert(fp.to_string(), binding);
        }
        let binding = self.bindings.get_mut(fp).expect("inserted above");
        if binding.bound.iter().any(|b| b.identity == who) {
            return None;
        }
        let me = BoundIdentity {
            identity: who.to_string(),
            exe_path: p.exe.path.clone(),
            exec_id: p.exec_id.clone(),
        };
        let learning = self.mode == ReplayMode::Learn
            && !owners_declared
            && (binding.bound.is_empty()
                || now.duration_since(binding.first_use) <= self.learning_window);
        if learning {
            binding.bound.push(me);
            return None;
        }
        if !binding.reported.insert(me.identity.clone()) {
            return None;
        }
        let bound_desc: Vec<String> = if binding.bound.is_empty() {
            vec!["its declared owners".into()]
        } else {
            binding.bound.iter().map(|b| b.exe_path.clone()).collect()
        };
        let mut exec_ids: crate::event::Few<Arc<str>> =
            binding.bound.iter().map(|b| b.exec_id.clone()).collect();
        exec_ids.push(me.exec_id.clone());
        let mut identities: Vec<String> =
            binding.bound.iter().map(|b| b.identity.clone()).collect();
        identities.push(me.identity.clone());
        Some(Finding {
            rule: SECRET_REPLAY,
            severity: Severity::High,
            summary: format!(
                "{} secret {} (fingerprint {}) used by {} ({}), but it is bound to {}",
                secret.kind,
                secret.id,
                secret.fingerprint.as_deref().unwrap_or("?"),
                p.exe.path,
                p.comm,
                bound_desc.join(", ")
            ),
            mitre: Arc::from(["T1550".into(), "T1552.001".into()]),
            secret: Some(Arc::clone(secret)),
            evidence: Evidence {
                exec_ids,
                paths: secret.evidence_paths(),
                identities,
                ..Evidence::default()
            },
            action: None,
        })
    }

    /// A read of a Kubernetes Secret's content by `p`, which runs in none of
    /// the pods `mounted_in` (`namespace/name`) whose volumes hold it: the
    /// pod list binds the content to those pods, so this is replay from the
    /// first read (no learning). Once per (content, reader identity).
    pub fn kube_replay(
        &mut self,
        secret: &Arc<SecretInfo>,
        p: &Process,
        mounted_in: &[String],
    ) -> Option<Finding> {
        if self.mode == ReplayMode::Off {
            return None;
        }
        let fp = secret.fingerprint.clone()?;
        let me = identity_key(p);
        let binding = self.bindings.entry(fp).or_insert_with(|| Binding {
            bound: Vec::new(),
            first_use: Instant::now(),
            reported: HashSet::new(),
        });
        if !binding.reported.insert(me.clone()) {
            return None;
        }
        let reader_pod = p
            .pod
            .as_ref()
            .map(|v| {
                let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("?");
                format!("pod {}/{}", s("namespace"), s("name"))
            })
            .unwrap_or_else(|| "no pod (the node)".into());
        let bound = if mounted_in.is_empty() {
            "no pod on this node".to_string()
        } else {
            format!("pods {}", mounted_in.join(", "))
        };
        let mut identities: Vec<String> = mounted_in.iter().map(|m| format!("pod:{m}")).collect();
        identities.push(me);
        Some(Finding {
            rule: SECRET_REPLAY,
            severity: Severity::High,
            summary: format!(
                "Kubernetes {} {} (fingerprint {}) read by {} ({}) in {}, but it is mounted only into {}",
                secret.kind,
                secret.id,
                secret.fingerprint.as_deref().unwrap_or("?"),
                p.exe.path,
                p.comm,
                reader_pod,
                bound
            ),
            mitre: Arc::from(["T1550".into(), "T1552.007".into()]),
            secret: Some(Arc::clone(secret)),
            evidence: Evidence {
                exec_ids: smallvec::smallvec![p.exec_id.clone()],
                paths: secret.evidence_paths(),
                identities,
                ..Evidence::default()
            },
            action: None,
        })
    }

    /// Remembers that `p` read `secret` (for the exfiltration window),
    /// replacing what an earlier read of the same content left. The
    /// process's list is reused, not rebuilt: a process re-reading a secret
    /// thousands of times a second re-taints itself on every read.
    pub fn taint(
        &mut self,
        p: &Process,
        secret: &Arc<SecretInfo>,
        allowed: Arc<[Destination]>,
        declared: bool,
        now: Instant,
    ) {
        let v = Arc::make_mut(self.taints.entry(ProcessKey::of(p)));
        // This read's taint replaces an earlier one by the same secret.
        if let Some(i) = v
            .iter()
            .position(|old| old.secret.fingerprint == secret.fingerprint)
        {
            v.remove(i);
        }
        v.push(Taint {
            at: now,
            secret: Arc::clone(secret),
            allowed,
            declared,
            reader_exec_id: p.exec_id.clone(),
        });
    }

    /// A child inherits what its parent read: descendants carry the secret
    /// too. Whatever an earlier holder of the child's pid left is dropped.
    pub fn inherit(&mut self, parent: Option<ProcessKey>, child: ProcessKey) {
        self.forget(child.pid);
        if let Some(t) = parent.and_then(|p| self.taints.get(p)).map(Arc::clone) {
            self.taints.insert(child, t);
        }
    }

    pub fn forget(&mut self, pid: u32) {
        self.taints.remove(pid);
        self.exfil_reported.remove(pid);
        self.io_uring_reported.remove(pid);
    }

    /// Secrets `p` read within the window, expired ones dropped.
    fn live_taints(&mut self, p: ProcessKey) -> Option<Arc<Vec<Taint>>> {
        let taints = self.taints.get_mut(p)?;
        let now = Instant::now();
        let expired = |t: &Taint| now.duration_since(t.at) > self.exfil_window;
        if taints.iter().any(expired) {
            Arc::make_mut(taints).retain(|t| !expired(t));
        }
        Some(Arc::clone(taints))
    }

    /// `p` submitted an io_uring request of opcode `op` (named) for the first
    /// time: one secret-io-uring finding per secret it carries. io_uring
    /// reaches files and sockets without the syscalls most monitoring (ours
    /// included, for reads and sends on connected sockets) watches.
    pub fn on_io_uring(&mut self, p: &Process, op: &str) -> Vec<Finding> {
        let Some(taints) = self.live_taints(ProcessKey::of(p)) else {
            return Vec::new();
        };
        let reported = self.io_uring_reported.entry(ProcessKey::of(p));
        let mut out = Vec::new();
        for t in taints.iter() {
            let fp = t.secret.fingerprint.clone().unwrap_or_default();
            if !reported.insert(fp) {
                continue;
            }
            out.push(Finding {
                rule: SECRET_IO_URING,
                severity: Severity::Medium,
                summary: format!(
                    "{} (pid {}) read {} secret {} and submitted an io_uring {op} request: \
                     what it does with the secret through io_uring bypasses syscall monitoring",
                    p.comm, p.pid, t.secret.kind, t.secret.id
                ),
                mitre: Arc::from(["T1562.001".into(), "T1552.001".into()]),
                secret: Some(t.secret.clone()),
                evidence: Evidence {
                    exec_ids: smallvec::smallvec![t.reader_exec_id.clone(), p.exec_id.clone()],
                    paths: t.secret.evidence_paths(),
                    ..Evidence::default()
                },
                action: None,
            });
        }
        out
    }

    /// A connection by `p` to `ip:port`: secret-exfil findings for every
    /// secret it read within the window that may not go there.
    pub fn on_connect(&mut self, p: &Process, ip: IpAddr, port: u16) -> Vec<Finding> {
        if !is_remote_peer(ip) {
            return Vec::new();
        }
        let Some(taints) = self.live_taints(ProcessKey::of(p)) else {
            return Vec::new();
        };
        let metadata = self.metadata.iter().any(|d| d.contains(ip, port));
        let dest = format!("{}", std::net::SocketAddr::new(ip, port));
        let mut out = Vec::new();
        for t in taints.iter() {
            let allowed = t.allowed.iter().any(|d| d.contains(ip, port));
            // A declared destination list may include a metadata endpoint on purpose.
            if allowed && (!metadata || t.declared) {
                continue;
            }
            let fp = t.secret.fingerprint.clone().unwrap_or_default();
            if !self
                .exfil_reported
                .entry(ProcessKey::of(p))
                .insert((fp, dest.clone()))
            {
                continue;
            }
            let what = if metadata {
                "a cloud instance-metadata endpoint"
            } else if t.declared {
                "a destination outside the secret's allowed destinations"
            } else {
                "a destination outside the default allowed networks"
            };
            out.push(Finding {
                rule: SECRET_EXFIL,
                severity: if metadata {
                    Severity::Critical
                } else {
                    Severity::High
                },
                summary: format!(
                    "{} (pid {}) read {} secret {} and then connected to {dest}, {what}",
                    p.comm, p.pid, t.secret.kind, t.secret.id
                ),
                mitre: Arc::from(["T1041".into(), "T1552.001".into()]),
                secret: Some(t.secret.clone()),
                evidence: Evidence {
                    exec_ids: smallvec::smallvec![t.reader_exec_id.clone(), p.exec_id.clone()],
                    paths: t.secret.evidence_paths(),
                    destinations: vec![dest.clone()],
                    ..Evidence::default()
                },
                action: None,
            });
        }
        out
    }

    /// The secrets `p` carries within the exfiltration window.
    pub fn carried(&mut self, p: &Process) -> Vec<Arc<SecretInfo>> {
        self.live_taints(ProcessKey::of(p))
            .map(|t| t.iter().map(|t| t.secret.clone()).collect())
            .unwrap_or_default()
    }

    pub fn tainted_processes(&self) -> usize {
        self.taints.len()
    }

    pub fn bound_secrets(&self) -> usize {
        self.bindings.len()
    }
}

/// The identity of a workload for the inventory: the binary the kernel ran
/// (by hash when known) and where it runs.
pub fn identity_key(p: &Process) -> String {
    // Built in one allocation: it is made for every secret read.
    let (tag, exe) = match &p.exe.sha256 {
        Some(h) => ("sha256:", h.as_str()),
        None => ("exe:", p.exe.path.as_str()),
    };
    let parts = [
        tag,
        exe,
        "|cgroup:",
        p.cgroup.path.as_deref().unwrap_or("?"),
    ];
    let mut key = String::with_capacity(parts.iter().map(|s| s.len()).sum());
    for part in parts {
        key.push_str(part);
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_key_names_the_binary_by_hash_else_by_path_and_the_cgroup() {
        let mut p = crate::testdata::process();
        p.exe.sha256 = Some("ab12".into());
        p.cgroup.path = Some("/system.slice/x.service".into());
        assert_eq!(
            identity_key(&p),
            "sha256:ab12|cgroup:/system.slice/x.service"
        );
        p.exe.sha256 = None;
        p.exe.path = "/usr/bin/x".into();
        p.cgroup.path = None;
        assert_eq!(identity_key(&p), "exe:/usr/bin/x|cgroup:?");
    }

    fn tainted(declared: &[&str]) -> (SecretUsage, Process) {
        let mut u = SecretUsage::new(
            ReplayMode::Learn,
            Duration::ZERO,
            Duration::from_secs(600),
            vec![Destination::parse("169.254.169.254/32").unwrap()],
        );
        let p = crate::testdata::process();
        let allowed: Vec<Destination> = declared
            .iter()
            .map(|d| Destination::parse(d).unwrap())
            .collect();
        let secret = crate::testdata::finding("secret-read", crate::event::Severity::High)
            .secret
            .unwrap();
        let declared = !allowed.is_empty();
        u.taint(&p, &secret, allowed.into(), declared, Instant::now());
        (u, p)
    }

    #[test]
    fn a_re_read_replaces_the_taint_of_the_same_content_and_keeps_others() {
        let (mut u, p) = tainted(&[]);
        let first = u.carried(&p)[0].clone();
        // The same content again: one taint, now the later read's.
        let again = Arc::new((*first).clone());
        u.taint(&p, &again, Arc::new([]), false, Instant::now());
        let carried = u.carried(&p);
        assert_eq!(carried.len(), 1);
        assert!(Arc::ptr_eq(&carried[0], &again));
        // Another content: carried beside it.
        let mut other = (*first).clone();
        other.fingerprint = Some("hmac-sha256:other".into());
        u.taint(&p, &Arc::new(other), Arc::new([]), false, Instant::now());
        assert_eq!(u.carried(&p).len(), 2);
    }

    #[test]
    fn a_connect_to_the_unspecified_or_loopback_address_is_no_exfiltration() {
        // A declared list that allows neither: still no finding, the data stays on the host.
        let (mut u, p) = tainted(&["198.51.100.0/24:443"]);
        for local in ["::", "0.0.0.0", "::1", "127.0.0.1", "::ffff:127.0.0.1"] {
            let found = u.on_connect(&p, local.parse().unwrap(), 2222);
            assert!(found.is_empty(), "{local}: {found:?}");
        }
        let found = u.on_connect(&p, "203.0.113.9".parse().unwrap(), 2222);
        assert_eq!(found.len(), 1, "a real remote peer still counts");
        assert_eq!(found[0].evidence.destinations, ["203.0.113.9:2222"]);
    }

    #[test]
    fn a_process_reusing_the_pid_of_a_reader_carries_nothing() {
        let (mut u, reader) = tainted(&[]);
        let peer = "203.0.113.9".parse().unwrap();
        // The reader's exit record was lost; the pid now holds another process.
        let mut successor = reader.clone();
        successor.start_time_ns += 1_000_000_000;
        successor.exec_id = "another-exec".into();
        assert!(u.carried(&successor).is_empty());
        assert!(u.on_connect(&successor, peer, 443).is_empty());
        // Positive control: the reader itself carries it.
        let (mut u, reader) = tainted(&[]);
        assert_eq!(u.carried(&reader).len(), 1);
        assert_eq!(u.on_connect(&reader, peer, 443).len(), 1);
    }

    #[test]
    fn a_child_forked_into_a_reused_pid_gets_its_parents_taint_not_the_old_holders() {
        let (mut u, reader) = tainted(&[]);
        let clean_parent = ProcessKey {
            pid: 9_999,
            start_time_ns: 5,
        };
        // pid of the reader reused by a child of a process that read nothing.
        let child = ProcessKey {
            pid: reader.pid,
            start_time_ns: reader.start_time_ns + 7,
        };
        u.inherit(Some(clean_parent), child);
        let mut p = reader.clone();
        p.start_time_ns = child.start_time_ns;
        assert!(u.carried(&p).is_empty());
        // A child of the reader carries the secret.
        let (mut u, reader) = tainted(&[]);
        let child = ProcessKey {
            pid: 31_337,
            start_time_ns: 77,
        };
        u.inherit(Some(ProcessKey::of(&reader)), child);
        let mut p = reader.clone();
        p.pid = child.pid;
        p.start_time_ns = child.start_time_ns;
        assert_eq!(u.carried(&p).len(), 1);
    }
}
