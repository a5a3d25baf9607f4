//! Reading the inventory: every secret, each with its age and readers in one
//! consistent snapshot, and who read the copies of one fingerprint.

use rusqlite::Row;

use super::{
    BlastRadius, ContentAge, InventoryItem, InventoryStore, ReaderRecord, SecretRecord, StoreError,
};

const SECRET_COLUMNS: &str =
    "path, catalog_id, kind, fingerprint, dev, inode, size, mtime_ns, first_seen_ns, present";
const READER_COLUMNS: &str = "identity, exe_path, exe_sha256, container_id, pod, count, \
                              first_read_ns, last_read_ns, uid";

impl InventoryStore {
    /// Every secret, ordered by path.
    pub fn secrets(&self) -> Result<Vec<SecretRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {SECRET_COLUMNS} FROM secrets ORDER BY path"
            ))
            .map_err(|err| self.sqlite_err("prepare secrets query", err))?;
        stmt.query_map([], secret_from_row)
            .and_then(|rows| rows.collect())
            .map_err(|err| self.sqlite_err("list secrets", err))
    }

    /// Every secret with its rotation age and its readers (most recent read
    /// first), ordered by path. Reads one consistent snapshot.
    pub fn items(&self, now_ns: u64) -> Result<Vec<InventoryItem>, StoreError> {
        // One read transaction, so that secrets and readers agree even while
        // the agent writes.
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(|err| self.sqlite_err("start a read snapshot", err))?;
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {SECRET_COLUMNS}, content_since_ns FROM secrets ORDER BY path"
            ))
            .map_err(|err| self.sqlite_err("prepare secrets query", err))?;
        let secrets: Vec<(SecretRecord, u64)> = stmt
            .query_map([], |row| {
                Ok((
                    secret_from_row(row)?,
                    row.get::<_, i64>(10)?.cast_unsigned(),
                ))
            })
            .and_then(|rows| rows.collect())
            .map_err(|err| self.sqlite_err("list secrets", err))?;
        drop(stmt);
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT path, {READER_COLUMNS} FROM readers
                 ORDER BY path, last_read_ns DESC, identity"
            ))
            .map_err(|err| self.sqlite_err("prepare readers query", err))?;
        let readers: Vec<(String, ReaderRecord)> = stmt
            .query_map([], |row| Ok((row.get(0)?, reader_from_row(row, 1)?)))
            .and_then(|rows| rows.collect())
            .map_err(|err| self.sqlite_err("list readers", err))?;
        drop(stmt);
        tx.finish()
            .map_err(|err| self.sqlite_err("end the read snapshot", err))?;

        // Both lists are sorted by path: merge them.
        let mut readers = readers.into_iter().peekable();
        let mut items = Vec::with_capacity(secrets.len());
        for (secret, content_since_ns) in secrets {
            while readers.peek().is_some_and(|(p, _)| *p < secret.path) {
                readers.next(); // cannot happen with the foreign key; be safe
            }
            let mut mine = Vec::new();
            while let Some((_, r)) = readers.next_if(|(p, _)| *p == secret.path) {
                mine.push(r);
            }
            items.push(InventoryItem {
                rotation_age_seconds: rotation_age_seconds(content_since_ns, now_ns),
                content_since_ns,
                secret,
                readers: mine,
            });
        }
        Ok(items)
    }

    /// The blast radius of the secrets `key` names (a path, a catalog id or
    /// a fingerprint): each one's readers and where its carriers connected.
    pub fn blast_radius(&self, key: &str, now_ns: u64) -> Result<Vec<BlastRadius>, StoreError> {
        let items: Vec<InventoryItem> = self
            .items(now_ns)?
            .into_iter()
            .filter(|i| {
                let s = &i.secret;
                s.path == key || s.catalog_id == key || s.fingerprint.as_deref() == Some(key)
            })
            .collect();
        items
            .into_iter()
            .map(|item| {
                Ok(BlastRadius {
                    destinations: self.destinations_of(&item.secret.path)?,
                    item,
                })
            })
            .collect()
    }

    /// Every present secret with when its content dates from and when
    /// secret-stale last fired for it, ordered by path: what the rotation
    /// check judges.
    pub fn content_ages(&self) -> Result<Vec<ContentAge>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {SECRET_COLUMNS}, content_since_ns, stale_reported_ns FROM secrets
                 WHERE present <> 0 ORDER BY path"
            ))
            .map_err(|err| self.sqlite_err("prepare content_ages", err))?;
        stmt.query_map([], |row| {
            Ok(ContentAge {
                secret: secret_from_row(row)?,
                content_since_ns: row.get::<_, i64>(10)?.cast_unsigned(),
                stale_reported_ns: row.get::<_, Option<i64>>(11)?.map(i64::cast_unsigned),
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(|err| self.sqlite_err("content_ages", err))
    }

    /// Every (path, reader) whose secret has fingerprint `fp`: the same secret
    /// content stored at several paths and who read each copy. Ordered by
    /// path, then most recent read first.
    pub fn readers_of_fingerprint(
        &self,
        fp: &str,
    ) -> Result<Vec<(String, ReaderRecord)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT r.path, r.identity, r.exe_path, r.exe_sha256, r.container_id, r.pod,
                        r.count, r.first_read_ns, r.last_read_ns, r.uid
                 FROM secrets s JOIN readers r ON r.path = s.path
                 WHERE s.fingerprint = ?1
                 ORDER BY r.path, r.last_read_ns DESC, r.identity",
            )
            .map_err(|err| self.sqlite_err("prepare readers_of_fingerprint", err))?;
        stmt.query_map([fp], |row| Ok((row.get(0)?, reader_from_row(row, 1)?)))
            .and_then(|rows| rows.collect())
            .map_err(|err| self.sqlite_err("readers_of_fingerprint", err))
    }
}

fn secret_from_row(row: &Row<'_>) -> rusqlite::Result<SecretRecord> {
    Ok(SecretRecord {
        path: row.get(0)?,
        catalog_id: row.get(1)?,
        kind: row.get(2)?,
        fingerprint: row.get(3)?,
        dev: row.get::<_, i64>(4)?.cast_unsigned(),
        inode: row.get::<_, i64>(5)?.cast_unsigned(),
        size: row.get::<_, i64>(6)?.cast_unsigned(),
        mtime_ns: row.get(7)?,
        first_seen_ns: row.get::<_, i64>(8)?.cast_unsigned(),
        present: row.get(9)?,
    })
}

fn reader_from_row(row: &Row<'_>, first: usize) -> rusqlite::Result<ReaderRecord> {
    Ok(ReaderRecord {
        identity: row.get(first)?,
        exe_path: row.get(first + 1)?,
        exe_sha256: row.get(first + 2)?,
        container_id: row.get(first + 3)?,
        pod: row.get(first + 4)?,
        count: row.get::<_, i64>(first + 5)?.cast_unsigned(),
        first_read_ns: row.get::<_, i64>(first + 6)?.cast_unsigned(),
        last_read_ns: row.get::<_, i64>(first + 7)?.cast_unsigned(),
        uid: row.get(first + 8)?,
    })
}

/// Seconds from `mtime_ns` to `now_ns`; `None` when mtime is unknown (<= 0),
/// 0 when mtime lies in the future (clock skew).
fn rotation_age_seconds(since_ns: u64, now_ns: u64) -> Option<u64> {
    (since_ns > 0).then(|| now_ns.saturating_sub(since_ns) / 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::inventory::{
        test_records::{fingerprint, reader, secret, NS, T0},
        DB_FILE_NAME,
    };

    #[test]
    fn items_compute_rotation_age() {
        let tmp = tempfile::tempdir().unwrap();
        let store = InventoryStore::open(&tmp.path().join(DB_FILE_NAME)).unwrap();
        let first_seen = T0 + 500 * NS;
        let mut a = secret("/a", first_seen);
        a.mtime_ns = T0.cast_signed();
        store.upsert_secret(&a).unwrap();
        let mut no_mtime = secret("/b", first_seen);
        no_mtime.mtime_ns = 0;
        store.upsert_secret(&no_mtime).unwrap();
        let mut future = secret("/c", first_seen);
        future.mtime_ns = (first_seen + 100 * NS).cast_signed();
        store.upsert_secret(&future).unwrap();

        let age = 3 * 86_400 + 4 * 3_600 + 59;
        let items = store.items(first_seen + age * NS + 123).unwrap();
        let paths: Vec<_> = items.iter().map(|i| i.secret.path.as_str()).collect();
        assert_eq!(paths, ["/a", "/b", "/c"]);
        // /a: its mtime, older than first sight, is the lower bound; /b and
        // /c (no or a future mtime) date from first sight.
        let first_seen = T0 + 500 * NS;
        assert_eq!(items[0].rotation_age_seconds, Some(age + 500));
        assert_eq!(items[0].content_since_ns, T0);
        assert_eq!(items[1].rotation_age_seconds, Some(age));
        assert_eq!(items[2].rotation_age_seconds, Some(age));
        assert_eq!(items[2].content_since_ns, first_seen);
        assert_eq!(store.items(T0).unwrap()[2].rotation_age_seconds, Some(0));
        assert!(items.iter().all(|i| i.readers.is_empty()));

        // JSON: secret fields flattened next to age and readers.
        let json = serde_json::to_value(&items[0]).unwrap();
        assert_eq!(json["path"], "/a");
        assert_eq!(json["catalog_id"], "aws-cli-credentials");
        assert_eq!(json["rotation_age_seconds"], age + 500);
        assert!(json["readers"].as_array().unwrap().is_empty());
    }

    #[test]
    fn readers_of_fingerprint_spans_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let store = InventoryStore::open(&tmp.path().join(DB_FILE_NAME)).unwrap();
        let shared = fingerprint(b"the same key");
        let mut a = secret("/home/a/.aws/credentials", T0);
        a.fingerprint = Some(shared.clone());
        let mut b = secret("/srv/app/.env", T0);
        b.fingerprint = Some(shared.clone());
        let other = secret("/home/c/.aws/credentials", T0);
        for s in [&a, &b, &other] {
            store.upsert_secret(s).unwrap();
        }
        store
            .record_read(&a.path, &reader("id-a"), T0 + NS)
            .unwrap();
        store
            .record_read(&b.path, &reader("id-b"), T0 + 2 * NS)
            .unwrap();
        store
            .record_read(&b.path, &reader("id-c"), T0 + 3 * NS)
            .unwrap();
        store
            .record_read(&other.path, &reader("id-x"), T0 + NS)
            .unwrap();

        let got = store.readers_of_fingerprint(&shared).unwrap();
        let pairs: Vec<_> = got
            .iter()
            .map(|(p, r)| (p.as_str(), r.identity.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("/home/a/.aws/credentials", "id-a"),
                ("/srv/app/.env", "id-c"),
                ("/srv/app/.env", "id-b"),
            ]
        );
        assert!(store
            .readers_of_fingerprint("hmac-sha256:ffffffffffffffffffffffffffffffff")
            .unwrap()
            .is_empty());
    }
}
