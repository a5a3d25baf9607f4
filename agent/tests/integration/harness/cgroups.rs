//! cgroups the tests make at the places the kubelet and container runtimes use under the cgroup v2 mount, with ids unique to the test, removed on drop.

use std::{
    collections::HashSet,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::Command,
    sync::Mutex,
};

/// Directories some test of this run created: only those are removed, so a
/// runtime's own (`/libpod_parent`, a real `/kubepods`) stays.
static CREATED: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

/// A pod uid and a container id no other test (or other test run) uses:
/// the places the agent trusts (`/kubepods/...`) are shared by every test.
pub fn pod_and_container_ids(name: &str) -> (String, String) {
    // FNV-1a of the test's name, next to our pid.
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    });
    let pid = std::process::id();
    let uid = format!(
        "{pid:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (h >> 48) & 0xffff,
        (h >> 36) & 0xfff,
        (h >> 24) & 0xfff,
        h & 0xffff_ffff_ffff
    );
    let cid = format!("{pid:08x}{h:016x}{:040x}", 0x7e57u64);
    (uid, cid)
}

pub fn cgroup2_root() -> PathBuf {
    proctor::kernel::mounts::cgroup2_mount().expect("cgroup2 is mounted")
}

/// A cgroup at `rel` below the cgroup v2 mount. On drop its processes move
/// back to the root cgroup and its directories are removed, innermost
/// first; parents other tests still use stay (rmdir refuses them), and
/// directories this run did not create are never removed.
pub struct PlacedCgroup {
    pub root: PathBuf,
    /// `/a/b/c`, as the agent reports it.
    pub rel: String,
    pub dir: PathBuf,
}

impl PlacedCgroup {
    pub fn new(rel: &str) -> Self {
        let root = cgroup2_root();
        let rel = format!("/{}", rel.trim_start_matches('/'));
        let dir = root.join(rel.trim_start_matches('/'));
        // A parallel test may remove a shared parent (`/kubepods`) between
        // our mkdirs: try again.
        let mut missing = Vec::new();
        let mut d = dir.clone();
        while d != root && !d.exists() {
            missing.push(d.clone());
            d = d.parent().unwrap().to_path_buf();
        }
        CREATED
            .lock()
            .unwrap()
            .get_or_insert_with(HashSet::new)
            .extend(missing);
        let mut tries = 0;
        while let Err(e) = std::fs::create_dir_all(&dir) {
            tries += 1;
            assert!(tries < 50, "cannot create cgroup {}: {e}", dir.display());
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Self { root, rel, dir }
    }

    /// The directory `depth` components below the mount (1 = the top one).
    pub fn ancestor(&self, depth: usize) -> PathBuf {
        let parts: Vec<&str> = self.rel.split('/').filter(|c| !c.is_empty()).collect();
        self.root.join(parts[..depth].join("/"))
    }

    /// A command that joins this cgroup between fork and exec.
    pub fn command(&self, program: &str) -> Command {
        let procs = self.dir.join("cgroup.procs");
        let mut cmd = Command::new(program);
        unsafe {
            cmd.pre_exec(move || {
                std::fs::write(&procs, b"0")?;
                Ok(())
            })
        };
        cmd
    }
}

fn move_out(dir: &Path, root: &Path) {
    if let Ok(pids) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in pids.lines() {
            let _ = std::fs::write(root.join("cgroup.procs"), pid);
        }
    }
}

impl Drop for PlacedCgroup {
    fn drop(&mut self) {
        move_out(&self.dir, &self.root);
        // A process just moved out may still be leaving: retry the leaf
        // briefly (a shared parent is busy for as long as others use it).
        for _ in 0..50 {
            match std::fs::remove_dir(&self.dir) {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                _ => break,
            }
        }
        let created = CREATED.lock().unwrap();
        let mut d = self.dir.parent().unwrap().to_path_buf();
        while d != self.root {
            if created.as_ref().is_some_and(|c| c.contains(&d)) {
                let _ = std::fs::remove_dir(&d);
            }
            d = d.parent().unwrap().to_path_buf();
        }
    }
}
