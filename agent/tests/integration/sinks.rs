//! Sinks against real receivers: rsyslog (Debian's, started here on
//! loopback with its own config) over UDP, TCP and TLS; the harness's HTTPS
//! stand-in as Splunk HEC and an OTLP/HTTP collector, checking every request against
//! the published formats and answer as the real ones do. Events come from
//! real processes the tests run.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    io::Write,
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(60);

/// Polls `f` until it returns Some, or panics with `what` after `timeout`.
fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------------------------------------------------------------------------
// rsyslog, as a foreground process with its own config, work dir and pid file.

struct Rsyslog {
    dir: tempfile::TempDir,
    udp: u16,
    tcp: u16,
    tls: u16,
    child: Option<Child>,
}

impl Rsyslog {
    fn start(certs: &Certs) -> Rsyslog {
        let dir = tempfile::tempdir().unwrap();
        let (udp, tcp, tls) = (free_port(), free_port(), free_port());
        std::fs::create_dir_all(dir.path().join("work")).unwrap();
        let d = dir.path().display();
        // %rawmsg%: the message exactly as received (after the octet count).
        let conf = format!(
            r#"global(workDirectory="{d}/work" maxMessageSize="256k"
       defaultNetstreamDriverCAFile="{ca}"
       defaultNetstreamDriverCertFile="{cert}"
       defaultNetstreamDriverKeyFile="{key}")
module(load="imudp")
module(load="imtcp" maxSessions="100")
template(name="raw" type="string" string="%rawmsg%\n")
ruleset(name="udp") {{ action(type="omfile" file="{d}/udp.log" template="raw") }}
ruleset(name="tcp") {{ action(type="omfile" file="{d}/tcp.log" template="raw") }}
ruleset(name="tls") {{ action(type="omfile" file="{d}/tls.log" template="raw") }}
input(type="imudp" address="127.0.0.1" port="{udp}" ruleset="udp")
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="tcp")
input(type="imtcp" address="127.0.0.1" port="{tls}" ruleset="tls"
      streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
"#,
            ca = certs.ca.display(),
            cert = certs.cert.display(),
            key = certs.key.display(),
        );
        std::fs::write(dir.path().join("rsyslog.conf"), conf).unwrap();
        let mut r = Rsyslog {
            dir,
            udp,
            tcp,
            tls,
            child: None,
        };
        r.restart();
        r
    }

    fn restart(&mut self) {
        let d = self.dir.path();
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(d.join("rsyslog.conf"))
            .arg("-i")
            .arg(d.join("rsyslogd.pid"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(d.join("stderr.log")).unwrap())
            .spawn()
            .expect("rsyslogd (Debian package rsyslog; `cargo xtask setup` installs it)");
        self.child = Some(child);
        // Listening on every port means it is ready.
        for port in [self.tcp, self.tls] {
            wait_until(Duration::from_secs(20), "rsyslog to listen", || {
                TcpStream::connect(("127.0.0.1", port)).ok()
            });
        }
    }

    /// SIGTERM, as a service manager stops it.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            c.wait().unwrap();
        }
    }

    fn lines(&self, transport: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join(format!("{transport}.log")))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An RFC 5424 message, split into its parts.
#[derive(Debug)]
struct Syslog {
    pri: u16,
    timestamp: String,
    hostname: String,
    app: String,
    msgid: String,
    sd: BTreeMap<String, String>,
    msg: String,
}

fn parse_5424(line: &str) -> Syslog {
    let rest = line
        .strip_prefix('<')
        .unwrap_or_else(|| panic!("no PRI: {line}"));
    let (pri, rest) = rest.split_once('>').unwrap();
    let rest = rest
        .strip_prefix("1 ")
        .unwrap_or_else(|| panic!("VERSION is not 1: {line}"));
    let mut parts = rest.splitn(6, ' ');
    let mut next = || {
        parts
            .next()
            .unwrap_or_else(|| panic!("short header: {line}"))
    };
    let (timestamp, hostname, app, procid, msgid) = (next(), next(), next(), next(), next());
    let rest = next();
    assert!(procid.parse::<u32>().is_ok(), "PROCID {procid}");
    // One SD-ELEMENT: [id k="v" ...], values escaped with backslash.
    let sd_body = rest
        .strip_prefix('[')
        .unwrap_or_else(|| panic!("no SD: {line}"));
    let mut sd = BTreeMap::new();
    let mut chars = sd_body.char_indices().peekable();
    let mut end = None;
    let id_end = sd_body.find(' ').unwrap();
    assert_eq!(&sd_body[..id_end], "proctor@32473");
    let mut key = String::new();
    let mut val = String::new();
    let mut in_val = false;
    while let Some((i, c)) = chars.next() {
        if i <= id_end {
            continue;
        }
        match (in_val, c) {
            (false, ']') => {
                end = Some(i);
                break;
            }
            (false, '=') => {}
            (false, '"') => in_val = true,
            (false, ' ') => {}
            (false, c) => key.push(c),
            (true, '\\') => val.push(chars.next().unwrap().1),
            (true, '"') => {
                in_val = false;
                sd.insert(std::mem::take(&mut key), std::mem::take(&mut val));
            }
            (true, c) => val.push(c),
        }
    }
    let end = end.unwrap_or_else(|| panic!("unterminated SD: {line}"));
    let msg = sd_body[end + 1..]
        .strip_prefix(' ')
        .unwrap_or_else(|| panic!("no MSG: {line}"))
        .to_string();
    assert!(
        humantime::parse_rfc3339(timestamp).is_ok() && timestamp.len() <= 32,
        "TIMESTAMP {timestamp}"
    );
    Syslog {
        pri: pri.parse().unwrap(),
        timestamp: timestamp.into(),
        hostname: hostname.into(),
        app: app.into(),
        msgid: msgid.into(),
        sd,
        msg,
    }
}

/// `CEF:0|Vendor|Product|Version|SignatureID|Name|Severity|ext` -> header
/// fields and extension pairs.
fn parse_cef(line: &str) -> (Vec<String>, HashMap<String, String>) {
    let mut header = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars();
    while header.len() < 7 {
        match chars
            .next()
            .unwrap_or_else(|| panic!("short CEF header: {line}"))
        {
            '\\' => cur.push(chars.next().unwrap()),
            '|' => header.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    let ext: String = chars.collect();
    // Keys are the words before an unescaped '='; values run to the next key.
    let mut pairs = HashMap::new();
    let bytes: Vec<char> = ext.chars().collect();
    let mut keys = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == '=' && (i == 0 || bytes[i - 1] != '\\') {
            let mut s = i;
            while s > 0 && bytes[s - 1] != ' ' {
                s -= 1;
            }
            keys.push((s, i));
        }
        i += 1;
    }
    for (n, &(s, eq)) in keys.iter().enumerate() {
        let end = keys
            .get(n + 1)
            .map(|&(ns, _)| ns - 1)
            .unwrap_or(bytes.len());
        let key: String = bytes[s..eq].iter().collect();
        let raw: String = bytes[eq + 1..end.max(eq + 1)].iter().collect();
        let value = raw
            .replace("\\=", "=")
            .replace("\\n", "\n")
            .replace("\\\\", "\\");
        pairs.insert(key, value);
    }
    assert_eq!(header[0], "CEF:0", "{line}");
    (header, pairs)
}

// ---------------------------------------------------------------------------
// Handlers of the HTTPS stand-in for Splunk HEC and an OTLP collector.

const HEC_TOKEN: &str = "0f3c8e1a-7b2d-4c5e-9a6f-1d2e3f4a5b6c";

/// Splunk HEC's /services/collector/event, as documented: token auth,
/// concatenated event objects, `{"text":"Success","code":0}`.
fn hec_handler() -> Handler {
    Arc::new(|req: &Request| {
        if req.method != "POST" || req.path != "/services/collector/event" {
            return (
                404,
                r#"{"text":"The requested URL was not found on this server.","code":404}"#.into(),
            );
        }
        match req.headers.get("authorization") {
            None => return (401, r#"{"text":"Token is required","code":2}"#.into()),
            Some(a) if *a != format!("Splunk {HEC_TOKEN}") => {
                return (403, r#"{"text":"Invalid token","code":4}"#.into())
            }
            _ => {}
        }
        let events: Result<Vec<Value>, _> = serde_json::Deserializer::from_slice(&req.body)
            .into_iter::<Value>()
            .collect();
        let Ok(events) = events else {
            return (400, r#"{"text":"Invalid data format","code":6}"#.into());
        };
        if events.is_empty() {
            return (400, r#"{"text":"No data","code":5}"#.into());
        }
        for e in &events {
            if e.get("event").is_none_or(Value::is_null) {
                return (
                    400,
                    r#"{"text":"Event field is required","code":12}"#.into(),
                );
            }
            let ok = e["time"].is_number()
                && e["host"].is_string()
                && e["sourcetype"].is_string()
                && e["source"].is_string();
            if !ok {
                return (400, r#"{"text":"Invalid data format","code":6}"#.into());
            }
        }
        (200, r#"{"text":"Success","code":0}"#.into())
    })
}

fn hec_events(hec: &StandIn) -> Vec<Value> {
    hec.requests()
        .iter()
        .filter(|r| r.path == "/services/collector/event")
        .flat_map(|r| {
            serde_json::Deserializer::from_slice(&r.body)
                .into_iter::<Value>()
                .map(Result::unwrap)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn attr<'a>(attrs: &'a Value, key: &str) -> Option<&'a Value> {
    attrs
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

/// An OTLP/HTTP collector's /v1/logs (JSON encoding): checks the
/// ExportLogsServiceRequest shape, answers an empty partialSuccess.
fn otlp_handler() -> Handler {
    Arc::new(|req: &Request| {
        if req.path != "/v1/logs" {
            return (404, "{}".into());
        }
        if req.headers.get("content-type").map(String::as_str) != Some("application/json") {
            return (415, "{}".into());
        }
        let Ok(v) = serde_json::from_slice::<Value>(&req.body) else {
            return (400, r#"{"code":3,"message":"bad json"}"#.into());
        };
        let bad = |m: &str| (400, format!(r#"{{"code":3,"message":"{m}"}}"#));
        let Some(rls) = v["resourceLogs"].as_array() else {
            return bad("resourceLogs");
        };
        for rl in rls {
            let attrs = &rl["resource"]["attributes"];
            if attr(attrs, "host.name")
                .and_then(|v| v["stringValue"].as_str())
                .is_none()
                || attr(attrs, "service.name").and_then(|v| v["stringValue"].as_str())
                    != Some("proctor")
            {
                return bad("resource attributes");
            }
            for sl in rl["scopeLogs"].as_array().into_iter().flatten() {
                for lr in sl["logRecords"].as_array().into_iter().flatten() {
                    let ts_ok = lr["timeUnixNano"]
                        .as_str()
                        .is_some_and(|t| t.parse::<u64>().is_ok_and(|n| n > 0));
                    let sev_ok = lr["severityNumber"]
                        .as_u64()
                        .is_some_and(|n| (1..=24).contains(&n));
                    if !ts_ok || !sev_ok || lr["body"]["stringValue"].as_str().is_none() {
                        return bad("logRecord");
                    }
                }
            }
        }
        (200, r#"{"partialSuccess":{}}"#.into())
    })
}

fn otlp_records(otlp: &StandIn) -> Vec<Value> {
    otlp.requests()
        .iter()
        .filter(|r| r.path == "/v1/logs")
        .flat_map(|r| {
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            v["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

fn sink_status<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["status"]["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no sink {name} in {status}"))
}

fn node_name(test: &str) -> String {
    format!("sinks-{test}-{}", std::process::id())
}

// ---------------------------------------------------------------------------

/// A user adds syslog (UDP, TCP, TLS), HEC and OTLP sinks and a rotated file:
/// the same real finding arrives in each, correctly formatted.
#[test]
fn one_finding_reaches_syslog_udp_tcp_tls_hec_otlp_and_file() {
    let certs = certs("proctor sink test CA");
    let rsyslog = Rsyslog::start(&certs);
    let hec = StandIn::start(Some(&certs), hec_handler());
    let otlp = StandIn::start(None, otlp_handler());
    let home = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let netrc = home.path().join(".netrc");
    std::fs::write(&netrc, "machine example.invalid login u password p4ss\n").unwrap();
    let node = node_name("formats");
    let file = state.path().join("out/events.ecs.jsonl");
    let kinds = "kinds: [process_exec, finding]";
    let config = format!(
        "node_name: {node}\nstatus_interval: 1s\nstate_dir: {state}\n{TEST_METRICS}\
         secrets:\n  extra_homes: [{home}]\n  search_dirs: []\n\
         sinks:\n\
         \x20 - type: stdout\n\
         \x20 - {{type: syslog, name: syslog-udp, transport: udp, address: '127.0.0.1:{udp}', {kinds}}}\n\
         \x20 - {{type: syslog, name: syslog-tcp, transport: tcp, address: '127.0.0.1:{tcp}', facility: local4, {kinds}}}\n\
         \x20 - type: syslog\n    name: syslog-tls\n    transport: tls\n    address: 'localhost:{tls}'\n    format: json\n    {kinds}\n    tls: {{ca_file: {ca}}}\n\
         \x20 - type: hec\n    url: https://localhost:{hec}/services/collector/event\n    token: {HEC_TOKEN}\n    batch_events: 50\n    {kinds}\n    tls: {{ca_file: {ca}}}\n\
         \x20 - {{type: otlp, url: 'http://{otlp}/v1/logs', gzip: false, {kinds}, min_severity: low}}\n\
         \x20 - {{type: file, path: {file}, format: ecs, max_bytes: 16384, keep: 2, {kinds}}}\n",
        state = state.path().display(),
        home = home.path().display(),
        udp = rsyslog.udp,
        tcp = rsyslog.tcp,
        tls = rsyslog.tls,
        ca = certs.ca.display(),
        hec = hec.port(),
        otlp = otlp.addr,
        file = file.display(),
    );
    let agent = AgentProc::start(&config);
    let m = marker("sink-formats");
    // Enough execs that the 16 KiB file rotates.
    for i in 0..20 {
        run(Command::new("/bin/true").arg(&m).arg(i.to_string()));
    }
    run(Command::new("/bin/cat").arg(&netrc));
    let finding = agent.wait_for(|e| {
        e["kind"] == "finding"
            && e["finding"]["rule"] == "secret-read"
            && e["file"]["path"] == netrc.to_str().unwrap()
    });
    let seq = finding["seq"].as_u64().unwrap();
    let exec = agent.wait_for(|e| is_exec_with(e, &m));
    let exec_seq = exec["seq"].as_u64().unwrap();

    // syslog: RFC 5424 header and structured data, CEF (udp, tcp) or JSON (tls) as MSG.
    for transport in ["udp", "tcp", "tls"] {
        let what = format!(
            "the finding in rsyslog's {transport} output (rsyslog stderr: {})",
            rsyslog.stderr()
        );
        let line = wait_until(WAIT, &what, || {
            rsyslog
                .lines(transport)
                .into_iter()
                .find(|l| l.contains(&format!("seq=\"{seq}\"")))
        });
        let s = parse_5424(&line);
        let facility = if transport == "tcp" { 20 } else { 10 };
        let sev = finding["finding"]["severity"].as_str().unwrap();
        let syslog_sev = match sev {
            "critical" => 2,
            "high" => 3,
            "medium" => 4,
            "low" => 5,
            _ => 6,
        };
        assert_eq!(s.pri, facility * 8 + syslog_sev, "{line}");
        assert_eq!(s.hostname, node);
        assert_eq!(s.app, "proctor");
        assert_eq!(s.msgid, "finding");
        assert!(s
            .timestamp
            .starts_with(&finding["time"].as_str().unwrap()[..19]));
        assert_eq!(s.sd["seq"], seq.to_string());
        assert_eq!(s.sd["kind"], "finding");
        assert_eq!(s.sd["rule"], "secret-read");
        assert_eq!(s.sd["severity"], sev);
        if transport == "tls" {
            let v: Value = serde_json::from_str(&s.msg).unwrap();
            assert_eq!(v["seq"], seq);
            assert_eq!(v["file"]["path"], finding["file"]["path"]);
        } else {
            let (h, ext) = parse_cef(&s.msg);
            assert_eq!(
                &h[1..5],
                [
                    "proctor",
                    "proctor",
                    env!("CARGO_PKG_VERSION"),
                    "secret-read"
                ]
            );
            let cef_sev: u32 = h[6].parse().unwrap();
            assert!((1..=10).contains(&cef_sev) && cef_sev > 1, "{line}");
            assert_eq!(ext["externalId"], format!("{node}:{seq}"));
            assert_eq!(ext["cat"], "finding");
            assert_eq!(ext["filePath"], netrc.to_str().unwrap());
            assert_eq!(ext["dvchost"], node);
            assert_eq!(ext["spid"], finding["process"]["pid"].to_string());
        }
        // The exec of a real process, too.
        let exec_line = wait_until(WAIT, "the exec in rsyslog", || {
            rsyslog
                .lines(transport)
                .into_iter()
                .find(|l| l.contains(&format!("seq=\"{exec_seq}\"")))
        });
        let e = parse_5424(&exec_line);
        assert_eq!(e.msgid, "process_exec");
        assert_eq!(e.pri, facility * 8 + 6);
        if transport != "tls" {
            let (h, ext) = parse_cef(&e.msg);
            assert_eq!(h[4], "process_exec");
            assert_eq!(
                ext["filePath"],
                exec["process"]["exe"]["path"].as_str().unwrap()
            );
        }
    }

    // HEC: the same finding, over TLS with the test CA, gzip, token.
    let ev = wait_until(WAIT, "the finding at the HEC stand-in", || {
        hec_events(&hec)
            .into_iter()
            .find(|e| e["fields"]["seq"] == seq)
    });
    assert_eq!(ev["host"], node.as_str());
    assert_eq!(ev["sourcetype"], "proctor:json");
    assert_eq!(ev["event"]["finding"]["rule"], "secret-read");
    assert_eq!(ev["event"]["file"]["path"], finding["file"]["path"]);
    let reqs = hec.requests();
    assert!(reqs
        .iter()
        .all(|r| r.headers.get("content-encoding").map(String::as_str) == Some("gzip")));
    assert!(
        hec_events(&hec)
            .iter()
            .all(|e| e["event"]["kind"] == "finding" || e["event"]["kind"] == "process_exec"),
        "the kinds filter holds"
    );

    // OTLP: a log record with severity mapped, resource attributes, the event as body.
    let rec = wait_until(WAIT, "the finding at the OTLP stand-in", || {
        otlp_records(&otlp).into_iter().find(|r| {
            attr(&r["attributes"], "proctor.seq").and_then(|v| v["intValue"].as_str())
                == Some(&seq.to_string())
        })
    });
    assert!(rec["severityNumber"].as_u64().unwrap() >= 10, "{rec}");
    let body: Value = serde_json::from_str(rec["body"]["stringValue"].as_str().unwrap()).unwrap();
    assert_eq!(body["finding"]["rule"], "secret-read");
    let req = otlp.requests().into_iter().next().unwrap();
    let v: Value = serde_json::from_slice(&req.body).unwrap();
    let attrs = &v["resourceLogs"][0]["resource"]["attributes"];
    assert_eq!(
        attr(attrs, "host.name").unwrap()["stringValue"],
        node.as_str()
    );
    // min_severity: low keeps findings of low and up; execs are not findings.
    assert!(otlp_records(&otlp).iter().any(|r| {
        attr(&r["attributes"], "proctor.kind").and_then(|v| v["stringValue"].as_str())
            == Some("process_exec")
    }));

    // File: ECS documents, rotated at 16 KiB, two rotated files kept at most.
    wait_until(WAIT, "the file sink to rotate", || {
        Path::new(&format!("{}.1", file.display()))
            .exists()
            .then_some(())
    });
    assert!(!Path::new(&format!("{}.3", file.display())).exists());
    let all: Vec<Value> = [
        format!("{}.2", file.display()),
        format!("{}.1", file.display()),
        file.display().to_string(),
    ]
    .iter()
    .flat_map(|p| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .collect::<Vec<_>>()
    })
    .collect();
    for p in [file.clone(), PathBuf::from(format!("{}.1", file.display()))] {
        assert!(std::fs::metadata(&p).unwrap().len() <= 16384);
    }
    assert!(
        all.iter().all(|v| v["ecs"]["version"].is_string()),
        "ECS documents"
    );

    // Per-sink counters in agent_status and /metrics.
    let status = wait_until(WAIT, "delivered counters", || {
        let s = agent.status_after(agent.last_seq());
        (sink_status(&s, "hec")["delivered"].as_u64()? > 0
            && sink_status(&s, "syslog-tls")["delivered"].as_u64()? > 0)
            .then_some(s)
    });
    for name in [
        "stdout",
        "syslog-udp",
        "syslog-tcp",
        "syslog-tls",
        "hec",
        "otlp",
        "file",
    ] {
        let s = sink_status(&status, name);
        assert_eq!(s["dropped"], 0, "{s}");
        assert!(s["delivered"].as_u64().unwrap() > 0, "{s}");
    }
    let addr = status["status"]["metrics_listen"].as_str().unwrap();
    let metrics = wait_until(WAIT, "sink metrics", || {
        let t = http_get(addr, "/metrics").1;
        (sample_opt(
            &t,
            r#"proctor_sink_events_total{sink="hec",outcome="delivered"}"#,
        )? > 0.0)
            .then_some(t)
    });
    assert!(
        sample_opt(
            &metrics,
            r#"proctor_sink_events_total{sink="syslog-tcp",outcome="delivered"}"#
        )
        .unwrap()
            > 0.0
    );
    assert_eq!(
        sample_opt(&metrics, r#"proctor_sink_up{sink="syslog-tls"}"#),
        Some(1.0)
    );
    assert!(sample_opt(&metrics, r#"proctor_sink_queued{sink="otlp"}"#).is_some());
}

/// Execs of a test binary, one every `pause`, until `stop` is set.
fn producer(m: String, stop: Arc<AtomicBool>, pause: Duration) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            run(Command::new("/bin/true").arg(&m).arg(n.to_string()));
            n += 1;
            std::thread::sleep(pause);
        }
        n
    })
}

fn seqs_in(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| {
            let s = parse_5424(l);
            s.sd.get("seq").map(|v| v.parse().unwrap())
        })
        .collect()
}

/// rsyslog stops mid-stream and the agent is restarted (SIGTERM) while
/// events sit in its spool: every event of the sink arrives exactly once,
/// in order, and seq continues across the restart — except those rsyslog's
/// TCP had acknowledged but rsyslog had not read when it stopped (syslog has
/// no application ack); the test checks that losses fall only in that window,
/// which ends at the last record the sink counted delivered (TCP-acknowledged)
/// before rsyslog stopped. Everything emitted after it is spooled and arrives.
#[test]
fn outage_and_agent_restart_deliver_every_seq_exactly_once() {
    let certs = certs("proctor sink test CA");
    let mut rsyslog = Rsyslog::start(&certs);
    let state = tempfile::tempdir().unwrap();
    let node = node_name("outage");
    // A small queue, so the outage spills to the spool.
    let config = format!(
        "node_name: {node}\nstatus_interval: 1s\nstate_dir: {}\n{TEST_METRICS}\
         shutdown_grace: 2s\n\
         sinks:\n\
         \x20 - type: stdout\n\
         \x20 - type: syslog\n    name: siem\n    transport: tcp\n    address: '127.0.0.1:{}'\n\
         \x20   kinds: [process_exec]\n    queue_events: 20\n    retry_initial: 100ms\n    retry_max: 500ms\n",
        state.path().display(),
        rsyslog.tcp
    );
    let m = marker("outage");
    let stop = Arc::new(AtomicBool::new(false));
    let first = AgentProc::start(&config);
    let work = producer(m.clone(), stop.clone(), Duration::from_millis(20));
    wait_until(WAIT, "events at rsyslog", || {
        (rsyslog
            .lines("tcp")
            .iter()
            .filter(|l| l.contains(&m))
            .count()
            > 20)
            .then_some(())
    });
    // What rsyslog had written before it stopped. Messages its TCP acknowledged
    // but it had not read yet when it stopped are lost with it (the window
    // docs/configuration.md describes): only those may be missing at the end.
    let written_before_stop = seqs_in(&rsyslog.lines("tcp")).into_iter().max().unwrap();
    rsyslog.stop();
    // Keep producing with rsyslog down until the queue has spilled to disk.
    // The sink counts a record delivered only once rsyslog's TCP acknowledged
    // it, and nothing is acknowledged after rsyslog exited: once the sink has
    // seen the outage (down), its delivered count is the number of records
    // acknowledged before the stop.
    let acked_at_stop = wait_until(WAIT, "the spool to fill", || {
        let s = first.status_after(first.last_seq());
        let sink = sink_status(&s, "siem");
        (sink["down"] == true && sink["in_spool"].as_u64()? > 20)
            .then_some(sink["delivered"].as_u64()?)
    });
    first.stop();
    let spooled = std::fs::read_dir(state.path().join("spool/siem"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "seg")
        })
        .count();
    assert!(spooled > 0, "events wait in the spool across the restart");
    let second = AgentProc::start(&config);
    std::thread::sleep(Duration::from_secs(1));
    rsyslog.restart();
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let produced = work.join().unwrap();
    assert!(produced > 40, "{produced}");

    // What the agents emitted (stdout, both runs) that this sink takes.
    let emitted = |a: &AgentProc| -> Vec<u64> {
        a.events()
            .iter()
            .filter(|e| e["kind"] == "process_exec")
            .map(|e| e["seq"].as_u64().unwrap())
            .collect()
    };
    let mut first_seqs = emitted(&first);
    first_seqs.sort_unstable();
    let last_of_first = *first_seqs.last().unwrap();
    // The sink takes every process_exec, in seq order: the records it had
    // acknowledged are the first `acked_at_stop` of them.
    let last_acked = match acked_at_stop as usize {
        0 => 0,
        n => *first_seqs.get(n - 1).unwrap_or_else(|| {
            panic!(
                "the sink counts {n} delivered, the agent emitted {} execs",
                first_seqs.len()
            )
        }),
    };
    assert!(
        last_acked >= written_before_stop,
        "rsyslog wrote seq {written_before_stop}, the sink counts only up to {last_acked} acknowledged"
    );
    let last_marker = second
        .wait_for(|e| is_exec_with(e, &m) && has_arg(e, &(produced - 1).to_string()))["seq"]
        .as_u64()
        .unwrap();
    assert!(
        second
            .events()
            .iter()
            .all(|e| e["seq"].as_u64().unwrap() > last_of_first),
        "seq continues across the restart"
    );
    let expected: BTreeSet<u64> = first_seqs
        .into_iter()
        .chain(emitted(&second).into_iter().filter(|&s| s <= last_marker))
        .collect();
    let in_window = |s: u64| s > written_before_stop && s <= last_acked;
    let must: BTreeSet<u64> = expected
        .iter()
        .copied()
        .filter(|&s| !in_window(s))
        .collect();
    let got = wait_until(Duration::from_secs(90), "every seq at rsyslog", || {
        let got = seqs_in(&rsyslog.lines("tcp"));
        let set: BTreeSet<u64> = got.iter().copied().collect();
        must.is_subset(&set).then_some(got)
    });
    let set: BTreeSet<u64> = got.iter().copied().collect();
    let lost: Vec<u64> = expected.difference(&set).copied().collect();
    if !lost.is_empty() {
        eprintln!(
            "{} messages lost in rsyslog's receive buffer when it stopped (seq {written_before_stop} < lost <= {last_acked}): {lost:?}",
            lost.len()
        );
    }
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for s in &got {
        *counts.entry(*s).or_default() += 1;
    }
    let dups: Vec<_> = counts.iter().filter(|(_, &n)| n > 1).collect();
    assert!(dups.is_empty(), "delivered more than once: {dups:?}");
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(got, sorted, "in seq order");
    let status = second.status_after(second.last_seq());
    let s = sink_status(&status, "siem");
    assert_eq!(s["dropped"], 0, "{s}");
    assert!(s["failed"].as_u64().is_some());
}

/// A deliberately tiny spool overflows while the receiver is down: the loss
/// is counted per sink in agent_status and /metrics.
#[test]
fn tiny_spool_overflow_is_counted_in_status_and_metrics() {
    let state = tempfile::tempdir().unwrap();
    let port = free_port(); // nothing listens there
    let config = format!(
        "node_name: {}\nstatus_interval: 1s\nstate_dir: {}\n{TEST_METRICS}shutdown_grace: 1s\n\
         sinks:\n  - type: stdout\n  - {{type: syslog, name: down, transport: tcp, address: '127.0.0.1:{port}', \
         kinds: [process_exec], queue_events: 2, spool_bytes: 8192}}\n",
        node_name("overflow"),
        state.path().display()
    );
    let agent = AgentProc::start(&config);
    let m = marker("overflow");
    for i in 0..40 {
        run(Command::new("/bin/true").arg(&m).arg(i.to_string()));
    }
    agent.wait_for(|e| is_exec_with(e, &m) && has_arg(e, "39"));
    let status = wait_until(WAIT, "drops counted", || {
        let s = agent.status_after(agent.last_seq());
        (sink_status(&s, "down")["dropped"].as_u64()? > 0).then_some(s)
    });
    let s = sink_status(&status, "down");
    assert!(s["spooled"].as_u64().unwrap() > 0, "{s}");
    assert!(s["spool_bytes"].as_u64().unwrap() <= 8192, "{s}");
    assert_eq!(s["down"], true);
    assert_eq!(s["delivered"], 0);
    // Every exec the sink was offered is accounted for.
    let offered = s["dropped"].as_u64().unwrap()
        + s["queued"].as_u64().unwrap()
        + s["in_spool"].as_u64().unwrap();
    assert!(offered + 1 >= 40, "{s}");
    let addr = status["status"]["metrics_listen"].as_str().unwrap();
    let t = wait_until(WAIT, "the drop in /metrics", || {
        let t = http_get(addr, "/metrics").1;
        (sample_opt(
            &t,
            r#"proctor_sink_events_total{sink="down",outcome="dropped"}"#,
        )? > 0.0)
            .then_some(t)
    });
    assert!(sample_opt(&t, r#"proctor_sink_spool_bytes{sink="down"}"#).unwrap() > 0.0);
    assert_eq!(sample_opt(&t, r#"proctor_sink_up{sink="down"}"#), Some(0.0));
}

/// A noisy binary is rate limited; what it loses is reported, exactly.
#[test]
fn rate_limit_suppresses_and_summarises_exactly() {
    let dir = tempfile::tempdir().unwrap();
    // A copy of true with its own sha256, so only this test's execs share a bucket.
    let bin = dir.path().join("noisy-true");
    let mut data = std::fs::read("/bin/true").unwrap();
    data.extend_from_slice(marker("rl-bin").as_bytes());
    write_exe(&bin, data);
    let sha = sha256_file(&bin);
    let config = format!(
        "status_interval: 1s\n{TEST_METRICS}state_dir: {}\n\
         rate_limit: {{enabled: true, events_per_second: 0.5, burst: 3, summary_interval: 1s}}\n",
        dir.path().join("state").display()
    );
    let agent = AgentProc::start(&config);
    const N: u64 = 25;
    for _ in 0..N {
        run(&mut Command::new(&bin));
    }
    // By path: under load a hash can time out, and the limiter then keys
    // the binary by its path instead.
    let path = bin.to_str().unwrap();
    let ours = |e: &Value| e["kind"] == "process_exec" && e["process"]["exe"]["path"] == path;
    let (sent, suppressed) = wait_until(WAIT, "every exec sent or summarised", || {
        let evs = agent.events();
        let sent = evs
            .iter()
            .filter(|e| ours(e) && e.get("suppressed").is_none())
            .count() as u64;
        let suppressed: u64 = evs
            .iter()
            .filter(|e| ours(e))
            .filter_map(|e| e["suppressed"]["count"].as_u64())
            .sum();
        (sent + suppressed == N).then_some((sent, suppressed))
    });
    assert!(
        sent >= 3 && suppressed > 0,
        "{sent} sent, {suppressed} suppressed"
    );
    let summary = agent.wait_for(|e| ours(e) && e.get("suppressed").is_some());
    let s = &summary["suppressed"];
    assert!(
        s["identity"] == format!("sha256:{sha}") || s["identity"] == format!("path:{path}"),
        "{s}"
    );
    assert!(
        s["summary"]
            .as_str()
            .unwrap()
            .contains("similar process_exec events"),
        "{s}"
    );
    let status = agent.status_after(agent.last_seq());
    assert!(status["status"]["emitted"]["suppressed"].as_u64().unwrap() >= suppressed);
}

/// `proctor policy check` refuses broken sink entries with the sink, the
/// cause and the line named.
#[test]
fn policy_check_rejects_bad_sinks() {
    let cases = [
        (
            "sinks:\n  - type: hec\n    url: https://splunk:8088/services/collector/event\n",
            "token",
        ),
        (
            "sinks:\n  - type: otlp\n    url: collector:4318/v1/logs\n",
            "http:// or https://",
        ),
        (
            "sinks:\n  - type: syslog\n    transport: tcp\n    address: siem.example\n",
            "host:port",
        ),
        // The unknown value itself is not repeated (it could be a misplaced token).
        (
            "sinks:\n  - type: stdout\n    format: xml\n",
            "sinks[0].format: unknown variant (value not shown), expected one of",
        ),
        (
            "sinks:\n  - type: syslog\n    transport: udp\n    address: 'h:514'\n    format: ocsf\n",
            "format \"ocsf\"",
        ),
        ("sinks:\n  - type: stdout\n    url: http://x/\n", "\"url\" does not apply"),
        (
            "sinks:\n  - type: stdout\n  - type: file\n    name: stdout\n    path: /var/log/p.jsonl\n",
            "two sinks are named",
        ),
    ];
    for (yaml, want) in cases {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(yaml.as_bytes()).unwrap();
        let out = Command::new(proctor_bin())
            .args(["policy", "check"])
            .arg(f.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{yaml}: {err}");
        assert!(err.contains(want), "{yaml}: expected {want:?} in: {err}");
        assert!(
            err.contains(&f.path().display().to_string()),
            "the file is named: {err}"
        );
    }
}

/// A container runtime's log pipe (here the harness's) is 64 KiB by default:
/// a fraction of a second of events at a high rate. The stdout sink asks for
/// 1 MiB, so a reader that stalls briefly does not fill the sink's queue.
#[test]
fn stdout_to_a_pipe_gets_a_one_mebibyte_buffer() {
    use std::os::{fd::AsRawFd, unix::fs::OpenOptionsExt};
    let state = tempfile::tempdir().unwrap();
    let agent = AgentProc::start(&format!(
        "{TEST_METRICS}state_dir: {}\nsecrets:\n  search_dirs: []\n",
        state.path().display()
    ));
    // The agent's fd 1, opened anew: the same pipe, never read from here.
    let pipe = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(format!("/proc/{}/fd/1", agent.pid()))
        .unwrap();
    // SAFETY: F_GETPIPE_SZ only reads the pipe's size.
    let size = unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_GETPIPE_SZ) };
    assert_eq!(size, 1 << 20, "pipe buffer {size} bytes");
}
