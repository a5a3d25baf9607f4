//! `proctor.v1.Attestation`: who is PID N, and tell me when that changes.
//!
//! The answer comes from the agent's process record (the kernel's exec
//! event, or the start-up /proc scan), never from /proc alone. /proc is read
//! at answer time only to make sure the record still describes the process
//! that has the pid now:
//! - its start time must be the record's, otherwise the pid was reused by a
//!   process the agent has not recorded yet: NOT_FOUND;
//! - its executable must be the record's inode, otherwise it exec'd a new
//!   binary whose exec record the agent has not processed yet: UNAVAILABLE
//!   (retry in a moment).
//!
//! Both reads go through one open `/proc/<pid>` directory, and the start time
//! is read again after the executable, so that a pid reused in between is
//! caught.

use std::{pin::Pin, sync::Arc, time::Duration};

use tokio::sync::{broadcast::error::RecvError, mpsc, watch};
use tokio_stream::{wrappers::ReceiverStream, Stream};
use tonic::{Request, Response, Status};

use crate::{
    api::{
        pb::{
            attestation_server, AttestRequest, AttestResponse, Identity, WatchEvent, WatchKind,
            WatchRequest,
        },
        selectors::{self, Context, Creds, NameDb},
        ApiHandles, PID_MAX,
    },
    clock::{boot_epoch_ns, tick_ns},
    event::{Kind, Process},
    identity::liveness::{self, Liveness},
    identity::snapshot::Snapshot,
};

/// How often a watch re-checks the table and /proc (processes that never
/// exec'd leave the table without any event).
const WATCH_POLL: Duration = Duration::from_secs(1);

/// The Attestation service.
#[derive(Clone)]
pub struct AttestationService {
    pub handles: ApiHandles,
    /// Longest wait for a binary's hash.
    pub hash_wait: Duration,
    /// Becomes true when the server shuts down; open watches end.
    pub shutdown: watch::Receiver<bool>,
}

pub fn valid_pid(pid: i32) -> Result<u32, Status> {
    if pid <= 0 || pid > PID_MAX {
        return Err(Status::invalid_argument(format!(
            "pid {pid} is out of range (1..={PID_MAX})"
        )));
    }
    Ok(pid as u32)
}

/// Whether a record that started at `record_boot_ns` (kernel boot-time ns)
/// is the process a caller says started at `caller_epoch_ns` (Unix epoch
/// ns). Compared in clock ticks, with one tick of tolerance for callers that
/// converted clocks themselves; a pid cannot cycle through pid_max within
/// two ticks, so a reused pid never matches.
pub fn start_matches(record_boot_ns: u64, caller_epoch_ns: u64) -> bool {
    let Some(caller_boot) = caller_epoch_ns.checked_sub(boot_epoch_ns()) else {
        return false;
    };
    let t = tick_ns();
    (record_boot_ns / t).abs_diff(caller_boot / t) <= 1
}

/// What /proc says about the process now, when it is still the one recorded.
fn check_live(pid: u32, start_boot_ns: u64, exe_ino: u64, exe_dev: u64) -> Result<Creds, Status> {
    use std::os::unix::fs::MetadataExt;
    let exited = || Status::not_found(format!("pid {pid} has exited"));
    let proc_ = procfs::process::Process::new(pid as i32).map_err(|_| exited())?;
    let still_recorded = || match liveness::check(&proc_, start_boot_ns) {
        Liveness::Same => Ok(()),
        Liveness::Exited => Err(exited()),
        Liveness::Reused { ticks } => Err(Status::not_found(format!(
            "pid {pid} was reused: it now belongs to a process started at tick {ticks}, \
             not the one the agent recorded (tick {}); the agent has not \
             processed the new one yet",
            liveness::start_ticks(start_boot_ns)
        ))),
    };
    still_recorded()?;
    let status = proc_.status().map_err(|_| exited())?;
    let exe = std::fs::metadata(format!("/proc/{pid}/exe"));
    // Read through the same /proc/<pid> directory: it fails once that
    // process is gone, so everything read before belonged to it.
    still_recorded()?;
    let exe = exe.map_err(|e| {
        Status::unavailable(format!(
            "cannot check the executable of pid {pid} (/proc/{pid}/exe: {e}); retry"
        ))
    })?;
    if exe.ino() != exe_ino || exe.dev() != exe_dev {
        return Err(Status::unavailable(format!(
            "pid {pid} has exec'd a new binary that the agent has not processed yet; \
             retry in a moment"
        )));
    }
    Ok(Creds {
        uid: status.euid,
        gid: status.egid,
        groups: status.groups,
    })
}

/// `snapshot` with its hashes, waiting at most `wait` for them.
async fn resolved(snapshot: &Snapshot, wait: Duration) -> Arc<Process> {
    match tokio::time::timeout(wait, snapshot.resolve()).await {
        Ok(p) => p,
        Err(_) => snapshot.current(),
    }
}

/// The parent's record: the one the process names, else the live record of
/// its ppid if that process started no later than the child.
fn parent_snapshot(h: &ApiHandles, p: &Process, start_boot_ns: u64) -> Option<Snapshot> {
    let table = h.table.lock().unwrap();
    if let Some(id) = &p.parent_exec_id {
        return table.by_exec_id(id).map(|r| r.snapshot.clone());
    }
    let r = table.get(p.ppid)?;
    (r.start_boottime_ns <= start_boot_ns).then(|| r.snapshot.clone())
}

/// The identity of `p` (started at `start_boot_ns`), with the credentials
/// given, else those /proc shows for that very process, else the record's.
async fn identity_of(
    svc: &AttestationService,
    p: &Process,
    start_boot_ns: u64,
    creds: Option<Creds>,
) -> Identity {
    let parent = match parent_snapshot(&svc.handles, p, start_boot_ns) {
        Some(s) => Some(resolved(&s, svc.hash_wait).await),
        None => None,
    };
    let creds = creds
        .or_else(|| check_live(p.pid, start_boot_ns, p.exe.inode, p.exe.dev).ok())
        .unwrap_or_else(|| Creds::from_record(p));
    let users = NameDb::load("/etc/passwd");
    let groups = NameDb::load("/etc/group");
    let hygiene = svc.handles.hygiene.of(p, svc.hash_wait).await;
    selectors::identity(
        p,
        &Context {
            creds: &creds,
            users: &users,
            groups: &groups,
            parent: parent.as_deref(),
            hygiene: &hygiene,
        },
    )
}

/// The live record of `pid`: its snapshot and start time.
fn live_record(h: &ApiHandles, pid: u32) -> Option<(Snapshot, u64)> {
    let table = h.table.lock().unwrap();
    table
        .get(pid)
        .map(|r| (r.snapshot.clone(), r.start_boottime_ns))
}

impl AttestationService {
    /// The Attest call, for in-process callers.
    pub async fn attest(&self, req: AttestRequest) -> Result<Identity, Status> {
        let pid = valid_pid(req.pid)?;
        // A re-exec processed while we waited for a hash: look again.
        for _ in 0..3 {
            let Some((snapshot, start_boot)) = live_record(&self.handles, pid) else {
                return Err(Status::not_found(format!(
                    "no live process with pid {pid} is known to the agent"
                )));
            };
            let exec_id = snapshot.process.exec_id.clone();
            if let Some(want) = &req.exec_id {
                if **want != *exec_id {
                    return Err(Status::not_found(format!(
                        "pid {pid} is exec_id {exec_id} now, not {want}"
                    )));
                }
            }
            if let Some(t) = req.start_time_ns {
                if !start_matches(start_boot, t) {
                    return Err(Status::not_found(format!(
                        "pid {pid} was reused: the live process started at {} (epoch ns {}), \
                         not at epoch ns {t}",
                        crate::event::rfc3339_ns(snapshot.process.start_time_ns),
                        snapshot.process.start_time_ns
                    )));
                }
            }
            let process = resolved(&snapshot, self.hash_wait).await;
            let creds = check_live(pid, start_boot, process.exe.inode, process.exe.dev)?;
            let still = live_record(&self.handles, pid)
                .is_some_and(|(s, b)| s.process.exec_id == exec_id && b == start_boot);
            if !still {
                continue;
            }
            return Ok(identity_of(self, &process, start_boot, Some(creds)).await);
        }
        Err(Status::unavailable(format!(
            "pid {pid} keeps exec'ing new binaries; retry"
        )))
    }

    async fn watch_stream(
        &self,
        req: WatchRequest,
    ) -> Result<mpsc::Receiver<Result<WatchEvent, Status>>, Status> {
        let pid = valid_pid(req.pid)?;
        // Subscribe before looking at the table so that nothing after it is missed.
        let events = self.handles.events.subscribe();
        let (tx, rx) = mpsc::channel(16);
        if let Some(id) = &req.exec_id {
            let gone = {
                let table = self.handles.table.lock().unwrap();
                let live = table.get(pid).is_some_and(|r| r.exec_id() == id);
                match table.by_exec_id(id) {
                    Some(r) if !live && r.snapshot.process.pid == pid => {
                        Some((r.snapshot.clone(), r.start_boottime_ns))
                    }
                    _ => None,
                }
            };
            if let Some((snapshot, start)) = gone {
                let p = resolved(&snapshot, self.hash_wait).await;
                let identity = identity_of(self, &p, start, Some(Creds::from_record(&p))).await;
                let _ = tx.try_send(Ok(watch_event(WatchKind::Exited, identity)));
                return Ok(rx);
            }
        }
        let identity = self
            .attest(AttestRequest {
                pid: req.pid,
                start_time_ns: None,
                exec_id: req.exec_id.clone(),
            })
            .await?;
        let Some((_, start_boot)) = live_record(&self.handles, pid) else {
            return Err(Status::not_found(format!("pid {pid} has exited")));
        };
        let _ = tx.try_send(Ok(watch_event(WatchKind::Current, identity.clone())));
        let watcher = Watcher {
            svc: self.clone(),
            pid,
            start_boot,
            current: identity,
            tx,
        };
        tokio::spawn(watcher.run(events));
        Ok(rx)
    }
}

fn watch_event(kind: WatchKind, identity: Identity) -> WatchEvent {
    WatchEvent {
        kind: kind as i32,
        identity: Some(identity),
    }
}

/// One open Watch.
struct Watcher {
    svc: AttestationService,
    pid: u32,
    start_boot: u64,
    current: Identity,
    tx: mpsc::Sender<Result<WatchEvent, Status>>,
}

enum Step {
    Continue,
    Done,
}

impl Watcher {
    async fn run(mut self, mut events: tokio::sync::broadcast::Receiver<Arc<crate::event::Event>>) {
        let mut shutdown = self.svc.shutdown.clone();
        let mut poll = tokio::time::interval(WATCH_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        poll.tick().await;
        loop {
            let step = tokio::select! {
                _ = self.tx.closed() => Step::Done,
                r = shutdown.changed() => {
                    if r.is_err() || *shutdown.borrow() {
                        let _ = self.tx.send(Err(Status::unavailable("the agent is shutting down"))).await;
                        Step::Done
                    } else {
                        Step::Continue
                    }
                }
                r = events.recv() => match r {
                    Ok(ev) => self.on_event(&ev).await,
                    // Missed events: the table and /proc still tell the state.
                    Err(RecvError::Lagged(_)) => self.poll().await,
                    Err(RecvError::Closed) => {
                        let _ = self.tx.send(Err(Status::unavailable("the agent stopped"))).await;
                        Step::Done
                    }
                },
                _ = poll.tick() => self.poll().await,
            };
            if let Step::Done = step {
                return;
            }
        }
    }

    fn same_process(&self, p: &Process) -> bool {
        p.pid == self.pid && start_matches(self.start_boot, p.start_time_ns)
    }

    async fn send(&self, kind: WatchKind, identity: Identity) -> Step {
        if self.tx.send(Ok(watch_event(kind, identity))).await.is_err() {
            return Step::Done;
        }
        match kind {
            WatchKind::Exited => Step::Done,
            _ => Step::Continue,
        }
    }

    async fn changed(&mut self, p: &Process) -> Step {
        let identity = identity_of(&self.svc, p, self.start_boot, None).await;
        self.current = identity.clone();
        self.send(WatchKind::Changed, identity).await
    }

    async fn exited(&self, p: Option<&Process>) -> Step {
        let identity = match p {
            Some(p) => {
                identity_of(&self.svc, p, self.start_boot, Some(Creds::from_record(p))).await
            }
            None => self.current.clone(),
        };
        self.send(WatchKind::Exited, identity).await
    }

    async fn on_event(&mut self, ev: &crate::event::Event) -> Step {
        if ev.process.pid != self.pid {
            return Step::Continue;
        }
        match ev.kind {
            Kind::ProcessExit if self.same_process(&ev.process) => {
                self.exited(Some(&ev.process)).await
            }
            // The table is never behind the events (the reader updates it
            // before the event goes out) and events may lag behind it: an
            // exec event only says "look", so that a late one can never
            // take the watch back to an older image.
            Kind::ProcessExec => self.poll().await,
            _ => Step::Continue,
        }
    }

    /// Re-reads the table and /proc.
    async fn poll(&mut self) -> Step {
        let rec = live_record(&self.svc.handles, self.pid)
            .filter(|(_, b)| liveness::same_start_tick(*b, self.start_boot));
        let Some((snapshot, _)) = rec else {
            let last = {
                let table = self.svc.handles.table.lock().unwrap();
                table
                    .by_exec_id(&self.current.exec_id)
                    .map(|r| r.snapshot.clone())
            };
            return match last {
                Some(s) => {
                    let p = resolved(&s, self.svc.hash_wait).await;
                    self.exited(Some(&p)).await
                }
                None => self.exited(None).await,
            };
        };
        if !liveness::still_running(self.pid, self.start_boot) {
            let p = resolved(&snapshot, self.svc.hash_wait).await;
            return self.exited(Some(&p)).await;
        }
        if *snapshot.process.exec_id != *self.current.exec_id {
            let p = resolved(&snapshot, self.svc.hash_wait).await;
            return self.changed(&p).await;
        }
        Step::Continue
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, Status>> + Send>>;

#[tonic::async_trait]
impl attestation_server::Attestation for AttestationService {
    async fn attest(
        &self,
        request: Request<AttestRequest>,
    ) -> Result<Response<AttestResponse>, Status> {
        let identity = AttestationService::attest(self, request.into_inner()).await?;
        Ok(Response::new(AttestResponse {
            identity: Some(identity),
        }))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let rx = self.watch_stream(request.into_inner()).await?;
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_range() {
        for bad in [0, -1, i32::MIN, PID_MAX + 1, 99_999_999] {
            assert_eq!(
                valid_pid(bad).unwrap_err().code(),
                tonic::Code::InvalidArgument,
                "{bad}"
            );
        }
        assert_eq!(valid_pid(1).unwrap(), 1);
        assert_eq!(valid_pid(PID_MAX).unwrap(), PID_MAX as u32);
    }

    #[test]
    fn start_time_tolerance() {
        let t = tick_ns();
        let rec = 1_000 * t + 123;
        let epoch = |boot: u64| boot + boot_epoch_ns();
        assert!(start_matches(rec, epoch(rec)));
        assert!(start_matches(rec, epoch(1_000 * t)));
        assert!(start_matches(rec, epoch(1_001 * t + 5)));
        assert!(!start_matches(rec, epoch(1_002 * t)));
        assert!(!start_matches(rec, epoch(998 * t)));
        assert!(!start_matches(rec, 0));
    }

    #[test]
    fn live_check_of_this_process() {
        use std::os::unix::fs::MetadataExt;
        let me = std::process::id();
        let stat = procfs::process::Process::myself().unwrap().stat().unwrap();
        let exe = std::fs::metadata("/proc/self/exe").unwrap();
        let start = stat.starttime * tick_ns();
        let creds = check_live(me, start, exe.ino(), exe.dev()).unwrap();
        assert_eq!(creds.uid, unsafe { libc::geteuid() });
        let e = check_live(me, start + 10 * tick_ns(), exe.ino(), exe.dev()).unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound);
        assert!(e.message().contains("reused"), "{}", e.message());
        let e = check_live(me, start, exe.ino() + 1, exe.dev()).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unavailable);
        let e = check_live(PID_MAX as u32, start, 1, 1).unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound);
    }
}
