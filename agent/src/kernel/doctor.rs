//! `proctor doctor`: what this kernel and this process allow, each with a
//! plain verdict and, where something is missing, what to do about it.
//!
//! Every verdict comes from trying the real thing (loading the real
//! programs, reading the real files), not from version numbers.

use std::path::Path;

use aya::{
    programs::{FEntry, Lsm},
    Btf, EbpfLoader,
};
use serde::Serialize;

use crate::kernel::{btf_offsets, mounts, preflight, probes};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Present and working.
    Ok,
    /// Missing, but proctor works without it (an optional extra).
    Unavailable,
    /// Missing, and proctor cannot run without it.
    Missing,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub item: &'static str,
    pub verdict: Verdict,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn check(item: &'static str, verdict: Verdict, detail: impl Into<String>) -> Check {
    Check {
        item,
        verdict,
        detail: detail.into(),
        fix: None,
    }
}

impl Check {
    fn fix(mut self, f: impl Into<String>) -> Self {
        self.fix = Some(f.into());
        self
    }
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn first_line(p: &str) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Runs every check. Loading programs needs privileges; without them the
/// program checks say so instead of failing.
pub fn run() -> Vec<Check> {
    let mut out = vec![check("kernel", Verdict::Ok, kernel_release())];

    let privileged = preflight::check_privileges();
    out.push(match &privileged {
        Ok(()) => check(
            "privileges",
            Verdict::Ok,
            format!("effective capabilities {:#x}", preflight::effective_caps()),
        ),
        Err(e) => check("privileges", Verdict::Missing, format!("{e:#}"))
            .fix("run as root or grant CAP_BPF, CAP_PERFMON (or CAP_SYS_ADMIN)"),
    });

    let btf_path = Path::new(btf_offsets::VMLINUX_BTF);
    out.push(
        match btf_offsets::load_kernel_btf(btf_path).and_then(|b| btf_offsets::resolve(&b)) {
            Ok(_) => check(
                "btf",
                Verdict::Ok,
                format!(
                    "{} parsed; every struct offset proctor needs resolved",
                    btf_path.display()
                ),
            ),
            Err(e) => check("btf", Verdict::Missing, format!("{e:#}"))
                .fix("use a kernel built with CONFIG_DEBUG_INFO_BTF=y"),
        },
    );

    for (item, fs, target) in [
        ("tracefs", "tracefs", "/sys/kernel/tracing"),
        ("securityfs", "securityfs", "/sys/kernel/security"),
    ] {
        out.push(match preflight::mounted_fstype(target) {
            Some(t) if t == fs => check(item, Verdict::Ok, format!("mounted at {target}")),
            _ => check(
                item,
                Verdict::Unavailable,
                format!("not mounted at {target}"),
            )
            .fix(format!(
                "`proctor run` mounts it when it has CAP_SYS_ADMIN; else \
                 `mount -t {fs} {fs} {target}` (tracefs: without it the file-open and connect \
                 hooks cannot attach)"
            )),
        });
    }

    out.push(match mounts::cgroup2_mount() {
        Some(p) => check(
            "cgroup_v2",
            Verdict::Ok,
            format!("cgroup2 mounted at {}", p.display()),
        ),
        None => check(
            "cgroup_v2",
            Verdict::Unavailable,
            "no cgroup2 mount: cgroup ids in events cannot be turned into paths",
        )
        .fix("mount cgroup2 (systemd.unified_cgroup_hierarchy=1, or a hybrid layout)"),
    });

    if let Some(mode) = first_line("/sys/kernel/security/lockdown") {
        out.push(check("lockdown", Verdict::Ok, mode));
    }

    if privileged.is_err() {
        for item in ["ring_buffer+tp_btf", "hook_set", "lsm", "fentry"] {
            out.push(check(
                item,
                Verdict::Unavailable,
                "not tried: needs privileges",
            ));
        }
    } else {
        // The LSM deny hook is tried as `proctor run` tries it for kill
        // rules (optional: without it the tracepoint path stands alone).
        // block-egress needs CAP_NET_ADMIN and is not what these lines are about.
        let loaded = probes::load(
            1 << 16,
            0,
            probes::EnforcementHooks {
                block_egress: false,
                lsm_deny: true,
            },
            // The set `proctor run` picks by default.
            probes::FileAccess::default(),
            true,
        );
        match loaded {
            Ok(p) => {
                out.push(check(
                    "ring_buffer+tp_btf",
                    Verdict::Ok,
                    format!(
                        "loaded and attached {}",
                        p.attached
                            .iter()
                            .map(|a| a.hook.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
                let set = p.hook_set();
                // Without its fanotify group the page-cache set is blind to tmpfs.
                let tmpfs = if set.file_access == "page-cache" && set.tmpfs_reads == "none" {
                    ", and any read of a secret on tmpfs (no fanotify group)"
                } else {
                    ""
                };
                let blind = format!(
                    "; file hook set {} cannot see: {}{tmpfs}; connect path {} cannot see: {}",
                    set.file_access,
                    probes::file_blind_spots(&set.file_access),
                    set.connect,
                    probes::connect_blind_spots(&set.connect)
                );
                let note = match p.kill_enforcement() {
                    "lsm-deny" => "; `enforce: kill` rules refuse the open (LSM)",
                    "tracepoint-sigkill" => {
                        "; `enforce: kill` rules kill from the open or page-cache read tracepoint (on \
                         tmpfs: a fanotify permission event refuses the read)"
                    }
                    _ => {
                        "; `enforce: kill` rules have no enforcement path (kill_enforcement: none)"
                    }
                };
                out.push(if p.unattached.is_empty() {
                    check(
                        "hook_set",
                        Verdict::Ok,
                        format!("{}{note}{blind}", set.summary()),
                    )
                } else {
                    let causes: Vec<String> = p
                        .unattached
                        .iter()
                        .map(|u| format!("{}: {}", u.hook, u.cause))
                        .collect();
                    // Secret detection and net_connect events need these:
                    // `proctor run` refuses to start secrets without them.
                    check(
                        "hook_set",
                        Verdict::Missing,
                        format!(
                            "{}{note}{blind}; not attached: {}",
                            set.summary(),
                            causes.join("; ")
                        ),
                    )
                    .fix(
                        "mount tracefs (`mount -t tracefs tracefs /sys/kernel/tracing`), or give \
                         the agent CAP_SYS_ADMIN so that it mounts tracefs itself",
                    )
                });
            }
            Err(e) => {
                out.push(
                    check("ring_buffer+tp_btf", Verdict::Missing, format!("{e:#}")).fix(
                        "proctor needs Linux >= 5.8 with BTF (ring buffer, tp_btf); see \
                         docs/kernels.md for the supported kernels",
                    ),
                );
                out.push(check(
                    "hook_set",
                    Verdict::Missing,
                    "no hooks: the base programs did not load",
                ));
            }
        }
        let lsm_list = first_line("/sys/kernel/security/lsm").unwrap_or_default();
        out.push(match try_optional_program(true) {
            Ok(()) if lsm_list.split(',').any(|l| l == "bpf") => check(
                "lsm",
                Verdict::Ok,
                format!("lsm/file_open loads and attaches; active LSMs: {lsm_list}"),
            ),
            Ok(()) => check(
                "lsm",
                Verdict::Unavailable,
                format!("lsm programs attach but `bpf` is not an active LSM ({lsm_list}); they would never run"),
            )
            .fix("boot with lsm=...,bpf to use the LSM hooks; tracepoint hooks are used meanwhile"),
            Err(e) => check("lsm", Verdict::Unavailable, format!("{e}; active LSMs: {lsm_list}"))
                .fix("optional: proctor uses tracepoint hooks instead"),
        });
        out.push(match try_optional_program(false) {
            Ok(()) => check(
                "fentry",
                Verdict::Ok,
                "fentry/security_file_open loads and attaches",
            ),
            Err(e) => check("fentry", Verdict::Unavailable, e)
                .fix("optional: proctor uses tracepoint hooks instead"),
        });
    }

    let kprobes = Path::new("/sys/kernel/tracing/kprobe_events").exists();
    out.push(if kprobes {
        check("kprobes", Verdict::Ok, "kprobe_events present in tracefs")
    } else {
        check(
            "kprobes",
            Verdict::Unavailable,
            "no kprobe_events in tracefs (kernel without CONFIG_KPROBES, or tracefs not mounted)",
        )
        .fix("optional: proctor does not need kprobes")
    });
    out
}

/// Loads and attaches one of the do-nothing probe programs, then drops it.
fn try_optional_program(lsm: bool) -> Result<(), String> {
    let btf = Btf::from_sys_fs().map_err(|e| format!("no kernel BTF: {e}"))?;
    let mut ebpf = EbpfLoader::new()
        .btf(Some(&btf))
        .load(probes::BPF_OBJECT)
        .map_err(|e| format!("object load failed: {e}"))?;
    let explain = |e: aya::programs::ProgramError| {
        let text = format!("{e}");
        if text.contains("Operation not permitted") || text.contains("EPERM") {
            "the kernel refused the program with EPERM".to_string()
        } else {
            text
        }
    };
    if lsm {
        let p: &mut Lsm = ebpf
            .program_mut("probe_lsm_file_open")
            .ok_or("no probe program")?
            .try_into()
            .map_err(|e| format!("{e}"))?;
        p.load("file_open", &btf).map_err(explain)?;
        p.attach().map_err(explain)?;
    } else {
        let p: &mut FEntry = ebpf
            .program_mut("probe_fentry_file_open")
            .ok_or("no probe program")?
            .try_into()
            .map_err(|e| format!("{e}"))?;
        p.load("security_file_open", &btf).map_err(explain)?;
        p.attach().map_err(explain)?;
    }
    Ok(())
}

pub fn render_text(checks: &[Check]) -> String {
    let mut s = String::new();
    for c in checks {
        let v = match c.verdict {
            Verdict::Ok => "ok",
            Verdict::Unavailable => "unavailable",
            Verdict::Missing => "MISSING",
        };
        s.push_str(&format!("{:<20} {:<12} {}\n", c.item, v, c.detail));
        if let Some(f) = &c.fix {
            s.push_str(&format!("{:<20} {:<12} fix: {}\n", "", "", f));
        }
    }
    s
}

/// Whether proctor can run here: nothing required is missing.
pub fn can_run(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.verdict != Verdict::Missing)
}
