//! What a catalog entry is: its secret kind, its content check, and the errors of a bad entry.

use std::{path::PathBuf, sync::Arc};

use serde::{Deserialize, Serialize};

use crate::event::Severity;

/// What a secret is; the `secret.kind` field of findings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    CloudCredentials,
    KubernetesToken,
    /// A key of a Kubernetes Secret, as a pod's volume or variable holds it.
    KubernetesSecret,
    Kubeconfig,
    PrivateKey,
    RegistryCredentials,
    PackageRegistryToken,
    VcsCredentials,
    DatabaseCredentials,
    Dotenv,
    VaultToken,
    CiCredentials,
    ApiToken,
    History,
    PasswordFile,
    Keytab,
    VpnKey,
    GenericCredentials,
}

impl SecretKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::CloudCredentials => "cloud_credentials",
            SecretKind::KubernetesToken => "kubernetes_token",
            SecretKind::KubernetesSecret => "kubernetes_secret",
            SecretKind::Kubeconfig => "kubeconfig",
            SecretKind::PrivateKey => "private_key",
            SecretKind::RegistryCredentials => "registry_credentials",
            SecretKind::PackageRegistryToken => "package_registry_token",
            SecretKind::VcsCredentials => "vcs_credentials",
            SecretKind::DatabaseCredentials => "database_credentials",
            SecretKind::Dotenv => "dotenv",
            SecretKind::VaultToken => "vault_token",
            SecretKind::CiCredentials => "ci_credentials",
            SecretKind::ApiToken => "api_token",
            SecretKind::History => "history",
            SecretKind::PasswordFile => "password_file",
            SecretKind::Keytab => "keytab",
            SecretKind::VpnKey => "vpn_key",
            SecretKind::GenericCredentials => "generic_credentials",
        }
    }
}

/// A test of a file's content that tells a real secret from a file that only
/// shares its name (an `~/.aws/config` holding just a region, a public key
/// named `*.key`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentCheck {
    /// A PEM `-----BEGIN ... PRIVATE KEY-----` block (RSA, EC, DSA, PKCS#8,
    /// encrypted, OpenSSH, PGP `PRIVATE KEY BLOCK`) or a PuTTY key file.
    ContainsPrivateKeyBlock,
    /// Any of these byte strings, case-sensitive.
    ContainsAny(Vec<String>),
    /// A match of this regular expression (the `regex` crate's syntax) anywhere
    /// in the content.
    Regex(String),
}

/// One kind of secret file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    /// Stable kebab-case name; findings and policy refer to the entry by it.
    pub id: String,
    pub kind: SecretKind,
    pub description: String,
    /// Path patterns, see the catalog module's documentation.
    pub paths: Vec<String>,
    /// Paths that match `paths` but are not this secret (`*.pub`, `.env.example`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<ContentCheck>,
    /// MITRE ATT&CK technique ids.
    #[serde(default)]
    pub mitre: Arc<[String]>,
    /// Severity of a read by a process that is not one of the secret's
    /// owners; `medium` when a policy entry does not say.
    #[serde(default)]
    pub severity: Severity,
    /// The programs whose job it is to read this secret (`ssh-keygen` for an
    /// SSH key, `su` for shadow), by the file name of a packaged executable.
    /// A read by one of them is `info` only when kernel evidence proves the
    /// binary is that package's file, unmodified (see `identity::packages`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected_clients: Vec<ClientName>,
}

/// The file name of an executable an installed package ships (`ssh-keygen`,
/// `unix_chkpwd`), checked when read: never a path, never a glob.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ClientName(String);

impl ClientName {
    pub fn parse(s: &str) -> Result<ClientName, String> {
        let ok = !s.is_empty()
            && s.len() <= 255
            && s != "."
            && s != ".."
            && !s.contains(['/', '*', '?', '[', '{', '\0']);
        if ok {
            Ok(ClientName(s.to_string()))
        } else {
            Err(format!(
                "expected client {s:?} is not an executable's file name; give the bare name \
                 of a packaged program (\"ssh-keygen\", \"unix_chkpwd\"), not a path or glob: \
                 clients are recognised by their package's file, wherever the path says"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ClientName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ClientName::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl CatalogEntry {
    pub fn new(
        id: &str,
        kind: SecretKind,
        severity: Severity,
        paths: &[&str],
        description: &str,
    ) -> CatalogEntry {
        CatalogEntry {
            id: id.to_string(),
            kind,
            description: description.to_string(),
            paths: paths.iter().map(|p| p.to_string()).collect(),
            exclude: Vec::new(),
            content: None,
            mitre: Arc::from([]),
            severity,
            expected_clients: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(
        "catalog entry id {id:?} is not kebab-case \
         (lowercase letters and digits, words joined by '-')"
    )]
    InvalidId { id: String },
    #[error(
        "catalog entry id {id:?} appears more than once; ids must be unique \
         (to replace a built-in entry, use Catalog::extend)"
    )]
    DuplicateId { id: String },
    #[error("catalog entry {id}: no path patterns; give at least one under `paths`")]
    NoPaths { id: String },
    #[error("catalog entry {id}: path pattern {pattern:?} {reason}")]
    BadPattern {
        id: String,
        pattern: String,
        reason: &'static str,
    },
    #[error("catalog entry {id}: path pattern {pattern:?} is not a valid glob: {source}")]
    BadGlob {
        id: String,
        pattern: String,
        #[source]
        source: globset::Error,
    },
    #[error("catalog entry {id}: content check: {reason}")]
    BadContentCheck { id: String, reason: String },
    #[error(
        "the catalog's path patterns do not compile together ({0}); \
         use fewer or simpler patterns"
    )]
    TooLarge(#[source] globset::Error),
    #[error("home directory {home:?} must be an absolute, normalised path other than /")]
    BadHome { home: PathBuf },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::catalog::builtin_entries;

    #[test]
    fn as_str_agrees_with_serde() {
        for entry in builtin_entries() {
            let kind = serde_yaml_ng::to_string(&entry.kind).unwrap();
            assert_eq!(kind.trim(), entry.kind.as_str());
            let severity = serde_yaml_ng::to_string(&entry.severity).unwrap();
            assert_eq!(severity.trim(), entry.severity.as_str());
        }
        let all = [
            Severity::Info,
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ];
        assert!(all.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn entries_round_trip_through_yaml() {
        let entries = builtin_entries();
        let yaml = serde_yaml_ng::to_string(&entries).unwrap();
        let back: Vec<CatalogEntry> = serde_yaml_ng::from_str(&yaml).unwrap();
        assert_eq!(back, entries);
        assert!(yaml.contains("kind: cloud_credentials") && yaml.contains("severity: critical"));
        assert!(yaml.contains("content: contains_private_key_block"));
        assert!(yaml.contains("- ssh-keygen"));
    }

    #[test]
    fn client_names_are_bare_file_names() {
        for good in ["ssh-keygen", "unix_chkpwd", "git-remote-https", "pg_dump"] {
            assert_eq!(ClientName::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", "/usr/bin/ssh", "ssh*", "..", "bin/su"] {
            let e = ClientName::parse(bad).unwrap_err();
            assert!(e.contains("not an executable's file name"), "{e}");
        }
        let e = serde_yaml_ng::from_str::<ClientName>("/tmp/x").unwrap_err();
        assert!(e.to_string().contains("\"/tmp/x\""), "{e}");
    }
}
