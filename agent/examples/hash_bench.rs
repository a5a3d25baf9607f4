//! Hash-cache figures for `cargo xtask bench`: cache-hit cost, cold hashing
//! throughput through the agent's verified path, and the machine's raw
//! SHA-256 speed with the same implementation. Prints one JSON object.
//!
//! Usage: hash_bench [--smoke]

use std::{
    io::Write,
    path::PathBuf,
    time::{Duration, Instant},
};

use proctor::identity::hash_cache::{FileKey, HashCache, HashOutcome, Source};
use sha2::{Digest, Sha256};

fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let file_mib: usize = if smoke { 4 } else { 64 };
    let files = if smoke { 2 } else { 8 };
    let hits: u32 = if smoke { 10_000 } else { 1_000_000 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    // Raw SHA-256 over memory: the machine's ceiling for this implementation.
    let buf = vec![0x5au8; file_mib << 20];
    let rounds = if smoke { 1 } else { 4 };
    let t = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(Sha256::digest(&buf));
    }
    let raw_mib_s = (file_mib * rounds) as f64 / t.elapsed().as_secs_f64();

    // Cold hashing through the cache: distinct files in the page cache.
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = (0..files)
        .map(|i| {
            let p = dir.path().join(format!("bin{i}"));
            let mut f = std::fs::File::create(&p).unwrap();
            let mut chunk = buf.clone();
            chunk[0] = i as u8;
            f.write_all(&chunk).unwrap();
            p
        })
        .collect();
    // Warm the page cache so the figure is hashing, not disk.
    for p in &paths {
        std::hint::black_box(std::fs::read(p).unwrap());
    }
    let cache = HashCache::new(1024, 1, u64::MAX);
    let keys: Vec<FileKey> = paths
        .iter()
        .map(|p| FileKey::of(&std::fs::metadata(p).unwrap()))
        .collect();
    let t = Instant::now();
    rt.block_on(async {
        for (k, p) in keys.iter().zip(&paths) {
            let out = cache.request(*k, vec![Source::Path(p.clone())]).await;
            assert!(matches!(out, HashOutcome::Ok(_)), "{out:?}");
        }
    });
    let cold = t.elapsed();
    let cold_mib_s = (file_mib * files) as f64 / cold.as_secs_f64();

    // Cache hits: the cost an exec of an already-hashed binary pays.
    let t = Instant::now();
    rt.block_on(async {
        for i in 0..hits {
            let k = keys[i as usize % keys.len()];
            std::hint::black_box(cache.request(k, Vec::new()).await);
        }
    });
    let hit_ns = t.elapsed().as_nanos() as f64 / hits as f64;

    // sha256sum from coreutils on the same (cached) files, for a second opinion.
    let t = Instant::now();
    let ok = std::process::Command::new("sha256sum")
        .args(&paths)
        .stdout(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let coreutils_mib_s = ok.then(|| (file_mib * files) as f64 / secs(t.elapsed()));

    println!(
        "{}",
        serde_json::json!({
            "file_mib": file_mib,
            "files": files,
            "raw_sha256_mib_s": raw_mib_s,
            "coreutils_sha256sum_mib_s": coreutils_mib_s,
            "cold_hash_mib_s": cold_mib_s,
            "cold_vs_raw": cold_mib_s / raw_mib_s,
            "cache_hit_ns": hit_ns,
            "cache_hits_measured": hits,
        })
    );
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}
