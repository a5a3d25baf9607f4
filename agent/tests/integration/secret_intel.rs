//! Real-kernel tests of secret intelligence: rotation age and `secret-stale`, judged by content as the agent observed it, across restarts.

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use crate::harness::*;
use proctor::secrets::fingerprint::Fingerprinter;
use serde_json::Value;

const KEY_HEX: &str = "3a1c2a9e4b6d8f0a1c3e5a7b9d1f2e4c6a8b0d2f4e6a8c0b2d4f6e8a0c2e4a6b";

/// Fake AWS credentials, assembled at run time (no credential-shaped
/// literal in the source); `n` makes each version's content distinct.
fn aws_credentials(n: u32) -> String {
    format!(
        "[default]\naws_access_key_id = {}{n:04}\naws_secret_access_key = {}{}{n}\n",
        "AKIAZ7QX2M4V9K3J", "r9Tz1Lk3Vw7Tn2Hy5Bc9Xm4", "Ps1Dj6Gf0Ua8Ei3Oqxx"
    )
}

fn fingerprint_of(content: &str) -> String {
    Fingerprinter::from_hex(KEY_HEX)
        .unwrap()
        .fingerprint(content.as_bytes())
}

/// A home with AWS credentials and a state dir; `max_age` on the credentials.
struct Setup {
    home: tempfile::TempDir,
    state: tempfile::TempDir,
    creds: PathBuf,
    config: String,
    /// Just before the credentials were written.
    written: Instant,
}

fn setup(max_age: &str) -> Setup {
    let home = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".aws")).unwrap();
    let creds = home.path().join(".aws/credentials");
    let written = Instant::now();
    std::fs::write(&creds, aws_credentials(1)).unwrap();
    // The .pgpass next to it has no max_age: never stale.
    std::fs::write(home.path().join(".pgpass"), "localhost:5432:db:u:pw1\n").unwrap();
    let config = format!(
        "status_interval: 1s\n{TEST_METRICS}state_dir: {state}\n\
         fingerprint:\n  key: {KEY_HEX}\n\
         secrets:\n  extra_homes: [{home}]\n  search_dirs: []\n  rules:\n\
         \x20   - secret: {{path: {creds}}}\n\
         \x20     max_age: {max_age}\n",
        state = state.path().display(),
        home = home.path().display(),
        creds = creds.display(),
    );
    Setup {
        home,
        state,
        creds,
        config,
        written,
    }
}

/// The file's mtime comes from the kernel's coarse clock, a tick behind.
const TICK: Duration = Duration::from_millis(100);

fn is_stale_of(e: &Value, path: &Path, fp: &str) -> bool {
    e["kind"] == "finding"
        && e["finding"]["rule"] == "secret-stale"
        && e["finding"]["secret"]["path"] == path.to_str().unwrap()
        && e["finding"]["secret"]["fingerprint"] == fp
}

fn stale_count(agent: &AgentProc, path: &Path, fp: &str) -> usize {
    agent
        .events()
        .iter()
        .filter(|e| is_stale_of(e, path, fp))
        .count()
}

fn all_stale(agent: &AgentProc) -> Vec<Value> {
    agent
        .events()
        .into_iter()
        .filter(|e| e["kind"] == "finding" && e["finding"]["rule"] == "secret-stale")
        .collect()
}

/// Waits until `agent` shows that it read the new content of `path`
/// (a `cat` of it is reported), so that its fingerprint is the new one.
fn read_through_agent(agent: &AgentProc, path: &Path) {
    let m = marker("intel-read");
    run(Command::new("/bin/cat").arg(path).arg0(&m));
    agent.wait_for(|e| {
        e["kind"] == "finding" && e["finding"]["rule"] == "secret-read" && has_arg(e, &m)
    });
}

#[test]
fn a_secret_older_than_max_age_is_stale_once_per_period_and_young_again_when_rotated() {
    let s = setup("4s");
    let written = s.written;
    let agent = AgentProc::start(&s.config);
    let fp1 = fingerprint_of(&aws_credentials(1));

    let first = agent.wait_for(|e| is_stale_of(e, &s.creds, &fp1));
    let aged = written.elapsed();
    assert!(
        aged + TICK >= Duration::from_secs(4),
        "secret-stale after {aged:?}, before max_age 4s: {first}"
    );
    assert_eq!(first["finding"]["severity"], "medium", "{first}");
    assert_eq!(
        first["finding"]["secret"]["id"], "aws-cli-credentials",
        "{first}"
    );
    assert_eq!(first["process"]["pid"], agent.pid(), "{first}");
    // Within the period: once only.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        stale_count(&agent, &s.creds, &fp1),
        1,
        "{:#?}",
        all_stale(&agent)
    );
    // A period later: again, for the same content.
    agent.wait_for(|e| is_stale_of(e, &s.creds, &fp1) && e["seq"] != first["seq"]);
    // The .pgpass beside it, which the agent knows, has no max_age: never stale.
    assert!(
        all_stale(&agent)
            .iter()
            .all(|e| e["finding"]["secret"]["path"] == s.creds.to_str().unwrap()),
        "{:#?}",
        all_stale(&agent)
    );

    // Rotated: the new content is young, whatever the old one's age.
    let rotated = Instant::now();
    std::fs::write(&s.creds, aws_credentials(22)).unwrap();
    read_through_agent(&agent, &s.creds);
    let fp2 = fingerprint_of(&aws_credentials(22));
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        stale_count(&agent, &s.creds, &fp2),
        0,
        "{:#?}",
        all_stale(&agent)
    );
    let again = agent.wait_for(|e| is_stale_of(e, &s.creds, &fp2));
    assert!(
        rotated.elapsed() + TICK >= Duration::from_secs(4),
        "rotated content stale after {:?}: {again}",
        rotated.elapsed()
    );
    drop(s.home);
}

#[test]
fn rotation_age_and_the_last_report_survive_an_agent_restart() {
    let s = setup("8s");
    let fp = fingerprint_of(&aws_credentials(1));
    let inventory_age = || {
        let cfg = s.state.path().join("config.yaml");
        std::fs::write(&cfg, &s.config).unwrap();
        let out = proctor_ok([
            "inventory".as_ref(),
            "--json".as_ref(),
            "--config".as_ref(),
            cfg.as_os_str(),
        ]);
        let items: Value = serde_json::from_slice(&out).unwrap();
        items
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["path"] == s.creds.to_str().unwrap())
            .cloned()
            .unwrap_or_else(|| panic!("{:?} not in inventory: {items}", s.creds))
    };
    let written = s.written;
    {
        let agent = AgentProc::start(&s.config);
        // The agent has the secret (a read of it is reported).
        read_through_agent(&agent, &s.creds);
        assert!(agent.stop().success());
    }
    let since = inventory_age()["content_since_ns"].as_u64().unwrap();
    // Same content, newer mtime: a new inventory would date it from now.
    std::thread::sleep(Duration::from_secs(3));
    let touched = Instant::now();
    let now = std::time::SystemTime::now();
    std::fs::File::options()
        .write(true)
        .open(&s.creds)
        .unwrap()
        .set_modified(now)
        .unwrap();

    let agent = AgentProc::start(&s.config);
    let first = agent.wait_for(|e| is_stale_of(e, &s.creds, &fp));
    let (aged, since_touch) = (written.elapsed(), touched.elapsed());
    assert!(
        aged + TICK >= Duration::from_secs(8),
        "stale after {aged:?}: {first}"
    );
    assert!(
        since_touch < Duration::from_millis(7500),
        "stale {since_touch:?} after the touch and {aged:?} after the write: the \
         restarted agent dated the content from the touch, not from before the restart: {first}"
    );
    let item = inventory_age();
    assert_eq!(item["content_since_ns"].as_u64(), Some(since), "{item}");
    assert!(
        item["rotation_age_seconds"].as_u64().unwrap() >= 8,
        "{item}"
    );
    assert!(agent.stop().success());

    // Restarted again right after the report: not repeated within the period.
    let reported = Instant::now();
    let agent = AgentProc::start(&s.config);
    read_through_agent(&agent, &s.creds);
    while reported.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        stale_count(&agent, &s.creds, &fp),
        0,
        "repeated within the period after a restart: {:#?}",
        all_stale(&agent)
    );
    agent.wait_for(|e| is_stale_of(e, &s.creds, &fp));
}
