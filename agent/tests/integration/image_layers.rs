//! A container's own programs are expected clients by its image's package database: on a real overlayfs over a test-made runtime snapshot tree, the image's `git` reading git credentials is info with the layer as evidence, while the same program copied up, copied to the container's /tmp, or from a layer outside the configured roots stays high.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use md5::{Digest, Md5};
use serde_json::Value;

use crate::harness::*;

/// The image's program: a copy of cat named `git` (an expected client of
/// git credentials), so that running it on the credentials file reads it.
const HOST_PROGRAM: &str = "/bin/cat";

/// A runtime snapshot tree: layer `1` (the image: `usr/bin/git` and dpkg's
/// md5sums listing it) below the configured root `snapshots`, and the same
/// layer below `outside`, which no configured root covers.
fn build_tree(base: &Path) {
    let program = std::fs::read(HOST_PROGRAM).unwrap();
    let md5 = hex::encode(Md5::digest(&program));
    for top in ["snapshots", "outside"] {
        let layer = base.join(top).join("1/fs");
        std::fs::create_dir_all(layer.join("usr/bin")).unwrap();
        std::fs::create_dir_all(layer.join("tmp")).unwrap();
        let git = layer.join("usr/bin/git");
        std::fs::write(&git, &program).unwrap();
        std::fs::set_permissions(&git, std::fs::Permissions::from_mode(0o755)).unwrap();
        let info = layer.join("var/lib/dpkg/info");
        std::fs::create_dir_all(&info).unwrap();
        std::fs::write(info.join("git.md5sums"), format!("{md5}  usr/bin/git\n")).unwrap();
    }
}

/// Mounts an overlay of `lower` with a fresh upper layer in a mount
/// namespace of its own, runs `script` there (`$M` is the merged root) and
/// keeps the namespace alive a few seconds after, as a container's init
/// outlives the programs it runs.
fn in_container(base: &Path, name: &str, lower: &Path, script: &str) -> (Child, PathBuf) {
    let snap = base.join("snapshots").join(name);
    let (upper, work, merged) = (snap.join("fs"), snap.join("work"), base.join(name));
    for d in [&upper, &work, &merged] {
        std::fs::create_dir_all(d).unwrap();
    }
    let mount = format!(
        "mount -t overlay overlay -o lowerdir={},upperdir={},workdir={} \"$M\"",
        lower.display(),
        upper.display(),
        work.display()
    );
    let child = spawn(
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!("set -e; {mount}; {script}; sleep 4"))
            .env("M", &merged)
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    (child, merged)
}

fn read_by(agent: &AgentProc, creds: &str, exe: &Path) -> Value {
    let exe = exe.to_str().unwrap().to_string();
    agent.wait_for(|e| {
        e["kind"] == "finding"
            && e["finding"]["rule"] == "secret-read"
            && e["finding"]["secret"]["path"] == creds
            && e["process"]["exe"]["path"] == exe.as_str()
    })
}

fn severity(e: &Value) -> &str {
    e["finding"]["severity"].as_str().unwrap_or("?")
}

#[test]
fn an_image_s_packaged_program_is_an_expected_client_while_copied_up_tmp_and_unrooted_copies_stay_high(
) {
    // /var/tmp: a root-owned directory below a sticky one, as trusted as
    // /var/lib (the ownership check walks up to /).
    let base = tempfile::tempdir_in("/var/tmp").unwrap();
    let base = base.path();
    build_tree(base);
    let home = base.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let creds = home.join(".git-credentials");
    std::fs::write(
        &creds,
        "https://dev:image-layer-token@git.example.invalid\n",
    )
    .unwrap();
    let state = tempfile::tempdir().unwrap();
    let config = format!(
        "status_interval: 1s\n{TEST_METRICS}\
         state_dir: {state}\n\
         kernel:\n  file_hooks: syscall\n\
         secrets:\n  extra_homes: [{home}]\n  search_dirs: []\n\
         packages:\n  image_roots: [{roots}]\n",
        state = state.path().display(),
        home = home.display(),
        roots = base.join("snapshots").display(),
    );
    let agent = AgentProc::start(&config);
    let c = creds.to_str().unwrap();
    let image = base.join("snapshots/1/fs");
    let read = format!("\"$M/usr/bin/git\" {c} >/dev/null");
    let runs = [
        // The image's own program, untouched.
        in_container(base, "ok", &image, &read),
        // Modified in the container: appending copies it up with new content.
        in_container(
            base,
            "edited",
            &image,
            &format!("printf x >> \"$M/usr/bin/git\"; {read}"),
        ),
        // Copied up with the image's very content (a metadata change).
        in_container(
            base,
            "touched",
            &image,
            &format!("chmod 0755 \"$M/usr/bin/git\"; {read}"),
        ),
        // A copy in the container's /tmp.
        in_container(
            base,
            "tmpcopy",
            &image,
            &format!("cp \"$M/usr/bin/git\" \"$M/tmp/git\"; \"$M/tmp/git\" {c} >/dev/null"),
        ),
        // The same layer outside every configured snapshot root.
        in_container(base, "unrooted", &base.join("outside/1/fs"), &read),
    ];
    let mut merged = Vec::new();
    for (child, m) in runs {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "container {} failed: {}",
            m.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        merged.push(m);
    }
    let git = |i: usize| merged[i].join("usr/bin/git");

    // Positive control: the image's git is info, named by its layer.
    let ok = read_by(&agent, c, &git(0));
    assert_eq!(severity(&ok), "info", "the image's own git: {ok}");
    assert_eq!(
        ok["finding"]["evidence"]["expected_client"], "image-layer:1:git:/usr/bin/git",
        "{ok}"
    );
    let image_sha = ok["process"]["exe"]["sha256"].clone();
    assert!(image_sha.is_string(), "{ok}");
    // Side by side, the same program where the image does not vouch for it;
    // each hashed (the verdict is about evidence, not a missing hash), and
    // where `same` the very bytes of the image's file.
    for (what, exe, same) in [
        ("modified in the container", git(1), false),
        ("copied up unmodified", git(2), true),
        (
            "copied to the container's /tmp",
            merged[3].join("tmp/git"),
            true,
        ),
        ("from a layer outside image_roots", git(4), true),
    ] {
        let e = read_by(&agent, c, &exe);
        assert_eq!(e["process"]["exe"]["hash_status"], "ok", "{what}: {e}");
        assert_eq!(
            e["process"]["exe"]["sha256"] == image_sha,
            same,
            "{what}: {e}"
        );
        assert!(
            matches!(severity(&e), "high" | "critical"),
            "{what}: no expected client, so high: {e}"
        );
        assert!(
            e["finding"]["evidence"]["expected_client"].is_null(),
            "{what}: {e}"
        );
    }
    // The credential never left in any event.
    for e in agent.events() {
        assert!(!e.to_string().contains("image-layer-token"), "{e}");
    }
}
