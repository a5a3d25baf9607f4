//! The inventory's rows: a secret file, one identity that read it, and the
//! two together as `proctor inventory` shows them.

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
    pub(super) fn same_row(&self, o: &SecretRecord) -> bool {
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
    /// The reader's real uid at its last read; `None` in rows from before
    /// the inventory recorded it.
    pub uid: Option<u32>,
    pub count: u64,
    pub first_read_ns: u64,
    pub last_read_ns: u64,
}

/// A secret with its age and its readers, as `proctor inventory` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InventoryItem {
    #[serde(flatten)]
    pub secret: SecretRecord,
    /// Seconds since the content got its current fingerprint as proctor
    /// observed it (at first discovery, since the file's mtime if older);
    /// `None` for rows written before rotation age was recorded.
    pub rotation_age_seconds: Option<u64>,
    /// Epoch ns the current content dates from (see `rotation_age_seconds`).
    pub content_since_ns: u64,
    /// Readers, most recent read first.
    pub readers: Vec<ReaderRecord>,
}

/// Who a secret reached: every workload that read it, and where the
/// workloads carrying it connected afterwards (`proctor inventory --secret`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct BlastRadius {
    #[serde(flatten)]
    pub item: InventoryItem,
    /// Most recent first.
    pub destinations: Vec<super::DestinationRecord>,
}

/// A present secret as the rotation check judges it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContentAge {
    pub secret: SecretRecord,
    /// Epoch ns the current content dates from.
    pub content_since_ns: u64,
    /// Epoch ns secret-stale last fired for this content.
    pub stale_reported_ns: Option<u64>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::inventory::test_records::fingerprint;

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
}
