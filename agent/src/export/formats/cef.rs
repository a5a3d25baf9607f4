//! ArcSight Common Event Format (CEF) lines, for syslog consumers.
//!
//! `CEF:0|proctor|proctor|<version>|<signature id>|<name>|<severity>|<extension>`
//!
//! - Signature id: the finding's rule id for findings, the event kind
//!   otherwise (`process_exec`, `file_open`, ...).
//! - Name: the rule's title for findings, a fixed phrase per kind otherwise.
//! - Severity 0-10: info 1, low 3, medium 5, high 8, critical 10; events
//!   that are not findings are 1.
//!
//! Header fields escape `\` and `|`; extension values escape `\`, `=` and
//! line breaks (`\n`, `\r`). Extension keys are the CEF dictionary's:
//!
//! | key | meaning here |
//! |-----|--------------|
//! | `rt` | event time, ms since the epoch |
//! | `dvchost` | node |
//! | `externalId` | `<node>:<seq>` |
//! | `cat` | event kind |
//! | `act` | `exec`, `exit`, `open`, `connect`, agent state; findings: the enforcement action (`killed`, `denied`, `egress_blocked`) or `alert` |
//! | `msg` | human summary |
//! | `spid`, `sproc`, `suid` | acting process: pid, name, uid |
//! | `cn1` `parentPid` | parent pid |
//! | `cn2` `exitCode`, `cn3` `signal` | process exit |
//! | `cs1` `execId` | exec id |
//! | `cs2` `exeSha256` | SHA-256 of the executable |
//! | `cs3` `secretId`, `cs4` `secretFingerprint` | the secret of a finding |
//! | `cs5` `containerId`, `cs6` `k8sPod` | container id, `namespace/name` |
//! | `flexString1` `mitreTechniques` | ATT&CK ids, comma-separated |
//! | `flexString2` `exePathNamespace` | `host`, `process` or `pending`: whether the executable's path is true in the host's mount namespace |
//! | `filePath`, `fname`, `fileId`, `fileHash`, `fsize` | the file (for exec: the executable) |
//! | `dst`, `dpt`, `proto`, `outcome`, `reason` | connection attempt |

use super::common::{
    basename, command_line, container_id, dst_ip, epoch_ms, event_uid, first_destination,
    net_outcome, pod_ref, process_name, secret_path, severity, NetOutcome,
};
use super::summary::{self, agent_state, rule_title};
use crate::event::{PRODUCT, PRODUCT_VERSION, VENDOR};
use crate::{
    event::Severity,
    event::{Event, Kind, NetInfo},
};

/// CEF severity (0-10) of a proctor severity.
pub fn cef_severity(s: Severity) -> u8 {
    match s {
        Severity::Info => 1,
        Severity::Low => 3,
        Severity::Medium => 5,
        Severity::High => 8,
        Severity::Critical => 10,
    }
}

/// Escapes a header field: `\` and `|`. Line breaks are not allowed in a
/// header and become spaces.
pub fn escape_header(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Escapes an extension value: `\`, `=`, and line breaks as `\n` / `\r`.
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// The header's Name field.
fn name(ev: &Event) -> &str {
    match ev.kind {
        Kind::ProcessExec => "Process started",
        Kind::ProcessExit => "Process exited",
        Kind::FileOpen => "File opened",
        Kind::NetConnect => "Network connection attempt",
        Kind::AgentStatus => "Agent status",
        Kind::ProcessHash => "Process binary hashed",
        Kind::Finding => ev
            .finding
            .as_ref()
            .map(|f| rule_title(f.rule))
            .unwrap_or("Finding"),
    }
}

fn signature_id(ev: &Event) -> &str {
    match &ev.finding {
        Some(f) if ev.kind == Kind::Finding => f.rule,
        _ => ev.kind.as_str(),
    }
}

/// Extension key/value pairs, in output order. A key appears once: the
/// first value given for it wins.
struct Ext(Vec<(&'static str, String)>);

impl Ext {
    fn add(&mut self, key: &'static str, value: impl ToString) {
        if !self.0.iter().any(|(k, _)| *k == key) {
            self.0.push((key, value.to_string()));
        }
    }

    fn labelled(&mut self, key: &'static str, label: &'static str, value: impl ToString) {
        self.add(key, value);
        // The label key is the value key plus "Label" (cs1 -> cs1Label).
        let label_key = match key {
            "cs1" => "cs1Label",
            "cs2" => "cs2Label",
            "cs3" => "cs3Label",
            "cs4" => "cs4Label",
            "cs5" => "cs5Label",
            "cs6" => "cs6Label",
            "cn1" => "cn1Label",
            "cn2" => "cn2Label",
            "cn3" => "cn3Label",
            "flexString1" => "flexString1Label",
            "flexString2" => "flexString2Label",
            _ => return,
        };
        self.add(label_key, label);
    }
}

/// The event as one CEF line (no syslog header, no trailing newline).
pub fn to_cef(ev: &Event) -> String {
    let p = &ev.process;
    let sev = cef_severity(severity(ev));
    let mut x = Ext(Vec::with_capacity(32));

    x.add("rt", epoch_ms(ev));
    x.add("dvchost", &*ev.node);
    x.add("externalId", event_uid(ev));
    x.add("cat", ev.kind.as_str());
    x.add("spid", p.pid);
    x.add("sproc", process_name(p));
    x.add("suid", p.uid);
    x.labelled("cn1", "parentPid", p.ppid);
    x.labelled("cs1", "execId", &p.exec_id);
    if let Some(h) = &p.exe.sha256 {
        x.labelled("cs2", "exeSha256", h);
    }
    // A path a process's own mount namespace made up is not evidence.
    x.labelled("flexString2", "exePathNamespace", p.exe.path_namespace);
    if let Some(id) = container_id(p) {
        x.labelled("cs5", "containerId", id);
    }
    if let Some(pod) = pod_ref(p) {
        x.labelled("cs6", "k8sPod", pod);
    }

    // The acting process has keys of its own (`sproc`, `spid`): the message
    // of an exec, open or connect says only the rest.
    let act;
    let msg;
    match ev.kind {
        Kind::ProcessHash => {
            act = "hash".to_string();
            msg = summary::summary(ev);
            x.add("filePath", &p.exe.path);
            x.add("fileId", p.exe.inode);
            if let Some(h) = &p.exe.sha256 {
                x.add("fileHash", h);
            }
        }
        Kind::ProcessExec => {
            act = "exec".to_string();
            msg = command_line(p);
            x.add("filePath", &p.exe.path);
            x.add("fname", basename(&p.exe.path));
            x.add("fileId", p.exe.inode);
            x.add("fsize", p.exe.size);
            if let Some(h) = &p.exe.sha256 {
                x.add("fileHash", h);
            }
        }
        Kind::ProcessExit => {
            act = "exit".to_string();
            msg = summary::exited(p);
            if let Some(e) = &ev.exit {
                if let Some(code) = e.code {
                    x.labelled("cn2", "exitCode", code);
                }
                if let Some(sig) = e.signal {
                    x.labelled("cn3", "signal", sig);
                }
            }
        }
        Kind::FileOpen => {
            act = "open".to_string();
            msg = match &ev.file {
                Some(f) => format!("opened for {}", f.access),
                None => "opened".into(),
            };
        }
        Kind::NetConnect => {
            act = "connect".to_string();
            msg = match &ev.net {
                Some(n) => format!("{} connect: {}", n.protocol, n.result),
                None => "connect".into(),
            };
        }
        Kind::Finding => {
            // What enforcement did (`killed`, `denied`, `egress_blocked`), else alert.
            act = ev
                .finding
                .as_ref()
                .and_then(|f| f.action)
                .unwrap_or("alert")
                .to_string();
            msg = ev
                .finding
                .as_ref()
                .map(|f| f.summary.clone())
                .unwrap_or_default();
            if let Some(f) = &ev.finding {
                if let Some(s) = &f.secret {
                    x.labelled("cs3", "secretId", &s.id);
                    if let Some(fp) = &s.fingerprint {
                        x.labelled("cs4", "secretFingerprint", fp);
                    }
                }
                if !f.mitre.is_empty() {
                    x.labelled("flexString1", "mitreTechniques", f.mitre.join(","));
                }
                if let Some(e) = &f.evidence.escalation {
                    x.add("reason", e);
                }
                // A finding about a file without the open event's details.
                if let (None, Some(path)) = (&ev.file, secret_path(ev)) {
                    x.add("filePath", path);
                    x.add("fname", basename(path));
                }
            }
        }
        Kind::AgentStatus => {
            msg = summary::summary(ev);
            act = agent_state(ev).unwrap_or("running").to_string();
        }
    }
    x.add("act", act);
    if !msg.is_empty() {
        x.add("msg", msg);
    }
    if let Some(f) = &ev.file {
        x.add("filePath", &f.path);
        x.add("fname", basename(&f.path));
        x.add("fileId", f.inode);
    }
    if let Some(n) = &ev.net {
        net_ext(&mut x, n);
    } else if let Some((ip, port)) = first_destination(ev) {
        x.add("dst", ip);
        if let Some(port) = port {
            x.add("dpt", port);
        }
    }

    let mut line = format!(
        "CEF:0|{}|{}|{}|{}|{}|{}|",
        escape_header(VENDOR),
        escape_header(PRODUCT),
        escape_header(PRODUCT_VERSION),
        escape_header(signature_id(ev)),
        escape_header(name(ev)),
        sev,
    );
    for (i, (k, v)) in x.0.iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        line.push_str(k);
        line.push('=');
        line.push_str(&escape_value(v));
    }
    line
}

fn net_ext(x: &mut Ext, n: &NetInfo) {
    match dst_ip(n) {
        Some(ip) => x.add("dst", ip),
        // CEF has no key for a unix socket: it is a file path.
        None => {
            if let Some(path) = &n.dst_path {
                x.add("filePath", path);
            }
        }
    }
    if let Some(port) = n.dst_port {
        x.add("dpt", port);
    }
    if matches!(n.protocol, "tcp" | "udp" | "icmp") {
        x.add("proto", n.protocol.to_ascii_uppercase());
    }
    let outcome = match net_outcome(n) {
        NetOutcome::Success => Some("success"),
        NetOutcome::Pending => None,
        _ => Some("failure"),
    };
    if let Some(o) = outcome {
        x.add("outcome", o);
    }
    if outcome == Some("failure") {
        x.add("reason", n.result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::*;

    /// Splits a CEF line into its 7 header fields and the extension,
    /// honouring `\|` and `\\` escapes.
    fn split_header(line: &str) -> (Vec<String>, String) {
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            if fields.len() == 7 {
                cur.push(c);
                cur.extend(chars.by_ref());
                break;
            }
            match c {
                '\\' => {
                    let next = chars.next().expect("dangling escape in header");
                    assert!(next == '\\' || next == '|', "bad header escape \\{next}");
                    cur.push(next);
                }
                '|' => fields.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        (fields, cur)
    }

    /// Parses the extension into (key, unescaped value) pairs. A key is the
    /// word before an unescaped `=`; the value runs to the next ` key=`.
    fn parse_ext(ext: &str) -> Vec<(String, String)> {
        // Tokenise on unescaped '='.
        let mut parts: Vec<String> = vec![String::new()];
        let mut chars = ext.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    let next = chars.next().expect("dangling escape");
                    let raw = match next {
                        '\\' => '\\',
                        '=' => '=',
                        'n' => '\n',
                        'r' => '\r',
                        other => panic!("bad extension escape \\{other}"),
                    };
                    parts.last_mut().unwrap().push(raw);
                }
                '=' => parts.push(String::new()),
                c => parts.last_mut().unwrap().push(c),
            }
        }
        let mut out = Vec::new();
        let mut key = parts[0].clone();
        for (i, part) in parts.iter().enumerate().skip(1) {
            let (value, next_key) = if i + 1 < parts.len() {
                let (v, k) = part.rsplit_once(' ').expect("value then key");
                (v.to_string(), k.to_string())
            } else {
                (part.clone(), String::new())
            };
            assert!(
                !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric()),
                "bad key {key:?}"
            );
            out.push((key, value));
            key = next_key;
        }
        out
    }

    fn ext_map(line: &str) -> std::collections::HashMap<String, String> {
        let (_, ext) = split_header(line);
        parse_ext(&ext).into_iter().collect()
    }

    #[test]
    fn header_structure_for_every_fixture() {
        for ev in all_kinds() {
            let line = to_cef(&ev);
            assert!(line.starts_with("CEF:0|proctor|proctor|"), "{line}");
            assert!(!line.contains('\n') && !line.contains('\r'), "{line}");
            let (h, ext) = split_header(&line);
            assert_eq!(h.len(), 7, "{line}");
            assert_eq!(h[0], "CEF:0");
            assert_eq!(h[3], PRODUCT_VERSION);
            let sev: u8 = h[6].parse().expect("numeric severity");
            assert!(sev <= 10);
            let expected_sig = match (&ev.finding, ev.kind) {
                (Some(f), Kind::Finding) => f.rule.to_string(),
                _ => ev.kind.as_str().to_string(),
            };
            assert_eq!(h[4], expected_sig);
            assert!(!h[5].is_empty());
            let ext = parse_ext(&ext);
            let keys: Vec<&str> = ext.iter().map(|(k, _)| k.as_str()).collect();
            for required in ["rt", "dvchost", "externalId", "cat", "act", "spid", "cs1"] {
                assert!(keys.contains(&required), "{required} missing in {line}");
            }
            for (k, v) in &ext {
                if let Some(n) = k.strip_prefix("cs").or(k.strip_prefix("cn")) {
                    if !n.ends_with("Label") {
                        let label = format!("{k}Label");
                        assert!(keys.contains(&label.as_str()), "{k} without {label}");
                    }
                }
                if k == "rt" {
                    assert_eq!(v, &(T_NS / 1_000_000).to_string());
                }
            }
        }
    }

    #[test]
    fn severity_mapping() {
        let table = [
            (Severity::Info, 1),
            (Severity::Low, 3),
            (Severity::Medium, 5),
            (Severity::High, 8),
            (Severity::Critical, 10),
        ];
        for (s, n) in table {
            assert_eq!(cef_severity(s), n);
            let mut ev = event(Kind::Finding);
            ev.finding = Some(Box::new(finding("secret-read", s)));
            let (h, _) = split_header(&to_cef(&ev));
            assert_eq!(h[6], n.to_string());
        }
        let (h, _) = split_header(&to_cef(&event(Kind::ProcessExec)));
        assert_eq!(h[6], "1");
    }

    #[test]
    fn escaping() {
        let table = [
            ("a|b", "a\\|b", "a|b"),
            ("a\\b", "a\\\\b", "a\\\\b"),
            ("a=b", "a=b", "a\\=b"),
            ("l1\nl2\r", "l1 l2 ", "l1\\nl2\\r"),
            ("\\|=", "\\\\\\|=", "\\\\|\\="),
        ];
        for (raw, header, value) in table {
            assert_eq!(escape_header(raw), header, "header {raw:?}");
            assert_eq!(escape_value(raw), value, "value {raw:?}");
        }
    }

    #[test]
    fn hostile_values_round_trip() {
        let mut p = process();
        p.args = vec![
            "sh".into(),
            "-c".into(),
            "echo a=b | tee c\\d\nrm -rf x suid=0".into(),
        ];
        let mut ev = event_with(Kind::ProcessExec, p);
        ev.node = "node|x\\y".into();
        let line = to_cef(&ev);
        assert!(!line.contains('\n'));
        let m = ext_map(&line);
        assert_eq!(m["msg"], "sh -c echo a=b | tee c\\d\nrm -rf x suid=0");
        assert_eq!(m["dvchost"], "node|x\\y");
        assert_eq!(m["suid"], "1000", "an injected suid= does not override");
        assert_eq!(m["externalId"], "node|x\\y:42");

        let mut ev = event(Kind::Finding);
        let mut f = finding("secret|read\\x", Severity::High);
        f.summary = "path /a=b\nsecond line".into();
        ev.finding = Some(Box::new(f));
        let line = to_cef(&ev);
        let (h, _) = split_header(&line);
        assert_eq!(h[4], "secret|read\\x");
        let m = ext_map(&line);
        assert_eq!(m["msg"], "path /a=b\nsecond line");
    }

    #[test]
    fn process_and_file_keys() {
        let m = ext_map(&to_cef(&event(Kind::ProcessExec)));
        assert_eq!(m["spid"], "4242");
        assert_eq!(m["sproc"], "curl");
        assert_eq!(m["suid"], "1000");
        assert_eq!(m["cn1"], "4200");
        assert_eq!(m["cn1Label"], "parentPid");
        assert_eq!(m["cs1"], EXEC_ID);
        assert_eq!(m["cs1Label"], "execId");
        assert_eq!(m["cs2"], SHA256);
        assert_eq!(m["cs2Label"], "exeSha256");
        assert_eq!(m["flexString2"], "host");
        assert_eq!(m["flexString2Label"], "exePathNamespace");
        assert_eq!(m["cs5"], CONTAINER_ID);
        assert_eq!(m["cs6"], "payments/api-7d9f");
        assert_eq!(m["filePath"], "/usr/bin/curl");
        assert_eq!(m["fileHash"], SHA256);
        assert_eq!(m["act"], "exec");
        assert_eq!(m["cat"], "process_exec");

        let m = ext_map(&to_cef(&event(Kind::FileOpen)));
        assert_eq!(m["filePath"], "/home/alice/.aws/credentials");
        assert_eq!(m["fname"], "credentials");
        assert_eq!(m["fileId"], "393222");
        assert_eq!(m["act"], "open");

        let m = ext_map(&to_cef(&event(Kind::ProcessExit)));
        assert_eq!(m["cn2"], "3");
        assert_eq!(m["cn2Label"], "exitCode");
    }

    #[test]
    fn finding_and_network_keys() {
        let line = to_cef(&event(Kind::Finding));
        let (h, _) = split_header(&line);
        assert_eq!(h[4], "secret-read");
        assert_eq!(h[5], "Static secret read");
        assert_eq!(h[6], "8");
        let m = ext_map(&line);
        assert_eq!(m["cs3"], "aws-credentials");
        assert_eq!(m["cs3Label"], "secretId");
        assert_eq!(m["cs4"], FINGERPRINT);
        assert_eq!(m["cs4Label"], "secretFingerprint");
        assert_eq!(m["flexString1"], "T1552.001,T1083");
        assert_eq!(m["act"], "alert");
        assert!(m["msg"].contains("aws-credentials"));

        let m = ext_map(&to_cef(&event(Kind::NetConnect)));
        assert_eq!(m["dst"], "203.0.113.7");
        assert_eq!(m["dpt"], "443");
        assert_eq!(m["proto"], "TCP");
        assert_eq!(m["outcome"], "success");

        let mut killed = event(Kind::Finding);
        killed.finding.as_mut().unwrap().action = Some("killed");
        assert_eq!(ext_map(&to_cef(&killed))["act"], "killed");

        let mut ev = event(Kind::NetConnect);
        ev.net = Some(Box::new(net("refused", Some(libc::ECONNREFUSED))));
        let m = ext_map(&to_cef(&ev));
        assert_eq!(m["outcome"], "failure");
        assert_eq!(m["reason"], "refused");

        let line = to_cef(&exfil());
        let (h, _) = split_header(&line);
        assert_eq!(h[4], "secret-exfil");
        assert_eq!(h[6], "10");
        let m = ext_map(&line);
        assert_eq!(m["dst"], "2001:db8::7");
        assert_eq!(m["dpt"], "8443");
    }
}
