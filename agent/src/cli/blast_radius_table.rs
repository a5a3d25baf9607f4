//! `proctor inventory --secret` as text: every workload that read a secret and where the workloads carrying it connected.

use std::fmt::Write as _;

use super::inventory_table::{clean, format_age, format_time_ns};
use crate::secrets::inventory::BlastRadius;

/// One block per secret the key named: the secret, then per reader its
/// binary (sha256 and path), user, container, pod, first/last read, count
/// and the destinations it connected to while carrying the secret; then
/// destinations of carriers that did not read it themselves (children that
/// inherited it).
pub fn render_blast_radius(key: &str, found: &[BlastRadius]) -> String {
    if found.is_empty() {
        return format!(
            "no secret in the inventory has the path, catalog id or fingerprint {}\n",
            clean(key)
        );
    }
    let mut out = String::new();
    for (i, b) in found.iter().enumerate() {
        let s = &b.item.secret;
        if i > 0 {
            out.push('\n');
        }
        let age = b
            .item
            .rotation_age_seconds
            .map_or_else(|| "unknown".to_owned(), format_age);
        let _ = writeln!(out, "{}", clean(&s.path));
        let _ = writeln!(
            out,
            "  id: {}  kind: {}  fingerprint: {}  age: {}",
            clean(&s.catalog_id),
            clean(&s.kind),
            s.fingerprint
                .as_deref()
                .map_or_else(|| "-".to_owned(), clean),
            age
        );
        let _ = writeln!(out, "  read by {} workload(s):", b.item.readers.len());
        for r in &b.item.readers {
            let _ = writeln!(out, "    {}", clean(&r.identity));
            let _ = writeln!(
                out,
                "      binary: {}  sha256: {}",
                clean(&r.exe_path),
                r.exe_sha256
                    .as_deref()
                    .map_or_else(|| "-".to_owned(), clean)
            );
            let _ = writeln!(
                out,
                "      user: {}  container: {}  pod: {}",
                r.uid.map_or_else(|| "-".to_owned(), |u| u.to_string()),
                r.container_id
                    .as_deref()
                    .map_or_else(|| "-".to_owned(), clean),
                r.pod.as_deref().map_or_else(|| "-".to_owned(), clean),
            );
            let _ = writeln!(
                out,
                "      reads: {}  first: {}  last: {}",
                r.count,
                format_time_ns(r.first_read_ns),
                format_time_ns(r.last_read_ns)
            );
            let mine: Vec<_> = b
                .destinations
                .iter()
                .filter(|d| d.identity == r.identity)
                .collect();
            if mine.is_empty() {
                let _ = writeln!(out, "      connected to: none seen");
            }
            for d in mine {
                let _ = writeln!(
                    out,
                    "      connected to: {}  count: {}  last: {}",
                    clean(&d.destination),
                    d.count,
                    format_time_ns(d.last_ns)
                );
            }
        }
        let inherited: Vec<_> = b
            .destinations
            .iter()
            .filter(|d| !b.item.readers.iter().any(|r| r.identity == d.identity))
            .collect();
        if !inherited.is_empty() {
            let _ = writeln!(out, "  carried by other workloads (inherited):");
            for d in inherited {
                let _ = writeln!(
                    out,
                    "    {}  connected to: {}  count: {}  last: {}",
                    clean(&d.identity),
                    clean(&d.destination),
                    d.count,
                    format_time_ns(d.last_ns)
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::inventory::{
        test_records::{reader, secret, NS, T0},
        DestinationBatch, InventoryStore, DB_FILE_NAME,
    };

    #[test]
    fn blast_radius_lists_readers_with_their_destinations_and_inherited_carriers() {
        let tmp = tempfile::tempdir().unwrap();
        let store = InventoryStore::open(&tmp.path().join(DB_FILE_NAME)).unwrap();
        let p = "/root/.aws/credentials";
        store.upsert_secret(&secret(p, T0)).unwrap();
        store
            .upsert_secret(&secret("/home/b/.aws/credentials", T0))
            .unwrap();
        store
            .record_read(p, &reader("sha256:aa|cgroup:/a"), T0 + NS)
            .unwrap();
        let mut other = reader("sha256:bb|cgroup:/b");
        (other.exe_path, other.uid, other.pod) = ("/usr/bin/curl".into(), Some(0), None);
        store.record_read(p, &other, T0 + 2 * NS).unwrap();
        let mut d = DestinationBatch::default();
        d.record(p, "sha256:bb|cgroup:/b", "127.0.0.1:8443", T0 + 3 * NS);
        d.record(p, "sha256:cc|cgroup:/c", "10.0.0.9:22", T0 + 4 * NS);
        store.record_destinations(&d.take().unwrap()).unwrap();

        let found = store.blast_radius(p, T0 + 5 * NS).unwrap();
        assert_eq!(found.len(), 1);
        let out = render_blast_radius(p, &found);
        let curl = out.find("binary: /usr/bin/curl").unwrap();
        let aws = out.find("binary: /usr/bin/aws").unwrap();
        assert!(curl < aws, "most recent reader first:\n{out}");
        assert!(
            out[curl..aws].contains("user: 0  container: abc123  pod: -")
                && out[curl..aws].contains("connected to: 127.0.0.1:8443  count: 1"),
            "{out}"
        );
        assert!(
            out[aws..].contains("user: 1000") && out[aws..].contains("connected to: none seen"),
            "{out}"
        );
        assert!(
            out.contains("carried by other workloads (inherited):\n    sha256:cc|cgroup:/c  connected to: 10.0.0.9:22"),
            "{out}"
        );
        // By catalog id: both copies; by fingerprint too; unknown: says so.
        assert_eq!(
            store.blast_radius("aws-cli-credentials", T0).unwrap().len(),
            2
        );
        let fp = found[0].item.secret.fingerprint.clone().unwrap();
        assert_eq!(store.blast_radius(&fp, T0).unwrap().len(), 2);
        let none = store.blast_radius("no-such", T0).unwrap();
        assert!(render_blast_radius("no\x1bsuch", &none).contains("no\\u{1b}such"));
        let json = serde_json::to_value(&found[0]).unwrap();
        assert_eq!(json["path"], p);
        assert_eq!(json["readers"][0]["uid"], 0);
        assert_eq!(json["destinations"][1]["destination"], "127.0.0.1:8443");
    }
}
