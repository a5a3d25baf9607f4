//! What every output format reads off an event the same way: times, names,
//! severities, connection outcomes, and the process, file, container and pod
//! blocks that each format then files under its own field names.

use serde_json::{json, Map, Value};

use crate::{
    event::Severity,
    event::{Event, FileInfo, NetInfo, Process},
};

/// Event time, ns since the Unix epoch.
pub(crate) fn epoch_ns(ev: &Event) -> u64 {
    ev.time.epoch_ns()
}

pub(crate) fn epoch_ms(ev: &Event) -> u64 {
    epoch_ns(ev) / 1_000_000
}

/// A stable identifier of one event: `<node>:<seq>`.
pub(crate) fn event_uid(ev: &Event) -> String {
    format!("{}:{}", ev.node, ev.seq)
}

/// The last path component (`/usr/bin/curl` -> `curl`); the whole string
/// when there is none (`/`).
pub(crate) fn basename(path: &str) -> &str {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some((_, name)) if !name.is_empty() => name,
        _ if path.is_empty() => "",
        _ => path,
    }
}

/// The directory holding `path` (`/etc/passwd` -> `/etc`, `/x` -> `/`).
pub(crate) fn dirname(path: &str) -> Option<&str> {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some(("", _)) => Some("/"),
        Some((dir, _)) => Some(dir),
        None => None,
    }
}

/// The process name every format reports: the basename of the executable
/// the kernel ran (not truncated, unlike `comm`), `comm` when there is no
/// executable path.
pub(crate) fn process_name(p: &Process) -> &str {
    let name = basename(&p.exe.path);
    if name.is_empty() {
        &p.comm
    } else {
        name
    }
}

/// argv joined by spaces (args are already redacted by the agent).
pub(crate) fn command_line(p: &Process) -> String {
    p.args.join(" ")
}

/// The severity of the event: the finding's, `info` for every other kind.
pub(crate) fn severity(ev: &Event) -> Severity {
    ev.finding
        .as_ref()
        .map(|f| f.severity)
        .unwrap_or(Severity::Info)
}

/// 1 (info) ..= 5 (critical): OCSF `severity_id`, ECS `event.severity`.
pub(crate) fn severity_rank(s: Severity) -> u8 {
    match s {
        Severity::Info => 1,
        Severity::Low => 2,
        Severity::Medium => 3,
        Severity::High => 4,
        Severity::Critical => 5,
    }
}

/// `T1552.001` -> (`T1552`, Some(`T1552.001`)); `T1083` -> (`T1083`, None).
pub(crate) fn split_mitre(id: &str) -> (&str, Option<&str>) {
    match id.split_once('.') {
        Some((technique, _)) => (technique, Some(id)),
        None => (id, None),
    }
}

/// A string field of the loosely typed `container` / `pod` objects.
pub(crate) fn json_str<'a>(v: &'a Option<Value>, key: &str) -> Option<&'a str> {
    v.as_ref()?.get(key)?.as_str().filter(|s| !s.is_empty())
}

pub(crate) fn container_id(p: &Process) -> Option<&str> {
    json_str(&p.container, "id")
}

/// A `stat(2)` device number as `major:minor`.
pub(crate) fn dev_string(dev: u64) -> String {
    format!("{}:{}", libc::major(dev), libc::minor(dev))
}

/// What came of a connection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NetOutcome {
    Success,
    /// Non-blocking connect still under way when it was recorded.
    Pending,
    Refused,
    Denied,
    Failure,
}

pub(crate) fn net_outcome(net: &NetInfo) -> NetOutcome {
    match net.result {
        "success" => NetOutcome::Success,
        "in_progress" => NetOutcome::Pending,
        "refused" => NetOutcome::Refused,
        "denied" => NetOutcome::Denied,
        _ => NetOutcome::Failure,
    }
}

/// `4`, `6`, or `None` (unix sockets, unknown).
pub(crate) fn ip_version(net: &NetInfo) -> Option<u8> {
    match net.family {
        "inet" => Some(4),
        "inet6" => Some(6),
        _ => match net.dst_ip.as_deref()?.parse::<std::net::IpAddr>().ok()? {
            std::net::IpAddr::V4(_) => Some(4),
            std::net::IpAddr::V6(_) => Some(6),
        },
    }
}

/// IANA protocol number of an IP connection.
pub(crate) fn iana_protocol(net: &NetInfo) -> Option<u8> {
    let v = ip_version(net)?;
    match net.protocol {
        "tcp" => Some(6),
        "udp" => Some(17),
        "icmp" if v == 6 => Some(58),
        "icmp" => Some(1),
        _ => None,
    }
}

/// An evidence destination (`ip:port`, `[v6]:port` or a bare IP).
pub(crate) fn parse_destination(s: &str) -> Option<(std::net::IpAddr, Option<u16>)> {
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Some((sa.ip(), Some(sa.port())));
    }
    let bare = s.trim_start_matches('[').trim_end_matches(']');
    bare.parse().ok().map(|ip| (ip, None))
}

/// The destination IP, only when it parses as one.
pub(crate) fn dst_ip(net: &NetInfo) -> Option<std::net::IpAddr> {
    net.dst_ip.as_deref()?.parse().ok()
}

/// `namespace/name` of the pod, when both are known.
pub(crate) fn pod_ref(p: &Process) -> Option<String> {
    let pod = pod(p)?;
    Some(format!("{}/{}", pod.namespace?, pod.name?))
}

/// The pod a process runs in, each field only when known and non-empty.
pub(crate) struct Pod<'a> {
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
    pub uid: Option<&'a str>,
}

/// `None` when the process is in no pod.
pub(crate) fn pod(p: &Process) -> Option<Pod<'_>> {
    p.pod.as_ref()?;
    Some(Pod {
        namespace: json_str(&p.pod, "namespace"),
        name: json_str(&p.pod, "name"),
        uid: json_str(&p.pod, "uid"),
    })
}

/// The container block: its id under `id_key` (formats disagree on that
/// name), `runtime`, `name` and `image.name` when known. `None` without a
/// container id.
pub(crate) fn container_block(p: &Process, id_key: &str) -> Option<Map<String, Value>> {
    let id = container_id(p)?;
    let mut o = Map::new();
    o.insert(id_key.into(), json!(id));
    if let Some(r) = json_str(&p.container, "runtime") {
        o.insert("runtime".into(), json!(r));
    }
    if let Some(n) = json_str(&p.container, "name") {
        o.insert("name".into(), json!(n));
    }
    if let Some(i) = json_str(&p.container, "image") {
        o.insert("image".into(), json!({"name": i}));
    }
    Some(o)
}

/// The parent: its pid, and its exec id under `id_key` when known.
pub(crate) fn parent_block(p: &Process, id_key: &str) -> Value {
    let mut o = Map::new();
    o.insert("pid".into(), json!(p.ppid));
    if let Some(id) = &p.parent_exec_id {
        o.insert(id_key.into(), json!(id));
    }
    Value::Object(o)
}

/// The kernel evidence about a process that no SIEM schema has a field for:
/// `comm`, `attestation`, `args_truncated`, the executable's identity and
/// tamper flags (`exe`), the interpreter and the cgroup.
pub(crate) fn kernel_facts(p: &Process) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("comm".into(), json!(p.comm));
    o.insert("attestation".into(), json!(p.attestation));
    o.insert("args_truncated".into(), json!(p.args_truncated));
    o.insert(
        "exe".into(),
        json!({
            "hash_status": p.exe.hash_status,
            "inode": p.exe.inode,
            "dev": p.exe.dev,
            "fileless": p.exe.fileless,
            "deleted": p.exe.deleted,
            "modified_after_exec": p.exe.modified_after_exec,
            "path_namespace": p.exe.path_namespace,
        }),
    );
    if let Some(i) = &p.interpreter {
        o.insert(
            "interpreter".into(),
            serde_json::to_value(i).unwrap_or(Value::Null),
        );
    }
    o.insert(
        "cgroup".into(),
        serde_json::to_value(&p.cgroup).unwrap_or(Value::Null),
    );
    o
}

/// A file named by its path: `path`, `name` and the directory holding it
/// under `dir_key` (when there is one).
pub(crate) fn path_block(path: &str, dir_key: &str) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("path".into(), json!(path));
    o.insert("name".into(), json!(basename(path)));
    if let Some(dir) = dirname(path) {
        o.insert(dir_key.into(), json!(dir));
    }
    o
}

/// Whether the file was opened as a directory (`O_DIRECTORY`); the event
/// says nothing else about the kind of inode.
pub(crate) fn opened_directory(f: &FileInfo) -> bool {
    f.flags & libc::O_DIRECTORY as u32 != 0
}

/// The path of the secret a finding is about, if it is a file.
pub(crate) fn secret_path(ev: &Event) -> Option<&str> {
    ev.finding.as_ref()?.secret.as_ref()?.path.as_deref()
}

/// The first evidence destination of a finding that parses as an address
/// (secret-exfil: where the secret went).
pub(crate) fn first_destination(ev: &Event) -> Option<(std::net::IpAddr, Option<u16>)> {
    ev.finding
        .iter()
        .flat_map(|f| &f.evidence.destinations)
        .find_map(|d| parse_destination(d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Kind;
    use crate::testdata::*;

    #[test]
    fn destinations_parse() {
        let v4: std::net::IpAddr = "203.0.113.9".parse().unwrap();
        let v6: std::net::IpAddr = "2001:db8::7".parse().unwrap();
        assert_eq!(parse_destination("203.0.113.9:443"), Some((v4, Some(443))));
        assert_eq!(
            parse_destination("[2001:db8::7]:8443"),
            Some((v6, Some(8443)))
        );
        assert_eq!(parse_destination("203.0.113.9"), Some((v4, None)));
        assert_eq!(parse_destination("[2001:db8::7]"), Some((v6, None)));
        assert_eq!(parse_destination("example.com:443"), None);
    }

    #[test]
    fn path_helpers() {
        assert_eq!(basename("/usr/bin/curl"), "curl");
        assert_eq!(basename("/home/a/.aws/"), ".aws");
        assert_eq!(basename("/"), "/");
        assert_eq!(basename("curl"), "curl");
        assert_eq!(basename(""), "");
        assert_eq!(dirname("/etc/passwd"), Some("/etc"));
        assert_eq!(dirname("/x"), Some("/"));
        assert_eq!(dirname("x"), None);
    }

    #[test]
    fn time_parses_with_nanoseconds() {
        let ev = event(Kind::ProcessExec);
        assert_eq!(epoch_ns(&ev), T_NS);
        assert_eq!(epoch_ms(&ev), T_NS / 1_000_000);
    }

    #[test]
    fn helpers_for_ids_and_devices() {
        assert_eq!(split_mitre("T1552.001"), ("T1552", Some("T1552.001")));
        assert_eq!(split_mitre("T1083"), ("T1083", None));
        assert_eq!(dev_string(libc::makedev(8, 1)), "8:1");
        assert_eq!(dev_string(libc::makedev(259, 65536)), "259:65536");
        let ev = event(Kind::ProcessExec);
        assert_eq!(event_uid(&ev), "node-a:42");
        assert_eq!(process_name(&ev.process), "curl");
        assert_eq!(container_id(&ev.process), Some(CONTAINER_ID));
        assert_eq!(pod_ref(&ev.process).as_deref(), Some("payments/api-7d9f"));
    }
}
