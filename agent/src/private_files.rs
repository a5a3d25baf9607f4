//! Owner-only files and directories for what the agent writes (state, spools, sink files).
//!
//! Everything the agent writes holds other users' command lines, paths and
//! secret fingerprints. The daemon sets `umask(077)`, but that is a default
//! a library caller or a future code path can miss, and it does nothing for
//! files an older agent (or an operator) left behind with looser modes: so
//! every file is created with an explicit mode and an existing one is
//! brought back to it through its open descriptor.

use std::{
    fs::{DirBuilder, File, OpenOptions, Permissions},
    io,
    os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt},
    path::Path,
};

/// Directories only the agent (root) may list or enter.
pub const DIR_MODE: u32 = 0o700;
/// Files only the agent (root) may read.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` and its missing parents with mode 0700; an existing `dir`
/// that group or others may use is tightened to 0700, with a warning naming it.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    let meta = std::fs::metadata(dir)?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))?;
        tracing::warn!(
            "{} was mode {mode:04o}: tightened to {DIR_MODE:04o}, it holds every user's \
             command lines, paths and secret fingerprints",
            dir.display()
        );
    }
    Ok(())
}

/// Opens `path` with `opts`, creating it with mode 0600; an existing file
/// open to group or others is tightened to 0600 (see [`restrict`]).
pub fn open_private(path: &Path, opts: &mut OpenOptions) -> io::Result<File> {
    open_with_mode(path, opts, FILE_MODE, None)
}

/// Opens `path` with `opts`, creating it with `mode`, and gives it exactly
/// `mode` and, when set, group `gid` (see [`restrict`]).
pub fn open_with_mode(
    path: &Path,
    opts: &mut OpenOptions,
    mode: u32,
    gid: Option<u32>,
) -> io::Result<File> {
    let file = opts.mode(mode).open(path)?;
    restrict(&file, path, mode, gid)?;
    Ok(file)
}

/// Writes `bytes` to `path` (created or truncated), mode 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = open_private(
        path,
        OpenOptions::new().write(true).create(true).truncate(true),
    )?;
    io::Write::write_all(&mut f, bytes)
}

/// Gives the regular file behind `file` exactly mode `mode` and, when set,
/// group `gid`, through the descriptor (so a path swapped meanwhile is not
/// what changes); a file that was looser is named in a warning. Anything but
/// a regular file (a sink pointed at /dev/stderr, a FIFO) is left as it is:
/// its mode is not the agent's to change.
pub fn restrict(file: &File, path: &Path, mode: u32, gid: Option<u32>) -> io::Result<()> {
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Ok(());
    }
    if let Some(gid) = gid.filter(|&g| g != meta.gid()) {
        std::os::unix::fs::fchown(file, None, Some(gid))?;
    }
    let had = meta.permissions().mode() & 0o7777;
    if had != mode {
        file.set_permissions(Permissions::from_mode(mode))?;
    }
    if had & !mode != 0 {
        tracing::warn!(
            "{} was mode {had:04o}: tightened to {mode:04o}",
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn creates_owner_only_and_tightens_what_is_looser() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        std::fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);

        let f = dir.join("f");
        write_private(&f, b"x").unwrap();
        assert_eq!(mode(&f), 0o600);
        std::fs::set_permissions(&f, Permissions::from_mode(0o644)).unwrap();
        open_private(&f, OpenOptions::new().read(true)).unwrap();
        assert_eq!(mode(&f), 0o600);

        // A group reader configured later gets its read bit; a world-writable
        // file loses everything beyond it.
        open_with_mode(&f, OpenOptions::new().read(true), 0o640, None).unwrap();
        assert_eq!(mode(&f), 0o640);
        std::fs::set_permissions(&f, Permissions::from_mode(0o666)).unwrap();
        open_with_mode(&f, OpenOptions::new().read(true), 0o640, None).unwrap();
        assert_eq!(mode(&f), 0o640);
    }

    #[test]
    fn leaves_what_is_not_a_regular_file_alone() {
        let null = Path::new("/dev/null");
        let before = mode(null);
        open_private(null, OpenOptions::new().write(true)).unwrap();
        assert_eq!(mode(null), before);
    }
}
