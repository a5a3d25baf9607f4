//! The page-cache file hook set (`kernel.file_hooks: page-cache`; `auto` where BPF LSM is not active):
//! reads of watched secrets through read, pread, mmap and sendfile are seen
//! with the catalogued path, unwatched reads are not, repeats are folded in
//! the kernel with a count, and a kill rule still kills on the first read.

use std::{path::PathBuf, process::Command, sync::OnceLock, time::Duration};

use crate::harness::*;
use serde_json::Value;

fn fixture() -> &'static HomeAgent {
    static F: OnceLock<HomeAgent> = OnceLock::new();
    F.get_or_init(|| {
        let files = [
            (".netrc", "machine a.test login u password nrc\n"),
            (".pgpass", "db:5432:app:app:pgsecret\n"),
            ("notes.txt", "nothing secret here\n"),
        ];
        HomeAgent::start(&files, |home, state| {
            // A kill rule's owner must exist; nothing in these tests runs it.
            let owner = home.join("pg-owner");
            copy_exe("/bin/cat", &owner);
            page_cache_kill_config(home, state, &owner)
        })
    })
}

fn netrc() -> PathBuf {
    fixture().home.path().join(".netrc")
}

fn open_of(agent: &AgentProc, m: &str) -> Value {
    agent.wait_for(|e| e["kind"] == "file_open" && has_arg(e, m))
}

#[test]
fn the_forced_page_cache_set_is_reported_in_status() {
    let f = fixture();
    let st = f.agent.status_after(0);
    assert_eq!(
        st["status"]["hook_set"]["file_access"], "page-cache",
        "{st}"
    );
    assert_eq!(
        st["status"]["kill_enforcement"], "tracepoint-sigkill",
        "{st}"
    );
}

#[test]
fn read_pread_mmap_and_sendfile_of_a_watched_secret_are_seen_with_its_path() {
    let f = fixture();
    let want = netrc().display().to_string();
    for (how, code) in [
        ("read", "import sys\nopen(sys.argv[1],'rb').read()"),
        ("pread", "import os,sys\nfd=os.open(sys.argv[1],os.O_RDONLY)\nos.pread(fd,4096,0)"),
        (
            "mmap",
            "import mmap,sys\nf=open(sys.argv[1],'rb')\nm=mmap.mmap(f.fileno(),0,prot=mmap.PROT_READ)\nm[0]",
        ),
        (
            "sendfile",
            "import os,sys\nfd=os.open(sys.argv[1],os.O_RDONLY)\nout=os.open('/dev/null',os.O_WRONLY)\nos.sendfile(out,fd,0,4096)",
        ),
    ] {
        let m = marker(how);
        let out = python_on(&m, &netrc(), code);
        assert!(out.status.success(), "{how}: {out:?}");
        let ev = open_of(&f.agent, &m);
        assert_eq!(ev["file"]["path"], want.as_str(), "{how}: {ev}");
        assert_eq!(ev["file"]["via"], "page_cache", "{how}: {ev}");
        assert_eq!(ev["file"]["access"], "read", "{how}: {ev}");
    }
}

#[test]
fn an_unwatched_read_produces_nothing_while_a_watched_one_beside_it_does() {
    let f = fixture();
    let m = marker("unwatched");
    let code = "import sys\nopen(sys.argv[1],'rb').read()\nopen(sys.argv[1].replace('notes.txt','.netrc'),'rb').read()";
    let out = python_on(&m, &f.home.path().join("notes.txt"), code);
    assert!(out.status.success(), "{out:?}");
    // Positive control: the same process's watched read is reported...
    let ev = open_of(&f.agent, &m);
    assert_eq!(ev["file"]["path"], netrc().display().to_string(), "{ev}");
    // ...and the unwatched file never is.
    let notes: Vec<Value> = opens_of(&f.agent, &m)
        .into_iter()
        .filter(|e| {
            e["file"]["path"]
                .as_str()
                .unwrap_or("")
                .ends_with("notes.txt")
        })
        .collect();
    assert!(notes.is_empty(), "unwatched read reported: {notes:?}");
}

#[test]
fn ten_thousand_rereads_are_one_record_and_the_next_window_carries_their_count() {
    let f = fixture();
    let m = marker("reread");
    let code = "import os,sys,time\nfd=os.open(sys.argv[1],os.O_RDONLY)\n\
                for _ in range(10000): os.pread(fd,64,0)\n\
                time.sleep(2.5)\nos.pread(fd,64,0)";
    let out = python_on(&m, &netrc(), code);
    assert!(out.status.success(), "{out:?}");
    let second = f.agent.wait_for(|e| {
        e["kind"] == "file_open" && has_arg(e, &m) && !e["file"]["repeats"].is_null()
    });
    let all = opens_of(&f.agent, &m);
    assert_eq!(all.len(), 2, "one record per window: {all:?}");
    assert!(
        all[0]["file"]["repeats"].is_null(),
        "first record: {}",
        all[0]
    );
    let n = second["file"]["repeats"].as_u64().unwrap();
    assert!((9_990..=10_000).contains(&n), "repeats {n}: {second}");
    // Another process reading the same secret gets its own record at once.
    let other = marker("reread-other");
    let out = python_on(
        &other,
        &netrc(),
        "import sys\nopen(sys.argv[1],'rb').read()",
    );
    assert!(out.status.success(), "{out:?}");
    let ev = open_of(&f.agent, &other);
    assert!(ev["file"]["repeats"].is_null(), "{ev}");
}

#[test]
fn a_kill_rule_kills_on_the_first_read_every_time() {
    let f = fixture();
    let pgpass = f.home.path().join(".pgpass");
    for round in 0..2 {
        let ev = cat_killed(&f.agent, &pgpass, &format!("killed-reader-{round}"));
        assert!(ev.to_string().contains("kill"), "round {round}: {ev}");
    }
    // Negative beside it: an allowed read of another secret is not killed.
    let out = Command::new("/bin/cat").arg(netrc()).output().unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// Reads `file` with a fresh marker every half second until the agent
/// reports the read (the page-cache set learns of new files by polling the
/// secrets' directories), or panics after `tries`.
fn read_until_seen(file: &std::path::Path, what: &str, tries: usize) -> Value {
    for i in 0..tries {
        let m = marker(&format!("{what}-{i}"));
        let out = python_on(&m, file, "import sys; open(sys.argv[1]).read()");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
        if let Some(e) = opens_of(&fixture().agent, &m).into_iter().next() {
            return e;
        }
    }
    panic!("no file_open for {} after {tries} reads", file.display());
}

#[test]
fn a_secret_created_or_renamed_over_after_start_is_seen_within_seconds() {
    let f = fixture();
    let created = f.home.path().join(".git-credentials");
    std::fs::write(&created, "https://u:created-later@git.example.invalid\n").unwrap();
    let e = read_until_seen(&created, "created", 20);
    assert_eq!(e["file"]["path"], created.to_str().unwrap(), "{e}");

    // Rotation by rename: a new inode under the watched name (this test's
    // own file: the others read .netrc at the same time).
    let tmp = f.home.path().join(".git-credentials.tmp");
    std::fs::write(&tmp, "https://u:rotated@git.example.invalid\n").unwrap();
    std::fs::rename(&tmp, &created).unwrap();
    let e = read_until_seen(&created, "renamed", 20);
    assert_eq!(e["file"]["path"], created.to_str().unwrap(), "{e}");
    let status = f.agent.wait_for(|e| {
        e["kind"] == "agent_status"
            && e["status"]["secrets"]["new_file_rescans"]
                .as_u64()
                .unwrap_or(0)
                >= 1
    });
    assert!(
        status["status"]["secrets"]["watched_inodes"]
            .as_u64()
            .unwrap()
            >= 3
    );
}

/// The `bpf_probe_read_kernel` calls in the instructions the kernel holds
/// for `hook`'s program: fewer in the direct-load kind than in the
/// helper-read one.
fn helper_reads_in(agent: &AgentProc, hook: &str) -> usize {
    let st = agent.status_after(0);
    let id = st["status"]["hooks"]
        .as_array()
        .and_then(|hs| hs.iter().find(|h| h["hook"] == hook))
        .and_then(|h| h["id"].as_u64())
        .unwrap_or_else(|| panic!("{hook} not attached: {}", st["status"]["hooks"]));
    let out = Command::new("bpftool")
        .args(["prog", "dump", "xlated", "id", &id.to_string()])
        .output()
        .expect("run bpftool (installed by cargo xtask setup)");
    assert!(out.status.success(), "bpftool: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .matches("call bpf_probe_read_kernel#")
        .count()
}

#[test]
fn the_helper_read_kind_of_the_programs_sees_what_the_direct_kind_sees() {
    // `kernel.direct_loads: false` loads the kind a kernel that refuses
    // direct BTF loads gets: it must report execs and watched reads alike.
    let files = [(".netrc", "machine a.test login u password hrd\n")];
    let helper = HomeAgent::start(&files, |home, state| {
        format!(
            "status_interval: 1s\nstate_dir: {}\n\
             kernel:\n  file_hooks: page-cache\n  direct_loads: false\n\
             secrets:\n  extra_homes: [{}]\n  search_dirs: []\n",
            state.display(),
            home.display()
        )
    });
    let direct = fixture();
    // The exec program reads every kernel struct directly; the page-cache
    // one only on its hot path (what a watched read reports after it goes
    // through helpers in both kinds).
    for (hook, direct_reads) in [
        ("tp_btf/sched_process_exec", Some(0)),
        ("tp_btf/mm_filemap_get_pages", None),
    ] {
        let (d, h) = (
            helper_reads_in(&direct.agent, hook),
            helper_reads_in(&helper.agent, hook),
        );
        assert!(
            h > d,
            "{hook}: {h} helper reads in the helper kind, {d} in the direct one"
        );
        if let Some(want) = direct_reads {
            assert_eq!(d, want, "{hook}, direct kind");
        }
    }
    let secret = helper.home.path().join(".netrc");
    let m = marker("helper-kind");
    let out = python_on(&m, &secret, "import sys\nopen(sys.argv[1],'rb').read()");
    assert!(out.status.success(), "{out:?}");
    let exec = helper.agent.wait_for(|e| is_exec_with(e, &m));
    let python = std::fs::canonicalize(exec["process"]["exe"]["path"].as_str().unwrap()).unwrap();
    assert_eq!(
        exec["process"]["exe"]["sha256"],
        sha256_file(&python).as_str(),
        "{exec}"
    );
    assert!(
        exec["process"]["exe"]["inode"].as_u64().unwrap() > 0,
        "{exec}"
    );
    let read = open_of(&helper.agent, &m);
    assert_eq!(read["file"]["path"], secret.display().to_string(), "{read}");
    assert_eq!(read["file"]["via"], "page_cache", "{read}");
}
