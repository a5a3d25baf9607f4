//! A matched open of a secret: named from the watch table or the catalog, its file version judged once (file I/O only when the kernel's size, mtime or ctime changed), then turned into `file_open` events and `secret-read` findings.

use std::{path::Path, sync::Arc, time::Instant};

use proctor_common::MATCH_INODE;

use crate::{
    clock::to_epoch_ns,
    detect::findings::{self, ReadContext},
    event::{FileInfo, Kind, Process, SecretInfo, Severity},
    identity::hash_cache::FileKey,
    identity::packages::PackagedExe,
    kernel::decode::OpenRecord,
    pipeline::emitter::{Pending, Yielded},
    secrets::kernel_watch::KernelWatch,
    secrets::kube::KubeSecret,
};

use super::{
    file_probe::{FileFacts, FileJob},
    verdict, Role, SecretMonitor,
};

/// Which secret a matched open read, before its file version is judged.
pub struct OpenMatch {
    catalog_id: Arc<str>,
    secret_path: Arc<str>,
    kube: Option<Arc<KubeSecret>>,
    /// The fingerprint of the version the kernel reported, when that version
    /// was judged already: no file I/O for this open.
    known: Option<Option<Arc<str>>>,
}

/// The version of the file the kernel reported, as the fingerprint cache keys it.
fn version(rec: &OpenRecord) -> FileKey {
    FileKey {
        dev: rec.dev,
        ino: rec.ino,
        size: rec.size,
        mtime: rec.mtime,
        ctime: rec.ctime,
    }
}

impl<K: KernelWatch> SecretMonitor<K> {
    /// First half of a matched open: names the secret and, unless the
    /// kernel's version of the inode was fingerprinted already, the file
    /// I/O still needed (for the blocking pool). `None`: no secret.
    pub fn prepare_open(&mut self, rec: &OpenRecord) -> Option<(OpenMatch, Option<FileJob>)> {
        self.stats.opens_matched += 1;
        let job = |watched_path: Option<String>, kernel_path: String, peek: bool| FileJob {
            watched_path,
            kernel_path,
            peek,
            open_fd: (rec.fd >= 0).then_some((rec.tgid, rec.fd)),
            dev: rec.dev,
            ino: rec.ino,
            fingerprinter: self.fingerprinter.clone(),
        };
        if rec.matched == MATCH_INODE {
            let w = self.watched.get(rec.slot as usize)?;
            // A version judged through the watched path is still that file:
            // an inode number freed and reused comes with a new ctime.
            let known = self.fingerprints.get(&version(rec)).cloned();
            let m = OpenMatch {
                catalog_id: w.catalog_id.clone(),
                secret_path: w.path.clone(),
                kube: w.kube.clone(),
                known,
            };
            if m.known.is_some() {
                return Some((m, None));
            }
            // Should the watched path lead elsewhere now (the secret deleted,
            // its inode number reused), the kernel's path is judged instead.
            let path = rec.kernel_path().to_string();
            let peek = self
                .catalog
                .match_path(Path::new(&path))
                .is_some_and(|e| e.content.is_some());
            let job = job(Some(String::from(&*m.secret_path)), path, peek);
            return Some((m, Some(job)));
        }
        let path = rec.kernel_path().to_string();
        let Some(e) = self.catalog.match_path(Path::new(&path)) else {
            tracing::debug!(
                "open of {path} passed the kernel filter but is not a catalogued secret"
            );
            self.stats.opens_not_secret += 1;
            return None;
        };
        let m = OpenMatch {
            catalog_id: e.id.as_str().into(),
            secret_path: path.as_str().into(),
            kube: None,
            known: None,
        };
        let peek = e.content.is_some();
        Some((m, Some(job(None, path, peek))))
    }

    /// Both halves of a matched open, the file I/O inline: for tests (the
    /// daemon runs the [`FileJob`] on the blocking pool).
    #[cfg(test)]
    pub fn on_open(
        &mut self,
        rec: &OpenRecord,
        reader_now: &Arc<Process>,
        client: Option<&PackagedExe>,
    ) -> Vec<Pending> {
        let Some((m, job)) = self.prepare_open(rec) else {
            return Vec::new();
        };
        let facts = job.map(FileJob::run);
        // The finding riding on its file_open as a pending event of its
        // own, as the emitter sends it out.
        let mut out = Vec::new();
        for mut p in self.finish_open(rec, m, facts, reader_now, client) {
            let then = p.then.take().map(|f| Pending {
                file: p.file.clone(),
                finding: Some(f),
                refers_to_previous: true,
                ..Pending::resolved(Kind::Finding, p.boot_ns, reader_now.clone())
            });
            out.push(*p);
            out.extend(then);
        }
        out
    }

    /// Applies what a [`FileJob`] found: a stale inode slot is dropped, a
    /// name match must pass the content check, a new version is tracked.
    /// `None`: the open is no secret's, nothing to report.
    fn apply_facts(
        &mut self,
        rec: &OpenRecord,
        m: &mut OpenMatch,
        mut facts: FileFacts,
    ) -> Option<Option<Arc<str>>> {
        self.stats.reads_refused += facts.refused;
        self.stats.fingerprint_reads += facts.fingerprint_reads;
        if facts.stale {
            self.unwatch(rec.kdev, rec.ino);
        }
        if rec.matched != MATCH_INODE || facts.stale {
            let path = rec.kernel_path().to_string();
            let Some(e) = self.catalog.match_path(Path::new(&path)) else {
                tracing::debug!(
                    "open of {path} passed the kernel filter but is not a catalogued secret"
                );
                self.stats.opens_not_secret += 1;
                return None;
            };
            let content_ok = match facts.peek.take() {
                Some(Ok(mut buf)) => {
                    let ok = self.catalog.content_matches(e, &buf);
                    buf.fill(0);
                    ok
                }
                // A FIFO or device named like a secret is no secret file.
                Some(Err(true)) => false,
                // Unreadable (or no check): err on the side of reporting.
                Some(Err(false)) | None => true,
            };
            if !content_ok {
                tracing::debug!("{path} fails the content check of {}", e.id);
                self.stats.opens_not_secret += 1;
                return None;
            }
            *m = OpenMatch {
                catalog_id: e.id.as_str().into(),
                secret_path: path.into(),
                kube: None,
                known: None,
            };
        }
        // The kernel filter passes regular files only; one that changed type
        // since (or an older probe) is not a secret file to track.
        let meta = facts.meta.take();
        if meta.as_ref().is_some_and(|m| !m.is_file()) {
            self.stats.opens_not_secret += 1;
            return None;
        }
        // A file already gone again keeps the kernel's identity, untracked.
        let Some(meta) = meta else {
            return Some(None);
        };
        let fp = facts.fingerprint.take();
        self.track_version(
            &m.secret_path,
            &m.catalog_id,
            &meta,
            fp.clone(),
            facts.parent.as_ref(),
        );
        Some(fp.as_deref().map(Arc::from))
    }

    /// Second half of a matched open: the events and findings it yields.
    /// `facts` is what its [`FileJob`] found (`None` when the version was
    /// known, or the job failed). `reader_now` is the reader's finished
    /// view, which the events carry; `client` is the installed program the
    /// reader's exec'd file was proven to be, if any.
    pub fn finish_open(
        &mut self,
        rec: &OpenRecord,
        mut m: OpenMatch,
        facts: Option<FileFacts>,
        reader_now: &Arc<Process>,
        client: Option<&PackagedExe>,
    ) -> Yielded {
        let fp = match (m.known.take(), facts) {
            (Some(fp), _) => fp,
            (None, Some(facts)) => match self.apply_facts(rec, &mut m, facts) {
                Some(fp) => fp,
                None => return Yielded::new(),
            },
            (None, None) => return Yielded::new(),
        };
        let OpenMatch {
            catalog_id,
            secret_path,
            kube,
            ..
        } = m;
        // The page-cache hooks and fanotify marks see an inode, not a path:
        // the watch table names it.
        let page_cache = matches!(
            rec.syscall,
            proctor_common::OPEN_SYSCALL_PAGE_CACHE | proctor_common::OPEN_SYSCALL_FANOTIFY
        );
        let kernel_path: Arc<str> = if page_cache {
            secret_path.clone()
        } else {
            rec.kernel_path().into()
        };
        let decoy = catalog_id.starts_with(crate::secrets::decoys::ID_PREFIX);
        // Only a read that is judged (not a decoy's) needs the policy's rules.
        let judged = rec.readable && !decoy;
        let rule_ids = if judged {
            self.policy.rule_ids(&catalog_id, &secret_path)
        } else {
            Vec::new()
        };
        // What the reads below need of the entry, taken while it is borrowed
        // (a clone of the whole entry per event was measurable).
        let (kind, mitre, verdict) = {
            let Some(entry) = self.entry_of(&catalog_id) else {
                return Yielded::new();
            };
            let verdict = judged.then(|| {
                let files = &self.owner_files;
                self.policy
                    .judge(entry, &secret_path, &rule_ids, reader_now, client, files)
            });
            (entry.kind.as_str(), entry.mitre.clone(), verdict)
        };
        let access = match (rec.readable, rec.writable) {
            (true, true) => "read_write",
            (true, false) => "read",
            (false, true) => "write",
            // O_PATH: a handle, no data.
            (false, false) => "path",
        };
        // Shared by the file_open and its finding (the same access).
        let file = Arc::new(FileInfo {
            path: kernel_path,
            inode: rec.ino,
            dev: rec.dev,
            flags: rec.flags,
            access,
            requested_path: rec.filename.clone(),
            via: match rec.syscall {
                proctor_common::OPEN_SYSCALL_IO_URING => Some("io_uring"),
                proctor_common::OPEN_SYSCALL_PAGE_CACHE => Some("page_cache"),
                proctor_common::OPEN_SYSCALL_FANOTIFY => Some("fanotify"),
                _ => None,
            },
            secret_id: kube.as_ref().map(|k| k.id()),
            repeats: (rec.repeats > 0).then_some(rec.repeats),
        });
        // The finding of this read, if any, rides on its file_open (`then`).
        let mut open = Box::new(Pending {
            file: Some(file),
            ..Pending::resolved(Kind::FileOpen, rec.ktime_ns, reader_now.clone())
        });
        if !rec.readable {
            return smallvec::smallvec![open];
        }
        self.stats.reads_reported += 1;
        // A refused open got no byte: an attempt, not a use of the secret
        // (no inventory use, no binding, no exfiltration window).
        let who = self.reader_key(reader_now);
        if !rec.denied {
            let reads = 1 + u64::from(rec.repeats);
            let at = to_epoch_ns(rec.ktime_ns);
            self.record_read(&secret_path, &who, reader_now, at, reads);
        }
        // A decoy has no owner and no expected client: every read is one.
        if decoy {
            let secret = SecretInfo {
                id: String::from(&*catalog_id),
                kind: kind.to_string(),
                fingerprint: fp.as_deref().map(String::from),
                path: Some(String::from(&*secret_path)),
                variable: None,
                k8s: None,
            };
            open.then = Some(Box::new(findings::secret_decoy(reader_now, secret, mitre)));
            return smallvec::smallvec![open];
        }
        let Some((mut severity, mut role)) = verdict.and_then(verdict::read_role) else {
            return smallvec::smallvec![open];
        };
        // A pod reading a Secret its own volumes hold is that Secret's owner.
        if kube.is_some() && self.kube_reader_is_mounted(fp.as_deref(), reader_now) {
            (severity, role) = (Severity::Info, Role::Owner);
        }
        let secret = self.read_secret_info(&catalog_id, kind, fp, &secret_path, kube.as_deref());
        // One clock read for what this read starts (taint, binding, search window).
        let now = Instant::now();
        let follow_ups = if rec.denied {
            None
        } else {
            self.track_use(&secret, &rule_ids, reader_now, &who, role, now)
        };
        let mut finding = findings::secret_read(ReadContext {
            reader: reader_now,
            secret,
            path: secret_path.clone(),
            mitre,
            severity,
            owner: role == Role::Owner,
        });
        if let (Role::ExpectedClient, Some(client)) = (role, client) {
            verdict::mark_expected_client(&mut finding, reader_now, client);
            self.stats.expected_client_reads += 1;
        }
        if rec.killed {
            finding.action = Some("killed");
            self.stats.killed += 1;
        } else if rec.denied {
            finding.action = Some("denied");
            self.stats.denied += 1;
        }
        open.then = Some(Box::new(finding));
        let mut out: Yielded = smallvec::smallvec![open];
        let search = self
            .searches
            .on_open(&self.policy.search, reader_now, &secret_path, now);
        for f in follow_ups.into_iter().chain(search) {
            out.push(Box::new(Pending {
                finding: Some(Box::new(f)),
                ..Pending::resolved(Kind::Finding, rec.ktime_ns, reader_now.clone())
            }));
        }
        out
    }

    /// What a read of the catalogued file `path` reports about its secret:
    /// the one an earlier read of the same content there made, when there
    /// is one, shared. A process re-reading a file then costs no copy of
    /// it (its finding and its taint hold the same one).
    fn read_secret_info(
        &mut self,
        catalog_id: &str,
        kind: &str,
        fp: Option<Arc<str>>,
        path: &str,
        kube: Option<&KubeSecret>,
    ) -> Arc<SecretInfo> {
        let make = |fingerprint| {
            Arc::new(SecretInfo {
                id: kube.map_or_else(|| catalog_id.to_string(), |k| k.id()),
                kind: kind.to_string(),
                fingerprint,
                path: Some(path.to_string()),
                variable: None,
                k8s: kube.map(|k| k.secret.clone()),
            })
        };
        // A Kubernetes Secret's id is made from its reference: not kept.
        let fp = match (fp, kube) {
            (Some(fp), None) => fp,
            (fp, _) => return make(fp.as_deref().map(String::from)),
        };
        if let Some(s) = self.secret_infos.get(&*fp) {
            if s.id == catalog_id && s.kind == kind && s.path.as_deref() == Some(path) {
                return Arc::clone(s);
            }
        }
        if self.secret_infos.len() >= super::SECRET_INFOS {
            self.secret_infos.clear();
        }
        let fp = String::from(&*fp);
        let s = make(Some(fp.clone()));
        self.secret_infos.insert(fp, Arc::clone(&s));
        s
    }

    /// Replay check and exfiltration taint for one use of a secret, by
    /// `p` (whose identity key is `who`) at `now`; `rule_ids` are the
    /// policy's rules about it (`SecretsConfig::rule_ids`).
    pub(super) fn track_use(
        &mut self,
        secret: &Arc<SecretInfo>,
        rule_ids: &[usize],
        p: &Process,
        who: &str,
        role: Role,
        now: Instant,
    ) -> Option<crate::event::Finding> {
        let (allowed, declared) = self.policy.allowed_destinations(rule_ids);
        if self.policy.exfil.enabled
            && secret.fingerprint.is_some()
            && verdict::carries_taint(role, declared)
        {
            self.usage.taint(p, secret, allowed, declared, now);
        }
        if role == Role::ExpectedClient {
            return None;
        }
        // A Kubernetes Secret is bound to the pods whose volumes hold it,
        // by the pod list, from the first read on: no learning.
        if secret.k8s.is_some() && secret.variable.is_none() {
            if role != Role::Foreign {
                return None;
            }
            let mounted = self.kube_mounted_in(secret.fingerprint.as_deref());
            return self.usage.kube_replay(secret, p, &mounted);
        }
        let owners_declared = self.policy.owners_declared(rule_ids);
        self.usage
            .on_use(secret, p, who, owners_declared, role == Role::Owner, now)
    }
}
