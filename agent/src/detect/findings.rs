//! Builders for findings; their rule ids are the contract's
//! ([`crate::event::rule`], docs/event-contract.md).

use std::sync::Arc;

use crate::{
    event::rule::{
        IDENTITY_FORGERY, SECRET_DECOY, SECRET_ENV, SECRET_READ, SECRET_SEARCH, SECRET_STALE,
        UNTRUSTED_BINARY,
    },
    event::Severity,
    event::{Evidence, Few, Finding, Process, SecretInfo},
    identity::container::Refusal,
};

/// Why a process's binary cannot be attested, if it cannot.
pub fn untrusted_reason(p: &Process) -> Option<&'static str> {
    if p.exe.fileless {
        Some("fileless (memfd) executable")
    } else if p.exe.deleted {
        Some("executable deleted from disk")
    } else if p.exe.modified_after_exec {
        Some("executable modified after exec")
    } else {
        None
    }
}

/// One step up, capped at critical.
pub fn escalate(s: Severity) -> Severity {
    match s {
        Severity::Info => Severity::Low,
        Severity::Low => Severity::Medium,
        Severity::Medium => Severity::High,
        Severity::High | Severity::Critical => Severity::Critical,
    }
}

pub fn untrusted_binary(p: &Process) -> Option<Finding> {
    let reason = untrusted_reason(p)?;
    let mitre = if p.exe.fileless {
        "T1620"
    } else if p.exe.deleted {
        "T1070.004"
    } else {
        "T1554"
    };
    Some(Finding {
        rule: UNTRUSTED_BINARY,
        severity: Severity::High,
        summary: format!(
            "{} (pid {}) runs a binary that cannot be attested: {reason}",
            p.comm, p.pid
        ),
        mitre: Arc::from([mitre.to_string()]),
        secret: None,
        evidence: Evidence {
            exec_ids: smallvec::smallvec![p.exec_id.clone()],
            paths: smallvec::smallvec![p.exe.path.as_str().into()],
            ..Evidence::default()
        },
        action: None,
    })
}

/// A process whose cgroup claims a container or pod that is not its own
/// (masquerading): the claim was refused, this says so.
pub fn identity_forgery(p: &Process, r: &Refusal) -> Finding {
    let claimed: Vec<String> = [
        r.claimed_pod.as_ref().map(|u| format!("pod-uid:{u}")),
        r.claimed_container
            .as_ref()
            .map(|c| format!("container-id:{c}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    Finding {
        rule: IDENTITY_FORGERY,
        severity: Severity::High,
        summary: format!(
            "{} (pid {}) runs in cgroup {} that claims {}, refused: {}",
            p.comm,
            p.pid,
            r.path,
            if claimed.is_empty() {
                "a Kubernetes pod".to_string()
            } else {
                claimed.join(" and ")
            },
            r.reason
        ),
        mitre: Arc::from(["T1036".into()]),
        secret: None,
        evidence: Evidence {
            exec_ids: smallvec::smallvec![p.exec_id.clone()],
            paths: smallvec::smallvec![r.path.as_str().into()],
            identities: claimed,
            reason: Some(r.reason.clone()),
            ..Evidence::default()
        },
        action: None,
    }
}

pub struct ReadContext<'a> {
    pub reader: &'a Process,
    pub secret: Arc<SecretInfo>,
    /// The secret's path, shared with the watch table.
    pub path: Arc<str>,
    pub mitre: Arc<[String]>,
    pub severity: Severity,
    pub owner: bool,
}

pub fn secret_read(ctx: ReadContext) -> Finding {
    let mut severity = ctx.severity;
    let mut escalation = None;
    if let Some(reason) = untrusted_reason(ctx.reader) {
        severity = escalate(severity);
        escalation = Some(format!("reader is untrusted: {reason}"));
    }
    let path = ctx.path;
    let who = if ctx.owner { "owner" } else { "non-owner" };
    Finding {
        rule: SECRET_READ,
        severity,
        summary: read_summary(ctx.reader, who, &ctx.secret, &path),
        mitre: ctx.mitre,
        secret: Some(ctx.secret),
        evidence: Evidence {
            exec_ids: smallvec::smallvec![ctx.reader.exec_id.clone()],
            paths: smallvec::smallvec![path],
            escalation,
            ..Evidence::default()
        },
        action: None,
    }
}

/// "<comm> (<who>, pid <pid>) read <kind> secret <id> at <path>", written
/// piece by piece: one finding per watched read, and `format!` was two
/// thousand instructions of each (a twentieth of the agent's per record).
fn read_summary(reader: &Process, who: &str, secret: &SecretInfo, path: &str) -> String {
    let mut pid = itoa::Buffer::new();
    let parts = [
        reader.comm.as_str(),
        " (",
        who,
        ", pid ",
        pid.format(reader.pid),
        ") read ",
        secret.kind.as_str(),
        " secret ",
        secret.id.as_str(),
        " at ",
        path,
    ];
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        out.push_str(p);
    }
    out
}

pub fn secret_env(p: &Process, secret: Arc<SecretInfo>) -> Finding {
    let var = secret.variable.clone().unwrap_or_default();
    Finding {
        rule: SECRET_ENV,
        severity: if untrusted_reason(p).is_some() {
            Severity::High
        } else {
            Severity::Medium
        },
        summary: format!(
            "{} (pid {}) has a static {} in its environment variable {var}",
            p.comm, p.pid, secret.kind
        ),
        mitre: Arc::from(["T1552.001".into()]),
        secret: Some(secret),
        evidence: Evidence {
            exec_ids: smallvec::smallvec![p.exec_id.clone()],
            ..Evidence::default()
        },
        action: None,
    }
}

pub fn secret_search(p: &Process, distinct: usize, window_s: u64, paths: Few<Arc<str>>) -> Finding {
    Finding {
        rule: SECRET_SEARCH,
        severity: if untrusted_reason(p).is_some() {
            Severity::Critical
        } else {
            Severity::High
        },
        summary: format!(
            "{} (pid {}) opened {distinct} different secret files within {window_s}s: credential discovery",
            p.comm, p.pid
        ),
        mitre: Arc::from(["T1552.001".into(), "T1083".into()]),
        secret: None,
        evidence: Evidence {
            exec_ids: smallvec::smallvec![p.exec_id.clone()],
            paths,
            ..Evidence::default()
        },
        action: None,
    }
}

/// A read of a decoy proctor planted: whoever it is, it is looking for
/// credentials it has no business with.
pub fn secret_decoy(reader: &Process, secret: SecretInfo, mitre: Arc<[String]>) -> Finding {
    let path: Arc<str> = secret.path.as_deref().unwrap_or_default().into();
    Finding {
        rule: SECRET_DECOY,
        severity: Severity::Critical,
        summary: format!(
            "{} (pid {}, uid {}) read decoy {} {path}: a credential no one has a reason to read",
            reader.comm, reader.pid, reader.uid, secret.kind
        ),
        mitre,
        secret: Some(Arc::new(secret)),
        evidence: Evidence {
            exec_ids: smallvec::smallvec![reader.exec_id.clone()],
            paths: smallvec::smallvec![path],
            reason: Some("decoy planted by proctor (secrets.decoys)".to_string()),
            ..Evidence::default()
        },
        action: None,
    }
}

/// A secret whose content has gone unrotated longer than its policy's
/// `max_age`. No process did anything: the event's process is the agent's.
pub fn secret_stale(secret: SecretInfo, age_s: u64, max_age_s: u64, since: String) -> Finding {
    let path: Arc<str> = secret.path.as_deref().unwrap_or_default().into();
    Finding {
        rule: SECRET_STALE,
        severity: Severity::Medium,
        summary: format!(
            "{} secret {} at {path} is {} old, past its max_age of {}: rotate it",
            secret.kind,
            secret.id,
            humantime::format_duration(std::time::Duration::from_secs(age_s)),
            humantime::format_duration(std::time::Duration::from_secs(max_age_s)),
        ),
        mitre: Arc::from([]),
        secret: Some(Arc::new(secret)),
        evidence: Evidence {
            paths: smallvec::smallvec![path],
            reason: Some(format!(
                "content unchanged since {since} as proctor observed it (age {age_s}s, max_age {max_age_s}s)"
            )),
            ..Evidence::default()
        },
        action: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_summary_names_reader_secret_and_path() {
        let reader = crate::testdata::process();
        let secret = crate::testdata::finding(SECRET_READ, Severity::High)
            .secret
            .unwrap();
        let s = read_summary(
            &reader,
            "non-owner",
            &secret,
            "/home/alice/.aws/credentials",
        );
        assert_eq!(
            s,
            format!(
                "{} (non-owner, pid {}) read {} secret {} at /home/alice/.aws/credentials",
                reader.comm, reader.pid, secret.kind, secret.id
            )
        );
    }

    #[test]
    fn escalation_caps_at_critical() {
        assert_eq!(escalate(Severity::Info), Severity::Low);
        assert_eq!(escalate(Severity::High), Severity::Critical);
        assert_eq!(escalate(Severity::Critical), Severity::Critical);
    }
}
