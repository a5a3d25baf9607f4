//! Struct offsets resolved from other kernels' BTF: the Debian kernels that
//! `cargo xtask vm-test` boots. Their layouts differ from this host's; the
//! resolver must find each kernel's own spelling of each field, with no
//! per-kernel constants. (The guests then prove the offsets give right
//! events: exec inode, size and sha256 checked against the guest's files.)

use std::path::Path;

use proctor::kernel::btf_offsets::{load_kernel_btf, resolve, OffsetResolver, VMLINUX_BTF};

/// `name: value` pairs of the resolved offsets, from their Debug form.
fn fields(off: &proctor_common::Offsets) -> Vec<(String, u32)> {
    let text = format!("{off:?}");
    let inner = text
        .trim_start_matches("Offsets {")
        .trim_end_matches('}')
        .to_string();
    inner
        .split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once(':')?;
            Some((k.trim().to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

fn series_of(release: &str) -> (u32, u32) {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let major = it.next().and_then(|s| s.parse().ok()).unwrap();
    let minor = it.next().and_then(|s| s.parse().ok()).unwrap();
    (major, minor)
}

/// Which spelling of the inode timestamps a kernel of this series has:
/// `struct timespec64 i_mtime` until 6.6, `__i_mtime` in 6.7-6.10, split
/// `i_mtime_sec`/`i_mtime_nsec` from 6.11.
fn expected_mtime_field(series: (u32, u32)) -> &'static str {
    if series < (6, 7) {
        "i_mtime.tv_sec"
    } else if series < (6, 11) {
        "__i_mtime.tv_sec"
    } else {
        "i_mtime_sec"
    }
}

#[test]
#[ignore = "run by `cargo xtask vm-test`, which fetches the guest kernels and names their BTF in PROCTOR_GUEST_BTF"]
fn guest_kernel_offsets_differ_from_the_host_where_layouts_differ() {
    let spec = std::env::var("PROCTOR_GUEST_BTF").expect(
        "PROCTOR_GUEST_BTF (series=path,...) is not set: run this test through `cargo xtask vm-test`",
    );
    let host_btf = load_kernel_btf(Path::new(VMLINUX_BTF)).unwrap();
    let host = resolve(&host_btf).unwrap();
    let host_fields = fields(&host);
    assert!(
        host_fields.len() > 40,
        "Debug form of Offsets changed: {host:?}"
    );
    let host_release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let host_series = series_of(&host_release);

    for item in spec.split(',') {
        let (series, path) = item
            .split_once('=')
            .unwrap_or_else(|| panic!("PROCTOR_GUEST_BTF item `{item}` is not series=path"));
        let btf = load_kernel_btf(Path::new(path)).unwrap();
        let off = resolve(&btf)
            .unwrap_or_else(|e| panic!("offsets for {series} ({path}) do not resolve: {e:#}"));
        let guest_fields = fields(&off);
        let differ: Vec<String> = guest_fields
            .iter()
            .zip(&host_fields)
            .filter(|(g, h)| g.1 != h.1)
            .map(|(g, h)| format!("{} {}->{}", g.0, h.1, g.1))
            .collect();
        println!(
            "{series}: {} of {} offsets differ from host {}: {}",
            differ.len(),
            guest_fields.len(),
            host_release.trim(),
            differ.join(", ")
        );
        assert!(
            !differ.is_empty(),
            "{series}: identical to the host's layout"
        );

        // The resolver took this kernel's own spelling of the timestamps.
        let guest_series = series_of(series);
        let r = OffsetResolver::new(&btf);
        let field = expected_mtime_field(guest_series);
        assert_eq!(
            r.offset("inode", field).unwrap(),
            Some(off.inode_mtime_sec),
            "{series}: inode.{field}"
        );
        let timespec = guest_series < (6, 11);
        assert_eq!(off.inode_time_is_timespec, timespec as u32, "{series}");
        if timespec != (host_series < (6, 11)) {
            // Different representations: the ctime fields sit elsewhere.
            assert_ne!(off.inode_ctime_sec, host.inode_ctime_sec, "{series}");
            assert_ne!(off.inode_ctime_nsec, host.inode_ctime_nsec, "{series}");
        }
        // Facts that hold on every kernel, whatever the layout.
        assert_eq!(off.task_tgid, off.task_pid + 4, "{series}");
        assert!(off.cred_euid > off.cred_uid, "{series}");
    }
}
