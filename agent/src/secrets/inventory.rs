//! Embedded state store for the static-secret inventory.
//!
//! The inventory answers "where are the static secrets on this node, how old
//! are they, and which workload identities actually read them?". It must
//! survive agent restarts, so it lives in a SQLite file under the agent's
//! `state_dir` (see [`default_path`]).
//!
//! Two processes use the file at once: `proctor run` writes it on the event
//! path while `proctor inventory` reads it. SQLite in WAL mode gives the
//! reader a consistent snapshot of the last committed writes without blocking
//! the writer, which is why this store is SQLite and not an embedded KV store
//! that takes an exclusive file lock.
//!
//! Raw secret values are never stored: a secret is named by its path, catalog
//! id and a keyed fingerprint (`"hmac-sha256:<hex>"`). [`InventoryStore::upsert_secret`]
//! refuses anything that does not look like such a fingerprint, so a caller
//! that passes the content by mistake gets an error instead of a database
//! holding the secret.
//!
//! Writes are cheap: one prepared (cached) statement per call, autocommit in
//! WAL mode with `synchronous=NORMAL` (no fsync per commit; a power loss can
//! drop the last few commits but never corrupts the file).
//!
//! [`InventoryStore`] is `Send` but not `Sync` (it owns a
//! `rusqlite::Connection`): give it to one task/thread, or wrap it in a mutex.

use std::fmt::Write as _;
use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use rusqlite::{params, Connection, ErrorCode, OpenFlags, Row, TransactionBehavior};

/// File name of the inventory inside the agent's `state_dir`.
pub const DB_FILE_NAME: &str = "inventory.db";

/// Schema version written to SQLite's `user_version`. Bump it and append a
/// step to [`MIGRATIONS`] to change the schema.
pub const SCHEMA_VERSION: i64 = 1;

/// How long a statement waits for a lock held by another connection before
/// giving up with a "busy" error.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Migration steps: `MIGRATIONS[i]` takes the schema from version `i` to
/// `i + 1`. Each runs in one immediate transaction together with the
/// `user_version` update.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: initial schema.
    "CREATE TABLE secrets (
        path          TEXT PRIMARY KEY NOT NULL,
        catalog_id    TEXT NOT NULL,
        kind          TEXT NOT NULL,
        fingerprint   TEXT,
        dev           INTEGER NOT NULL,
        inode         INTEGER NOT NULL,
        size          INTEGER NOT NULL,
        mtime_ns      INTEGER NOT NULL,
        first_seen_ns INTEGER NOT NULL,
        present       INTEGER NOT NULL
    );
    CREATE INDEX secrets_by_fingerprint ON secrets(fingerprint) WHERE fingerprint IS NOT NULL;
    CREATE TABLE readers (
        path          TEXT NOT NULL REFERENCES secrets(path) ON DELETE CASCADE,
        identity      TEXT NOT NULL,
        exe_path      TEXT NOT NULL,
        exe_sha256    TEXT,
        container_id  TEXT,
        pod           TEXT,
        count         INTEGER NOT NULL,
        first_read_ns INTEGER NOT NULL,
        last_read_ns  INTEGER NOT NULL,
        PRIMARY KEY (path, identity)
    ) WITHOUT ROWID;",
];

const SECRET_COLUMNS: &str =
    "path, catalog_id, kind, fingerprint, dev, inode, size, mtime_ns, first_seen_ns, present";
const READER_COLUMNS: &str = "identity, exe_path, exe_sha256, container_id, pod, count, \
                              first_read_ns, last_read_ns";

/// Where the inventory lives inside a `state_dir`.
pub fn default_path(state_dir: &Path) -> PathBuf {
    state_dir.join(DB_FILE_NAME)
}

/// A static secret file known to the inventory.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct SecretRecord {
    /// Absolute path where the secret file lives.
    pub path: String,
    /// Catalog id, e.g. `"aws-cli-credentials"`.
    pub catalog_id: String,
    /// Kind, e.g. `"cloud_credentials"`.
    pub kind: String,
    /// Keyed fingerprint of the content (`"hmac-sha256:<hex>"`); `None` if
    /// the file could not be read.
    pub fingerprint: Option<String>,
    pub dev: u64,
    pub inode: u64,
    pub size: u64,
    /// Last content change; rotation age is computed from it.
    pub mtime_ns: i64,
    /// Epoch ns when proctor first saw this path (kept across upserts).
    pub first_seen_ns: u64,
    /// False once the file is gone.
    pub present: bool,
}

impl SecretRecord {
    /// Equal in every field an upsert replaces (not `first_seen_ns`).
    fn same_row(&self, o: &SecretRecord) -> bool {
        self.path == o.path
            && self.catalog_id == o.catalog_id
            && self.kind == o.kind
            && self.fingerprint == o.fingerprint
            && (self.dev, self.inode, self.size, self.mtime_ns, self.present)
                == (o.dev, o.inode, o.size, o.mtime_ns, o.present)
    }
}

/// One workload identity that read a secret.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct ReaderRecord {
    /// Stable identity key, e.g. `"sha256:<exe hash>|cgroup:/x|container:abc"`.
    pub identity: String,
    pub exe_path: String,
    pub exe_sha256: Option<String>,
    pub container_id: Option<String>,
    /// `"ns/name"` when known.
    pub pod: Option<String>,
    pub count: u64,
    pub first_read_ns: u64,
    pub last_read_ns: u64,
}

/// A secret with its age and its readers, as `proctor inventory` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InventoryItem {
    #[serde(flatten)]
    pub secret: SecretRecord,
    /// Seconds since the content last changed; `None` when mtime is unknown.
    pub rotation_age_seconds: Option<u64>,
    /// Readers, most recent read first.
    pub readers: Vec<ReaderRecord>,
}

/// Errors of the inventory store. Every message names the file and says what
/// to do about it. Messages embed the underlying error text, so they are
/// complete on their own.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no inventory at {}: has `proctor run` started with this state_dir?", path.display())]
    Missing { path: PathBuf },

    #[error("cannot {action} {}: {err}; {hint}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        err: io::Error,
        hint: &'static str,
    },

    #[error("inventory {}: {action} failed: {err}; {hint}", path.display())]
    Sqlite {
        action: &'static str,
        path: PathBuf,
        err: Box<rusqlite::Error>,
        hint: &'static str,
    },

    #[error(
        "inventory {} has schema version {found} but this proctor knows only up to {supported}: \
         upgrade proctor, or point state_dir at another directory",
        path.display()
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    #[error(
        "inventory {} has schema version {found}, this proctor reads version {supported}: \
         start `proctor run` with this state_dir once so that it creates or migrates the inventory",
        path.display()
    )]
    NotMigrated {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    #[error(
        "inventory {}: no secret is recorded at {secret}: call upsert_secret before record_read",
        path.display()
    )]
    UnknownSecret { path: PathBuf, secret: String },

    #[error(
        "inventory {}: refusing to store the fingerprint given for {secret}: it is not of the form \
         ALG:HEX (value withheld; raw secret values must never be stored, pass the keyed fingerprint)",
        path.display()
    )]
    InvalidFingerprint { path: PathBuf, secret: String },

    #[error("inventory {}: {reason}", path.display())]
    Unusable { path: PathBuf, reason: String },

    #[error(
        "inventory {} is open read-only (as `proctor inventory` opens it): only `proctor run` writes it",
        path.display()
    )]
    ReadOnlyHandle { path: PathBuf },
}

/// True for strings of the form `alg:hex` (`alg` lowercase letters, digits
/// and dashes; `hex` 16 to 128 lowercase hex digits), e.g.
/// `"hmac-sha256:00112233445566778899aabbccddeeff"`.
pub fn is_valid_fingerprint(fp: &str) -> bool {
    let Some((alg, hex)) = fp.split_once(':') else {
        return false;
    };
    !alg.is_empty()
        && alg.len() <= 32
        && alg
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && (16..=128).contains(&hex.len())
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The inventory database. See the module docs.
pub struct InventoryStore {
    conn: Connection,
    path: PathBuf,
    read_only: bool,
    /// Secrets as this connection last wrote them: reading the same
    /// unchanged file again (the common case) then costs no write.
    written: std::cell::RefCell<std::collections::HashMap<String, SecretRecord>>,
}

impl std::fmt::Debug for InventoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InventoryStore")
            .field("path", &self.path)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl InventoryStore {
    /// Opens (creating if needed) the inventory for writing, as `proctor run`
    /// does. Creates missing parent directories with mode 0700 and the file
    /// with mode 0600 (an existing file readable by group/others is tightened
    /// to 0600), switches to WAL mode and creates or migrates the schema.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|err| io_error("create the state directory", dir, err, true))?;
        }
        // Create the file ourselves so that it never exists with umask
        // permissions; SQLite gives its -wal and -shm files the same mode.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|err| io_error("open the inventory", path, err, true))?;
        let meta = file
            .metadata()
            .map_err(|err| io_error("stat the inventory", path, err, true))?;
        if meta.permissions().mode() & 0o077 != 0 {
            file.set_permissions(Permissions::from_mode(0o600))
                .map_err(|err| io_error("restrict to mode 0600 the inventory", path, err, true))?;
        }
        drop(file);

        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|err| sqlite_error("open", path, err))?;
        let mut store = InventoryStore {
            conn,
            path: path.to_path_buf(),
            read_only: false,
            written: Default::default(),
        };
        store.configure_writer()?;
        store.migrate()?;
        Ok(store)
    }

    /// Opens an existing inventory read-only, as `proctor inventory` does
    /// while `proctor run` keeps writing it. Sees every committed write.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        // Probe with a plain open first: it tells "missing" from "not allowed"
        // far more clearly than SQLite's "unable to open database file".
        match std::fs::File::open(path) {
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::Missing {
                    path: path.to_path_buf(),
                });
            }
            Err(err) => return Err(io_error("read the inventory", path, err, false)),
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|err| sqlite_error("open read-only", path, err))?;
        let store = InventoryStore {
            conn,
            path: path.to_path_buf(),
            read_only: true,
            written: Default::default(),
        };
        store
            .conn
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|err| store.sqlite_err("set busy timeout", err))?;
        let version = store.user_version()?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: store.path,
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version < SCHEMA_VERSION {
            return Err(StoreError::NotMigrated {
                path: store.path,
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(store)
    }

    /// The file this store was opened on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this handle was opened with [`InventoryStore::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    fn configure_writer(&self) -> Result<(), StoreError> {
        self.conn
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|err| self.sqlite_err("set busy timeout", err))?;
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(|err| self.sqlite_err("switch to WAL mode", err))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Unusable {
                path: self.path.clone(),
                reason: format!(
                    "SQLite cannot use WAL mode here (it stayed in journal mode {mode:?}), so \
                     `proctor inventory` could not read while the agent writes: the filesystem \
                     must support shared memory and locking (network filesystems usually do \
                     not); point state_dir at a local disk"
                ),
            });
        }
        self.conn
            .execute_batch(
                "PRAGMA synchronous = NORMAL;
                 PRAGMA foreign_keys = ON;
                 PRAGMA journal_size_limit = 4194304;",
            )
            .map_err(|err| self.sqlite_err("set pragmas", err))
    }

    fn user_version(&self) -> Result<i64, StoreError> {
        self.conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|err| self.sqlite_err("read the schema version", err))
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let version = self.user_version()?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: self.path.clone(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version == SCHEMA_VERSION {
            return Ok(());
        }
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|err| sqlite_error("start the schema migration", &path, err))?;
        // Read again under the write lock: another writer may have migrated
        // between our first look and the lock.
        let mut current: i64 = tx
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|err| sqlite_error("read the schema version", &path, err))?;
        if current > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path,
                found: current,
                supported: SCHEMA_VERSION,
            });
        }
        while current < SCHEMA_VERSION {
            let step = usize::try_from(current).map_err(|_| StoreError::Unusable {
                path: path.clone(),
                reason: format!(
                    "schema version {current} is invalid: move the file aside and `proctor run` \
                     will start a new inventory"
                ),
            })?;
            tx.execute_batch(MIGRATIONS[step])
                .map_err(|err| sqlite_error("migrate the schema", &path, err))?;
            current += 1;
            tx.pragma_update(None, "user_version", current)
                .map_err(|err| sqlite_error("record the schema version", &path, err))?;
        }
        tx.commit()
            .map_err(|err| sqlite_error("commit the schema migration", &path, err))
    }

    fn ensure_writable(&self) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnlyHandle {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    fn sqlite_err(&self, action: &'static str, err: rusqlite::Error) -> StoreError {
        sqlite_error(action, &self.path, err)
    }

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
                                      mtime_ns, first_seen_ns, present)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT(path) DO UPDATE SET
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
        ])
        .map_err(|err| self.sqlite_err("upsert_secret", err))?;
        self.written
            .borrow_mut()
            .insert(rec.path.clone(), rec.clone());
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
                                      count, first_read_ns, last_read_ns)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT(path, identity) DO UPDATE SET
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
        let secrets = self.secrets()?;
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
        for secret in secrets {
            while readers.peek().is_some_and(|(p, _)| *p < secret.path) {
                readers.next(); // cannot happen with the foreign key; be safe
            }
            let mut mine = Vec::new();
            while let Some((_, r)) = readers.next_if(|(p, _)| *p == secret.path) {
                mine.push(r);
            }
            items.push(InventoryItem {
                rotation_age_seconds: rotation_age_seconds(secret.mtime_ns, now_ns),
                secret,
                readers: mine,
            });
        }
        Ok(items)
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
                        r.count, r.first_read_ns, r.last_read_ns
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
    })
}

/// Seconds from `mtime_ns` to `now_ns`; `None` when mtime is unknown (<= 0),
/// 0 when mtime lies in the future (clock skew).
fn rotation_age_seconds(mtime_ns: i64, now_ns: u64) -> Option<u64> {
    if mtime_ns <= 0 {
        return None;
    }
    let age_ns = i128::from(now_ns) - i128::from(mtime_ns);
    Some(u64::try_from(age_ns.max(0) / 1_000_000_000).unwrap_or(u64::MAX))
}

fn io_error(action: &'static str, path: &Path, err: io::Error, writing: bool) -> StoreError {
    let hint = match err.kind() {
        io::ErrorKind::PermissionDenied if writing => {
            "this user may not write there: run `proctor run` as root, or point state_dir at a \
             directory this user owns"
        }
        io::ErrorKind::PermissionDenied => {
            "the inventory is readable only by the agent's user (mode 0600): run `proctor \
             inventory` as root or as that user"
        }
        io::ErrorKind::ReadOnlyFilesystem => {
            "the filesystem is read-only: point state_dir at a writable directory (e.g. \
             /var/lib/proctor, or a hostPath volume on Kubernetes)"
        }
        io::ErrorKind::NotADirectory => {
            "a component of the path is a file, not a directory: fix state_dir"
        }
        io::ErrorKind::IsADirectory => {
            "the inventory path is a directory: remove it or choose another state_dir"
        }
        io::ErrorKind::StorageFull => "the filesystem is full: free some space",
        io::ErrorKind::NotFound => "a parent directory does not exist: fix state_dir",
        _ => "check state_dir, its permissions and the filesystem it lives on",
    };
    StoreError::Io {
        action,
        path: path.to_path_buf(),
        err,
        hint,
    }
}

fn sqlite_error(action: &'static str, path: &Path, err: rusqlite::Error) -> StoreError {
    let hint = match err.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            "the database stayed locked for 5 s: is another proctor running with the same \
             state_dir?"
        }
        Some(ErrorCode::ReadOnly) => {
            "the file or its filesystem is read-only: fix its permissions or point state_dir at \
             a writable directory"
        }
        Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
            "SQLite cannot open the file or its -wal/-shm companions: check that the directory \
             is writable by this user (or run as root) and that the filesystem is local"
        }
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            "the file is not a usable proctor inventory: move it aside and `proctor run` will \
             start a new one"
        }
        Some(ErrorCode::DiskFull) => "the filesystem is full: free some space",
        Some(ErrorCode::SystemIoFailure | ErrorCode::FileLockingProtocolFailed) => {
            "I/O or locking error from the filesystem: keep state_dir on a local disk (network \
             filesystems cannot hold a WAL database)"
        }
        _ => "check the file and the filesystem it lives on",
    };
    StoreError::Sqlite {
        action,
        path: path.to_path_buf(),
        err: Box::new(err),
        hint,
    }
}

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
fn format_time_ns(ns: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
}

/// Escapes control characters so that a hostile path or identity cannot
/// rewrite the operator's terminal or fake table lines.
fn clean(s: &str) -> String {
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
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    const NS: u64 = 1_000_000_000;
    const T0: u64 = 1_700_000_000 * NS;

    fn fingerprint(content: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"test-cluster-key").unwrap();
        mac.update(content);
        let digest = mac.finalize().into_bytes();
        format!("hmac-sha256:{}", hex::encode(&digest[..16]))
    }

    fn secret(path: &str, first_seen_ns: u64) -> SecretRecord {
        SecretRecord {
            path: path.to_owned(),
            catalog_id: "aws-cli-credentials".to_owned(),
            kind: "cloud_credentials".to_owned(),
            fingerprint: Some(fingerprint(b"content")),
            dev: 0x0803,
            inode: 4242,
            size: 116,
            mtime_ns: T0.cast_signed(),
            first_seen_ns,
            present: true,
        }
    }

    fn reader(identity: &str) -> ReaderRecord {
        ReaderRecord {
            identity: identity.to_owned(),
            exe_path: "/usr/bin/aws".to_owned(),
            exe_sha256: Some("ab".repeat(32)),
            container_id: Some("abc123".to_owned()),
            pod: Some("default/web-0".to_owned()),
            count: 999, // ignored by record_read
            first_read_ns: 0,
            last_read_ns: 0,
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn open_creates_dir_0700_and_file_0600() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state").join("proctor");
        let path = default_path(&dir);
        let store = InventoryStore::open(&path).unwrap();
        assert!(!store.is_read_only());
        assert_eq!(store.path(), path);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&path), 0o600);
        store
            .upsert_secret(&secret("/root/.aws/credentials", T0))
            .unwrap();
        // SQLite gives the WAL the database file's mode.
        let wal = PathBuf::from(format!("{}-wal", path.display()));
        assert_eq!(mode(&wal), 0o600);
        let version: i64 = store
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let jm: String = store
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(jm, "wal");
    }

    #[test]
    fn open_tightens_existing_loose_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(DB_FILE_NAME);
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        InventoryStore::open(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
    }

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
    fn items_compute_rotation_age() {
        let tmp = tempfile::tempdir().unwrap();
        let store = InventoryStore::open(&tmp.path().join(DB_FILE_NAME)).unwrap();
        store.upsert_secret(&secret("/a", T0)).unwrap();
        let mut no_mtime = secret("/b", T0);
        no_mtime.mtime_ns = 0;
        store.upsert_secret(&no_mtime).unwrap();
        let mut future = secret("/c", T0);
        future.mtime_ns = (T0 + 100 * NS).cast_signed();
        store.upsert_secret(&future).unwrap();

        let age = 3 * 86_400 + 4 * 3_600 + 59;
        let items = store.items(T0 + age * NS + 123).unwrap();
        let paths: Vec<_> = items.iter().map(|i| i.secret.path.as_str()).collect();
        assert_eq!(paths, ["/a", "/b", "/c"]);
        assert_eq!(items[0].rotation_age_seconds, Some(age));
        assert_eq!(items[1].rotation_age_seconds, None);
        assert_eq!(items[2].rotation_age_seconds, Some(age - 100));
        assert_eq!(store.items(T0).unwrap()[2].rotation_age_seconds, Some(0));
        assert!(items.iter().all(|i| i.readers.is_empty()));

        // JSON: secret fields flattened next to age and readers.
        let json = serde_json::to_value(&items[0]).unwrap();
        assert_eq!(json["path"], "/a");
        assert_eq!(json["catalog_id"], "aws-cli-credentials");
        assert_eq!(json["rotation_age_seconds"], age);
        assert!(json["readers"].as_array().unwrap().is_empty());
    }

    #[test]
    fn survives_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("state").join(DB_FILE_NAME);
        let p = "/root/.aws/credentials";
        let id = "sha256:aa|cgroup:/a";
        {
            let store = InventoryStore::open(&path).unwrap();
            store.upsert_secret(&secret(p, T0)).unwrap();
            store.record_read(p, &reader(id), T0 + NS).unwrap();
        }
        // "Restart": a new writer sees the old rows and keeps counting.
        {
            let store = InventoryStore::open(&path).unwrap();
            store.upsert_secret(&secret(p, T0 + 999 * NS)).unwrap();
            store.record_read(p, &reader(id), T0 + 2 * NS).unwrap();
            let items = store.items(T0 + 10 * NS).unwrap();
            assert_eq!(items[0].secret.first_seen_ns, T0);
            assert_eq!(items[0].readers[0].count, 2);
            assert_eq!(items[0].readers[0].first_read_ns, T0 + NS);
        }
        let ro = InventoryStore::open_read_only(&path).unwrap();
        assert_eq!(ro.items(T0).unwrap()[0].readers[0].count, 2);
    }

    #[test]
    fn read_only_handle_sees_writer_commits() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(DB_FILE_NAME);
        let writer = InventoryStore::open(&path).unwrap();
        let p = "/root/.aws/credentials";
        writer.upsert_secret(&secret(p, T0)).unwrap();
        writer.record_read(p, &reader("id-a"), T0 + NS).unwrap();

        // `proctor inventory` while `proctor run` holds the file open.
        let reader_handle = InventoryStore::open_read_only(&path).unwrap();
        assert!(reader_handle.is_read_only());
        let items = reader_handle.items(T0 + 5 * NS).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].readers[0].count, 1);

        // Later commits are visible to the same read-only handle.
        writer.upsert_secret(&secret("/home/u/.netrc", T0)).unwrap();
        writer.record_read(p, &reader("id-a"), T0 + 2 * NS).unwrap();
        let items = reader_handle.items(T0 + 5 * NS).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].readers[0].count, 2);

        // The read-only handle refuses writes with a clear error.
        let err = reader_handle.upsert_secret(&secret("/x", T0)).unwrap_err();
        assert!(matches!(err, StoreError::ReadOnlyHandle { .. }), "{err}");
        assert!(err.to_string().contains(&path.display().to_string()));
        // And the writer keeps writing while the reader is open.
        writer.record_read(p, &reader("id-b"), T0 + 3 * NS).unwrap();
    }

    /// Set in the child process of `read_only_process_sees_running_writer`.
    const CHILD_ENV: &str = "PROCTOR_INVENTORY_STORE_TEST_CHILD";

    /// Child half of `read_only_process_sees_running_writer`: a no-op unless
    /// the parent test started this binary with `CHILD_ENV` set.
    #[test]
    fn child_read_only_probe() {
        let Some(path) = std::env::var_os(CHILD_ENV) else {
            return;
        };
        let store = InventoryStore::open_read_only(Path::new(&path)).unwrap();
        let items = store.items(T0).unwrap();
        // The harness prints the test name on the same line first.
        println!("CHILD-RESULT {}", serde_json::to_string(&items).unwrap());
    }

    #[test]
    fn read_only_process_sees_running_writer() {
        // A real second process, as `proctor inventory` is to `proctor run`.
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(DB_FILE_NAME);
        let writer = InventoryStore::open(&path).unwrap();
        let p = "/root/.aws/credentials";
        writer.upsert_secret(&secret(p, T0)).unwrap();
        writer.record_read(p, &reader("id-a"), T0 + NS).unwrap();
        writer.record_read(p, &reader("id-a"), T0 + 2 * NS).unwrap();

        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "secrets::inventory::tests::child_read_only_probe",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "child failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json = stdout
            .lines()
            .find_map(|l| l.split_once("CHILD-RESULT ").map(|(_, json)| json))
            .unwrap_or_else(|| panic!("child printed no result: {stdout}"));
        let items: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(items[0]["path"], p);
        assert_eq!(items[0]["readers"][0]["identity"], "id-a");
        assert_eq!(items[0]["readers"][0]["count"], 2);
        // The writer is unaffected and keeps writing.
        writer.record_read(p, &reader("id-a"), T0 + 3 * NS).unwrap();
    }

    #[test]
    fn open_read_only_missing_file_says_so() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(DB_FILE_NAME);
        let err = InventoryStore::open_read_only(&path).unwrap_err();
        assert!(matches!(err, StoreError::Missing { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "no inventory at {}: has `proctor run` started with this state_dir?",
                path.display()
            )
        );
        assert!(!path.exists(), "a read-only open must not create the file");
    }

    #[test]
    fn open_on_unwritable_path_names_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        // A regular file where the state directory should be: fails even as
        // root (permission bits would not stop root).
        let blocker = tmp.path().join("not-a-dir");
        std::fs::write(&blocker, b"x").unwrap();
        let path = blocker.join("state").join(DB_FILE_NAME);
        let err = InventoryStore::open(&path).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
        assert!(msg.contains(&blocker.display().to_string()), "{msg}");
        assert!(msg.contains("state_dir"), "{msg}");

        // The inventory path itself is a directory.
        let dir_path = tmp.path().join("dir.db");
        std::fs::create_dir(&dir_path).unwrap();
        let msg = InventoryStore::open(&dir_path).unwrap_err().to_string();
        assert!(msg.contains(&dir_path.display().to_string()), "{msg}");
        assert!(msg.contains("is a directory"), "{msg}");

        // Permission bits, where they apply (not as root).
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            let locked = tmp.path().join("locked");
            std::fs::create_dir(&locked).unwrap();
            std::fs::set_permissions(&locked, Permissions::from_mode(0o500)).unwrap();
            let path = locked.join(DB_FILE_NAME);
            let msg = InventoryStore::open(&path).unwrap_err().to_string();
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(msg.contains("run `proctor run` as root"), "{msg}");
        }
    }

    #[test]
    fn open_on_garbage_file_says_it_is_not_an_inventory() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(DB_FILE_NAME);
        std::fs::write(&path, vec![0x5au8; 8192]).unwrap();
        let err = InventoryStore::open(&path).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("move it aside"), "{msg}");
    }

    #[test]
    fn newer_schema_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(DB_FILE_NAME);
        {
            let store = InventoryStore::open(&path).unwrap();
            store
                .conn
                .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
                .unwrap();
        }
        let err = InventoryStore::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::NewerSchema { .. }), "{err:?}");
        assert!(err.to_string().contains("upgrade proctor"));
        let err = InventoryStore::open_read_only(&path).unwrap_err();
        assert!(matches!(err, StoreError::NewerSchema { .. }), "{err:?}");
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

    #[test]
    fn fingerprint_validation() {
        assert!(is_valid_fingerprint(&fingerprint(b"x")));
        assert!(is_valid_fingerprint("sha256:0123456789abcdef"));
        for bad in [
            "",
            "hmac-sha256:",
            ":0123456789abcdef",
            "hmac-sha256:0123", // too short
            "hmac-sha256:0123456789ABCDEF",
            "HMAC:0123456789abcdef",
            "AKIAIOSFODNN7EXAMPLE",
            "password:hunter2hunter2hunter2",
        ] {
            assert!(!is_valid_fingerprint(bad), "{bad:?}");
        }
    }

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
             \x20 fingerprint: -  age: unknown\n\
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
