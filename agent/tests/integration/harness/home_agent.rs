//! An agent started on a throw-away home and state directory, the set-up most secret-watching topics share.

use std::path::Path;

use super::{AgentProc, TEST_METRICS};

/// The agent and the home it watches (`secrets.extra_homes`); the state dir
/// lives as long as they do.
pub struct HomeAgent {
    pub agent: AgentProc,
    pub home: tempfile::TempDir,
    _state: tempfile::TempDir,
}

impl HomeAgent {
    /// Writes `files` (path below the home, content; parents created), then
    /// starts the agent on the YAML `config(home, state)` returns.
    pub fn start(files: &[(&str, &str)], config: impl FnOnce(&Path, &Path) -> String) -> Self {
        Self::start_in(&std::env::temp_dir(), files, config)
    }

    /// [`Self::start`] with the home made below `parent` (a tmpfs, say).
    pub fn start_in(
        parent: &Path,
        files: &[(&str, &str)],
        config: impl FnOnce(&Path, &Path) -> String,
    ) -> Self {
        let home = tempfile::tempdir_in(parent).unwrap();
        let state = tempfile::tempdir().unwrap();
        for (rel, content) in files {
            let path = home.path().join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).unwrap();
            }
            std::fs::write(&path, content).unwrap();
        }
        let agent = AgentProc::start(&config(home.path(), state.path()));
        HomeAgent {
            agent,
            home,
            _state: state,
        }
    }
}

/// The config of the page-cache topics: status every second, the forced
/// page-cache set with a 1 s repeat window, `home` watched, and a kill rule
/// on `.pgpass` whose only owner is the executable `owner`.
pub fn page_cache_kill_config(home: &Path, state: &Path, owner: &Path) -> String {
    format!(
        "status_interval: 1s\n{TEST_METRICS}\
         state_dir: {state}\n\
         kernel:\n  file_hooks: page-cache\n  repeat_window: 1s\n\
         secrets:\n  extra_homes: [{h}]\n  search_dirs: []\n  rules:\n\
         \x20   - secret: {{id: pgpass}}\n\
         \x20     owners: [{{exe_path: {o}}}]\n\
         \x20     enforce: [kill]\n",
        state = state.display(),
        h = home.display(),
        o = owner.display(),
    )
}
