//! Attest throughput and latency for `cargo xtask bench`: `workers` tasks
//! each keep one channel to the agent's socket (as an identity server's
//! plugin does) and call `Attestation.Attest` back to back for `seconds`,
//! cycling over `pids`. Prints one JSON object.
//!
//! Usage: attest_bench SOCKET WORKERS SECONDS PID[,PID...]

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use proctor::api::{
    client,
    pb::{attestation_client::AttestationClient, AttestRequest},
};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [socket, workers, seconds, pids] = &args[..] else {
        anyhow::bail!("usage: attest_bench SOCKET WORKERS SECONDS PID[,PID...]");
    };
    let socket = PathBuf::from(socket);
    let workers: usize = workers.parse()?;
    let run_for = Duration::from_secs_f64(seconds.parse()?);
    let pids: Vec<i32> = pids.split(',').map(str::parse).collect::<Result<_, _>>()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (lat, errors, wall) = rt.block_on(async {
        let channel = client::connect(&socket).await?;
        let t = Instant::now();
        let tasks: Vec<_> = (0..workers)
            .map(|w| {
                let mut c = AttestationClient::new(channel.clone());
                let pids = pids.clone();
                tokio::spawn(async move {
                    let (mut lat, mut errors) = (Vec::new(), 0u64);
                    let mut i = w;
                    while t.elapsed() < run_for {
                        let req = AttestRequest {
                            pid: pids[i % pids.len()],
                            ..Default::default()
                        };
                        i += 1;
                        let c0 = Instant::now();
                        match c.attest(req).await {
                            Ok(_) => lat.push(c0.elapsed().as_secs_f64() * 1e6),
                            Err(_) => errors += 1,
                        }
                    }
                    (lat, errors)
                })
            })
            .collect();
        let (mut lat, mut errors) = (Vec::new(), 0);
        for task in tasks {
            let (l, e) = task.await?;
            lat.extend(l);
            errors += e;
        }
        anyhow::Ok((lat, errors, t.elapsed().as_secs_f64()))
    })?;
    let mut sorted = lat;
    sorted.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({
            "calls": sorted.len(),
            "errors": errors,
            "calls_per_s": sorted.len() as f64 / wall,
            "p50_us": percentile(&sorted, 50.0),
            "p99_us": percentile(&sorted, 99.0),
            "workers": workers,
        })
    );
    Ok(())
}
