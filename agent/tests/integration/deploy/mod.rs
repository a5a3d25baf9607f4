//! The deployment artefacts under deploy/, checked with the real tools (CI
//! installs them; a missing one fails the test, it does not skip): what is
//! checked, by artefact, is in the files beside this one. Here: the
//! Kubernetes renderings and YAML access that the manifest checks and the
//! image run share, and the least-privilege capability set the DaemonSets
//! and the systemd unit both grant.

mod image;
mod kubernetes;
mod multiarch;
mod systemd;

use std::{
    collections::BTreeSet,
    path::{Component, Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use serde::Deserialize;
use serde_yaml_ng::Value;

use crate::harness::{repo_root, run_ok};

/// Capabilities of the least-privilege agent, as Kubernetes names them.
const LEAST_PRIVILEGE_CAPS: [&str; 6] = [
    "BPF",
    "PERFMON",
    "SYS_RESOURCE",
    "SYS_PTRACE",
    "DAC_READ_SEARCH",
    "NET_ADMIN",
];

fn deploy() -> PathBuf {
    repo_root().join("deploy")
}

/// The file a `Localhost` seccomp profile name refers to: the kubelet reads
/// `<root>/seccomp/<name>`; the repository ships `deploy/seccomp/<file>`.
fn seccomp_profile_file(localhost_profile: &str) -> PathBuf {
    let file = Path::new(localhost_profile)
        .file_name()
        .expect("a profile file name");
    deploy().join("seccomp").join(file)
}

/// Every file under `dir` whose name `pred` accepts.
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

/// The kubectl `cargo xtask setup` installs (Debian's is too old for
/// components): `<tools>/bin/kubectl`, the tools dir as setup resolves it.
fn kubectl() -> PathBuf {
    let tools = std::env::var_os("PROCTOR_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            PathBuf::from(home).join(".cache/proctor/tools")
        });
    tools.join("bin/kubectl")
}

fn kustomize(dir: &Path) -> String {
    let o = run_ok(
        Command::new(kubectl()).arg("kustomize").arg(dir),
        "kubectl (v1.33, kustomize built in): run `cargo xtask setup`, which installs it",
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
            // kustomize follows symlinks (a target dir may be one): relative
            // paths must be computed between real paths.
            let dir = dir.canonicalize().unwrap();
            let base = relative(
                &dir,
                &k8s.join("overlays/least-privilege").canonicalize().unwrap(),
            );
            let c = relative(&dir, &comp.canonicalize().unwrap());
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

// ---------------------------------------------------- container spec ----

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

fn caps(sc: &Value, which: &str) -> BTreeSet<String> {
    seq_at(sc, &format!("capabilities.{which}"))
        .iter()
        .filter_map(Value::as_str)
        .map(|s| s.trim_start_matches("CAP_").to_uppercase())
        .collect()
}
