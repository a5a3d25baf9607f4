//! The programs an rpm database (the SQLite `rpmdb.sqlite` of rpm 4.16 and later) says its packages installed, with each file's digest.
//!
//! Each row of the `Packages` table is one package's header blob: a count
//! of index entries and the size of the data store (both big-endian u32),
//! then 16-byte entries (tag, type, offset, count), then the data store.
//! The file list is split into `DIRNAMES`, `BASENAMES` and `DIRINDEXES`;
//! `FILEDIGESTS` holds one hex digest per file in the algorithm
//! `FILEDIGESTALGO` names (MD5 when absent). The blob is the package
//! manager's, not the workload's, but it is still parsed defensively:
//! every offset and count is checked against the blob, a bad header is
//! skipped and counted, never trusted partly.
//!
//! Older databases (Berkeley DB `Packages`, ndb `Packages.db`) are not read.

use std::path::Path;

use anyhow::{Context, Result};

const TAG_NAME: u32 = 1000;
const TAG_FILEDIGESTS: u32 = 1035;
const TAG_DIRINDEXES: u32 = 1116;
const TAG_BASENAMES: u32 = 1117;
const TAG_DIRNAMES: u32 = 1118;
const TAG_FILEDIGESTALGO: u32 = 5011;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_STRING_ARRAY: u32 = 8;

/// rpm's `PGPHASHALGO_*` numbers for the digests it records.
const ALGO_MD5: u32 = 1;
const ALGO_SHA256: u32 = 8;

/// A header larger than this is not a package header (rpm caps them at 256 MiB;
/// the largest real ones are a few MiB).
const MAX_HEADER_BYTES: usize = 64 << 20;

/// The digest rpm recorded for a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileDigest {
    Md5([u8; 16]),
    Sha256([u8; 32]),
}

/// One installed file: (package, absolute path, digest).
pub type RpmFile = (String, String, FileDigest);

/// Every file of every package in the database at `db` whose digest rpm
/// recorded, and the number of package headers that could not be parsed.
pub fn read_files(db: &Path, keep: impl Fn(&str) -> bool) -> Result<(Vec<RpmFile>, usize)> {
    // Read-only and without creating anything: the database is rpm's. On a
    // read-only mount SQLite cannot set up a WAL database's shared memory;
    // then the file is read as it is, without what only the log holds yet.
    let blobs = open(db, false)
        .and_then(|c| blobs(&c))
        .or_else(|first| open(db, true).and_then(|c| blobs(&c)).map_err(|_| first))
        .with_context(|| format!("cannot read the rpm database {}", db.display()))?;
    Ok(parse_blobs(blobs, keep))
}

/// [`read_files`] for a database opened already (an image layer's, opened
/// without following links and type-checked): SQLite reads it through the
/// fd's `/proc/self/fd` link as an immutable file, since a layer never
/// changes; `shown` names it in errors.
pub fn read_files_of(
    file: &std::fs::File,
    shown: &Path,
    keep: impl Fn(&str) -> bool,
) -> Result<(Vec<RpmFile>, usize)> {
    use std::os::fd::AsRawFd;
    let by_fd = std::path::PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    let blobs = open(&by_fd, true)
        .and_then(|c| blobs(&c))
        .with_context(|| format!("cannot read the rpm database {}", shown.display()))?;
    Ok(parse_blobs(blobs, keep))
}

fn parse_blobs(blobs: Vec<Vec<u8>>, keep: impl Fn(&str) -> bool) -> (Vec<RpmFile>, usize) {
    let mut files = Vec::new();
    let mut bad = 0;
    for blob in blobs {
        match Header::parse(&blob).and_then(|h| h.files()) {
            Some(list) => files.extend(list.into_iter().filter(|(_, path, _)| keep(path))),
            None => bad += 1,
        }
    }
    (files, bad)
}

fn open(db: &Path, immutable: bool) -> rusqlite::Result<rusqlite::Connection> {
    use rusqlite::OpenFlags as F;
    let flags = F::SQLITE_OPEN_READ_ONLY | F::SQLITE_OPEN_NO_MUTEX;
    if !immutable {
        return rusqlite::Connection::open_with_flags(db, flags);
    }
    let mut uri = String::from("file:");
    for c in db.to_string_lossy().chars() {
        match c {
            '%' | '?' | '#' => uri.push_str(&format!("%{:02X}", c as u32)),
            c => uri.push(c),
        }
    }
    uri.push_str("?immutable=1");
    rusqlite::Connection::open_with_flags(uri, flags | F::SQLITE_OPEN_URI)
}

fn blobs(conn: &rusqlite::Connection) -> rusqlite::Result<Vec<Vec<u8>>> {
    let mut stmt = conn.prepare("SELECT blob FROM Packages")?;
    let rows = stmt.query_map([], |row| row.get::<_, Vec<u8>>(0))?;
    rows.collect()
}

struct Entry {
    tag: u32,
    kind: u32,
    offset: usize,
    count: usize,
}

struct Header<'a> {
    entries: Vec<Entry>,
    data: &'a [u8],
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

impl<'a> Header<'a> {
    fn parse(blob: &'a [u8]) -> Option<Header<'a>> {
        if blob.len() > MAX_HEADER_BYTES {
            return None;
        }
        let il = be32(blob, 0)? as usize;
        let dl = be32(blob, 4)? as usize;
        let start = 8usize.checked_add(il.checked_mul(16)?)?;
        let data = blob.get(start..start.checked_add(dl)?)?;
        let mut entries = Vec::with_capacity(il);
        for i in 0..il {
            let at = 8 + i * 16;
            entries.push(Entry {
                tag: be32(blob, at)?,
                kind: be32(blob, at + 4)?,
                offset: be32(blob, at + 8)? as usize,
                count: be32(blob, at + 12)? as usize,
            });
        }
        Some(Header { entries, data })
    }

    fn entry(&self, tag: u32) -> Option<&Entry> {
        self.entries.iter().find(|e| e.tag == tag)
    }

    /// `count` NUL-terminated strings from the entry's offset.
    fn strings(&self, tag: u32) -> Option<Vec<&'a str>> {
        let e = self.entry(tag)?;
        if e.kind != TYPE_STRING_ARRAY && e.kind != TYPE_STRING {
            return None;
        }
        // Each string takes at least its NUL: a count beyond the store is a lie.
        if e.count > self.data.len() {
            return None;
        }
        let mut rest = self.data.get(e.offset..)?;
        let mut out = Vec::with_capacity(e.count);
        for _ in 0..e.count {
            let end = rest.iter().position(|&b| b == 0)?;
            out.push(std::str::from_utf8(&rest[..end]).ok()?);
            rest = &rest[end + 1..];
        }
        Some(out)
    }

    fn int32s(&self, tag: u32) -> Option<Vec<u32>> {
        let e = self.entry(tag)?;
        if e.kind != TYPE_INT32 || e.count > self.data.len() / 4 {
            return None;
        }
        (0..e.count)
            .map(|i| be32(self.data, e.offset.checked_add(i * 4)?))
            .collect()
    }

    /// The package's files as (package, path, digest); files without a
    /// digest (directories, ghosts, links) are left out. `None` when the
    /// header is inconsistent.
    fn files(&self) -> Option<Vec<RpmFile>> {
        let name = self.strings(TAG_NAME)?.first()?.to_string();
        let Some(basenames) = self.strings(TAG_BASENAMES) else {
            // A package with no files (a meta package).
            return Some(Vec::new());
        };
        let dirnames = self.strings(TAG_DIRNAMES)?;
        let dirindexes = self.int32s(TAG_DIRINDEXES)?;
        let digests = self.strings(TAG_FILEDIGESTS)?;
        let algo = match self.int32s(TAG_FILEDIGESTALGO) {
            Some(v) => *v.first()?,
            None => ALGO_MD5,
        };
        if dirindexes.len() != basenames.len() || digests.len() != basenames.len() {
            return None;
        }
        let mut out = Vec::new();
        for ((base, dir), digest) in basenames.iter().zip(&dirindexes).zip(&digests) {
            let dir = dirnames.get(*dir as usize)?;
            let digest = match (algo, digest.len()) {
                (_, 0) => continue,
                (ALGO_MD5, 32) => {
                    let mut d = [0u8; 16];
                    hex::decode_to_slice(digest, &mut d).ok()?;
                    FileDigest::Md5(d)
                }
                (ALGO_SHA256, 64) => {
                    let mut d = [0u8; 32];
                    hex::decode_to_slice(digest, &mut d).ok()?;
                    FileDigest::Sha256(d)
                }
                // SHA-1/384/512 packages exist but are rare; their files
                // are not vouched for rather than misread.
                _ => continue,
            };
            out.push((name.clone(), format!("{dir}{base}"), digest));
        }
        Some(out)
    }
}

/// Header blobs and databases shaped as rpm writes them, for tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A header blob from (tag, type, count, data) entries.
    pub fn blob(entries: &[(u32, u32, u32, Vec<u8>)]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data = Vec::new();
        for (tag, kind, count, bytes) in entries {
            if *kind == TYPE_INT32 {
                while data.len() % 4 != 0 {
                    data.push(0);
                }
            }
            for v in [*tag, *kind, data.len() as u32, *count] {
                index.extend(v.to_be_bytes());
            }
            data.extend(bytes);
        }
        let mut out = Vec::new();
        out.extend((entries.len() as u32).to_be_bytes());
        out.extend((data.len() as u32).to_be_bytes());
        out.extend(index);
        out.extend(data);
        out
    }

    pub fn strs(v: &[&str]) -> Vec<u8> {
        v.iter().flat_map(|s| s.bytes().chain([0])).collect()
    }

    pub fn ints(v: &[u32]) -> Vec<u8> {
        v.iter().flat_map(|i| i.to_be_bytes()).collect()
    }

    /// The header of package `name` with files in one directory `dir`
    /// (ending in `/`) and their SHA-256 digests (hex).
    pub fn package(name: &str, dir: &str, files: &[(&str, &str)]) -> Vec<u8> {
        let n = files.len() as u32;
        let bases: Vec<&str> = files.iter().map(|f| f.0).collect();
        let digests: Vec<&str> = files.iter().map(|f| f.1).collect();
        blob(&[
            (TAG_NAME, TYPE_STRING, 1, strs(&[name])),
            (TAG_FILEDIGESTS, TYPE_STRING_ARRAY, n, strs(&digests)),
            (TAG_DIRINDEXES, TYPE_INT32, n, ints(&vec![0; files.len()])),
            (TAG_BASENAMES, TYPE_STRING_ARRAY, n, strs(&bases)),
            (TAG_DIRNAMES, TYPE_STRING_ARRAY, 1, strs(&[dir])),
            (TAG_FILEDIGESTALGO, TYPE_INT32, 1, ints(&[ALGO_SHA256])),
        ])
    }

    /// An `rpmdb.sqlite` at `path` holding `headers`, with rpm's schema.
    pub fn write_db(path: &Path, headers: &[Vec<u8>]) {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute_batch(
            "CREATE TABLE 'Packages' (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL);",
        )
        .unwrap();
        for h in headers {
            conn.execute("INSERT INTO Packages (blob) VALUES (?1)", [h])
                .unwrap();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{blob, ints, strs};
    use super::*;

    fn package(digest_algo: Option<u32>, digests: &[&str]) -> Vec<u8> {
        let mut e = vec![
            (TAG_NAME, TYPE_STRING, 1, strs(&["openssh-clients"])),
            (
                TAG_FILEDIGESTS,
                TYPE_STRING_ARRAY,
                digests.len() as u32,
                strs(digests),
            ),
            (TAG_DIRINDEXES, TYPE_INT32, 3, ints(&[0, 0, 1])),
            (
                TAG_BASENAMES,
                TYPE_STRING_ARRAY,
                3,
                strs(&["ssh", "scp", "ssh"]),
            ),
            (
                TAG_DIRNAMES,
                TYPE_STRING_ARRAY,
                2,
                strs(&["/usr/bin/", "/etc/"]),
            ),
        ];
        if let Some(a) = digest_algo {
            e.push((TAG_FILEDIGESTALGO, TYPE_INT32, 1, ints(&[a])));
        }
        blob(&e)
    }

    #[test]
    fn a_header_gives_each_file_its_path_and_digest() {
        let sha = "ab".repeat(32);
        let b = package(Some(ALGO_SHA256), &[&sha, "", &sha]);
        let files = Header::parse(&b).unwrap().files().unwrap();
        assert_eq!(
            files,
            vec![
                (
                    "openssh-clients".into(),
                    "/usr/bin/ssh".into(),
                    FileDigest::Sha256([0xab; 32])
                ),
                (
                    "openssh-clients".into(),
                    "/etc/ssh".into(),
                    FileDigest::Sha256([0xab; 32])
                ),
            ],
            "the file without a digest (scp here) is left out"
        );
        let md5 = "cd".repeat(16);
        let b = package(None, &[&md5, &md5, &md5]);
        let files = Header::parse(&b).unwrap().files().unwrap();
        assert_eq!(
            files[0].2,
            FileDigest::Md5([0xcd; 16]),
            "MD5 when no algorithm is named"
        );
    }

    #[test]
    fn a_truncated_or_lying_header_is_refused_whole() {
        let sha = "ab".repeat(32);
        let good = package(Some(ALGO_SHA256), &[&sha, &sha, &sha]);
        for cut in [0, 7, 20, good.len() - 1] {
            let parsed = Header::parse(&good[..cut]).and_then(|h| h.files());
            assert!(parsed.is_none(), "cut at {cut}");
        }
        // A count far beyond the data store.
        let mut lying = good.clone();
        let count_of_first_entry = 8 + 12;
        lying[count_of_first_entry..count_of_first_entry + 4]
            .copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Header::parse(&lying).and_then(|h| h.files()).is_none());
        // Digests and files that do not pair up.
        let short = package(Some(ALGO_SHA256), &[&sha, &sha]);
        assert!(Header::parse(&short).and_then(|h| h.files()).is_none());
    }

    #[test]
    fn a_database_sqlite_cannot_open_for_sharing_is_read_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("rpm 50%?#.sqlite");
        let sha = "ab".repeat(32);
        super::testing::write_db(
            &db,
            &[super::testing::package(
                "bash",
                "/usr/bin/",
                &[("bash", &sha)],
            )],
        );
        let normal = blobs(&open(&db, false).unwrap()).unwrap();
        let as_is = blobs(&open(&db, true).unwrap()).unwrap();
        assert_eq!(normal, as_is);
        assert_eq!(as_is.len(), 1);
        let (files, bad) = read_files(&db, |_| true).unwrap();
        assert_eq!((files.len(), bad), (1, 0));
        let err = read_files(&dir.path().join("missing.sqlite"), |_| true).unwrap_err();
        assert!(
            format!("{err:#}").contains("cannot read the rpm database"),
            "{err:#}"
        );
    }
}
