//! A fork/exec storm against the real agent, in its own test binary so that
//! the other tests' agents do not share the machine with it.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

fn dropped(status: &Value) -> u64 {
    status["status"]["kernel"]["dropped"]["exec"]
        .as_u64()
        .unwrap()
}

#[test]
fn exec_storm_every_exec_reported_or_counted_and_table_bounded() {
    // Its own agent: the table-size assertions need a quiet baseline.
    let agent = AgentProc::start(TEST_CONFIG);
    let before = agent.status_after(agent.last_seq());
    let live_before = before["status"]["process_table"]["live"].as_u64().unwrap();
    let m = marker("storm");
    const N: usize = 3000;
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let m = m.clone();
            std::thread::spawn(move || {
                for i in (t..N).step_by(4) {
                    run(Command::new("/bin/true").arg(&m).arg(i.to_string()));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // A status emitted after the last exec has been read covers all of them.
    let last = agent.wait_for(|e| is_exec_with(e, &m) && has_arg(e, &(N - 1).to_string()));
    let _ = last;
    let after = agent.status_after(agent.last_seq());
    let seen = agent
        .events()
        .iter()
        .filter(|e| is_exec_with(e, &m))
        .count();
    let lost = dropped(&after) - dropped(&before);
    assert!(
        seen as u64 + lost >= N as u64,
        "{seen} reported + {lost} dropped < {N} executed"
    );
    // Exited processes are forgotten after exit_grace (3s): the table returns
    // to its baseline instead of growing with every process ever seen.
    std::thread::sleep(std::time::Duration::from_secs(5));
    let settled = agent.status_after(agent.last_seq());
    let t = &settled["status"]["process_table"];
    assert!(
        t["live"].as_u64().unwrap() <= live_before + 50,
        "live grew from {live_before}: {t}"
    );
    assert!(
        t["exited"].as_u64().unwrap() < 500,
        "exited not expired: {t}"
    );
}
