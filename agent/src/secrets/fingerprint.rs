//! Keyed fingerprints of secrets.
//!
//! A secret is named outside the agent by a fingerprint, never by its value:
//! `hmac-sha256:` followed by the first 128 bits of HMAC-SHA256(key, secret)
//! in hex. The raw secret never leaves the agent.
//!
//! The key is per cluster: every node of a cluster loads the same 32-byte key,
//! so the same secret gets the same fingerprint on every node, which is what
//! lets `secret-replay` notice one credential used by workloads on different
//! nodes. A plain hash would do that too, but anyone holding the event stream
//! could then confirm a guessed password or token offline; with the key, a
//! fingerprint says nothing about the secret to someone without the key, and
//! fingerprints from different clusters cannot be correlated.
//!
//! 128 bits keep the identifier short in events while collisions stay out of
//! reach for any realistic number of secrets.

use std::{
    fmt, fs,
    io::{self, Write as _},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of every fingerprint; names the algorithm so that a later change
/// of scheme cannot be mistaken for a different secret.
pub const PREFIX: &str = "hmac-sha256:";

/// Hex characters of the MAC kept in a fingerprint (128 bits).
const FINGERPRINT_HEX_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "fingerprint key must be 64 hex characters (32 bytes), got {len} characters{detail}; \
         generate one with `head -c 32 /dev/urandom | xxd -p -c 64` and use the same key on every node"
    )]
    BadHex { len: usize, detail: &'static str },
    #[error(
        "fingerprint key file {path}: holds {len} bytes, expected 64 hex characters or 32 raw bytes; \
         write the cluster's key into it, or delete it to have a new random key created \
         (fingerprints then change and will not match other nodes)"
    )]
    BadFile { path: PathBuf, len: usize },
    #[error("fingerprint key file {path}: cannot {action}: {source}; check that the path is right and the agent may {action} it")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot get random bytes for a new fingerprint key: {0}")]
    Random(String),
}

/// Computes keyed fingerprints. Its `Debug` output never shows the key.
#[derive(Clone)]
pub struct Fingerprinter {
    key: [u8; 32],
}

impl fmt::Debug for Fingerprinter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fingerprinter")
            .field("key", &crate::redact::REDACTED)
            .finish()
    }
}

impl Fingerprinter {
    pub fn new(key: [u8; 32]) -> Fingerprinter {
        Fingerprinter { key }
    }

    /// A key given inline in the config: 64 hex characters, surrounding
    /// whitespace ignored. The error never repeats the input, which may be a
    /// slightly mistyped real key.
    pub fn from_hex(hex_key: &str) -> Result<Fingerprinter, KeyError> {
        parse_hex_key(hex_key).map(Fingerprinter::new)
    }

    /// Loads the key at `path`, or creates one there, and builds a fingerprinter with it.
    pub fn from_key_file(path: &Path) -> Result<Fingerprinter, KeyError> {
        Fingerprinter::load_or_create_key(path).map(Fingerprinter::new)
    }

    /// `hmac-sha256:` + the first 32 hex characters of HMAC-SHA256(key, secret).
    pub fn fingerprint(&self, secret: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC takes keys of any length");
        mac.update(secret);
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(PREFIX.len() + FINGERPRINT_HEX_LEN);
        out.push_str(PREFIX);
        out.push_str(&hex::encode(&digest[..FINGERPRINT_HEX_LEN / 2]));
        out
    }

    /// Reads the key file at `path` (64 hex characters, optionally followed by
    /// a newline, or exactly 32 raw bytes). When the file does not exist,
    /// creates it with a new random key: mode 0600, missing parent directories
    /// 0700, written as hex so it can be copied to the other nodes.
    ///
    /// Creation is race-free between agents sharing the path: the key is
    /// written to a temporary file and hard-linked into place, so a concurrent
    /// reader sees either no file or a complete one, and the loser of a race
    /// adopts the winner's key.
    pub fn load_or_create_key(path: &Path) -> Result<[u8; 32], KeyError> {
        let io_error = |action, source| KeyError::Io {
            path: path.to_path_buf(),
            action,
            source,
        };
        match fs::read(path) {
            Ok(bytes) => return parse_key_file(path, &bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("read", e)),
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| KeyError::Random(e.to_string()))?;

        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| io_error("create the parent directory of", e))?;
        let file_name = path.file_name().unwrap_or_default().to_string_lossy();
        let tmp = parent.join(format!(".{file_name}.tmp-{}", std::process::id()));
        let written = (|| -> io::Result<()> {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            // The umask may have narrowed the mode further; it cannot widen it,
            // but set it explicitly so the result does not depend on it.
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
            writeln!(file, "{}", hex::encode(key))?;
            file.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_error("write", e));
        }
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(key),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let bytes = fs::read(path).map_err(|e| io_error("read", e))?;
                parse_key_file(path, &bytes)
            }
            Err(e) => Err(io_error("create", e)),
        }
    }
}

fn parse_key_file(path: &Path, bytes: &[u8]) -> Result<[u8; 32], KeyError> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        if let Ok(key) = parse_hex_key(text) {
            return Ok(key);
        }
    }
    if let Ok(key) = <[u8; 32]>::try_from(bytes) {
        return Ok(key);
    }
    Err(KeyError::BadFile {
        path: path.to_path_buf(),
        len: bytes.len(),
    })
}

fn parse_hex_key(text: &str) -> Result<[u8; 32], KeyError> {
    let text = text.trim();
    if text.len() != 64 {
        return Err(KeyError::BadHex {
            len: text.chars().count(),
            detail: "",
        });
    }
    let mut key = [0u8; 32];
    hex::decode_to_slice(text, &mut key).map_err(|_| KeyError::BadHex {
        len: 64,
        detail: " with a character that is not a hex digit",
    })?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: [u8; 32] = [7; 32];
    const KEY_B: [u8; 32] = [8; 32];

    #[test]
    fn deterministic_and_keyed() {
        let a = Fingerprinter::new(KEY_A);
        let fp = a.fingerprint(b"example-secret-value");
        assert_eq!(fp, a.fingerprint(b"example-secret-value"));
        assert_eq!(
            fp,
            Fingerprinter::new(KEY_A).fingerprint(b"example-secret-value")
        );
        assert_ne!(
            fp,
            Fingerprinter::new(KEY_B).fingerprint(b"example-secret-value")
        );
        assert_ne!(fp, a.fingerprint(b"example-secret-valuf"));
        assert!(fp.starts_with(PREFIX));
        let hex_part = &fp[PREFIX.len()..];
        assert_eq!(hex_part.len(), 32);
        assert!(hex_part
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }

    #[test]
    fn matches_the_hmac_sha256_reference() {
        // RFC 4231 test case 2.
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let fp = Fingerprinter::new(key).fingerprint(b"what do ya want for nothing?");
        assert_eq!(fp, "hmac-sha256:5bdcc146bf60754e6a042426089575c7");
    }

    #[test]
    fn never_contains_the_secret() {
        let f = Fingerprinter::new(KEY_A);
        for secret in [
            "abc",
            "hmac-sha256:",
            "0123456789abcdef0123456789abcdef",
            "x",
        ] {
            let fp = f.fingerprint(secret.as_bytes());
            assert!(!fp[PREFIX.len()..].contains(secret), "{secret}");
        }
        assert!(!format!("{f:?}").contains(&hex::encode(KEY_A)[..8]));
    }

    #[test]
    fn from_hex_accepts_keys_and_rejects_without_echoing() {
        let hex_key = hex::encode(KEY_A);
        let f = Fingerprinter::from_hex(&format!("  {hex_key}\n")).unwrap();
        assert_eq!(
            f.fingerprint(b"s"),
            Fingerprinter::new(KEY_A).fingerprint(b"s")
        );
        assert!(Fingerprinter::from_hex(&hex_key.to_uppercase()).is_ok());
        let typo = format!("{}zz", &hex_key[..62]);
        let err = Fingerprinter::from_hex(&typo).unwrap_err().to_string();
        assert!(
            err.contains("hex digit") && !err.contains(&typo[..20]),
            "{err}"
        );
        let err = Fingerprinter::from_hex("abcd").unwrap_err().to_string();
        assert!(
            err.contains("64 hex characters") && err.contains("got 4"),
            "{err}"
        );
    }

    #[test]
    fn key_file_is_created_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/keys/fingerprint.key");
        let key = Fingerprinter::load_or_create_key(&path).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(mode(&dir.path().join("state")), 0o700);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim(), hex::encode(key));
        assert_eq!(Fingerprinter::load_or_create_key(&path).unwrap(), key);
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
        // A second key file gets a different random key.
        let other = Fingerprinter::load_or_create_key(&dir.path().join("other.key")).unwrap();
        assert_ne!(other, key);
    }

    #[test]
    fn key_file_accepts_raw_bytes_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw.key");
        fs::write(&raw, KEY_B).unwrap();
        assert_eq!(Fingerprinter::load_or_create_key(&raw).unwrap(), KEY_B);

        let bad = dir.path().join("bad.key");
        fs::write(&bad, "not a key\n").unwrap();
        let err = Fingerprinter::from_key_file(&bad).unwrap_err().to_string();
        assert!(err.contains(&bad.display().to_string()), "{err}");
        assert!(
            err.contains("64 hex characters or 32 raw bytes") && err.contains("delete it"),
            "{err}"
        );
        assert!(!err.contains("not a key"), "{err}");
        // The bad file is left alone for the operator to fix.
        assert_eq!(fs::read_to_string(&bad).unwrap(), "not a key\n");
    }

    #[test]
    fn unreadable_key_path_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("is-a-dir");
        fs::create_dir(&path).unwrap();
        let err = Fingerprinter::load_or_create_key(&path)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&path.display().to_string()) && err.contains("read"),
            "{err}"
        );
    }
}
