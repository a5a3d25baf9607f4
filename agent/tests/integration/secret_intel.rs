//! Real-kernel tests of secret intelligence: rotation age and `secret-stale` across restarts, blast radius (who read a secret, where they connected), decoys.

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
    // Not under /tmp, which is 0700 here: other users read in it too.
    let home = tempfile::tempdir_in("/var/tmp").unwrap();
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

/// Runs `proctor inventory --secret <key> --json` against `config`'s state.
fn blast_radius(state: &Path, config: &str, key: &str) -> Value {
    let cfg = state.join("config.yaml");
    std::fs::write(&cfg, config).unwrap();
    let out = proctor_ok([
        "inventory".as_ref(),
        "--json".as_ref(),
        "--config".as_ref(),
        cfg.as_os_str(),
        "--secret".as_ref(),
        key.as_ref(),
    ]);
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn blast_radius_lists_every_reader_with_its_user_and_hash_and_the_connect_of_the_one_that_connected(
) {
    let s = setup("1000d");
    // Readable by nobody too: the second reader runs as another user.
    for (p, mode) in [
        (s.home.path().to_path_buf(), 0o755),
        (s.home.path().join(".aws"), 0o755),
        (s.creds.clone(), 0o644),
    ] {
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
    let agent = AgentProc::start(&s.config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();

    // bash reads the secret itself and then connects to the listener.
    let m = marker("intel-bash");
    run(Command::new("/bin/bash").arg0(&m).arg("-c").arg(format!(
        "read -r line < '{}'; exec 3<>/dev/tcp/127.0.0.1/{port}",
        s.creds.display()
    )));
    agent.wait_for(|e| {
        e["kind"] == "finding" && e["finding"]["rule"] == "secret-read" && has_arg(e, &m)
    });
    let connect = agent
        .wait_for(|e| e["kind"] == "net_connect" && has_arg(e, &m) && e["net"]["dst_port"] == port);
    // cat, as nobody, only reads it.
    let m2 = marker("intel-cat");
    run(Command::new("/bin/cat")
        .arg(&s.creds)
        .arg0(&m2)
        .uid(65534)
        .gid(65534));
    let cat_read = agent.wait_for(|e| {
        e["kind"] == "finding" && e["finding"]["rule"] == "secret-read" && has_arg(e, &m2)
    });
    assert_eq!(cat_read["process"]["uid"], 65534, "{cat_read}");

    let bash_sha = sha256_file(&resolve("/bin/bash"));
    let cat_sha = sha256_file(&resolve("/bin/cat"));
    let dest = format!("127.0.0.1:{port}");
    let creds = s.creds.to_str().unwrap();
    // Reads are written within a fraction of a second, destinations at the
    // latest at the next status tick (1s).
    let deadline = Instant::now() + Duration::from_secs(15);
    let item = loop {
        let found = blast_radius(s.state.path(), &s.config, creds);
        let item = found[0].clone();
        let readers = item["readers"].as_array().cloned().unwrap_or_default();
        let done = readers.len() >= 2 && !item["destinations"].as_array().unwrap().is_empty();
        if done || Instant::now() > deadline {
            break item;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(item["path"], creds, "{item}");
    let readers = item["readers"].as_array().unwrap();
    let by_sha = |sha: &str| {
        readers
            .iter()
            .find(|r| r["exe_sha256"].as_str().is_some_and(|h| h.ends_with(sha)))
            .unwrap_or_else(|| panic!("no reader with sha256 {sha}: {item}"))
            .clone()
    };
    let bash = by_sha(&bash_sha);
    let cat = by_sha(&cat_sha);
    assert_eq!(bash["uid"], 0, "{item}");
    assert_eq!(cat["uid"], 65534, "{item}");
    assert_eq!(
        cat["exe_path"],
        resolve("/bin/cat").to_str().unwrap(),
        "{item}"
    );
    assert!(
        bash["count"].as_u64().unwrap() >= 1 && cat["count"].as_u64().unwrap() >= 1,
        "{item}"
    );
    let dests = item["destinations"].as_array().unwrap();
    let to_listener: Vec<&Value> = dests.iter().filter(|d| d["destination"] == dest).collect();
    assert_eq!(
        to_listener.len(),
        1,
        "the connect {connect} is not in the blast radius: {item}"
    );
    assert_eq!(
        to_listener[0]["identity"], bash["identity"],
        "connect shown for the wrong workload: {item}"
    );
    assert!(
        dests.iter().all(|d| d["identity"] != cat["identity"]),
        "cat never connected, yet has a destination: {item}"
    );

    // Text form: both readers, the destination under bash's block.
    let cfg = s.state.path().join("config.yaml");
    let text = String::from_utf8(proctor_ok([
        "inventory".as_ref(),
        "--config".as_ref(),
        cfg.as_os_str(),
        "--secret".as_ref(),
        creds.as_ref(),
    ]))
    .unwrap();
    let b = text.find("binary: ").unwrap();
    assert!(text.contains(&format!("connected to: {dest}")), "{text}");
    assert!(
        text[b..].contains("user: 65534") && text[b..].contains("user: 0"),
        "{text}"
    );
    // An unknown secret: exit status 1 and a sentence saying so.
    let out = Command::new(proctor_bin())
        .args(["inventory", "--config"])
        .arg(&cfg)
        .args(["--secret", "no-such-secret"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no secret in the inventory"));
    drop(listener);
}

#[test]
fn a_read_of_a_decoy_is_critical_while_the_real_credential_beside_it_stays_a_plain_read() {
    let s = setup("1000d");
    let aws = s.home.path().join(".aws");
    let decoy = aws.join("credentials.old");
    // Someone's file where a decoy is configured: left alone, and said so.
    let taken = s.home.path().join(".pgpass-backup");
    std::fs::write(&taken, "someone's own file\n").unwrap();
    let config = format!(
        "{}  decoys:\n\
         \x20   - {{path: {}, kind: aws_credentials}}\n\
         \x20   - {{path: {}, kind: pgpass}}\n",
        s.config,
        decoy.display(),
        taken.display()
    );
    let agent = AgentProc::start(&config);
    let planted = std::fs::read_to_string(&decoy).unwrap();
    assert!(
        regex::Regex::new(r"aws_access_key_id = AKIA[A-Z2-7]{16}\n")
            .unwrap()
            .is_match(&planted),
        "the decoy does not look like AWS credentials"
    );
    let meta = std::fs::metadata(&decoy).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read_to_string(&taken).unwrap(),
        "someone's own file\n"
    );
    assert!(
        agent.stderr_shows(&format!("decoy {} not planted", taken.display()))
            && agent.stderr_shows("left untouched"),
        "no start-up warning about {}: {}",
        taken.display(),
        agent.stderr()
    );

    let m = marker("intel-decoy");
    run(Command::new("/bin/cat").arg(&decoy).arg0(&m));
    let f = agent.wait_for(|e| e["kind"] == "finding" && has_arg(e, &m));
    assert_eq!(f["finding"]["rule"], "secret-decoy", "{f}");
    assert_eq!(f["finding"]["severity"], "critical", "{f}");
    assert_eq!(
        f["finding"]["secret"]["path"],
        decoy.to_str().unwrap(),
        "{f}"
    );
    assert!(
        f["process"]["exe"]["sha256"].is_string(),
        "no reader identity: {f}"
    );
    // The real credentials next to it: a secret-read, no decoy.
    let m2 = marker("intel-real");
    run(Command::new("/bin/cat").arg(&s.creds).arg0(&m2));
    let r = agent.wait_for(|e| {
        e["kind"] == "finding" && e["finding"]["rule"] == "secret-read" && has_arg(e, &m2)
    });
    assert_eq!(r["finding"]["secret"]["id"], "aws-cli-credentials", "{r}");
    std::thread::sleep(Duration::from_millis(500));
    let decoy_findings: Vec<Value> = agent
        .events()
        .into_iter()
        .filter(|e| e["kind"] == "finding" && e["finding"]["rule"] == "secret-decoy")
        .collect();
    // This test's own look at the planted content counts too: anyone.
    let (ours, others): (Vec<&Value>, Vec<&Value>) = decoy_findings
        .iter()
        .partition(|e| e["process"]["pid"] == std::process::id());
    assert_eq!(ours.len(), 1, "{decoy_findings:#?}");
    assert_eq!(others.len(), 1, "only cat's read: {decoy_findings:#?}");
    assert!(agent.stop().success());
    // Decoys stay when the agent stops, and a restart adopts its own.
    assert_eq!(std::fs::read_to_string(&decoy).unwrap(), planted);
    let agent = AgentProc::start(&config);
    assert!(!agent
        .stderr()
        .contains(&format!("decoy {} not planted", decoy.display())));
    let m3 = marker("intel-decoy-again");
    run(Command::new("/bin/cat").arg(&decoy).arg0(&m3));
    agent.wait_for(|e| {
        e["kind"] == "finding" && e["finding"]["rule"] == "secret-decoy" && has_arg(e, &m3)
    });
}

/// A finding names as evidence only an event that went out: when the rate
/// limiter holds a read's `file_open` back, the finding about that read (its
/// own bucket) names no event, rather than whatever went out before it.
#[test]
fn a_finding_whose_file_open_was_rate_limited_names_no_other_event_as_evidence() {
    let s = setup("1000d");
    let decoy = s.home.path().join(".aws/credentials.bak");
    // A copy of cat with its own sha256: only this test's reads share its buckets.
    let reader = s.home.path().join("limited-cat");
    let mut data = std::fs::read("/bin/cat").unwrap();
    data.extend_from_slice(marker("rl-cat").as_bytes());
    write_exe(&reader, data);
    let config = format!(
        "{}  decoys:\n\
         \x20   - {{path: {}, kind: aws_credentials}}\n\
         rate_limit: {{enabled: true, events_per_second: 0.01, burst: 1, summary_interval: 1s}}\n",
        s.config,
        decoy.display()
    );
    let agent = AgentProc::start(&config);

    // The first read: its file_open and its finding both go out, the
    // finding resting on the file_open.
    let m = marker("rl-real");
    run(Command::new(&reader).arg(&s.creds).arg0(&m));
    let f = agent.wait_for(|e| {
        e["kind"] == "finding" && e["finding"]["rule"] == "secret-read" && has_arg(e, &m)
    });
    let open = agent.wait_for(|e| e["kind"] == "file_open" && has_arg(e, &m));
    assert_eq!(
        f["finding"]["evidence"]["event_seqs"],
        serde_json::json!([open["seq"]]),
        "{f}"
    );

    // The second: the file_open's bucket is spent, the decoy finding's is not.
    let m2 = marker("rl-decoy");
    run(Command::new(&reader).arg(&decoy).arg0(&m2));
    let d = agent.wait_for(|e| {
        e["kind"] == "finding" && e["finding"]["rule"] == "secret-decoy" && has_arg(e, &m2)
    });
    assert!(
        d["finding"]["evidence"].get("event_seqs").is_none(),
        "the decoy's finding names an event it does not rest on: {d}"
    );
    // Counted, not lost: the limiter's summary names the reader.
    let path = reader.to_str().unwrap();
    agent.wait_for(|e| {
        e["kind"] == "file_open"
            && e["process"]["exe"]["path"] == path
            && e["suppressed"]["count"].as_u64().is_some_and(|n| n >= 1)
    });
    assert!(
        !agent
            .events()
            .iter()
            .any(|e| e["kind"] == "file_open" && has_arg(e, &m2) && e.get("suppressed").is_none()),
        "the limited file_open went out"
    );
}
