//! SIEM output formats.
//!
//! The native form of an event is the `proctor.event/v1` contract (see
//! docs/event-contract.md and [`crate::event`]). For SIEMs that want a standard schema the
//! same event can be rendered as:
//!
//! - [OCSF](ocsf) 1.3.0 JSON ([`Format::Ocsf`]),
//! - [Elastic Common Schema](ecs) 8.x JSON ([`Format::Ecs`]),
//! - an ArcSight [CEF](cef) line, for syslog consumers ([`cef::to_cef`]).
//!
//! The field-by-field mapping is documented in `docs/siem-mappings.md`; keep
//! the two in step. Renderers never fail and never panic: a field the event
//! lacks is left out, and the only event a format cannot carry at all
//! (`agent_status` in OCSF) comes back as `None`, for the sink to count.

pub mod cef;
pub mod ecs;
pub mod ocsf;

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    event::Severity,
    event::{Event, NetInfo, Process},
};

/// A JSON output format, as a sink's configuration names it
/// (`format: native | ocsf | ecs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The `proctor.event/v1` contract, unchanged.
    #[default]
    Native,
    /// OCSF 1.3.0.
    Ocsf,
    /// Elastic Common Schema 8.x.
    Ecs,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Native, Format::Ocsf, Format::Ecs];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Native => "native",
            Format::Ocsf => "ocsf",
            Format::Ecs => "ecs",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| format!("unknown format {s:?} (expected native, ocsf or ecs)"))
    }
}

/// The event as one JSON document in `format`.
///
/// `None` means the format has no place for this kind of event (today only
/// `agent_status` in OCSF, see [`ocsf::to_ocsf`]); a sink must count such
/// events as skipped, not drop them silently.
pub fn render_json(format: Format, event: &Event) -> Option<Value> {
    match format {
        // Serializing the event model cannot fail: every map key is a string.
        Format::Native => serde_json::to_value(event).ok(),
        Format::Ocsf => ocsf::to_ocsf(event),
        Format::Ecs => Some(ecs::to_ecs(event)),
    }
}

// ---------------------------------------------------------------------------
// Helpers shared by the renderers.

/// Event time, ns since the Unix epoch. The emitter always writes RFC 3339,
/// so this parses; 0 (the epoch) stands for an unparsable time rather than a
/// made-up "now".
pub(crate) fn epoch_ns(ev: &Event) -> u64 {
    humantime::parse_rfc3339_weak(&ev.time)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
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

/// A short human title for a finding rule; the rule id for unknown rules.
pub(crate) fn rule_title(rule: &str) -> &str {
    match rule {
        "secret-read" => "Static secret read",
        "secret-env" => "Static secret in process environment",
        "secret-replay" => "Static secret replayed by another workload",
        "secret-exfil" => "Secret read followed by connection to a disallowed destination",
        "secret-search" => "Credential discovery",
        "untrusted-binary" => "Execution of a binary that cannot be attested",
        other => other,
    }
}

/// A string field of the loosely typed `container` / `pod` objects.
pub(crate) fn json_str<'a>(v: &'a Option<Value>, key: &str) -> Option<&'a str> {
    v.as_ref()?.get(key)?.as_str().filter(|s| !s.is_empty())
}

pub(crate) fn container_id(p: &Process) -> Option<&str> {
    json_str(&p.container, "id")
}

/// `namespace/name` of the pod, when both are known.
pub(crate) fn pod_ref(p: &Process) -> Option<String> {
    Some(format!(
        "{}/{}",
        json_str(&p.pod, "namespace")?,
        json_str(&p.pod, "name")?
    ))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Kind;
    use crate::testdata::*;

    #[test]
    fn format_names_round_trip_through_serde_and_from_str() {
        for f in Format::ALL {
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(json, format!("\"{}\"", f.as_str()));
            let back: Format = serde_json::from_str(&json).unwrap();
            assert_eq!(back, f);
            assert_eq!(f.as_str().parse::<Format>().unwrap(), f);
        }
        assert_eq!(Format::default(), Format::Native);
        assert!("OCSF".parse::<Format>().is_err());
        assert!(serde_json::from_str::<Format>("\"cef\"").is_err());
    }

    #[test]
    fn native_is_the_contract_unchanged() {
        for ev in all_kinds() {
            let v = render_json(Format::Native, &ev).unwrap();
            assert_eq!(v, serde_json::to_value(&ev).unwrap());
            assert_eq!(v["schema"], "proctor.event/v1");
            assert_eq!(v["kind"], ev.kind.as_str());
        }
    }

    #[test]
    fn every_format_renders_every_kind_except_ocsf_agent_status() {
        for ev in all_kinds() {
            for f in Format::ALL {
                let out = render_json(f, &ev);
                // OCSF: no class for agent_status; Network Activity requires
                // a destination, which a net_connect without `net` lacks.
                let unmappable = ev.kind == Kind::AgentStatus
                    || (ev.kind == Kind::NetConnect && ev.net.is_none());
                let expect_none = f == Format::Ocsf && unmappable;
                assert_eq!(out.is_none(), expect_none, "{f} {:?}", ev.kind);
                if let Some(v) = out {
                    assert!(v.is_object(), "{f} {:?}", ev.kind);
                }
            }
        }
    }

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
        let mut bad = ev.clone();
        bad.time = "yesterday".into();
        assert_eq!(epoch_ns(&bad), 0);
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
