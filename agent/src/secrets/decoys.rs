//! Decoy credentials: files proctor plants that no one has a reason to read, so any read of one is `secret-decoy`.
//!
//! A decoy's content is derived from the cluster's fingerprint key and its
//! path: realistic for its kind (an AWS key pair with an `AKIA…` id), unique
//! per path and cluster, never a credential anyone issued, and the same on
//! every start. That is how a restarted agent recognises its own decoy and
//! keeps watching it, while any other file at a decoy path is left untouched
//! and reported. Decoys stay in place when the agent stops (a decoy that
//! vanishes whenever the agent is down tells an intruder when it is);
//! removing one from the config does not delete it.

use std::{
    io::Write,
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::{Component, Path, PathBuf},
    sync::Arc,
};

use serde::Deserialize;

use crate::{
    event::Severity,
    secrets::catalog::{CatalogEntry, SecretKind},
    secrets::fingerprint::Fingerprinter,
};

/// Catalog ids of decoys start with this; the monitor knows a decoy by it.
pub const ID_PREFIX: &str = "proctor-decoy-";

/// What a decoy looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecoyKind {
    /// An AWS shared credentials file with one `[default]` key pair.
    AwsCredentials,
    /// A git credential-store line with a GitHub-style token.
    GitCredentials,
    /// A PostgreSQL password file line.
    Pgpass,
}

impl DecoyKind {
    fn secret_kind(self) -> SecretKind {
        match self {
            DecoyKind::AwsCredentials => SecretKind::CloudCredentials,
            DecoyKind::GitCredentials => SecretKind::VcsCredentials,
            DecoyKind::Pgpass => SecretKind::DatabaseCredentials,
        }
    }
}

/// One `secrets.decoys` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecoySpec {
    /// Absolute path of the decoy file; its directory must exist.
    pub path: PathBuf,
    pub kind: DecoyKind,
}

/// Config errors of `secrets.decoys`, with the entry and the fix.
pub fn validate(decoys: &[DecoySpec]) -> Result<(), String> {
    for (i, d) in decoys.iter().enumerate() {
        let normal = d.path.is_absolute()
            && d.path
                .components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
            && d.path.file_name().is_some()
            && !d
                .path
                .to_string_lossy()
                .contains(['*', '?', '[', ']', '{', '}', '\\']);
        if !normal {
            return Err(format!(
                "secrets.decoys[{i}].path {:?} must be an absolute path without `.`, `..` or \
                 glob characters, naming a file (e.g. /root/.aws/credentials.old)",
                d.path
            ));
        }
        if decoys[..i].iter().any(|o| o.path == d.path) {
            return Err(format!(
                "secrets.decoys[{i}].path {:?} is given twice; plant one decoy per path",
                d.path
            ));
        }
    }
    Ok(())
}

/// Characters of an AWS access key id after `AKIA`.
const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `n` characters of `alphabet`, keyed by the cluster key, the path and `label`.
fn derived(fp: &Fingerprinter, path: &Path, label: &str, alphabet: &[u8], n: usize) -> String {
    let mut out = String::with_capacity(n);
    let mut round = 0u32;
    while out.len() < n {
        let mut input = format!("proctor-decoy\0{label}\0{round}\0").into_bytes();
        input.extend_from_slice(path.as_os_str().as_encoded_bytes());
        let hex = fp.fingerprint(&input);
        let hex = hex.rsplit(':').next().unwrap_or_default();
        for pair in hex.as_bytes().chunks(2) {
            let b = u8::from_str_radix(std::str::from_utf8(pair).unwrap_or("0"), 16).unwrap_or(0);
            if out.len() < n {
                out.push(alphabet[usize::from(b) % alphabet.len()] as char);
            }
        }
        round += 1;
    }
    out
}

/// The content proctor plants at `path` for `kind`.
pub fn content(fp: &Fingerprinter, spec: &DecoySpec) -> String {
    let p = &spec.path;
    match spec.kind {
        DecoyKind::AwsCredentials => format!(
            "[default]\naws_access_key_id = AKIA{}\naws_secret_access_key = {}\nregion = us-east-1\n",
            derived(fp, p, "aws-id", BASE32, 16),
            derived(fp, p, "aws-secret", ALNUM, 40),
        ),
        DecoyKind::GitCredentials => format!(
            "https://{}:ghp_{}@github.com\n",
            derived(fp, p, "git-user", b"abcdefghijklmnopqrstuvwxyz", 8),
            derived(fp, p, "git-token", ALNUM, 36),
        ),
        DecoyKind::Pgpass => format!(
            "db-{}.internal:5432:*:svc_{}:{}\n",
            derived(fp, p, "pg-host", b"abcdefghijklmnopqrstuvwxyz0123456789", 6),
            derived(fp, p, "pg-user", b"abcdefghijklmnopqrstuvwxyz", 6),
            derived(fp, p, "pg-pass", ALNUM, 24),
        ),
    }
}

/// What planting found at each decoy path.
#[derive(Debug, Default)]
pub struct Planted {
    /// Decoys in place (planted now, or ours from an earlier start).
    pub decoys: Vec<DecoySpec>,
    /// Paths where something else is (or where planting failed), with why:
    /// left untouched, not watched as decoys.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Plants every decoy that is not there yet: created exclusively (never
/// over an existing file, never through a symlink), mode 0600, owned by the
/// owner of its directory (a home's user for a decoy in a home).
pub fn plant(specs: &[DecoySpec], fp: &Fingerprinter) -> Planted {
    let mut out = Planted::default();
    for spec in specs {
        let want = content(fp, spec);
        match plant_one(&spec.path, want.as_bytes()) {
            Ok(()) => out.decoys.push(spec.clone()),
            Err(why) => out.skipped.push((spec.path.clone(), why)),
        }
    }
    out
}

fn plant_one(path: &Path, want: &[u8]) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let dir_meta = std::fs::metadata(dir).map_err(|e| {
        format!(
            "its directory {} cannot be read ({e}); create it, or choose a decoy path in an existing directory",
            dir.display()
        )
    })?;
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    match created {
        Ok(mut f) => {
            f.write_all(want)
                .and_then(|()| {
                    std::os::unix::fs::fchown(&f, Some(dir_meta.uid()), Some(dir_meta.gid()))
                })
                .map_err(|e| {
                    let _ = std::fs::remove_file(path);
                    format!("planting it failed ({e})")
                })?;
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if is_our_decoy(path, want) {
                Ok(())
            } else {
                Err(
                    "a file that is not proctor's decoy is already there; it is left \
                     untouched: remove it or choose another decoy path"
                        .to_string(),
                )
            }
        }
        Err(e) => Err(format!("it cannot be created ({e})")),
    }
}

/// Whether the regular file at `path` (not followed if a link) holds
/// exactly `want`: proctor's own decoy from an earlier start.
fn is_our_decoy(path: &Path, want: &[u8]) -> bool {
    let Ok((mut f, meta)) =
        crate::safe_open::open_regular(path, crate::safe_open::Links::NoFollow, None)
    else {
        return false;
    };
    if meta.len() != want.len() as u64 {
        return false;
    }
    crate::safe_open::read_prefix(path, &mut f, want.len() as u64 + 1).is_ok_and(|got| got == want)
}

/// Catalog entries for the planted decoys, one each, so that the kernel
/// filter and discovery watch them like any secret.
pub fn catalog_entries(decoys: &[DecoySpec]) -> Vec<CatalogEntry> {
    decoys
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut e = CatalogEntry::new(
                &format!("{ID_PREFIX}{}", i + 1),
                d.kind.secret_kind(),
                Severity::Critical,
                &[&d.path.to_string_lossy()],
                "decoy credential planted by proctor: no one has a reason to read it",
            );
            e.mitre = Arc::from(["T1552.001".to_string()]);
            e
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn fp() -> Fingerprinter {
        Fingerprinter::new([7; 32])
    }

    fn spec(path: &Path, kind: DecoyKind) -> DecoySpec {
        DecoySpec {
            path: path.to_path_buf(),
            kind,
        }
    }

    #[test]
    fn decoy_content_is_realistic_unique_per_path_and_stable() {
        let a = spec(
            Path::new("/root/.aws/credentials.old"),
            DecoyKind::AwsCredentials,
        );
        let b = spec(
            Path::new("/home/x/.aws/credentials.old"),
            DecoyKind::AwsCredentials,
        );
        let ca = content(&fp(), &a);
        assert_eq!(ca, content(&fp(), &a));
        assert_ne!(ca, content(&fp(), &b));
        assert_ne!(ca, content(&Fingerprinter::new([8; 32]), &a));
        let id = regex::Regex::new(r"aws_access_key_id = AKIA[A-Z2-7]{16}\n").unwrap();
        let secret = regex::Regex::new(r"aws_secret_access_key = [A-Za-z0-9]{40}\n").unwrap();
        assert!(id.is_match(&ca) && secret.is_match(&ca), "{ca}");
        let git = content(
            &fp(),
            &spec(Path::new("/r/.git-credentials"), DecoyKind::GitCredentials),
        );
        assert!(
            regex::Regex::new(r"^https://[a-z]{8}:ghp_[A-Za-z0-9]{36}@github.com\n$")
                .unwrap()
                .is_match(&git)
        );
        let pg = content(&fp(), &spec(Path::new("/r/.pgpass"), DecoyKind::Pgpass));
        assert_eq!(pg.split(':').count(), 5, "{pg}");
    }

    #[test]
    fn planting_never_overwrites_and_adopts_its_own_decoy() {
        let tmp = tempfile::tempdir().unwrap();
        let ours = tmp.path().join("credentials.old");
        let theirs = tmp.path().join("taken");
        std::fs::write(&theirs, "someone's file\n").unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&theirs, &link).unwrap();
        let specs = vec![
            spec(&ours, DecoyKind::AwsCredentials),
            spec(&theirs, DecoyKind::Pgpass),
            spec(&link, DecoyKind::Pgpass),
            spec(&tmp.path().join("missing/dir/x"), DecoyKind::Pgpass),
        ];
        let p = plant(&specs, &fp());
        assert_eq!(p.decoys, vec![specs[0].clone()]);
        assert_eq!(p.skipped.len(), 3, "{:?}", p.skipped);
        assert!(p.skipped[0].1.contains("left untouched"), "{:?}", p.skipped);
        assert!(p.skipped[2].1.contains("directory"), "{:?}", p.skipped);
        assert_eq!(
            std::fs::read_to_string(&theirs).unwrap(),
            "someone's file\n"
        );
        let meta = std::fs::metadata(&ours).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(&ours).unwrap(),
            content(&fp(), &specs[0])
        );
        // A second start adopts it; an edited one is not ours any more.
        assert_eq!(plant(&specs[..1], &fp()).decoys.len(), 1);
        std::fs::write(&ours, "edited\n").unwrap();
        assert_eq!(plant(&specs[..1], &fp()).skipped.len(), 1);
    }

    #[test]
    fn decoy_config_is_validated() {
        let ok = [spec(
            Path::new("/root/.aws/credentials.old"),
            DecoyKind::AwsCredentials,
        )];
        validate(&ok).unwrap();
        for bad in ["relative/x", "/root/../etc/x", "/", "/root/*.old"] {
            let e = validate(&[spec(Path::new(bad), DecoyKind::Pgpass)]).unwrap_err();
            assert!(e.contains("secrets.decoys[0].path"), "{e}");
        }
        let e = validate(&[ok[0].clone(), ok[0].clone()]).unwrap_err();
        assert!(e.contains("decoys[1]") && e.contains("twice"), "{e}");
        let e = serde_yaml_ng::from_str::<DecoySpec>("{path: /x, kind: ssh_key}").unwrap_err();
        assert!(e.to_string().contains("unknown variant"), "{e}");
        let e =
            serde_yaml_ng::from_str::<DecoySpec>("{path: /x, kind: pgpass, mode: 1}").unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }
}
