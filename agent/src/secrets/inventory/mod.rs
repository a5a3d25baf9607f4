//! The static-secret inventory: an embedded SQLite store of where the secrets
//! are, how old they are and who reads them.
//!
//! The inventory answers "where are the static secrets on this node, how old
//! are they, and which workload identities actually read them?". It must
//! survive agent restarts, so it lives in a SQLite file under the agent's
//! `state_dir` (see [`default_path`]).
//!
//! Two processes use the file at once: `proctor run` writes it (from a
//! thread of its own, `writer`, so that a locked file or a stalled disk
//! never holds up events) while `proctor inventory` reads it. SQLite in WAL mode gives the
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
//!
//! The files beside this one: `records` (what a row is), `errors` (what can go
//! wrong, with the fix), `schema` (opening the file: permissions, WAL,
//! migrations), `writes`, `queries`, `destinations` (where secret
//! carriers connected) and `writer` (the agent's thread that writes).

mod destinations;
mod errors;
mod migration;
mod queries;
mod records;
mod schema;
mod writer;
mod writes;

#[cfg(test)]
pub(crate) mod test_records;

use std::path::{Path, PathBuf};

pub use destinations::{DestinationBatch, DestinationRecord, PendingDestinations};
pub use errors::StoreError;
pub use migration::{MigrationPlan, PlannedSecret, PlannedWorkload, Unidentified};
pub use records::{
    is_valid_fingerprint, BlastRadius, ContentAge, InventoryItem, ReaderRecord, SecretRecord,
};
pub use schema::{InventoryStore, BUSY_TIMEOUT, SCHEMA_VERSION};
pub use writer::{InventoryWriter, PendingReads, Write};

/// File name of the inventory inside the agent's `state_dir`.
pub const DB_FILE_NAME: &str = "inventory.db";

/// Where the inventory lives inside a `state_dir`.
pub fn default_path(state_dir: &Path) -> PathBuf {
    state_dir.join(DB_FILE_NAME)
}
