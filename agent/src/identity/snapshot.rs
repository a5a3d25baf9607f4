//! A process as events describe it, with hashes and a cgroup verdict that may still be computing.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::{
    event::Process,
    identity::container::{Refusal, Workload, WorkloadFuture},
    identity::hash_cache::{HashFuture, HashOutcome},
    identity::host_path::{PathNamespace, PlaceFuture},
    identity::pods::{PodAnswer, PodCache},
    sync::lock,
};

/// The event-facing view of a process plus the hash computations its
/// identity waits on. Cloning is cheap (Arcs and shared futures).
#[derive(Clone)]
pub struct Snapshot {
    pub process: Arc<Process>,
    pub exe_hash: Option<HashFuture>,
    pub script_hash: Option<HashFuture>,
    /// Whether `exe.path` is that file in the agent's mount namespace
    /// (`identity::host_path`); `exe.path_namespace` says `pending` until known.
    pub exe_place: Option<PlaceFuture>,
    /// The container and pod the cgroup was vouched to be (the ownership
    /// walk runs on the blocking pool); `process.container`/`pod` stay
    /// empty until it is known.
    pub workload: Option<WorkloadFuture>,
    /// Pod metadata, read when the view is taken (emit, attest): a pod the
    /// source learns about after the exec still names the process.
    pub pods: Option<Arc<PodCache>>,
    /// The last filled view, shared by every clone of this snapshot: all
    /// events of a process want the same view, and building one copies
    /// the whole process (a malloc per argument).
    filled: Arc<Mutex<Option<Filled>>>,
}

/// A filled view and what it was filled from.
struct Filled {
    base: Arc<Process>,
    exe: Option<HashOutcome>,
    script: Option<HashOutcome>,
    place: Option<PathNamespace>,
    workload: Option<Arc<Workload>>,
    pod: PodAnswer,
    view: Arc<Process>,
}

impl Filled {
    fn is_for(
        &self,
        base: &Arc<Process>,
        exe: &Option<HashOutcome>,
        script: &Option<HashOutcome>,
        place: &Option<PathNamespace>,
        workload: &Option<Arc<Workload>>,
        pod: &PodAnswer,
    ) -> bool {
        let same_workload = match (&self.workload, workload) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        Arc::ptr_eq(&self.base, base)
            && same_workload
            && self.pod.same_as(pod)
            && self.exe == *exe
            && self.script == *script
            && self.place == *place
    }
}

impl Snapshot {
    pub fn ready(process: Arc<Process>) -> Self {
        Self::new(process, None, None)
    }

    pub fn new(
        process: Arc<Process>,
        exe_hash: Option<HashFuture>,
        script_hash: Option<HashFuture>,
    ) -> Self {
        Self {
            process,
            exe_hash,
            script_hash,
            exe_place: None,
            workload: None,
            pods: None,
            filled: Arc::default(),
        }
    }

    /// The same snapshot, `exe.path_namespace` from `place` once it is known.
    pub fn with_exe_place(mut self, place: Option<PlaceFuture>) -> Self {
        self.exe_place = place;
        self
    }

    /// The same snapshot, its container and pod from the cgroup's verdict.
    pub fn with_workload(mut self, workload: Option<WorkloadFuture>) -> Self {
        self.workload = workload;
        self
    }

    /// A forked child's snapshot: `child` with the parent's hashes, cgroup
    /// verdict and pod source (a fork runs the same image in the same cgroup).
    pub fn forked(&self, child: Process) -> Self {
        // clone3(CLONE_INTO_CGROUP) starts a child elsewhere: no verdict then.
        let same_cgroup = child.cgroup.id == self.process.cgroup.id;
        Self::new(
            Arc::new(child),
            self.exe_hash.clone(),
            self.script_hash.clone(),
        )
        .with_exe_place(self.exe_place.clone())
        .with_workload(self.workload.clone().filter(|_| same_cgroup))
        .with_pods(self.pods.as_ref())
    }

    /// The container or pod claim this process makes that is not its own,
    /// once the verdict is in: a claim its cgroup's ownership refutes, or a
    /// container id the pod list gives to another pod than the cgroup names.
    pub async fn forgery(&self) -> Option<Refusal> {
        let w = self.workload.clone()?.await;
        if let Some(r) = w.refused.as_ref().filter(|r| r.forgery) {
            return Some(r.clone());
        }
        let owner = self.pods.as_ref()?.contradiction(&w)?;
        Some(Refusal {
            path: self.process.cgroup.path.clone().unwrap_or_default(),
            claimed_container: w.container.as_ref().map(|c| c.id.clone()),
            claimed_pod: w.pod.as_ref().map(|p| p.uid.clone()),
            reason: format!("the pod list gives this container to pod {owner}"),
            forgery: true,
        })
    }

    /// The same snapshot, its pod and container filled from `pods` when taken.
    pub fn with_pods(mut self, pods: Option<&Arc<PodCache>>) -> Self {
        self.pods = pods.cloned();
        self
    }

    /// The view with every hash filled in, waiting for those still computing.
    pub async fn resolve(&self) -> Arc<Process> {
        if let Some(view) = self.resolved() {
            return view;
        }
        let workload = match &self.workload {
            Some(f) => Some(f.clone().await),
            None => None,
        };
        let exe = match &self.exe_hash {
            Some(f) => Some(f.clone().await),
            None => None,
        };
        let script = match &self.script_hash {
            Some(f) => Some(f.clone().await),
            None => None,
        };
        let place = match &self.exe_place {
            Some(f) => Some(f.clone().await),
            None => None,
        };
        self.fill(exe, script, place, workload)
    }

    /// The view with every hash filled in if they all arrive within `wait`;
    /// else the view as it stands (`hash_status: "pending"` for the hashes
    /// still computing) and `false`.
    pub async fn resolve_within(&self, wait: Duration) -> (Arc<Process>, bool) {
        if let Some(view) = self.resolved() {
            return (view, true);
        }
        match tokio::time::timeout(wait, self.resolve()).await {
            Ok(view) => (view, true),
            Err(_) => (self.current(), false),
        }
    }

    /// The filled view when nothing is pending any more: what
    /// [`Self::resolve`] would give, without cloning and polling its futures
    /// or arming a timer (every event of a process after its first few).
    fn resolved(&self) -> Option<Arc<Process>> {
        let complete =
            self.file_known() && self.workload.as_ref().is_none_or(|f| f.peek().is_some());
        complete.then(|| self.current())
    }

    /// Whether the hashes and the path check are in.
    fn file_known(&self) -> bool {
        let done = |f: &Option<HashFuture>| f.as_ref().is_none_or(|f| f.peek().is_some());
        let place_known = self.exe_place.as_ref().is_none_or(|f| f.peek().is_some());
        done(&self.exe_hash) && done(&self.script_hash) && place_known
    }

    /// The same process for keeping after its exit, once its hashes and
    /// path check are in: the filled view becomes the process and the
    /// futures and the unfilled copy go. An exited record waits for late
    /// reports (tmpfs reads, swept connects) holding one copy of the
    /// process instead of two (under the bench soak, 2 MiB less for 4096
    /// exited records). The workload and pod source stay: which pod a late
    /// report names is judged when it comes.
    pub fn settled(&self) -> Option<Self> {
        if !self.file_known() {
            return None;
        }
        Some(
            Self::ready(self.current())
                .with_workload(self.workload.clone())
                .with_pods(self.pods.as_ref()),
        )
    }

    /// Whether some hash of this process is still computing.
    pub fn hashing(&self) -> bool {
        [&self.exe_hash, &self.script_hash]
            .into_iter()
            .flatten()
            .any(|f| f.peek().is_none())
    }

    /// The view with the hashes known right now (no waiting).
    pub fn current(&self) -> Arc<Process> {
        let peek = |f: &Option<HashFuture>| f.as_ref().and_then(|f| f.peek().cloned());
        let workload = self.workload.as_ref().and_then(|f| f.peek().cloned());
        let place = self.exe_place.as_ref().and_then(|f| f.peek().copied());
        self.fill(
            peek(&self.exe_hash),
            peek(&self.script_hash),
            place,
            workload,
        )
    }

    fn fill(
        &self,
        exe: Option<HashOutcome>,
        script: Option<HashOutcome>,
        place: Option<PathNamespace>,
        workload: Option<Arc<Workload>>,
    ) -> Arc<Process> {
        let pod = match (&self.pods, &workload) {
            (Some(c), Some(w)) => c.judge(w),
            _ => PodAnswer::Unchanged,
        };
        if exe.is_none() && script.is_none() && place.is_none() && workload.is_none() {
            return self.process.clone();
        }
        let mut memo = lock(&self.filled);
        if let Some(m) = memo
            .as_ref()
            .filter(|m| m.is_for(&self.process, &exe, &script, &place, &workload, &pod))
        {
            return m.view.clone();
        }
        let mut p = (*self.process).clone();
        if let Some(w) = &workload {
            (p.container, p.pod) = w.json();
        }
        match &pod {
            PodAnswer::Found(f) => f.apply(&mut p),
            PodAnswer::Withheld => p.pod = None,
            PodAnswer::Unchanged => {}
        }
        if let Some(o) = &exe {
            p.exe.sha256 = o.sha256_hex();
            p.exe.hash_status = o.status();
            if *o == HashOutcome::Modified {
                p.exe.modified_after_exec = true;
            }
        }
        if let Some(pl) = place {
            p.exe.path_namespace = pl.as_str();
        }
        if let (Some(o), Some(interp)) = (&script, p.interpreter.as_mut()) {
            interp.script.sha256 = o.sha256_hex();
            interp.script.hash_status = o.status();
        }
        let view = Arc::new(p);
        *memo = Some(Filled {
            base: self.process.clone(),
            exe,
            script,
            place,
            workload,
            pod,
            view: view.clone(),
        });
        view
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        identity::cgroups::CgroupResolver, identity::hash_cache::HashCache,
        identity::procfs_seed::scan_pid,
    };

    // The hash cache hashes on the runtime's blocking pool.
    #[tokio::test]
    async fn every_event_of_a_process_shares_one_filled_view() {
        let hashes = HashCache::new(16, 1, 1 << 30);
        let s = scan_pid(std::process::id(), &mut CgroupResolver::new(), &hashes)
            .unwrap()
            .snapshot;
        let a = s.resolve().await;
        assert_eq!(a.exe.hash_status, "ok");
        assert_eq!(a.exe.path_namespace, "host", "{:?}", a.exe);
        assert!(Arc::ptr_eq(&a, &s.clone().resolve().await));
        assert!(Arc::ptr_eq(&a, &s.current()));
        // A snapshot of another process (here a copy) fills its own view.
        let other = Snapshot::new(Arc::new((*s.process).clone()), s.exe_hash.clone(), None);
        let b = other.resolve().await;
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(a.exe.sha256, b.exe.sha256);
    }

    #[tokio::test]
    async fn a_hash_that_misses_the_wait_is_pending_and_resolves_later() {
        let (tx, rx) = tokio::sync::oneshot::channel::<HashOutcome>();
        let slow: HashFuture = futures::FutureExt::shared(futures::FutureExt::boxed(async move {
            rx.await.unwrap_or(HashOutcome::Unavailable)
        }));
        let hashes = HashCache::new(16, 1, 1 << 30);
        let base = scan_pid(std::process::id(), &mut CgroupResolver::new(), &hashes)
            .unwrap()
            .snapshot;
        let mut p = (*base.process).clone();
        p.exe.hash_status = "pending";
        p.exe.sha256 = None;
        let s = Snapshot::new(Arc::new(p), Some(slow), None);
        let (view, complete) = s.resolve_within(Duration::from_millis(5)).await;
        assert!(!complete);
        assert!(s.hashing());
        assert_eq!(view.exe.hash_status, "pending");
        assert_eq!(view.exe.sha256, None);
        // Not settled while a hash is out: a late report would lose it.
        assert!(s.settled().is_none());
        tx.send(HashOutcome::Ok([7; 32])).unwrap();
        let (view, complete) = s.resolve_within(Duration::from_millis(500)).await;
        assert!(complete && !s.hashing());
        assert_eq!(view.exe.hash_status, "ok");
        assert_eq!(
            view.exe.sha256.as_deref(),
            Some(hex::encode([7u8; 32]).as_str())
        );
        // Settled, the filled view is the process: nothing left to wait for,
        // the same identity, one copy.
        let settled = s.settled().expect("every hash is in");
        assert!(settled.exe_hash.is_none() && !settled.hashing());
        assert!(Arc::ptr_eq(&settled.process, &view));
        assert!(Arc::ptr_eq(&settled.resolve().await, &view));
    }
}
