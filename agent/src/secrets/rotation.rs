//! Rotation age: secrets whose content outlived their policy's `max_age` raise `secret-stale`, once per period.
//!
//! Age is judged by content, as proctor observed it: a content dates from
//! when proctor first saw its fingerprint, or from the file's mtime at first
//! discovery when that is older (the content was there at least that long).
//! Touching a file does not make it younger; rewriting it with other bytes
//! does. When secret-stale fires is kept in the inventory, so a restart
//! neither repeats it within the period nor forgets it; the agent also keeps
//! it in memory ([`SentReports`]), since its writes reach the inventory
//! through the writer thread, which a locked file holds back.

use std::{collections::HashMap, time::Duration};

use crate::{
    detect::findings,
    event::{rfc3339_ns, Finding, SecretInfo},
    secrets::{inventory::ContentAge, policy::SecretsConfig},
};

/// The `secret-stale` reports this process made, by path: (the content's
/// since, when reported).
#[derive(Debug, Default)]
pub struct SentReports(HashMap<String, (u64, u64)>);

impl SentReports {
    /// When the content dating from `since` at `path` was last reported,
    /// by the inventory or by this process, whichever is later.
    fn last(&self, path: &str, since: u64, stored: Option<u64>) -> Option<u64> {
        let sent = self
            .0
            .get(path)
            .filter(|(s, _)| *s == since)
            .map(|(_, at)| *at);
        stored.max(sent)
    }
}

/// `secret-stale` findings due at `now_ns` among `ages` (the inventory's
/// [`crate::secrets::inventory::InventoryStore::content_ages`]); each is
/// remembered in `sent` and handed to `mark` (which notes it in the
/// inventory), so that the next one for the same content comes a period
/// later.
pub fn stale_findings(
    ages: Vec<ContentAge>,
    policy: &SecretsConfig,
    now_ns: u64,
    sent: &mut SentReports,
    mut mark: impl FnMut(&str, u64),
) -> Vec<Finding> {
    let mut out = Vec::new();
    for c in ages {
        let s = &c.secret;
        let Some(max_age) = policy.max_age(&s.catalog_id, &s.path) else {
            continue;
        };
        let reported = sent.last(&s.path, c.content_since_ns, c.stale_reported_ns);
        if !is_due(c.content_since_ns, reported, max_age, now_ns) {
            continue;
        }
        sent.0.insert(s.path.clone(), (c.content_since_ns, now_ns));
        mark(&s.path, now_ns);
        let (path, variable) = match s.path.strip_prefix("env:") {
            Some(var) => (None, Some(var.to_string())),
            None => (Some(s.path.clone()), None),
        };
        let secret = SecretInfo {
            id: s.catalog_id.clone(),
            kind: s.kind.clone(),
            fingerprint: s.fingerprint.clone(),
            path,
            variable,
            k8s: None,
        };
        out.push(findings::secret_stale(
            secret,
            now_ns.saturating_sub(c.content_since_ns) / 1_000_000_000,
            max_age.as_secs(),
            rfc3339_ns(c.content_since_ns),
        ));
    }
    out
}

/// Older than `max_age`, and not reported within the last `max_age` for
/// this content (a report before the content changed is cleared by the store).
fn is_due(since_ns: u64, reported_ns: Option<u64>, max_age: Duration, now_ns: u64) -> bool {
    let period = u64::try_from(max_age.as_nanos()).unwrap_or(u64::MAX);
    let old = now_ns.saturating_sub(since_ns) >= period;
    let quiet = reported_ns.is_none_or(|r| now_ns.saturating_sub(r) >= period);
    since_ns > 0 && old && quiet
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::rule::SECRET_STALE;
    use crate::secrets::inventory::{
        test_records::{rotated, secret, NS, T0},
        InventoryStore, DB_FILE_NAME,
    };

    fn policy(yaml: &str) -> SecretsConfig {
        let p: SecretsConfig = serde_yaml_ng::from_str(yaml).unwrap();
        p.validate().unwrap();
        p
    }

    #[test]
    fn a_secret_past_max_age_is_reported_once_per_period_and_resets_on_rotation() {
        let tmp = tempfile::tempdir().unwrap();
        let store = InventoryStore::open(&tmp.path().join(DB_FILE_NAME)).unwrap();
        let aws = "/root/.aws/credentials";
        store.upsert_secret(&secret(aws, T0)).unwrap();
        // No rule about this one: never judged.
        store
            .upsert_secret(&secret("/home/a/.aws/credentials", T0))
            .unwrap();
        let p = policy(
            "rules:\n- secret: {path: /root/.aws/credentials}\n  max_age: 100s\n\
             - secret: {id: aws-cli-credentials, path: /root/**}\n  max_age: 1h\n",
        );
        assert_eq!(
            p.max_age("aws-cli-credentials", aws),
            Some(Duration::from_secs(100))
        );

        // A fresh memory per call: what the inventory keeps is what counts here.
        let stale = |at: u64| {
            let ages = store.content_ages().unwrap();
            stale_findings(ages, &p, at, &mut SentReports::default(), |path, at| {
                store.mark_stale_reported(path, at).unwrap()
            })
        };
        assert!(stale(T0 + 99 * NS).is_empty());
        let found = stale(T0 + 100 * NS);
        assert_eq!(found.len(), 1, "{found:?}");
        let f = &found[0];
        assert_eq!(f.rule, SECRET_STALE);
        assert_eq!(f.severity, crate::event::Severity::Medium);
        let s = f.secret.as_ref().unwrap();
        assert_eq!(s.path.as_deref(), Some(aws));
        assert_eq!(s.id, "aws-cli-credentials");
        assert!(f.summary.contains("1m 40s"), "{}", f.summary);
        // Within the period: quiet; a period later: again.
        assert!(stale(T0 + 199 * NS).is_empty());
        assert_eq!(stale(T0 + 200 * NS).len(), 1);

        // Rotated: the new content is young again.
        store.upsert_secret(&rotated(aws, T0 + 250 * NS)).unwrap();
        assert!(stale(T0 + 349 * NS).is_empty());
        assert_eq!(stale(T0 + 350 * NS).len(), 1);
    }

    /// The mark has not reached the inventory (the writer thread waits on a
    /// locked file): the report is still not repeated within the period,
    /// and a rotated content is judged afresh.
    #[test]
    fn a_report_whose_mark_is_still_queued_is_not_repeated() {
        let tmp = tempfile::tempdir().unwrap();
        let store = InventoryStore::open(&tmp.path().join(DB_FILE_NAME)).unwrap();
        let aws = "/root/.aws/credentials";
        store.upsert_secret(&secret(aws, T0)).unwrap();
        let p = policy("rules:\n- secret: {path: /root/.aws/credentials}\n  max_age: 100s\n");
        let mut sent = SentReports::default();
        let mut marks = 0;
        let mut stale = |at: u64| {
            let ages = store.content_ages().unwrap();
            stale_findings(ages, &p, at, &mut sent, |_, _| marks += 1).len()
        };
        assert_eq!(stale(T0 + 100 * NS), 1);
        assert_eq!(stale(T0 + 150 * NS), 0, "still within the period");
        assert_eq!(stale(T0 + 200 * NS), 1, "a period later");
        store.upsert_secret(&rotated(aws, T0 + 210 * NS)).unwrap();
        assert_eq!(stale(T0 + 250 * NS), 0, "the new content is young");
        assert_eq!(stale(T0 + 310 * NS), 1, "the new content's own period");
        assert_eq!(marks, 3);
    }

    #[test]
    fn max_age_must_be_a_duration_of_at_least_a_second() {
        let bad: SecretsConfig =
            serde_yaml_ng::from_str("rules:\n- secret: {id: pgpass}\n  max_age: 10ms\n").unwrap();
        let e = bad.validate().unwrap_err();
        assert!(e.contains("secrets.rules[0].max_age"), "{e}");
        let e = serde_yaml_ng::from_str::<SecretsConfig>(
            "rules:\n- secret: {id: pgpass}\n  max_age: ninety days\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("invalid duration"), "{e}");
    }

    #[test]
    fn due_needs_a_known_start() {
        let d = Duration::from_secs(1);
        assert!(!is_due(0, None, d, T0));
        assert!(is_due(T0, None, d, T0 + NS));
        assert!(!is_due(T0, Some(T0 + NS), d, T0 + NS + 1));
    }
}
