//! Kubernetes: every kustomization (base, overlays, examples, and each
//! component on top of least-privilege) rendered with `kubectl kustomize`,
//! every rendered object validated with `kubernetes-validate --strict`
//! against the three newest Kubernetes versions it bundles, the DaemonSets
//! read for what the agent needs (mounts, capabilities, probes, resources,
//! host PID namespace, tolerations) and cross-checked with the agent's config
//! they carry, RBAC, and every config in deploy/ through `proctor policy check`.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write,
    path::PathBuf,
    process::{Command, Output, Stdio},
};

use serde_yaml_ng::Value;

use super::*;
use crate::harness::{proctor_bin, run_ok, run_tool, text};

/// The Kubernetes versions the manifests must validate against: the three
/// newest whose schemas kubernetes-validate 1.37.0 bundles (it covers 1.25-1.37).
const KUBERNETES_VERSIONS: [&str; 3] = ["1.35.0", "1.36.0", "1.37.0"];

/// The port the agent serves /metrics, /healthz and /readyz on.
const METRICS_PORT: i64 = 9464;

/// What the agent needs from the host:
/// (mount path in the container, host path, read-only, why).
const REQUIRED_HOST_MOUNTS: &[(&str, &str, bool, &str)] = &[
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
        "/var/lib/kubelet/pods",
        "/var/lib/kubelet/pods",
        true,
        "pods' Secret and projected volumes (kubernetes.kubelet_root)",
    ),
    (
        "/var/lib/proctor",
        "/var/lib/proctor",
        false,
        "state: inventory database",
    ),
];

/// Host paths the agent must not get: it pins nothing (bpffs), and reads
/// other processes' files through /proc/<pid>/root with hostPID (`/`).
const FORBIDDEN_HOST_PATHS: &[(&str, &str)] = &[
    (
        "/",
        "the host's root file system (unused; readOnly is not recursive)",
    ),
    ("/sys/fs/bpf", "bpffs (nothing is pinned)"),
];

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
            let o = run_tool(
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
        // such kinds allowed are the Prometheus Operator CRDs: ServiceMonitor
        // (checked by hand below) and PrometheusRule (checked by promtool in
        // the observability tests).
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        for line in out.lines().filter(|l| l.contains("Couldn't find schema")) {
            assert!(
                line.contains("kind ServiceMonitor") || line.contains("kind PrometheusRule"),
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
    for (p, why) in FORBIDDEN_HOST_PATHS {
        if seq_at(spec, "volumes")
            .iter()
            .any(|v| str_at(v, "hostPath.path") == Some(p))
        {
            problems.push(format!("hostPath {p} must not be mounted: {why}"));
        }
    }
    for p in ["/var/lib/kubelet/pods"] {
        if let Some((m, _)) = volume_for(r, p) {
            if str_at(m, "mountPropagation") != Some("HostToContainer") {
                problems.push(format!("mount {p} must use mountPropagation HostToContainer (pod volumes mounted later must show)"));
            }
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
    // Pods' Secret volumes are watched under kubernetes.kubelet_root/pods.
    let kubelet_pods = format!(
        "{}/pods",
        str_at(&cfg, "kubernetes.kubelet_root").unwrap_or("/var/lib/kubelet")
    );
    let (m, _) = volume_for(r, &kubelet_pods).unwrap_or_else(|| {
        panic!("{n}: kubernetes.kubelet_root's {kubelet_pods} is not a volume mount: pods' Secrets would go unseen")
    });
    assert_eq!(
        at(m, "readOnly").and_then(Value::as_bool),
        Some(true),
        "{n}: {kubelet_pods} must be mounted readOnly"
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
    let want: BTreeSet<String> = LEAST_PRIVILEGE_CAPS.iter().map(|s| s.to_string()).collect();
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
        panic!("{n}: seccompProfile must be stated (Localhost or RuntimeDefault; see the overlay)")
    });
    assert!(
        ["Localhost", "RuntimeDefault"].contains(&seccomp),
        "{n}: seccompProfile {seccomp}"
    );
    if seccomp == "Localhost" {
        let profile = str_at(sc, "seccompProfile.localhostProfile").unwrap_or_default();
        assert!(
            seccomp_profile_file(profile).is_file(),
            "{n}: localhostProfile {profile:?} is not shipped under deploy/seccomp"
        );
    }
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
        Some("Localhost"),
        "overlays/least-privilege: the agent's own seccomp profile (see daemonset-security.yaml)"
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
        // RBAC: get the kubelet's pod list; pods cluster-wide only with the
        // API-server component.
        let role = r.one("ClusterRole");
        let rules = seq_at(role, "rules");
        let rule = |i: usize| -> (BTreeSet<&str>, BTreeSet<&str>, BTreeSet<&str>) {
            let set = |k: &str| -> BTreeSet<&str> {
                seq_at(&rules[i], k)
                    .iter()
                    .filter_map(Value::as_str)
                    .collect()
            };
            (set("apiGroups"), set("resources"), set("verbs"))
        };
        let kubelet = (
            BTreeSet::from([""]),
            BTreeSet::from(["nodes/pods"]),
            BTreeSet::from(["get"]),
        );
        let api_server = (
            BTreeSet::from([""]),
            BTreeSet::from(["pods"]),
            BTreeSet::from(["get", "list", "watch"]),
        );
        let want = if n.contains("components/api-server-pod-source") {
            vec![kubelet, api_server]
        } else {
            vec![kubelet]
        };
        let got: Vec<_> = (0..rules.len()).map(rule).collect();
        assert_eq!(
            got, want,
            "{n}: ClusterRole rules: get on nodes/pods (the kubelet's /pods, not nodes/proxy); \
             pods get/list/watch only with components/api-server-pod-source"
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

fn policy_check(label: &str, yaml: &str) {
    let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    f.write_all(yaml.as_bytes()).unwrap();
    let o = run_tool(
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

// ------------------------------------------- metrics exposure ----

/// The scraper networkpolicy.yaml admits, as its comment documents (the
/// thing operators adapt): Prometheus pods in the "monitoring" namespace.
const SCRAPER_NAMESPACE: (&str, &str) = ("kubernetes.io/metadata.name", "monitoring");
const SCRAPER_POD: (&str, &str) = ("app.kubernetes.io/name", "prometheus");

fn labels(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_mapping)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// What is wrong with `np` as "the agent pods accept connections only from
/// the scraper, only on the metrics port"; empty when nothing is.
fn network_policy_problems(r: &Rendering, np: &Value) -> Vec<String> {
    let mut p = Vec::new();
    let pod_labels = labels(at(r.daemonset(), "spec.template.metadata.labels"));
    let sel = labels(at(np, "spec.podSelector.matchLabels"));
    if sel.is_empty() || at(np, "spec.podSelector.matchExpressions").is_some() {
        p.push(format!(
            "podSelector must be matchLabels only, has {:?}",
            at(np, "spec.podSelector")
        ));
    }
    for (k, v) in &sel {
        if pod_labels.get(k) != Some(v) {
            p.push(format!(
                "podSelector {k}={v} does not select the agent pods ({pod_labels:?})"
            ));
        }
    }
    let types: Vec<&str> = seq_at(np, "spec.policyTypes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if !types.contains(&"Ingress") {
        p.push(format!("policyTypes must include Ingress, has {types:?}"));
    }
    let rules = seq_at(np, "spec.ingress");
    if rules.len() != 1 {
        p.push(format!(
            "exactly one ingress rule expected, found {}",
            rules.len()
        ));
    }
    for rule in rules {
        let ports = seq_at(rule, "ports");
        let only_metrics = ports.len() == 1
            && ports.iter().all(|pt| {
                str_at(pt, "protocol").unwrap_or("TCP") == "TCP"
                    && at(pt, "endPort").is_none()
                    && at(pt, "port").and_then(|n| port_number(r.container(), n))
                        == Some(METRICS_PORT)
            });
        if !only_metrics {
            p.push(format!(
                "the rule must allow TCP {METRICS_PORT} (the metrics port) and nothing else, has ports {ports:?}"
            ));
        }
        let from = seq_at(rule, "from");
        let scraper_only = from.len() == 1
            && from.iter().all(|peer| {
                at(peer, "ipBlock").is_none()
                    && labels(at(peer, "namespaceSelector.matchLabels"))
                        == BTreeMap::from([(
                            SCRAPER_NAMESPACE.0.into(),
                            SCRAPER_NAMESPACE.1.into(),
                        )])
                    && labels(at(peer, "podSelector.matchLabels"))
                        == BTreeMap::from([(SCRAPER_POD.0.into(), SCRAPER_POD.1.into())])
                    && at(peer, "namespaceSelector.matchExpressions").is_none()
                    && at(peer, "podSelector.matchExpressions").is_none()
            });
        if !scraper_only {
            p.push(format!(
                "the rule must admit one peer, the documented scraper (namespace {}={}, pod {}={}), has from {from:?}",
                SCRAPER_NAMESPACE.0, SCRAPER_NAMESPACE.1, SCRAPER_POD.0, SCRAPER_POD.1
            ));
        }
    }
    p
}

#[test]
fn network_policy_admits_only_the_scraper_and_only_to_the_metrics_port() {
    for r in renderings() {
        let np = r.one("NetworkPolicy");
        let problems = network_policy_problems(r, np);
        assert!(
            problems.is_empty(),
            "{}: NetworkPolicy {}:\n  {}\n{np:?}",
            r.name,
            name_of(np),
            problems.join("\n  ")
        );
        assert_eq!(
            str_at(np, "metadata.namespace"),
            str_at(r.daemonset(), "metadata.namespace"),
            "{}: the NetworkPolicy must live in the agent's namespace",
            r.name
        );
    }
    // The selectors checked above are the ones the manifest documents as the
    // thing to adapt.
    let text =
        std::fs::read_to_string(deploy().join("kubernetes/base/networkpolicy.yaml")).unwrap();
    for s in [
        SCRAPER_NAMESPACE.0,
        SCRAPER_NAMESPACE.1,
        SCRAPER_POD.0,
        SCRAPER_POD.1,
        "ADAPT",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with('#') && l.contains(s)),
            "networkpolicy.yaml's comment must document the scraper selector ({s})"
        );
    }
    // Negative controls: the checker does see a policy that opens too much.
    let r = rendering("overlays/least-privilege");
    let good = r.one("NetworkPolicy");
    type Mutation = (&'static str, fn(&mut Value));
    let mutations: [Mutation; 4] = [
        ("another port", |v| {
            v["spec"]["ingress"][0]["ports"][0]["port"] = Value::from(9465)
        }),
        ("any pod in the namespace", |v| {
            v["spec"]["ingress"][0]["from"][0]
                .as_mapping_mut()
                .unwrap()
                .remove("podSelector");
        }),
        ("every source", |v| {
            v["spec"]["ingress"][0]
                .as_mapping_mut()
                .unwrap()
                .remove("from");
        }),
        ("other pods", |v| {
            v["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] = Value::from("x")
        }),
    ];
    for (what, mutate) in mutations {
        let mut bad = good.clone();
        mutate(&mut bad);
        assert!(
            !network_policy_problems(r, &bad).is_empty(),
            "the NetworkPolicy check accepted a policy allowing {what}: {bad:?}"
        );
    }
}

#[test]
fn daemonsets_serve_metrics_on_the_pod_ip() {
    for r in renderings() {
        let c = r.container();
        let n = &r.name;
        let pod_ip = seq_at(c, "env")
            .iter()
            .find(|e| str_at(e, "name") == Some("POD_IP"));
        assert_eq!(
            pod_ip.and_then(|e| str_at(e, "valueFrom.fieldRef.fieldPath")),
            Some("status.podIP"),
            "{n}: env POD_IP must come from fieldRef status.podIP (the metrics listen address)"
        );
        let args: Vec<&str> = seq_at(c, "args").iter().filter_map(Value::as_str).collect();
        let listen = args
            .windows(2)
            .find(|w| w[0] == "--metrics-listen")
            .map(|w| w[1]);
        assert_eq!(
            listen,
            Some(format!("$(POD_IP):{METRICS_PORT}").as_str()),
            "{n}: `proctor run` must get --metrics-listen $(POD_IP):{METRICS_PORT} (the agent's \
             default is loopback, which neither the kubelet's probes nor the scraper reach); args {args:?}"
        );
    }
    // The binary takes the flag the DaemonSets pass.
    let o = run_ok(
        Command::new(proctor_bin()).args(["run", "--help"]),
        "cargo build",
    );
    assert!(
        text(&o).contains("--metrics-listen"),
        "`proctor run` has no --metrics-listen flag:\n{}",
        text(&o)
    );
}
