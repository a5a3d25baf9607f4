//! What happened, in words: the one-line message per event kind that the
//! formats carry (OCSF and ECS `message`, CEF `msg` where it says the same)
//! and the title of each finding rule.

use super::common::{command_line, process_name};
use crate::event::{rule, Event, FileInfo, Kind, NetInfo, Process};

/// A short human title for a finding rule; the rule id for rules without one.
pub(crate) fn rule_title(id: &str) -> &str {
    match id {
        rule::SECRET_READ => "Static secret read",
        rule::SECRET_ENV => "Static secret in process environment",
        rule::SECRET_REPLAY => "Static secret replayed by another workload",
        rule::SECRET_EXFIL => "Secret read followed by connection to a disallowed destination",
        rule::SECRET_SEARCH => "Credential discovery",
        rule::UNTRUSTED_BINARY => "Execution of a binary that cannot be attested",
        other => other,
    }
}

/// The message of `ev`. An event that lacks the object its kind is about
/// (an open without its file, a connect without its destination) still gets
/// a sentence, a shorter one.
pub(crate) fn summary(ev: &Event) -> String {
    let p = &ev.process;
    match ev.kind {
        Kind::ProcessExec => started(p),
        Kind::ProcessExit => exited(p),
        Kind::FileOpen => match &ev.file {
            Some(f) => opened(p, f),
            None => format!("{} (pid {}) opened a file", process_name(p), p.pid),
        },
        Kind::NetConnect => match &ev.net {
            Some(net) => connected(p, net),
            None => format!("{} (pid {}) connect", process_name(p), p.pid),
        },
        Kind::Finding => match &ev.finding {
            Some(f) => f.summary.clone(),
            None => "finding".into(),
        },
        Kind::AgentStatus => format!("proctor agent {}", agent_state(ev).unwrap_or("running")),
        Kind::ProcessHash => format!(
            "{} (pid {}) binary hash {}: {}",
            process_name(p),
            p.pid,
            p.exe.hash_status,
            p.exe.sha256.as_deref().unwrap_or("-")
        ),
    }
}

pub(crate) fn started(p: &Process) -> String {
    format!(
        "{} (pid {}) started: {}",
        process_name(p),
        p.pid,
        command_line(p)
    )
}

pub(crate) fn exited(p: &Process) -> String {
    format!("{} (pid {}) exited", process_name(p), p.pid)
}

pub(crate) fn opened(p: &Process, f: &FileInfo) -> String {
    format!(
        "{} (pid {}) opened {} for {}",
        process_name(p),
        p.pid,
        f.path,
        f.access
    )
}

pub(crate) fn connected(p: &Process, net: &NetInfo) -> String {
    format!(
        "{} (pid {}) connect {} {}: {}",
        process_name(p),
        p.pid,
        net.protocol,
        destination_text(net),
        net.result
    )
}

/// Where a connect went: `ip:port`, a bare IP, or a unix socket's path.
pub(crate) fn destination_text(net: &NetInfo) -> String {
    match (&net.dst_ip, net.dst_port, &net.dst_path) {
        (Some(ip), Some(port), _) => format!("{ip}:{port}"),
        (Some(ip), None, _) => ip.clone(),
        (None, _, Some(path)) => path.clone(),
        _ => "unknown destination".into(),
    }
}

/// The `state` an `agent_status` event reports (`started`, `running`,
/// `stopped`).
pub(crate) fn agent_state(ev: &Event) -> Option<&str> {
    ev.status.as_ref()?.get("state")?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::*;

    #[test]
    fn every_kind_has_a_sentence_even_without_its_details() {
        for ev in all_kinds() {
            assert!(!summary(&ev).is_empty(), "{:?}", ev.kind);
        }
        let mut ev = event(Kind::FileOpen);
        ev.file = None;
        assert_eq!(summary(&ev), "curl (pid 4242) opened a file");
        assert_eq!(rule_title(rule::SECRET_READ), "Static secret read");
        assert_eq!(rule_title("no-such-rule"), "no-such-rule");
    }
}
