//! Live reconfiguration: SIGHUP and a ConfigMap-style symlink swap change
//! kill rules and sinks on the running agent, a broken config is refused
//! with the old rules still enforced, and learned state survives.

use std::{
    os::unix::{
        fs::PermissionsExt,
        process::{CommandExt, ExitStatusExt},
    },
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use crate::harness::*;
use serde_json::Value;

/// A home with a `.pgpass` of its own content, and a state dir.
struct Node {
    home: tempfile::TempDir,
    state: tempfile::TempDir,
}

impl Node {
    fn new(secret: &str) -> Node {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(
            home.path().join(".pgpass"),
            format!("db:5432:app:app:{secret}\n"),
        )
        .unwrap();
        Node {
            home,
            state: tempfile::tempdir().unwrap(),
        }
    }

    fn pgpass(&self) -> PathBuf {
        self.home.path().join(".pgpass")
    }

    /// A copy of cat in the home, made a distinct binary by `tag` (its own
    /// sha256, so its own identity).
    fn reader(&self, tag: &str) -> PathBuf {
        let path = self.home.path().join(tag);
        let mut bytes = std::fs::read("/bin/cat").unwrap();
        bytes.extend_from_slice(format!("\0{tag}\0").as_bytes());
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// The config: `rules` is the YAML list under `secrets.rules`, `sinks`
    /// the list under `sinks`.
    fn config(&self, rules: &str, sinks: &str) -> String {
        format!(
            "status_interval: 30s\n{TEST_METRICS}\
             state_dir: {state}\n\
             sinks:\n{sinks}\
             secrets:\n  extra_homes: [{home}]\n  search_dirs: []\n  rules:{rules}\n",
            state = self.state.path().display(),
            home = self.home.path().display(),
        )
    }
}

const STDOUT: &str = "  - type: stdout\n";

/// `cat FILE` through the binary at `exe`, as argv[0] `m`.
fn read_as(exe: &Path, m: &str, file: &Path) -> Output {
    Command::new(exe).arg0(m).arg(file).output().unwrap()
}

/// The reload status event after `seq`.
fn reload_after(agent: &AgentProc, seq: u64) -> Value {
    agent.wait_for(|e| {
        e["kind"] == "agent_status"
            && e["status"]["state"] == "reload"
            && e["seq"].as_u64().unwrap() > seq
    })
}

/// A config read through a symlink into another directory. The agent watches
/// the directory holding the path it was given, so rewriting the file behind
/// the link makes no file event there and only SIGHUP reloads it (a config
/// in busy /tmp would race the signal with a `file` reload).
struct SighupConfig {
    links: tempfile::TempDir,
    files: tempfile::TempDir,
}

impl SighupConfig {
    fn new(text: &str) -> Self {
        let c = SighupConfig {
            links: tempfile::tempdir().unwrap(),
            files: tempfile::tempdir().unwrap(),
        };
        c.write(text);
        std::os::unix::fs::symlink(c.files.path().join("proctor.yaml"), c.path()).unwrap();
        c
    }

    /// What the agent is started with and names in its messages.
    fn path(&self) -> std::path::PathBuf {
        self.links.path().join("proctor.yaml")
    }

    fn write(&self, text: &str) {
        std::fs::write(self.files.path().join("proctor.yaml"), text).unwrap();
    }
}

fn hup(agent: &AgentProc) {
    unsafe { libc::kill(agent.pid() as i32, libc::SIGHUP) };
}

/// Killed at the open (or, racing the signal, failed it): nothing read.
fn was_killed(out: &Output) -> bool {
    out.stdout.is_empty()
        && (out.status.signal() == Some(libc::SIGKILL) || out.status.code() == Some(1))
}

#[test]
fn a_kill_rule_added_by_sighup_kills_the_next_reader_and_a_broken_config_leaves_it_in_force() {
    let node = Node::new("reload-kill-secret");
    let owner = node.reader("pg-owner");
    let intruder = node.reader("pg-intruder");
    let rule = format!(
        "\n    - secret: {{id: pgpass}}\n      owners: [{{exe_path: {}}}]\n",
        owner.display()
    );
    let cfg = SighupConfig::new(&node.config(&rule, STDOUT));
    let agent = AgentProc::start_at(&cfg.path());

    // Before: the rule only reports; the intruder reads and lives.
    let m = marker("before-kill-rule");
    let out = read_as(&intruder, &m, &node.pgpass());
    assert!(
        out.status.success(),
        "killed before any kill rule: {:?}",
        out.status
    );
    let ev = read_finding(&agent, &m);
    assert_eq!(ev["finding"]["action"], Value::Null, "{ev}");
    assert_ne!(ev["finding"]["severity"], "info", "{ev}");

    let seq = agent.last_seq();
    cfg.write(&node.config(&format!("{rule}      enforce: [kill]\n"), STDOUT));
    hup(&agent);
    let r = reload_after(&agent, seq);
    let reload = &r["status"]["reload"];
    assert_eq!(reload["result"], "applied", "{r}");
    assert_eq!(reload["trigger"], "SIGHUP", "{r}");
    assert_eq!(
        reload["changed"],
        serde_json::json!(["secrets.rules"]),
        "{r}"
    );
    assert_eq!(
        reload["config_sha256"],
        sha256_file(&cfg.path()),
        "the hash of the file as applied: {r}"
    );

    let m = marker("after-kill-rule");
    let out = read_as(&intruder, &m, &node.pgpass());
    assert!(
        was_killed(&out),
        "not killed after the reload: {:?}",
        out.status
    );
    let ev = read_finding(&agent, &m);
    assert_eq!(ev["finding"]["action"], "killed", "{ev}");
    // No false alarm: the owner still reads, as info.
    let m = marker("owner-after-kill-rule");
    let out = read_as(&owner, &m, &node.pgpass());
    assert!(
        out.status.success(),
        "the owner was stopped: {:?}",
        out.status
    );
    let ev = read_finding(&agent, &m);
    assert_eq!(ev["finding"]["severity"], "info", "{ev}");

    // A broken config (a misspelt key) is refused, loudly, and changes nothing.
    let seq = agent.last_seq();
    cfg.write(&node.config(
        &format!("{rule}      enforce: [kill]\n      ownres: []\n"),
        STDOUT,
    ));
    hup(&agent);
    let r = reload_after(&agent, seq);
    let reload = &r["status"]["reload"];
    assert_eq!(reload["result"], "refused", "{r}");
    let error = reload["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("ownres") && error.contains(&cfg.path().display().to_string()),
        "the error names the key and the file: {r}"
    );
    assert!(
        agent.stderr_shows("configuration reload refused"),
        "the refusal is not logged: {}",
        agent.stderr()
    );
    let m = marker("after-broken-config");
    let out = read_as(&intruder, &m, &node.pgpass());
    assert!(
        was_killed(&out),
        "the old kill rule lapsed: {:?}",
        out.status
    );
    assert_eq!(read_finding(&agent, &m)["finding"]["action"], "killed");

    let (_, metrics) = http_get(&metrics_addr(&agent), "/metrics");
    assert_eq!(
        sample(&metrics, "proctor_config_reloads_total{result=\"applied\"}"),
        1.0
    );
    assert_eq!(
        sample(&metrics, "proctor_config_reloads_total{result=\"refused\"}"),
        1.0
    );
}

/// The metrics address the agent reports in its status.
fn metrics_addr(agent: &AgentProc) -> String {
    let st = agent.wait_for(|e| e["kind"] == "agent_status");
    st["status"]["metrics_listen"].as_str().unwrap().to_string()
}

/// A ConfigMap volume as the kubelet writes it: `..<timestamp>` directories,
/// `..data` pointing at the current one, `config.yaml -> ..data/config.yaml`.
struct ConfigMapVolume {
    dir: tempfile::TempDir,
    versions: u32,
}

impl ConfigMapVolume {
    fn new(text: &str) -> Self {
        let mut v = ConfigMapVolume {
            dir: tempfile::tempdir().unwrap(),
            versions: 0,
        };
        v.update(text);
        std::os::unix::fs::symlink("..data/config.yaml", v.path()).unwrap();
        v
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("config.yaml")
    }

    /// The kubelet's atomic update: a new version directory, a `..data_tmp`
    /// link to it renamed over `..data`, the old version removed.
    fn update(&mut self, text: &str) {
        self.versions += 1;
        let version = format!(
            "..2026_12_05_00_00_0{}.{}",
            self.versions,
            std::process::id()
        );
        let vdir = self.dir.path().join(&version);
        std::fs::create_dir(&vdir).unwrap();
        std::fs::write(vdir.join("config.yaml"), text).unwrap();
        let tmp = self.dir.path().join("..data_tmp");
        std::os::unix::fs::symlink(&version, &tmp).unwrap();
        let old = std::fs::read_link(self.dir.path().join("..data")).ok();
        std::fs::rename(&tmp, self.dir.path().join("..data")).unwrap();
        if let Some(old) = old {
            std::fs::remove_dir_all(self.dir.path().join(old)).unwrap();
        }
    }
}

#[test]
fn a_file_sink_added_by_a_configmap_symlink_swap_receives_events_after_the_swap() {
    let node = Node::new("reload-sink-secret");
    let out_dir = tempfile::tempdir().unwrap();
    let file = out_dir.path().join("events.jsonl");
    let mut volume = ConfigMapVolume::new(&node.config(" []", STDOUT));
    let agent = AgentProc::start_at(&volume.path());

    let before = marker("before-swap");
    run(Command::new("/bin/true").arg(&before));
    agent.wait_for(|e| is_exec_with(e, &before));
    assert!(!file.exists(), "no file sink yet");

    let seq = agent.last_seq();
    let sinks = format!(
        "{STDOUT}  - {{type: file, name: audit, path: {}, kinds: [process_exec, agent_status]}}\n",
        file.display()
    );
    volume.update(&node.config(" []", &sinks));
    let r = reload_after(&agent, seq);
    let reload = &r["status"]["reload"];
    assert_eq!(reload["result"], "applied", "{r}");
    assert_eq!(reload["trigger"], "file", "{r}");
    assert_eq!(reload["changed"], serde_json::json!(["sinks"]), "{r}");
    assert_eq!(reload["config_sha256"], sha256_file(&volume.path()), "{r}");

    let after = marker("after-swap");
    run(Command::new("/bin/true").arg(&after));
    agent.wait_for(|e| is_exec_with(e, &after));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let lines: Vec<Value> = loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if lines.iter().any(|e| is_exec_with(e, &after)) || std::time::Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        lines.iter().any(|e| is_exec_with(e, &after)),
        "the new sink did not get the exec after the swap: {lines:?}"
    );
    assert!(
        !lines.iter().any(|e| is_exec_with(e, &before)),
        "the new sink got an event from before it existed"
    );

    // Events in the directory that leave the config as it was are no reload.
    let seq = agent.last_seq();
    std::fs::write(volume.dir.path().join("unrelated"), "x").unwrap();
    volume.update(&node.config(" []", &sinks));
    let control = marker("after-same-content");
    run(Command::new("/bin/true").arg(&control));
    agent.wait_for(|e| is_exec_with(e, &control));
    std::thread::sleep(Duration::from_millis(500));
    let extra: Vec<Value> = agent
        .events()
        .into_iter()
        .filter(|e| e["seq"].as_u64().unwrap() > seq && e["status"]["state"] == "reload")
        .collect();
    assert!(extra.is_empty(), "a reload without a change: {extra:?}");
}

#[test]
fn a_learned_replay_binding_survives_a_reload() {
    let node = Node::new("reload-binding-secret");
    let first = node.reader("first-user");
    let second = node.reader("second-user");
    let cfg = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(cfg.path(), node.config(" []", STDOUT)).unwrap();
    let agent = AgentProc::start_at(cfg.path());

    let m = marker("binder");
    assert!(read_as(&first, &m, &node.pgpass()).status.success());
    read_finding(&agent, &m);
    let seq = agent.last_seq();
    // A live change of the secrets policy: the monitor applies a new policy.
    let rule = "\n    - secret: {id: netrc}\n      severity: low\n";
    std::fs::write(cfg.path(), node.config(rule, STDOUT)).unwrap();
    hup(&agent);
    let r = reload_after(&agent, seq);
    assert_eq!(r["status"]["reload"]["result"], "applied", "{r}");
    assert!(
        r["status"]["secrets"]["bound_secrets"].as_u64() >= Some(1),
        "the binding is still held: {r}"
    );

    // The first user is still bound: no replay (no false alarm) ...
    let m = marker("binder-again");
    assert!(read_as(&first, &m, &node.pgpass()).status.success());
    read_finding(&agent, &m);
    // ... and another binary using the same secret is a replay.
    let m = marker("replayer");
    assert!(read_as(&second, &m, &node.pgpass()).status.success());
    let ev = agent.wait_for(|e| {
        e["kind"] == "finding" && e["finding"]["rule"] == "secret-replay" && has_arg(e, &m)
    });
    let ids = ev["finding"]["evidence"]["identities"].to_string();
    // The bound identity is the first user's binary (by hash, or by path
    // when its hash was not known yet at the read).
    assert!(
        ids.contains(&sha256_file(&first)) || ids.contains(&first.display().to_string()),
        "{ev}"
    );
    let pgpass = node.pgpass().display().to_string();
    let replays: Vec<Value> = agent
        .events()
        .into_iter()
        .filter(|e| {
            e["finding"]["rule"] == "secret-replay" && e["finding"]["secret"]["path"] == pgpass
        })
        .collect();
    assert_eq!(
        replays.len(),
        1,
        "only the second user is a replay: {replays:?}"
    );
}
