//! Whether the hooks that attached can carry what the config asks for: at
//! start-up and before a reloaded config is applied.

use anyhow::Result;

use crate::{config::Config, kernel::probes::Probes, secrets::policy::Enforcement};

/// Checks what the config needs against the hooks that attached. A
/// configured detection that cannot work is a start-up error (naming the
/// hook, why it is missing, and the fix); evidence the agent always reports
/// (connects) missing makes `/readyz` fail instead: the returned lines.
pub(super) fn check_hooks(cfg: &Config, probes: &Probes) -> Result<Vec<String>> {
    let set = probes.hook_set();
    let why = |hook: &str| {
        probes
            .why_missing(hook)
            .unwrap_or("the kernel has no such tracepoint")
            .to_string()
    };
    // Prefix of sys_exit_open, sys_exit_openat and sys_exit_openat2.
    let open_hook = "tracepoint/syscalls/sys_exit_open";
    if cfg.secrets.enabled && set.file_open == "none" {
        let kill = cfg
            .secrets
            .rules
            .iter()
            .any(|r| r.enforce.contains(&Enforcement::Kill));
        anyhow::bail!(
            "secret detection (secrets.enabled) needs the file-open hooks ({open_hook}at and the like), which are \
             not attached: {}. Secret reads would go unseen{}. Fix: mount tracefs at \
             /sys/kernel/tracing (`mount -t tracefs tracefs /sys/kernel/tracing`) or give the \
             agent CAP_SYS_ADMIN so that it mounts tracefs itself; or set `secrets.enabled: false`",
            why(open_hook),
            if kill {
                ", and `enforce: kill` rules would have no enforcement path"
            } else {
                ""
            }
        );
    }
    let egress_rules = cfg
        .secrets
        .rules
        .iter()
        .any(|r| r.enforce.contains(&Enforcement::BlockEgress));
    if cfg.secrets.enabled && egress_rules && set.egress == "none" {
        anyhow::bail!(
            "`enforce: block-egress` rules need the cgroup connect hooks, which are not attached; \
             fix: mount cgroup v2, or remove block-egress from secrets.rules[].enforce"
        );
    }
    let mut missing = Vec::new();
    let connect_hook = "tracepoint/syscalls/sys_enter_connect";
    let unix_hook = "lsm/unix_stream_connect";
    // The cgroup hooks and the TCP state machine see every inet connect and
    // its outcome; Unix-socket connects need connect(2)'s tracepoints (the
    // syscall set) or the unix LSM hooks (the lsm set). The page-cache set
    // without BPF LSM is blind to them by the operator's choice, which
    // `hook_set` and `proctor doctor` state: not a failure here.
    if set.connect == "none" {
        missing.push(format!(
            "{connect_hook} (net_connect events): {}",
            why(connect_hook)
        ));
    } else if !set.connect.contains("tracepoint") && !set.connect.contains("lsm") {
        let expected = match set.file_access.as_str() {
            "lsm" => Some(unix_hook),
            "page-cache" => None,
            _ => Some(connect_hook),
        };
        if let Some(hook) = expected {
            missing.push(format!(
                "{hook} (net_connect events of Unix sockets): {}; inet connects and their \
                 outcomes are still reported by the cgroup socket hooks",
                why(hook)
            ));
        }
    }
    Ok(missing)
}
