//! Debian kernels for the VM matrix: the newest `linux-image-<series>.*-amd64-unsigned`
//! apt knows, downloaded (never installed), reduced to an uncompressed
//! `vmlinux` (QEMU boots it faster than the compressed one) and its `.BTF`
//! section, and cached.

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{bail, ensure, Context, Result};

use crate::run;

pub struct Kernel {
    pub series: String,
    pub package: String,
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

/// The newest generic amd64 image of `series` in `names` (one per line, as
/// `apt-cache search --names-only` prints them: `name - description`).
pub fn newest_package(series: &str, names: &str) -> Option<String> {
    let prefix = format!("linux-image-{series}.");
    names
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&prefix) && n.ends_with("-amd64-unsigned"))
        .filter(|n| !n.contains("-cloud-") && !n.contains("-rt-"))
        .max_by_key(|n| version_key(&n[prefix.len()..n.len() - "-amd64-unsigned".len()]))
        .map(str::to_string)
}

fn apt_search(series: &str) -> Result<String> {
    let pattern = format!("^linux-image-{}\\.", series.replace('.', "\\."));
    let out = Command::new("apt-cache")
        .args(["search", "--names-only", &pattern])
        .output()
        .context("cannot run apt-cache")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The cached kernel of `series` with the highest ABI number, if any.
fn newest_cached(series: &str) -> Option<String> {
    let names: String = std::fs::read_dir(cache_dir())
        .ok()?
        .flatten()
        .filter(|e| e.path().join("vmlinux.btf").exists())
        .map(|e| format!("{}\n", e.file_name().to_string_lossy()))
        .collect();
    newest_package(series, &names)
}

/// Resolves, downloads and extracts the kernel of `series` (`6.1`) or of an
/// exact package name; cached kernels are reused.
pub fn fetch(which: &str) -> Result<Kernel> {
    let (series, package) = if let Some(rest) = which.strip_prefix("linux-image-") {
        let series = rest.splitn(3, '.').take(2).collect::<Vec<_>>().join(".");
        (series, Some(which.to_string()))
    } else {
        (which.to_string(), None)
    };
    ensure!(
        version_key(&series).len() == 2,
        "kernel `{which}`: name a series such as 6.1 or 6.12, or a package such as \
         linux-image-6.1.0-56-amd64-unsigned"
    );
    let package = match package {
        Some(p) => p,
        None => {
            let mut found = newest_package(&series, &apt_search(&series)?);
            if found.is_none() {
                // A fresh machine may not have the package lists yet.
                run(Command::new("apt-get").args(["update", "-qq"]))?;
                found = newest_package(&series, &apt_search(&series)?);
            }
            match found.or_else(|| newest_cached(&series)) {
                Some(p) => p,
                None => bail!(
                    "no linux-image-{series}.*-amd64-unsigned package in apt's lists and none \
                     cached in {}; add the Debian suite that carries it (bookworm or \
                     bookworm-security) to /etc/apt/sources.list",
                    cache_dir().display()
                ),
            }
        }
    };
    let dir = cache_dir().join(&package);
    let kernel = Kernel {
        series,
        package: package.clone(),
        vmlinux: dir.join("vmlinux"),
        btf: dir.join("vmlinux.btf"),
    };
    if kernel.btf.exists() && kernel.vmlinux.exists() {
        return Ok(kernel);
    }
    if let Err(e) = download(&package, &dir) {
        if let Some(cached) = newest_cached(&kernel.series) {
            eprintln!("xtask: {e:#}; using the cached {cached}");
            return fetch(&cached);
        }
        return Err(e);
    }
    prune_older(&kernel);
    Ok(kernel)
}

/// A newer kernel of the series replaces the cached ones (~130 MB each).
fn prune_older(kernel: &Kernel) {
    let prefix = format!("linux-image-{}.", kernel.series);
    for e in std::fs::read_dir(cache_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name != kernel.package {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn download(package: &str, dir: &Path) -> Result<()> {
    // Per process: two runs sharing the cache must not unpack into one place.
    let work = dir.join(format!("download.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
    let result = download_into(package, dir, &work);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn download_into(package: &str, dir: &Path, work: &Path) -> Result<()> {
    run(Command::new("apt-get")
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
    let vmlinux = decompress_bzimage(&image)
        .with_context(|| format!("cannot extract vmlinux from {}", vmlinuz.display()))?;
    let tmp = work.join("vmlinux");
    std::fs::write(&tmp, &vmlinux)?;
    let btf_tmp = work.join("vmlinux.btf");
    run(Command::new("objcopy")
        .args(["-O", "binary", "--only-section=.BTF"])
        .arg(&tmp)
        .arg(&btf_tmp))?;
    let btf = std::fs::read(&btf_tmp)?;
    ensure!(
        btf.starts_with(&[0x9f, 0xeb]),
        "{package}: the vmlinux has no .BTF section; proctor needs CONFIG_DEBUG_INFO_BTF"
    );
    // The BTF last: its presence is what marks a complete cache entry.
    std::fs::rename(&tmp, dir.join("vmlinux"))?;
    std::fs::rename(&btf_tmp, dir.join("vmlinux.btf"))?;
    Ok(())
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
";

    #[test]
    fn picks_the_newest_generic_image_of_a_series() {
        assert_eq!(
            newest_package("6.1", APT).as_deref(),
            Some("linux-image-6.1.0-56-amd64-unsigned")
        );
        assert_eq!(
            newest_package("6.12", APT).as_deref(),
            Some("linux-image-6.12.117+deb12-amd64-unsigned")
        );
        assert_eq!(newest_package("6.6", APT), None);
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
