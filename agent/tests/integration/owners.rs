//! Secret owners are files, not paths: a literal `exe_path` owner is the file
//! at that path in the agent's mount namespace, by (dev, inode), followed when
//! a package upgrade renames a new file over it; a process that shows the
//! owner's path from a private mount namespace is not the owner.

use std::{
    os::unix::process::{CommandExt, ExitStatusExt},
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use crate::harness::*;

struct Fixture {
    agent: AgentProc,
    home: tempfile::TempDir,
    _state: tempfile::TempDir,
    /// Owner of `.pgpass` under a kill rule.
    killer_owner: PathBuf,
    /// Owner of `.netrc` (no enforcement: its reads are info).
    reader_owner: PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let home = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join(".pgpass"), "db:5432:app:app:pgsecret\n").unwrap();
        std::fs::write(
            home.path().join(".netrc"),
            "machine example.test login u password netrcsecret\n",
        )
        .unwrap();
        let killer_owner = home.path().join("pg-owner");
        let reader_owner = home.path().join("netrc-owner");
        copy_exe("/bin/cat", &killer_owner);
        copy_exe("/bin/cat", &reader_owner);
        let config = format!(
            "status_interval: 1s\n{TEST_METRICS}\
             state_dir: {state}\n\
             secrets:\n  extra_homes: [{h}]\n  search_dirs: []\n  rules:\n\
             \x20   - secret: {{id: pgpass}}\n\
             \x20     owners: [{{exe_path: {k}}}]\n\
             \x20     enforce: [kill]\n\
             \x20   - secret: {{id: netrc}}\n\
             \x20     owners: [{{exe_path: {r}}}]\n",
            state = state.path().display(),
            h = home.path().display(),
            k = killer_owner.display(),
            r = reader_owner.display(),
        );
        Fixture {
            agent: AgentProc::start(&config),
            home,
            _state: state,
            killer_owner,
            reader_owner,
        }
    })
}

/// Runs `exe FILE` with argv[0] `m`.
fn read_as(exe: &Path, m: &str, file: &Path) -> std::process::Output {
    Command::new(exe).arg0(m).arg(file).output().unwrap()
}

/// What dpkg does on upgrade: write the new file beside the old, rename it over.
fn upgrade_in_place(exe: &Path) {
    let staged = exe.with_extension("dpkg-new");
    let mut bytes = std::fs::read("/bin/cat").unwrap();
    // A different build: trailing bytes the ELF loader ignores.
    bytes.extend_from_slice(b"\0proctor-upgrade\0");
    write_exe(&staged, bytes);
    std::fs::rename(&staged, exe).unwrap();
}

#[test]
fn a_kill_rule_owner_upgraded_in_place_keeps_its_rights_and_the_change_is_reported() {
    let f = fixture();
    let pgpass = f.home.path().join(".pgpass");
    let before = read_as(&f.killer_owner, &marker("owner-v1"), &pgpass);
    assert!(before.status.success(), "{:?}", before.status);
    assert_eq!(before.stdout, b"db:5432:app:app:pgsecret\n");

    // The pre-upgrade binary, kept at another path: the old inode's rights
    // must not survive in someone else's hands.
    let old_copy = f.home.path().join("old-owner");
    std::fs::hard_link(&f.killer_owner, &old_copy).unwrap();
    upgrade_in_place(&f.killer_owner);

    // The agent looks at owner files at most once a second, at its status
    // tick, and counts what changed.
    let status = f.agent.wait_for(|e| {
        e["kind"] == "agent_status"
            && e["status"]["secrets"]["owner_files_changed"]
                .as_u64()
                .is_some_and(|n| n >= 1)
    });
    let m = marker("owner-v2");
    let after = read_as(&f.killer_owner, &m, &pgpass);
    assert_eq!(
        after.status.signal(),
        None,
        "the upgraded owner was stopped: {status}"
    );
    assert_eq!(after.stdout, b"db:5432:app:app:pgsecret\n");
    let ev = read_finding(&f.agent, &m);
    assert_eq!(ev["finding"]["severity"], "info", "{ev}");

    // Control: the old binary (its inode no longer the owner) is stopped.
    let m = marker("old-inode");
    let out = read_as(&old_copy, &m, &pgpass);
    assert!(
        out.stdout.is_empty(),
        "the old inode read {} bytes",
        out.stdout.len()
    );
    assert!(
        out.status.signal() == Some(libc::SIGKILL) || out.status.code() == Some(1),
        "{:?}",
        out.status
    );
    let ev = read_finding(&f.agent, &m);
    assert_ne!(ev["finding"]["severity"], "info", "{ev}");
}

#[test]
fn the_owners_path_shown_from_a_private_mount_namespace_is_not_the_owner() {
    let f = fixture();
    let netrc = f.home.path().join(".netrc");
    // Control: the real owner's read is info.
    let m = marker("real-owner");
    assert!(read_as(&f.reader_owner, &m, &netrc).status.success());
    let ev = read_finding(&f.agent, &m);
    assert_eq!(ev["finding"]["severity"], "info", "{ev}");

    // Another binary bind-mounted over the owner's path, in a mount
    // namespace of its own: the path reads the same from inside.
    let impostor = f.home.path().join("impostor");
    copy_exe("/usr/bin/tac", &impostor);
    let m = marker("impostor");
    let out = exec_bind_mounted(&impostor, &f.reader_owner, &m, &[netrc.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "unshare: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ev = read_finding(&f.agent, &m);
    assert_eq!(
        ev["process"]["exe"]["path"],
        f.reader_owner.to_str().unwrap(),
        "the impostor shows the owner's path: {ev}"
    );
    assert_eq!(ev["finding"]["severity"], "high", "{ev}");
}
