//! `proctor inventory --migration-plan` as text: per workload, what it reads and where it used it, then the `spire-server entry create` command that would identify it.

use std::fmt::Write as _;

use super::inventory_table::{clean, format_time_ns};
use crate::secrets::inventory::{MigrationPlan, PlannedWorkload};

/// Where the registrations go: the trust domain and the node agent's ID
/// (`None`: the printed commands read `$PARENT_ID`).
pub struct Registration<'a> {
    pub trust_domain: &'a str,
    pub parent_id: Option<&'a str>,
}

/// A word for a POSIX shell: single-quoted unless it is plainly safe.
fn sh(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A SPIFFE ID path segment from free text: lowercase letters, digits,
/// `-`, `.` and `_`.
fn segment(s: &str) -> String {
    let seg: String = s
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || "-._".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if seg.is_empty() {
        "workload".into()
    } else {
        seg
    }
}

/// A suggested SPIFFE ID (edit it before use): the namespace or the host
/// user, then the binary's name.
pub fn suggested_spiffe_id(w: &PlannedWorkload, trust_domain: &str) -> String {
    let name = w
        .exe_paths
        .first()
        .and_then(|p| p.rsplit('/').next())
        .map_or_else(|| "workload".to_owned(), segment);
    match (&w.namespace, w.uid) {
        (Some(ns), _) => format!("spiffe://{trust_domain}/ns/{}/{name}", segment(ns)),
        (None, Some(uid)) => format!("spiffe://{trust_domain}/host/uid-{uid}/{name}"),
        (None, None) => format!("spiffe://{trust_domain}/host/{name}"),
    }
}

pub fn render_migration_plan(plan: &MigrationPlan, reg: &Registration<'_>) -> String {
    let mut out = String::new();
    let secrets: std::collections::BTreeSet<&str> = plan
        .workloads
        .iter()
        .flat_map(|w| w.secrets.iter().map(|s| s.path.as_str()))
        .collect();
    let _ = writeln!(
        out,
        "# proctor migration plan: {} workload(s) read {} static secret(s).\n\
         # Register each workload with SPIRE, move it to its SVID, then rotate and\n\
         # retire the key. The selectors are what proctor's WorkloadAttestor reports\n\
         # for these processes (plugin named \"proctor\"); the SPIFFE IDs are\n\
         # suggestions.",
        plan.workloads.len(),
        secrets.len()
    );
    if reg.parent_id.is_none() {
        out.push_str("# Set PARENT_ID to the SPIFFE ID of the node's SPIRE agent first.\n");
    }
    let parent = reg.parent_id.map_or_else(
        || "\"${PARENT_ID:?the SPIFFE ID of the node agent}\"".to_owned(),
        sh,
    );
    for (i, w) in plan.workloads.iter().enumerate() {
        let _ = writeln!(
            out,
            "\n# workload {}: {} (sha256 {}){}{}",
            i + 1,
            w.exe_paths
                .iter()
                .map(|p| clean(p))
                .collect::<Vec<_>>()
                .join(", "),
            w.exe_sha256,
            w.uid.map(|u| format!(", uid {u}")).unwrap_or_default(),
            w.namespace
                .as_deref()
                .map(|n| format!(", namespace {}", clean(n)))
                .unwrap_or_default(),
        );
        for s in &w.secrets {
            let _ = writeln!(
                out,
                "#   reads {} at {} ({} read(s), last {})",
                clean(&s.catalog_id),
                clean(&s.path),
                s.reads,
                format_time_ns(s.last_read_ns)
            );
        }
        if w.destinations.is_empty() {
            out.push_str("#   connected nowhere while carrying it\n");
        } else {
            let _ = writeln!(
                out,
                "#   used it against: {}",
                w.destinations
                    .iter()
                    .map(|d| clean(d))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let _ = write!(
            out,
            "spire-server entry create \\\n    -parentID {parent} \\\n    -spiffeID {}",
            sh(&suggested_spiffe_id(w, reg.trust_domain))
        );
        for sel in &w.selectors {
            let _ = write!(out, " \\\n    -selector {}", sh(&format!("proctor:{sel}")));
        }
        out.push('\n');
    }
    if !plan.unidentified.is_empty() {
        out.push_str(
            "\n# Readers with no verified binary hash (fileless, modified after exec, too\n\
             # large to hash): kernel evidence cannot tell them from other programs, so no\n\
             # entry is proposed. Find out what they are first:\n",
        );
        for u in &plan.unidentified {
            let _ = writeln!(
                out,
                "#   {} read {}",
                clean(&u.exe_path),
                clean(&u.secret_path)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::inventory::{PlannedSecret, Unidentified};

    fn workload(ns: Option<&str>, uid: Option<u32>) -> PlannedWorkload {
        PlannedWorkload {
            exe_sha256: "ab".repeat(32),
            exe_paths: vec!["/opt/Billing App/bin/api".into()],
            uid,
            namespace: ns.map(Into::into),
            selectors: vec![format!("sha256:{}", "ab".repeat(32)), "uid:1001".into()],
            secrets: vec![PlannedSecret {
                path: "/srv/.aws/credentials".into(),
                catalog_id: "aws-cli-credentials".into(),
                kind: "cloud_credentials".into(),
                fingerprint: None,
                reads: 4,
                last_read_ns: 1_700_000_000_000_000_000,
            }],
            destinations: vec!["52.94.1.2:443".into()],
            identities: vec!["sha256:ab|cgroup:/x".into()],
        }
    }

    #[test]
    fn commands_quote_their_words_and_name_what_the_workload_did() {
        let plan = MigrationPlan {
            workloads: vec![workload(None, Some(1001)), workload(Some("Billing"), None)],
            unidentified: vec![Unidentified {
                identity: "path:/tmp/x".into(),
                exe_path: "/tmp/x\u{1b}[2J".into(),
                secret_path: "/root/.netrc".into(),
            }],
        };
        let text = render_migration_plan(
            &plan,
            &Registration {
                trust_domain: "example.org",
                parent_id: None,
            },
        );
        assert!(
            text.contains("2 workload(s) read 1 static secret(s)"),
            "{text}"
        );
        assert!(text.contains("-parentID \"${PARENT_ID:?"), "{text}");
        assert!(
            text.contains("-spiffeID spiffe://example.org/host/uid-1001/api"),
            "{text}"
        );
        assert!(
            text.contains("-spiffeID spiffe://example.org/ns/billing/api"),
            "{text}"
        );
        assert!(
            text.contains(&format!("-selector proctor:sha256:{}", "ab".repeat(32))),
            "{text}"
        );
        assert!(text.contains("used it against: 52.94.1.2:443"), "{text}");
        assert!(
            text.contains("# workload 1: /opt/Billing App/bin/api"),
            "{text}"
        );
        assert!(
            !text.contains('\u{1b}'),
            "control characters are escaped: {text}"
        );
        let given = render_migration_plan(
            &plan,
            &Registration {
                trust_domain: "example.org",
                parent_id: Some("spiffe://example.org/agent/it's"),
            },
        );
        assert!(
            given.contains(r"-parentID 'spiffe://example.org/agent/it'\''s'"),
            "{given}"
        );
    }

    #[test]
    fn shell_words() {
        assert_eq!(sh("proctor:uid:0"), "proctor:uid:0");
        assert_eq!(sh("a b"), "'a b'");
        assert_eq!(sh(""), "''");
        assert_eq!(sh("$(id)"), "'$(id)'");
    }
}
