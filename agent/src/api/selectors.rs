//! Attestation answers: an [`Identity`] with its selectors, built from a
//! process record (the kernel's evidence) and the caller-visible credentials.
//!
//! Selector forms:
//! - `unix` (as SPIRE's unix workload attestor): `uid:N`, `user:NAME`,
//!   `gid:N`, `group:NAME`, `supplementary_gid:N`, `supplementary_group:NAME`
//!   (effective ids, read at answer time), `path:/exe` (as the process's own
//!   mount namespace names it, as SPIRE's attestor reads it; not for
//!   fileless or deleted binaries), `sha256:HEX` (only when the hash of the exec'd file
//!   version is known and the file was not modified since).
//! - `k8s` (as SPIRE's k8s attestor), when the pod is known: `pod-uid:`
//!   (from a cgroup the kubelet made, confirmed by the pod list when one
//!   is available: `identity::container`), and once pod metadata names them `ns:`,
//!   `sa:`, `pod-name:`, `node-name:`, `pod-label:KEY:VALUE` (one per label),
//!   `pod-owner:KIND:NAME` and `pod-owner-uid:KIND:UID` (one per owner
//!   reference), `pod-image:` / `pod-init-image:` (each image and imageID of
//!   the pod's container / init container statuses), `pod-image-count:N`,
//!   `pod-init-image-count:N`, `container-name:`, `container-image:` (the
//!   container status's image, and again its `imageID` digest reference
//!   when the runtime reports one).
//! - `proctor`: `attestation:kernel-exec|procfs-scan`, `exec-sha256:HEX`,
//!   `exe-host-path:/exe` (only when that path leads to the exec'd file,
//!   by (dev, inode), in the agent's own mount namespace),
//!   `binary-unmodified:true|false`, `binary-package:NAME` (an installed
//!   dpkg package's unmodified program), `env-static-secrets:none` (the
//!   environment was scanned at exec and held no credential), `fileless:`,
//!   `deleted:`, `script-path:`, `script-sha256:HEX`, `parent-sha256:HEX`,
//!   `cgroup:PATH`, `container-id:ID`, `container-runtime:NAME`.

use crate::{
    api::pb::{Identity, Integrity, Selector},
    event::{Attestation, Process},
    identity::host_path::PathNamespace,
};

/// The credentials a process has now (effective ids, as SPIRE uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Creds {
    /// The ids the record captured (at exec or scan): for processes that are
    /// no longer there to ask.
    pub fn from_record(p: &Process) -> Self {
        Self {
            uid: p.euid,
            gid: p.egid,
            groups: Vec::new(),
        }
    }
}

pub use crate::unix_names::{resolve_group, NameDb};

/// Every selector kind [`selectors`] emits, per selector type: the part of a
/// value before its first `:`. Registration entries (SPIRE) can only match
/// these.
pub const SELECTOR_KINDS: &[(&str, &[&str])] = &[
    (
        "unix",
        &[
            "uid",
            "user",
            "gid",
            "group",
            "supplementary_gid",
            "supplementary_group",
            "path",
            "sha256",
        ],
    ),
    (
        "k8s",
        &[
            "pod-uid",
            "ns",
            "sa",
            "pod-name",
            "node-name",
            "pod-label",
            "pod-owner",
            "pod-owner-uid",
            "pod-image",
            "pod-image-count",
            "pod-init-image",
            "pod-init-image-count",
            "container-name",
            "container-image",
        ],
    ),
    (
        "proctor",
        &[
            "attestation",
            "exec-sha256",
            "exe-host-path",
            "binary-unmodified",
            "binary-package",
            "env-static-secrets",
            "fileless",
            "deleted",
            "script-path",
            "script-sha256",
            "parent-sha256",
            "cgroup",
            "container-id",
            "container-runtime",
        ],
    ),
];

/// The kind of a selector value (`sha256` for `sha256:ab..`), if it is one
/// of [`SELECTOR_KINDS`] for `ty`.
pub fn known_kind<'a>(ty: &str, value: &'a str) -> Option<&'a str> {
    let kind = value.split(':').next()?;
    SELECTOR_KINDS
        .iter()
        .any(|(t, kinds)| *t == ty && kinds.contains(&kind))
        .then_some(kind)
}

fn sel(out: &mut Vec<Selector>, ty: &str, value: String) {
    out.push(Selector {
        r#type: ty.to_string(),
        value,
    });
}

fn json_str<'a>(v: Option<&'a serde_json::Value>, key: &str) -> Option<&'a str> {
    v?.get(key)?.as_str().filter(|s| !s.is_empty())
}

/// The exe's hash, if it is one we vouch for: computed from the exec'd file
/// version and that file not changed since.
pub fn vouched_sha256(p: &Process) -> Option<&str> {
    (p.exe.hash_status == "ok" && !p.exe.modified_after_exec)
        .then_some(p.exe.sha256.as_deref())
        .flatten()
}

/// The exe's path, if the agent's own mount namespace confirmed it leads
/// to the exec'd file (`unix:path` is the process's own name for it, which a
/// container or private mount namespace chooses).
pub fn host_path(p: &Process) -> Option<&str> {
    let e = &p.exe;
    (e.path_namespace == PathNamespace::Host.as_str() && !e.fileless && !e.deleted)
        .then_some(e.path.as_str())
}

/// Everything an answer needs besides the process record itself.
pub struct Context<'a> {
    pub creds: &'a Creds,
    pub users: &'a NameDb,
    pub groups: &'a NameDb,
    /// The parent's record (hashes resolved as far as they are), when known.
    pub parent: Option<&'a Process>,
    /// Hygiene evidence about this very exec, positive findings only.
    pub hygiene: &'a Hygiene,
}

/// What an identity server may require beyond who the workload is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hygiene {
    /// The installed dpkg package whose unmodified program this exec ran
    /// (`identity::packages`).
    pub package: Option<String>,
    /// The environment was read and scanned at exec and held no static
    /// credential. False when it held one, or was not scanned (scanning
    /// off, environment gone, a process found at start-up).
    pub env_clean: bool,
}

/// The selectors of `p`, in a stable order.
pub fn selectors(p: &Process, cx: &Context<'_>) -> Vec<Selector> {
    let mut out = Vec::new();
    let c = cx.creds;
    sel(&mut out, "unix", format!("uid:{}", c.uid));
    if let Some(n) = cx.users.name(c.uid) {
        sel(&mut out, "unix", format!("user:{n}"));
    }
    sel(&mut out, "unix", format!("gid:{}", c.gid));
    if let Some(n) = cx.groups.name(c.gid) {
        sel(&mut out, "unix", format!("group:{n}"));
    }
    for g in &c.groups {
        sel(&mut out, "unix", format!("supplementary_gid:{g}"));
        if let Some(n) = cx.groups.name(*g) {
            sel(&mut out, "unix", format!("supplementary_group:{n}"));
        }
    }
    let exe = &p.exe;
    if !exe.fileless && !exe.deleted && exe.path.starts_with('/') {
        sel(&mut out, "unix", format!("path:{}", exe.path));
    }
    let sha = vouched_sha256(p);
    if let Some(h) = sha {
        sel(&mut out, "unix", format!("sha256:{h}"));
    }

    let pod = p.pod.as_ref();
    for (key, form) in [
        ("uid", "pod-uid"),
        ("namespace", "ns"),
        ("service_account", "sa"),
        ("name", "pod-name"),
        ("node_name", "node-name"),
    ] {
        if let Some(v) = json_str(pod, key) {
            sel(&mut out, "k8s", format!("{form}:{v}"));
        }
    }
    if let Some(labels) = pod.and_then(|p| p.get("labels")?.as_object()) {
        for (k, v) in labels {
            if let Some(v) = v.as_str() {
                sel(&mut out, "k8s", format!("pod-label:{k}:{v}"));
            }
        }
    }
    let list = |key: &str| {
        pod.and_then(|p| p.get(key)?.as_array())
            .into_iter()
            .flatten()
    };
    for owner in list("owners") {
        let field = |k| json_str(Some(owner), k);
        if let (Some(kind), Some(name)) = (field("kind"), field("name")) {
            sel(&mut out, "k8s", format!("pod-owner:{kind}:{name}"));
        }
        if let (Some(kind), Some(uid)) = (field("kind"), field("uid")) {
            sel(&mut out, "k8s", format!("pod-owner-uid:{kind}:{uid}"));
        }
    }
    for (images, count, form) in [
        ("images", "image_count", "pod-image"),
        ("init_images", "init_image_count", "pod-init-image"),
    ] {
        for i in list(images).filter_map(|i| i.as_str()) {
            sel(&mut out, "k8s", format!("{form}:{i}"));
        }
        if let Some(n) = pod.and_then(|p| p.get(count)?.as_u64()) {
            sel(&mut out, "k8s", format!("{form}-count:{n}"));
        }
    }
    // Container names and images are Kubernetes facts only inside a pod.
    let container = p.container.as_ref();
    if pod.is_some() {
        if let Some(n) = json_str(container, "name") {
            sel(&mut out, "k8s", format!("container-name:{n}"));
        }
        let image = json_str(container, "image");
        if let Some(i) = image {
            sel(&mut out, "k8s", format!("container-image:{i}"));
        }
        if let Some(d) = json_str(container, "image_id").filter(|d| Some(*d) != image) {
            sel(&mut out, "k8s", format!("container-image:{d}"));
        }
    }

    let attestation = attestation_name(p.attestation);
    sel(&mut out, "proctor", format!("attestation:{attestation}"));
    if let Some(h) = sha {
        sel(&mut out, "proctor", format!("exec-sha256:{h}"));
    }
    if let Some(path) = host_path(p) {
        sel(&mut out, "proctor", format!("exe-host-path:{path}"));
    }
    sel(
        &mut out,
        "proctor",
        format!("binary-unmodified:{}", sha.is_some()),
    );
    // A package verdict is about the exec'd file version the hash vouches for.
    if let Some(pkg) = cx.hygiene.package.as_deref().filter(|_| sha.is_some()) {
        sel(&mut out, "proctor", format!("binary-package:{pkg}"));
    }
    if cx.hygiene.env_clean {
        sel(&mut out, "proctor", "env-static-secrets:none".to_string());
    }
    sel(&mut out, "proctor", format!("fileless:{}", exe.fileless));
    sel(&mut out, "proctor", format!("deleted:{}", exe.deleted));
    if let Some(i) = &p.interpreter {
        sel(
            &mut out,
            "proctor",
            format!("script-path:{}", i.script.path),
        );
        if let (Some(h), "ok") = (&i.script.sha256, i.script.hash_status) {
            sel(&mut out, "proctor", format!("script-sha256:{h}"));
        }
    }
    if let Some(h) = cx.parent.and_then(vouched_sha256) {
        sel(&mut out, "proctor", format!("parent-sha256:{h}"));
    }
    if let Some(path) = &p.cgroup.path {
        sel(&mut out, "proctor", format!("cgroup:{path}"));
    }
    if let Some(id) = json_str(container, "id") {
        sel(&mut out, "proctor", format!("container-id:{id}"));
    }
    if let Some(rt) = json_str(container, "runtime") {
        sel(&mut out, "proctor", format!("container-runtime:{rt}"));
    }
    out
}

pub fn attestation_name(a: Attestation) -> &'static str {
    match a {
        Attestation::KernelExec => "kernel-exec",
        Attestation::ProcfsScan => "procfs-scan",
    }
}

/// The answer for `p`. `parent_exec_id` falls back to the parent record's
/// when the process record does not name one.
pub fn identity(p: &Process, cx: &Context<'_>) -> Identity {
    let container = p.container.as_ref();
    let pod = p.pod.as_ref();
    let own = |s: Option<&str>| s.map(str::to_string);
    Identity {
        exec_id: p.exec_id.to_string(),
        pid: p.pid,
        ppid: p.ppid,
        parent_exec_id: p
            .parent_exec_id
            .as_deref()
            .or_else(|| cx.parent.map(|q| &*q.exec_id))
            .unwrap_or_default()
            .to_string(),
        selectors: selectors(p, cx),
        integrity: Some(Integrity {
            kernel_exec: p.attestation == Attestation::KernelExec,
            fileless: p.exe.fileless,
            deleted: p.exe.deleted,
            modified_after_exec: p.exe.modified_after_exec,
            hash_status: p.exe.hash_status.to_string(),
        }),
        exe_path: p.exe.path.clone(),
        exe_sha256: vouched_sha256(p).unwrap_or_default().to_string(),
        start_time_ns: p.start_time_ns,
        cgroup_path: p.cgroup.path.clone().unwrap_or_default(),
        cgroup_id: p.cgroup.id,
        uid: cx.creds.uid,
        gid: cx.creds.gid,
        attestation: attestation_name(p.attestation).to_string(),
        container_id: own(json_str(container, "id")),
        container_runtime: own(json_str(container, "runtime")),
        pod_uid: own(json_str(pod, "uid")),
        pod_namespace: own(json_str(pod, "namespace")),
        pod_name: own(json_str(pod, "name")),
        pod_service_account: own(json_str(pod, "service_account")),
        script_path: p.interpreter.as_ref().map(|i| i.script.path.clone()),
        script_sha256: p
            .interpreter
            .as_ref()
            .filter(|i| i.script.hash_status == "ok")
            .and_then(|i| i.script.sha256.clone()),
        args: p.args.clone(),
    }
}

/// `proctor attest PID` without `--json`.
pub fn render_identity_text(id: &Identity) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let or_unknown = |v: &str| {
        if v.is_empty() {
            "unknown".to_string()
        } else {
            v.to_string()
        }
    };
    let _ = writeln!(s, "pid          {} (ppid {})", id.pid, id.ppid);
    let _ = writeln!(s, "exec_id      {}", id.exec_id);
    let _ = writeln!(s, "parent       {}", or_unknown(&id.parent_exec_id));
    let _ = writeln!(
        s,
        "started      {}",
        crate::event::rfc3339_ns(id.start_time_ns)
    );
    let _ = writeln!(s, "exe          {}", id.exe_path);
    let integrity = id.integrity.clone().unwrap_or_default();
    let _ = writeln!(
        s,
        "sha256       {}",
        if id.exe_sha256.is_empty() {
            format!("none (hash {})", integrity.hash_status)
        } else {
            id.exe_sha256.clone()
        }
    );
    if let Some(p) = &id.script_path {
        let _ = writeln!(
            s,
            "script       {} (sha256 {})",
            p,
            id.script_sha256.as_deref().unwrap_or("unknown")
        );
    }
    if !id.args.is_empty() {
        let _ = writeln!(s, "args         {}", id.args.join(" "));
    }
    let _ = writeln!(s, "uid/gid      {}/{}", id.uid, id.gid);
    let mut flags = Vec::new();
    if integrity.fileless {
        flags.push("FILELESS");
    }
    if integrity.deleted {
        flags.push("DELETED");
    }
    if integrity.modified_after_exec {
        flags.push("MODIFIED AFTER EXEC");
    }
    let _ = writeln!(
        s,
        "attestation  {} ({})",
        id.attestation,
        if flags.is_empty() {
            if id.exe_sha256.is_empty() {
                "binary not verified".to_string()
            } else {
                "binary unmodified since exec".to_string()
            }
        } else {
            flags.join(", ")
        }
    );
    let _ = writeln!(
        s,
        "cgroup       {} (id {})",
        or_unknown(&id.cgroup_path),
        id.cgroup_id
    );
    if let Some(c) = &id.container_id {
        let _ = writeln!(
            s,
            "container    {} ({})",
            c,
            id.container_runtime.as_deref().unwrap_or("unknown runtime")
        );
    }
    if let Some(u) = &id.pod_uid {
        let name = match (&id.pod_namespace, &id.pod_name) {
            (Some(ns), Some(n)) => format!("{ns}/{n} "),
            _ => String::new(),
        };
        let _ = writeln!(s, "pod          {name}(uid {u})");
    }
    let _ = writeln!(s, "selectors");
    for sel in &id.selectors {
        let _ = writeln!(s, "  {}:{}", sel.r#type, sel.value);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Cgroup, Exe, Interpreter, ScriptIdentity};

    fn process() -> Process {
        Process {
            pid: 42,
            ppid: 1,
            exec_id: "e1".into(),
            parent_exec_id: None,
            start_time_ns: 1_000,
            uid: 1000,
            gid: 1000,
            euid: 1000,
            egid: 1000,
            comm: "app".into(),
            args: vec!["app".into(), "--x".into()],
            args_truncated: false,
            args_redacted: false,
            exe: Exe {
                path: "/usr/bin/app".into(),
                sha256: Some("ab".repeat(32)),
                hash_status: "ok",
                inode: 7,
                dev: 8,
                size: 9,
                fileless: false,
                deleted: false,
                modified_after_exec: false,
                path_namespace: "host",
            },
            interpreter: None,
            cgroup: Cgroup {
                id: 5,
                path: Some("/kubepods/x".into()),
            },
            container: Some(serde_json::json!({"id": "c0ffee", "runtime": "containerd"})),
            pod: Some(serde_json::json!({"uid": "u-1", "namespace": null, "name": null})),
            attestation: Attestation::KernelExec,
        }
    }

    fn values(s: &[Selector]) -> Vec<String> {
        s.iter()
            .map(|s| format!("{}:{}", s.r#type, s.value))
            .collect()
    }

    #[test]
    fn name_db_parses_passwd_and_group() {
        let db = NameDb::parse("root:x:0:0:root:/root:/bin/sh\n# c\nbad\nx:x:nan:\nroot2:x:0:\napp:*:1000:1000::/:/bin/false\n");
        assert_eq!(db.name(0), Some("root"));
        assert_eq!(db.name(1000), Some("app"));
        assert_eq!(db.id("root2"), Some(0));
        assert_eq!(db.name(5), None);
    }

    #[test]
    fn selectors_of_a_kernel_exec() {
        let users = NameDb::parse("app:x:1000:1000::/:/bin/sh\n");
        let groups = NameDb::parse("app:x:1000:\nwheel:x:10:\n");
        let mut parent = process();
        parent.exe.sha256 = Some("cd".repeat(32));
        parent.exec_id = "parent".into();
        let creds = Creds {
            uid: 1000,
            gid: 1000,
            groups: vec![10],
        };
        let cx = Context {
            creds: &creds,
            users: &users,
            groups: &groups,
            parent: Some(&parent),
            hygiene: &Hygiene {
                package: Some("app-pkg".into()),
                env_clean: true,
            },
        };
        let p = process();
        let v = values(&selectors(&p, &cx));
        let h = "ab".repeat(32);
        for want in [
            "unix:uid:1000".to_string(),
            "unix:user:app".into(),
            "unix:gid:1000".into(),
            "unix:group:app".into(),
            "unix:supplementary_gid:10".into(),
            "unix:supplementary_group:wheel".into(),
            "unix:path:/usr/bin/app".into(),
            format!("unix:sha256:{h}"),
            "k8s:pod-uid:u-1".into(),
            "proctor:attestation:kernel-exec".into(),
            format!("proctor:exec-sha256:{h}"),
            "proctor:exe-host-path:/usr/bin/app".into(),
            "proctor:binary-unmodified:true".into(),
            "proctor:binary-package:app-pkg".into(),
            "proctor:env-static-secrets:none".into(),
            "proctor:fileless:false".into(),
            "proctor:deleted:false".into(),
            format!("proctor:parent-sha256:{}", "cd".repeat(32)),
            "proctor:cgroup:/kubepods/x".into(),
            "proctor:container-id:c0ffee".into(),
            "proctor:container-runtime:containerd".into(),
        ] {
            assert!(v.contains(&want), "{want} missing from {v:?}");
        }
        assert!(!v.iter().any(|s| s.starts_with("k8s:ns:")), "{v:?}");
        let all = selectors(&p, &cx);
        assert!(
            all.iter()
                .all(|s| known_kind(&s.r#type, &s.value).is_some()),
            "a kind missing from SELECTOR_KINDS: {v:?}"
        );
        let id = identity(&p, &cx);
        assert_eq!(id.parent_exec_id, "parent");
        assert_eq!(id.exe_sha256, h);
        assert_eq!(id.container_id.as_deref(), Some("c0ffee"));
        assert_eq!(id.pod_namespace, None);
        let text = render_identity_text(&id);
        assert!(text.contains("binary unmodified since exec"), "{text}");
        assert!(text.contains("  unix:uid:1000"), "{text}");
    }

    /// What a context without name databases, parent or hygiene borrows.
    struct Bare {
        creds: Creds,
        names: NameDb,
        hygiene: Hygiene,
    }

    impl Bare {
        fn new() -> Self {
            Bare {
                creds: Creds::from_record(&process()),
                names: NameDb::default(),
                hygiene: Hygiene::default(),
            }
        }

        fn context(&self) -> Context<'_> {
            Context {
                creds: &self.creds,
                users: &self.names,
                groups: &self.names,
                parent: None,
                hygiene: &self.hygiene,
            }
        }
    }

    #[test]
    fn pod_metadata_gives_k8s_selectors() {
        let bare = Bare::new();
        let cx = bare.context();
        let mut p = process();
        p.pod = Some(serde_json::json!({
            "uid": "u-1", "namespace": "shop", "name": "web-0", "service_account": "web",
            "labels": {"app": "web", "tier": "front"}, "node_name": "n1",
            "owners": [{"kind": "StatefulSet", "name": "web", "uid": "o-1"}],
            "images": ["reg/app:1", "reg/app@sha256:ab"], "image_count": 1,
            "init_images": [], "init_image_count": 0,
        }));
        p.container = Some(serde_json::json!({
            "id": "c0ffee", "runtime": "containerd", "name": "app",
            "image": "reg/app:1", "image_id": "reg/app@sha256:ab",
        }));
        let v = values(&selectors(&p, &cx));
        for want in [
            "k8s:pod-uid:u-1",
            "k8s:ns:shop",
            "k8s:sa:web",
            "k8s:pod-name:web-0",
            "k8s:pod-label:app:web",
            "k8s:pod-label:tier:front",
            "k8s:container-name:app",
            "k8s:container-image:reg/app:1",
            "k8s:container-image:reg/app@sha256:ab",
            "k8s:node-name:n1",
            "k8s:pod-owner:StatefulSet:web",
            "k8s:pod-owner-uid:StatefulSet:o-1",
            "k8s:pod-image:reg/app:1",
            "k8s:pod-image:reg/app@sha256:ab",
            "k8s:pod-image-count:1",
            "k8s:pod-init-image-count:0",
            "proctor:container-id:c0ffee",
        ] {
            assert!(v.contains(&want.to_string()), "{want} missing from {v:?}");
        }
        assert!(
            selectors(&p, &cx)
                .iter()
                .all(|s| known_kind(&s.r#type, &s.value).is_some()),
            "a kind missing from SELECTOR_KINDS: {v:?}"
        );
        // A container outside any pod: no k8s container selectors.
        p.pod = None;
        let v = values(&selectors(&p, &cx));
        assert!(!v.iter().any(|s| s.starts_with("k8s:")), "{v:?}");
    }

    #[test]
    fn only_a_path_the_host_namespace_confirms_is_an_exe_host_path() {
        let bare = Bare::new();
        let cx = bare.context();
        let mut p = process();
        let v = values(&selectors(&p, &cx));
        assert!(
            v.contains(&"proctor:exe-host-path:/usr/bin/app".to_string()),
            "{v:?}"
        );
        for ns in ["process", "pending"] {
            p.exe.path_namespace = ns;
            let v = values(&selectors(&p, &cx));
            // SPIRE's unix:path stays: it is the process's own name.
            assert!(v.contains(&"unix:path:/usr/bin/app".to_string()), "{v:?}");
            assert!(!v.iter().any(|s| s.contains("exe-host-path")), "{v:?}");
        }
        p.exe.path_namespace = "host";
        p.exe.deleted = true;
        let v = values(&selectors(&p, &cx));
        assert!(!v.iter().any(|s| s.contains("exe-host-path")), "{v:?}");
    }

    #[test]
    fn untrustworthy_binaries_get_no_hash_or_path() {
        let bare = Bare::new();
        let cx = bare.context();
        let mut p = process();
        p.exe.modified_after_exec = true;
        p.exe.hash_status = "modified";
        let v = values(&selectors(&p, &cx));
        assert!(!v.iter().any(|s| s.contains("sha256:")), "{v:?}");
        assert!(v.contains(&"proctor:binary-unmodified:false".to_string()));
        // A package verdict says nothing about a file changed since the exec.
        let hygiene = Hygiene {
            package: Some("app-pkg".into()),
            env_clean: false,
        };
        let v = values(&selectors(
            &p,
            &Context {
                hygiene: &hygiene,
                ..cx
            },
        ));
        assert!(!v.iter().any(|s| s.contains("binary-package:")), "{v:?}");
        assert!(!v.iter().any(|s| s.contains("env-static-secrets")), "{v:?}");
        let mut p = process();
        p.exe.fileless = true;
        p.exe.path = "memfd:x".into();
        p.attestation = Attestation::ProcfsScan;
        p.interpreter = Some(Interpreter {
            path: "/bin/sh".into(),
            script: ScriptIdentity {
                path: "/opt/run.sh".into(),
                sha256: Some("ef".repeat(32)),
                hash_status: "ok",
                inode: None,
                dev: None,
                size: None,
            },
        });
        let v = values(&selectors(&p, &cx));
        assert!(!v.iter().any(|s| s.starts_with("unix:path:")), "{v:?}");
        assert!(v.contains(&"proctor:fileless:true".to_string()));
        assert!(v.contains(&"proctor:attestation:procfs-scan".to_string()));
        assert!(v.contains(&"proctor:script-path:/opt/run.sh".to_string()));
        assert!(v.contains(&format!("proctor:script-sha256:{}", "ef".repeat(32))));
        assert!(
            selectors(&p, &cx)
                .iter()
                .all(|s| known_kind(&s.r#type, &s.value).is_some()),
            "a kind missing from SELECTOR_KINDS: {v:?}"
        );
        let id = identity(&p, &cx);
        assert!(!id.integrity.unwrap().kernel_exec);
        assert_eq!(id.parent_exec_id, "");
    }
}
