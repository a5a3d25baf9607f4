//! Errors of the inventory store: each names the file and says what to do.

use std::{
    io,
    path::{Path, PathBuf},
};

use rusqlite::ErrorCode;

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

pub(super) fn io_error(
    action: &'static str,
    path: &Path,
    err: io::Error,
    writing: bool,
) -> StoreError {
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

pub(super) fn sqlite_error(action: &'static str, path: &Path, err: rusqlite::Error) -> StoreError {
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

impl StoreError {
    /// Another connection held the lock past [`super::BUSY_TIMEOUT`]: the
    /// same write may succeed later, unlike every other error here.
    pub fn is_busy(&self) -> bool {
        match self {
            StoreError::Sqlite { err, .. } => matches!(
                err.sqlite_error_code(),
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
            ),
            _ => false,
        }
    }
}
