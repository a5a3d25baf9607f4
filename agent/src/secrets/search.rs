//! secret-search: credential discovery, as one process opening many distinct
//! secrets within a window, or a search tool hunting for secret file names.

use foldhash::HashMap;
use std::{
    collections::VecDeque,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    detect::findings,
    event::{Finding, Process},
    secrets::catalog::Catalog,
    secrets::policy::SearchConfig,
};

/// Per process: recent distinct secret paths, and when secret-search last fired.
type SearchWindow = (VecDeque<(Instant, Arc<str>)>, Option<Instant>);

/// The secrets each process opened lately.
#[derive(Debug, Default)]
pub struct SearchWatch {
    windows: HashMap<u32, SearchWindow>,
}

impl SearchWatch {
    /// `p` opened the secret at `path` at `now`: a finding once it has opened
    /// `cfg.distinct_secrets` distinct secrets within `cfg.window`, then quiet
    /// for a window.
    pub fn on_open(
        &mut self,
        cfg: &SearchConfig,
        p: &Process,
        path: &Arc<str>,
        now: Instant,
    ) -> Option<Finding> {
        let (recent, fired) = self.windows.entry(p.pid).or_default();
        while recent
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > cfg.window)
        {
            recent.pop_front();
        }
        if !recent.iter().any(|(_, q)| q == path) {
            recent.push_back((now, path.clone()));
        }
        if recent.len() < cfg.distinct_secrets
            || fired.is_some_and(|t| now.duration_since(t) < cfg.window)
        {
            return None;
        }
        *fired = Some(now);
        let paths = recent.iter().map(|(_, q)| q.clone()).collect();
        Some(findings::secret_search(
            p,
            recent.len(),
            cfg.window.as_secs(),
            paths,
        ))
    }

    pub fn forget(&mut self, pid: u32) {
        self.windows.remove(&pid);
    }

    /// Drops the windows with nothing left to remember.
    pub fn prune(&mut self, window: Duration) {
        self.windows.retain(|_, (recent, fired)| {
            !recent.is_empty() || fired.is_some_and(|t| t.elapsed() < window)
        });
    }
}

/// A search tool (`find / -name id_rsa`) whose arguments name secret files:
/// the secret-search finding, with the arguments that gave it away.
pub fn search_tool_hunt(p: &Process, catalog: &Catalog) -> Option<Finding> {
    const TOOLS: &[&str] = &[
        "find", "locate", "mlocate", "plocate", "grep", "egrep", "rg", "ag", "fd", "fdfind",
    ];
    if !TOOLS.contains(&p.comm.as_str()) {
        return None;
    }
    let names = catalog.basenames();
    let hits: crate::event::Few<Arc<str>> = p
        .args
        .iter()
        .skip(1)
        .filter(|a| {
            let a = a.trim_matches(|c| c == '*' || c == '"' || c == '\'');
            a.len() >= 4 && (names.contains(a) || SEARCH_WORDS.iter().any(|w| a.contains(w)))
        })
        .map(|a| Arc::from(a.as_str()))
        .collect();
    if hits.is_empty() {
        return None;
    }
    let mut f = findings::secret_search(p, hits.len(), 0, hits);
    f.summary = format!(
        "{} (pid {}) searches for credential files by name: {}",
        p.comm,
        p.pid,
        f.evidence.paths.join(" ")
    );
    Some(f)
}

/// Words that make a search tool's argument a hunt for credentials.
const SEARCH_WORDS: &[&str] = &[
    "id_rsa",
    "id_ed25519",
    "id_ecdsa",
    ".aws",
    "credentials",
    "password",
    "passwd",
    ".kube",
    "kubeconfig",
    ".npmrc",
    ".pypirc",
    ".git-credentials",
    ".netrc",
    ".env",
    "secret",
    "token",
    "private key",
    "BEGIN RSA",
    "BEGIN OPENSSH",
    "AKIA",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(distinct_secrets: usize) -> SearchConfig {
        SearchConfig {
            distinct_secrets,
            window: Duration::from_secs(60),
        }
    }

    #[test]
    fn opens_older_than_the_window_do_not_count() {
        let (cfg, p, t0) = (cfg(2), crate::testdata::process(), Instant::now());
        let mut w = SearchWatch::default();
        assert!(w.on_open(&cfg, &p, &"/a".into(), t0).is_none());
        let late = t0 + cfg.window + Duration::from_secs(1);
        assert!(
            w.on_open(&cfg, &p, &"/b".into(), late).is_none(),
            "/a has expired"
        );
        let f = w
            .on_open(&cfg, &p, &"/c".into(), late)
            .expect("two within the window");
        assert_eq!(f.evidence.paths[..], [Arc::from("/b"), Arc::from("/c")]);
    }

    #[test]
    fn after_firing_a_process_is_quiet_for_a_window_then_may_fire_again() {
        let (cfg, p, t0) = (cfg(2), crate::testdata::process(), Instant::now());
        let mut w = SearchWatch::default();
        w.on_open(&cfg, &p, &"/a".into(), t0);
        assert!(w.on_open(&cfg, &p, &"/b".into(), t0).is_some());
        assert!(w.on_open(&cfg, &p, &"/c".into(), t0).is_none(), "quiet");
        let later = t0 + cfg.window;
        assert!(
            w.on_open(&cfg, &p, &"/d".into(), later).is_some(),
            "a new window"
        );
    }

    #[test]
    fn processes_are_counted_apart_and_forgotten_at_exit() {
        let (cfg, t0) = (cfg(2), Instant::now());
        let p = crate::testdata::process();
        let mut q = p.clone();
        q.pid += 1;
        let mut w = SearchWatch::default();
        w.on_open(&cfg, &p, &"/a".into(), t0);
        assert!(
            w.on_open(&cfg, &q, &"/b".into(), t0).is_none(),
            "another process"
        );
        w.forget(p.pid);
        assert!(w.on_open(&cfg, &p, &"/b".into(), t0).is_none(), "forgotten");
    }
}
