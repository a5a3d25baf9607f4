//! Real-kernel tests of the fingerprint cache: a secret's content is read again only when the kernel's version of its inode (size, mtime, ctime) changed.

use std::{os::unix::fs::MetadataExt, os::unix::process::CommandExt, path::Path, process::Command};

use crate::harness::*;
use proctor::secrets::fingerprint::Fingerprinter;
use serde_json::Value;

const KEY_HEX: &str = "5b2d3c4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c";

/// Fake AWS credentials, assembled at run time; `n` makes each version distinct.
fn aws_credentials(n: u32) -> String {
    format!(
        "[default]\naws_access_key_id = {}{n:04}\naws_secret_access_key = {}{}{n}\n",
        "AKIAQ3WE8R5T2Y7U", "k2Jh8Gf5Ds1Aq9Wz3Xc7Vb4", "Nm6Lp0Oi2Ku4Yt8Rexx"
    )
}

fn fingerprint_of(content: &str) -> String {
    Fingerprinter::from_hex(KEY_HEX)
        .unwrap()
        .fingerprint(content.as_bytes())
}

/// `cat` of `path` under a fresh marker; returns its secret-read finding.
fn cat_read(agent: &AgentProc, path: &Path) -> Value {
    let m = marker("version-read");
    run(Command::new("/bin/cat").arg(path).arg0(&m));
    agent.wait_for(|e| {
        e["kind"] == "finding" && e["finding"]["rule"] == "secret-read" && has_arg(e, &m)
    })
}

/// Files read for a fingerprint so far, from the next agent_status.
fn fingerprint_reads(agent: &AgentProc) -> u64 {
    let status = agent.status_after(agent.last_seq());
    status["status"]["secrets"]["fingerprint_reads"]
        .as_u64()
        .unwrap_or_else(|| panic!("agent_status without secrets.fingerprint_reads: {status}"))
}

#[test]
fn a_secret_rewritten_in_place_is_fingerprinted_again_while_rereads_of_unchanged_content_read_no_file(
) {
    // Not under /tmp, which is 0700 here: other users read in it too.
    let home = tempfile::tempdir_in("/var/tmp").unwrap();
    let state = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".aws")).unwrap();
    let creds = home.path().join(".aws/credentials");
    std::fs::write(&creds, aws_credentials(1)).unwrap();
    let ino = std::fs::metadata(&creds).unwrap().ino();
    let agent = AgentProc::start(&format!(
        "status_interval: 500ms\n{TEST_METRICS}state_dir: {state}\n\
         fingerprint:\n  key: {KEY_HEX}\n\
         kernel:\n  repeat_window: 0s\n\
         secrets:\n  extra_homes: [{home}]\n  search_dirs: []\n",
        state = state.path().display(),
        home = home.path().display(),
    ));
    let (fp1, fp2) = (
        fingerprint_of(&aws_credentials(1)),
        fingerprint_of(&aws_credentials(22)),
    );

    // Re-reads of unchanged content: reported with the fingerprint, no file read.
    let first = cat_read(&agent, &creds);
    assert_eq!(
        first["finding"]["secret"]["fingerprint"],
        fp1.as_str(),
        "{first}"
    );
    let before = fingerprint_reads(&agent);
    for _ in 0..5 {
        let f = cat_read(&agent, &creds);
        assert_eq!(f["finding"]["secret"]["fingerprint"], fp1.as_str(), "{f}");
    }
    let unchanged = fingerprint_reads(&agent);
    assert_eq!(
        unchanged, before,
        "five reads of an unchanged secret read the file again ({before} -> {unchanged})"
    );

    // Rewritten in place: same inode, new content, new fingerprint.
    std::fs::write(&creds, aws_credentials(22)).unwrap();
    assert_eq!(
        std::fs::metadata(&creds).unwrap().ino(),
        ino,
        "not rewritten in place"
    );
    let rotated = cat_read(&agent, &creds);
    assert_eq!(
        rotated["finding"]["secret"]["fingerprint"],
        fp2.as_str(),
        "the rewritten secret kept its old fingerprint: {rotated}"
    );
    let after_rotation = fingerprint_reads(&agent);
    assert!(
        after_rotation > unchanged,
        "the new content was fingerprinted without reading the file ({unchanged} -> {after_rotation})"
    );
    // And the new version is read once: re-reads cost no file read again.
    for _ in 0..3 {
        let f = cat_read(&agent, &creds);
        assert_eq!(f["finding"]["secret"]["fingerprint"], fp2.as_str(), "{f}");
    }
    let settled = fingerprint_reads(&agent);
    assert_eq!(
        settled, after_rotation,
        "re-reads of the rotated secret read the file again ({after_rotation} -> {settled})"
    );
}
