//! The deployment artefacts under deploy/, checked with the real tools:
//!
//! - Kubernetes: every kustomization (base, overlays, examples, and each
//!   component on top of least-privilege) rendered with `kubectl kustomize`,
//!   every rendered object validated with `kubernetes-validate --strict`
//!   against the three newest Kubernetes versions it bundles, and the
//!   DaemonSets read for what the agent needs (mounts, capabilities, probes,
//!   resources, host PID namespace, tolerations), cross-checked with the
//!   agent's config they carry.
//! - Configs: every config in deploy/ passes `proctor policy check`.
//! - systemd: `systemd-analyze verify` and `systemd-analyze security` on the
//!   unit; install.sh then uninstall.sh into a DESTDIR.
//! - Container image: built offline with Podman from deploy/container, then
//!   `proctor doctor` inside it, and `proctor run` inside it with exactly the
//!   least-privilege DaemonSet's capabilities, volumes and security settings,
//!   seeing a process started on the host.
//!
//! Tools needed (CI installs them; a missing one fails the test, it does not
//! skip): kubectl (with its built-in kustomize), kubernetes-validate (PyPI),
//! systemd-analyze (Debian `systemd`), podman and runc (Debian).

mod common;

use common::podman_run_base;

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write,
    path::{Component, Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use serde::Deserialize;
use serde_yaml_ng::Value;

/// The Kubernetes versions the manifests must validate against: the three
/// newest whose schemas kubernetes-validate 1.37.0 bundles (it covers 1.25-1.37).
const KUBERNETES_VERSIONS: [&str; 3] = ["1.35.0", "1.36.0", "1.37.0"];

/// The port the agent serves /metrics, /healthz and /readyz on.
const METRICS_PORT: i64 = 9464;

/// What the agent needs from the host:
/// (mount path in the container, host path, read-only, why).
const REQUIRED_HOST_MOUNTS: &[(&str, &str, bool, &str)] = &[
    (
        "/sys/fs/bpf",
        "/sys/fs/bpf",
        false,
        "bpffs (else the agent tries to mount it: CAP_SYS_ADMIN)",
    ),
    (
        "/sys/kernel/btf",
        "/sys/kernel/btf",
        true,
        "kernel BTF: struct offsets for the probes",
    ),
    (
        "/sys/kernel/tracing",
        "/sys/kernel/tracing",
        true,
        "tracefs: syscall tracepoint ids",
    ),
    (
        "/sys/fs/cgroup",
        "/sys/fs/cgroup",
        true,
        "the host's cgroup tree: cgroup id -> path",
    ),
    (
        "/run/proctor",
        "/run/proctor",
        false,
        "API socket shared with the SPIRE agent",
    ),
    (
        "/var/lib/proctor",
        "/var/lib/proctor",
        false,
        "state: inventory database",
    ),
    ("/host", "/", true, "host root file system"),
];

/// Capabilities of the least-privilege agent, as Kubernetes names them.
const LEAST_PRIVILEGE_CAPS: [&str; 5] = [
    "BPF",
    "PERFMON",
    "SYS_RESOURCE",
    "SYS_PTRACE",
    "DAC_READ_SEARCH",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn deploy() -> PathBuf {
    repo().join("deploy")
}

fn proctor_bin() -> &'static str {
    env!("CARGO_BIN_EXE_proctor")
}

/// Runs `cmd`; a tool that cannot be started is a failure that names the
/// package to install.
fn run(cmd: &mut Command, install_hint: &str) -> Output {
    cmd.stdin(Stdio::null());
    match cmd.output() {
        Ok(o) => o,
        Err(e) => panic!(
            "cannot run {:?}: {e}; install it ({install_hint})",
            cmd.get_program()
        ),
    }
}

fn text(o: &Output) -> String {
    format!(
        "exit status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn run_ok(cmd: &mut Command, install_hint: &str) -> Output {
    let shown = format!("{cmd:?}");
    let o = run(cmd, install_hint);
    assert!(o.status.success(), "{shown} failed:\n{}", text(&o));
    o
}

// ---------------------------------------------------------------- YAML ----

fn docs(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).expect("kustomize printed invalid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

/// `v` at a dotted path; numeric segments index sequences.
fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(v, |cur, seg| match seg.parse::<usize>() {
            Ok(i) => cur.as_sequence()?.get(i),
            Err(_) => cur.get(seg),
        })
}

fn str_at<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

fn seq_at<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn kind_of(v: &Value) -> &str {
    str_at(v, "kind").unwrap_or("")
}

fn name_of(v: &Value) -> &str {
    str_at(v, "metadata.name").unwrap_or("")
}

// ----------------------------------------------------------- kustomize ----

/// One `kubectl kustomize` rendering.
struct Rendering {
    /// deploy/kubernetes-relative name, e.g. "overlays/least-privilege" or
    /// "components/servicemonitor (on overlays/least-privilege)".
    name: String,
    yaml: String,
    objects: Vec<Value>,
}

impl Rendering {
    fn one(&self, kind: &str) -> &Value {
        let found: Vec<&Value> = self.objects.iter().filter(|o| kind_of(o) == kind).collect();
        assert_eq!(
            found.len(),
            1,
            "{}: expected exactly one {kind}, found {}",
            self.name,
            found.len()
        );
        found[0]
    }

    fn daemonset(&self) -> &Value {
        self.one("DaemonSet")
    }

    fn container(&self) -> &Value {
        let ds = self.daemonset();
        let c = seq_at(ds, "spec.template.spec.containers");
        c.iter()
            .find(|c| str_at(c, "name") == Some("proctor"))
            .unwrap_or_else(|| panic!("{}: DaemonSet has no container named proctor", self.name))
    }
}

fn kustomize(dir: &Path) -> String {
    let o = run_ok(
        Command::new("kubectl").arg("kustomize").arg(dir),
        "kubectl, which has kustomize built in",
    );
    String::from_utf8(o.stdout).unwrap()
}

/// `to` relative to `from` (both absolute): kustomize refuses absolute paths.
fn relative(from: &Path, to: &Path) -> PathBuf {
    let f: Vec<Component> = from.components().collect();
    let t: Vec<Component> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..f.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c.as_os_str());
    }
    out
}

fn kustomization_kind(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("kustomization.yaml")).ok()?;
    let v: Value = serde_yaml_ng::from_str(&text)
        .unwrap_or_else(|e| panic!("{}/kustomization.yaml is not YAML: {e}", dir.display()));
    str_at(&v, "kind").map(str::to_string)
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Every rendering of deploy/kubernetes: base, each overlay and example, and
/// each component added to the least-privilege overlay.
fn renderings() -> &'static [Rendering] {
    static R: OnceLock<Vec<Rendering>> = OnceLock::new();
    R.get_or_init(|| {
        let k8s = deploy().join("kubernetes");
        let mut dirs = vec![k8s.join("base")];
        for group in ["overlays", "examples"] {
            dirs.extend(subdirs(&k8s.join(group)));
        }
        let mut out = Vec::new();
        for dir in dirs {
            assert_eq!(
                kustomization_kind(&dir).as_deref(),
                Some("Kustomization"),
                "{} has no kustomization.yaml of kind Kustomization",
                dir.display()
            );
            let yaml = kustomize(&dir);
            out.push(Rendering {
                name: dir.strip_prefix(&k8s).unwrap().display().to_string(),
                objects: docs(&yaml),
                yaml,
            });
        }
        let components = subdirs(&k8s.join("components"));
        assert!(
            !components.is_empty(),
            "no components under {}",
            k8s.display()
        );
        let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("deploy-components");
        for comp in components {
            assert_eq!(
                kustomization_kind(&comp).as_deref(),
                Some("Component"),
                "{} is not a kustomize Component",
                comp.display()
            );
            let name = comp.file_name().unwrap().to_string_lossy().to_string();
            let dir = scratch.join(&name);
            std::fs::create_dir_all(&dir).unwrap();
            let base = relative(&dir, &k8s.join("overlays/least-privilege"));
            let c = relative(&dir, &comp);
            std::fs::write(
                dir.join("kustomization.yaml"),
                format!(
                    "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
                     resources:\n  - {}\ncomponents:\n  - {}\n",
                    base.display(),
                    c.display()
                ),
            )
            .unwrap();
            let yaml = kustomize(&dir);
            out.push(Rendering {
                name: format!("components/{name} (on overlays/least-privilege)"),
                objects: docs(&yaml),
                yaml,
            });
        }
        out
    })
}

fn rendering(name: &str) -> &'static Rendering {
    renderings()
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no rendering named {name}"))
}

// ------------------------------------------------- schema validation ----

/// `kubernetes-validate --strict` (the console script, or the module when the
/// script is not on PATH).
fn kubernetes_validate(files: &[PathBuf], version: &str) -> Output {
    let args = ["--strict", "--quiet", "--kubernetes-version", version];
    match Command::new("kubernetes-validate")
        .args(args)
        .args(files)
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let o = run(
                Command::new("python3")
                    .args(["-m", "kubernetes_validate"])
                    .args(args)
                    .args(files),
                "python3",
            );
            assert!(
                !String::from_utf8_lossy(&o.stderr).contains("No module named"),
                "kubernetes-validate is not installed: pip install kubernetes-validate==1.37.0\n{}",
                text(&o)
            );
            o
        }
        Err(e) => panic!("cannot run kubernetes-validate: {e}"),
    }
}

#[test]
fn every_rendered_manifest_validates_against_three_kubernetes_versions() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, r) in renderings().iter().enumerate() {
        let f = dir.path().join(format!(
            "{i:02}-{}.yaml",
            r.name.replace(['/', ' ', '(', ')'], "_")
        ));
        std::fs::write(&f, &r.yaml).unwrap();
        files.push(f);
    }
    for v in KUBERNETES_VERSIONS {
        let o = kubernetes_validate(&files, v);
        assert!(
            o.status.success(),
            "kubernetes-validate --strict against Kubernetes {v} rejected the rendered manifests:\n{}",
            text(&o)
        );
        // Objects without a bundled schema are only warned about; the only
        // such kind allowed is the ServiceMonitor CRD (checked by hand below).
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        for line in out.lines().filter(|l| l.contains("Couldn't find schema")) {
            assert!(
                line.contains("kind ServiceMonitor"),
                "Kubernetes {v}: an object was not validated: {line}"
            );
        }
    }
    // Negative control: the validator does reject a misspelt field, so its
    // silence above means something.
    let bad = dir.path().join("zz-negative-control.yaml");
    let mutated = rendering("overlays/least-privilege")
        .yaml
        .replace("hostPID: true", "hostPIDD: true");
    std::fs::write(&bad, mutated).unwrap();
    let o = kubernetes_validate(std::slice::from_ref(&bad), KUBERNETES_VERSIONS[2]);
    assert!(
        !o.status.success() && text(&o).contains("hostPIDD"),
        "kubernetes-validate accepted a DaemonSet with a misspelt field:\n{}",
        text(&o)
    );
}

// ---------------------------------------------------------- DaemonSet ----

/// The volume a container mount path comes from.
fn volume_for<'a>(r: &'a Rendering, mount_path: &str) -> Option<(&'a Value, &'a Value)> {
    let c = r.container();
    let m = seq_at(c, "volumeMounts")
        .iter()
        .find(|m| str_at(m, "mountPath") == Some(mount_path))?;
    let vname = str_at(m, "name")?;
    let v = seq_at(r.daemonset(), "spec.template.spec.volumes")
        .iter()
        .find(|v| str_at(v, "name") == Some(vname))
        .unwrap_or_else(|| {
            panic!(
                "{}: mount {mount_path} names volume {vname}, which does not exist",
                r.name
            )
        });
    Some((m, v))
}

/// The mount whose path contains `file` (longest prefix).
fn mount_containing<'a>(r: &'a Rendering, file: &str) -> Option<(&'a Value, &'a Value)> {
    let c = r.container();
    let best = seq_at(c, "volumeMounts")
        .iter()
        .filter_map(|m| str_at(m, "mountPath"))
        .filter(|p| file.starts_with(&format!("{}/", p.trim_end_matches('/'))))
        .max_by_key(|p| p.len())?;
    volume_for(r, best)
}

fn port_number(c: &Value, port: &Value) -> Option<i64> {
    if let Some(n) = port.as_i64() {
        return Some(n);
    }
    let name = port.as_str()?;
    seq_at(c, "ports")
        .iter()
        .find(|p| str_at(p, "name") == Some(name))
        .and_then(|p| at(p, "containerPort"))
        .and_then(Value::as_i64)
}

fn check_probe(r: &Rendering, probe: &str, path: &str) {
    let c = r.container();
    let p = at(c, probe).unwrap_or_else(|| panic!("{}: container has no {probe}", r.name));
    assert_eq!(
        str_at(p, "httpGet.path"),
        Some(path),
        "{}: {probe} must GET {path}",
        r.name
    );
    let port = at(p, "httpGet.port").unwrap_or_else(|| panic!("{}: {probe} has no port", r.name));
    assert_eq!(
        port_number(c, port),
        Some(METRICS_PORT),
        "{}: {probe} must target port {METRICS_PORT} (the agent's HTTP endpoint), has {port:?}",
        r.name
    );
}

/// The config the DaemonSet gives the agent: `--config PATH` resolved to the
/// ConfigMap key behind PATH.
fn agent_config(r: &Rendering) -> (String, String) {
    let c = r.container();
    let args: Vec<&str> = seq_at(c, "args").iter().filter_map(Value::as_str).collect();
    assert_eq!(
        args.first(),
        Some(&"run"),
        "{}: the container must run `proctor run`, args {args:?}",
        r.name
    );
    let path = args
        .windows(2)
        .find(|w| w[0] == "--config")
        .map(|w| w[1])
        .unwrap_or_else(|| {
            panic!(
                "{}: `proctor run` has no --config FILE (args {args:?})",
                r.name
            )
        });
    let (m, v) = mount_containing(r, path)
        .unwrap_or_else(|| panic!("{}: --config {path} is not inside any volume mount", r.name));
    let cm = str_at(v, "configMap.name")
        .unwrap_or_else(|| panic!("{}: --config {path} is not on a ConfigMap volume", r.name));
    let key = path
        .strip_prefix(str_at(m, "mountPath").unwrap())
        .unwrap()
        .trim_start_matches('/');
    let obj = r
        .objects
        .iter()
        .find(|o| kind_of(o) == "ConfigMap" && name_of(o) == cm)
        .unwrap_or_else(|| {
            panic!(
                "{}: the DaemonSet mounts ConfigMap {cm}, which is not rendered",
                r.name
            )
        });
    let data = at(obj, "data")
        .and_then(|d| d.get(key))
        .and_then(Value::as_str)
        .unwrap_or_else(|| {
            panic!(
                "{}: ConfigMap {cm} has no key {key} (the --config file)",
                r.name
            )
        });
    (path.to_string(), data.to_string())
}

fn caps(sc: &Value, which: &str) -> BTreeSet<String> {
    seq_at(sc, &format!("capabilities.{which}"))
        .iter()
        .filter_map(Value::as_str)
        .map(|s| s.trim_start_matches("CAP_").to_uppercase())
        .collect()
}

fn check_common_daemonset(r: &Rendering) {
    let ds = r.daemonset();
    let spec = at(ds, "spec.template.spec").unwrap();
    let c = r.container();
    let n = &r.name;

    assert_eq!(
        at(spec, "hostPID").and_then(Value::as_bool),
        Some(true),
        "{n}: hostPID must be true: the agent reads every process's /proc entry"
    );
    assert_ne!(
        at(spec, "hostNetwork").and_then(Value::as_bool),
        Some(true),
        "{n}: hostNetwork is not needed (the probes see every network namespace)"
    );

    let tolerates_all = seq_at(spec, "tolerations").iter().any(|t| {
        str_at(t, "operator") == Some("Exists")
            && at(t, "key").is_none()
            && at(t, "effect").is_none()
    });
    assert!(tolerates_all, "{n}: the pod must tolerate every taint (a toleration with operator Exists and no key or effect), so that no node runs unobserved");

    assert_eq!(
        str_at(spec, "serviceAccountName"),
        Some("proctor"),
        "{n}: service account"
    );
    let pc =
        str_at(spec, "priorityClassName").unwrap_or_else(|| panic!("{n}: no priorityClassName"));
    assert!(
        r.objects
            .iter()
            .any(|o| kind_of(o) == "PriorityClass" && name_of(o) == pc),
        "{n}: priority class {pc} is not part of the rendering"
    );

    assert_eq!(
        str_at(c, "image"),
        Some("localhost/proctor:dev"),
        "{n}: image"
    );
    assert_eq!(
        str_at(c, "imagePullPolicy"),
        Some("IfNotPresent"),
        "{n}: imagePullPolicy"
    );

    let node_name = seq_at(c, "env")
        .iter()
        .find(|e| str_at(e, "name") == Some("NODE_NAME"));
    assert_eq!(
        node_name.and_then(|e| str_at(e, "valueFrom.fieldRef.fieldPath")),
        Some("spec.nodeName"),
        "{n}: env NODE_NAME must come from fieldRef spec.nodeName (the agent watches its node's pods)"
    );
    let host_ip = seq_at(c, "env")
        .iter()
        .find(|e| str_at(e, "name") == Some("HOST_IP"));
    assert_eq!(
        host_ip.and_then(|e| str_at(e, "valueFrom.fieldRef.fieldPath")),
        Some("status.hostIP"),
        "{n}: env HOST_IP must come from fieldRef status.hostIP (the default kubernetes.kubelet_url \
         is https://${{HOST_IP}}:10250/pods)"
    );

    // Host mounts: each one present, from the right host path, with the right mode.
    let mut problems = Vec::new();
    for (mount, host, ro, why) in REQUIRED_HOST_MOUNTS {
        match volume_for(r, mount) {
            None => problems.push(format!("missing mount {mount} (hostPath {host}): {why}")),
            Some((m, v)) => {
                if str_at(v, "hostPath.path") != Some(host) {
                    problems.push(format!(
                        "mount {mount} must be hostPath {host} ({why}), is {:?}",
                        at(v, "hostPath").or(Some(v))
                    ));
                }
                let is_ro = at(m, "readOnly").and_then(Value::as_bool).unwrap_or(false);
                if is_ro != *ro {
                    problems.push(format!(
                        "mount {mount} must be {} ({why})",
                        if *ro { "readOnly" } else { "writable" }
                    ));
                }
            }
        }
    }
    for p in ["/run/proctor", "/var/lib/proctor"] {
        if let Some((_, v)) = volume_for(r, p) {
            if str_at(v, "hostPath.type") != Some("DirectoryOrCreate") {
                problems.push(format!("hostPath {p} must be type DirectoryOrCreate (the agent creates its files there)"));
            }
        }
    }
    if let Some((m, _)) = volume_for(r, "/host") {
        if str_at(m, "mountPropagation") != Some("HostToContainer") {
            problems.push("mount /host must use mountPropagation HostToContainer (pod volumes mounted later must show)".into());
        }
    }
    // hostPID makes the container's /proc the host PID namespace's: a host
    // /proc mount would only be a second, confusing view.
    if seq_at(spec, "volumes")
        .iter()
        .any(|v| str_at(v, "hostPath.path") == Some("/proc"))
    {
        problems.push("hostPath /proc is not needed with hostPID (the container's /proc is the host PID namespace's)".into());
    }
    assert!(
        problems.is_empty(),
        "{n}: the DaemonSet does not give the agent what it needs:\n  {}",
        problems.join("\n  ")
    );

    check_probe(r, "livenessProbe", "/healthz");
    check_probe(r, "readinessProbe", "/readyz");
    check_probe(r, "startupProbe", "/healthz");
    assert!(
        seq_at(c, "ports")
            .iter()
            .any(
                |p| at(p, "containerPort").and_then(Value::as_i64) == Some(METRICS_PORT)
                    && str_at(p, "name") == Some("metrics")
            ),
        "{n}: container port {METRICS_PORT} named metrics"
    );

    for k in [
        "requests.cpu",
        "requests.memory",
        "limits.cpu",
        "limits.memory",
    ] {
        assert!(
            str_at(c, &format!("resources.{k}")).is_some(),
            "{n}: resources.{k} is not set"
        );
    }
    assert_eq!(
        str_at(c, "resources.limits.memory"),
        Some("256Mi"),
        "{n}: memory limit"
    );
    assert_eq!(
        str_at(c, "resources.requests.memory"),
        Some("64Mi"),
        "{n}: memory request"
    );

    // The config the agent runs with agrees with the mounts.
    let (_, config) = agent_config(r);
    let cfg: Value = serde_yaml_ng::from_str(&config).unwrap();
    let state_dir = str_at(&cfg, "state_dir").unwrap_or("/var/lib/proctor");
    let (m, v) = volume_for(r, state_dir).unwrap_or_else(|| {
        panic!("{n}: the config's state_dir {state_dir} is not a volume mount: the inventory would die with the pod")
    });
    assert!(
        at(v, "hostPath").is_some() && at(m, "readOnly").and_then(Value::as_bool) != Some(true),
        "{n}: state_dir {state_dir} must be a writable hostPath"
    );
    if let Some(key_file) = str_at(&cfg, "fingerprint.key_file") {
        let (_, v) = mount_containing(r, key_file).unwrap_or_else(|| {
            panic!("{n}: fingerprint.key_file {key_file} is not inside any volume mount")
        });
        let secret = str_at(v, "secret.secretName")
            .unwrap_or_else(|| panic!("{n}: fingerprint.key_file {key_file} must come from a Secret (one key per cluster)"));
        assert_ne!(at(v, "secret.optional").and_then(Value::as_bool), Some(true),
            "{n}: Secret {secret} must not be optional: without it each node would make up its own key");
    }
}

fn check_least_privilege(r: &Rendering) {
    let c = r.container();
    let n = &r.name;
    let sc =
        at(c, "securityContext").unwrap_or_else(|| panic!("{n}: container has no securityContext"));
    assert_ne!(
        at(sc, "privileged").and_then(Value::as_bool),
        Some(true),
        "{n}: privileged"
    );
    let drop = caps(sc, "drop");
    assert!(
        drop.contains("ALL"),
        "{n}: capabilities.drop must contain ALL, has {drop:?}"
    );
    let add = caps(sc, "add");
    let mut want: BTreeSet<String> = LEAST_PRIVILEGE_CAPS.iter().map(|s| s.to_string()).collect();
    if n.contains("components/block-egress") {
        // cgroup/connect4|6 programs (enforce: [block-egress]) need it.
        want.insert("NET_ADMIN".into());
    }
    let missing: Vec<_> = want.difference(&add).collect();
    let extra: Vec<_> = add.difference(&want).collect();
    assert!(
        missing.is_empty(),
        "{n}: capabilities the agent needs are not added: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "{n}: capabilities beyond the agent's needs are added: {extra:?}"
    );
    assert_eq!(
        at(sc, "readOnlyRootFilesystem").and_then(Value::as_bool),
        Some(true),
        "{n}: readOnlyRootFilesystem"
    );
    assert_eq!(
        at(sc, "allowPrivilegeEscalation").and_then(Value::as_bool),
        Some(false),
        "{n}: allowPrivilegeEscalation"
    );
    assert_eq!(
        at(sc, "runAsUser").and_then(Value::as_i64),
        Some(0),
        "{n}: runAsUser 0 (Kubernetes has no ambient capabilities for non-root users)"
    );
    let seccomp = str_at(sc, "seccompProfile.type").unwrap_or_else(|| {
        panic!("{n}: seccompProfile must be stated (Unconfined or RuntimeDefault; see the overlay)")
    });
    assert!(
        ["Unconfined", "RuntimeDefault"].contains(&seccomp),
        "{n}: seccompProfile {seccomp}"
    );
    assert_eq!(
        str_at(sc, "appArmorProfile.type"),
        Some("Unconfined"),
        "{n}: AppArmor default profiles deny ptrace reads of host processes"
    );
}

#[test]
fn daemonsets_give_the_agent_its_mounts_privileges_probes_and_resources() {
    let mut least = 0;
    let mut privileged = 0;
    for r in renderings() {
        check_common_daemonset(r);
        if r.name == "base" {
            // The base leaves privileges to the overlays.
            assert!(
                at(r.container(), "securityContext").is_none(),
                "base: the container's securityContext belongs in the overlays"
            );
            continue;
        }
        let sc = at(r.container(), "securityContext");
        if sc
            .and_then(|s| at(s, "privileged"))
            .and_then(Value::as_bool)
            == Some(true)
        {
            privileged += 1;
        } else {
            check_least_privilege(r);
            least += 1;
        }
    }
    assert!(
        least >= 2 && privileged >= 1,
        "expected least-privilege and privileged renderings"
    );

    let p = rendering("overlays/privileged");
    let sc = at(p.container(), "securityContext").unwrap();
    assert_eq!(
        at(sc, "privileged").and_then(Value::as_bool),
        Some(true),
        "overlays/privileged: privileged"
    );
    let lp = rendering("overlays/least-privilege");
    assert_eq!(
        str_at(lp.container(), "securityContext.seccompProfile.type"),
        Some("Unconfined"),
        "overlays/least-privilege: seccomp Unconfined (see daemonset-security.yaml for why)"
    );
    let rd = rendering("components/seccomp-runtime-default (on overlays/least-privilege)");
    assert_eq!(
        str_at(rd.container(), "securityContext.seccompProfile.type"),
        Some("RuntimeDefault"),
        "components/seccomp-runtime-default must switch seccomp to RuntimeDefault"
    );
}

#[test]
fn rbac_namespace_service_and_servicemonitor_fit_together() {
    for r in renderings() {
        let n = &r.name;
        // RBAC: get/list/watch pods and get the kubelet's pod list, nothing else.
        let role = r.one("ClusterRole");
        let rules = seq_at(role, "rules");
        assert_eq!(
            rules.len(),
            2,
            "{n}: ClusterRole must have two rules (pods, nodes/pods), has {rules:?}"
        );
        let set_of = |i: usize, k: &str| -> BTreeSet<&str> {
            seq_at(&rules[i], k)
                .iter()
                .filter_map(Value::as_str)
                .collect()
        };
        assert_eq!(
            (
                set_of(1, "apiGroups"),
                set_of(1, "resources"),
                set_of(1, "verbs")
            ),
            (
                BTreeSet::from([""]),
                BTreeSet::from(["nodes/pods"]),
                BTreeSet::from(["get"])
            ),
            "{n}: the second ClusterRole rule must be get on nodes/pods (the kubelet's /pods), \
             not nodes/proxy"
        );
        let set = |k: &str| set_of(0, k);
        assert_eq!(
            set("apiGroups"),
            BTreeSet::from([""]),
            "{n}: ClusterRole apiGroups"
        );
        assert_eq!(
            set("resources"),
            BTreeSet::from(["pods"]),
            "{n}: ClusterRole resources"
        );
        assert_eq!(
            set("verbs"),
            BTreeSet::from(["get", "list", "watch"]),
            "{n}: ClusterRole verbs"
        );
        let binding = r.one("ClusterRoleBinding");
        assert_eq!(
            str_at(binding, "roleRef.name"),
            Some(name_of(role)),
            "{n}: binding roleRef"
        );
        let sa = r.one("ServiceAccount");
        let ns = str_at(sa, "metadata.namespace")
            .unwrap_or_else(|| panic!("{n}: ServiceAccount has no namespace"));
        assert!(
            seq_at(binding, "subjects")
                .iter()
                .any(|s| str_at(s, "kind") == Some("ServiceAccount")
                    && str_at(s, "name") == Some(name_of(sa))
                    && str_at(s, "namespace") == Some(ns)),
            "{n}: the ClusterRoleBinding must bind ServiceAccount {ns}/{}",
            name_of(sa)
        );
        let nsobj = r.one("Namespace");
        assert_eq!(
            name_of(nsobj),
            ns,
            "{n}: the Namespace object and the objects' namespace differ"
        );
        assert_eq!(
            at(nsobj, "metadata.labels")
                .and_then(|l| l.get("pod-security.kubernetes.io/enforce"))
                .and_then(Value::as_str),
            Some("privileged"),
            "{n}: the namespace must allow privileged pods (hostPID, hostPath)"
        );
        assert_eq!(
            str_at(r.daemonset(), "metadata.namespace"),
            Some(ns),
            "{n}: DaemonSet namespace"
        );

        // The metrics Service selects the agent pods and serves 9464.
        let svc = r.one("Service");
        let pod_labels = at(r.daemonset(), "spec.template.metadata.labels")
            .and_then(Value::as_mapping)
            .unwrap();
        let selector = at(svc, "spec.selector")
            .and_then(Value::as_mapping)
            .unwrap_or_else(|| panic!("{n}: Service has no selector"));
        for (k, v) in selector {
            assert_eq!(
                pod_labels.get(k),
                Some(v),
                "{n}: Service selector {k:?}={v:?} does not match the agent pods"
            );
        }
        let port = seq_at(svc, "spec.ports")
            .iter()
            .find(|p| str_at(p, "name") == Some("metrics"))
            .unwrap_or_else(|| panic!("{n}: Service has no port named metrics"));
        assert_eq!(
            at(port, "port").and_then(Value::as_i64),
            Some(METRICS_PORT),
            "{n}: Service port"
        );
        let target = at(port, "targetPort").unwrap();
        assert_eq!(
            port_number(r.container(), target),
            Some(METRICS_PORT),
            "{n}: Service targetPort"
        );

        // ServiceMonitor only where the component is added.
        let sms: Vec<&Value> = r
            .objects
            .iter()
            .filter(|o| kind_of(o) == "ServiceMonitor")
            .collect();
        let wants_sm = n.contains("servicemonitor");
        assert_eq!(
            sms.len(),
            usize::from(wants_sm),
            "{n}: ServiceMonitor must be in the servicemonitor component only"
        );
        for sm in sms {
            assert_eq!(
                str_at(sm, "apiVersion"),
                Some("monitoring.coreos.com/v1"),
                "{n}: ServiceMonitor apiVersion"
            );
            let svc_labels = at(svc, "metadata.labels")
                .and_then(Value::as_mapping)
                .unwrap();
            let sel = at(sm, "spec.selector.matchLabels")
                .and_then(Value::as_mapping)
                .unwrap_or_else(|| panic!("{n}: ServiceMonitor has no selector.matchLabels"));
            for (k, v) in sel {
                assert_eq!(
                    svc_labels.get(k),
                    Some(v),
                    "{n}: ServiceMonitor selector {k:?}={v:?} does not match the Service's labels"
                );
            }
            let eps = seq_at(sm, "spec.endpoints");
            assert!(!eps.is_empty(), "{n}: ServiceMonitor has no endpoints");
            for ep in eps {
                assert_eq!(
                    str_at(ep, "port"),
                    Some("metrics"),
                    "{n}: ServiceMonitor endpoint port must be the Service's port name"
                );
                assert_eq!(
                    str_at(ep, "path"),
                    Some("/metrics"),
                    "{n}: ServiceMonitor path"
                );
            }
        }
    }
}

// ------------------------------------------------------------- configs ----

fn policy_check(label: &str, yaml: &str) {
    let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    f.write_all(yaml.as_bytes()).unwrap();
    let o = run(
        Command::new(proctor_bin())
            .args(["policy", "check"])
            .arg(f.path()),
        "cargo build",
    );
    assert!(
        o.status.success(),
        "`proctor policy check` rejects {label}:\n{}",
        text(&o)
    );
}

fn files_named(dir: &Path, pred: &dyn Fn(&str) -> bool, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()) {
        let p = e.path();
        if p.is_dir() {
            files_named(&p, pred, out);
        } else if p.file_name().and_then(|s| s.to_str()).is_some_and(pred) {
            out.push(p);
        }
    }
}

#[test]
fn every_config_in_deploy_passes_policy_check() {
    // The configs the DaemonSets actually run with.
    let mut seen = BTreeMap::new();
    for r in renderings() {
        let (path, cfg) = agent_config(r);
        seen.entry(cfg)
            .or_insert_with(|| format!("{}: the ConfigMap behind --config {path}", r.name));
    }
    // Config files kept in deploy/ (proctor-config*.yaml).
    let mut files = Vec::new();
    files_named(
        &deploy(),
        &|n| n.starts_with("proctor-config") && n.ends_with(".yaml"),
        &mut files,
    );
    assert!(!files.is_empty(), "no proctor-config*.yaml under deploy/");
    for f in &files {
        seen.entry(std::fs::read_to_string(f).unwrap())
            .or_insert_with(|| f.display().to_string());
    }
    for (cfg, label) in &seen {
        policy_check(label, cfg);
    }
    // The systemd install uses `proctor default-config`; its state_dir is the
    // unit's StateDirectory=proctor.
    let o = run_ok(
        Command::new(proctor_bin()).arg("default-config"),
        "cargo build",
    );
    let default = String::from_utf8(o.stdout).unwrap();
    policy_check("`proctor default-config`", &default);
    let v: Value = serde_yaml_ng::from_str(&default).unwrap();
    assert_eq!(str_at(&v, "state_dir"), Some("/var/lib/proctor"),
        "the default config's state_dir must be /var/lib/proctor (StateDirectory=proctor in the unit)");
}

// ------------------------------------------------------------- systemd ----

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
            &format!("ExecStart={} ", proctor_bin()),
        ),
    )
    .unwrap();
    p
}

#[test]
fn systemd_unit_verifies_and_keeps_the_agent_boxed() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_test(dir.path());
    let o = run(
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
    let o = run(
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
        ("ReadWritePaths", "/sys/fs/bpf"),
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

// ---------------------------------------------------------- container ----

const PODMAN_HINT: &str = "apt-get install podman runc";

fn podman() -> Command {
    Command::new("podman")
}

/// Removes the test image (and a leftover container) however the test ends.
struct ImageGuard {
    tag: String,
    container: String,
}

impl Drop for ImageGuard {
    fn drop(&mut self) {
        let _ = podman()
            .args(["rm", "-f", "-t", "0", &self.container])
            .output();
        let _ = podman().args(["rmi", "-f", &self.tag]).output();
    }
}

/// Capabilities in this process's bounding set (podman cannot grant others).
fn bounding_caps() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

fn cap_number(name: &str) -> u32 {
    match name {
        "DAC_READ_SEARCH" => 2,
        "NET_ADMIN" => 12,
        "SYS_PTRACE" => 19,
        "SYS_ADMIN" => 21,
        "SYS_RESOURCE" => 24,
        "PERFMON" => 38,
        "BPF" => 39,
        other => panic!("cap_number: add {other}"),
    }
}

fn ensure_host_mount(fstype: &str, target: &str) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mounted = info.lines().any(|l| {
        let (left, right) = l.split_once(" - ").unwrap_or(("", ""));
        left.split_whitespace().nth(4) == Some(target)
            && right.split_whitespace().next() == Some(fstype)
    });
    if !mounted {
        // A Kubernetes node has them (systemd mounts both); so does this host then.
        run_ok(
            Command::new("mount").args(["-t", fstype, fstype, target]),
            "util-linux",
        );
    }
}

/// `podman run` arguments equivalent to the DaemonSet's pod: its security
/// context, its volumes (host paths the agent writes to replaced by scratch
/// directories), its command line. Returns the arguments and notes on what
/// this machine could not grant.
fn podman_args_for(r: &Rendering, scratch: &Path) -> (Vec<String>, Vec<String>) {
    let ds = r.daemonset();
    let spec = at(ds, "spec.template.spec").unwrap();
    let c = r.container();
    let sc = at(c, "securityContext").unwrap();
    let mut a: Vec<String> = Vec::new();
    let mut notes = Vec::new();
    if at(spec, "hostPID").and_then(Value::as_bool) == Some(true) {
        a.extend(["--pid".into(), "host".into()]);
    }
    if caps(sc, "drop").contains("ALL") {
        a.extend(["--cap-drop".into(), "all".into()]);
    }
    let bnd = bounding_caps();
    for cap in caps(sc, "add") {
        if bnd & (1u64 << cap_number(&cap)) != 0 {
            a.extend(["--cap-add".into(), cap.to_lowercase()]);
        } else {
            notes.push(format!(
                "CAP_{cap} is not in this machine's bounding set; not granted"
            ));
        }
    }
    if at(sc, "readOnlyRootFilesystem").and_then(Value::as_bool) == Some(true) {
        a.push("--read-only".into());
    }
    if at(sc, "allowPrivilegeEscalation").and_then(Value::as_bool) == Some(false) {
        a.extend(["--security-opt".into(), "no-new-privileges".into()]);
    }
    match str_at(sc, "seccompProfile.type") {
        Some("Unconfined") => a.extend(["--security-opt".into(), "seccomp=unconfined".into()]),
        Some("RuntimeDefault") | None => {}
        Some(other) => panic!("{}: seccomp {other} not handled by this test", r.name),
    }
    if let Some(user) = at(sc, "runAsUser").and_then(Value::as_i64) {
        a.extend(["--user".into(), user.to_string()]);
    }
    for m in seq_at(c, "volumeMounts") {
        let mount = str_at(m, "mountPath").unwrap();
        let ro = at(m, "readOnly").and_then(Value::as_bool).unwrap_or(false);
        let (_, v) = volume_for(r, mount).unwrap();
        let vname = str_at(v, "name").unwrap();
        if let Some(host) = str_at(v, "hostPath.path") {
            // Writable host paths (but the kernel's own, under /sys) become
            // scratch directories: the test must not leave state on the
            // machine's /var/lib/proctor or /run/proctor.
            let src = if ro || host.starts_with("/sys/") {
                PathBuf::from(host)
            } else {
                let d = scratch.join(format!("host-{vname}"));
                std::fs::create_dir_all(&d).unwrap();
                d
            };
            let mut opts = vec![if ro { "ro" } else { "rw" }];
            if str_at(m, "mountPropagation") == Some("HostToContainer") {
                opts.push("rslave");
            }
            a.extend([
                "--volume".into(),
                format!("{}:{mount}:{}", src.display(), opts.join(",")),
            ]);
        } else if let Some(cm) = str_at(v, "configMap.name") {
            let obj = r
                .objects
                .iter()
                .find(|o| kind_of(o) == "ConfigMap" && name_of(o) == cm)
                .unwrap();
            let d = scratch.join(format!("configmap-{vname}"));
            std::fs::create_dir_all(&d).unwrap();
            for (k, val) in at(obj, "data").and_then(Value::as_mapping).unwrap() {
                std::fs::write(d.join(k.as_str().unwrap()), val.as_str().unwrap()).unwrap();
            }
            a.extend(["--volume".into(), format!("{}:{mount}:ro", d.display())]);
        } else if str_at(v, "secret.secretName").is_some() {
            // What the operator creates: `--from-literal=key=$(openssl rand -hex 32)`.
            let d = scratch.join(format!("secret-{vname}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("key"), "5eed".repeat(16)).unwrap();
            a.extend(["--volume".into(), format!("{}:{mount}:ro", d.display())]);
        } else if at(v, "emptyDir").is_some() {
            a.extend(["--tmpfs".into(), mount.to_string()]);
        } else {
            panic!(
                "{}: volume {vname} of a kind this test cannot reproduce",
                r.name
            );
        }
    }
    (a, notes)
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn wait_for_logs(
    container: &str,
    deadline: Duration,
    pred: impl Fn(&str) -> bool,
) -> (bool, String) {
    let start = Instant::now();
    loop {
        let o = podman()
            .args(["logs", container])
            .output()
            .expect("podman logs");
        let out = format!(
            "{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        if pred(&String::from_utf8_lossy(&o.stdout)) {
            return (true, out);
        }
        let state = podman()
            .args([
                "inspect",
                "--format",
                "{{.State.Status}} {{.State.ExitCode}}",
                container,
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        if start.elapsed() > deadline || !state.starts_with("running") {
            return (false, format!("container state: {state}\n{out}"));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn container_image_builds_offline_runs_doctor_and_runs_as_the_daemonset_would() {
    let tag = format!("localhost/proctor:test-{}", std::process::id());
    let container = format!("proctor-deploy-test-{}", std::process::id());
    let _guard = ImageGuard {
        tag: tag.clone(),
        container: container.clone(),
    };
    let scratch = tempfile::tempdir().unwrap();
    let ctx = scratch.path().join("context");

    // 1. Build: rootfs from the binary under test and its ldd libraries, then
    //    `podman build` from scratch (no registry).
    let start = Instant::now();
    run_ok(
        Command::new("sh")
            .arg(deploy().join("container/build-rootfs.sh"))
            .arg("--binary")
            .arg(proctor_bin())
            .arg(&ctx),
        "libc-bin (ldd), binutils (objcopy)",
    );
    run_ok(
        podman()
            .args([
                "build",
                // No cached intermediate images: removing the tag removes all.
                "--layers=false",
                "--network",
                "none",
                "--runtime",
                "runc",
                "-t",
                &tag,
                "-f",
            ])
            .arg(deploy().join("container/Containerfile"))
            .arg(&ctx),
        PODMAN_HINT,
    );
    eprintln!("image {tag} built in {:.1}s", start.elapsed().as_secs_f64());
    let o = run_ok(
        podman().args([
            "image",
            "inspect",
            "--format",
            "{{json .Config.Entrypoint}} {{json .Config.Cmd}}",
            &tag,
        ]),
        PODMAN_HINT,
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        r#"["/usr/bin/proctor"] ["run"]"#,
        "image entrypoint and command"
    );

    // 2. `proctor doctor` inside it: exits 0 or 1 by the kernel, prints its table.
    let o = run(
        podman_run_base().args(["--rm", "--privileged", &tag, "doctor"]),
        PODMAN_HINT,
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        matches!(o.status.code(), Some(0) | Some(1))
            && stdout.contains("btf")
            && stdout.contains("privileges"),
        "`proctor doctor` in the image did not print its table:\n{}",
        text(&o)
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("btf") && l.contains(" ok ")),
        "doctor in the image cannot read the kernel BTF:\n{stdout}"
    );

    // 3. `proctor run` as the least-privilege DaemonSet runs it: same
    //    capabilities, seccomp, read-only root, host PID namespace, volumes
    //    and config. It must see a process started on the host.
    ensure_host_mount("bpf", "/sys/fs/bpf");
    ensure_host_mount("tracefs", "/sys/kernel/tracing");
    let lp = rendering("overlays/least-privilege");
    let (args, notes) = podman_args_for(lp, scratch.path());
    for n in &notes {
        eprintln!("note: {n}");
    }
    let cmd: Vec<String> = seq_at(lp.container(), "args")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let mut run_cmd = podman_run_base();
    run_cmd
        .args(["-d", "--name", &container])
        .args(&args)
        .arg(&tag)
        .args(&cmd);
    let shown = format!("{run_cmd:?}");
    let o = run(&mut run_cmd, PODMAN_HINT);
    assert!(o.status.success(), "{shown}\nfailed:\n{}", text(&o));

    let (started, logs) = wait_for_logs(&container, Duration::from_secs(60), |out| {
        out.lines().any(|l| l.contains("\"agent_status\""))
    });
    assert!(
        started,
        "the agent did not start under the least-privilege settings\n({shown}):\n{logs}"
    );
    let marker = format!("deploy-test-marker-{}", std::process::id());
    let (seen, logs) = {
        let start = Instant::now();
        loop {
            // A host process the agent cannot have seen at start-up.
            let _ = Command::new("/bin/sh")
                .args(["-c", "exit 0", &marker])
                .status();
            let r = wait_for_logs(&container, Duration::from_secs(2), |out| {
                out.lines()
                    .any(|l| l.contains("\"process_exec\"") && l.contains(&marker))
            });
            if r.0 || start.elapsed() > Duration::from_secs(30) {
                break r;
            }
        }
    };
    assert!(seen, "the least-privilege agent in the container did not report a host exec ({marker})\n({shown}):\n{logs}");
    let plain = strip_ansi(&logs);
    let bad: Vec<&str> = plain
        .lines()
        .filter(|l| l.contains(" ERROR ") || l.contains("Operation not permitted"))
        .collect();
    assert!(
        bad.is_empty(),
        "the least-privilege agent logged errors:\n{}",
        bad.join("\n")
    );
    let o = run(podman().args(["stop", "-t", "20", &container]), PODMAN_HINT);
    assert!(o.status.success(), "podman stop:\n{}", text(&o));
    let o = run_ok(
        podman().args(["inspect", "--format", "{{.State.ExitCode}}", &container]),
        PODMAN_HINT,
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "0",
        "the agent must exit 0 on SIGTERM (probes detached, events flushed)"
    );
}
