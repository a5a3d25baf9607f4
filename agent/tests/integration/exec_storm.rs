//! A fork/exec storm against a real agent of its own: every exec is reported
//! with the binary's real path and hash, none is dropped, and the process
//! table returns to its baseline.

use std::process::Command;

use serde_json::Value;

use crate::harness::*;

fn dropped(status: &Value) -> u64 {
    status["status"]["kernel"]["dropped"]["exec"]
        .as_u64()
        .unwrap()
}

#[test]
fn exec_storm_every_exec_reported_none_dropped_and_table_bounded() {
    // No other storm or image build shares the CPUs: the agent keeps up with
    // 3000 execs on an otherwise quiet machine, so a drop is a failure.
    let _machine = exclusive();
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
    // every record, i.e. until every exec is seen or two statuses in a row
    // see nothing new.
    let mut last_seen = None;
    let (seen, after, execs) = loop {
        let after = agent.status_after(agent.last_seq());
        let execs: Vec<Value> = agent
            .events()
            .into_iter()
            .filter(|e| is_exec_with(e, &m))
            .collect();
        let seen: std::collections::BTreeSet<String> = execs
            .iter()
            .map(|e| e["process"]["args"][2].as_str().unwrap_or("").to_string())
            .collect();
        if seen.len() >= N || last_seen == Some(seen.len()) {
            break (seen, after, execs);
        }
        last_seen = Some(seen.len());
    };
    // Drops are counted for every process on the machine, so they cannot
    // stand in for an exec of ours that was not seen: each one must be there.
    let missing: Vec<usize> = (0..N).filter(|i| !seen.contains(&i.to_string())).collect();
    assert!(
        missing.is_empty(),
        "{} of {N} execs never reported, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    // Most of these processes are gone when their exec is read (their exit
    // is in the same drain, and /proc is not asked): the path and hash come
    // from the exec'd inode all the same, never from a guess.
    let real = std::fs::canonicalize("/bin/true").unwrap();
    let want = sha256_file(&real);
    let wrong: Vec<&Value> = execs
        .iter()
        .filter(|e| {
            let exe = &e["process"]["exe"];
            exe["path"] != real.to_str().unwrap() || exe["sha256"] != want.as_str()
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} storm execs without {} and its hash, e.g. {}",
        wrong.len(),
        execs.len(),
        real.display(),
        wrong[0]["process"]["exe"]
    );
    let lost = dropped(&after) - dropped(&before);
    assert_eq!(
        lost, 0,
        "the agent dropped {lost} exec records in the storm: {}",
        after["status"]["kernel"]
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
