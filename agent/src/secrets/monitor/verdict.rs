//! What a policy verdict on a secret read means downstream: the finding's severity, its wording, bindings and exfiltration taint.

use crate::{
    event::{Finding, Process, Severity},
    identity::packages::PackagedExe,
    secrets::policy::Verdict,
};

/// Who the reader is to the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Owner,
    /// A packaged program whose job is to read this secret.
    ExpectedClient,
    Foreign,
}

/// The severity and role of a read, or `None` when an exception silences it.
pub(super) fn read_role(verdict: Verdict) -> Option<(Severity, Role)> {
    match verdict {
        Verdict::Expected => None,
        Verdict::Owner => Some((Severity::Info, Role::Owner)),
        Verdict::ExpectedClient => Some((Severity::Info, Role::ExpectedClient)),
        Verdict::Foreign(s) => Some((s, Role::Foreign)),
    }
}

/// Whether a read makes the reader carry the secret towards the network.
/// An expected client takes its credential where it is used (ssh to its
/// server, git to its forge), so only a policy's declared destination list
/// constrains it; everyone else is held to the defaults too.
pub(super) fn carries_taint(role: Role, destinations_declared: bool) -> bool {
    role != Role::ExpectedClient || destinations_declared
}

/// Names the installed program in an expected client's `info` finding.
pub(super) fn mark_expected_client(f: &mut Finding, reader: &Process, client: &PackagedExe) {
    let secret = f.secret.as_ref();
    f.summary = format!(
        "{} (expected client {} from {}, pid {}) read {} secret {}",
        reader.comm,
        client.path,
        client.origin(),
        reader.pid,
        secret.map_or("?", |s| s.kind.as_str()),
        secret.map_or("?", |s| s.id.as_str()),
    );
    f.evidence.expected_client = Some(client.evidence());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_clients_are_info_and_carry_taint_only_to_declared_destinations() {
        assert_eq!(
            read_role(Verdict::ExpectedClient),
            Some((Severity::Info, Role::ExpectedClient))
        );
        assert_eq!(
            read_role(Verdict::Foreign(Severity::Critical)),
            Some((Severity::Critical, Role::Foreign))
        );
        assert_eq!(read_role(Verdict::Expected), None);
        assert!(!carries_taint(Role::ExpectedClient, false));
        assert!(carries_taint(Role::ExpectedClient, true));
        assert!(carries_taint(Role::Foreign, false));
        assert!(carries_taint(Role::Owner, false));
    }
}
