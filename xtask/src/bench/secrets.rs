//! The secret files every configuration watches, and each monitor's
//! configuration for them: proctor's default and heavy policies, auditd
//! rules, a bpftrace script.

use std::{
    fmt::Write as _,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

/// Catalog ids of the files planted in every home, with their path under
/// the home and a fake (but content-check passing) body.
const PLANTED: &[(&str, &str, &str)] = &[
    (
        "aws-cli-credentials",
        ".aws/credentials",
        "[default]\naws_access_key_id = BENCHEXAMPLE\naws_secret_access_key = bench-not-a-real-key-",
    ),
    (
        "netrc",
        ".netrc",
        "machine example.invalid login bench password bench-not-a-real-password-",
    ),
    ("pgpass", ".pgpass", "localhost:5432:db:bench:bench-not-a-real-password-"),
    (
        "git-credentials",
        ".git-credentials",
        "https://bench:bench-not-a-real-token@example.invalid/",
    ),
    ("vault-token", ".vault-token", "hvs.bench-not-a-real-token-"),
];

/// Homes full of fake secrets under the bench directory. The first home is
/// the one the default configuration watches and the secret-read workload
/// reads; the heavy configurations watch all of them.
pub struct SecretSet {
    pub homes: Vec<PathBuf>,
    /// Every planted file, home by home.
    pub files: Vec<PathBuf>,
}

impl SecretSet {
    pub fn create(dir: &Path, homes: usize) -> Result<Self> {
        let mut set = SecretSet {
            homes: Vec::new(),
            files: Vec::new(),
        };
        for h in 0..homes {
            let home = dir.join(format!("homes/h{h:03}"));
            for (_, rel, body) in PLANTED {
                let p = home.join(rel);
                std::fs::create_dir_all(p.parent().expect("planted paths have a parent"))?;
                // Distinct contents: every file is its own secret (own fingerprint).
                std::fs::write(&p, format!("{body}{h}\n"))
                    .with_context(|| format!("write {}", p.display()))?;
                set.files.push(p);
            }
            set.homes.push(home);
        }
        Ok(set)
    }

    /// The files the secret-read workload opens: the first home's.
    pub fn read_set(&self) -> &[PathBuf] {
        &self.files[..PLANTED.len()]
    }

    /// The agent's default configuration, pointed at bench-owned state, API
    /// socket and metrics port, with the first home added to the homes.
    pub fn proctor_default(&self, dir: &Path, name: &str, extra: &str) -> String {
        format!(
            "{}secrets:\n  extra_homes: [{}]\n  search_dirs: []\n",
            base_config(dir, name, extra),
            self.homes[0].display()
        )
    }

    /// Every home watched (hundreds of secrets), a rule per secret and per
    /// catalog id (owners, allowed destinations, severity), and exceptions.
    pub fn proctor_heavy(&self, dir: &Path, name: &str) -> String {
        let mut c = base_config(dir, name, "");
        c.push_str("secrets:\n  search_dirs: []\n  extra_homes:\n");
        for h in &self.homes {
            let _ = writeln!(c, "    - {}", h.display());
        }
        c.push_str("  rules:\n");
        for (id, _, _) in PLANTED {
            let _ = writeln!(
                c,
                "    - secret: {{id: {id}}}\n      owners: [{{exe_path: /usr/local/bin/bench-{id}}}, {{cgroup: /system.slice/bench-{id}.service}}]\n      allowed_destinations: [\"10.0.0.0/8:443\", \"[fd00::/8]:443\"]"
            );
        }
        for (i, f) in self.files.iter().enumerate() {
            let _ = writeln!(
                c,
                "    - secret: {{path: {}}}\n      owners: [{{exe_path: /usr/local/bin/bench-app-{i}}}]\n      severity: high",
                f.display()
            );
        }
        c.push_str(
            "  exceptions:\n    - secret: {id: shell-history}\n      reader: {exe_path: /usr/bin/bash}\n    - secret: {id: repl-history}\n      reader: {comm: python3}\n",
        );
        c
    }

    /// auditd rules doing proctor's job: every execve, every connect, and a
    /// read watch on each secret file.
    pub fn audit_rules(&self) -> String {
        let mut r = String::from(
            "-a always,exit -F arch=b64 -S execve,execveat -k proctor-bench-exec\n\
             -a always,exit -F arch=b64 -S connect -k proctor-bench-connect\n",
        );
        for f in &self.files {
            let _ = writeln!(r, "-w {} -p r -k proctor-bench-secret", f.display());
        }
        r
    }

    /// A bpftrace script over the tracepoints proctor uses: exec, fork and
    /// exit, opens matched by inode (the secret files' inodes in a map, as
    /// proctor's kernel filter does), connects with their destination.
    pub fn bpftrace_script(&self) -> Result<String> {
        let mut s = String::from("BEGIN {\n");
        for f in &self.files {
            let ino = std::fs::metadata(f)?.ino();
            let _ = writeln!(s, "  @watched[{ino}] = 1;");
        }
        s.push_str(
            r#"  printf("ready\n");
}
tracepoint:sched:sched_process_exec { printf("exec %d %d %s\n", pid, uid, str(args->filename)); }
tracepoint:sched:sched_process_fork { printf("fork %d %d\n", args->parent_pid, args->child_pid); }
tracepoint:sched:sched_process_exit { printf("exit %d\n", pid); }
tracepoint:syscalls:sys_exit_openat /args->ret >= 0/ {
  $f = *(curtask->files->fdt->fd + args->ret);
  $ino = $f->f_inode->i_ino;
  if (@watched[$ino]) { printf("open %d %s %d\n", pid, comm, $ino); }
}
tracepoint:syscalls:sys_enter_connect {
  $sa = (struct sockaddr_in *)args->uservaddr;
  printf("connect %d %s %d %s %d\n", pid, comm, $sa->sin_family, ntop($sa->sin_addr.s_addr), $sa->sin_port);
}
END { clear(@watched); }
"#,
        );
        Ok(s)
    }
}

/// What every bench agent shares: short status interval, its own state dir,
/// API socket and an ephemeral metrics port (other agents may run on this
/// machine at the same time).
pub fn base_config(dir: &Path, name: &str, extra: &str) -> String {
    format!(
        "status_interval: 500ms\nstate_dir: {d}/state-{name}\nmetrics:\n  listen: 127.0.0.1:0\napi:\n  socket: {d}/{name}.sock\n{extra}",
        d = dir.display()
    )
}
