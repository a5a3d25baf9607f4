//! Hash-cache figures, measured by the agent crate's `hash_bench` example
//! (the agent's own hashing code, outside the daemon).

use std::fmt::Write as _;

use anyhow::Result;

use super::{run_example, Ctx, Target};

pub fn section(ctx: &Ctx, targets: &mut Vec<Target>) -> Result<String> {
    let h = run_example("hash_bench", if ctx.smoke { &["--smoke"] } else { &[] })?;
    let f = |k: &str| h[k].as_f64().unwrap_or(0.0);
    let mut md = String::from("## Hash cache\n\n| figure | value |\n| --- | --- |\n");
    let _ = writeln!(
        md,
        "| machine SHA-256, same implementation (sha2 crate), in memory | {:.0} MiB/s |",
        f("raw_sha256_mib_s")
    );
    if let Some(c) = h["coreutils_sha256sum_mib_s"].as_f64() {
        let _ = writeln!(
            md,
            "| `sha256sum` (coreutils) on the same cached files | {c:.0} MiB/s |"
        );
    }
    let _ = writeln!(
        md,
        "| cold hash through the agent's verified path ({} files × {} MiB, page-cached) | {:.0} MiB/s ({:.0}% of in-memory SHA-256) |",
        h["files"],
        h["file_mib"],
        f("cold_hash_mib_s"),
        100.0 * f("cold_vs_raw")
    );
    let _ = writeln!(
        md,
        "| cache hit (`HashCache::request` of a hashed version, awaited) | {:.0} ns |\n",
        f("cache_hit_ns")
    );
    if !ctx.smoke {
        targets.push(Target::new(
            "cold hashing within 80% of the machine's SHA-256 speed",
            format!("{:.0}%", 100.0 * f("cold_vs_raw")),
            f("cold_vs_raw") >= 0.8,
            "the hash-cache table",
        ));
    }
    Ok(md)
}
