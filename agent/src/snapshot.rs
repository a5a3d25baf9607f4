//! A process as events describe it, with hashes that may still be computing.

use std::sync::Arc;

use crate::{
    event::Process,
    hash_cache::{HashFuture, HashOutcome},
    pod_metadata::PodCache,
};

/// The event-facing view of a process plus the hash computations its
/// identity waits on. Cloning is cheap (Arcs and shared futures).
#[derive(Clone)]
pub struct Snapshot {
    pub process: Arc<Process>,
    pub exe_hash: Option<HashFuture>,
    pub script_hash: Option<HashFuture>,
    /// Pod metadata, read when the view is taken (emit, attest): a pod the
    /// source learns about after the exec still names the process.
    pub pods: Option<Arc<PodCache>>,
}

impl Snapshot {
    pub fn ready(process: Arc<Process>) -> Self {
        Self {
            process,
            exe_hash: None,
            script_hash: None,
            pods: None,
        }
    }

    /// The same snapshot, its pod and container filled from `pods` when taken.
    pub fn with_pods(mut self, pods: Option<&Arc<PodCache>>) -> Self {
        self.pods = pods.cloned();
        self
    }

    /// The view with every hash filled in, waiting for those still computing.
    pub async fn resolve(&self) -> Arc<Process> {
        let exe = match &self.exe_hash {
            Some(f) => Some(f.clone().await),
            None => None,
        };
        let script = match &self.script_hash {
            Some(f) => Some(f.clone().await),
            None => None,
        };
        self.fill(exe, script)
    }

    /// The view with the hashes known right now (no waiting).
    pub fn current(&self) -> Arc<Process> {
        let peek = |f: &Option<HashFuture>| f.as_ref().and_then(|f| f.peek().cloned());
        self.fill(peek(&self.exe_hash), peek(&self.script_hash))
    }

    fn fill(&self, exe: Option<HashOutcome>, script: Option<HashOutcome>) -> Arc<Process> {
        let found = self.pods.as_ref().and_then(|c| c.find(&self.process));
        if exe.is_none() && script.is_none() && found.is_none() {
            return self.process.clone();
        }
        let mut p = (*self.process).clone();
        if let Some(f) = found {
            f.apply(&mut p);
        }
        if let Some(o) = exe {
            p.exe.sha256 = o.sha256_hex();
            p.exe.hash_status = o.status();
            if o == HashOutcome::Modified {
                p.exe.modified_after_exec = true;
            }
        }
        if let (Some(o), Some(interp)) = (script, p.interpreter.as_mut()) {
            interp.script.sha256 = o.sha256_hex();
            interp.script.hash_status = o.status();
        }
        Arc::new(p)
    }
}
