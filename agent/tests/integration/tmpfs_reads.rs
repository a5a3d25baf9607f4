//! Secrets on tmpfs under the page-cache file hook set: shmem reads bypass
//! the page-cache tracepoints, so the set marks each watched tmpfs inode
//! with fanotify. A read is reported with its path, an unwatched file on
//! the same tmpfs is not, repeats fold, and a kill rule refuses the read
//! and kills the reader before its first byte while the rule's owner reads.

use std::{path::PathBuf, process::Command, sync::OnceLock, time::Duration};

use crate::harness::*;
use serde_json::Value;

struct Fixture {
    home: HomeAgent,
    /// The kill rule's owner: a copy of cat on disk (not on the tmpfs).
    owner: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let tmpfs = own_tmpfs();
        assert_eq!(fs_type(&tmpfs), "tmpfs", "{} is not tmpfs", tmpfs.display());
        let owner = tempfile::tempdir().unwrap();
        let owner_exe = owner.path().join("pg-owner");
        copy_exe("/bin/cat", &owner_exe);
        let files = [
            (".netrc", "machine a.test login u password tmpfs-nrc\n"),
            (".pgpass", "db:5432:app:app:tmpfs-pg\n"),
            ("notes.txt", "nothing secret here\n"),
        ];
        let home = HomeAgent::start_in(&tmpfs, &files, |home, state| {
            page_cache_kill_config(home, state, &owner_exe)
        });
        Fixture { home, owner }
    })
}

fn home_file(name: &str) -> PathBuf {
    fixture().home.home.path().join(name)
}

#[test]
fn the_page_cache_set_reports_its_tmpfs_marks() {
    let f = fixture();
    let st = f.home.agent.wait_for(|e| {
        e["kind"] == "agent_status"
            && e["status"]["kernel"]["tmpfs"]["marked"]
                .as_u64()
                .unwrap_or(0)
                >= 2
    });
    assert_eq!(
        st["status"]["hook_set"]["file_access"], "page-cache",
        "{st}"
    );
    assert_eq!(st["status"]["hook_set"]["tmpfs_reads"], "fanotify", "{st}");
    assert_eq!(st["status"]["kernel"]["tmpfs"]["stopped"], false, "{st}");
}

#[test]
fn a_read_of_a_watched_tmpfs_secret_is_reported_and_an_unwatched_one_beside_it_is_not() {
    let f = fixture();
    let m = marker("tmpfs-read");
    let code = "import sys\nopen(sys.argv[1],'rb').read()\n\
                open(sys.argv[1].replace('notes.txt','.netrc'),'rb').read()";
    let out = python_on(&m, &home_file("notes.txt"), code);
    assert!(out.status.success(), "{out:?}");
    let want = home_file(".netrc").display().to_string();
    let ev = f
        .home
        .agent
        .wait_for(|e| e["kind"] == "file_open" && has_arg(e, &m));
    assert_eq!(ev["file"]["path"], want.as_str(), "{ev}");
    assert_eq!(ev["file"]["via"], "fanotify", "{ev}");
    assert_eq!(ev["file"]["access"], "read", "{ev}");
    let finding = f.home.agent.wait_for(|e| {
        e["kind"] == "finding" && e["finding"]["rule"] == "secret-read" && has_arg(e, &m)
    });
    assert_eq!(finding["file"]["path"], want.as_str(), "{finding}");
    // The unwatched file on the same tmpfs, read first by the same process,
    // is never reported.
    std::thread::sleep(Duration::from_millis(500));
    let notes: Vec<Value> = opens_of(&f.home.agent, &m)
        .into_iter()
        .filter(|e| {
            e["file"]["path"]
                .as_str()
                .unwrap_or("")
                .ends_with("notes.txt")
        })
        .collect();
    assert!(notes.is_empty(), "unwatched tmpfs read reported: {notes:?}");
    let raw: String = f.home.agent.events().iter().map(Value::to_string).collect();
    assert!(
        !raw.contains("tmpfs-nrc"),
        "the secret's value left the agent"
    );
    assert!(
        !f.home.agent.stderr().contains("tmpfs-nrc"),
        "the secret's value was logged"
    );
}

#[test]
fn rereads_within_the_window_are_one_record_and_the_next_carries_their_count() {
    let f = fixture();
    let m = marker("tmpfs-reread");
    let code = "import os,sys,time\nfd=os.open(sys.argv[1],os.O_RDONLY)\n\
                for _ in range(2000):\n  os.pread(fd,64,0)\n  time.sleep(0.0002)\n\
                time.sleep(2.5)\nos.pread(fd,64,0)";
    let out = python_on(&m, &home_file(".netrc"), code);
    assert!(out.status.success(), "{out:?}");
    let second = f.home.agent.wait_for(|e| {
        e["kind"] == "file_open" && has_arg(e, &m) && !e["file"]["repeats"].is_null()
    });
    let all = opens_of(&f.home.agent, &m);
    // The loop takes about a second: its reads fall in one or two windows.
    assert!(
        (2..=3).contains(&all.len()),
        "one record per window: {all:?}"
    );
    assert!(
        all[0]["file"]["repeats"].is_null(),
        "first record: {}",
        all[0]
    );
    let n = second["file"]["repeats"].as_u64().unwrap();
    // fanotify merges reads still queued, so the count is a lower bound.
    assert!((1..=2000).contains(&n), "repeats {n}: {second}");
}

#[test]
fn a_kill_rule_refuses_the_first_read_on_tmpfs_and_the_owner_still_reads() {
    let f = fixture();
    let pgpass = home_file(".pgpass");
    for round in 0..2 {
        let ev = cat_killed(&f.home.agent, &pgpass, &format!("tmpfs-killed-{round}"));
        assert_eq!(ev["finding"]["action"], "killed", "round {round}: {ev}");
        assert_eq!(ev["file"]["via"], "fanotify", "round {round}: {ev}");
    }
    // Side by side: the rule's owner reads the same file, whole, unharmed.
    let owner = f.owner.path().join("pg-owner");
    let out = Command::new(&owner).arg(&pgpass).output().unwrap();
    assert!(out.status.success(), "owner refused: {out:?}");
    assert_eq!(out.stdout, b"db:5432:app:app:tmpfs-pg\n");
    let st = f.home.agent.wait_for(|e| {
        e["kind"] == "agent_status"
            && e["status"]["kernel"]["tmpfs"]["killed"]
                .as_u64()
                .unwrap_or(0)
                >= 2
    });
    assert_eq!(st["status"]["kernel"]["tmpfs"]["dropped"], 0, "{st}");
}
