//! Debian kernels for the VM matrix: the newest `linux-image-<series>.*-<arch>-unsigned`
//! apt knows, downloaded (never installed), reduced to an uncompressed
//! kernel (QEMU boots it faster than the compressed one) and its BTF, and cached.

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{bail, ensure, Context, Result};

use crate::run;

/// The machine a kernel is built for; the guest runs under its QEMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    /// Debian's name, as in `linux-image-6.12.118+deb12-arm64-unsigned`.
    pub fn debian(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// Rust's target triple.
    pub fn triple(self) -> &'static str {
        match self {
            Arch::Amd64 => "x86_64-unknown-linux-gnu",
            Arch::Arm64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// The GNU multiarch directory holding this arch's libraries on a
    /// Debian host (`libc6-dev-arm64-cross` installs arm64's there).
    pub fn gnu(self) -> &'static str {
        match self {
            Arch::Amd64 => "x86_64-linux-gnu",
            Arch::Arm64 => "aarch64-linux-gnu",
        }
    }

    pub fn of_triple(triple: &str) -> Result<Arch> {
        [Arch::Amd64, Arch::Arm64]
            .into_iter()
            .find(|a| a.triple() == triple)
            .with_context(|| {
                format!(
                    "unsupported target `{triple}`: proctor builds for x86_64-unknown-linux-gnu \
                     and aarch64-unknown-linux-gnu"
                )
            })
    }

    pub fn native() -> Arch {
        if cfg!(target_arch = "aarch64") {
            Arch::Arm64
        } else {
            Arch::Amd64
        }
    }
}

/// The Debian mirror the private package lists point at.
const MIRROR: &str = "http://deb.debian.org";

/// Where apt finds a kernel series for an architecture. The host's own
/// lists serve its native arch and its release (bookworm: 6.1, 6.12); any
/// other release or arch gets private package lists under the kernel cache,
/// passed to apt with `-o` options: the system's apt configuration, lists
/// and architectures are never touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Archive {
    System,
    Private {
        /// Directory name under `<cache>/apt/`.
        name: String,
        arch: Arch,
        /// Debian suites (with `-security` added), e.g. `bullseye`.
        release: &'static str,
    },
}

/// Debian's release carrying a kernel series: 5.10 is Debian 11's.
fn release_of(series: &str) -> &'static str {
    match series {
        "5.10" => "bullseye",
        _ => "bookworm",
    }
}

pub fn archive_of(series: &str, arch: Arch) -> Archive {
    let release = release_of(series);
    if arch == Arch::native() && release == "bookworm" {
        Archive::System
    } else {
        Archive::Private {
            name: format!("{release}-{}", arch.debian()),
            arch,
            release,
        }
    }
}

impl Archive {
    fn dir(&self) -> Option<PathBuf> {
        match self {
            Archive::System => None,
            Archive::Private { name, .. } => Some(cache_dir().join("apt").join(name)),
        }
    }

    /// `apt-get`/`apt-cache` reading this archive's lists.
    fn command(&self, tool: &str) -> Result<Command> {
        let mut c = Command::new(tool);
        let (Some(dir), Archive::Private { arch, release, .. }) = (self.dir(), self) else {
            return Ok(c);
        };
        for d in ["lists/partial", "cache/archives/partial"] {
            std::fs::create_dir_all(dir.join(d))
                .with_context(|| format!("create {}", dir.join(d).display()))?;
        }
        let list = dir.join("sources.list");
        let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
        std::fs::write(
            &list,
            format!(
                "deb [signed-by={keyring}] {MIRROR}/debian {release} main\n\
                 deb [signed-by={keyring}] {MIRROR}/debian-security {release}-security main\n"
            ),
        )?;
        let opt = |k: &str, v: &Path| format!("{k}={}", v.display());
        c.arg("-o")
            .arg(opt("Dir::Etc::sourcelist", &list))
            .arg("-o")
            .arg("Dir::Etc::sourceparts=/dev/null")
            .arg("-o")
            .arg(opt("Dir::State::Lists", &dir.join("lists")))
            .arg("-o")
            .arg(opt("Dir::Cache", &dir.join("cache")))
            .arg("-o")
            .arg(format!("APT::Architecture={}", arch.debian()))
            .arg("-o")
            .arg(format!("APT::Architectures::={}", arch.debian()))
            // The lists live under root's cache, which apt's _apt user cannot write.
            .arg("-o")
            .arg("APT::Sandbox::User=root");
        Ok(c)
    }

    fn update(&self) -> Result<()> {
        run(self.command("apt-get")?.args(["update", "-qq"]))
    }
}

pub struct Kernel {
    pub series: String,
    pub arch: Arch,
    pub package: String,
    /// What QEMU boots: the uncompressed ELF vmlinux (amd64) or `Image` (arm64).
    pub vmlinux: PathBuf,
    /// The raw BTF of that kernel (what it serves as /sys/kernel/btf/vmlinux).
    pub btf: PathBuf,
}

pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PROCTOR_KERNEL_CACHE") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/proctor/kernels")
}

/// Orders Debian's kernel package names of one series by their ABI number
/// (`6.1.0-56` -> [0, 56], `6.12.117+deb12` -> [117, 12]).
fn version_key(rest: &str) -> Vec<u64> {
    rest.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// The newest generic image of `series` for `arch` in `names` (one per line, as
/// `apt-cache search --names-only` prints them: `name - description`).
pub fn newest_package(series: &str, arch: Arch, names: &str) -> Option<String> {
    let prefix = format!("linux-image-{series}.");
    let suffix = format!("-{}-unsigned", arch.debian());
    names
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&prefix) && n.ends_with(&suffix))
        .filter(|n| !n.contains("-cloud-") && !n.contains("-rt-") && !n.contains("-16k-"))
        .max_by_key(|n| version_key(&n[prefix.len()..n.len() - suffix.len()]))
        .map(str::to_string)
}

fn apt_search(series: &str, archive: &Archive) -> Result<String> {
    let pattern = format!("^linux-image-{}\\.", series.replace('.', "\\."));
    let out = archive
        .command("apt-cache")?
        .args(["search", "--names-only", &pattern])
        .output()
        .context("cannot run apt-cache")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The cached kernel of `series` with the highest ABI number, if any.
fn newest_cached(series: &str, arch: Arch) -> Option<String> {
    let names: String = std::fs::read_dir(cache_dir())
        .ok()?
        .flatten()
        .filter(|e| e.path().join("vmlinux.btf").exists())
        .map(|e| format!("{}\n", e.file_name().to_string_lossy()))
        .collect();
    newest_package(series, arch, &names)
}

/// `6.12-arm64` -> (`6.12`, arm64); `6.1` -> (`6.1`, the host's arch);
/// `linux-image-6.12.118+deb12-arm64-unsigned` -> its series and arch.
pub fn parse_spec(which: &str) -> (String, Arch, Option<String>) {
    if let Some(rest) = which.strip_prefix("linux-image-") {
        let series = rest.splitn(3, '.').take(2).collect::<Vec<_>>().join(".");
        let arch = if which.ends_with("-arm64-unsigned") {
            Arch::Arm64
        } else {
            Arch::Amd64
        };
        return (series, arch, Some(which.to_string()));
    }
    match which.rsplit_once('-') {
        Some((series, "arm64")) => (series.to_string(), Arch::Arm64, None),
        Some((series, "amd64")) => (series.to_string(), Arch::Amd64, None),
        _ => (which.to_string(), Arch::native(), None),
    }
}

/// Whether the private lists of `archive` are missing or older than a day
/// (the system's lists are the system's business).
fn stale(archive: &Archive) -> bool {
    let Some(dir) = archive.dir() else {
        return false;
    };
    let newest = std::fs::read_dir(dir.join("lists"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("_Packages"))
        .filter_map(|e| e.metadata().ok()?.modified().ok())
        .max();
    newest.is_none_or(|t| t.elapsed().unwrap_or_default().as_secs() > 24 * 3600)
}

/// Resolves, downloads and extracts the kernel of `series` (`6.1`,
/// `6.12-arm64`) or of an exact package name; cached kernels are reused.
pub fn fetch(which: &str) -> Result<Kernel> {
    let (series, arch, package) = parse_spec(which);
    ensure!(
        version_key(&series).len() == 2,
        "kernel `{which}`: name a series such as 5.10, 6.1, 6.12 or 6.12-arm64, or a package \
         such as linux-image-6.1.0-56-amd64-unsigned"
    );
    let archive = archive_of(&series, arch);
    let package = match package {
        Some(p) => p,
        None => {
            if stale(&archive) {
                if let Err(e) = archive.update() {
                    eprintln!("xtask: {e:#}; using the package lists as they are");
                }
            }
            let mut found = newest_package(&series, arch, &apt_search(&series, &archive)?);
            if found.is_none() && archive == Archive::System {
                // A fresh machine may not have the package lists yet.
                archive.update()?;
                found = newest_package(&series, arch, &apt_search(&series, &archive)?);
            }
            match found.or_else(|| newest_cached(&series, arch)) {
                Some(p) => p,
                None => bail!(
                    "no linux-image-{series}.*-{}-unsigned package in apt's lists ({}) and none \
                     cached in {}; check that {MIRROR} is reachable, or add the Debian suite \
                     that carries it to /etc/apt/sources.list",
                    arch.debian(),
                    match archive.dir() {
                        Some(d) => d.display().to_string(),
                        None => "the system's".to_string(),
                    },
                    cache_dir().display()
                ),
            }
        }
    };
    let dir = cache_dir().join(&package);
    let kernel = Kernel {
        series,
        arch,
        package: package.clone(),
        vmlinux: dir.join("vmlinux"),
        btf: dir.join("vmlinux.btf"),
    };
    if kernel.btf.exists() && kernel.vmlinux.exists() {
        return Ok(kernel);
    }
    if let Err(e) = download(&package, &archive, arch, &dir) {
        if let Some(cached) = newest_cached(&kernel.series, arch) {
            eprintln!("xtask: {e:#}; using the cached {cached}");
            return fetch(&cached);
        }
        return Err(e);
    }
    prune_older(&kernel);
    Ok(kernel)
}

/// A static busybox for `arch` (Debian's busybox-static), the guests'
/// shell and tools, downloaded once like the kernels.
pub fn fetch_busybox(arch: Arch) -> Result<PathBuf> {
    let dir = cache_dir().join(format!("busybox-{}", arch.debian()));
    let bin = dir.join("busybox");
    if bin.exists() {
        return Ok(bin);
    }
    let archive = archive_of("6.12", arch);
    if stale(&archive) {
        archive.update()?;
    }
    let work = dir.join(format!("download.{}", std::process::id()));
    std::fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
    let result = (|| -> Result<()> {
        run(archive
            .command("apt-get")?
            .args(["download", "-qq", "busybox-static"])
            .current_dir(&work))?;
        let deb = std::fs::read_dir(&work)?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .context("apt-get download left no busybox-static .deb")?;
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&work))?;
        std::fs::rename(work.join("bin/busybox"), &bin)
            .context("busybox-static holds no bin/busybox")?;
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&work);
    result.with_context(|| format!("cannot fetch busybox-static for {}", arch.debian()))?;
    Ok(bin)
}

/// A newer kernel of the series and arch replaces the cached ones (~130 MB each).
fn prune_older(kernel: &Kernel) {
    let prefix = format!("linux-image-{}.", kernel.series);
    let suffix = format!("-{}-unsigned", kernel.arch.debian());
    for e in std::fs::read_dir(cache_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name.ends_with(&suffix) && name != kernel.package {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn download(package: &str, archive: &Archive, arch: Arch, dir: &Path) -> Result<()> {
    // Per process: two runs sharing the cache must not unpack into one place.
    let work = dir.join(format!("download.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
    let result = download_into(package, archive, arch, dir, &work);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn download_into(
    package: &str,
    archive: &Archive,
    arch: Arch,
    dir: &Path,
    work: &Path,
) -> Result<()> {
    run(archive
        .command("apt-get")?
        .args(["download", "-qq", package])
        .current_dir(work))
    .with_context(|| format!("cannot download {package}"))?;
    let deb = std::fs::read_dir(work)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .with_context(|| format!("apt-get download left no .deb in {}", work.display()))?;
    // Only ./boot: the modules are hundreds of MB nobody here needs.
    let tar = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(&deb)
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run dpkg-deb")?;
    let status = Command::new("tar")
        .args(["-x", "-C"])
        .arg(work)
        .args(["--wildcards", "./boot/vmlinuz-*"])
        .stdin(tar.stdout.context("dpkg-deb stdout")?)
        .status()
        .context("cannot run tar")?;
    ensure!(
        status.success(),
        "extracting the kernel from {} failed",
        deb.display()
    );
    let vmlinuz = std::fs::read_dir(work.join("boot"))?
        .flatten()
        .map(|e| e.path())
        .next()
        .with_context(|| format!("{} holds no boot/vmlinuz-*", deb.display()))?;
    let image = std::fs::read(&vmlinuz)?;
    let tmp = work.join("vmlinux");
    let btf_tmp = work.join("vmlinux.btf");
    let btf = match arch {
        Arch::Amd64 => {
            let vmlinux = decompress_bzimage(&image)
                .with_context(|| format!("cannot extract vmlinux from {}", vmlinuz.display()))?;
            std::fs::write(&tmp, &vmlinux)?;
            run(Command::new("objcopy")
                .args(["-O", "binary", "--only-section=.BTF"])
                .arg(&tmp)
                .arg(&btf_tmp))?;
            std::fs::read(&btf_tmp)?
        }
        // Debian's arm64 vmlinuz is the uncompressed `Image` QEMU boots; it
        // has no ELF sections, so the BTF blob is found by its header.
        Arch::Arm64 => {
            ensure!(
                image.get(0x38..0x3c) == Some(b"ARM\x64"),
                "{} is not an arm64 Image (no ARM\\x64 magic)",
                vmlinuz.display()
            );
            let btf = find_btf(&image).with_context(|| {
                format!("{package}: no BTF in the Image; proctor needs CONFIG_DEBUG_INFO_BTF")
            })?;
            std::fs::write(&tmp, &image)?;
            std::fs::write(&btf_tmp, btf)?;
            btf.to_vec()
        }
    };
    ensure!(
        btf.starts_with(&[0x9f, 0xeb]),
        "{package}: the vmlinux has no .BTF section; proctor needs CONFIG_DEBUG_INFO_BTF"
    );
    // The BTF last: its presence is what marks a complete cache entry.
    std::fs::rename(&tmp, dir.join("vmlinux"))?;
    std::fs::rename(&btf_tmp, dir.join("vmlinux.btf"))?;
    Ok(())
}

/// The kernel's BTF inside a raw image: the header (magic 0xeb9f, version 1,
/// 24-byte header) gives the blob's length; the type and string sections
/// must fit in it.
pub fn find_btf(image: &[u8]) -> Option<&[u8]> {
    const HEAD: &[u8] = &[0x9f, 0xeb, 1, 0, 24, 0, 0, 0];
    let mut from = 0;
    while let Some(i) = image[from..].windows(HEAD.len()).position(|w| w == HEAD) {
        let at = from + i;
        let u = |o: usize| -> Option<usize> {
            Some(u32::from_le_bytes(image.get(at + o..at + o + 4)?.try_into().ok()?) as usize)
        };
        let (type_off, type_len, str_off, str_len) = (u(8)?, u(12)?, u(16)?, u(20)?);
        let len = 24 + (type_off + type_len).max(str_off + str_len);
        // A real blob's types begin at 0 and its strings right after them.
        if type_off == 0 && str_off == type_len && type_len > 0 && str_len > 0 {
            if let Some(blob) = image.get(at..at + len) {
                return Some(blob);
            }
        }
        from = at + 1;
    }
    None
}

/// The uncompressed kernel inside an x86 bzImage: the boot protocol header
/// (2.08+) says where the compressed payload sits; its last four bytes are
/// the uncompressed size, which the result must match.
pub fn decompress_bzimage(image: &[u8]) -> Result<Vec<u8>> {
    let u32_at = |off: usize| -> Result<u32> {
        let b = image
            .get(off..off + 4)
            .context("image too short for a bzImage header")?;
        Ok(u32::from_le_bytes(b.try_into().unwrap()))
    };
    ensure!(
        image.get(0x202..0x206) == Some(b"HdrS"),
        "not a bzImage (no HdrS header)"
    );
    let protocol = u16::from_le_bytes([image[0x206], image[0x207]]);
    ensure!(
        protocol >= 0x208,
        "boot protocol {protocol:#x} predates payload fields (2.08)"
    );
    let setup_sects = match image[0x1f1] {
        0 => 4,
        n => n as usize,
    };
    let start = (setup_sects + 1) * 512 + u32_at(0x248)? as usize;
    let len = u32_at(0x24c)? as usize;
    let payload = image
        .get(start..start + len)
        .context("payload runs past the end of the image")?;
    ensure!(len > 4, "empty payload");
    let (compressed, size) = payload.split_at(len - 4);
    let size = u32::from_le_bytes(size.try_into().unwrap()) as usize;
    let tool: &[&str] = match compressed {
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => &["xz", "-dc"],
        [0x28, 0xb5, 0x2f, 0xfd, ..] => &["zstd", "-dc"],
        [0x1f, 0x8b, ..] => &["gzip", "-dc"],
        other => bail!(
            "unknown kernel compression (magic {:02x?}); xz, zstd and gzip are supported",
            &other[..other.len().min(6)]
        ),
    };
    let mut child = Command::new(tool[0])
        .args(&tool[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", tool[0]))?;
    let mut stdin = child.stdin.take().unwrap();
    let input = compressed.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let mut out = Vec::with_capacity(size);
    child.stdout.take().unwrap().read_to_end(&mut out)?;
    let status = child.wait()?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer thread panicked"))?
        .with_context(|| format!("feeding {}", tool[0]))?;
    ensure!(status.success(), "{} failed with {status}", tool[0]);
    ensure!(
        out.len() == size,
        "decompressed {} bytes, the image says {size}",
        out.len()
    );
    ensure!(
        out.starts_with(b"\x7fELF"),
        "the payload is not an ELF vmlinux"
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const APT: &str = "\
linux-image-6.1.0-47-amd64-unsigned - Linux 6.1 for 64-bit PCs
linux-image-6.1.0-9-amd64-unsigned - Linux 6.1 for 64-bit PCs
linux-image-6.1.0-56-cloud-amd64-unsigned - Linux 6.1 for x86-64 cloud
linux-image-6.1.0-56-amd64-unsigned - Linux 6.1 for 64-bit PCs
linux-image-6.1.0-56-rt-amd64-unsigned - Linux 6.1 for 64-bit PCs, PREEMPT_RT
linux-image-6.12.9+deb12-amd64-unsigned - Linux 6.12 for 64-bit PCs
linux-image-6.12.117+deb12-amd64-unsigned - Linux 6.12 for 64-bit PCs
linux-image-6.12.117+deb12-rt-amd64-unsigned - Linux 6.12 for 64-bit PCs, PREEMPT_RT
linux-image-6.12.118+deb12-arm64-unsigned - Linux 6.12 for 64-bit ARMv8 machines
linux-image-6.12.118+deb12-arm64-16k-unsigned - Linux 6.12 for 64-bit ARMv8 machines, 16k pages
";

    #[test]
    fn picks_the_newest_generic_image_of_a_series() {
        assert_eq!(
            newest_package("6.1", Arch::Amd64, APT).as_deref(),
            Some("linux-image-6.1.0-56-amd64-unsigned")
        );
        assert_eq!(
            newest_package("6.12", Arch::Amd64, APT).as_deref(),
            Some("linux-image-6.12.117+deb12-amd64-unsigned")
        );
        assert_eq!(newest_package("6.6", Arch::Amd64, APT), None);
        assert_eq!(
            newest_package("6.12", Arch::Arm64, APT).as_deref(),
            Some("linux-image-6.12.118+deb12-arm64-unsigned")
        );
    }

    #[test]
    fn specs_name_series_arch_and_the_archive_serving_them() {
        assert_eq!(parse_spec("6.12-arm64"), ("6.12".into(), Arch::Arm64, None));
        assert_eq!(parse_spec("5.10").0, "5.10");
        let (s, a, p) = parse_spec("linux-image-6.12.118+deb12-arm64-unsigned");
        assert_eq!((s.as_str(), a), ("6.12", Arch::Arm64));
        assert!(p.is_some());
        assert_eq!(archive_of("6.1", Arch::Amd64), Archive::System);
        assert!(matches!(
            archive_of("5.10", Arch::Amd64),
            Archive::Private {
                release: "bullseye",
                ..
            }
        ));
        assert!(matches!(
            archive_of("6.12", Arch::Arm64),
            Archive::Private {
                release: "bookworm",
                arch: Arch::Arm64,
                ..
            }
        ));
    }

    #[test]
    fn btf_is_found_in_a_raw_image_by_its_header() {
        let mut blob = vec![0x9f, 0xeb, 1, 0, 24, 0, 0, 0];
        for v in [0u32, 8, 8, 5] {
            blob.extend_from_slice(&v.to_le_bytes());
        }
        blob.extend_from_slice(b"typesxxx\0abc\0");
        // A decoy header whose sections do not add up comes first.
        let mut image = vec![0u8; 100];
        image.extend_from_slice(&[0x9f, 0xeb, 1, 0, 24, 0, 0, 0, 9, 9, 9, 9]);
        image.extend_from_slice(&blob);
        image.extend_from_slice(b"after");
        assert_eq!(find_btf(&image), Some(&blob[..]));
        assert_eq!(find_btf(&[0u8; 64]), None);
    }

    /// A minimal bzImage around a gzip payload: the header fields the
    /// extraction reads, laid out as the x86 boot protocol defines them.
    fn bzimage(payload_plain: &[u8]) -> Vec<u8> {
        let mut gz = Command::new("gzip")
            .arg("-c")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        gz.stdin.take().unwrap().write_all(payload_plain).unwrap();
        let mut payload = gz.wait_with_output().unwrap().stdout;
        payload.extend_from_slice(&(payload_plain.len() as u32).to_le_bytes());
        let setup_sects = 1u8;
        let mut image = vec![0u8; (setup_sects as usize + 1) * 512];
        image[0x1f1] = setup_sects;
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        image[0x248..0x24c].copy_from_slice(&16u32.to_le_bytes());
        image[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        image.extend_from_slice(&[0u8; 16]);
        image.extend_from_slice(&payload);
        image.extend_from_slice(b"trailing setup data");
        image
    }

    #[test]
    fn payload_is_found_decompressed_and_size_checked() {
        let mut elf = b"\x7fELF".to_vec();
        elf.extend((0..50_000u32).map(|i| (i % 251) as u8));
        assert_eq!(decompress_bzimage(&bzimage(&elf)).unwrap(), elf);
        let not_elf = vec![7u8; 1000];
        let err = decompress_bzimage(&bzimage(&not_elf)).unwrap_err();
        assert!(err.to_string().contains("not an ELF"), "{err}");
    }

    #[test]
    fn not_a_bzimage_is_a_clear_error() {
        let err = decompress_bzimage(&[0u8; 4096]).unwrap_err();
        assert!(err.to_string().contains("HdrS"), "{err}");
    }
}
