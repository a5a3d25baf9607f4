//! systemd: `systemd-analyze verify` and `systemd-analyze security` on the
//! unit, and install.sh then uninstall.sh into a DESTDIR.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
};

use super::*;
use crate::harness::{proctor_bin, run_ok, run_tool, text};

/// `Key=value` lines of a unit file (later lines win, like systemd).
fn unit_directives(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with('#') && !l.starts_with(';') && !l.starts_with('[')
        })
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The unit with ExecStart pointing at the binary under test, so that
/// systemd-analyze can check the command exists.
fn unit_for_test(dir: &Path) -> PathBuf {
    let unit = std::fs::read_to_string(deploy().join("systemd/proctor.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/proctor "),
        "the unit must start /usr/local/bin/proctor"
    );
    let p = dir.join("proctor.service");
    std::fs::write(
        &p,
        unit.replace(
            "ExecStart=/usr/local/bin/proctor ",
            &format!("ExecStart={} ", proctor_bin().display()),
        ),
    )
    .unwrap();
    p
}

#[test]
fn systemd_unit_verifies_and_keeps_the_agent_boxed() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_test(dir.path());
    let o = run_tool(
        Command::new("systemd-analyze").arg("verify").arg(&unit),
        "apt-get install systemd",
    );
    // verify exits 0 on unknown keys and bad values but says so on stderr.
    let stderr = String::from_utf8_lossy(&o.stderr);
    let complaints: Vec<&str> = stderr.lines().filter(|l| l.contains("proctor")).collect();
    assert!(
        o.status.success() && complaints.is_empty(),
        "systemd-analyze verify objects to the unit:\n{}",
        text(&o)
    );

    // Exposure score (0 safest .. 10): 2.8 when written; fail above 3.5.
    let o = run_tool(
        Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--threshold=35", "--no-pager"])
            .arg(&unit),
        "apt-get install systemd",
    );
    assert!(
        o.status.success(),
        "systemd-analyze security: the unit's exposure rose above 3.5:\n{}",
        text(&o)
    );

    let d = unit_directives(
        &std::fs::read_to_string(deploy().join("systemd/proctor.service")).unwrap(),
    );
    let want = [
        (
            "ExecStart",
            "/usr/local/bin/proctor run --config /etc/proctor/config.yaml",
        ),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "read-only"),
        ("NoNewPrivileges", "yes"),
        ("LockPersonality", "yes"),
        ("RestrictRealtime", "yes"),
        ("SystemCallArchitectures", "native"),
        ("StateDirectory", "proctor"),
        ("RuntimeDirectory", "proctor"),
        ("MemoryMax", "256M"),
        ("Restart", "on-failure"),
    ];
    let wrong: Vec<String> = want
        .iter()
        .filter(|(k, v)| d.get(*k).map(String::as_str) != Some(*v))
        .map(|(k, v)| format!("{k}={v} (has {:?})", d.get(*k)))
        .collect();
    assert!(
        wrong.is_empty(),
        "proctor.service directives:\n  {}",
        wrong.join("\n  ")
    );
    let capset = |k: &str| -> BTreeSet<String> {
        d.get(k)
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    };
    let want_caps: BTreeSet<String> = LEAST_PRIVILEGE_CAPS
        .iter()
        .map(|c| format!("CAP_{c}"))
        .collect();
    assert_eq!(
        capset("CapabilityBoundingSet"),
        want_caps,
        "CapabilityBoundingSet"
    );
    assert_eq!(
        capset("AmbientCapabilities"),
        want_caps,
        "AmbientCapabilities"
    );
    // /tmp holds Kerberos ticket caches the agent inventories.
    assert_ne!(
        d.get("PrivateTmp").map(String::as_str),
        Some("yes"),
        "PrivateTmp hides /tmp secrets from the agent"
    );
    assert_ne!(
        d.get("User").map(String::as_str),
        Some("root"),
        "the agent needs no root uid, only its capabilities"
    );
}

#[test]
fn install_then_uninstall_into_destdir() {
    let dest = tempfile::tempdir().unwrap();
    let sys = deploy().join("systemd");
    let install = || {
        run_ok(
            Command::new("sh")
                .arg(sys.join("install.sh"))
                .arg("--binary")
                .arg(proctor_bin())
                .env("DESTDIR", dest.path()),
            "sh",
        )
    };
    let uninstall = |args: &[&str]| {
        run_ok(
            Command::new("sh")
                .arg(sys.join("uninstall.sh"))
                .args(args)
                .env("DESTDIR", dest.path()),
            "sh",
        )
    };
    let listing = |root: &Path| -> BTreeMap<String, u32> {
        let mut files = Vec::new();
        files_named(root, &|_| true, &mut files);
        files
            .iter()
            .map(|f| {
                use std::os::unix::fs::PermissionsExt;
                (
                    f.strip_prefix(root).unwrap().display().to_string(),
                    std::fs::symlink_metadata(f).unwrap().permissions().mode() & 0o7777,
                )
            })
            .collect()
    };
    let expected = BTreeMap::from([
        ("usr/local/bin/proctor".to_string(), 0o755),
        ("etc/systemd/system/proctor.service".to_string(), 0o644),
        ("etc/sysusers.d/proctor.conf".to_string(), 0o644),
        ("etc/proctor/config.yaml".to_string(), 0o640),
    ]);

    install();
    assert_eq!(
        listing(dest.path()),
        expected,
        "files and modes after install.sh"
    );
    let root = dest.path();
    assert_eq!(
        std::fs::read(root.join("usr/local/bin/proctor")).unwrap(),
        std::fs::read(proctor_bin()).unwrap(),
        "the installed binary is not the one given"
    );
    assert_eq!(
        std::fs::read(root.join("etc/systemd/system/proctor.service")).unwrap(),
        std::fs::read(sys.join("proctor.service")).unwrap(),
        "the installed unit differs from deploy/systemd/proctor.service"
    );
    let default = run_ok(
        Command::new(proctor_bin()).arg("default-config"),
        "cargo build",
    )
    .stdout;
    assert_eq!(
        std::fs::read(root.join("etc/proctor/config.yaml")).unwrap(),
        default,
        "the installed config must be `proctor default-config`"
    );

    // Idempotent, and an edited config survives a reinstall.
    let cfg = root.join("etc/proctor/config.yaml");
    let mut edited = default.clone();
    edited.extend_from_slice(b"# edited by the operator\n");
    std::fs::write(&cfg, &edited).unwrap();
    install();
    assert_eq!(listing(root), expected, "files after a second install.sh");
    assert_eq!(
        std::fs::read(&cfg).unwrap(),
        edited,
        "install.sh overwrote an existing config"
    );

    // Uninstall keeps an edited config ...
    let o = uninstall(&[]);
    assert_eq!(
        listing(root).keys().cloned().collect::<Vec<_>>(),
        vec!["etc/proctor/config.yaml".to_string()],
        "uninstall.sh must remove everything but the edited config:\n{}",
        text(&o)
    );
    // ... which --purge removes, with the state directory.
    std::fs::create_dir_all(root.join("var/lib/proctor")).unwrap();
    std::fs::write(root.join("var/lib/proctor/inventory.db"), b"x").unwrap();
    uninstall(&["--purge"]);
    let left: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        left.is_empty(),
        "DESTDIR must be empty after uninstall.sh --purge, has {left:?}"
    );

    // An untouched install goes away without --purge; uninstalling twice is fine.
    install();
    uninstall(&[]);
    uninstall(&[]);
    let left: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        left.is_empty(),
        "DESTDIR must be empty after install.sh + uninstall.sh, has {left:?}"
    );
}

/// The system calls a `SystemCallFilter=` set names, groups expanded by
/// systemd itself (`systemd-analyze syscall-filter`).
fn expand_syscall_set(items: &[&str]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for item in items {
        if !item.starts_with('@') {
            out.insert(item.to_string());
            continue;
        }
        let o = run_ok(
            Command::new("systemd-analyze").args(["syscall-filter", "--no-pager", item]),
            "systemd-analyze comes with systemd (`cargo xtask setup` installs it)",
        );
        for l in String::from_utf8_lossy(&o.stdout).lines().skip(1) {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            // A nested group is expanded in the same listing.
            if !l.starts_with('@') {
                out.insert(l.to_string());
            }
        }
    }
    out
}

#[test]
fn the_units_syscall_filter_and_the_seccomp_profile_deny_and_allow_the_same_calls() {
    let unit = std::fs::read_to_string(deploy().join("systemd/proctor.service")).unwrap();
    let denied_words: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.trim().strip_prefix("SystemCallFilter=~"))
        .flat_map(str::split_whitespace)
        .collect();
    assert!(
        !denied_words.is_empty(),
        "the unit has no deny-list SystemCallFilter=~"
    );
    let unit_denies = expand_syscall_set(&denied_words);
    let profile: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(deploy().join("seccomp/proctor.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO", "an allow list");
    let names = |action: &str| -> BTreeSet<String> {
        profile["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == action)
            .flat_map(|r| r["names"].as_array().unwrap().iter())
            .map(|n| n.as_str().unwrap().to_string())
            .collect()
    };
    let allowed = names("SCMP_ACT_ALLOW");
    let denied = names("SCMP_ACT_ERRNO");
    for must in ["bpf", "perf_event_open", "openat", "statx"] {
        assert!(allowed.contains(must), "the profile must allow {must}");
    }
    for never in [
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "pidfd_getfd",
    ] {
        assert!(
            denied.contains(never),
            "the profile must deny {never} by name"
        );
        assert!(unit_denies.contains(never), "the unit must deny {never}");
        assert!(!allowed.contains(never), "{never} allowed by the profile");
    }
    for absent in ["mount", "init_module", "kexec_load", "setns", "unshare"] {
        assert!(!allowed.contains(absent), "the profile allows {absent}");
    }
    let conflict: Vec<&String> = allowed.intersection(&unit_denies).collect();
    assert!(
        conflict.is_empty(),
        "calls the agent needs (profile) that the unit denies: {conflict:?}"
    );
}
