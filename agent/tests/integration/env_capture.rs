//! The environment captured in the kernel at exec: credentials in processes
//! too short-lived for `/proc/<pid>/environ` are found, clean environments
//! raise nothing, and no value leaves the agent.

use std::{collections::BTreeSet, process::Command};

use serde_json::Value;

use crate::harness::*;

const KEY_HEX: &str = "2b7e151628aed2a6abf7158809cf4f3c762e7160f38b4da56a784d9045190cfe";

/// A fake AWS secret access key (18 + 14 + 8 = 40 characters), different for each `i` so
/// that every process's finding is its own (findings are de-duplicated per
/// workload, variable and fingerprint). Assembled at run time: no
/// credential-shaped literal sits in the source.
fn fake_secret(i: usize) -> String {
    format!("{}{}{i:08}", "Zq4Wm8Tx2Kb6Rn0Vy3", "Hs7Lc1Pd5Gf9Ja")
}

fn agent() -> (AgentProc, tempfile::TempDir) {
    let state = tempfile::tempdir().unwrap();
    let config = format!(
        "status_interval: 1s\n{TEST_METRICS}\
         state_dir: {state}\n\
         fingerprint:\n  key: {KEY_HEX}\n\
         process_table:\n  exit_grace: 3s\n\
         secrets:\n  extra_homes: []\n  search_dirs: []\n",
        state = state.path().display(),
    );
    (AgentProc::start(&config), state)
}

/// `/bin/true <marker> <i>` with nothing in its environment but `env`: it
/// lives about a millisecond.
fn short_exec(m: &str, i: usize, env: &[(&str, &str)]) {
    let mut cmd = Command::new("/bin/true");
    cmd.arg(m).arg(i.to_string()).env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd);
}

fn is_env_finding_with(e: &Value, m: &str) -> bool {
    e["kind"] == "finding" && e["finding"]["rule"] == "secret-env" && has_arg(e, m)
}

/// Index argument of a marked process's event.
fn index_of(e: &Value) -> String {
    e["process"]["args"][2].as_str().unwrap_or("").to_string()
}

fn assert_no_value_leaves(agent: &AgentProc, values: &[String]) {
    let events: String = agent
        .events()
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    let logs = agent.stderr();
    for v in values {
        assert!(
            !events.contains(v.as_str()),
            "a raw secret value appears in the agent's events"
        );
        assert!(
            !logs.contains(v.as_str()),
            "a raw secret value appears in the agent's logs"
        );
    }
}

#[test]
fn a_one_millisecond_process_with_an_aws_secret_in_its_env_raises_secret_env_and_a_clean_one_nothing(
) {
    let (agent, _state) = agent();
    let clean = marker("env-clean");
    let dirty = marker("env-dirty");
    // Not one the burst test uses: every agent sees every process, and a
    // finding is reported once per workload, variable and secret.
    let secret = fake_secret(99_999_999);
    // The clean one first: environments are judged in exec order, so when
    // the dirty one's finding is out, the clean one has been judged.
    short_exec(&clean, 0, &[("LANG", "C.UTF-8"), ("HOME", "/root")]);
    short_exec(&dirty, 0, &[("AWS_SECRET_ACCESS_KEY", &secret)]);
    let found = agent.wait_for(|e| is_env_finding_with(e, &dirty));
    assert_eq!(
        found["finding"]["secret"]["variable"], "AWS_SECRET_ACCESS_KEY",
        "{found}"
    );
    assert_eq!(
        found["finding"]["secret"]["id"], "env:aws-access-key",
        "{found}"
    );
    assert!(
        found["finding"]["secret"]["fingerprint"]
            .as_str()
            .is_some_and(|f| f.starts_with("hmac-sha256:")),
        "{found}"
    );
    // Whole: no truncation note on a small environment.
    assert!(found["finding"]["evidence"]["reason"].is_null(), "{found}");
    // The hook saw the clean process too (positive control), and raised nothing.
    let clean_exec = agent.wait_for(|e| is_exec_with(e, &clean));
    let false_alarm = agent
        .events()
        .into_iter()
        .find(|e| is_env_finding_with(e, &clean));
    assert!(
        false_alarm.is_none(),
        "a clean environment raised {false_alarm:?} (its exec: {clean_exec})"
    );
    let status = agent.status_after(agent.last_seq());
    assert!(
        status["status"]["kernel"]["sent"]["exec_env"]
            .as_u64()
            .unwrap()
            >= 2,
        "{}",
        status["status"]["kernel"]
    );
    assert_no_value_leaves(&agent, &[secret]);
}

#[test]
fn a_burst_of_2000_short_execs_misses_no_secret_and_flags_no_clean_env() {
    // Measured for drops: no other storm shares the CPUs.
    let _machine = exclusive();
    let (agent, _state) = agent();
    let before = agent.status_after(agent.last_seq());
    let m = marker("env-burst");
    const N: usize = 2000;
    // Even indexes carry a secret, odd ones a clean environment.
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let m = m.clone();
            std::thread::spawn(move || {
                for i in (t..N).step_by(4) {
                    if i % 2 == 0 {
                        short_exec(&m, i, &[("AWS_SECRET_ACCESS_KEY", &fake_secret(i))]);
                    } else {
                        short_exec(&m, i, &[("LANG", "C.UTF-8"), ("TERM", "dumb")]);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Until every secret is found, or two statuses in a row add nothing.
    let mut last = None;
    let (found, execs, after) = loop {
        let after = agent.status_after(agent.last_seq());
        let events = agent.events();
        let found: BTreeSet<String> = events
            .iter()
            .filter(|e| is_env_finding_with(e, &m))
            .map(index_of)
            .collect();
        let execs = events.iter().filter(|e| is_exec_with(e, &m)).count();
        if found.len() >= N / 2 || last == Some(found.len()) {
            break (found, execs, after);
        }
        last = Some(found.len());
    };
    assert_eq!(execs, N, "execs reported (positive control)");
    let missed: Vec<usize> = (0..N)
        .step_by(2)
        .filter(|i| !found.contains(&i.to_string()))
        .collect();
    assert!(
        missed.is_empty(),
        "missed = {} of {}, e.g. {:?}; agent: {}",
        missed.len(),
        N / 2,
        &missed[..missed.len().min(20)],
        after["status"]
    );
    let false_alarms: Vec<&String> = found
        .iter()
        .filter(|i| i.parse::<usize>().unwrap() % 2 == 1)
        .collect();
    assert!(
        false_alarms.is_empty(),
        "clean environments flagged: {false_alarms:?}"
    );
    let n = |s: &Value, k: &str| s["status"]["kernel"][k]["exec_env"].as_u64().unwrap();
    assert_eq!(
        n(&after, "dropped") - n(&before, "dropped"),
        0,
        "{}",
        after["status"]["kernel"]
    );
    assert!(n(&after, "sent") - n(&before, "sent") >= N as u64);
    // The 1000 clean environments are one block: after the first few
    // scans (up to 256 run at once) the rest are judged as repeats of a
    // clean one, and no secret above was missed for it.
    let repeats = |s: &Value| {
        s["status"]["secrets"]["env_clean_repeats"]
            .as_u64()
            .unwrap()
    };
    let clean_repeats = repeats(&after) - repeats(&before);
    // The agent sees every exec on the machine: another program exec'ing
    // meanwhile with an environment it repeats (a shell loop's `sleep`) is
    // a clean repeat too, counted in the captured environments beyond N.
    let others = (n(&after, "sent") - n(&before, "sent")).saturating_sub(N as u64);
    assert!(
        (N as u64 / 4..=N as u64 / 2 + others).contains(&clean_repeats),
        "{clean_repeats} clean repeats of {} identical clean environments ({others} other execs): {}",
        N / 2,
        after["status"]["secrets"]
    );
    assert_no_value_leaves(
        &agent,
        &(0..N).step_by(2).map(fake_secret).collect::<Vec<_>>(),
    );
}
