//! Open Cybersecurity Schema Framework (OCSF) 1.3.0.
//!
//! | kind           | class                       | activity                 |
//! |----------------|-----------------------------|--------------------------|
//! | `process_exec` | 1007 Process Activity       | 1 Launch                 |
//! | `process_exit` | 1007 Process Activity       | 2 Terminate              |
//! | `file_open`    | 1001 File System Activity   | 14 Open                  |
//! | `net_connect`  | 4001 Network Activity       | 1 Open / 4 Fail / 5 Refuse |
//! | `finding`      | 2004 Detection Finding      | 1 Create                 |
//! | `agent_status` | none (`None`)               |                          |
//!
//! `agent_status` is the agent's own heartbeat (hooks, drop counters, sink
//! statistics). No OCSF 1.3 class describes a sensor's health: Device
//! Inventory Info (5001) is about the host's inventory, and the Base Event
//! (class 0) would put a metrics blob into a security data lake under
//! "Other". Operators monitor the agent through its native JSON, the metrics
//! endpoint or ECS; an OCSF sink counts these events as skipped.
//!
//! Every event carries the base attributes OCSF requires (`category_uid`,
//! `class_uid`, `activity_id`, `type_uid`, `severity_id`, `time`,
//! `metadata.product`, `metadata.version`) and those its class requires
//! (`actor`, `device`, `process`, `file`, `dst_endpoint`, `finding_info`).
//! Linux-only facts use the `linux/linux_users` profile (`euid`, `egid`,
//! `group`); the rest of the contract that OCSF has no attribute for
//! (attestation, exe inode and tamper flags, cgroup, pod, file open flags,
//! secret fingerprints' context) goes to `unmapped`.

mod classes;

use serde_json::{json, Map, Value};

use super::common::{
    command_line, container_block, dev_string, dst_ip, epoch_ms, event_uid, iana_protocol,
    ip_version, json_str, kernel_facts, net_outcome, opened_directory, parent_block,
    parse_destination, path_block, pod, process_name, severity, severity_rank, split_mitre,
    NetOutcome,
};
use super::summary::{self, rule_title};
use crate::event::{PRODUCT, PRODUCT_VERSION, VENDOR};
use crate::{
    event::Severity,
    event::{Event, FileInfo, Finding, Kind, NetInfo, Process},
};
pub use classes::*;

/// OCSF `severity_id` and its caption.
pub fn severity_of(s: Severity) -> (u8, &'static str) {
    let caption = match s {
        Severity::Info => "Informational",
        Severity::Low => "Low",
        Severity::Medium => "Medium",
        Severity::High => "High",
        Severity::Critical => "Critical",
    };
    (severity_rank(s), caption)
}

/// The event as an OCSF 1.3.0 event; `None` when OCSF has no class for it
/// (see the module documentation).
pub fn to_ocsf(ev: &Event) -> Option<Value> {
    match ev.kind {
        Kind::ProcessExec | Kind::ProcessExit => Some(process_activity(ev)),
        Kind::FileOpen => Some(file_activity(ev)),
        Kind::NetConnect => ev.net.as_ref().map(|net| network_activity(ev, net)),
        Kind::Finding => Some(detection_finding(ev)),
        // A correction of an earlier Launch, not an activity of its own.
        Kind::AgentStatus | Kind::ProcessHash => None,
    }
}

/// Process Activity (1007): Launch for `process_exec`, Terminate for
/// `process_exit`.
pub fn process_activity(ev: &Event) -> Value {
    let p = &ev.process;
    let exit = ev.kind == Kind::ProcessExit;
    let mut o = base(
        ev,
        if exit {
            PROCESS_TERMINATE
        } else {
            PROCESS_LAUNCH
        },
    );
    let mut proc = process(p);
    if exit {
        proc["terminated_time"] = json!(epoch_ms(ev));
    }
    o.insert("process".into(), proc);
    // Launch: the actor is the parent that exec'd/forked it. Terminate: the
    // process ended itself as far as the kernel tells us.
    let actor = if exit {
        json!({"process": process_ref(p), "user": user(p)})
    } else {
        json!({"process": parent(p)})
    };
    o.insert("actor".into(), actor);
    o.insert("status_id".into(), json!(1));
    o.insert("status".into(), json!("Success"));
    o.insert("message".into(), json!(summary::summary(ev)));
    if let Some(x) = &ev.exit {
        if let Some(code) = x.code {
            o.insert("exit_code".into(), json!(code));
        }
        o.insert("duration".into(), json!(x.duration_ns / 1_000_000));
        unmapped(&mut o).insert(
            "exit".into(),
            serde_json::to_value(x).unwrap_or(Value::Null),
        );
    }
    Value::Object(o)
}

/// File System Activity (1001), activity 14 Open.
pub fn file_activity(ev: &Event) -> Value {
    let p = &ev.process;
    let mut o = base(ev, FILE_OPEN);
    o.insert("actor".into(), actor(p));
    o.insert("status_id".into(), json!(1));
    o.insert("status".into(), json!("Success"));
    if let Some(f) = &ev.file {
        o.insert("file".into(), file(f));
        o.insert("message".into(), json!(summary::opened(p, f)));
        unmapped(&mut o).insert("file".into(), file_unmapped(f));
    } else {
        // `file` is required; an open without its file still says which.
        o.insert(
            "file".into(),
            json!({"name": "", "type_id": 0, "type": "Unknown"}),
        );
    }
    Value::Object(o)
}

/// Network Activity (4001) for a `net_connect` event, from the contract's
/// `net` fields (`family`, `protocol`, `dst_ip`, `dst_port`, `result`).
pub fn network_activity(ev: &Event, net: &NetInfo) -> Value {
    let p = &ev.process;
    let mut o = base(ev, network_activity_id(net));
    o.insert("actor".into(), actor(p));
    let (status_id, status) = match net_outcome(net) {
        NetOutcome::Success => (1, "Success"),
        NetOutcome::Pending => (99, "In Progress"),
        _ => (2, "Failure"),
    };
    o.insert("status_id".into(), json!(status_id));
    o.insert("status".into(), json!(status));
    if status_id == 2 || net.errno.is_some() {
        o.insert("status_detail".into(), json!(net.result));
    }
    if let Some(errno) = net.errno {
        o.insert("status_code".into(), json!(errno.to_string()));
    }
    o.insert("dst_endpoint".into(), endpoint(net));
    o.insert("src_endpoint".into(), json!({"hostname": &*ev.node}));
    o.insert("connection_info".into(), connection_info(net));
    o.insert("message".into(), json!(summary::connected(p, net)));
    unmapped(&mut o).insert(
        "net".into(),
        serde_json::to_value(net).unwrap_or(Value::Null),
    );
    Value::Object(o)
}

/// Detection Finding (2004), activity 1 Create.
pub fn detection_finding(ev: &Event) -> Value {
    let p = &ev.process;
    let mut o = base(ev, FINDING_CREATE);
    o.insert("actor".into(), actor(p));
    o.insert("status_id".into(), json!(1));
    o.insert("status".into(), json!("New"));
    let (action_id, action, disposition_id, disposition) =
        enforcement(ev.finding.as_ref().and_then(|f| f.action));
    o.insert("action_id".into(), json!(action_id));
    o.insert("action".into(), json!(action));
    o.insert("disposition_id".into(), json!(disposition_id));
    o.insert("disposition".into(), json!(disposition));
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("profiles".into(), json!(FINDING_PROFILES));
    }
    if let Some(f) = &ev.finding {
        o.insert("finding_info".into(), finding_info(ev, f));
        o.insert("message".into(), json!(f.summary));
        let evidences = evidences(ev, f);
        if !evidences.is_empty() {
            o.insert("evidences".into(), Value::Array(evidences));
        }
        let u = unmapped(&mut o);
        u.insert("rule".into(), json!(f.rule));
        u.insert("severity".into(), json!(f.severity.as_str()));
        u.insert(
            "evidence".into(),
            serde_json::to_value(&f.evidence).unwrap_or(Value::Null),
        );
    } else {
        // `finding_info` is required; a finding event always has a finding,
        // but a malformed one still gets a valid envelope.
        o.insert(
            "finding_info".into(),
            json!({"uid": event_uid(ev), "title": "finding"}),
        );
    }
    if let Some(pod) = pod_resource(p) {
        o.insert("resources".into(), json!([pod]));
    }
    Value::Object(o)
}

// ---------------------------------------------------------------------------

/// The attributes every class shares.
fn base(ev: &Event, a: Activity) -> Map<String, Value> {
    let (severity_id, severity) = severity_of(severity(ev));
    let mut o = Map::new();
    o.insert("category_uid".into(), json!(a.category_uid));
    o.insert("category_name".into(), json!(a.category_name));
    o.insert("class_uid".into(), json!(a.class_uid));
    o.insert("class_name".into(), json!(a.class_name));
    o.insert("activity_id".into(), json!(a.activity_id));
    o.insert("activity_name".into(), json!(a.activity_name));
    o.insert("type_uid".into(), json!(a.type_uid()));
    o.insert(
        "type_name".into(),
        json!(format!("{}: {}", a.class_name, a.activity_name)),
    );
    o.insert("severity_id".into(), json!(severity_id));
    o.insert("severity".into(), json!(severity));
    o.insert("time".into(), json!(epoch_ms(ev)));
    o.insert("timezone_offset".into(), json!(0));
    o.insert(
        "metadata".into(),
        json!({
            "version": OCSF_VERSION,
            "product": {
                "name": PRODUCT,
                "vendor_name": VENDOR,
                "version": PRODUCT_VERSION,
            },
            "uid": event_uid(ev),
            "sequence": ev.seq,
            "log_name": ev.kind.as_str(),
            "original_time": ev.time,
            "profiles": PROFILES,
        }),
    );
    // The node is the device; proctor cannot tell a server from a VM.
    o.insert(
        "device".into(),
        json!({"hostname": &*ev.node, "type_id": 0, "type": "Unknown"}),
    );
    o.insert("unmapped".into(), Value::Object(process_unmapped(ev)));
    o
}

fn unmapped(o: &mut Map<String, Value>) -> &mut Map<String, Value> {
    let slot = o
        .entry("unmapped")
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut().expect("just made an object")
}

/// The contract fields of the process that have no OCSF attribute.
fn process_unmapped(ev: &Event) -> Map<String, Value> {
    let p = &ev.process;
    let mut u = kernel_facts(p);
    u.insert("schema".into(), json!(ev.schema));
    u.insert("kind".into(), json!(ev.kind.as_str()));
    if let Some(pod) = &p.pod {
        u.insert("pod".into(), pod.clone());
    }
    u
}

/// The full OCSF process object.
pub fn process(p: &Process) -> Value {
    let mut o = Map::new();
    o.insert("pid".into(), json!(p.pid));
    o.insert("uid".into(), json!(p.exec_id));
    o.insert("name".into(), json!(process_name(p)));
    o.insert("cmd_line".into(), json!(command_line(p)));
    o.insert("created_time".into(), json!(p.start_time_ns / 1_000_000));
    o.insert("file".into(), exe_file(p));
    o.insert("parent_process".into(), parent(p));
    o.insert("user".into(), user(p));
    o.insert("group".into(), json!({"uid": p.gid.to_string()}));
    o.insert("euid".into(), json!(p.euid));
    o.insert("egid".into(), json!(p.egid));
    if let Some(c) = container(p) {
        o.insert("container".into(), c);
    }
    Value::Object(o)
}

/// Just enough of a process to name it.
fn process_ref(p: &Process) -> Value {
    json!({"pid": p.pid, "uid": p.exec_id, "name": process_name(p)})
}

fn parent(p: &Process) -> Value {
    parent_block(p, "uid")
}

fn user(p: &Process) -> Value {
    json!({"uid": p.uid.to_string()})
}

fn actor(p: &Process) -> Value {
    json!({"process": process(p), "user": user(p)})
}

fn container(p: &Process) -> Option<Value> {
    let mut o = container_block(p, "uid")?;
    if p.pod.is_some() {
        o.insert("orchestrator".into(), json!("Kubernetes"));
        if let Some(uid) = json_str(&p.pod, "uid") {
            o.insert("pod_uuid".into(), json!(uid));
        }
    }
    Some(Value::Object(o))
}

fn pod_resource(p: &Process) -> Option<Value> {
    let pod = pod(p)?;
    let mut o = Map::new();
    o.insert("type".into(), json!("Kubernetes Pod"));
    o.insert("name".into(), json!(pod.name?));
    if let Some(uid) = pod.uid {
        o.insert("uid".into(), json!(uid));
    }
    if let Some(ns) = pod.namespace {
        o.insert("namespace".into(), json!(ns));
    }
    Some(Value::Object(o))
}

/// The executable as an OCSF file (an exec'd file is always a regular file).
fn exe_file(p: &Process) -> Value {
    let mut o = path_file(&p.exe.path, 1);
    o.insert("size".into(), json!(p.exe.size));
    o.insert("uid".into(), json!(p.exe.inode.to_string()));
    if let Some(h) = &p.exe.sha256 {
        o.insert("hashes".into(), json!([sha256(h)]));
    }
    Value::Object(o)
}

pub fn sha256(hex: &str) -> Value {
    json!({"algorithm_id": HASH_SHA256, "algorithm": "SHA-256", "value": hex})
}

const FILE_TYPES: [(u8, &str); 3] = [(0, "Unknown"), (1, "Regular File"), (2, "Folder")];

/// A file named by its path. `type_id`: 0 unknown, 1 regular, 2 folder.
fn path_file(path: &str, type_id: u8) -> Map<String, Value> {
    let (type_id, caption) = FILE_TYPES
        .iter()
        .copied()
        .find(|(id, _)| *id == type_id)
        .unwrap_or(FILE_TYPES[0]);
    let mut o = path_block(path, "parent_folder");
    o.insert("type_id".into(), json!(type_id));
    o.insert("type".into(), json!(caption));
    o
}

/// An opened file. The event does not say what kind of inode it is, so
/// `type_id` is Unknown unless it was opened with `O_DIRECTORY`.
fn file(f: &FileInfo) -> Value {
    let type_id = if opened_directory(f) { 2 } else { 0 };
    let mut o = path_file(&f.path, type_id);
    o.insert("uid".into(), json!(f.inode.to_string()));
    Value::Object(o)
}

fn file_unmapped(f: &FileInfo) -> Value {
    json!({
        "inode": f.inode,
        "dev": f.dev,
        "device": dev_string(f.dev),
        "flags": f.flags,
        "access": f.access,
        "requested_path": f.requested_path,
    })
}

fn endpoint(net: &NetInfo) -> Value {
    let mut o = Map::new();
    match dst_ip(net) {
        Some(ip) => {
            o.insert("ip".into(), json!(ip.to_string()));
        }
        None => {
            // A unix socket (or an address the kernel gave us unparsed):
            // the endpoint needs ip, name, hostname, uid... at least one.
            let name = net
                .dst_path
                .as_deref()
                .or(net.dst_ip.as_deref())
                .unwrap_or("unknown");
            o.insert("name".into(), json!(name));
        }
    }
    if let Some(port) = net.dst_port {
        o.insert("port".into(), json!(port));
    }
    Value::Object(o)
}

fn connection_info(net: &NetInfo) -> Value {
    let mut o = Map::new();
    // From the node's point of view; proctor does not know network zones.
    o.insert("direction_id".into(), json!(2));
    o.insert("direction".into(), json!("Outbound"));
    o.insert("protocol_name".into(), json!(net.protocol));
    if let Some(n) = iana_protocol(net) {
        o.insert("protocol_num".into(), json!(n));
    }
    match ip_version(net) {
        Some(v) => {
            o.insert("protocol_ver_id".into(), json!(v));
            o.insert(
                "protocol_ver".into(),
                json!(if v == 4 {
                    "Internet Protocol version 4 (IPv4)"
                } else {
                    "Internet Protocol version 6 (IPv6)"
                }),
            );
        }
        None => {
            o.insert("protocol_ver_id".into(), json!(99));
            o.insert("protocol_ver".into(), json!(net.family));
        }
    }
    Value::Object(o)
}

fn finding_info(ev: &Event, f: &Finding) -> Value {
    let mut o = Map::new();
    o.insert("uid".into(), json!(event_uid(ev)));
    o.insert("title".into(), json!(rule_title(f.rule)));
    o.insert("desc".into(), json!(f.summary));
    o.insert("types".into(), json!([f.rule]));
    o.insert("created_time".into(), json!(epoch_ms(ev)));
    o.insert(
        "analytic".into(),
        json!({"uid": f.rule, "name": f.rule, "type_id": 1, "type": "Rule"}),
    );
    if !f.mitre.is_empty() {
        let attacks: Vec<Value> = f
            .mitre
            .iter()
            .map(|id| match split_mitre(id) {
                (t, Some(sub)) => json!({"technique": {"uid": t}, "sub_technique": {"uid": sub}}),
                (t, None) => json!({"technique": {"uid": t}}),
            })
            .collect();
        o.insert("attacks".into(), Value::Array(attacks));
    }
    if !f.evidence.event_seqs.is_empty() {
        let related: Vec<Value> = f
            .evidence
            .event_seqs
            .iter()
            .map(|seq| json!({"uid": format!("{}:{seq}", ev.node)}))
            .collect();
        o.insert("related_events".into(), Value::Array(related));
    }
    Value::Object(o)
}

/// One evidence artifact per process, file and secret the finding rests on.
/// Secrets appear by catalog id and keyed fingerprint only.
fn evidences(ev: &Event, f: &Finding) -> Vec<Value> {
    let mut out = Vec::new();
    for id in &f.evidence.exec_ids {
        // The acting process is in full under `actor`; evidence names it.
        let named = if *id == ev.process.exec_id {
            let mut r = process_ref(&ev.process);
            r["file"] = exe_file(&ev.process);
            r
        } else {
            json!({"uid": id})
        };
        out.push(json!({"process": named}));
    }
    let mut paths: Vec<&str> = f.evidence.paths.iter().map(|p| &**p).collect();
    for extra in [
        ev.file.as_ref().map(|f| &*f.path),
        f.secret.as_ref().and_then(|s| s.path.as_deref()),
    ]
    .into_iter()
    .flatten()
    {
        if !paths.contains(&extra) {
            paths.push(extra);
        }
    }
    for path in paths {
        let artifact = match &ev.file {
            Some(fi) if *fi.path == *path => file(fi),
            _ => Value::Object(path_file(path, 0)),
        };
        out.push(json!({"file": artifact}));
    }
    if let Some(s) = &f.secret {
        // id, kind, fingerprint, path and variable: never a value.
        let secret = serde_json::to_value(s).unwrap_or(Value::Null);
        out.push(json!({"data": {"secret": secret}}));
    }
    if let Some(net) = &ev.net {
        out.push(json!({"dst_endpoint": endpoint(net), "connection_info": connection_info(net)}));
    }
    for d in &f.evidence.destinations {
        let endpoint = match parse_destination(d) {
            Some((ip, Some(port))) => json!({"ip": ip.to_string(), "port": port}),
            Some((ip, None)) => json!({"ip": ip.to_string()}),
            None => json!({"name": d}),
        };
        out.push(json!({"dst_endpoint": endpoint}));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::*;

    /// (kind, class_uid, category_uid, activity_id) for the main fixtures.
    const TABLE: [(Kind, u64, u64, u64); 5] = [
        (Kind::ProcessExec, 1007, 1, 1),
        (Kind::ProcessExit, 1007, 1, 2),
        (Kind::FileOpen, 1001, 1, 14),
        (Kind::NetConnect, 4001, 4, 1),
        (Kind::Finding, 2004, 2, 1),
    ];

    fn u(v: &Value, path: &str) -> u64 {
        ptr(v, path)
            .as_u64()
            .unwrap_or_else(|| panic!("{path} is not an unsigned integer in {v:#}"))
    }

    fn s<'a>(v: &'a Value, path: &str) -> &'a str {
        ptr(v, path)
            .as_str()
            .unwrap_or_else(|| panic!("{path} is not a string in {v:#}"))
    }

    fn ptr<'a>(v: &'a Value, path: &str) -> &'a Value {
        v.pointer(path)
            .unwrap_or_else(|| panic!("{path} missing in {v:#}"))
    }

    /// The required attributes of every OCSF event and of the objects in it.
    fn assert_base(v: &Value, ev: &Event) {
        let class = u(v, "/class_uid");
        let activity = u(v, "/activity_id");
        assert_eq!(u(v, "/category_uid"), class / 1000, "category of {class}");
        assert_eq!(u(v, "/type_uid"), class * 100 + activity);
        assert!(s(v, "/type_name").starts_with(s(v, "/class_name")));
        let sev = u(v, "/severity_id");
        assert!((1..=5).contains(&sev), "severity_id {sev}");
        let caption = ["Informational", "Low", "Medium", "High", "Critical"][sev as usize - 1];
        assert_eq!(s(v, "/severity"), caption);
        assert_eq!(u(v, "/time"), T_NS / 1_000_000);
        assert_eq!(s(v, "/metadata/version"), "1.3.0");
        assert_eq!(s(v, "/metadata/product/name"), "proctor");
        assert_eq!(s(v, "/metadata/product/vendor_name"), "proctor");
        assert_eq!(s(v, "/metadata/product/version"), PRODUCT_VERSION);
        assert_eq!(s(v, "/metadata/uid"), format!("node-a:{}", ev.seq));
        assert_eq!(u(v, "/metadata/sequence"), ev.seq);
        assert!(ptr(v, "/metadata/profiles").is_array());
        assert_eq!(s(v, "/device/hostname"), "node-a");
        assert!(ptr(v, "/device/type_id").is_u64());
        assert!(ptr(v, "/status_id").is_u64());
        assert!(ptr(v, "/unmapped").is_object());
        // actor: at least one of process / user.
        let actor = ptr(v, "/actor");
        assert!(actor.get("process").is_some() || actor.get("user").is_some());
        if let Some(p) = actor.get("process") {
            assert_process(p);
        }
    }

    /// process: at least one of pid / uid, and well-typed when present.
    fn assert_process(p: &Value) {
        assert!(p.get("pid").is_some() || p.get("uid").is_some(), "{p:#}");
        if let Some(pid) = p.get("pid") {
            assert!(pid.is_u64());
        }
        if let Some(uid) = p.get("uid") {
            assert!(uid.is_string());
        }
        if let Some(f) = p.get("file") {
            assert_file(f);
        }
        if let Some(user) = p.get("user") {
            assert!(user["uid"].is_string(), "user.uid is a string_t");
        }
        if let Some(c) = p.get("container") {
            assert!(c["uid"].is_string());
        }
    }

    fn assert_file(f: &Value) {
        assert!(f["name"].is_string(), "file.name is required: {f:#}");
        assert!(f["type_id"].is_u64(), "file.type_id is required: {f:#}");
        if let Some(hashes) = f.get("hashes") {
            for h in hashes.as_array().unwrap() {
                assert_eq!(h["algorithm_id"], 3);
                assert_eq!(h["algorithm"], "SHA-256");
                assert_eq!(h["value"].as_str().unwrap().len(), 64);
            }
        }
    }

    #[test]
    fn classes_activities_and_type_uids() {
        for (kind, class, category, activity) in TABLE {
            let ev = event(kind);
            let v = to_ocsf(&ev).unwrap();
            assert_eq!(u(&v, "/class_uid"), class, "{kind:?}");
            assert_eq!(u(&v, "/category_uid"), category, "{kind:?}");
            assert_eq!(u(&v, "/activity_id"), activity, "{kind:?}");
            assert_eq!(u(&v, "/type_uid"), class * 100 + activity, "{kind:?}");
            assert_base(&v, &ev);
        }
        assert_eq!(FILE_OPEN.type_uid(), 100114);
        assert_eq!(PROCESS_LAUNCH.type_uid(), 100701);
        assert_eq!(FINDING_CREATE.type_uid(), 200401);
        assert_eq!(NETWORK_OPEN.type_uid(), 400101);
    }

    #[test]
    fn every_fixture_has_the_required_attributes_of_its_class() {
        for ev in all_kinds() {
            let Some(v) = to_ocsf(&ev) else {
                assert!(
                    matches!(ev.kind, Kind::AgentStatus | Kind::ProcessHash)
                        || (ev.kind == Kind::NetConnect && ev.net.is_none()),
                    "{:?} must map",
                    ev.kind
                );
                continue;
            };
            assert_base(&v, &ev);
            match u(&v, "/class_uid") {
                1007 => {
                    assert_process(ptr(&v, "/process"));
                    assert_eq!(u(&v, "/process/pid"), u64::from(ev.process.pid));
                    assert!(ptr(&v, "/process/cmd_line").is_string());
                }
                1001 => assert_file(ptr(&v, "/file")),
                4001 => {
                    let dst = ptr(&v, "/dst_endpoint");
                    assert!(dst.get("ip").is_some() || dst.get("name").is_some());
                    assert!(ptr(&v, "/connection_info/direction_id").is_u64());
                }
                2004 => {
                    assert!(ptr(&v, "/action_id").is_u64(), "security_control");
                    assert!(ptr(&v, "/disposition_id").is_u64());
                    assert!(ptr(&v, "/finding_info/uid").is_string());
                    assert!(ptr(&v, "/finding_info/title").is_string());
                    if let Some(a) = v.pointer("/finding_info/analytic") {
                        assert_eq!(a["type_id"], 1);
                    }
                    for e in v["evidences"].as_array().into_iter().flatten() {
                        let keys = ["process", "file", "data", "dst_endpoint"];
                        assert!(keys.iter().any(|k| e.get(k).is_some()), "{e:#}");
                    }
                }
                other => panic!("unexpected class {other}"),
            }
        }
    }

    #[test]
    fn agent_status_and_connect_without_net_do_not_map() {
        assert!(to_ocsf(&event(Kind::AgentStatus)).is_none());
        let mut ev = event(Kind::NetConnect);
        ev.net = None;
        assert!(to_ocsf(&ev).is_none());
    }

    #[test]
    fn severity_ids_follow_the_finding() {
        let table = [
            (Severity::Info, 1, "Informational"),
            (Severity::Low, 2, "Low"),
            (Severity::Medium, 3, "Medium"),
            (Severity::High, 4, "High"),
            (Severity::Critical, 5, "Critical"),
        ];
        for (sev, id, caption) in table {
            let mut ev = event(Kind::Finding);
            ev.finding = Some(Box::new(finding("secret-read", sev)));
            let v = to_ocsf(&ev).unwrap();
            assert_eq!(u(&v, "/severity_id"), id);
            assert_eq!(s(&v, "/severity"), caption);
        }
        for kind in [Kind::ProcessExec, Kind::FileOpen, Kind::NetConnect] {
            assert_eq!(u(&to_ocsf(&event(kind)).unwrap(), "/severity_id"), 1);
        }
    }

    #[test]
    fn process_launch_carries_identity_parent_and_container() {
        let v = to_ocsf(&event(Kind::ProcessExec)).unwrap();
        assert_eq!(s(&v, "/process/uid"), EXEC_ID);
        assert_eq!(s(&v, "/process/name"), "curl");
        assert_eq!(
            s(&v, "/process/cmd_line"),
            "curl -sS https://example.com/upload"
        );
        assert_eq!(u(&v, "/process/created_time"), START_NS / 1_000_000);
        assert_eq!(s(&v, "/process/file/path"), "/usr/bin/curl");
        assert_eq!(s(&v, "/process/file/name"), "curl");
        assert_eq!(u(&v, "/process/file/type_id"), 1);
        assert_eq!(s(&v, "/process/file/hashes/0/value"), SHA256);
        assert_eq!(u(&v, "/process/file/hashes/0/algorithm_id"), 3);
        assert_eq!(u(&v, "/process/parent_process/pid"), 4200);
        assert_eq!(s(&v, "/process/parent_process/uid"), PARENT_EXEC_ID);
        assert_eq!(s(&v, "/process/user/uid"), "1000");
        assert_eq!(s(&v, "/process/group/uid"), "1001");
        assert_eq!(u(&v, "/process/euid"), 0);
        assert_eq!(s(&v, "/process/container/uid"), CONTAINER_ID);
        assert_eq!(s(&v, "/process/container/runtime"), "containerd");
        assert_eq!(
            s(&v, "/process/container/pod_uuid"),
            "8c1b2a3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
        );
        // The launching actor is the parent.
        assert_eq!(s(&v, "/actor/process/uid"), PARENT_EXEC_ID);
        assert_eq!(s(&v, "/unmapped/attestation"), "kernel-exec");
        assert_eq!(u(&v, "/unmapped/exe/inode"), 1_234_567);
        assert_eq!(s(&v, "/unmapped/exe/path_namespace"), "host");
        assert_eq!(s(&v, "/unmapped/pod/service_account"), "api");

        // Bare host, no hash: no hashes array, no container, no parent uid.
        let v = to_ocsf(&event_with(Kind::ProcessExec, host_process())).unwrap();
        assert!(v.pointer("/process/file/hashes").is_none());
        assert!(v.pointer("/process/container").is_none());
        assert!(v.pointer("/process/parent_process/uid").is_none());
        assert_eq!(u(&v, "/process/parent_process/pid"), 0);
        assert_eq!(s(&v, "/process/cmd_line"), "");
        assert_eq!(s(&v, "/unmapped/interpreter/script/path"), "/opt/run.sh");
        assert_eq!(s(&v, "/unmapped/attestation"), "procfs-scan");
    }

    #[test]
    fn process_terminate_carries_exit_code() {
        let v = to_ocsf(&event(Kind::ProcessExit)).unwrap();
        assert_eq!(v["exit_code"], 3);
        assert_eq!(u(&v, "/duration"), 2000);
        assert_eq!(u(&v, "/process/terminated_time"), T_NS / 1_000_000);
        assert_eq!(s(&v, "/actor/process/uid"), EXEC_ID);
    }

    #[test]
    fn file_open_maps_the_file() {
        let v = to_ocsf(&event(Kind::FileOpen)).unwrap();
        assert_eq!(s(&v, "/file/path"), "/home/alice/.aws/credentials");
        assert_eq!(s(&v, "/file/name"), "credentials");
        assert_eq!(s(&v, "/file/parent_folder"), "/home/alice/.aws");
        assert_eq!(s(&v, "/file/uid"), "393222");
        assert_eq!(u(&v, "/file/type_id"), 0);
        assert_eq!(s(&v, "/unmapped/file/access"), "read");
        assert_eq!(s(&v, "/unmapped/file/device"), "8:1");
        assert_eq!(s(&v, "/actor/process/uid"), EXEC_ID);
    }

    #[test]
    fn network_activity_from_contract_fields() {
        let v = to_ocsf(&event(Kind::NetConnect)).unwrap();
        assert_eq!(s(&v, "/dst_endpoint/ip"), "203.0.113.7");
        assert_eq!(u(&v, "/dst_endpoint/port"), 443);
        assert_eq!(u(&v, "/connection_info/protocol_num"), 6);
        assert_eq!(s(&v, "/connection_info/protocol_name"), "tcp");
        assert_eq!(u(&v, "/connection_info/protocol_ver_id"), 4);
        assert_eq!(u(&v, "/status_id"), 1);

        let table = [
            ("success", None, 1, 1),
            ("in_progress", None, 1, 99),
            ("refused", Some(libc::ECONNREFUSED), 5, 2),
            ("timed_out", Some(libc::ETIMEDOUT), 4, 2),
            ("denied", Some(libc::EPERM), 4, 2),
            ("error", Some(libc::EINVAL), 4, 2),
        ];
        for (result, errno, activity, status) in table {
            let mut ev = event(Kind::NetConnect);
            ev.net = Some(Box::new(net(result, errno)));
            let v = to_ocsf(&ev).unwrap();
            assert_eq!(u(&v, "/activity_id"), activity, "{result}");
            assert_eq!(u(&v, "/type_uid"), 400100 + activity, "{result}");
            assert_eq!(u(&v, "/status_id"), status, "{result}");
            if let Some(e) = errno {
                assert_eq!(s(&v, "/status_code"), e.to_string());
            }
        }

        let mut ev = event(Kind::NetConnect);
        ev.net = Some(Box::new(NetInfo {
            family: "inet6",
            protocol: "udp",
            dst_ip: Some("2001:db8::1".into()),
            dst_port: Some(53),
            ..net("success", None)
        }));
        let v = to_ocsf(&ev).unwrap();
        assert_eq!(u(&v, "/connection_info/protocol_ver_id"), 6);
        assert_eq!(u(&v, "/connection_info/protocol_num"), 17);
    }

    #[test]
    fn detection_finding_info_attacks_and_evidence() {
        let v = to_ocsf(&event(Kind::Finding)).unwrap();
        assert_eq!(s(&v, "/finding_info/uid"), "node-a:42");
        assert_eq!(s(&v, "/finding_info/title"), "Static secret read");
        assert!(s(&v, "/finding_info/desc").contains("aws-credentials"));
        assert_eq!(ptr(&v, "/finding_info/types"), &json!(["secret-read"]));
        assert_eq!(s(&v, "/finding_info/analytic/name"), "secret-read");
        assert_eq!(s(&v, "/finding_info/attacks/0/technique/uid"), "T1552");
        assert_eq!(
            s(&v, "/finding_info/attacks/0/sub_technique/uid"),
            "T1552.001"
        );
        assert_eq!(s(&v, "/finding_info/attacks/1/technique/uid"), "T1083");
        assert!(v.pointer("/finding_info/attacks/1/sub_technique").is_none());
        assert_eq!(s(&v, "/finding_info/related_events/0/uid"), "node-a:41");
        assert_eq!(u(&v, "/status_id"), 1);
        assert_eq!(u(&v, "/severity_id"), 4);
        assert_eq!(s(&v, "/actor/process/uid"), EXEC_ID);
        assert_eq!(s(&v, "/resources/0/name"), "api-7d9f");
        assert_eq!(s(&v, "/resources/0/namespace"), "payments");

        let ev: Vec<&Value> = v["evidences"].as_array().unwrap().iter().collect();
        assert_eq!(s(ev[0], "/process/uid"), EXEC_ID);
        assert_eq!(s(ev[0], "/process/file/hashes/0/value"), SHA256);
        assert_eq!(s(ev[1], "/process/uid"), PARENT_EXEC_ID);
        assert_eq!(s(ev[2], "/file/path"), "/home/alice/.aws/credentials");
        assert_eq!(ev.len(), 4, "the secret path is not repeated");
        assert_eq!(s(ev[3], "/data/secret/id"), "aws-credentials");
        assert_eq!(s(ev[3], "/data/secret/fingerprint"), FINGERPRINT);
        assert_eq!(
            s(&v, "/unmapped/evidence/escalation"),
            "reader is untrusted: binary deleted"
        );

        assert_eq!(u(&v, "/action_id"), 1);
        assert_eq!(u(&v, "/disposition_id"), 15);
        assert!(ptr(&v, "/metadata/profiles")
            .as_array()
            .unwrap()
            .contains(&json!("security_control")));

        let mut killed = event(Kind::Finding);
        killed.finding.as_mut().unwrap().action = Some("killed");
        let k = to_ocsf(&killed).unwrap();
        assert_eq!(u(&k, "/action_id"), 2);
        assert_eq!(s(&k, "/action"), "Denied");
        assert_eq!(u(&k, "/disposition_id"), 2);
        assert_eq!(enforcement(Some("egress_blocked")).0, 2);
        assert_eq!(enforcement(Some("denied")).0, 2);
        assert_eq!(
            enforcement(Some("quarantined")),
            (99, "quarantined", 7, "Custom Action")
        );

        let v = to_ocsf(&exfil()).unwrap();
        assert_eq!(u(&v, "/severity_id"), 5);
        assert_eq!(s(&v, "/finding_info/analytic/uid"), "secret-exfil");
        let ev = v["evidences"].as_array().unwrap();
        let dst: Vec<&Value> = ev.iter().filter_map(|e| e.get("dst_endpoint")).collect();
        assert_eq!(dst[0], &json!({"ip": "2001:db8::7", "port": 8443}));
        assert_eq!(dst[1], &json!({"ip": "203.0.113.9", "port": 443}));
        assert_eq!(
            s(&v, "/unmapped/evidence/identities/0"),
            "ns:payments/sa:api"
        );
    }
}
