//! `proctor spire-plugin` loaded by a real go-plugin host, the way the SPIRE
//! agent loads it, against a real running agent.
//!
//! The host (tests/integration/spire_host/main.go) is built here from Debian's Go
//! packages (GOPATH mode, offline): hashicorp/go-plugin for the handshake,
//! broker and controller, hashicorp/hcl v1 to read the SPIRE agent config and
//! print plugin_data as SPIRE does, grpc-go and stubs that protoc generates
//! from our own proto/spire files. The build is cached under the cargo target
//! directory, keyed by its inputs.
//!
//! Needs root (the agent loads BPF; its API allows root only).

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use crate::harness::{proctor_bin, repo_root, run_ok, sha256_file, AgentProc, Kid, TEST_CONFIG};
use proctor::{
    api::spire_plugin::config::PluginConfig,
    api::{client, selectors::known_kind},
};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub(crate) const WAIT: Duration = Duration::from_secs(60);

/// The proto files the host needs stubs for, and the Go package of each.
const HOST_PROTOS: &[(&str, &str)] = &[
    (
        "spire/plugin/agent/workloadattestor/v1/workloadattestor.proto",
        "workloadattestorv1",
    ),
    ("spire/service/common/config/v1/config.proto", "configv1"),
    ("spire/service/private/init/v1/init.proto", "initv1"),
    ("proctor/v1/attestation.proto", "proctorv1"),
];

/// Builds the go-plugin host once per test run; reuses an earlier build when
/// none of its inputs changed.
fn host() -> &'static Path {
    static HOST: OnceLock<PathBuf> = OnceLock::new();
    HOST.get_or_init(|| {
        let root = repo_root();
        let main_go = root.join("agent/tests/integration/spire_host/main.go");
        let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("spire-host");
        let bin = work.join("spire-host");
        let stamp = work.join("spire-host.inputs");

        let go_version = Command::new("go")
            .arg("version")
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run `go` ({e}): install golang-go (cargo xtask setup does)")
            });
        let mut inputs = Sha256::new();
        inputs.update(&go_version.stdout);
        inputs.update(std::fs::read(&main_go).unwrap());
        for (proto, _) in HOST_PROTOS {
            inputs.update(std::fs::read(root.join("proto").join(proto)).unwrap());
        }
        let inputs = hex::encode(inputs.finalize());
        if bin.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&inputs) {
            return bin;
        }

        let gopath = work.join("gopath");
        let _ = std::fs::remove_dir_all(gopath.join("src"));
        let src = gopath.join("src");
        std::fs::create_dir_all(src.join("proctor.test/spirehost")).unwrap();
        let mut protoc = Command::new("protoc");
        protoc
            .arg("-I")
            .arg(root.join("proto"))
            .arg(format!("--go_out={}", src.display()))
            .arg(format!("--go-grpc_out={}", src.display()));
        for (proto, pkg) in HOST_PROTOS {
            let m = format!("M{proto}=proctor.test/spire/{pkg};{pkg}");
            protoc
                .arg(format!("--go_opt={m}"))
                .arg(format!("--go-grpc_opt={m}"));
        }
        protoc.args(HOST_PROTOS.iter().map(|(p, _)| p));
        run_ok(
            &mut protoc,
            "protobuf-compiler and protoc-gen-go(-grpc); cargo xtask setup does",
        );
        std::fs::copy(&main_go, src.join("proctor.test/spirehost/main.go")).unwrap();
        run_ok(
            Command::new("go")
                .args(["build", "-o"])
                .arg(&bin)
                .arg("proctor.test/spirehost")
                .env("GO111MODULE", "off")
                .env("GOPROXY", "off")
                .env("GOFLAGS", "")
                .env("GOPATH", format!("{}:/usr/share/gocode", gopath.display()))
                .env("GOCACHE", work.join("gocache")),
            "golang-go and the Go packages cargo xtask setup installs",
        );
        std::fs::write(&stamp, &inputs).unwrap();
        bin
    })
}

pub(crate) struct HostRun {
    pub status: std::process::ExitStatus,
    pub report: Value,
    pub stderr: String,
}

pub(crate) fn run_host(args: &[&str], env: &[(&str, &str)]) -> HostRun {
    let out = Command::new(host())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run the go-plugin host");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = if out.status.success() {
        serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("host printed no JSON ({e}): {stdout}\n{stderr}"))
    } else {
        Value::Null
    };
    HostRun {
        status: out.status,
        report,
        stderr,
    }
}

/// `plugin_checksum` for this build. sha256sum, not the test's own (debug
/// build) sha2: the binary is large and the tests run beside other agents.
fn proctor_checksum() -> &'static str {
    static SUM: OnceLock<String> = OnceLock::new();
    SUM.get_or_init(|| {
        let out = Command::new("sha256sum")
            .arg(proctor_bin())
            .output()
            .expect("run sha256sum");
        assert!(out.status.success());
        let sum = String::from_utf8(out.stdout).unwrap();
        sum.split_whitespace().next().unwrap().to_string()
    })
}

/// A SPIRE agent config with the plugin block pointing at this build.
pub(crate) fn agent_conf(dir: &Path, plugin_data: &str) -> PathBuf {
    let conf = format!(
        "agent {{\n  trust_domain = \"example.org\"\n}}\n\
         plugins {{\n  WorkloadAttestor \"proctor\" {{\n    plugin_cmd = \"{}\"\n    \
         plugin_args = [\"spire-plugin\"]\n    plugin_checksum = \"{}\"\n    \
         plugin_data {{\n{plugin_data}\n    }}\n  }}\n}}\n",
        proctor_bin().display(),
        proctor_checksum()
    );
    let path = dir.join("agent.conf");
    std::fs::write(&path, conf).unwrap();
    path
}

/// One agent for this test binary, serving its API on a private socket.
pub(crate) fn agent() -> &'static (AgentProc, PathBuf, tempfile::TempDir) {
    static AGENT: OnceLock<(AgentProc, PathBuf, tempfile::TempDir)> = OnceLock::new();
    AGENT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("proctor.sock");
        let off = "api:\n  enabled: false\n";
        assert!(TEST_CONFIG.contains(off));
        let config = TEST_CONFIG.replace(
            off,
            &format!("api:\n  enabled: true\n  socket: {}\n", socket.display()),
        );
        let agent = AgentProc::start(&config);
        (agent, socket, dir)
    })
}

/// Waits until the agent vouches for the hash of `pid`'s binary (hashing
/// runs after the exec event).
pub(crate) fn wait_for_hash(socket: &Path, pid: u32) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t = Instant::now();
    loop {
        let last = match rt.block_on(client::attest(socket, pid as i32)) {
            Ok(id) if !id.exe_sha256.is_empty() => return id.exe_sha256,
            Ok(id) => format!("{:?}", id.integrity),
            Err(e) => {
                assert!(
                    client::code_of(&e).is_some(),
                    "the agent API is not answering: {e:#}"
                );
                format!("{e:#}")
            }
        };
        assert!(
            t.elapsed() < WAIT,
            "the agent never hashed pid {pid}'s binary; last answer: {last}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// A live workload started by the test (a copy of sleep in `dir`), once the
/// agent has hashed its binary; the test's own sha256 of it.
fn workload(dir: &Path, socket: &Path) -> (Kid, PathBuf, String) {
    let bin = dir.join("spire-workload");
    crate::harness::copy_exe("/bin/sleep", &bin);
    let want_sha = sha256_file(&bin);
    let kid = Kid(crate::harness::spawn(
        Command::new(&bin).arg("300").stdout(Stdio::null()),
    ));
    assert_eq!(wait_for_hash(socket, kid.0.id()), want_sha);
    (kid, bin, want_sha)
}

#[test]
fn go_plugin_host_gets_kernel_selectors_for_a_live_process() {
    let (_agent, socket, _) = agent();
    let dir = tempfile::tempdir().unwrap();
    let (kid, bin, want_sha) = workload(dir.path(), socket);
    let pid = kid.0.id();

    let gone = Command::new("/bin/true").spawn().unwrap();
    let gone_pid = gone.id();
    let _ = { gone }.wait();

    let conf = agent_conf(
        dir.path(),
        &format!("agent_socket = \"{}\"", socket.display()),
    );
    let socket_dir = dir.path().join("plugin-sockets");
    std::fs::create_dir(&socket_dir).unwrap();
    let run = run_host(
        &[
            "-config",
            conf.to_str().unwrap(),
            "-pids",
            &format!("{pid},{gone_pid},0"),
        ],
        &[
            ("PLUGIN_UNIX_SOCKET_DIR", socket_dir.to_str().unwrap()),
            ("PLUGIN_UNIX_SOCKET_GROUP", "daemon"),
        ],
    );
    assert!(run.status.success(), "host failed: {}", run.stderr);
    let r = &run.report;

    // Socket where the host asked, reachable by its group.
    let addr = r["socket_addr"].as_str().unwrap();
    assert!(addr.starts_with(socket_dir.to_str().unwrap()), "{r}");
    assert_eq!(r["socket_mode"], "660", "{r}");
    let daemon_gid = proctor::api::selectors::resolve_group("daemon").unwrap();
    assert_eq!(r["socket_gid"], daemon_gid, "{r}");
    assert_eq!(
        r["socket_gone_after_kill"], true,
        "plugin did not exit cleanly: {r}"
    );

    let names = strings(&r["plugin_service_names"]);
    assert!(
        names.contains(&"spire.plugin.agent.workloadattestor.v1.WorkloadAttestor".to_string())
            && names.contains(&"spire.service.common.config.v1.Config".to_string()),
        "{names:?}"
    );
    assert!(r["configure_error"].is_null(), "{r}");
    assert_eq!(r["validate_valid"], true, "{r}");
    // A reference type no plugin can know: INVALID_ARGUMENT naming it (the
    // plugin SDK's rule for an implemented AttestReference).
    assert_eq!(r["attest_reference_code"], "InvalidArgument", "{r}");
    let msg = r["attest_reference_message"].as_str().unwrap();
    assert!(
        msg.contains("google.protobuf.Int32Value") && msg.contains("proctor.v1.ProcessReference"),
        "{msg}"
    );

    let attest = r["attest"].as_array().unwrap();
    assert!(attest[0]["error"].is_null(), "{r}");
    let sel = strings(&attest[0]["selectors"]);
    let path = std::fs::canonicalize(&bin).unwrap();
    for want in [
        format!("sha256:{want_sha}"),
        format!("exec-sha256:{want_sha}"),
        "binary-unmodified:true".to_string(),
        "uid:0".into(),
        format!("path:{}", path.display()),
    ] {
        assert!(sel.contains(&want), "{want} missing from {sel:?}");
    }
    // Values only (SPIRE adds the plugin name), and only kinds the
    // registration docs may use.
    for s in &sel {
        assert!(
            ["unix", "k8s", "proctor"]
                .iter()
                .any(|t| known_kind(t, s).is_some()),
            "unexpected selector value {s}"
        );
    }

    // An exited pid is an error, as with SPIRE's unix attestor.
    assert!(
        !Path::new(&format!("/proc/{gone_pid}")).exists(),
        "pid {gone_pid} was reused during the test"
    );
    assert_eq!(attest[1]["error"]["code"], "NotFound", "{r}");
    assert!(
        attest[1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&gone_pid.to_string()),
        "{r}"
    );
    assert_eq!(attest[2]["error"]["code"], "InvalidArgument", "{r}");
    drop(kid);
}

#[test]
fn selector_groups_limit_what_spire_gets() {
    let (_agent, socket, _) = agent();
    let dir = tempfile::tempdir().unwrap();
    let (kid, _, sha) = workload(dir.path(), socket);
    let pid = kid.0.id();
    let conf = agent_conf(
        dir.path(),
        &format!(
            "agent_socket = \"{}\"\nselector_groups = [\"proctor\"]",
            socket.display()
        ),
    );
    let run = run_host(
        &["-config", conf.to_str().unwrap(), "-pids", &pid.to_string()],
        &[],
    );
    assert!(run.status.success(), "host failed: {}", run.stderr);
    let sel = strings(&run.report["attest"][0]["selectors"]);
    assert!(sel.contains(&format!("exec-sha256:{sha}")), "{sel:?}");
    assert!(
        sel.iter()
            .all(|s| known_kind("proctor", s).is_some() && !s.starts_with("uid:")),
        "{sel:?}"
    );
}

#[test]
fn bad_plugin_data_fails_configure_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let conf = agent_conf(dir.path(), "agent_sockett = \"/run/proctor/proctor.sock\"");
    let run = run_host(&["-config", conf.to_str().unwrap(), "-pids", "1"], &[]);
    assert!(run.status.success(), "host failed: {}", run.stderr);
    let r = &run.report;
    assert_eq!(r["configure_error"]["code"], "InvalidArgument", "{r}");
    let msg = r["configure_error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("agent_sockett") && msg.contains("agent_socket"),
        "{msg}"
    );
    assert_eq!(r["validate_valid"], false, "{r}");
    assert!(
        strings(&r["validate_notes"])[0].contains("agent_sockett"),
        "{r}"
    );
    // Never configured: no answers.
    assert_eq!(r["attest"][0]["error"]["code"], "FailedPrecondition", "{r}");

    let conf = agent_conf(dir.path(), "selector_groups = [\"unix\", \"docker\"]");
    let run = run_host(&["-config", conf.to_str().unwrap()], &[]);
    let msg = run.report["configure_error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("selector_groups") && msg.contains("docker"),
        "{msg}"
    );
}

/// The plugin's stderr lines as go-plugin read them (`-plugin-stderr`),
/// and the host's own log, where go-plugin re-logs them.
fn plugin_log_run(dir: &Path, plugin_data: &str, env: &[(&str, &str)]) -> (HostRun, String) {
    let conf = agent_conf(dir, plugin_data);
    let raw = dir.join("plugin-stderr.log");
    let run = run_host(
        &[
            "-config",
            conf.to_str().unwrap(),
            "-plugin-stderr",
            raw.to_str().unwrap(),
        ],
        env,
    );
    assert!(run.status.success(), "host failed: {}", run.stderr);
    let raw = std::fs::read_to_string(&raw).unwrap();
    (run, raw)
}

#[test]
fn plugin_logs_are_hclog_json_that_the_host_relogs_at_their_level() {
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("no-agent.sock");
    // A credential in the environment the plugin inherits: no log line may carry it.
    let secret = format!("{}{}", "q8Rz0Lk3Vw7Tn2", "Hy5Bc9Xm4Ps1Dj6Gf0Ua8Ei3Oq");
    let (run, raw) = plugin_log_run(
        dir.path(),
        &format!("agent_socket = \"{}\"", absent.display()),
        &[("PROCTOR_LOG", "debug"), ("AWS_SECRET_ACCESS_KEY", &secret)],
    );
    let lines: Vec<serde_json::Map<String, Value>> = raw
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("plugin stderr line is not a JSON object ({e}): {l}"))
        })
        .collect();
    assert!(
        !lines.is_empty(),
        "the plugin logged nothing: {}",
        run.stderr
    );
    for l in &lines {
        for key in ["@level", "@message", "@timestamp", "@module"] {
            assert!(l[key].is_string(), "{key} missing: {l:?}");
        }
        assert_eq!(l["@module"], "proctor", "{l:?}");
        let ts = l["@timestamp"].as_str().unwrap();
        humantime::parse_rfc3339(ts).unwrap_or_else(|e| panic!("@timestamp {ts}: {e}"));
        // hclog's layout, which go-plugin parses: six fractional digits.
        let frac = ts.split_once('.').map(|(_, f)| f.trim_end_matches('Z'));
        assert_eq!(frac.map(str::len), Some(6), "@timestamp {ts}");
    }
    let level_of = |needle: &str| -> &str {
        lines
            .iter()
            .find(|l| l["@message"].as_str().unwrap().contains(needle))
            .map(|l| l["@level"].as_str().unwrap())
            .unwrap_or_else(|| panic!("no plugin log line with {needle:?} in:\n{raw}"))
    };
    // Configure against an agent that does not answer: one warning, then
    // the configuration (info); Init is debug.
    assert_eq!(
        level_of("attestation fails until the agent answers"),
        "warn"
    );
    assert_eq!(level_of("configured: agent socket"), "info");
    assert_eq!(level_of("host services offered"), "debug");

    // go-plugin parsed each line and re-logged it at the same level (a line
    // it cannot parse is re-logged at debug, whole).
    for l in &lines {
        let level = format!("[{}]", l["@level"].as_str().unwrap().to_uppercase());
        let msg: String = l["@message"].as_str().unwrap().chars().take(40).collect();
        let relogged = run
            .stderr
            .lines()
            .find(|h| h.contains("spire-host.proctor: ") && h.contains(&msg))
            .unwrap_or_else(|| panic!("the host did not re-log {l:?}:\n{}", run.stderr));
        assert!(
            relogged.contains(&level),
            "re-logged at another level than {level}: {relogged}"
        );
        assert!(
            !relogged.contains("{\"@level\""),
            "re-logged raw: {relogged}"
        );
    }
    assert!(
        !raw.contains(&secret) && !run.stderr.contains(&secret),
        "a secret value reached the logs"
    );
}

#[test]
fn wrong_magic_cookie_is_refused() {
    // By hand: no cookie.
    let out = Command::new(proctor_bin())
        .arg("spire-plugin")
        .env_remove("WorkloadAttestor")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty(),
        "no handshake line without the cookie"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not by hand") && err.contains("WorkloadAttestor=WorkloadAttestor"),
        "{err}"
    );

    // A host whose cookie does not match: the plugin exits before the
    // handshake, so the host cannot load it. (go-plugin may or may not have
    // relayed the plugin's stderr by then; the message is checked above.)
    let dir = tempfile::tempdir().unwrap();
    let conf = agent_conf(dir.path(), "");
    let run = run_host(
        &["-config", conf.to_str().unwrap(), "-cookie", "KeyManager"],
        &[],
    );
    assert!(!run.status.success());
    assert!(
        run.stderr.contains("failed to launch plugin"),
        "{}",
        run.stderr
    );
    let out = Command::new(proctor_bin())
        .arg("spire-plugin")
        .env("WorkloadAttestor", "KeyManager")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("set to another value"), "{err}");
    // Started by a host (the cookie variable is set), the refusal is an
    // hclog line at error level, which the host shows as such; by hand
    // (above) it is plain text.
    let line: Value = serde_json::from_str(err.trim())
        .unwrap_or_else(|e| panic!("not one hclog JSON line ({e}): {err}"));
    assert_eq!(line["@level"], "error", "{line}");
    assert!(
        serde_json::from_str::<Value>(
            String::from_utf8_lossy(
                &Command::new(proctor_bin())
                    .arg("spire-plugin")
                    .env_remove("WorkloadAttestor")
                    .output()
                    .unwrap()
                    .stderr
            )
            .trim()
        )
        .is_err(),
        "by hand, the refusal must be plain text"
    );
}

/// deploy/spire: the agent.conf snippet's plugin block is what SPIRE needs,
/// its plugin_data (printed by SPIRE's HCL printer) parses with the plugin's
/// own parser, and the registration example only uses selector kinds the
/// plugin emits with that configuration.
#[test]
fn deploy_snippet_and_registration_example_match_the_plugin() {
    let root = repo_root();
    let conf = root.join("deploy/spire/agent.conf");
    let run = run_host(&["-config", conf.to_str().unwrap(), "-dump"], &[]);
    assert!(run.status.success(), "host failed: {}", run.stderr);
    let r = &run.report;
    assert_eq!(strings(&r["plugin_args"]), ["spire-plugin"], "{r}");
    assert!(
        r["plugin_cmd"].as_str().unwrap().ends_with("/proctor"),
        "{r}"
    );
    let checksum = r["plugin_checksum"].as_str().unwrap();
    assert!(
        checksum.len() == 64 && checksum.chars().all(|c| c.is_ascii_hexdigit()),
        "plugin_checksum must be a sha256 in hex: {checksum}"
    );
    let cfg = PluginConfig::parse(r["plugin_data"].as_str().unwrap())
        .unwrap_or_else(|e| panic!("deploy/spire/agent.conf plugin_data: {e:#}"));

    let example = std::fs::read_to_string(root.join("deploy/spire/register-workload.sh")).unwrap();
    let selectors: Vec<&str> = example
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "-selector")
        .map(|w| w[1].trim_matches('"'))
        .collect();
    assert!(!selectors.is_empty(), "no -selector in the example");
    assert!(
        selectors.iter().any(|s| s.starts_with("proctor:sha256:")),
        "the example must pin a binary hash: {selectors:?}"
    );
    for s in selectors {
        let (plugin, value) = s.split_once(':').unwrap();
        if plugin != "proctor" {
            continue;
        }
        let emitted = cfg
            .selector_groups
            .iter()
            .any(|g| known_kind(g.name(), value).is_some());
        assert!(
            emitted,
            "{s}: not a kind the plugin emits with selector_groups {:?}",
            cfg.selector_groups
        );
    }
}

/// `proctor inventory ARGS --config CFG` as JSON.
fn inventory_json(cfg: &Path, args: &[&str]) -> Value {
    let mut all: Vec<&str> = vec!["inventory", "--json", "--config", cfg.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = crate::harness::proctor_ok(all);
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn the_migration_plans_selectors_attest_the_secrets_reader_and_no_other_workload() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let secret_value = format!("netrc-migrate-{}", std::process::id());
    let netrc = home.join(".netrc");
    std::fs::write(
        &netrc,
        format!("machine example.test login app password {secret_value}\n"),
    )
    .unwrap();
    let socket = dir.path().join("proctor.sock");
    let state = dir.path().join("state");
    let off = "api:\n  enabled: false\n";
    let config = format!(
        "{}state_dir: {}\nsecrets:\n  extra_homes: [{}]\n  search_dirs: []\n",
        TEST_CONFIG.replace(
            off,
            &format!("api:\n  enabled: true\n  socket: {}\n", socket.display()),
        ),
        state.display(),
        home.display(),
    );
    let cfg = dir.path().join("agent.yaml");
    std::fs::write(&cfg, &config).unwrap();
    let _agent = AgentProc::start(&config);

    // The workload that holds the key today: it reads it and keeps running.
    let app = dir.path().join("billing-app");
    crate::harness::copy_exe("/usr/bin/tail", &app);
    let app_sha = sha256_file(&app);
    let reader = Kid(crate::harness::spawn(
        Command::new(&app)
            .args(["-f", netrc.to_str().unwrap()])
            .stdout(Stdio::null()),
    ));
    assert_eq!(wait_for_hash(&socket, reader.0.id()), app_sha);
    // Reads reach the inventory within a fraction of a second.
    let t = Instant::now();
    let plan = loop {
        let plan = inventory_json(&cfg, &["--migration-plan"]);
        let found = plan["workloads"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["exe_sha256"] == app_sha.as_str());
        if found {
            break plan;
        }
        assert!(
            t.elapsed() < WAIT,
            "the read never reached the plan: {plan}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = String::from_utf8(crate::harness::proctor_ok([
        "inventory",
        "--migration-plan",
        "--config",
        cfg.to_str().unwrap(),
    ]))
    .unwrap();
    assert!(!plan.to_string().contains(&secret_value) && !text.contains(&secret_value));
    let w = plan["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["exe_sha256"] == app_sha.as_str())
        .unwrap();
    assert_eq!(w["secrets"][0]["path"], netrc.to_str().unwrap(), "{w}");
    assert_eq!(w["secrets"][0]["catalog_id"], "netrc", "{w}");
    let selectors = strings(&w["selectors"]);
    assert_eq!(
        selectors,
        vec![format!("sha256:{app_sha}"), "uid:0".to_string()],
        "{w}"
    );
    for s in &selectors {
        assert!(
            text.contains(&format!("-selector proctor:{s}")),
            "the printed command lacks {s}:\n{text}"
        );
    }
    assert!(text.contains("spire-server entry create"), "{text}");

    // What SPIRE's agent would get from the plugin for the reader, and for
    // another workload (same user, another binary).
    let other = dir.path().join("other-app");
    crate::harness::copy_exe("/bin/sleep", &other);
    let other_kid = Kid(crate::harness::spawn(
        Command::new(&other).arg("300").stdout(Stdio::null()),
    ));
    wait_for_hash(&socket, other_kid.0.id());
    let conf = agent_conf(
        dir.path(),
        &format!("agent_socket = \"{}\"", socket.display()),
    );
    let run = run_host(
        &[
            "-config",
            conf.to_str().unwrap(),
            "-pids",
            &format!("{},{}", reader.0.id(), other_kid.0.id()),
        ],
        &[],
    );
    assert!(run.status.success(), "host failed: {}", run.stderr);
    let attest = run.report["attest"].as_array().unwrap();
    let of_reader = strings(&attest[0]["selectors"]);
    let of_other = strings(&attest[1]["selectors"]);
    for s in &selectors {
        assert!(
            of_reader.contains(s),
            "{s} from the plan is not among the reader's attested selectors {of_reader:?}"
        );
    }
    assert!(
        !selectors.iter().all(|s| of_other.contains(s)),
        "the plan's entry would also match another workload: {of_other:?}"
    );
    drop(other_kid);
    drop(reader);
}
