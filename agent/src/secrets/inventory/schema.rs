//! Opening the inventory file: its permissions, WAL mode, schema version and
//! migrations, for the writing agent or a read-only `proctor inventory`.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::{
    errors::{io_error, sqlite_error},
    SecretRecord, StoreError,
};
use crate::private_files;

/// Whether this process may read `path`, asked without opening it.
fn readable(path: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a NUL-terminated path; faccessat only reads it.
    let rc = unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::R_OK, libc::AT_EACCESS) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// SQLite's file beside the database: `<path>-wal`, `<path>-shm`.
fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Schema version written to SQLite's `user_version`. Bump it and append a
/// step to [`MIGRATIONS`] to change the schema.
pub const SCHEMA_VERSION: i64 = 3;

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
    // 1 -> 2: rotation age. `content_since_ns` is when the content got its
    // current fingerprint as proctor observed it (at first discovery, the
    // file's mtime if older); `stale_reported_ns` when secret-stale last fired.
    "ALTER TABLE secrets ADD COLUMN content_since_ns INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE secrets ADD COLUMN stale_reported_ns INTEGER;
    UPDATE secrets SET content_since_ns =
        CASE WHEN mtime_ns > 0 AND mtime_ns < first_seen_ns THEN mtime_ns ELSE first_seen_ns END;",
    // 2 -> 3: blast radius: the reader's user, and where carriers connected.
    "ALTER TABLE readers ADD COLUMN uid INTEGER;
    CREATE TABLE destinations (
        path          TEXT NOT NULL REFERENCES secrets(path) ON DELETE CASCADE,
        identity      TEXT NOT NULL,
        destination   TEXT NOT NULL,
        count         INTEGER NOT NULL,
        first_ns      INTEGER NOT NULL,
        last_ns       INTEGER NOT NULL,
        PRIMARY KEY (path, identity, destination)
    ) WITHOUT ROWID;",
];

/// The inventory database. See the module docs.
pub struct InventoryStore {
    pub(super) conn: Connection,
    pub(super) path: PathBuf,
    pub(super) read_only: bool,
    /// Secrets as this connection last wrote them: reading the same
    /// unchanged file again (the common case) then costs no write.
    pub(super) written: std::cell::RefCell<std::collections::HashMap<String, SecretRecord>>,
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
            private_files::private_dir(dir)
                .map_err(|err| io_error("create the state directory", dir, err, true))?;
        }
        // Create the file ourselves so that it never exists with umask
        // permissions; SQLite gives new -wal and -shm files the same mode.
        // Those left by an older agent are tightened like the database.
        for (p, create) in [
            (path.to_path_buf(), true),
            (sidecar(path, "-wal"), false),
            (sidecar(path, "-shm"), false),
        ] {
            let opened = private_files::open_private(
                &p,
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(create)
                    .truncate(false),
            );
            match opened {
                Ok(_) => {}
                Err(err) if !create && err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(io_error("open the inventory", &p, err, true)),
            }
        }

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

    /// A second writing connection to the file this one has open (the
    /// agent's writer thread). SQLite alone opens the file: a descriptor of
    /// it opened and closed outside SQLite (as `open` does to create and
    /// tighten it) drops every POSIX lock this process holds on it, those
    /// of the open connection included, and then another process closing
    /// its connection (an administrator's `sqlite3`) takes itself for the
    /// last one and deletes the WAL the agent is still writing.
    pub fn open_another(&self) -> Result<Self, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags)
            .map_err(|err| self.sqlite_err("open a second connection", err))?;
        let store = InventoryStore {
            conn,
            path: self.path.clone(),
            read_only: false,
            written: Default::default(),
        };
        store.configure_writer()?;
        Ok(store)
    }

    /// Opens an existing inventory read-only, as `proctor inventory` does
    /// while `proctor run` keeps writing it (and the agent's API, in its
    /// process). Sees every committed write.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        // Probe first: it tells "missing" from "not allowed" far more clearly
        // than SQLite's "unable to open database file". Without a descriptor
        // (see `open_another`: the agent's API opens this in the agent).
        if let Err(err) = readable(path) {
            if err.kind() == io::ErrorKind::NotFound {
                return Err(StoreError::Missing {
                    path: path.to_path_buf(),
                });
            }
            return Err(io_error("read the inventory", path, err, false));
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

    pub(super) fn ensure_writable(&self) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnlyHandle {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    pub(super) fn sqlite_err(&self, action: &'static str, err: rusqlite::Error) -> StoreError {
        sqlite_error(action, &self.path, err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{fs::Permissions, os::unix::fs::PermissionsExt};

    use crate::secrets::inventory::{
        default_path,
        test_records::{reader, secret, NS, T0},
        DB_FILE_NAME,
    };

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// Another process opens and closes a connection (what an
    /// administrator's `sqlite3` does): the WAL stays, because this process
    /// still holds its locks after opening a second connection and a
    /// read-only one.
    #[test]
    fn a_second_and_a_read_only_connection_keep_the_wal_locked_against_other_processes() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(DB_FILE_NAME);
        let store = InventoryStore::open(&path).unwrap();
        store
            .upsert_secret(&secret("/root/.aws/credentials", T0))
            .unwrap();
        let writer = store.open_another().unwrap();
        writer.mark_absent("/root/.aws/credentials").unwrap();
        drop(InventoryStore::open_read_only(&path).unwrap());
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.execute('select count(*) from secrets').fetchone()\nc.close()",
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            sidecar(&path, "-wal").exists(),
            "another process deleted the WAL this one writes"
        );
        writer.upsert_secret(&secret("/root/.netrc", T0)).unwrap();
        let ro = InventoryStore::open_read_only(&path).unwrap();
        assert_eq!(
            ro.secrets().unwrap().len(),
            2,
            "the second write is visible"
        );
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
        let wal = sidecar(&path, "-wal");
        std::fs::write(&wal, b"").unwrap();
        std::fs::set_permissions(&wal, Permissions::from_mode(0o644)).unwrap();
        // Held open: closing the last connection checkpoints and removes the WAL.
        let _store = InventoryStore::open(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&wal), 0o600);
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
    fn a_version_1_inventory_is_migrated_with_its_rows_dated() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(DB_FILE_NAME);
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute(
                "INSERT INTO secrets VALUES ('/a', 'pgpass', 'database_credentials', NULL,
                                             1, 2, 3, ?1, ?2, 1)",
                rusqlite::params![(T0 - 50 * NS).cast_signed(), (T0).cast_signed()],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO readers VALUES ('/a', 'id', '/bin/cat', NULL, NULL, NULL, 1, ?1, ?1)",
                [T0.cast_signed()],
            )
            .unwrap();
        }
        let store = InventoryStore::open(&path).unwrap();
        assert_eq!(store.user_version().unwrap(), SCHEMA_VERSION);
        let items = store.items(T0 + 10 * NS).unwrap();
        // Dated from its mtime, older than first sight; the old reader has no uid.
        assert_eq!(items[0].content_since_ns, T0 - 50 * NS);
        assert_eq!(items[0].rotation_age_seconds, Some(60));
        assert_eq!(items[0].readers[0].uid, None);
        assert!(store.destinations_of("/a").unwrap().is_empty());
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
                "secrets::inventory::schema::tests::child_read_only_probe",
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
}
