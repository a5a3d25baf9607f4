//! `proctor inventory` as text: one block per secret and one line per reader.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use crate::secrets::inventory::InventoryItem;

/// Renders an age in seconds as its two largest units: `"3d 4h"`, `"5h 2m"`,
/// `"7m 9s"`, `"42s"`.
pub fn format_age(secs: u64) -> String {
    const MIN: u64 = 60;
    const HOUR: u64 = 60 * MIN;
    const DAY: u64 = 24 * HOUR;
    if secs >= DAY {
        format!("{}d {}h", secs / DAY, secs % DAY / HOUR)
    } else if secs >= HOUR {
        format!("{}h {}m", secs / HOUR, secs % HOUR / MIN)
    } else if secs >= MIN {
        format!("{}m {}s", secs / MIN, secs % MIN)
    } else {
        format!("{secs}s")
    }
}

/// Epoch ns as RFC 3339 (seconds precision, UTC).
pub(super) fn format_time_ns(ns: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
}

/// Escapes control characters so that a hostile path or identity cannot
/// rewrite the operator's terminal or fake table lines.
pub(super) fn clean(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Human-readable inventory for `proctor inventory`: one block per secret
/// (path, catalog id, kind, fingerprint, age, present) followed by one
/// indented line per reader (identity, exe path, count, last read).
pub fn render_table(items: &[InventoryItem]) -> String {
    if items.is_empty() {
        return "no static secrets in the inventory\n".to_owned();
    }
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        let s = &item.secret;
        if i > 0 {
            out.push('\n');
        }
        let age = item
            .rotation_age_seconds
            .map_or_else(|| "unknown".to_owned(), format_age);
        // `write!` to a String cannot fail.
        let _ = writeln!(out, "{}", clean(&s.path));
        let _ = writeln!(
            out,
            "  id: {}  kind: {}  present: {}",
            clean(&s.catalog_id),
            clean(&s.kind),
            if s.present { "yes" } else { "no" }
        );
        let _ = writeln!(
            out,
            "  fingerprint: {}  age: {}",
            s.fingerprint
                .as_deref()
                .map_or_else(|| "-".to_owned(), clean),
            age
        );
        if item.readers.is_empty() {
            let _ = writeln!(out, "  readers: none seen");
            continue;
        }
        let _ = writeln!(out, "  readers ({}):", item.readers.len());
        for r in &item.readers {
            let _ = write!(
                out,
                "    {}  exe: {}  count: {}  last read: {}",
                clean(&r.identity),
                clean(&r.exe_path),
                r.count,
                format_time_ns(r.last_read_ns)
            );
            if let Some(pod) = &r.pod {
                let _ = write!(out, "  pod: {}", clean(pod));
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::inventory::{
        test_records::{fingerprint, reader, secret, NS, T0},
        InventoryStore, DB_FILE_NAME,
    };

    #[test]
    fn render_table_shows_blocks_and_reader_lines() {
        assert_eq!(render_table(&[]), "no static secrets in the inventory\n");
        let tmp = tempfile::tempdir().unwrap();
        let store = InventoryStore::open(&tmp.path().join(DB_FILE_NAME)).unwrap();
        let p = "/root/.aws/credentials";
        store.upsert_secret(&secret(p, T0)).unwrap();
        let mut gone = secret("/tmp/evil\nfake line", T0);
        gone.fingerprint = None;
        gone.mtime_ns = 0;
        gone.present = false;
        store.upsert_secret(&gone).unwrap();
        store
            .record_read(p, &reader("sha256:aa|cgroup:/a"), T0 + NS)
            .unwrap();
        store
            .record_read(p, &reader("sha256:aa|cgroup:/a"), T0 + 2 * NS)
            .unwrap();

        let now = T0 + (3 * 86_400 + 4 * 3_600 + 5) * NS;
        let out = render_table(&store.items(now).unwrap());
        let expected = format!(
            "/root/.aws/credentials\n\
             \x20 id: aws-cli-credentials  kind: cloud_credentials  present: yes\n\
             \x20 fingerprint: {}  age: 3d 4h\n\
             \x20 readers (1):\n\
             \x20   sha256:aa|cgroup:/a  exe: /usr/bin/aws  count: 2  last read: 2023-11-14T22:13:22Z  pod: default/web-0\n\
             \n\
             /tmp/evil\\nfake line\n\
             \x20 id: aws-cli-credentials  kind: cloud_credentials  present: no\n\
             \x20 fingerprint: -  age: 3d 4h\n\
             \x20 readers: none seen\n",
            fingerprint(b"content")
        );
        assert_eq!(out, expected);
    }

    #[test]
    fn format_age_units() {
        assert_eq!(format_age(0), "0s");
        assert_eq!(format_age(59), "59s");
        assert_eq!(format_age(61), "1m 1s");
        assert_eq!(format_age(3_600 * 5 + 120), "5h 2m");
        assert_eq!(format_age(86_400 * 3 + 3_600 * 4 + 59), "3d 4h");
    }
}
