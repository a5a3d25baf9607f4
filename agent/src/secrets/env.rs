//! Static credentials in process environments.
//!
//! [`scan`] looks at a process's environment (the block the exec probe
//! captured in the kernel, see [`scan_block`], or `/proc/<pid>/environ` for
//! processes older than the agent, see [`parse_environ`]) and reports the variables that hold a static
//! credential. Each variable is reported at most once, by the first detector
//! that fires, in this order:
//!
//! 1. `private-key`: a PEM/OpenSSH/PGP private key block anywhere in the value.
//! 2. `aws-access-key`: a 40-character secret access key in a variable whose
//!    name contains `SECRET`, when some variable holds an access key id
//!    (`AKIA`/`ASIA` + 16) or the name ends in `SECRET_ACCESS_KEY`. The id
//!    alone cannot sign a request, so it is not reported by itself.
//! 3. `aws-session-token`: `AWS_SESSION_TOKEN`, `AWS_SECURITY_TOKEN`.
//! 4. `vault-token`: `hvs.`/`hvb.`/`hvr.` tokens anywhere, legacy `s.` tokens
//!    in `*VAULT_TOKEN`.
//! 5. Well-known token formats anywhere in a value: `github-token`,
//!    `gitlab-token`, `slack-token`, `stripe-key`, `anthropic-api-key`,
//!    `openai-api-key`, `google-api-key`, `npm-token`, `pypi-token`,
//!    `dockerhub-token`. These shapes, the AWS and Vault ones and the URL
//!    password live in [`crate::token_shapes`], which argv redaction reads
//!    too: what the scanner reports, `process.args` never shows.
//! 6. `database-url` (`postgres://user:password@...` and the other database
//!    schemes) and `url-credentials` (any other scheme with a password).
//! 7. `generic-secret-name`: a variable named `*_SECRET`, `*_TOKEN`,
//!    `*_PASSWORD`, `*_PASSWD`, `*_API_KEY`, `*_APIKEY`, `*_PRIVATE_KEY`,
//!    `*_SECRET_KEY` (or exactly `SECRET`, `TOKEN`, `PASSWORD`, `API_KEY`,
//!    `SECRET_KEY`, `PRIVATE_KEY`; case-insensitive) whose value looks like a
//!    credential.
//!
//! "Looks like a credential" means: not a placeholder (empty, `changeme`,
//! `xxxx`, `<your-token>`, `${VAR}`, `{{ var }}`, `$VAR`, anything containing
//! `example`, `placeholder`, `dummy` or `redacted`, a value made only of
//! `x`, `*`, `.`, `-`, `_`, `#`, `0`), and for the generic names at least 8
//! characters with a Shannon entropy of at least 3.0 bits per character for
//! secrets, tokens and keys (random 8-character strings reach 3.0, words like
//! `disabled` or `kubernetes` stay below it) and 2.0 bits for passwords
//! (people choose them: `postgres1` is a password, `aaaaaaaa` is a
//! placeholder). The well-known token formats must also reach 3.0 bits, which
//! drops `ghp_xxxx...`-style examples.
//!
//! A secret-named variable whose value is a file path
//! (`DB_PASSWORD_FILE=/run/secrets/db`, `AWS_WEB_IDENTITY_TOKEN_FILE=...`) is
//! not a credential; it is returned as a [`SecretReference`] by
//! [`scan_report`], because which workloads point at which secret file is
//! what the inventory wants to know.

use std::{fmt, sync::OnceLock};

use regex::{Regex, SetMatches};

use crate::{
    secrets::catalog::{contains_private_key_block, SecretKind},
    token_shapes::{self, Family},
};

/// A static credential found in an environment variable.
pub struct EnvSecret {
    /// The variable's name.
    pub var: String,
    /// Which detector fired (see the module documentation).
    pub detector: &'static str,
    pub kind: SecretKind,
    /// The credential itself (the token or password, not always the whole
    /// variable), kept only to be fingerprinted; never log or emit it.
    /// Plain `String` on purpose: the environ buffer it came from and the
    /// variable list are ordinary heap memory too, so wiping this one copy
    /// would promise a protection the pipeline does not give.
    pub value: String,
    /// The Kubernetes Secret the pod spec sets the variable from (`secretKeyRef`).
    pub k8s: Option<crate::event::K8sSecretRef>,
}

impl fmt::Debug for EnvSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvSecret")
            .field("var", &self.var)
            .field("detector", &self.detector)
            .field("kind", &self.kind)
            .field("value", &crate::redact::REDACTED)
            .finish()
    }
}

/// A secret-named variable that points at a file instead of holding the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretReference {
    pub var: String,
    pub path: String,
}

/// Everything [`scan_report`] found in one environment.
#[derive(Debug, Default)]
pub struct EnvScan {
    pub secrets: Vec<EnvSecret>,
    pub references: Vec<SecretReference>,
}

/// The static credentials in `vars`, in the order of `vars`.
pub fn scan(vars: &[(String, String)]) -> Vec<EnvSecret> {
    scan_report(vars).secrets
}

/// The static credentials in `vars` and the secret files they reference.
pub fn scan_report(vars: &[(String, String)]) -> EnvScan {
    // A shape found in a value is also found in it untrimmed.
    let candidates: Vec<_> = vars
        .iter()
        .map(|(_, v)| token_shapes::candidates(v))
        .collect();
    let aws_key_id = token_shapes::shape("aws-access-key-id");
    let has_aws_key_id = vars.iter().zip(&candidates).any(|((_, v), c)| {
        let v = v.trim();
        aws_key_id.find_among(v, c) == Some(0..v.len())
    });
    let mut out = EnvScan::default();
    for ((name, value), candidates) in vars.iter().zip(&candidates) {
        let upper = name.to_ascii_uppercase();
        if let Some((detector, kind, secret)) = detect(&upper, value, has_aws_key_id, candidates) {
            out.secrets.push(EnvSecret {
                var: name.clone(),
                detector,
                kind,
                value: secret,
                k8s: None,
            });
        } else if let Some(path) = secret_file_reference(&upper, value) {
            out.references.push(SecretReference {
                var: name.clone(),
                path,
            });
        }
    }
    out
}

/// An environment block scanned: its variables and what they hold.
#[derive(Debug, Default)]
pub struct BlockScan {
    pub vars: Vec<(String, String)>,
    pub secrets: Vec<EnvSecret>,
}

/// Scans an environment block captured at exec. When the capture was cut
/// (`truncated`), the last entry is a piece of a variable: it is left out,
/// because a cut value would give a wrong fingerprint and a cut name a wrong
/// detector.
pub fn scan_block(block: &[u8], truncated: bool) -> BlockScan {
    let vars = block_vars(block, truncated);
    let secrets = scan(&vars);
    BlockScan { vars, secrets }
}

/// The whole variables of a captured block (see [`scan_block`]).
pub fn block_vars(block: &[u8], truncated: bool) -> Vec<(String, String)> {
    let whole = if truncated {
        block
            .iter()
            .rposition(|&b| b == 0)
            .map_or(&block[..0], |end| &block[..end])
    } else {
        block
    };
    parse_environ(whole)
}

/// A keyed digest of a captured block (and whether it was cut).
pub type BlockDigest = u128;

/// Environment blocks already scanned and found clean. A fork+exec storm
/// (a build, a shell loop, a CI job) hands the same environment to
/// thousands of children: scanning each copy was a quarter of the agent's
/// CPU in the exec bench. [`scan_block`] is a function of the block alone,
/// so a clean verdict holds for every later copy.
///
/// Only clean blocks are remembered: one that held a credential is scanned
/// again each time, so nothing derived from a credential stays here. The
/// digest is SipHash-1-3 under two random keys of this agent (128 bits): it
/// is never written anywhere, and without the keys nobody can compute or
/// steer it, so a block cannot be made to pass for a clean one.
pub struct CleanBlocks {
    digests: lru::LruCache<BlockDigest, ()>,
    keys: [std::hash::RandomState; 2],
}

impl CleanBlocks {
    pub fn new(capacity: std::num::NonZeroUsize) -> Self {
        Self {
            digests: lru::LruCache::new(capacity),
            keys: [std::hash::RandomState::new(), std::hash::RandomState::new()],
        }
    }

    pub fn digest(&self, block: &[u8], truncated: bool) -> BlockDigest {
        use std::hash::{BuildHasher, Hasher};
        let half = |k: &std::hash::RandomState| {
            let mut h = k.build_hasher();
            h.write(block);
            h.write_u8(truncated.into());
            h.finish()
        };
        (BlockDigest::from(half(&self.keys[0])) << 64) | BlockDigest::from(half(&self.keys[1]))
    }

    /// Whether a block with `digest` was scanned clean before.
    pub fn known(&mut self, digest: BlockDigest) -> bool {
        self.digests.get(&digest).is_some()
    }

    /// Remembers `digest` when `scan` found nothing.
    pub fn judged(&mut self, digest: BlockDigest, scan: &BlockScan) {
        if scan.secrets.is_empty() {
            self.digests.put(digest, ());
        }
    }
}

/// Splits the contents of `/proc/<pid>/environ` into (name, value) pairs.
/// Entries are NUL-separated; invalid UTF-8 is replaced lossily, entries
/// without `=` or with an empty name are skipped.
pub fn parse_environ(bytes: &[u8]) -> Vec<(String, String)> {
    bytes
        .split(|&b| b == 0)
        .filter(|entry| !entry.is_empty())
        .filter_map(|entry| {
            let entry = String::from_utf8_lossy(entry);
            let (name, value) = entry.split_once('=')?;
            (!name.is_empty()).then(|| (name.to_string(), value.to_string()))
        })
        .collect()
}

const SECRET_ENTROPY: f64 = 3.0;
const PASSWORD_ENTROPY: f64 = 2.0;
const GENERIC_MIN_LEN: usize = 8;

type Detection = (&'static str, SecretKind, String);

fn detect(
    upper: &str,
    value: &str,
    has_aws_key_id: bool,
    candidates: &SetMatches,
) -> Option<Detection> {
    if contains_private_key_block(value.as_bytes()) {
        return Some(("private-key", SecretKind::PrivateKey, value.to_string()));
    }
    let trimmed = value.trim();
    if upper.contains("SECRET")
        && (has_aws_key_id || upper.ends_with("SECRET_ACCESS_KEY"))
        && token_shapes::aws_secret_key().is_match(trimmed)
        && looks_real(trimmed, SECRET_ENTROPY)
    {
        return Some((
            "aws-access-key",
            SecretKind::CloudCredentials,
            trimmed.to_string(),
        ));
    }
    if matches!(upper, "AWS_SESSION_TOKEN" | "AWS_SECURITY_TOKEN")
        && trimmed.len() >= 16
        && looks_real(trimmed, SECRET_ENTROPY)
    {
        return Some((
            "aws-session-token",
            SecretKind::CloudCredentials,
            trimmed.to_string(),
        ));
    }
    if let Some(token) = capture(token_shapes::shape("vault-token"), value, candidates)
        .or_else(|| {
            upper
                .ends_with("VAULT_TOKEN")
                .then(|| {
                    token_shapes::legacy_vault_token()
                        .is_match(trimmed)
                        .then_some(trimmed)
                })
                .flatten()
        })
        .filter(|t| looks_real(t, SECRET_ENTROPY))
    {
        return Some(("vault-token", SecretKind::VaultToken, token.to_string()));
    }
    for shape in token_shapes::shapes() {
        let Some(kind) = format_kind(shape.family) else {
            continue;
        };
        if let Some(token) = capture(shape, value, candidates) {
            if looks_real(token, SECRET_ENTROPY) {
                return Some((shape.name, kind, token.to_string()));
            }
        }
    }
    if let Some(caps) = value
        .contains("://")
        .then(|| token_shapes::url_userinfo().captures(value))
        .flatten()
    {
        let password = &caps[3];
        if !is_placeholder(password) {
            let scheme = caps[1].to_ascii_lowercase();
            let base = scheme.split('+').next().unwrap_or(&scheme);
            let (detector, kind) = if DATABASE_SCHEMES.contains(&base) {
                ("database-url", SecretKind::DatabaseCredentials)
            } else {
                ("url-credentials", SecretKind::GenericCredentials)
            };
            return Some((detector, kind, password.to_string()));
        }
    }
    let class = generic_name_class(upper)?;
    if trimmed.chars().count() < GENERIC_MIN_LEN || looks_like_path(trimmed) {
        return None;
    }
    let min_entropy = match class {
        NameClass::Password => PASSWORD_ENTROPY,
        NameClass::Secret => SECRET_ENTROPY,
    };
    looks_real(trimmed, min_entropy).then(|| {
        (
            "generic-secret-name",
            SecretKind::GenericCredentials,
            trimmed.to_string(),
        )
    })
}

const DATABASE_SCHEMES: &[&str] = &[
    "postgres",
    "postgresql",
    "mysql",
    "mariadb",
    "mongodb",
    "redis",
    "rediss",
    "amqp",
    "amqps",
    "mssql",
    "sqlserver",
    "oracle",
    "clickhouse",
    "cockroachdb",
    "couchdb",
    "cassandra",
    "neo4j",
    "bolt",
    "memcached",
];

enum NameClass {
    Password,
    Secret,
}

fn generic_name_class(upper: &str) -> Option<NameClass> {
    const PASSWORD: &[&str] = &["PASSWORD", "PASSWD"];
    const SECRET: &[&str] = &[
        "SECRET",
        "TOKEN",
        "API_KEY",
        "APIKEY",
        "PRIVATE_KEY",
        "SECRET_KEY",
    ];
    let named = |words: &[&str]| {
        words
            .iter()
            .any(|w| upper == *w || upper.strip_suffix(w).is_some_and(|p| p.ends_with('_')))
    };
    if named(PASSWORD) {
        Some(NameClass::Password)
    } else if named(SECRET) {
        Some(NameClass::Secret)
    } else {
        None
    }
}

fn secret_file_reference(upper: &str, value: &str) -> Option<String> {
    let value = value.trim();
    let path = value.strip_prefix("file://").unwrap_or(value);
    let secretish = generic_name_class(upper).is_some()
        || secret_reference_name().is_match(upper)
        || matches!(
            upper,
            "GOOGLE_APPLICATION_CREDENTIALS" | "KUBECONFIG" | "AWS_SHARED_CREDENTIALS_FILE"
        );
    (secretish && looks_like_path(path)).then(|| path.to_string())
}

/// Whether `value` is a file path rather than a secret that happens to start
/// with `/` (base64 secrets can): only path characters, and either a first
/// component that is a usual top-level directory or a dot in the file name.
fn looks_like_path(value: &str) -> bool {
    const TOP_DIRS: &[&str] = &[
        "var",
        "run",
        "etc",
        "home",
        "root",
        "tmp",
        "opt",
        "srv",
        "secrets",
        "vault",
        "app",
        "mnt",
        "usr",
        "data",
        "config",
        "certs",
        "keys",
        "workspace",
        "proc",
    ];
    let Some(rest) = value.strip_prefix('/') else {
        return false;
    };
    if rest.is_empty()
        || !rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '@' | '~'))
    {
        return false;
    }
    let first = rest.split('/').next().unwrap_or_default();
    let last = rest.rsplit('/').find(|c| !c.is_empty()).unwrap_or_default();
    TOP_DIRS.contains(&first) || last.contains('.')
}

fn looks_real(value: &str, min_entropy: f64) -> bool {
    !is_placeholder(value) && shannon_entropy(value) >= min_entropy
}

fn is_placeholder(value: &str) -> bool {
    const EXACT: &[&str] = &[
        "changeme",
        "changeit",
        "secret",
        "password",
        "passwd",
        "token",
        "test",
        "testing",
        "none",
        "null",
        "nil",
        "undefined",
        "empty",
        "todo",
        "tbd",
        "fixme",
        "default",
        "unset",
        "notset",
        "required",
        "optional",
        "true",
        "false",
    ];
    const CONTAINS: &[&str] = &[
        "changeme",
        "change_me",
        "change-me",
        "example",
        "placeholder",
        "dummy",
        "redacted",
        "your_",
        "your-",
        "${",
        "{{",
        "$(",
        "%(",
    ];
    let v = value.trim().to_ascii_lowercase();
    v.is_empty()
        || EXACT.contains(&v.as_str())
        || CONTAINS.iter().any(|c| v.contains(c))
        || v.starts_with('$')
        || (v.starts_with('<') && v.ends_with('>'))
        || v.chars()
            .all(|c| matches!(c, 'x' | '*' | '.' | '-' | '_' | '#' | '0'))
}

/// Shannon entropy of the characters of `value`, in bits per character.
fn shannon_entropy(value: &str) -> f64 {
    let mut counts = std::collections::HashMap::new();
    let mut total = 0usize;
    for c in value.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
        total += 1;
    }
    if total == 0 {
        return 0.0;
    }
    counts
        .values()
        .map(|&n| {
            let p = n as f64 / total as f64;
            -p * p.log2()
        })
        .sum()
}

fn capture<'v>(
    shape: &token_shapes::TokenShape,
    value: &'v str,
    candidates: &SetMatches,
) -> Option<&'v str> {
    shape.find_among(value, candidates).map(|r| &value[r])
}

macro_rules! lazy_regex {
    ($name:ident, $re:expr) => {
        fn $name() -> &'static Regex {
            static RE: OnceLock<Regex> = OnceLock::new();
            RE.get_or_init(|| Regex::new($re).unwrap())
        }
    };
}

lazy_regex!(
    secret_reference_name,
    r"(SECRET|TOKEN|PASSWORD|PASSWD|API_?KEY|PRIVATE_KEY|CREDENTIALS?|KEY)_?(FILE|PATH)$"
);

/// The secret kind of the shapes reported as well-known token formats
/// (detector 5); the other families have their own detectors above, and a
/// JWT in an environment is usually a short-lived session, not a static secret.
fn format_kind(family: Family) -> Option<SecretKind> {
    match family {
        Family::Vcs => Some(SecretKind::VcsCredentials),
        Family::Api => Some(SecretKind::ApiToken),
        Family::PackageRegistry => Some(SecretKind::PackageRegistryToken),
        Family::ContainerRegistry => Some(SecretKind::RegistryCredentials),
        Family::PrivateKey | Family::AwsKeyId | Family::Vault | Family::Jwt => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An obviously fake, high-entropy body of `len` characters; tokens are
    /// assembled from it at run time so that none sits in the source.
    fn body(len: usize) -> String {
        const ALPHABET: &[u8] = b"FakeTstVau0123456789bcdfghjkmnopqrwxyzABCDEGHIJKLMNOPQRSUWXYZ";
        (0..len)
            .map(|i| ALPHABET[(i * 7 + 3) % ALPHABET.len()] as char)
            .collect()
    }

    fn token(prefix: &[&str], len: usize) -> String {
        format!("{}{}", prefix.concat(), body(len))
    }

    #[test]
    fn only_clean_blocks_are_remembered_and_only_under_the_same_cut() {
        let mut clean = CleanBlocks::new(std::num::NonZeroUsize::new(4).unwrap());
        let quiet = b"LANG=C.UTF-8\0HOME=/root\0".as_slice();
        let secret = format!("GITHUB_TOKEN={}\0", token(&["gh", "p_"], 36));
        let loud = secret.as_bytes();
        for (block, truncated) in [(quiet, false), (loud, false)] {
            let d = clean.digest(block, truncated);
            assert!(!clean.known(d));
            clean.judged(d, &scan_block(block, truncated));
        }
        assert!(clean.known(clean.digest(quiet, false)));
        // A block that held a credential is scanned again every time.
        assert!(!scan_block(loud, false).secrets.is_empty());
        assert!(!clean.known(clean.digest(loud, false)));
        // The same bytes cut by the kernel are another block (the last entry is dropped).
        assert!(!clean.known(clean.digest(quiet, true)));
        // Keyed: another agent's digest of the same block differs.
        let other = CleanBlocks::new(std::num::NonZeroUsize::new(4).unwrap());
        assert_ne!(other.digest(quiet, false), clean.digest(quiet, false));
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn detect_one(name: &str, value: &str) -> Option<(&'static str, SecretKind, String)> {
        let found = scan(&vars(&[(name, value)]));
        assert!(found.len() <= 1);
        found
            .into_iter()
            .next()
            .map(|s| (s.detector, s.kind, s.value))
    }

    fn detector(name: &str, value: &str) -> Option<&'static str> {
        detect_one(name, value).map(|d| d.0)
    }

    fn fake_key_id() -> String {
        ["AKIA", "ABCDEFGHIJKLMNOP"].concat()
    }

    fn aws_secret() -> String {
        format!("{}/{}", body(20), body(19))
    }

    #[test]
    fn aws_key_pair() {
        let secret = aws_secret();
        let found = scan(&vars(&[
            ("AWS_ACCESS_KEY_ID", &fake_key_id()),
            ("AWS_SECRET_ACCESS_KEY", &secret),
            ("PATH", "/usr/bin:/bin"),
        ]));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].var, "AWS_SECRET_ACCESS_KEY");
        assert_eq!(found[0].detector, "aws-access-key");
        assert_eq!(found[0].kind, SecretKind::CloudCredentials);
        assert_eq!(found[0].value, secret);

        // Paired through the key id, under a non-standard name.
        let found = scan(&vars(&[
            ("BACKUP_KEY_ID", &["ASIA", "ABCDEFGHIJKLMNOP"].concat()),
            ("BACKUP_SECRET", &secret),
        ]));
        assert_eq!(found[0].detector, "aws-access-key");
        // The key id alone signs nothing.
        assert!(scan(&vars(&[("AWS_ACCESS_KEY_ID", &fake_key_id())])).is_empty());
        // Without an id, a 40-character value under a generic secret name is still generic.
        assert_eq!(
            detector("BACKUP_SECRET", &secret),
            Some("generic-secret-name")
        );
        // The well-known documentation example is a placeholder.
        assert_eq!(
            detector("AWS_SECRET_ACCESS_KEY", &format!("{}EXAMPLEKEY", body(30))),
            None
        );
    }

    #[test]
    fn aws_session_token() {
        let value = format!("{}//{}==", body(60), body(60));
        assert_eq!(
            detector("AWS_SESSION_TOKEN", &value),
            Some("aws-session-token")
        );
        assert_eq!(
            detector("AWS_SECURITY_TOKEN", &value),
            Some("aws-session-token")
        );
        assert_eq!(detector("AWS_SESSION_TOKEN", ""), None);
    }

    #[test]
    fn well_known_token_formats() {
        let cases: Vec<(String, &str, SecretKind)> = vec![
            (
                token(&["gh", "p_"], 36),
                "github-token",
                SecretKind::VcsCredentials,
            ),
            (
                token(&["gh", "o_"], 36),
                "github-token",
                SecretKind::VcsCredentials,
            ),
            (
                token(&["gh", "u_"], 36),
                "github-token",
                SecretKind::VcsCredentials,
            ),
            (
                token(&["gh", "s_"], 36),
                "github-token",
                SecretKind::VcsCredentials,
            ),
            (
                token(&["gh", "r_"], 36),
                "github-token",
                SecretKind::VcsCredentials,
            ),
            (
                token(&["github", "_pat_"], 82),
                "github-token",
                SecretKind::VcsCredentials,
            ),
            (
                token(&["gl", "pat-"], 20),
                "gitlab-token",
                SecretKind::VcsCredentials,
            ),
            (
                token(&["xo", "xb-"], 40),
                "slack-token",
                SecretKind::ApiToken,
            ),
            (
                token(&["xo", "xp-"], 40),
                "slack-token",
                SecretKind::ApiToken,
            ),
            (
                token(&["sk", "_live_"], 24),
                "stripe-key",
                SecretKind::ApiToken,
            ),
            (
                token(&["rk", "_live_"], 24),
                "stripe-key",
                SecretKind::ApiToken,
            ),
            (
                token(&["sk-", "ant-api03-"], 90),
                "anthropic-api-key",
                SecretKind::ApiToken,
            ),
            (
                token(&["sk-", "proj-"], 120),
                "openai-api-key",
                SecretKind::ApiToken,
            ),
            (token(&["sk-"], 48), "openai-api-key", SecretKind::ApiToken),
            (
                token(&["AI", "za"], 35),
                "google-api-key",
                SecretKind::ApiToken,
            ),
            (
                token(&["np", "m_"], 36),
                "npm-token",
                SecretKind::PackageRegistryToken,
            ),
            (
                token(&["py", "pi-"], 80),
                "pypi-token",
                SecretKind::PackageRegistryToken,
            ),
            (
                token(&["dckr", "_pat_"], 27),
                "dockerhub-token",
                SecretKind::RegistryCredentials,
            ),
        ];
        for (value, expected, kind) in &cases {
            // Under an innocuous name, so the format alone decides.
            let got = detect_one("SOME_SETTING", value);
            assert_eq!(
                got.as_ref().map(|g| (g.0, g.1)),
                Some((*expected, *kind)),
                "{expected}"
            );
            assert_eq!(got.unwrap().2, *value);
            // Embedded in a larger value, only the token is kept.
            let embedded = format!("Authorization: Bearer {value}");
            assert_eq!(
                detect_one("HEADER", &embedded).unwrap().2,
                *value,
                "{expected}"
            );
        }
        // Part of a longer word, or an all-x example: not a token.
        assert_eq!(
            detector("TOOL", "/opt/desk-learn-extra-utilities-v2-build-tools"),
            None
        );
        assert_eq!(
            detector(
                "TOOL",
                &format!("{}{}", "gh", "p_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
            ),
            None
        );
        assert_eq!(detector("TOOL", &token(&["gh", "p_"], 10)), None);
    }

    #[test]
    fn vault_tokens() {
        assert_eq!(
            detector("VAULT_TOKEN", &token(&["hv", "s."], 90)),
            Some("vault-token")
        );
        assert_eq!(
            detector("OTHER", &token(&["hv", "s."], 90)),
            Some("vault-token")
        );
        let legacy = token(&["s", "."], 24);
        assert_eq!(detector("VAULT_TOKEN", &legacy), Some("vault-token"));
        assert_eq!(
            detect_one("VAULT_TOKEN", &legacy).unwrap().1,
            SecretKind::VaultToken
        );
        // A legacy-looking value elsewhere is too weak a signal on its own.
        assert_eq!(detector("SETTING", &legacy), None);
    }

    #[test]
    fn private_key_blocks() {
        let dashes = "-----";
        let value = format!(
            "{dashes}BEGIN RSA {}{dashes}\nMIIEowIBAAKCAQEA\n{dashes}END RSA {}{dashes}\n",
            "PRIVATE KEY", "PRIVATE KEY"
        );
        let got = detect_one("TLS_KEY", &value).unwrap();
        assert_eq!((got.0, got.1), ("private-key", SecretKind::PrivateKey));
        let public = value.replace("PRIVATE", "PUBLIC");
        assert_eq!(detector("TLS_KEY", &public), None);
    }

    #[test]
    fn urls_with_passwords() {
        let pw = body(16);
        for scheme in [
            "postgres",
            "postgresql",
            "mysql",
            "mongodb+srv",
            "redis",
            "postgresql+psycopg2",
        ] {
            let url = format!("{scheme}://app:{pw}@db.internal:5432/app");
            let got = detect_one("DATABASE_URL", &url).unwrap();
            assert_eq!(
                (got.0, got.1),
                ("database-url", SecretKind::DatabaseCredentials),
                "{scheme}"
            );
            assert_eq!(got.2, pw);
        }
        let jdbc = format!("jdbc:postgresql://app:{pw}@db/app");
        assert_eq!(detector("JDBC_URL", &jdbc), Some("database-url"));
        let https = format!("https://ci:{pw}@artifacts.internal/repo");
        assert_eq!(detector("INDEX_URL", &https), Some("url-credentials"));
        assert_eq!(
            detector("DATABASE_URL", "postgres://db.internal:5432/app"),
            None
        );
        assert_eq!(
            detector("DATABASE_URL", "postgres://app@db.internal/app"),
            None
        );
        assert_eq!(
            detector("DATABASE_URL", "postgres://app:${DB_PASSWORD}@db/app"),
            None
        );
        assert_eq!(
            detector("DATABASE_URL", "postgres://app:changeme@db/app"),
            None
        );
    }

    #[test]
    fn generic_secret_names() {
        let secret = body(24);
        for name in [
            "DB_PASSWORD",
            "SMTP_PASSWD",
            "APP_SECRET",
            "OAUTH_CLIENT_SECRET",
            "SERVICE_TOKEN",
            "stripe_api_key",
            "MAPS_APIKEY",
            "SIGNING_PRIVATE_KEY",
            "DJANGO_SECRET_KEY",
            "SECRET_KEY",
            "PASSWORD",
            "TOKEN",
        ] {
            let got = detect_one(name, &secret);
            assert_eq!(
                got.as_ref().map(|g| (g.0, g.1)),
                Some(("generic-secret-name", SecretKind::GenericCredentials)),
                "{name}"
            );
        }
        // Names that merely contain a word are not secret names.
        for name in [
            "TOKENIZER_MODEL",
            "PASSWORD_MIN_LENGTH",
            "SECRETARY",
            "MY_TOKENS",
            "PUBLIC_KEY",
        ] {
            assert_eq!(detector(name, &secret), None, "{name}");
        }
        // Human-chosen passwords pass a lower bar than tokens.
        assert_eq!(
            detector("POSTGRES_PASSWORD", "postgres1"),
            Some("generic-secret-name")
        );
        assert_eq!(detector("FEATURE_TOKEN", "disabled"), None);
        assert_eq!(detector("CLUSTER_TOKEN", "kubernetes"), None);
        assert_eq!(detector("SHORT_SECRET", "a1B2c3"), None);
    }

    #[test]
    fn placeholders_are_not_flagged() {
        for value in [
            "",
            "changeme",
            "CHANGEME",
            "change_me_now",
            "xxxxxxxxxxxx",
            "XXXX-XXXX-XXXX",
            "********",
            "<your-api-key>",
            "${API_TOKEN}",
            "{{ .Values.token }}",
            "$API_TOKEN",
            "your_token_here",
            "example-token-123",
            "placeholder-value",
            "dummy-secret-1234",
            "REDACTED-1234567",
            "0000000000000000",
            "password",
            "undefined",
            "$(cat /run/secrets/token)",
        ] {
            for name in ["API_TOKEN", "DB_PASSWORD", "APP_SECRET"] {
                assert_eq!(detector(name, value), None, "{name}={value:?}");
            }
        }
    }

    #[test]
    fn file_paths_are_references_not_secrets() {
        let report = scan_report(&vars(&[
            ("DB_PASSWORD_FILE", "/run/secrets/db_password"),
            (
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
            ),
            (
                "GOOGLE_APPLICATION_CREDENTIALS",
                "/var/secrets/google/key.json",
            ),
            ("API_TOKEN", "/etc/app/token"),
            ("TLS_KEY_PATH", "file:///etc/tls/tls.key"),
            ("HOME", "/root"),
            ("CONFIG_DIR", "/etc/app"),
        ]));
        assert!(report.secrets.is_empty(), "{:?}", report.secrets);
        let refs: Vec<(&str, &str)> = report
            .references
            .iter()
            .map(|r| (r.var.as_str(), r.path.as_str()))
            .collect();
        assert_eq!(
            refs,
            vec![
                ("DB_PASSWORD_FILE", "/run/secrets/db_password"),
                (
                    "AWS_WEB_IDENTITY_TOKEN_FILE",
                    "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"
                ),
                (
                    "GOOGLE_APPLICATION_CREDENTIALS",
                    "/var/secrets/google/key.json"
                ),
                ("API_TOKEN", "/etc/app/token"),
                ("TLS_KEY_PATH", "/etc/tls/tls.key"),
            ]
        );
        // A base64 secret that starts with '/' is still a secret.
        let b64 = format!("/{}/{}+{}", body(12), body(10), body(14));
        assert_eq!(detector("APP_SECRET", &b64), Some("generic-secret-name"));
    }

    #[test]
    fn debug_never_prints_the_value() {
        let value = token(&["gh", "p_"], 36);
        let found = scan(&vars(&[("GITHUB_TOKEN", &value)]));
        assert_eq!(found.len(), 1);
        let debug = format!("{:?} {:#?}", found[0], found);
        assert!(
            !debug.contains(&value) && !debug.contains(&body(36)),
            "{debug}"
        );
        assert!(
            debug.contains("<redacted>")
                && debug.contains("GITHUB_TOKEN")
                && debug.contains("github-token")
        );
    }

    #[test]
    fn one_report_per_variable_in_input_order() {
        let gh = token(&["gh", "p_"], 36);
        let npm = token(&["np", "m_"], 36);
        let found = scan(&vars(&[
            ("NPM_TOKEN", &npm),
            ("LANG", "C.UTF-8"),
            ("BOTH", &format!("{gh} {npm}")),
        ]));
        let got: Vec<(&str, &str)> = found.iter().map(|s| (s.var.as_str(), s.detector)).collect();
        assert_eq!(
            got,
            vec![("NPM_TOKEN", "npm-token"), ("BOTH", "github-token")]
        );
    }

    #[test]
    fn parse_environ_handles_nul_separated_lossy_input() {
        let mut raw =
            b"PATH=/usr/bin:/bin\0EMPTY=\0NOEQUALS\0=novalue\0EQ=a=b\0BAD=\xff\xfe\0\0".to_vec();
        raw.extend_from_slice(b"LAST=1");
        let parsed = parse_environ(&raw);
        assert_eq!(
            parsed,
            vec![
                ("PATH".to_string(), "/usr/bin:/bin".to_string()),
                ("EMPTY".to_string(), String::new()),
                ("EQ".to_string(), "a=b".to_string()),
                ("BAD".to_string(), "\u{fffd}\u{fffd}".to_string()),
                ("LAST".to_string(), "1".to_string()),
            ]
        );
        assert!(parse_environ(b"").is_empty());
    }

    #[test]
    fn a_cut_block_drops_its_partial_last_variable() {
        let gh = token(&["gh", "p_"], 36);
        let block = format!("GITHUB_TOKEN={gh}\0LANG=C\0NPM_TOKEN=np");
        let cut = scan_block(block.as_bytes(), true);
        assert_eq!(cut.vars.len(), 2, "{:?}", cut.vars);
        assert_eq!(cut.secrets.len(), 1);
        assert_eq!(cut.secrets[0].var, "GITHUB_TOKEN");
        // The same bytes, whole, keep the last variable.
        assert_eq!(scan_block(block.as_bytes(), false).vars.len(), 3);
        // A block cut inside its first variable holds nothing whole.
        assert!(scan_block(b"GITHUB_TOKEN=ghp_abc", true).vars.is_empty());
    }

    #[test]
    fn entropy_reference_points() {
        assert!(shannon_entropy("aaaaaaaa") < 0.01);
        assert!((shannon_entropy("abcdefgh") - 3.0).abs() < 1e-9);
        assert!(shannon_entropy("disabled") < SECRET_ENTROPY);
        assert!(shannon_entropy(&body(32)) > 4.0);
    }
}
