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
    // Threads finish in any order: wait (boundedly) until the agent has read
    // every record, i.e. until two statuses in a row see nothing new.
    let mut last_total = 0;
    let (seen, lost) = loop {
        let after = agent.status_after(agent.last_seq());
        let seen = agent
            .events()
            .iter()
            .filter(|e| is_exec_with(e, &m))
            .count() as u64;
        let lost = dropped(&after) - dropped(&before);
        if seen + lost >= N as u64 || seen + lost == last_total {
            break (seen, lost);
        }
        last_total = seen + lost;
    };
    assert!(
        seen + lost >= N as u64,
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
