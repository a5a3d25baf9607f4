//! Elastic Common Schema (ECS) 8.x.
//!
//! Documents are nested objects, as Elasticsearch stores them. Fields ECS
//! defines are used with ECS types (ids and inodes are keyword strings,
//! `event.category` / `event.type` / `threat.technique.id` are arrays,
//! dates are RFC 3339). What ECS has no field for lives under the custom
//! top-level `proctor` object (exe inode and tamper flags, attestation,
//! cgroup, open flags, secret id and fingerprint, evidence ids).
//!
//! | kind           | event.kind | event.category        | event.type          |
//! |----------------|------------|-----------------------|---------------------|
//! | `process_exec` | event      | process               | start               |
//! | `process_exit` | event      | process               | end                 |
//! | `file_open`    | event      | file                  | access              |
//! | `net_connect`  | event      | network               | connection, start (+ denied) |
//! | `finding`      | alert      | intrusion_detection   | info                |
//! | `agent_status` | state      | host                  | start / info / end  |

use serde_json::{json, Map, Value};

use super::common::{
    command_line, container_block, dev_string, dst_ip, epoch_ns, event_uid, first_destination,
    iana_protocol, ip_version, kernel_facts, net_outcome, opened_directory, parent_block,
    parse_destination, path_block, pod, process_name, secret_path, severity, severity_rank,
    split_mitre, NetOutcome,
};
use super::summary::{agent_state, rule_title, summary};
use crate::event::{rfc3339_ns, Event, FileInfo, Finding, Kind, NetInfo, Process};
use crate::event::{PRODUCT, PRODUCT_VERSION};

/// The ECS version the documents follow (`ecs.version`).
pub const ECS_VERSION: &str = "8.17.0";

/// `event.kind`, `event.category`, `event.type` of an event.
pub fn classification(ev: &Event) -> (&'static str, Vec<&'static str>, Vec<&'static str>) {
    match ev.kind {
        Kind::ProcessExec => ("event", vec!["process"], vec!["start"]),
        Kind::ProcessExit => ("event", vec!["process"], vec!["end"]),
        Kind::ProcessHash => ("event", vec!["process"], vec!["change"]),
        Kind::FileOpen => ("event", vec!["file"], vec!["access"]),
        Kind::NetConnect => {
            let denied = ev
                .net
                .as_ref()
                .is_some_and(|n| net_outcome(n) == NetOutcome::Denied);
            let mut types = vec!["connection", "start"];
            if denied {
                types.push("denied");
            }
            ("event", vec!["network"], types)
        }
        Kind::Finding => {
            // Enforcement (a killed reader, a blocked connect) is a denial.
            let enforced = ev.finding.as_ref().is_some_and(|f| f.action.is_some());
            let t = if enforced { "denied" } else { "info" };
            ("alert", vec!["intrusion_detection"], vec![t])
        }
        Kind::AgentStatus => {
            let t = match agent_state(ev) {
                Some("started") => "start",
                Some("stopped") => "end",
                _ => "info",
            };
            ("state", vec!["host"], vec![t])
        }
    }
}

/// The event as an ECS document.
pub fn to_ecs(ev: &Event) -> Value {
    let p = &ev.process;
    let (kind, category, types) = classification(ev);
    let ts = match epoch_ns(ev) {
        0 => ev.time.to_string(),
        ns => rfc3339_ns(ns),
    };

    let mut event = Map::new();
    event.insert("kind".into(), json!(kind));
    event.insert("category".into(), json!(category));
    event.insert("type".into(), json!(types));
    event.insert("action".into(), json!(ev.kind.as_str()));
    event.insert("id".into(), json!(event_uid(ev)));
    event.insert("sequence".into(), json!(ev.seq));
    event.insert("severity".into(), json!(severity_rank(severity(ev))));
    event.insert("module".into(), json!(PRODUCT));
    event.insert("dataset".into(), json!("proctor.events"));

    let mut doc = Map::new();
    doc.insert("@timestamp".into(), json!(ts));
    doc.insert("ecs".into(), json!({"version": ECS_VERSION}));
    doc.insert(
        "host".into(),
        json!({"name": &*ev.node, "hostname": &*ev.node}),
    );
    doc.insert(
        "agent".into(),
        json!({"type": PRODUCT, "version": PRODUCT_VERSION}),
    );

    let mut custom = Map::new();
    custom.insert("schema".into(), json!(ev.schema));
    custom.insert("process".into(), process_custom(p));

    let mut process = process(p);
    match ev.kind {
        Kind::ProcessExec | Kind::ProcessHash | Kind::FileOpen => {
            event.insert("outcome".into(), json!("success"));
        }
        Kind::ProcessExit => {
            event.insert("outcome".into(), json!("success"));
            process.insert("end".into(), json!(ts));
            if let Some(x) = &ev.exit {
                if let Some(code) = x.code {
                    process.insert("exit_code".into(), json!(code));
                }
                event.insert("duration".into(), json!(x.duration_ns));
                custom.insert(
                    "exit".into(),
                    serde_json::to_value(x).unwrap_or(Value::Null),
                );
            }
        }
        Kind::NetConnect => {
            if let Some(net) = &ev.net {
                net_fields(&mut doc, &mut event, &mut custom, net);
            }
        }
        Kind::Finding => {
            if let Some(f) = &ev.finding {
                finding_fields(&mut doc, &mut event, &mut custom, f);
            }
            if let Some(net) = &ev.net {
                net_fields(&mut doc, &mut event, &mut custom, net);
            } else if let Some((ip, port)) = first_destination(ev) {
                // secret-exfil: the first destination the secret went to.
                let mut dst = Map::new();
                dst.insert("ip".into(), json!(ip.to_string()));
                dst.insert("address".into(), json!(ip.to_string()));
                if let Some(port) = port {
                    dst.insert("port".into(), json!(port));
                }
                doc.insert("destination".into(), Value::Object(dst));
            }
        }
        Kind::AgentStatus => {
            if let Some(s) = &ev.status {
                custom.insert("status".into(), s.clone());
            }
        }
    }

    // The file the event is about: the opened file, else the secret's file.
    match (&ev.file, secret_path(ev)) {
        (Some(f), _) => {
            doc.insert("file".into(), file(f));
            custom.insert(
                "file".into(),
                json!({
                    "dev": f.dev,
                    "flags": f.flags,
                    "access": f.access,
                    "requested_path": f.requested_path,
                }),
            );
        }
        (None, Some(path)) => {
            doc.insert("file".into(), Value::Object(path_file(path)));
        }
        _ => {}
    }

    doc.insert("message".into(), json!(summary(ev)));
    doc.insert("event".into(), Value::Object(event));
    doc.insert("process".into(), Value::Object(process));
    if let Some(c) = container_block(p, "id") {
        doc.insert("container".into(), Value::Object(c));
    }
    if let Some(o) = orchestrator(p) {
        doc.insert("orchestrator".into(), o);
    }
    if let Some(pod) = &p.pod {
        custom.insert("pod".into(), pod.clone());
    }
    doc.insert("related".into(), related(ev));
    doc.insert("proctor".into(), Value::Object(custom));
    Value::Object(doc)
}

/// `related.*`: every hash, IP and user id in the event, for pivoting.
fn related(ev: &Event) -> Value {
    let p = &ev.process;
    let mut o = Map::new();
    let mut hashes: Vec<&str> = Vec::new();
    for h in [
        p.exe.sha256.as_deref(),
        p.interpreter
            .as_ref()
            .and_then(|i| i.script.sha256.as_deref()),
    ]
    .into_iter()
    .flatten()
    {
        if !hashes.contains(&h) {
            hashes.push(h);
        }
    }
    if !hashes.is_empty() {
        o.insert("hash".into(), json!(hashes));
    }
    let mut ips: Vec<String> = Vec::new();
    let net_ip = ev.net.as_deref().and_then(dst_ip);
    let evidence_ips = ev
        .finding
        .iter()
        .flat_map(|f| &f.evidence.destinations)
        .filter_map(|d| parse_destination(d).map(|(ip, _)| ip));
    for ip in net_ip.into_iter().chain(evidence_ips) {
        let ip = ip.to_string();
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    if !ips.is_empty() {
        o.insert("ip".into(), json!(ips));
    }
    let mut users = vec![p.uid.to_string()];
    if p.euid != p.uid {
        users.push(p.euid.to_string());
    }
    o.insert("user".into(), json!(users));
    Value::Object(o)
}

/// `process.*`. `process.user` / `process.group` are the effective ids,
/// `process.real_user` / `process.real_group` the real ones, as ECS defines.
fn process(p: &Process) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("pid".into(), json!(p.pid));
    o.insert("entity_id".into(), json!(p.exec_id));
    o.insert("name".into(), json!(process_name(p)));
    o.insert("executable".into(), json!(p.exe.path));
    o.insert("args".into(), json!(p.args));
    o.insert("args_count".into(), json!(p.args.len()));
    o.insert("command_line".into(), json!(command_line(p)));
    if let Some(h) = &p.exe.sha256 {
        o.insert("hash".into(), json!({"sha256": h}));
    }
    o.insert("parent".into(), parent_block(p, "entity_id"));
    o.insert("user".into(), json!({"id": p.euid.to_string()}));
    o.insert("group".into(), json!({"id": p.egid.to_string()}));
    o.insert("real_user".into(), json!({"id": p.uid.to_string()}));
    o.insert("real_group".into(), json!({"id": p.gid.to_string()}));
    o.insert("start".into(), json!(rfc3339_ns(p.start_time_ns)));
    o
}

/// What ECS has no field for, about the process.
fn process_custom(p: &Process) -> Value {
    let mut o = kernel_facts(p);
    if let Some(exe) = o.get_mut("exe").and_then(Value::as_object_mut) {
        exe.insert("device".into(), json!(dev_string(p.exe.dev)));
        exe.insert("size".into(), json!(p.exe.size));
    }
    Value::Object(o)
}

fn orchestrator(p: &Process) -> Option<Value> {
    let pod = pod(p)?;
    let mut o = Map::new();
    o.insert("type".into(), json!("kubernetes"));
    if let Some(ns) = pod.namespace {
        o.insert("namespace".into(), json!(ns));
    }
    let mut r = Map::new();
    r.insert("type".into(), json!("pod"));
    if let Some(n) = pod.name {
        r.insert("name".into(), json!(n));
    }
    if let Some(uid) = pod.uid {
        r.insert("id".into(), json!(uid));
    }
    o.insert("resource".into(), Value::Object(r));
    Some(Value::Object(o))
}

fn path_file(path: &str) -> Map<String, Value> {
    path_block(path, "directory")
}

/// `file.*`: `inode` and `device` are keyword strings in ECS; the device
/// is written `major:minor`.
fn file(f: &FileInfo) -> Value {
    let mut o = path_file(&f.path);
    o.insert("inode".into(), json!(f.inode.to_string()));
    o.insert("device".into(), json!(dev_string(f.dev)));
    if opened_directory(f) {
        o.insert("type".into(), json!("dir"));
    }
    Value::Object(o)
}

/// `destination.*`, `network.*`, `event.outcome` of a connection attempt.
fn net_fields(
    doc: &mut Map<String, Value>,
    event: &mut Map<String, Value>,
    custom: &mut Map<String, Value>,
    net: &NetInfo,
) {
    let mut dst = Map::new();
    if let Some(ip) = dst_ip(net) {
        dst.insert("ip".into(), json!(ip.to_string()));
        dst.insert("address".into(), json!(ip.to_string()));
    } else if let Some(addr) = net.dst_path.as_deref().or(net.dst_ip.as_deref()) {
        dst.insert("address".into(), json!(addr));
    }
    if let Some(port) = net.dst_port {
        dst.insert("port".into(), json!(port));
    }
    if !dst.is_empty() {
        doc.insert("destination".into(), Value::Object(dst));
    }

    let mut n = Map::new();
    if iana_protocol(net).is_some() || matches!(net.protocol, "tcp" | "udp" | "icmp") {
        let transport = match (net.protocol, ip_version(net)) {
            ("icmp", Some(6)) => "ipv6-icmp",
            (p, _) => p,
        };
        n.insert("transport".into(), json!(transport));
    }
    if let Some(num) = iana_protocol(net) {
        n.insert("iana_number".into(), json!(num.to_string()));
    }
    match ip_version(net) {
        Some(4) => {
            n.insert("type".into(), json!("ipv4"));
        }
        Some(_) => {
            n.insert("type".into(), json!("ipv6"));
        }
        None => {}
    }
    // Host-based view: the node initiated it.
    n.insert("direction".into(), json!("egress"));
    doc.insert("network".into(), Value::Object(n));

    let outcome = match net_outcome(net) {
        NetOutcome::Success => "success",
        NetOutcome::Pending => "unknown",
        _ => "failure",
    };
    event.insert("outcome".into(), json!(outcome));
    if let Some(errno) = net.errno {
        doc.insert(
            "error".into(),
            json!({"code": errno.to_string(), "type": net.result}),
        );
    }
    custom.insert(
        "net".into(),
        serde_json::to_value(net).unwrap_or(Value::Null),
    );
}

/// `rule.*`, `threat.*` and the custom finding fields.
fn finding_fields(
    doc: &mut Map<String, Value>,
    event: &mut Map<String, Value>,
    custom: &mut Map<String, Value>,
    f: &Finding,
) {
    doc.insert(
        "rule".into(),
        json!({
            "id": f.rule,
            "name": f.rule,
            "description": rule_title(f.rule),
            "ruleset": PRODUCT,
        }),
    );
    if !f.mitre.is_empty() {
        let techniques: Vec<&str> = f.mitre.iter().map(|m| split_mitre(m).0).collect();
        let mut dedup: Vec<&str> = Vec::new();
        for t in techniques {
            if !dedup.contains(&t) {
                dedup.push(t);
            }
        }
        let subs: Vec<&str> = f.mitre.iter().filter_map(|m| split_mitre(m).1).collect();
        let mut technique = Map::new();
        technique.insert("id".into(), json!(dedup));
        if !subs.is_empty() {
            technique.insert("subtechnique".into(), json!({"id": subs}));
        }
        doc.insert(
            "threat".into(),
            json!({"framework": "MITRE ATT&CK", "technique": technique}),
        );
    }
    if let Some(e) = &f.evidence.escalation {
        event.insert("reason".into(), json!(e));
    }
    custom.insert(
        "finding".into(),
        json!({
            "rule": f.rule,
            "severity": f.severity.as_str(),
            "summary": f.summary,
            "mitre": f.mitre,
            "evidence": f.evidence,
            "action": f.action,
        }),
    );
    if let Some(s) = &f.secret {
        custom.insert(
            "secret".into(),
            serde_json::to_value(s).unwrap_or(Value::Null),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Severity;
    use crate::testdata::*;

    fn get<'a>(v: &'a Value, path: &str) -> &'a Value {
        v.pointer(path)
            .unwrap_or_else(|| panic!("{path} missing in {v:#}"))
    }

    fn s<'a>(v: &'a Value, path: &str) -> &'a str {
        get(v, path)
            .as_str()
            .unwrap_or_else(|| panic!("{path} is not a string in {v:#}"))
    }

    /// Allowed `event.type` values per `event.category` (ECS 8.17).
    fn allowed_types(category: &str) -> &'static [&'static str] {
        match category {
            "process" => &["access", "change", "end", "info", "start"],
            "file" => &["access", "change", "creation", "deletion", "info"],
            "network" => &[
                "access",
                "allowed",
                "connection",
                "denied",
                "end",
                "info",
                "protocol",
                "start",
            ],
            "intrusion_detection" => &["allowed", "denied", "info"],
            "host" => &["access", "change", "end", "info", "start"],
            other => panic!("unexpected category {other}"),
        }
    }

    /// Fields every document has, with ECS types.
    fn assert_common(v: &Value, ev: &Event) {
        let ts = s(v, "/@timestamp");
        let parsed = humantime::parse_rfc3339(ts).expect("@timestamp is RFC 3339");
        let ns = parsed
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        assert_eq!(ns, u128::from(T_NS));
        assert!(ts.ends_with('Z'));
        assert_eq!(s(v, "/ecs/version"), ECS_VERSION);
        assert!(ECS_VERSION.starts_with("8."));
        let kind = s(v, "/event/kind");
        assert!(["event", "alert", "state"].contains(&kind));
        let categories = get(v, "/event/category").as_array().expect("category[]");
        let types = get(v, "/event/type").as_array().expect("type[]");
        assert!(!categories.is_empty() && !types.is_empty());
        for c in categories {
            let allowed = allowed_types(c.as_str().unwrap());
            for t in types {
                assert!(allowed.contains(&t.as_str().unwrap()), "{c} / {t}");
            }
        }
        assert_eq!(s(v, "/event/action"), ev.kind.as_str());
        assert_eq!(get(v, "/event/sequence").as_u64(), Some(ev.seq));
        let sev = get(v, "/event/severity")
            .as_u64()
            .expect("numeric severity");
        assert!((1..=5).contains(&sev));
        assert_eq!(s(v, "/event/id"), format!("node-a:{}", ev.seq));
        assert_eq!(s(v, "/host/name"), "node-a");
        assert!(get(v, "/message").is_string());
        // process.*
        assert_eq!(
            get(v, "/process/pid").as_u64(),
            Some(u64::from(ev.process.pid))
        );
        assert_eq!(s(v, "/process/entity_id"), &*ev.process.exec_id);
        assert!(get(v, "/process/args").is_array());
        assert_eq!(
            get(v, "/process/args_count").as_u64(),
            Some(ev.process.args.len() as u64)
        );
        assert!(get(v, "/process/parent/pid").is_u64());
        for id in [
            "/process/user/id",
            "/process/group/id",
            "/process/real_user/id",
        ] {
            assert!(get(v, id).is_string(), "{id} is a keyword");
        }
        humantime::parse_rfc3339(s(v, "/process/start")).expect("process.start is a date");
        if let Some(f) = v.get("file") {
            assert!(f["path"].is_string() && f["name"].is_string());
            if let Some(i) = f.get("inode") {
                assert!(i.is_string(), "file.inode is a keyword");
            }
        }
        assert!(get(v, "/proctor").is_object());
    }

    #[test]
    fn every_fixture_is_a_well_typed_ecs_document() {
        for ev in all_kinds() {
            assert_common(&to_ecs(&ev), &ev);
        }
    }

    #[test]
    fn classification_table() {
        let table = [
            (Kind::ProcessExec, "event", "process", "start"),
            (Kind::ProcessExit, "event", "process", "end"),
            (Kind::FileOpen, "event", "file", "access"),
            (Kind::NetConnect, "event", "network", "connection"),
            (Kind::Finding, "alert", "intrusion_detection", "info"),
            (Kind::AgentStatus, "state", "host", "info"),
        ];
        for (k, kind, category, ty) in table {
            let v = to_ecs(&event(k));
            assert_eq!(s(&v, "/event/kind"), kind, "{k:?}");
            assert_eq!(get(&v, "/event/category")[0], category, "{k:?}");
            assert_eq!(get(&v, "/event/type")[0], ty, "{k:?}");
        }
    }

    #[test]
    fn process_fields() {
        let v = to_ecs(&event(Kind::ProcessExec));
        assert_eq!(s(&v, "/process/name"), "curl");
        assert_eq!(s(&v, "/process/executable"), "/usr/bin/curl");
        assert_eq!(
            get(&v, "/process/args"),
            &json!(["curl", "-sS", "https://example.com/upload"])
        );
        assert_eq!(get(&v, "/process/args_count"), 3);
        assert_eq!(s(&v, "/process/hash/sha256"), SHA256);
        assert_eq!(s(&v, "/process/parent/entity_id"), PARENT_EXEC_ID);
        assert_eq!(get(&v, "/process/parent/pid"), 4200);
        assert_eq!(s(&v, "/process/user/id"), "0", "effective uid");
        assert_eq!(s(&v, "/process/real_user/id"), "1000");
        assert_eq!(s(&v, "/process/group/id"), "0");
        assert_eq!(s(&v, "/process/real_group/id"), "1001");
        assert_eq!(s(&v, "/process/start"), rfc3339_ns(START_NS));
        assert_eq!(s(&v, "/container/id"), CONTAINER_ID);
        assert_eq!(s(&v, "/container/runtime"), "containerd");
        assert_eq!(s(&v, "/orchestrator/type"), "kubernetes");
        assert_eq!(s(&v, "/orchestrator/namespace"), "payments");
        assert_eq!(s(&v, "/orchestrator/resource/name"), "api-7d9f");
        assert_eq!(s(&v, "/orchestrator/resource/type"), "pod");
        assert_eq!(get(&v, "/proctor/process/exe/inode"), 1_234_567);
        assert_eq!(s(&v, "/proctor/process/attestation"), "kernel-exec");
        assert_eq!(s(&v, "/proctor/pod/service_account"), "api");

        let v = to_ecs(&event(Kind::ProcessExit));
        assert_eq!(get(&v, "/process/exit_code"), 3);
        assert_eq!(s(&v, "/process/end"), rfc3339_ns(T_NS));
        assert_eq!(get(&v, "/event/duration"), 2_000_000_000u64);

        let v = to_ecs(&event_with(Kind::ProcessExec, host_process()));
        assert!(v.pointer("/process/hash").is_none());
        assert!(v.pointer("/container").is_none());
        assert!(v.pointer("/orchestrator").is_none());
        assert!(v.pointer("/process/parent/entity_id").is_none());
        assert_eq!(get(&v, "/process/args_count"), 0);
        assert_eq!(
            s(&v, "/proctor/process/interpreter/script/path"),
            "/opt/run.sh"
        );
    }

    #[test]
    fn file_fields() {
        let v = to_ecs(&event(Kind::FileOpen));
        assert_eq!(s(&v, "/file/path"), "/home/alice/.aws/credentials");
        assert_eq!(s(&v, "/file/name"), "credentials");
        assert_eq!(s(&v, "/file/directory"), "/home/alice/.aws");
        assert_eq!(s(&v, "/file/inode"), "393222");
        assert_eq!(s(&v, "/file/device"), "8:1");
        assert_eq!(s(&v, "/proctor/file/access"), "read");
        assert_eq!(s(&v, "/event/outcome"), "success");
    }

    #[test]
    fn network_fields() {
        let v = to_ecs(&event(Kind::NetConnect));
        assert_eq!(s(&v, "/destination/ip"), "203.0.113.7");
        assert_eq!(get(&v, "/destination/port"), 443);
        assert_eq!(s(&v, "/network/transport"), "tcp");
        assert_eq!(s(&v, "/network/type"), "ipv4");
        assert_eq!(s(&v, "/network/iana_number"), "6");
        assert_eq!(s(&v, "/network/direction"), "egress");
        assert_eq!(s(&v, "/event/outcome"), "success");

        let table = [
            ("refused", Some(libc::ECONNREFUSED), "failure", false),
            ("denied", Some(libc::EACCES), "failure", true),
            ("in_progress", None, "unknown", false),
        ];
        for (result, errno, outcome, denied) in table {
            let mut ev = event(Kind::NetConnect);
            ev.net = Some(Box::new(net(result, errno)));
            let v = to_ecs(&ev);
            assert_eq!(s(&v, "/event/outcome"), outcome, "{result}");
            let types = get(&v, "/event/type").as_array().unwrap();
            assert_eq!(types.contains(&json!("denied")), denied, "{result}");
            if let Some(e) = errno {
                assert_eq!(s(&v, "/error/code"), e.to_string());
            }
        }

        let mut ev = event(Kind::NetConnect);
        ev.net = Some(Box::new(NetInfo {
            family: "unix",
            protocol: "stream",
            dst_ip: None,
            dst_port: None,
            dst_path: Some("/run/docker.sock".into()),
            ..net("success", None)
        }));
        let v = to_ecs(&ev);
        assert_eq!(s(&v, "/destination/address"), "/run/docker.sock");
        assert!(v.pointer("/destination/ip").is_none());
        assert!(v.pointer("/network/type").is_none());
        assert!(v.pointer("/network/transport").is_none());
    }

    #[test]
    fn finding_fields_and_severity() {
        let v = to_ecs(&event(Kind::Finding));
        assert_eq!(s(&v, "/rule/id"), "secret-read");
        assert_eq!(s(&v, "/rule/name"), "secret-read");
        assert_eq!(s(&v, "/threat/framework"), "MITRE ATT&CK");
        assert_eq!(get(&v, "/threat/technique/id"), &json!(["T1552", "T1083"]));
        assert_eq!(
            get(&v, "/threat/technique/subtechnique/id"),
            &json!(["T1552.001"])
        );
        assert_eq!(s(&v, "/proctor/secret/id"), "aws-credentials");
        assert_eq!(s(&v, "/proctor/secret/fingerprint"), FINGERPRINT);
        assert_eq!(
            get(&v, "/proctor/finding/evidence/exec_ids"),
            &json!([EXEC_ID, PARENT_EXEC_ID])
        );
        assert_eq!(s(&v, "/file/path"), "/home/alice/.aws/credentials");
        assert!(s(&v, "/message").contains("aws-credentials"));
        assert_eq!(
            s(&v, "/event/reason"),
            "reader is untrusted: binary deleted"
        );

        let table = [
            (Severity::Info, 1),
            (Severity::Low, 2),
            (Severity::Medium, 3),
            (Severity::High, 4),
            (Severity::Critical, 5),
        ];
        for (sev, n) in table {
            let mut ev = event(Kind::Finding);
            ev.finding = Some(Box::new(finding("secret-read", sev)));
            assert_eq!(get(&to_ecs(&ev), "/event/severity"), n);
        }
    }

    #[test]
    fn exfil_destination_and_related() {
        let v = to_ecs(&exfil());
        assert_eq!(s(&v, "/destination/ip"), "2001:db8::7");
        assert_eq!(get(&v, "/destination/port"), 8443);
        assert_eq!(
            get(&v, "/related/ip"),
            &json!(["2001:db8::7", "203.0.113.9"])
        );
        assert_eq!(get(&v, "/related/hash"), &json!([SHA256]));
        assert_eq!(get(&v, "/related/user"), &json!(["1000", "0"]));
        assert_eq!(
            get(&v, "/proctor/finding/evidence/destinations/1"),
            "203.0.113.9:443"
        );
    }

    #[test]
    fn enforced_finding_is_denied() {
        let mut ev = event(Kind::Finding);
        ev.finding.as_mut().unwrap().action = Some("egress_blocked");
        let v = to_ecs(&ev);
        assert_eq!(get(&v, "/event/type"), &json!(["denied"]));
        assert_eq!(s(&v, "/proctor/finding/action"), "egress_blocked");
    }

    #[test]
    fn agent_status_is_state() {
        let mut ev = event(Kind::AgentStatus);
        let v = to_ecs(&ev);
        assert_eq!(get(&v, "/proctor/status/uptime_seconds"), 12.5);
        ev.status = Some(json!({"state": "stopped"}));
        assert_eq!(get(&to_ecs(&ev), "/event/type"), &json!(["end"]));
        ev.status = Some(json!({"state": "started"}));
        assert_eq!(get(&to_ecs(&ev), "/event/type"), &json!(["start"]));
    }
}
