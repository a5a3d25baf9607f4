//! Loads the eBPF object, patches in the kernel's struct offsets, attaches the
//! programs, and hands out the maps userspace reads.

use std::{path::Path, sync::Arc};

use anyhow::{Context, Result};
use aya::{
    maps::{Array, HashMap, MapData, PerCpuArray, RingBuf},
    programs::{BtfTracePoint, CgroupAttachMode, CgroupSockAddr, TracePoint},
    Btf, Ebpf, EbpfLoader,
};
use proctor_common::{
    AllowKey, InodeKey, IoUringOffsets, QuarantineEntry, HOOK_FLAG_CONNECT_TRACEPOINTS,
    HOOK_FLAG_QUARANTINE, NAME_KEY_LEN,
};
use serde::{Deserialize, Serialize};

use crate::kernel::{btf_offsets, connect_sweep::ConnectSweeper, tmpfs_watch::TmpfsWatch};

/// The hook set for file access: `auto` picks the cheapest set the kernel
/// allows (lsm, else page-cache with its fanotify group, else syscall); the
/// others force one and make start-up fail when the kernel refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileHooks {
    #[default]
    Auto,
    /// `lsm/file_open`: every open of a watched file, no syscall tracing.
    Lsm,
    /// `mm_filemap_*` tracepoints: reads and mmap faults of watched inodes.
    PageCache,
    /// The open syscalls' exit tracepoints (slow path for every syscall).
    Syscall,
}

/// The eBPF object built by agent/build.rs.
pub static BPF_OBJECT: &[u8] = aya::include_bytes_aligned!(env!("PROCTOR_BPF_OBJECT"));

/// (program name in the object, tp_btf tracepoint): the process hooks, with
/// direct BTF loads.
pub const PROCESS_HOOKS: &[(&str, &str)] = &[
    ("sched_process_exec", "sched_process_exec"),
    ("sched_process_fork", "sched_process_fork"),
    ("sched_process_exit", "sched_process_exit"),
];

/// The same with helper reads, for a verifier that refuses direct loads.
pub const PROCESS_PROBE_HOOKS: &[(&str, &str)] = &[
    ("sched_process_exec_probe", "sched_process_exec"),
    ("sched_process_fork_probe", "sched_process_fork"),
    ("sched_process_exit_probe", "sched_process_exit"),
];

/// (program name in the object, syscalls tracepoint) of the `syscall` file
/// hook set, the last fallback. A syscall the architecture lacks (open,
/// creat on arm64) has no tracepoint and is skipped.
pub const OPEN_HOOKS: &[(&str, &str)] = &[
    ("sys_exit_openat", "sys_exit_openat"),
    ("sys_exit_openat2", "sys_exit_openat2"),
    ("sys_exit_open", "sys_exit_open"),
    ("sys_exit_creat", "sys_exit_creat"),
];

/// connect(2)'s tracepoints: attached with the `syscall` file set (its
/// syscalls are traced anyway; they give the fd and the synchronous
/// result), or where the cgroup socket hooks are missing.
pub const CONNECT_HOOKS: &[(&str, &str)] = &[
    ("sys_enter_connect", "sys_enter_connect"),
    ("sys_exit_connect", "sys_exit_connect"),
];

/// (program name in the object, tp_btf tracepoint) of the `page-cache` file
/// hook set: buffered reads, and mmap faults (a page already cached is
/// mapped by `map_pages` without a fault).
pub const PAGE_CACHE_HOOKS: &[(&str, &str)] = &[
    ("mm_filemap_get_pages", "mm_filemap_get_pages"),
    ("mm_filemap_fault", "mm_filemap_fault"),
    ("mm_filemap_map_pages", "mm_filemap_map_pages"),
];

/// The same with helper reads instead of direct BTF loads, for a verifier
/// that refuses those.
pub const PAGE_CACHE_PROBE_HOOKS: &[(&str, &str)] = &[
    ("mm_filemap_get_pages_probe", "mm_filemap_get_pages"),
    ("mm_filemap_fault_probe", "mm_filemap_fault"),
    ("mm_filemap_map_pages_probe", "mm_filemap_map_pages"),
];

/// How file access is watched (see `kernel.file_hooks`).
#[derive(Debug, Clone, Copy, Default)]
pub struct FileAccess {
    pub hooks: FileHooks,
    /// `kernel.repeat_window` in ns (0: report every access).
    pub repeat_window_ns: u64,
}

/// Enforcement maps, filled by the agent.
pub struct EnforcementMaps {
    pub deny_inodes: HashMap<MapData, InodeKey, u32>,
    pub allowed_readers: HashMap<MapData, AllowKey, u32>,
    pub quarantine: HashMap<MapData, u32, QuarantineEntry>,
    pub hook_flags: HookFlags,
}

impl EnforcementMaps {
    /// Quarantines `pid`, after telling the hooks that a quarantine exists
    /// (until then they skip looking for one). Quarantines are rare: the
    /// flag is simply set again each time.
    pub fn quarantine(&mut self, pid: u32, entry: QuarantineEntry) -> Result<()> {
        self.hook_flags.set(HOOK_FLAG_QUARANTINE)?;
        self.quarantine
            .insert(pid, entry, 0)
            .context("cannot add to the kernel's QUARANTINE map")
    }
}

/// The `HOOK_FLAGS` array (see `proctor_common::HOOK_FLAG_*`).
pub struct HookFlags(Array<MapData, u32>);

impl HookFlags {
    fn take(ebpf: &mut Ebpf) -> Result<Self> {
        let map = ebpf
            .take_map("HOOK_FLAGS")
            .context("eBPF object has no map HOOK_FLAGS")?;
        Ok(Self(Array::try_from(map)?))
    }

    /// Sets `slot`; flags are never cleared.
    fn set(&mut self, slot: u32) -> Result<()> {
        self.0
            .set(slot, 1, 0)
            .with_context(|| format!("cannot set slot {slot} of HOOK_FLAGS"))
    }
}

/// The kernel-side filter of file opens, filled by the agent.
pub struct OpenFilter {
    pub inodes: HashMap<MapData, InodeKey, u32>,
    pub dirs: HashMap<MapData, InodeKey, u32>,
    pub names: HashMap<MapData, [u8; NAME_KEY_LEN], u32>,
    pub parents: HashMap<MapData, [u8; NAME_KEY_LEN], u32>,
    pub name_lengths: Array<MapData, u64>,
    /// Bitmap of watched file and directory inode numbers, tested before
    /// any hash lookup (every page-cache read, every open).
    pub read_prefilter: Array<MapData, u64>,
    /// Bitmap of watched basenames' lengths and first bytes, tested before
    /// an open's name is read whole.
    pub name_prefilter: Array<MapData, u64>,
}

/// A hook that should have attached and did not.
#[derive(Debug, Clone, Serialize)]
pub struct Unattached {
    pub hook: String,
    pub cause: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttachedProgram {
    pub hook: String,
    /// Kernel program id (`bpftool prog show id N`).
    pub id: u32,
}

pub struct Probes {
    /// Owns programs and links: dropping it detaches everything.
    pub ebpf: Ebpf,
    /// Taken by the reader loop.
    pub events: Option<RingBuf<MapData>>,
    pub drops: PerCpuArray<MapData, u64>,
    pub sent: PerCpuArray<MapData, u64>,
    pub logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    pub attached: Vec<AttachedProgram>,
    /// Hooks that exist on this kernel but could not be attached, and why.
    pub unattached: Vec<Unattached>,
    /// Taken by the secret monitor.
    pub open_filter: Option<OpenFilter>,
    pub enforcement: Option<EnforcementMaps>,
    /// Whether forbidden opens are refused by the LSM hook (else killed).
    pub lsm_deny: bool,
    /// Reports the parked TCP connects that never started a handshake.
    pub connect_sweeper: ConnectSweeper,
    /// fanotify marks on watched secrets on tmpfs, beside the page-cache set.
    pub tmpfs: Option<Arc<TmpfsWatch>>,
}

/// What each file hook set cannot see, for `proctor doctor` and the docs.
pub fn file_blind_spots(set: &str) -> &'static str {
    match set {
        "lsm" => "nothing the open path shows; reads through an fd opened before the agent started are not opens",
        "page-cache" => {
            "mmap of a secret on tmpfs (shmem faults bypass these tracepoints; its read(2)s \
             are seen through fanotify inode marks, see hook_set.tmpfs_reads), an open without a read (no data: not a credential read), \
             O_DIRECT and DAX reads (they bypass the page cache), for about a second secrets \
             created or renamed into a directory that holds one, elsewhere until the next \
             secrets rescan (secrets.rescan_interval); paths are the catalogued ones (a hard \
             link reads as its catalogued name); unix-socket connects where BPF LSM is not \
             active (no connect syscall tracepoint on this set: see the connect path)"
        }
        "syscall" => "nothing the open syscalls show; costs every syscall of every task the traced slow path",
        _ => "every file access: no file hook attached",
    }
}

/// What each connect path cannot see, for `proctor doctor` and the docs
/// (`connect` of [`HookSet`]).
pub fn connect_blind_spots(connect: &str) -> &'static str {
    match connect {
        "tracepoint+cgroup" | "tracepoint" => "nothing connect(2) and the cgroup hooks show",
        "cgroup+tp_btf+lsm" => {
            "the errno of a TCP connect that fails before its handshake (no route, refused by \
             another program: reported about 2 s later as failed_before_handshake); the fd"
        }
        "cgroup+tp_btf" => {
            "unix-socket connects and datagrams (no BPF LSM active: boot with lsm=...,bpf to see \
             them); the errno of a TCP connect that fails before its handshake (reported about \
             2 s later as failed_before_handshake); the fd"
        }
        _ => "every connect: no connect hook attached",
    }
}

/// Which kind of hook carries each kind of evidence on this kernel: decided
/// at load from what actually attached (`agent_status.hook_set`, `proctor doctor`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HookSet {
    /// exec, fork and exit.
    pub exec: String,
    /// The file hook set in use: `lsm`, `page-cache`, `syscall` or `none`
    /// (`kernel.file_hooks`).
    pub file_access: String,
    /// `tracepoint`, or `tracepoint+lsm` where the LSM hook also refuses
    /// forbidden opens (`enforce: kill`).
    pub file_open: String,
    /// `tracepoint+cgroup` (connect(2)'s tracepoints, the cgroup hooks for
    /// connects made without it: the `syscall` file set), `cgroup+tp_btf`
    /// (the cgroup hooks report every inet connect, `inet_sock_set_state`
    /// its TCP outcome: no syscall tracing; unix-socket connects unseen), or
    /// `cgroup+tp_btf+lsm` (the same, unix-socket connects and datagrams
    /// from the BPF LSM hooks); `tracepoint` alone without cgroup v2.
    pub connect: String,
    /// `cgroup` when the cgroup connect hooks are attached (block-egress can
    /// refuse connects and datagrams), else `none`.
    pub egress: String,
    /// Datagrams sent to an explicit address (UDP `sendto`): `cgroup` when
    /// the sendmsg4/6 hooks are attached, else `none`.
    pub datagram: String,
    /// io_uring requests (opcode use, `IORING_OP_OPENAT[2]` of watched
    /// files): `tp_btf` when its tracepoints are attached, else `none`.
    pub io_uring: String,
    /// Reads of watched secrets on tmpfs on the page-cache set: `fanotify`
    /// (inode marks), else `none`.
    pub tmpfs_reads: String,
}

impl HookSet {
    pub fn of(attached: &[AttachedProgram]) -> HookSet {
        let kinds = |prefixes: &[&str]| -> String {
            let mut found: Vec<&str> = Vec::new();
            for a in attached {
                for p in prefixes {
                    let kind = p.split('/').next().unwrap_or(p);
                    if a.hook.starts_with(p) && !found.contains(&kind) {
                        found.push(kind);
                    }
                }
            }
            if found.is_empty() {
                "none".into()
            } else {
                found.join("+")
            }
        };
        let has = |p: &str| attached.iter().any(|a| a.hook.starts_with(p));
        // The deny-only LSM program rides along another set; alone it is the LSM set.
        let file_access = if has("tp_btf/mm_filemap_get_pages") {
            "page-cache"
        } else if has("tracepoint/syscalls/sys_exit_open") {
            "syscall"
        } else if has("lsm/file_open") {
            "lsm"
        } else {
            "none"
        };
        HookSet {
            exec: kinds(&["tp_btf/sched_process_exec"]),
            file_access: file_access.into(),
            file_open: kinds(&[
                "tracepoint/syscalls/sys_exit_open",
                "tp_btf/mm_filemap",
                "lsm/file_open",
            ]),
            // Named in this order whatever order the hooks attached in.
            connect: if has("tracepoint/syscalls/sys_enter_connect") {
                if has("cgroup/connect") {
                    "tracepoint+cgroup".into()
                } else {
                    "tracepoint".into()
                }
            } else if !has("cgroup/connect") {
                "none".into()
            } else if has("lsm/unix_stream_connect") {
                "cgroup+tp_btf+lsm".into()
            } else {
                "cgroup+tp_btf".into()
            },
            egress: kinds(&["cgroup/connect"]),
            datagram: kinds(&["cgroup/sendmsg"]),
            io_uring: kinds(&["tp_btf/io_uring_complete"]),
            // No kernel program: [`Probes::hook_set`] says whether the group is open.
            tmpfs_reads: "none".into(),
        }
    }

    /// One line for humans: `exec: tp_btf, file_open: tracepoint+lsm, ...`.
    pub fn summary(&self) -> String {
        format!(
            "exec: {}, file_access: {}, file_open: {}, connect: {}, egress: {}, datagram: {}, io_uring: {}, tmpfs_reads: {}",
            self.exec,
            self.file_access,
            self.file_open,
            self.connect,
            self.egress,
            self.datagram,
            self.io_uring,
            self.tmpfs_reads
        )
    }
}

/// Optional enforcement hooks to try at load.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnforcementHooks {
    /// block-egress is configured: the cgroup sock_addr hooks (attached for
    /// monitoring whenever cgroup v2 exists) become required.
    pub block_egress: bool,
    /// The LSM deny-open path for kill rules, where the kernel allows it.
    pub lsm_deny: bool,
}

impl Probes {
    pub fn hook_set(&self) -> HookSet {
        let mut set = HookSet::of(&self.attached);
        // A group whose reader loop ended sees nothing any more.
        if self.tmpfs.as_ref().is_some_and(|t| !t.stopped()) {
            set.tmpfs_reads = "fanotify".into();
        }
        set
    }

    /// How `enforce: kill` is carried out: `lsm-deny`, `tracepoint-sigkill`
    /// from the open tracepoint, or `none` when neither hook is attached.
    pub fn kill_enforcement(&self) -> &'static str {
        kill_enforcement(self.lsm_deny, &self.hook_set())
    }

    /// Why `hook` (a prefix of the hook names) did not attach, if known.
    pub fn why_missing(&self, hook: &str) -> Option<&str> {
        self.unattached
            .iter()
            .find(|u| u.hook.starts_with(hook))
            .map(|u| u.cause.as_str())
    }
}

/// See [`Probes::kill_enforcement`].
pub fn kill_enforcement(lsm_deny: bool, set: &HookSet) -> &'static str {
    if lsm_deny {
        "lsm-deny"
    } else if set.file_open.contains("tracepoint") || set.file_open.contains("tp_btf") {
        // From the open syscalls' exit or the page-cache read hook.
        "tracepoint-sigkill"
    } else {
        "none"
    }
}

/// `direct_loads` false: the programs that come in two kinds load their
/// helper-read kind (`kernel.direct_loads`).
pub fn load(
    ring_buffer_bytes: u32,
    wakeup_bytes: u64,
    hooks: EnforcementHooks,
    files: FileAccess,
    direct_loads: bool,
) -> Result<Probes> {
    let kernel_btf = btf_offsets::load_kernel_btf(Path::new(btf_offsets::VMLINUX_BTF))?;
    let offsets = btf_offsets::resolve(&kernel_btf)?;
    let io_uring_offsets = resolve_io_uring(&kernel_btf);
    let btf = Btf::from_sys_fs().context("cannot read kernel BTF for program loading")?;
    let has_task_pt_regs = u8::from(has_task_pt_regs());
    let has_task_btf = u8::from(kernel_at_least(5, 11));
    if has_task_btf == 0 {
        tracing::warn!(
            "this kernel predates bpf_get_current_task_btf (Linux 5.11): block-egress \
             quarantine matches by tgid alone (the kernel's exit hook still removes each entry), \
             and connects that fail before the handshake are named by pid alone"
        );
    }
    if has_task_pt_regs == 0 {
        tracing::warn!(
            "this kernel predates bpf_task_pt_regs (Linux 5.15): file-open events carry no \
             requested_path (the path as the program passed it); the opened file's own path, \
             inode and every finding are unaffected"
        );
    }

    let mut ebpf = EbpfLoader::new()
        .btf(Some(&btf))
        .override_global("OFFSETS", &offsets, true)
        .override_global("WAKEUP_BYTES", &wakeup_bytes, true)
        .override_global("AGENT_TGID", &std::process::id(), true)
        .override_global("HAS_TASK_PT_REGS", &has_task_pt_regs, true)
        .override_global("HAS_TASK_BTF", &has_task_btf, true)
        .override_global("READ_REPEAT_WINDOW_NS", &files.repeat_window_ns, true)
        .override_global(
            "IO_URING_OFFSETS",
            io_uring_offsets.as_ref().unwrap_or(&IoUringOffsets::UNSET),
            true,
        )
        .map_max_entries("EVENTS", ring_buffer_bytes)
        .load(BPF_OBJECT)
        .context(
            "cannot load proctor's eBPF object into the kernel (see the verifier log above)",
        )?;

    let logger = match aya_log::EbpfLogger::init(&mut ebpf) {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!("eBPF probe diagnostics (aya-log) unavailable: {e}");
            None
        }
    };

    let refused = "the kernel refused the program; `proctor doctor` shows which program types \
                   this kernel allows";
    let mut attached = attach_either_kind(
        &mut ebpf,
        &btf,
        direct_loads,
        "process",
        PROCESS_HOOKS,
        PROCESS_PROBE_HOOKS,
    )
    .context(refused)?;
    attached.push(
        attach_btf_hook(
            &mut ebpf,
            &btf,
            "inet_sock_set_state",
            "inet_sock_set_state",
        )
        .context(refused)?,
    );

    let mut unattached = Vec::new();
    let mut hook_flags = HookFlags::take(&mut ebpf)?;
    let (file_set, tmpfs) = attach_file_hooks(
        &mut ebpf,
        &btf,
        files.hooks,
        direct_loads,
        &mut attached,
        &mut unattached,
    )?;

    let socket_hooks = match attach_socket_hooks(&mut ebpf, &mut attached) {
        Ok(()) => true,
        Err(e) if hooks.block_egress => {
            return Err(e.context(
                "block-egress rules need the cgroup socket hooks; fix the cause above, or remove \
                 `block-egress` from secrets.rules[].enforce",
            ));
        }
        // Monitoring keeps the connect tracepoints; what is lost is said once.
        Err(e) => {
            tracing::warn!(
                "cgroup socket hooks unavailable ({e:#}): UDP datagrams sent with sendto and \
                 io_uring connects are not reported; connects come from the connect(2) \
                 tracepoints (every syscall on the traced slow path)"
            );
            false
        }
    };
    // Any syscall tracepoint puts every syscall of every task on the traced
    // slow path: the sets built to avoid it report connects from the cgroup
    // hooks and the TCP state machine instead.
    if socket_hooks && matches!(file_set, FileHooks::Lsm | FileHooks::PageCache) {
        if [
            offsets.unix_sock_addr,
            offsets.unix_address_len,
            offsets.unix_address_name,
            offsets.sock_sk_type,
        ]
        .contains(&proctor_common::OFFSET_MISSING)
        {
            tracing::warn!(
                "kernel BTF has no unix_sock.addr / unix_address (unix sockets built as a \
                 module?): unix-socket connects are not reported on this hook set"
            );
        } else if let Err(e) = attach_unix_lsm(&mut ebpf, &btf, &mut attached) {
            // The lsm set has BPF LSM by definition: a refusal there is a
            // fault to show; on the page-cache set it is the documented blind spot.
            if file_set == FileHooks::Lsm {
                unattached.push(Unattached {
                    hook: "lsm/unix_stream_connect".into(),
                    cause: format!("{e:#}"),
                });
            }
            tracing::warn!(
                "unix-socket LSM hooks unavailable ({e:#}): unix-socket connects and datagrams \
                 are not reported on this hook set (no syscall tracepoint is attached for them)"
            );
        }
    } else {
        // Before they attach: from their first connect on, the cgroup hook
        // must leave the connects they follow to them.
        hook_flags.set(HOOK_FLAG_CONNECT_TRACEPOINTS)?;
        attach_syscall_hooks(&mut ebpf, CONNECT_HOOKS, &mut attached, &mut unattached);
    }
    match io_uring_offsets {
        Ok(_) => match attach_io_uring(&mut ebpf, &btf, &mut attached) {
            Ok(()) => {}
            Err(e) => tracing::warn!(
                "io_uring tracepoints unavailable ({e:#}): opens through io_uring are not reported"
            ),
        },
        Err(e) => tracing::info!("io_uring hooks skipped: {e:#}"),
    }
    // The LSM set refuses forbidden opens itself.
    let mut lsm_deny = file_set == FileHooks::Lsm;
    if hooks.lsm_deny && !lsm_deny {
        match attach_lsm(&mut ebpf, &btf, "deny_file_open") {
            Ok(id) => {
                attached.push(AttachedProgram {
                    hook: "lsm/file_open".into(),
                    id,
                });
                lsm_deny = true;
            }
            // The documented fallback, not an error: kill from the open tracepoint.
            Err(e) => tracing::info!(
                "LSM deny-open path unavailable ({e:#}); `enforce: kill` uses the open tracepoint"
            ),
        }
    }

    let take = |ebpf: &mut Ebpf, name: &str| {
        ebpf.take_map(name)
            .with_context(|| format!("eBPF object has no map {name}"))
    };
    let open_filter = OpenFilter {
        inodes: HashMap::try_from(take(&mut ebpf, "WATCHED_INODES")?)?,
        dirs: HashMap::try_from(take(&mut ebpf, "WATCHED_DIRS")?)?,
        names: HashMap::try_from(take(&mut ebpf, "WATCHED_NAMES")?)?,
        parents: HashMap::try_from(take(&mut ebpf, "WATCHED_PARENTS")?)?,
        name_lengths: Array::try_from(take(&mut ebpf, "NAME_LENGTHS")?)?,
        read_prefilter: Array::try_from(take(&mut ebpf, "READ_PREFILTER")?)?,
        name_prefilter: Array::try_from(take(&mut ebpf, "NAME_PREFILTER")?)?,
    };
    let enforcement = EnforcementMaps {
        deny_inodes: HashMap::try_from(take(&mut ebpf, "DENY_INODES")?)?,
        allowed_readers: HashMap::try_from(take(&mut ebpf, "ALLOWED_READERS")?)?,
        quarantine: HashMap::try_from(take(&mut ebpf, "QUARANTINE")?)?,
        hook_flags,
    };
    let connect_sweeper = ConnectSweeper::new(
        HashMap::try_from(take(&mut ebpf, "CONNECT_PENDING")?)?,
        HashMap::try_from(take(&mut ebpf, "CONNECT_SEEN")?)?,
    );
    let events = RingBuf::try_from(ebpf.take_map("EVENTS").context("no EVENTS map")?)?;
    let drops = PerCpuArray::try_from(ebpf.take_map("DROPS").context("no DROPS map")?)?;
    let sent = PerCpuArray::try_from(ebpf.take_map("SENT").context("no SENT map")?)?;
    Ok(Probes {
        ebpf,
        events: Some(events),
        drops,
        sent,
        logger,
        attached,
        unattached,
        open_filter: Some(open_filter),
        enforcement: Some(enforcement),
        lsm_deny,
        connect_sweeper,
        tmpfs,
    })
}

/// Whether the kernel has the `bpf_task_pt_regs` helper (added in 5.15;
/// distribution kernels do not backport BPF helpers).
fn has_task_pt_regs() -> bool {
    kernel_at_least(5, 15)
}

fn kernel_at_least(major: u8, minor: u8) -> bool {
    aya::util::KernelVersion::current()
        .is_ok_and(|v| v >= aya::util::KernelVersion::new(major, minor, 0))
}

/// Where aya finds syscall tracepoints: tracefs, or tracefs under debugfs.
const TRACEFS_ROOTS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// Loads and attaches one syscalls tracepoint; `None` when the kernel has
/// no such syscall (open and creat on arm64).
fn attach_syscall_hook(ebpf: &mut Ebpf, name: &str, tp: &str, hook: &str) -> Result<Option<u32>> {
    let Some(root) = TRACEFS_ROOTS
        .iter()
        .find(|r| Path::new(r).join("events/syscalls").is_dir())
    else {
        anyhow::bail!(
            "tracefs is not mounted (no events/syscalls under {}); mount it \
             (`mount -t tracefs tracefs /sys/kernel/tracing`) or give the agent CAP_SYS_ADMIN \
             so that it mounts tracefs itself",
            TRACEFS_ROOTS.join(" or ")
        );
    };
    if !Path::new(root).join("events/syscalls").join(tp).exists() {
        return Ok(None);
    }
    let prog: &mut TracePoint = ebpf
        .program_mut(name)
        .with_context(|| format!("eBPF object has no program {name}"))?
        .try_into()
        .with_context(|| format!("program {name} is not a tracepoint program"))?;
    prog.load().with_context(|| format!("cannot load {hook}"))?;
    prog.attach("syscalls", tp)
        .with_context(|| format!("cannot attach {hook} (tracefs at {root})"))?;
    Ok(Some(prog.info().map(|i| i.id()).unwrap_or(0)))
}

/// Attaches the file hook set `want` asks for (`auto`: lsm where the kernel
/// allows it, else page-cache with fanotify marks for tmpfs, else syscall)
/// and says which one is in use. A forced set the kernel refuses is an
/// error naming the cause and the fix.
fn attach_file_hooks(
    ebpf: &mut Ebpf,
    btf: &Btf,
    want: FileHooks,
    direct_loads: bool,
    attached: &mut Vec<AttachedProgram>,
    unattached: &mut Vec<Unattached>,
) -> Result<(FileHooks, Option<Arc<TmpfsWatch>>)> {
    let forced = |set: &str, e: anyhow::Error| {
        e.context(format!(
            "kernel.file_hooks is {set}, which this kernel refuses; set it to auto (proctor \
             picks the cheapest set the kernel allows) or fix the cause above"
        ))
    };
    if matches!(want, FileHooks::Auto | FileHooks::Lsm) {
        match attach_lsm(ebpf, btf, "file_open_lsm") {
            Ok(id) => {
                attached.push(AttachedProgram {
                    hook: "lsm/file_open".into(),
                    id,
                });
                return Ok((FileHooks::Lsm, None));
            }
            Err(e) if want == FileHooks::Lsm => return Err(forced("lsm", e)),
            Err(e) => tracing::info!("file hook set lsm unavailable ({e:#}); trying page-cache"),
        }
    }
    // shmem has its own read path, which the page-cache tracepoints do not
    // see (Kubernetes Secret volumes, /run, /dev/shm): `auto` takes this set
    // only with the fanotify group that marks the watched files on tmpfs.
    if matches!(want, FileHooks::Auto | FileHooks::PageCache) {
        let tmpfs = match TmpfsWatch::open() {
            Ok(t) => Some(t),
            Err(e) if want == FileHooks::PageCache => {
                tracing::warn!(
                    "{e:#}: reads of secrets on tmpfs are not seen on the page-cache set"
                );
                None
            }
            Err(e) => {
                tracing::info!("file hook set page-cache unavailable ({e:#}); using syscall");
                return attach_syscall_set(ebpf, attached, unattached);
            }
        };
        let page_cache = attach_either_kind(
            ebpf,
            btf,
            direct_loads,
            "page-cache",
            PAGE_CACHE_HOOKS,
            PAGE_CACHE_PROBE_HOOKS,
        );
        match page_cache {
            Ok(mine) => {
                attached.extend(mine);
                return Ok((FileHooks::PageCache, tmpfs));
            }
            Err(e) if want == FileHooks::PageCache => return Err(forced("page-cache", e)),
            Err(e) => {
                tracing::info!("file hook set page-cache unavailable ({e:#}); using syscall")
            }
        }
    }
    attach_syscall_set(ebpf, attached, unattached)
}

/// The last fallback: the open syscalls' exit tracepoints.
fn attach_syscall_set(
    ebpf: &mut Ebpf,
    attached: &mut Vec<AttachedProgram>,
    unattached: &mut Vec<Unattached>,
) -> Result<(FileHooks, Option<Arc<TmpfsWatch>>)> {
    attach_syscall_hooks(ebpf, OPEN_HOOKS, attached, unattached);
    Ok((FileHooks::Syscall, None))
}

/// Syscall tracepoints, each optional here: start-up decides whether the
/// config can do without a missing one, and /readyz and agent_status report it.
fn attach_syscall_hooks(
    ebpf: &mut Ebpf,
    hooks: &[(&str, &str)],
    attached: &mut Vec<AttachedProgram>,
    unattached: &mut Vec<Unattached>,
) {
    for (name, tp) in hooks {
        let hook = format!("tracepoint/syscalls/{tp}");
        match attach_syscall_hook(ebpf, name, tp, &hook) {
            Ok(Some(id)) => attached.push(AttachedProgram { hook, id }),
            Ok(None) => {
                tracing::info!("{hook} does not exist on this kernel/architecture; skipped")
            }
            Err(e) => {
                tracing::warn!("{hook} not attached: {e:#}");
                unattached.push(Unattached {
                    hook,
                    cause: format!("{e:#}"),
                });
            }
        }
    }
}

/// A group of tp_btf hooks: all or none (what attached of a group that
/// failed is unloaded again, so no half set reports beside the fallback).
/// Attaches `direct` (programs with direct BTF loads), or `probe` (the same
/// programs with helper reads) where the verifier refuses the first or
/// `kernel.direct_loads` is false; `what` names the set in the log line.
fn attach_either_kind(
    ebpf: &mut Ebpf,
    btf: &Btf,
    direct_loads: bool,
    what: &str,
    direct: &[(&str, &str)],
    probe: &[(&str, &str)],
) -> Result<Vec<AttachedProgram>> {
    let first = if direct_loads {
        attach_btf_hooks(ebpf, btf, direct)
    } else {
        Err(anyhow::anyhow!("kernel.direct_loads is false"))
    };
    first.or_else(|e| {
        tracing::info!("{what} hooks with direct loads refused ({e:#}); using helper reads");
        attach_btf_hooks(ebpf, btf, probe)
    })
}

fn attach_btf_hooks(
    ebpf: &mut Ebpf,
    btf: &Btf,
    hooks: &[(&str, &str)],
) -> Result<Vec<AttachedProgram>> {
    let mut mine = Vec::new();
    for (name, tp) in hooks {
        match attach_btf_hook(ebpf, btf, name, tp) {
            Ok(a) => mine.push(a),
            Err(e) => {
                for (done, _) in &hooks[..mine.len()] {
                    let prog: Option<&mut BtfTracePoint> =
                        ebpf.program_mut(done).and_then(|p| p.try_into().ok());
                    if let Some(prog) = prog {
                        let _ = prog.unload();
                    }
                }
                return Err(e);
            }
        }
    }
    Ok(mine)
}

fn attach_btf_hook(ebpf: &mut Ebpf, btf: &Btf, name: &str, tp: &str) -> Result<AttachedProgram> {
    let hook = format!("tp_btf/{tp}");
    let prog: &mut BtfTracePoint = ebpf
        .program_mut(name)
        .with_context(|| format!("eBPF object has no program {name}"))?
        .try_into()?;
    prog.load(tp, btf)
        .with_context(|| format!("cannot load {hook}"))?;
    prog.attach()
        .with_context(|| format!("cannot attach {hook}"))?;
    let id = prog.info().map(|i| i.id()).unwrap_or(0);
    Ok(AttachedProgram { hook, id })
}

/// (program name in the object, LSM hook) for unix-socket connects and datagrams.
pub const UNIX_LSM_HOOKS: &[(&str, &str)] = &[
    ("unix_stream_connect", "unix_stream_connect"),
    ("unix_may_send", "unix_may_send"),
];

/// The unix-socket LSM hooks where BPF LSM is active; without them unix
/// connects are not seen on this set, which `hook_set.connect` (no `+lsm`)
/// and `proctor doctor` say.
fn attach_unix_lsm(ebpf: &mut Ebpf, btf: &Btf, attached: &mut Vec<AttachedProgram>) -> Result<()> {
    let mut mine = Vec::new();
    for (name, hook) in UNIX_LSM_HOOKS {
        match attach_lsm_hook(ebpf, btf, name, hook) {
            Ok(id) => mine.push(AttachedProgram {
                hook: format!("lsm/{hook}"),
                id,
            }),
            Err(e) => {
                // Half a pair would report stream connects and not datagrams: neither.
                for (done, _) in &UNIX_LSM_HOOKS[..mine.len()] {
                    let prog: Option<&mut aya::programs::Lsm> =
                        ebpf.program_mut(done).and_then(|p| p.try_into().ok());
                    if let Some(prog) = prog {
                        let _ = prog.unload();
                    }
                }
                return Err(e);
            }
        }
    }
    attached.extend(mine);
    Ok(())
}

/// An lsm/file_open program (`deny_file_open` refuses forbidden reads;
/// `file_open_lsm` also reports every watched open). Needs a kernel with
/// BPF LSM active (`lsm=...,bpf`): the program must attach *and* the bpf
/// LSM must be listed, or it would attach and never run.
fn attach_lsm(ebpf: &mut Ebpf, btf: &Btf, name: &str) -> Result<u32> {
    attach_lsm_hook(ebpf, btf, name, "file_open")
}

/// Program `name` on LSM hook `hook`, where the bpf LSM is active.
fn attach_lsm_hook(ebpf: &mut Ebpf, btf: &Btf, name: &str, hook: &str) -> Result<u32> {
    let lsms = std::fs::read_to_string("/sys/kernel/security/lsm").unwrap_or_default();
    if !lsms.trim().split(',').any(|l| l == "bpf") {
        anyhow::bail!("bpf is not an active LSM ({})", lsms.trim());
    }
    let prog: &mut aya::programs::Lsm = ebpf
        .program_mut(name)
        .with_context(|| format!("eBPF object has no program {name}"))?
        .try_into()?;
    prog.load(hook, btf)
        .with_context(|| format!("the kernel refused lsm/{hook}"))?;
    prog.attach()
        .with_context(|| format!("cannot attach lsm/{hook}"))?;
    Ok(prog.info().map(|i| i.id()).unwrap_or(0))
}

/// io_uring's request offsets, or why this kernel has none to hook.
fn resolve_io_uring(btf: &btf_rs::Btf) -> Result<IoUringOffsets> {
    let r = btf_offsets::OffsetResolver::new(btf);
    let field = |root: &str, path: &str| -> Result<u32> {
        r.offset(root, path)?
            .with_context(|| format!("kernel BTF has no `{root}.{path}`"))
    };
    Ok(IoUringOffsets {
        req_opcode: field("io_kiocb", "opcode")?,
        req_ctx: field("io_kiocb", "ctx")?,
        req_user_data: field("io_kiocb", "cqe.user_data")?,
        open_file_slot: field("io_kiocb", "cmd")? + field("io_open", "file_slot")?,
    })
}

/// (program name in the object, tp_btf tracepoint) for io_uring.
pub const IO_URING_HOOKS: &[(&str, &str)] = &[
    ("io_uring_submit_req", "io_uring_submit_req"),
    ("io_uring_complete", "io_uring_complete"),
];

/// io_uring's tracepoints: optional (kernels without io_uring, or with it
/// compiled out, load everything else). Both or neither.
fn attach_io_uring(ebpf: &mut Ebpf, btf: &Btf, attached: &mut Vec<AttachedProgram>) -> Result<()> {
    attached.extend(attach_btf_hooks(ebpf, btf, IO_URING_HOOKS)?);
    Ok(())
}

/// cgroup/connect4|6 and sendmsg4|6 on the cgroup2 root: every connect and
/// every datagram to an explicit address on the node passes one map lookup;
/// they report what the syscall tracepoints miss (UDP sendto, io_uring
/// connects), every inet connect where those are not attached, and give
/// quarantined processes EPERM.
fn attach_socket_hooks(ebpf: &mut Ebpf, attached: &mut Vec<AttachedProgram>) -> Result<()> {
    let root = crate::kernel::mounts::cgroup2_mount().context(
        "the socket hooks (and block-egress) need cgroup v2: no cgroup2 mount found; mount it or \
         drop block-egress from the policy",
    )?;
    let cgroup = std::fs::File::open(&root)
        .with_context(|| format!("cannot open the cgroup2 root {}", root.display()))?;
    for (name, hook) in [
        ("block_egress4", "cgroup/connect4"),
        ("block_egress6", "cgroup/connect6"),
        ("egress_sendmsg4", "cgroup/sendmsg4"),
        ("egress_sendmsg6", "cgroup/sendmsg6"),
    ] {
        let prog: &mut CgroupSockAddr = ebpf
            .program_mut(name)
            .with_context(|| format!("eBPF object has no program {name}"))?
            .try_into()?;
        prog.load().with_context(|| format!("cannot load {hook}"))?;
        prog.attach(&cgroup, CgroupAttachMode::default())
            .with_context(|| format!("cannot attach {hook} to {}", root.display()))?;
        let id = prog.info().map(|i| i.id()).unwrap_or(0);
        attached.push(AttachedProgram {
            hook: hook.to_string(),
            id,
        });
    }
    Ok(())
}

/// Sum over CPUs of slot `kind` of a per-CPU counter array.
pub fn per_cpu_total(map: &PerCpuArray<MapData, u64>, kind: u32) -> u64 {
    map.get(&kind, 0).map(|v| v.iter().sum()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attached(hooks: &[&str]) -> Vec<AttachedProgram> {
        hooks
            .iter()
            .map(|h| AttachedProgram {
                hook: h.to_string(),
                id: 1,
            })
            .collect()
    }

    #[test]
    fn hook_set_follows_what_attached() {
        let base = [
            "tp_btf/sched_process_exec",
            "tracepoint/syscalls/sys_exit_openat",
            "tracepoint/syscalls/sys_exit_openat2",
            "tracepoint/syscalls/sys_enter_connect",
        ];
        let tp = HookSet::of(&attached(&base));
        assert_eq!(tp.exec, "tp_btf");
        assert_eq!(tp.file_open, "tracepoint");
        assert_eq!(tp.connect, "tracepoint");
        assert_eq!(tp.egress, "none");
        let mut with_lsm = vec!["cgroup/connect4", "cgroup/connect6"];
        with_lsm.extend(base);
        with_lsm.push("lsm/file_open");
        let lsm = HookSet::of(&attached(&with_lsm));
        assert_eq!(lsm.file_open, "tracepoint+lsm");
        assert_eq!(lsm.egress, "cgroup");
        assert_eq!(lsm.connect, "tracepoint+cgroup");
        assert_eq!(lsm.datagram, "none");
        assert_eq!(tp.io_uring, "none");
        let mut full = with_lsm.clone();
        full.extend(["cgroup/sendmsg4", "tp_btf/io_uring_complete"]);
        let full = HookSet::of(&attached(&full));
        assert_eq!(full.datagram, "cgroup");
        assert_eq!(full.io_uring, "tp_btf");
        assert!(lsm.summary().contains("file_open: tracepoint+lsm"));
        assert_eq!(kill_enforcement(true, &lsm), "lsm-deny");
        assert_eq!(kill_enforcement(false, &tp), "tracepoint-sigkill");
        assert_eq!(tp.file_access, "syscall");
        assert_eq!(
            lsm.file_access, "syscall",
            "deny-only LSM beside the syscall set"
        );
        let lsm_set = HookSet::of(&attached(&["tp_btf/sched_process_exec", "lsm/file_open"]));
        assert_eq!(
            (lsm_set.file_access.as_str(), lsm_set.file_open.as_str()),
            ("lsm", "lsm")
        );
        let pc = HookSet::of(&attached(&[
            "tp_btf/sched_process_exec",
            "tp_btf/mm_filemap_get_pages",
            "tp_btf/mm_filemap_fault",
        ]));
        assert_eq!(
            (pc.file_access.as_str(), pc.file_open.as_str()),
            ("page-cache", "tp_btf")
        );
        assert_eq!(kill_enforcement(false, &pc), "tracepoint-sigkill");
        assert!(file_blind_spots("page-cache").contains("O_DIRECT"));
        let mut no_syscall = vec![
            "tp_btf/sched_process_exec",
            "tp_btf/inet_sock_set_state",
            "tp_btf/mm_filemap_get_pages",
            "cgroup/connect4",
            "cgroup/connect6",
            "cgroup/sendmsg4",
        ];
        let cg = HookSet::of(&attached(&no_syscall));
        assert_eq!(
            (
                cg.connect.as_str(),
                cg.egress.as_str(),
                cg.datagram.as_str()
            ),
            ("cgroup+tp_btf", "cgroup", "cgroup")
        );
        assert!(connect_blind_spots(&cg.connect).contains("unix-socket connects"));
        no_syscall.extend(["lsm/unix_stream_connect", "lsm/unix_may_send"]);
        let cg_lsm = HookSet::of(&attached(&no_syscall));
        assert_eq!(cg_lsm.connect, "cgroup+tp_btf+lsm");
        assert!(!connect_blind_spots(&cg_lsm.connect).contains("unix"));
        assert_eq!(
            cg_lsm.file_access, "page-cache",
            "the unix LSM hooks are no file set"
        );
        let blind = HookSet::of(&attached(&["tp_btf/sched_process_exec"]));
        assert_eq!(blind.file_access, "none");
        assert_eq!(blind.file_open, "none");
        assert_eq!(kill_enforcement(false, &blind), "none");
    }
}
