//! Writing the inventory: secrets found (unchanged ones cost nothing) and
//! their reads, one at a time or a batch in one transaction.

use rusqlite::params;

use super::{is_valid_fingerprint, InventoryStore, ReaderRecord, SecretRecord, StoreError};

impl InventoryStore {
    /// Inserts or updates the secret at `rec.path`. An existing row keeps its
    /// `first_seen_ns`; every other field is replaced.
    pub fn upsert_secret(&self, rec: &SecretRecord) -> Result<(), StoreError> {
        self.ensure_writable()?;
        if rec
            .fingerprint
            .as_deref()
            .is_some_and(|fp| !is_valid_fingerprint(fp))
        {
            return Err(StoreError::InvalidFingerprint {
                path: self.path.clone(),
                secret: rec.path.clone(),
            });
        }
        // The row keeps its first_seen_ns anyway: equal in all else, nothing to write.
        if self
            .written
            .borrow()
            .get(&rec.path)
            .is_some_and(|w| w.same_row(rec))
        {
            return Ok(());
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT INTO secrets (path, catalog_id, kind, fingerprint, dev, inode, size,
                                      mtime_ns, first_seen_ns, present, content_since_ns)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT(path) DO UPDATE SET
                     content_since_ns  = CASE WHEN fingerprint IS NOT NULL
                                                AND excluded.fingerprint IS NOT NULL
                                                AND excluded.fingerprint <> fingerprint
                                           THEN excluded.first_seen_ns
                                           ELSE content_since_ns END,
                     stale_reported_ns = CASE WHEN fingerprint IS NOT NULL
                                                AND excluded.fingerprint IS NOT NULL
                                                AND excluded.fingerprint <> fingerprint
                                           THEN NULL
                                           ELSE stale_reported_ns END,
                     catalog_id  = excluded.catalog_id,
                     kind        = excluded.kind,
                     fingerprint = excluded.fingerprint,
                     dev         = excluded.dev,
                     inode       = excluded.inode,
                     size        = excluded.size,
                     mtime_ns    = excluded.mtime_ns,
                     present     = excluded.present",
            )
            .map_err(|err| self.sqlite_err("prepare upsert_secret", err))?;
        stmt.execute(params![
            rec.path,
            rec.catalog_id,
            rec.kind,
            rec.fingerprint,
            rec.dev.cast_signed(),
            rec.inode.cast_signed(),
            rec.size.cast_signed(),
            rec.mtime_ns,
            rec.first_seen_ns.cast_signed(),
            rec.present,
            first_content_since(rec).cast_signed(),
        ])
        .map_err(|err| self.sqlite_err("upsert_secret", err))?;
        self.written
            .borrow_mut()
            .insert(rec.path.clone(), rec.clone());
        Ok(())
    }

    /// Notes that secret-stale fired for the secret at `path` at `at_ns`, so
    /// that it fires again only a period later, across restarts too.
    pub fn mark_stale_reported(&self, path: &str, at_ns: u64) -> Result<(), StoreError> {
        self.ensure_writable()?;
        let mut stmt = self
            .conn
            .prepare_cached("UPDATE secrets SET stale_reported_ns = ?2 WHERE path = ?1")
            .map_err(|err| self.sqlite_err("prepare mark_stale_reported", err))?;
        stmt.execute(params![path, at_ns.cast_signed()])
            .map_err(|err| self.sqlite_err("mark_stale_reported", err))?;
        Ok(())
    }

    /// Marks the secret at `path` as gone (no-op for an unknown path). Its
    /// readers are kept: who used a deleted key still matters.
    pub fn mark_absent(&self, path: &str) -> Result<(), StoreError> {
        self.ensure_writable()?;
        self.written.borrow_mut().remove(path);
        let mut stmt = self
            .conn
            .prepare_cached("UPDATE secrets SET present = 0 WHERE path = ?1 AND present <> 0")
            .map_err(|err| self.sqlite_err("prepare mark_absent", err))?;
        stmt.execute([path])
            .map_err(|err| self.sqlite_err("mark_absent", err))?;
        Ok(())
    }

    /// Records one read of the secret at `path` by `reader` at `at_ns`:
    /// count + 1 (`reader.count` is ignored), first/last read widened to
    /// include `at_ns` (so out-of-order events are harmless), and the
    /// descriptive fields refreshed (a known value is not replaced by `None`).
    /// Errors with [`StoreError::UnknownSecret`] if `path` was never upserted.
    pub fn record_read(
        &self,
        path: &str,
        reader: &ReaderRecord,
        at_ns: u64,
    ) -> Result<(), StoreError> {
        self.ensure_writable()?;
        self.add_reads(path, reader, 1, at_ns, at_ns)
    }

    /// Records reads gathered in memory, in one transaction: for each
    /// reader, `count` reads between `first_read_ns` and `last_read_ns`,
    /// merged as [`InventoryStore::record_read`] merges one. A read of a
    /// secret never upserted is skipped; returns how many were skipped so.
    pub fn record_reads<'a>(
        &self,
        reads: impl IntoIterator<Item = (&'a str, &'a ReaderRecord)>,
    ) -> Result<usize, StoreError> {
        self.ensure_writable()?;
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(|err| self.sqlite_err("begin record_reads", err))?;
        let mut skipped = 0;
        for (path, r) in reads {
            match self.add_reads(path, r, r.count, r.first_read_ns, r.last_read_ns) {
                Ok(()) => {}
                Err(StoreError::UnknownSecret { .. }) => skipped += 1,
                Err(e) => return Err(e),
            }
        }
        tx.commit()
            .map_err(|err| self.sqlite_err("commit record_reads", err))?;
        Ok(skipped)
    }

    fn add_reads(
        &self,
        path: &str,
        reader: &ReaderRecord,
        count: u64,
        first_ns: u64,
        last_ns: u64,
    ) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT INTO readers (path, identity, exe_path, exe_sha256, container_id, pod,
                                      count, first_read_ns, last_read_ns, uid)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT(path, identity) DO UPDATE SET
                     uid           = COALESCE(excluded.uid, uid),
                     exe_path      = excluded.exe_path,
                     exe_sha256    = COALESCE(excluded.exe_sha256, exe_sha256),
                     container_id  = COALESCE(excluded.container_id, container_id),
                     pod           = COALESCE(excluded.pod, pod),
                     count         = count + excluded.count,
                     first_read_ns = MIN(first_read_ns, excluded.first_read_ns),
                     last_read_ns  = MAX(last_read_ns, excluded.last_read_ns)",
            )
            .map_err(|err| self.sqlite_err("prepare record_read", err))?;
        match stmt.execute(params![
            path,
            reader.identity,
            reader.exe_path,
            reader.exe_sha256,
            reader.container_id,
            reader.pod,
            count.cast_signed(),
            first_ns.cast_signed(),
            last_ns.cast_signed(),
            reader.uid,
        ]) {
            Ok(_) => Ok(()),
            Err(err)
                if err.sqlite_error().map(|e| e.extended_code)
                    == Some(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY) =>
            {
                Err(StoreError::UnknownSecret {
                    path: self.path.clone(),
                    secret: path.to_owned(),
                })
            }
            Err(err) => Err(self.sqlite_err("record_read", err)),
        }
    }
}

/// When a newly found secret's content dates from: first sight, or the
/// file's mtime when that is older (the content is at least that old; a
/// future or missing mtime proves nothing).
fn first_content_since(rec: &SecretRecord) -> u64 {
    match u64::try_from(rec.mtime_ns) {
        Ok(m) if m > 0 && m < rec.first_seen_ns => m,
        _ => rec.first_seen_ns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::inventory::{
        test_records::{fingerprint, reader, secret, NS, T0},
        DB_FILE_NAME,
    };
    use std::path::{Path, PathBuf};

    #[test]
    fn upsert_keeps_first_seen_and_updates_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let store = InventoryStore::open(&tmp.path().join(DB_FILE_NAME)).unwrap();
        let p = "/root/.aws/credentials";
        store.upsert_secret(&secret(p, T0)).unwrap();

        let mut rotated = secret(p, T0 + 500 * NS);
        rotated.fingerprint = Some(fingerprint(b"rotated content"));
        rotated.inode = 4343;
        rotated.size = 120;
        rotated.mtime_ns = (T0 + 400 * NS).cast_signed();
        store.upsert_secret(&rotated).unwrap();

        let all = store.secrets().unwrap();
        assert_eq!(all.len(), 1);
        let got = &all[0];
        assert_eq!(got.first_seen_ns, T0, "first_seen must be kept");
        assert_eq!(got.fingerprint, rotated.fingerprint);
        assert_eq!(got.inode, 4343);
        assert_eq!(got.size, 120);
        assert_eq!(got.mtime_ns, rotated.mtime_ns);

        store.mark_absent(p).unwrap();
        assert!(!store.secrets().unwrap()[0].present);
        store.mark_absent("/never/seen").unwrap();
        store.upsert_secret(&rotated).unwrap();
        assert!(store.secrets().unwrap()[0].present);

        // Unreadable file: no fingerprint.
        let mut unreadable = secret("/home/a/.netrc", T0);
        unreadable.fingerprint = None;
        store.upsert_secret(&unreadable).unwrap();
        assert_eq!(store.secrets().unwrap()[0], unreadable);

        // Full u64 range round-trips.
        let mut big = secret("/big", u64::MAX);
        big.dev = u64::MAX;
        big.inode = u64::MAX - 1;
        store.upsert_secret(&big).unwrap();
        assert_eq!(store.secrets().unwrap()[0], big);
    }

    #[test]
    fn record_read_counts_and_tracks_first_and_last() {
        let tmp = tempfile::tempdir().unwrap();
        let store = InventoryStore::open(&tmp.path().join(DB_FILE_NAME)).unwrap();
        let p = "/root/.aws/credentials";
        store.upsert_secret(&secret(p, T0)).unwrap();

        let a = reader("sha256:aa|cgroup:/a|container:abc123");
        let b = reader("sha256:bb|cgroup:/b");
        store.record_read(p, &a, T0 + 10 * NS).unwrap();
        store.record_read(p, &a, T0 + 30 * NS).unwrap();
        store.record_read(p, &a, T0 + 20 * NS).unwrap(); // late event
        store.record_read(p, &b, T0 + 5 * NS).unwrap();

        let items = store.items(T0 + 60 * NS).unwrap();
        assert_eq!(items.len(), 1);
        let readers = &items[0].readers;
        assert_eq!(readers.len(), 2);
        // Most recent read first.
        assert_eq!(readers[0].identity, a.identity);
        assert_eq!(readers[0].count, 3);
        assert_eq!(readers[0].first_read_ns, T0 + 10 * NS);
        assert_eq!(readers[0].last_read_ns, T0 + 30 * NS);
        assert_eq!(readers[0].pod.as_deref(), Some("default/web-0"));
        assert_eq!(readers[1].identity, b.identity);
        assert_eq!(readers[1].count, 1);
        assert_eq!(readers[1].first_read_ns, T0 + 5 * NS);
        assert_eq!(readers[1].last_read_ns, T0 + 5 * NS);

        // A later event without pod info keeps the known pod.
        let mut a2 = a.clone();
        a2.pod = None;
        store.record_read(p, &a2, T0 + 40 * NS).unwrap();
        let r = &store.items(T0).unwrap()[0].readers[0];
        assert_eq!(r.count, 4);
        assert_eq!(r.pod.as_deref(), Some("default/web-0"));
    }

    #[test]
    fn content_age_resets_only_when_the_fingerprint_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let store = InventoryStore::open(&tmp.path().join(DB_FILE_NAME)).unwrap();
        let p = "/root/.aws/credentials";
        // mtime (T0) older than first sight: the content dates from T0.
        store.upsert_secret(&secret(p, T0 + 50 * NS)).unwrap();
        let age = |store: &InventoryStore| store.content_ages().unwrap()[0].clone();
        assert_eq!(age(&store).content_since_ns, T0);
        store.mark_stale_reported(p, T0 + 60 * NS).unwrap();
        assert_eq!(age(&store).stale_reported_ns, Some(T0 + 60 * NS));

        // Touched (new mtime, same content), or unreadable: no reset.
        let mut touched = secret(p, T0 + 70 * NS);
        touched.mtime_ns = (T0 + 70 * NS).cast_signed();
        store.upsert_secret(&touched).unwrap();
        let mut unreadable = touched.clone();
        unreadable.fingerprint = None;
        store.upsert_secret(&unreadable).unwrap();
        assert_eq!(age(&store).content_since_ns, T0);
        assert_eq!(age(&store).stale_reported_ns, Some(T0 + 60 * NS));
        store.upsert_secret(&touched).unwrap();
        assert_eq!(age(&store).content_since_ns, T0);

        // Rotated: dates from when proctor saw the new content, report cleared.
        let mut rotated = secret(p, T0 + 90 * NS);
        rotated.fingerprint = Some(fingerprint(b"rotated"));
        store.upsert_secret(&rotated).unwrap();
        let got = age(&store);
        assert_eq!(got.content_since_ns, T0 + 90 * NS);
        assert_eq!(got.stale_reported_ns, None);
        assert_eq!(got.secret.first_seen_ns, T0 + 50 * NS);

        // Gone secrets are not judged.
        store.mark_absent(p).unwrap();
        assert!(store.content_ages().unwrap().is_empty());
    }

    #[test]
    fn an_unchanged_secret_is_not_written_again() {
        let tmp = tempfile::tempdir().unwrap();
        let store = InventoryStore::open(&tmp.path().join(DB_FILE_NAME)).unwrap();
        let rec = secret("/root/.aws/credentials", T0);
        store.upsert_secret(&rec).unwrap();
        let writes = store.conn.total_changes();
        let mut again = rec.clone();
        again.first_seen_ns += 5;
        store.upsert_secret(&again).unwrap();
        assert_eq!(store.conn.total_changes(), writes);
        // Gone, then back: written, and present again.
        store.mark_absent(&rec.path).unwrap();
        store.upsert_secret(&rec).unwrap();
        assert!(store.secrets().unwrap()[0].present);
        // Changed content: written.
        let mut rotated = rec.clone();
        rotated.mtime_ns += 1;
        let writes = store.conn.total_changes();
        store.upsert_secret(&rotated).unwrap();
        assert_eq!(store.conn.total_changes(), writes + 1);
        assert_eq!(store.secrets().unwrap()[0].mtime_ns, rotated.mtime_ns);
    }

    #[test]
    fn record_reads_merges_a_batch_and_skips_unknown_secrets() {
        let tmp = tempfile::tempdir().unwrap();
        let store = InventoryStore::open(&tmp.path().join(DB_FILE_NAME)).unwrap();
        let p = "/root/.aws/credentials";
        store.upsert_secret(&secret(p, T0)).unwrap();
        let a = reader("sha256:aa|cgroup:/a");
        store.record_read(p, &a, T0 + 50 * NS).unwrap();
        let mut batch = a.clone();
        (batch.count, batch.first_read_ns, batch.last_read_ns) = (7, T0 + 10 * NS, T0 + 90 * NS);
        let skipped = store
            .record_reads([(p, &batch), ("/never/upserted", &batch)])
            .unwrap();
        assert_eq!(skipped, 1);
        let r = &store.items(T0).unwrap()[0].readers[0];
        assert_eq!(r.count, 8);
        assert_eq!(
            (r.first_read_ns, r.last_read_ns),
            (T0 + 10 * NS, T0 + 90 * NS)
        );
    }

    #[test]
    fn record_read_for_unknown_path_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(DB_FILE_NAME);
        let store = InventoryStore::open(&path).unwrap();
        let err = store
            .record_read("/root/.ssh/id_ed25519", &reader("x"), T0)
            .unwrap_err();
        assert!(matches!(err, StoreError::UnknownSecret { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("/root/.ssh/id_ed25519"), "{msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("upsert_secret"), "{msg}");
    }

    #[test]
    fn raw_secret_never_reaches_the_database_file() {
        let raw = "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYzz-proctor-test";
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(DB_FILE_NAME);
        let files = |path: &Path| {
            ["", "-wal", "-shm"]
                .iter()
                .map(|suffix| PathBuf::from(format!("{}{suffix}", path.display())))
                .filter(|p| p.exists())
                .collect::<Vec<_>>()
        };
        let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
        let p = "/root/.aws/credentials";
        {
            let store = InventoryStore::open(&path).unwrap();
            let mut rec = secret(p, T0);
            rec.fingerprint = Some(fingerprint(raw.as_bytes()));
            store.upsert_secret(&rec).unwrap();
            store.record_read(p, &reader("id-a"), T0 + NS).unwrap();

            // A caller passing the raw value as "fingerprint" is refused and
            // the error does not echo it.
            let mut bad = secret("/root/.aws/other", T0);
            bad.fingerprint = Some(raw.to_owned());
            let err = store.upsert_secret(&bad).unwrap_err();
            assert!(matches!(err, StoreError::InvalidFingerprint { .. }));
            assert!(!err.to_string().contains(raw));
            assert!(!format!("{err:?}").contains(raw));

            // While open: database and WAL.
            for f in files(&path) {
                let bytes = std::fs::read(&f).unwrap();
                assert!(
                    !contains(&bytes, raw.as_bytes()),
                    "{} holds the raw secret",
                    f.display()
                );
            }
        }
        // After close (WAL checkpointed into the main file).
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            contains(&bytes, p.as_bytes()),
            "sanity: the grep can see stored text"
        );
        assert!(contains(&bytes, fingerprint(raw.as_bytes()).as_bytes()));
        for f in files(&path) {
            let bytes = std::fs::read(&f).unwrap();
            assert!(!contains(&bytes, raw.as_bytes()), "{}", f.display());
        }
    }
}
