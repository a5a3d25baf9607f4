//! Sink throughput: for each sink type, how many events per second the
//! agent exports and how much CPU it spends per 10k exported events/s.
//!
//! The events are `net_connect` records of refused loopback connects to
//! distinct ports (distinct destinations, so the kernel's de-duplication
//! keeps every one), sent as fast as one thread can. Receivers run here on
//! loopback: rsyslog (UDP, TCP), and minimal HTTP receivers standing in for
//! Splunk HEC and an OTLP collector that count events and answer success.
//! Appends a "Sinks" section to the benchmark report.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use crate::root;

/// Threads making connects: one cannot outrun the agent.
const GENERATORS: u64 = 4;

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32, clk_tck: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ")".
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11..13).map_or(0.0, |t| {
        t.iter().filter_map(|v| v.parse::<f64>().ok()).sum()
    });
    ticks / clk_tck
}

/// Clock ticks per second of /proc/<pid>/stat times.
fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// A receiver counting HEC events or OTLP log records, answering success.
fn http_receiver(otlp: bool) -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for conn in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn);
                loop {
                    let mut len = 0usize;
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end().to_ascii_lowercase();
                        if h.is_empty() {
                            break;
                        }
                        if let Some(v) = h.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; len];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    let answer = if otlp {
                        r#"{"partialSuccess":{}}"#
                    } else {
                        r#"{"text":"Success","code":0}"#
                    };
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    if r.get_mut().write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(port)
}

struct Rsyslog {
    child: Child,
    udp: u16,
    tcp: u16,
}

impl Rsyslog {
    fn start(dir: &Path) -> Result<Rsyslog> {
        let (udp, tcp) = (free_port()?, free_port()?);
        std::fs::create_dir_all(dir.join("work"))?;
        let d = dir.display();
        std::fs::write(
            dir.join("rsyslog.conf"),
            format!(
                r#"global(workDirectory="{d}/work" maxMessageSize="256k")
module(load="imudp")
module(load="imtcp")
template(name="raw" type="string" string="%rawmsg%\n")
ruleset(name="out") {{ action(type="omfile" file="{d}/out.log" template="raw") }}
input(type="imudp" address="127.0.0.1" port="{udp}" ruleset="out")
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="out")
"#
            ),
        )?;
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(dir.join("pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start rsyslogd (cargo xtask setup installs it)")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", tcp)).is_err() {
            if Instant::now() > deadline {
                bail!("rsyslogd did not listen on {tcp}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Rsyslog { child, udp, tcp })
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn metrics(port: u16) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn delivered(text: &str, sink: &str) -> u64 {
    let series = format!(r#"proctor_sink_events_total{{sink="{sink}",outcome="delivered"}} "#);
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

struct Figures {
    sink: &'static str,
    events: u64,
    rate: f64,
    cpu_per_10k: f64,
}

/// Runs one agent with one sink and measures it.
fn measure(bin: &Path, dir: &Path, sink: &'static str, yaml: &str, n: u64) -> Result<Figures> {
    let mport = free_port()?;
    let config = dir.join(format!("{sink}.yaml"));
    std::fs::write(
        &config,
        format!(
            "status_interval: 5s\nstate_dir: {}/state-{sink}\nsecrets:\n  enabled: false\n\
             metrics:\n  listen: 127.0.0.1:{mport}\napi:\n  enabled: false\n\
             sinks:\n  - {yaml}\n    name: {sink}\n    kinds: [net_connect]\n",
            dir.display()
        ),
    )?;
    let mut child = Command::new(bin)
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start proctor")?;
    let pid = child.id();
    let result = (|| {
        let deadline = Instant::now() + Duration::from_secs(90);
        while !metrics(mport).contains("proctor_sink_events_total") {
            if Instant::now() > deadline {
                bail!("agent with the {sink} sink did not come up");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let before = delivered(&metrics(mport), sink);
        let tck = clk_tck();
        let (cpu0, t0) = (cpu_seconds(pid, tck), Instant::now());
        std::thread::scope(|s| {
            for t in 0..GENERATORS {
                s.spawn(move || {
                    for i in (t..n).step_by(GENERATORS as usize) {
                        // Refused at once: nothing listens on these ports.
                        let port = 20000 + (i % 40000) as u16;
                        let _ = TcpStream::connect_timeout(
                            &([127, 0, 0, 1], port).into(),
                            Duration::from_millis(50),
                        );
                    }
                });
            }
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        let got = loop {
            let d = delivered(&metrics(mport), sink) - before;
            if d >= n || Instant::now() > deadline {
                break d;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let secs = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds(pid, tck) - cpu0;
        let rate = got as f64 / secs;
        Ok(Figures {
            sink,
            events: got,
            rate,
            cpu_per_10k: 100.0 * (cpu / secs) / (rate / 10_000.0),
        })
    })();
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let _ = child.wait();
    result
}

pub fn run(bin: &Path, smoke: bool) -> Result<()> {
    let n: u64 = if smoke { 1_000 } else { 30_000 };
    let dir = std::env::temp_dir().join(format!("proctor-bench-sinks-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let rsyslog = Rsyslog::start(&dir.join("rsyslog"))?;
    let hec = http_receiver(false)?;
    let otlp = http_receiver(true)?;
    let sinks: Vec<(&'static str, String)> = vec![
        ("file", format!("type: file\n    path: {}/events.jsonl", dir.display())),
        (
            "syslog-udp",
            format!("type: syslog\n    transport: udp\n    address: 127.0.0.1:{}", rsyslog.udp),
        ),
        (
            "syslog-tcp",
            format!("type: syslog\n    transport: tcp\n    address: 127.0.0.1:{}", rsyslog.tcp),
        ),
        (
            "hec",
            format!(
                "type: hec\n    url: http://127.0.0.1:{hec}/services/collector/event\n    token: bench"
            ),
        ),
        ("otlp", format!("type: otlp\n    url: http://127.0.0.1:{otlp}/v1/logs")),
    ];
    let mut rows = String::new();
    for (name, yaml) in &sinks {
        let f = measure(bin, &dir, name, yaml, n)?;
        rows.push_str(&format!(
            "| {} | {} | {:.0} | {:.0}% |\n",
            f.sink, f.events, f.rate, f.cpu_per_10k
        ));
    }
    drop(rsyslog);
    let _ = std::fs::remove_dir_all(&dir);
    let md = format!(
        "\n## Sinks\n\n{n} `net_connect` events (refused loopback connects to distinct ports, {GENERATORS} threads) \
         through one sink at a time, default sink settings, receivers on loopback (rsyslog for syslog; \
         counting HTTP receivers standing in for HEC and OTLP). Rate: events the sink confirmed \
         delivered per second, from the first connect to the last confirmation. CPU: the agent's \
         user+system time, as % of one core, scaled to 10k exported events/s.\n\n\
         | sink | events delivered | events/s | agent CPU per 10k events/s |\n| --- | --- | --- | --- |\n{rows}"
    );
    let out: PathBuf = if smoke {
        root().join("target/bench-smoke.md")
    } else {
        root().join("BENCHMARKS.md")
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&out)
        .with_context(|| format!("open {}", out.display()))?;
    f.write_all(md.as_bytes())?;
    println!("{md}");
    Ok(())
}
