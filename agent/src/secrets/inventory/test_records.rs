//! Inventory rows for unit tests: a secret, a reader, a fingerprint.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{ReaderRecord, SecretRecord};

pub const NS: u64 = 1_000_000_000;
pub const T0: u64 = 1_700_000_000 * NS;

pub fn fingerprint(content: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(b"test-cluster-key").unwrap();
    mac.update(content);
    let digest = mac.finalize().into_bytes();
    format!("hmac-sha256:{}", hex::encode(&digest[..16]))
}

pub fn secret(path: &str, first_seen_ns: u64) -> SecretRecord {
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

/// The secret at `path` rewritten with other content at `at_ns` (rotated).
pub fn rotated(path: &str, at_ns: u64) -> SecretRecord {
    SecretRecord {
        fingerprint: Some(fingerprint(b"rotated")),
        mtime_ns: at_ns.cast_signed(),
        ..secret(path, at_ns)
    }
}

pub fn reader(identity: &str) -> ReaderRecord {
    ReaderRecord {
        identity: identity.to_owned(),
        exe_path: "/usr/bin/aws".to_owned(),
        exe_sha256: Some("ab".repeat(32)),
        container_id: Some("abc123".to_owned()),
        pod: Some("default/web-0".to_owned()),
        uid: Some(1000),
        count: 999, // ignored by record_read
        first_read_ns: 0,
        last_read_ns: 0,
    }
}
