//! The migration plan: each static secret's readers grouped into workloads by kernel evidence (binary hash, user, namespace), each with the selectors that would identify it to SPIRE and the destinations it used the secret against.
//!
//! This is the step the inventory exists for: issue an SVID to exactly the
//! workloads that hold a key today, move them to it, then retire the key.

use std::collections::{BTreeMap, BTreeSet};

use super::{InventoryItem, InventoryStore, ReaderRecord, StoreError};

/// A secret one planned workload reads.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct PlannedSecret {
    pub path: String,
    pub catalog_id: String,
    pub kind: String,
    pub fingerprint: Option<String>,
    pub reads: u64,
    pub last_read_ns: u64,
}

/// Readers that kernel evidence groups into one workload.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct PlannedWorkload {
    /// The executable's SHA-256 as the kernel exec'd it.
    pub exe_sha256: String,
    /// Paths it ran from (one binary may be installed at several).
    pub exe_paths: Vec<String>,
    pub uid: Option<u32>,
    /// Kubernetes namespace, when its readers ran in pods of one.
    pub namespace: Option<String>,
    /// Selector values (without the plugin name SPIRE prefixes) that this
    /// workload presents to proctor's WorkloadAttestor: `sha256:`, `uid:`,
    /// `ns:`.
    pub selectors: Vec<String>,
    pub secrets: Vec<PlannedSecret>,
    /// `ip:port` it connected to while carrying one of those secrets.
    pub destinations: Vec<String>,
    /// The inventory's reader identities it groups.
    pub identities: Vec<String>,
}

/// A reader with no verified binary hash: nothing the kernel vouches for
/// could tell it from another program, so no registration is proposed.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct Unidentified {
    pub identity: String,
    pub exe_path: String,
    pub secret_path: String,
}

#[derive(Debug, Clone, Default, serde::Serialize, PartialEq)]
pub struct MigrationPlan {
    pub workloads: Vec<PlannedWorkload>,
    pub unidentified: Vec<Unidentified>,
}

/// (sha256, uid, namespace): what a registration can select on.
type WorkloadKey = (String, Option<u32>, Option<String>);

fn namespace_of(r: &ReaderRecord) -> Option<String> {
    r.pod
        .as_deref()
        .and_then(|p| p.split_once('/'))
        .map(|(ns, _)| ns.to_owned())
}

/// Groups `items`' readers into workloads; `destinations` maps a reader
/// identity to where it connected while carrying the secret at a path.
pub fn plan(
    items: &[InventoryItem],
    destinations: &BTreeMap<(String, String), BTreeSet<String>>,
) -> MigrationPlan {
    let mut groups: BTreeMap<WorkloadKey, PlannedWorkload> = BTreeMap::new();
    let mut unidentified = Vec::new();
    for item in items.iter().filter(|i| i.secret.present) {
        let s = &item.secret;
        for r in &item.readers {
            let Some(sha) = r.exe_sha256.clone() else {
                unidentified.push(Unidentified {
                    identity: r.identity.clone(),
                    exe_path: r.exe_path.clone(),
                    secret_path: s.path.clone(),
                });
                continue;
            };
            let key = (sha.clone(), r.uid, namespace_of(r));
            let w = groups
                .entry(key.clone())
                .or_insert_with(|| PlannedWorkload {
                    selectors: selectors(&key),
                    exe_sha256: sha,
                    exe_paths: Vec::new(),
                    uid: key.1,
                    namespace: key.2.clone(),
                    secrets: Vec::new(),
                    destinations: Vec::new(),
                    identities: Vec::new(),
                });
            push_unique(&mut w.exe_paths, &r.exe_path);
            push_unique(&mut w.identities, &r.identity);
            match w.secrets.iter_mut().find(|p| p.path == s.path) {
                Some(p) => {
                    p.reads += r.count;
                    p.last_read_ns = p.last_read_ns.max(r.last_read_ns);
                }
                None => w.secrets.push(PlannedSecret {
                    path: s.path.clone(),
                    catalog_id: s.catalog_id.clone(),
                    kind: s.kind.clone(),
                    fingerprint: s.fingerprint.clone(),
                    reads: r.count,
                    last_read_ns: r.last_read_ns,
                }),
            }
            if let Some(d) = destinations.get(&(s.path.clone(), r.identity.clone())) {
                for dest in d {
                    push_unique(&mut w.destinations, dest);
                }
            }
        }
    }
    MigrationPlan {
        workloads: groups.into_values().collect(),
        unidentified,
    }
}

/// Selector values a registration entry needs to match exactly this
/// workload: the binary by hash, the user, the namespace.
fn selectors((sha, uid, ns): &WorkloadKey) -> Vec<String> {
    let mut out = vec![format!("sha256:{sha}")];
    if let Some(u) = uid {
        out.push(format!("uid:{u}"));
    }
    if let Some(ns) = ns {
        out.push(format!("ns:{ns}"));
    }
    out
}

fn push_unique(v: &mut Vec<String>, s: &str) {
    if !v.iter().any(|x| x == s) {
        v.push(s.to_owned());
    }
}

impl InventoryStore {
    /// The migration plan of every present secret in the inventory.
    pub fn migration_plan(&self, now_ns: u64) -> Result<MigrationPlan, StoreError> {
        let items = self.items(now_ns)?;
        let mut destinations: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
        for item in &items {
            for d in self.destinations_of(&item.secret.path)? {
                destinations
                    .entry((item.secret.path.clone(), d.identity))
                    .or_default()
                    .insert(d.destination);
            }
        }
        Ok(plan(&items, &destinations))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::inventory::test_records::{reader, secret, T0};

    fn item(path: &str, readers: Vec<ReaderRecord>) -> InventoryItem {
        InventoryItem {
            secret: secret(path, T0),
            rotation_age_seconds: None,
            content_since_ns: T0,
            readers,
        }
    }

    #[test]
    fn readers_group_by_hash_user_and_namespace_and_unhashed_ones_are_named_apart() {
        let mut a1 = reader("sha256:ab|cgroup:/a|container:1");
        a1.count = 3;
        a1.last_read_ns = T0 + 5;
        // Same binary, user and namespace in another pod: the same workload.
        let mut a2 = reader("sha256:ab|cgroup:/b|container:2");
        a2.pod = Some("default/web-1".into());
        a2.count = 2;
        a2.last_read_ns = T0 + 9;
        // Same binary as another user: another workload.
        let mut other_user = reader("sha256:ab|cgroup:/c");
        other_user.uid = Some(0);
        other_user.pod = None;
        other_user.container_id = None;
        let mut unhashed = reader("path:/tmp/x|cgroup:/d");
        unhashed.exe_sha256 = None;
        unhashed.exe_path = "/tmp/x".into();
        let items = vec![
            item("/home/u/.aws/credentials", vec![a1.clone(), other_user]),
            item("/home/u/.netrc", vec![a2.clone(), unhashed]),
        ];
        let mut dest = BTreeMap::new();
        dest.insert(
            ("/home/u/.aws/credentials".to_string(), a1.identity.clone()),
            BTreeSet::from(["52.94.1.2:443".to_string()]),
        );
        let p = plan(&items, &dest);
        assert_eq!(p.workloads.len(), 2, "{p:#?}");
        let web = p
            .workloads
            .iter()
            .find(|w| w.namespace.as_deref() == Some("default"))
            .unwrap();
        let sha = "ab".repeat(32);
        assert_eq!(
            web.selectors,
            vec![
                format!("sha256:{sha}"),
                "uid:1000".into(),
                "ns:default".into()
            ]
        );
        assert_eq!(web.identities.len(), 2);
        assert_eq!(web.secrets.len(), 2);
        assert_eq!(web.destinations, vec!["52.94.1.2:443".to_string()]);
        let root = p.workloads.iter().find(|w| w.uid == Some(0)).unwrap();
        assert_eq!(
            root.selectors,
            vec![format!("sha256:{sha}"), "uid:0".into()]
        );
        assert!(root.destinations.is_empty());
        assert_eq!(
            p.unidentified,
            vec![Unidentified {
                identity: "path:/tmp/x|cgroup:/d".into(),
                exe_path: "/tmp/x".into(),
                secret_path: "/home/u/.netrc".into(),
            }]
        );
    }

    #[test]
    fn a_secret_that_is_gone_needs_no_plan() {
        let mut gone = item("/home/u/.netrc", vec![reader("sha256:ab|cgroup:/a")]);
        gone.secret.present = false;
        assert_eq!(plan(&[gone], &BTreeMap::new()), MigrationPlan::default());
    }
}
