//! Real-kernel tests of the agent's memory bounds: exited-process records
//! held for the grace period stop at `process_table.max_exited`, and the
//! evictions are counted in `agent_status` and `/metrics`.

use std::process::Command;

use serde_json::Value;

use crate::harness::*;

fn config(max_exited: usize) -> String {
    format!(
        "status_interval: 500ms\nmetrics:\n  listen: 127.0.0.1:0\napi:\n  enabled: false\nprocess_table:\n  exit_grace: 5m\n  max_exited: {max_exited}\n"
    )
}

fn table(status: &Value) -> (u64, u64) {
    let t = &status["status"]["process_table"];
    (
        t["exited"].as_u64().expect("process_table.exited"),
        t["evicted_early"]
            .as_u64()
            .expect("process_table.evicted_early"),
    )
}

/// Two agents watch the same 40 short processes: one bounded at 8 exited
/// records, one at 65536 (the control: it must hold all 40 and evict none).
#[test]
fn exited_records_stop_at_max_exited_and_the_evictions_are_counted_in_status_and_metrics() {
    let bounded = AgentProc::start(&config(8));
    let control = AgentProc::start(&config(65536));
    let m = marker("max-exited");
    for _ in 0..40 {
        run(Command::new("/bin/true").arg(&m));
    }
    // Both saw every exit of the marked processes before judging the table.
    for agent in [&bounded, &control] {
        let exits = |a: &AgentProc| {
            a.events()
                .iter()
                .filter(|e| e["kind"] == "process_exit" && has_arg(e, &m))
                .count()
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while exits(agent) < 40 {
            assert!(
                std::time::Instant::now() < deadline,
                "saw {} of 40 process_exit events; stderr:\n{}",
                exits(agent),
                agent.stderr()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    let b = bounded.status_after(bounded.last_seq());
    let (exited, evicted) = table(&b);
    assert!(exited <= 8, "bound not kept: {b}");
    assert!(
        evicted >= 32,
        "40 exits through an 8-record table must evict 32: {b}"
    );
    let c = control.status_after(control.last_seq());
    let (c_exited, c_evicted) = table(&c);
    assert!(
        c_exited >= 40,
        "the control agent must hold all 40 exits: {c}"
    );
    assert_eq!(c_evicted, 0, "the control agent evicted: {c}");

    // The status counter reaches /metrics (mirrored every 2 s).
    let addr = b["status"]["metrics_listen"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, text) = http_get(&addr, "/metrics");
        let n = sample_opt(&text, "proctor_processes_evicted_early_total").unwrap_or(0.0);
        if n >= 32.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "proctor_processes_evicted_early_total stayed at {n}:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
