//! External tools the tests drive (kubectl, podman, systemd-analyze, go,
//! protoc, ...) and the repository they read: a tool that cannot be started
//! fails the test naming what to install, it never skips it.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

/// The repository's top directory (the workspace root).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs `cmd`; a tool that cannot be started is a failure that names the
/// package to install.
pub fn run_tool(cmd: &mut Command, install_hint: &str) -> Output {
    cmd.stdin(Stdio::null());
    match cmd.output() {
        Ok(o) => o,
        Err(e) => panic!(
            "cannot run {:?}: {e}; install it ({install_hint})",
            cmd.get_program()
        ),
    }
}

/// `run_tool`, and the tool must succeed.
pub fn run_ok(cmd: &mut Command, install_hint: &str) -> Output {
    let shown = format!("{cmd:?}");
    let o = run_tool(cmd, install_hint);
    assert!(o.status.success(), "{shown} failed:\n{}", text(&o));
    o
}

/// A tool's exit status and output, for a failure message.
pub fn text(o: &Output) -> String {
    format!(
        "exit status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
