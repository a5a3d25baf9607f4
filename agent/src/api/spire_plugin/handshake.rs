//! The go-plugin start-up handshake: the host (SPIRE agent) starts the
//! plugin with a magic cookie in the environment, and the plugin answers with
//! one line on stdout saying where it listens.
//!
//! `CORE|APP|NETWORK|ADDRESS|PROTOCOL`: go-plugin's core protocol version (1),
//! the application protocol version (SPIRE's plugin SDK uses 1 for every
//! plugin type), `unix` and the socket path, and `grpc`. The optional sixth
//! field (a server certificate for go-plugin's AutoMTLS) is left out: SPIRE
//! runs plugins without AutoMTLS, and the socket sits in a private directory.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context as _, Result};

use crate::api::selectors::resolve_group;

/// SPIRE's plugin SDK uses the plugin type as both key and value.
pub const MAGIC_COOKIE_KEY: &str = "WorkloadAttestor";
pub const MAGIC_COOKIE_VALUE: &str = "WorkloadAttestor";
pub const CORE_PROTOCOL_VERSION: u32 = 1;
pub const APP_PROTOCOL_VERSION: u32 = 1;

/// What the host asked for through the environment.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HostRequest {
    /// `PLUGIN_UNIX_SOCKET_DIR`: where to create the socket's directory.
    pub socket_dir: Option<PathBuf>,
    /// `PLUGIN_UNIX_SOCKET_GROUP`: a group that must be able to connect.
    pub socket_group: Option<String>,
}

/// Checks that a go-plugin host started us, and reads what it asks for.
pub fn check_env(get: impl Fn(&str) -> Option<String>) -> Result<HostRequest> {
    match get(MAGIC_COOKIE_KEY) {
        Some(v) if v == MAGIC_COOKIE_VALUE => {}
        got => bail!(
            "`proctor spire-plugin` is a SPIRE agent plugin and is started by the SPIRE agent, \
             not by hand: the environment {} ({MAGIC_COOKIE_KEY}={MAGIC_COOKIE_VALUE} expected). \
             Configure it in the SPIRE agent config as WorkloadAttestor \"proctor\" with \
             plugin_cmd = the proctor binary and plugin_args = [\"spire-plugin\"] (see \
             deploy/spire/README.md); to ask the agent about a process yourself, run \
             `proctor attest PID`",
            match got {
                None => format!("has no {MAGIC_COOKIE_KEY} variable"),
                Some(_) => format!("has {MAGIC_COOKIE_KEY} set to another value"),
            }
        ),
    }
    if let Some(versions) = get("PLUGIN_PROTOCOL_VERSIONS").filter(|v| !v.is_empty()) {
        let want = APP_PROTOCOL_VERSION.to_string();
        if !versions.split(',').any(|v| v.trim() == want) {
            bail!(
                "the plugin host speaks plugin protocol version(s) {versions}, proctor speaks \
                 {want} (that of SPIRE's plugin SDK): use a SPIRE agent that loads v1 plugins"
            );
        }
    }
    let nonempty = |k: &str| get(k).filter(|v| !v.is_empty());
    Ok(HostRequest {
        socket_dir: nonempty("PLUGIN_UNIX_SOCKET_DIR").map(PathBuf::from),
        socket_group: nonempty("PLUGIN_UNIX_SOCKET_GROUP"),
    })
}

/// The line the host reads from our stdout.
pub fn line(socket: &Path) -> String {
    format!(
        "{CORE_PROTOCOL_VERSION}|{APP_PROTOCOL_VERSION}|unix|{}|grpc",
        socket.display()
    )
}

/// The listening socket in a fresh private directory (removed when the
/// returned `TempDir` drops).
pub struct PluginSocket {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub listener: std::os::unix::net::UnixListener,
}

pub fn bind(req: &HostRequest) -> Result<PluginSocket> {
    let base = req.socket_dir.clone().unwrap_or_else(std::env::temp_dir);
    let gid = match &req.socket_group {
        Some(g) => Some(resolve_group(g).with_context(|| {
            format!(
                "PLUGIN_UNIX_SOCKET_GROUP {g:?}: no such group in /etc/group (give a name or a \
                 number)"
            )
        })?),
        None => None,
    };
    let dir = tempfile::Builder::new()
        .prefix("proctor-spire-plugin-")
        .tempdir_in(&base)
        .with_context(|| format!("create the plugin socket directory in {}", base.display()))?;
    let path = dir.path().join("plugin.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path)
        .with_context(|| format!("bind the plugin socket {}", path.display()))?;
    if let Some(g) = gid {
        // The host runs as another user but in this group: it must get
        // through the directory and connect to the socket.
        for (p, mode) in [(dir.path(), 0o750), (path.as_path(), 0o660)] {
            std::os::unix::fs::chown(p, None, Some(g))
                .with_context(|| format!("chgrp {g} {}", p.display()))?;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
                .with_context(|| format!("chmod {mode:o} {}", p.display()))?;
        }
    }
    listener.set_nonblocking(true)?;
    Ok(PluginSocket {
        dir,
        path,
        listener,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn cookie_is_required() {
        let e = check_env(env(&[])).unwrap_err().to_string();
        assert!(
            e.contains("not by hand") && e.contains("proctor attest"),
            "{e}"
        );
        let e = check_env(env(&[("WorkloadAttestor", "KeyManager")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("another value"), "{e}");
        assert_eq!(
            check_env(env(&[("WorkloadAttestor", "WorkloadAttestor")])).unwrap(),
            HostRequest::default()
        );
    }

    #[test]
    fn protocol_versions_and_socket_requests() {
        let ok = [
            ("WorkloadAttestor", "WorkloadAttestor"),
            ("PLUGIN_PROTOCOL_VERSIONS", "2,1"),
            ("PLUGIN_UNIX_SOCKET_DIR", "/run/x"),
            ("PLUGIN_UNIX_SOCKET_GROUP", "spire"),
        ];
        let r = check_env(env(&ok)).unwrap();
        assert_eq!(r.socket_dir, Some(PathBuf::from("/run/x")));
        assert_eq!(r.socket_group.as_deref(), Some("spire"));
        let e = check_env(env(&[
            ("WorkloadAttestor", "WorkloadAttestor"),
            ("PLUGIN_PROTOCOL_VERSIONS", "2,3"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("2,3"), "{e}");
    }

    #[test]
    fn handshake_line() {
        assert_eq!(
            line(Path::new("/tmp/d/plugin.sock")),
            "1|1|unix|/tmp/d/plugin.sock|grpc"
        );
    }
}
