//! Redaction of credentials passed on command lines, so that `process.args` never carries one to a SIEM.
//!
//! argv is world-readable in /proc, so tools still put passwords there. The
//! event keeps the shape of the command line and replaces only the secret
//! with [`REDACTED`]: `mysql -uroot -p<redacted> db`,
//! `curl -H "Authorization: Bearer <redacted>"`. What is secret is decided in
//! four ways, from the most to the least specific:
//!
//! 1. Per program (argv[0] basename), where an option's meaning differs:
//!    `-p` is mysql's attached password but ssh's port, `-u user:pw` is a
//!    password for curl but a uid:gid for docker, `docker login -p` but
//!    `docker run -p 8080:80`. See [`program`].
//! 2. Options with a credential name (`--password`, `--api-key=`, `-token`,
//!    `--client-secret`, ...; see [`is_credential_name`]), `--flag=value` and
//!    `--flag value`, whatever the value starts with.
//! 3. Keyword positions: `aws configure set aws_secret_access_key X`,
//!    `npm config set //r/:_authToken X`, `git config user.password X`,
//!    `vault login TOKEN`, `vault operator unseal KEY`, `htpasswd -b f u PW`.
//! 4. Inside any argument: token shapes ([`crate::token_shapes`]), URL
//!    userinfo passwords, credential headers (`Authorization: Basic ...`),
//!    `name=value` and `"name": "value"` pairs with credential names.
//!
//! Shell strings (`sh -c`, `bash -lc`, `su -c`) are split into words, each
//! command in them redacted like an argv, and only the changed words are
//! rewritten, so the rest of the script stays readable. Wrappers (`sudo`,
//! `env`, `timeout`, `kubectl exec ... --`) hand the rest of the line to the
//! command they run.

use std::sync::OnceLock;

use regex::{Captures, Regex};

use crate::token_shapes;

pub const REDACTED: &str = "<redacted>";

/// Shell strings inside shell strings are followed this deep, no deeper.
const MAX_DEPTH: usize = 4;

/// Redacts the credentials in an argv in place (see the module
/// documentation); true when anything changed, which the event reports as
/// `process.args_redacted`.
pub fn redact_args(args: &mut [String]) -> bool {
    let before = args.to_vec();
    redact_command(args, 0);
    args != before.as_slice()
}

/// How a secret sits in an option's value.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Form {
    /// The whole value.
    Whole,
    /// `user:password` (curl `-u`); a value without `:` names a user only.
    AfterColon,
    /// `user%password` (smbclient `-U`).
    AfterPercent,
    /// `Name: value`, secret when the header name is (curl `-H`).
    Header,
    /// `name=value; ...` (curl `-b`); a value without `=` is a cookie file.
    Cookie,
    /// openssl's `pass:X` (`env:`, `file:`, `fd:`, `stdin` only point at it).
    OpensslPass,
    /// The next argument is a shell script (`sh -c`).
    Shell,
}

/// Whether a short option's value may be glued to it (`-pSECRET`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Attached {
    /// Only glued: mysql's `-p` alone prompts, the next word is a database.
    Only,
    /// Glued or the next word.
    Either,
    /// Never glued: openssl's `-k` is not the `k` of `-key`.
    Never,
    /// A cluster of boolean letters containing it (`bash -lc`).
    InCluster,
}

#[derive(Default)]
struct Program {
    short: &'static [(char, Attached, Form)],
    /// Options (without dashes) whose value is secret here although the name
    /// says nothing, or whose value has a form.
    long: &'static [(&'static str, Form)],
    /// Credential-named options that take no separate value here
    /// (`mysql --password` prompts; `--password=X` is still a secret).
    bare: &'static [&'static str],
    /// Credential-named options whose value is not a secret here
    /// (`docker build --secret id=npmrc,src=...`).
    not_secret: &'static [&'static str],
    /// The short options only mean a secret after this word
    /// (`docker login -p` but `docker run -p 8080:80`).
    after: Option<&'static str>,
    /// The first positional starts a command of its own (`sshpass -p X ssh -p 22 h`).
    then_command: bool,
    /// Positionals are a remote shell line (`ssh host 'mysql -pX'`).
    remote_shell: bool,
}

const MYSQL: &[&str] = &[
    "mysql",
    "mysqldump",
    "mysqladmin",
    "mysqlimport",
    "mysqlcheck",
    "mysqlshow",
    "mysqlpump",
    "mysqlslap",
    "mysqlbinlog",
    "mariadb",
    "mariadb-dump",
    "mariadb-admin",
    "mariadb-import",
    "mariadb-check",
];
const POSTGRES: &[&str] = &[
    "psql",
    "pg_dump",
    "pg_dumpall",
    "pg_restore",
    "pg_basebackup",
    "pgbench",
    "createdb",
    "dropdb",
    "createuser",
    "vacuumdb",
    "reindexdb",
    "clusterdb",
];
const REGISTRY_LOGIN: &[&str] = &[
    "docker", "podman", "nerdctl", "buildah", "skopeo", "helm", "oras", "crane", "az",
];
const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "busybox", "su", "runuser",
];
const MONGO: &[&str] = &[
    "mongo",
    "mongosh",
    "mongodump",
    "mongorestore",
    "mongoexport",
    "mongoimport",
    "mongostat",
    "mongotop",
];
const LDAP: &[&str] = &[
    "ldapsearch",
    "ldapadd",
    "ldapmodify",
    "ldapdelete",
    "ldapwhoami",
    "ldapmodrdn",
    "ldapcompare",
    "ldapexop",
    "ldappasswd",
];

/// What this program's options mean where it differs from the default.
fn program(name: &str) -> Program {
    use Attached::*;
    use Form::*;
    if MYSQL.contains(&name) {
        return Program {
            short: &[('p', Only, Whole)],
            bare: &["password"],
            ..Default::default()
        };
    }
    if POSTGRES.contains(&name) {
        // `-p` is the port, `-W`/`--password` force a prompt.
        return Program {
            bare: &["password"],
            ..Default::default()
        };
    }
    if REGISTRY_LOGIN.contains(&name) {
        return Program {
            short: &[('p', Either, Whole)],
            not_secret: if name == "helm" { &[] } else { &["secret"] },
            after: Some("login"),
            ..Default::default()
        };
    }
    if SHELLS.contains(&name) {
        return Program {
            short: &[('c', InCluster, Shell)],
            long: &[("command", Shell)],
            ..Default::default()
        };
    }
    if MONGO.contains(&name) {
        return Program {
            short: &[('p', Either, Whole)],
            ..Default::default()
        };
    }
    if LDAP.contains(&name) {
        return Program {
            short: if name == "ldappasswd" {
                &[
                    ('w', Either, Whole),
                    ('a', Either, Whole),
                    ('s', Either, Whole),
                ]
            } else {
                &[('w', Either, Whole)]
            },
            ..Default::default()
        };
    }
    match name {
        "sshpass" => Program {
            short: &[('p', Either, Whole)],
            then_command: true,
            ..Default::default()
        },
        "ssh" => Program {
            remote_shell: true,
            ..Default::default()
        },
        "redis-cli" | "valkey-cli" | "keydb-cli" => Program {
            short: &[('a', Either, Whole)],
            bare: &["askpass"],
            ..Default::default()
        },
        "curl" => Program {
            short: &[
                ('u', Either, AfterColon),
                ('U', Either, AfterColon),
                ('H', Either, Header),
                ('b', Either, Cookie),
                ('E', Either, AfterColon),
            ],
            long: &[
                ("user", AfterColon),
                ("proxy-user", AfterColon),
                ("header", Header),
                ("proxy-header", Header),
                ("cookie", Cookie),
                ("cert", AfterColon),
                ("proxy-cert", AfterColon),
                ("oauth2-bearer", Whole),
            ],
            ..Default::default()
        },
        "wget" => Program {
            long: &[("header", Header)],
            ..Default::default()
        },
        "http" | "https" | "httpie" => Program {
            short: &[('a', Either, AfterColon)],
            long: &[("auth", AfterColon)],
            ..Default::default()
        },
        "openssl" => Program {
            short: &[('k', Never, Whole), ('K', Never, Whole)],
            long: &[
                ("passin", OpensslPass),
                ("passout", OpensslPass),
                ("pass", OpensslPass),
                ("password", OpensslPass),
            ],
            ..Default::default()
        },
        "keytool" => Program {
            long: &[
                ("storepass", Whole),
                ("keypass", Whole),
                ("srcstorepass", Whole),
                ("deststorepass", Whole),
                ("srckeypass", Whole),
                ("destkeypass", Whole),
                ("new", Whole),
            ],
            ..Default::default()
        },
        "smbclient" | "rpcclient" | "smbcacls" | "smbget" => Program {
            short: &[('U', Either, AfterPercent)],
            long: &[("user", AfterPercent)],
            ..Default::default()
        },
        "gh" => Program {
            short: &[('b', Either, Whole)],
            long: &[("body", Whole)],
            after: Some("secret"),
            ..Default::default()
        },
        _ => Program::default(),
    }
}

/// Commands that run the rest of their argv as another command, with the
/// options that take a value (skipped with it).
fn wrapper(name: &str) -> Option<&'static [&'static str]> {
    Some(match name {
        "sudo" | "doas" => &["-u", "-g", "-h", "-p", "-C", "-D", "-r", "-t", "-U", "-T"],
        "env" => &["-u", "-C", "--unset", "--chdir"],
        "nice" => &["-n"],
        "ionice" => &["-c", "-n", "-p"],
        "timeout" => &["-s", "-k", "--signal", "--kill-after"],
        "nohup" | "time" | "exec" | "command" | "setsid" | "stdbuf" | "unbuffer" | "xargs"
        | "chronic" => &[],
        _ => return None,
    })
}

fn basename(arg: &str) -> &str {
    arg.rsplit('/').next().unwrap_or(arg)
}

/// `NAME=value` before a command in a shell line: an environment assignment.
fn is_assignment(arg: &str) -> bool {
    arg.split_once('=').is_some_and(|(n, _)| {
        !n.is_empty()
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    })
}

fn redact_command(args: &mut [String], depth: usize) {
    let mut start = 0;
    while start < args.len() && is_assignment(&args[start]) {
        args[start] = redact_text(&args[start]);
        start += 1;
    }
    let args = &mut args[start..];
    let Some(first) = args.first() else {
        return;
    };
    let name = basename(first).to_string();
    if let Some(value_options) = wrapper(&name) {
        let mut i = 1;
        while i < args.len() {
            let a = args[i].as_str();
            if a == "--" {
                i += 1;
                break;
            } else if value_options.contains(&a) {
                i += 2;
            } else if a.starts_with('-') || (name == "env" && is_assignment(a)) {
                args[i] = redact_text(&args[i]);
                i += 1;
            } else {
                break;
            }
        }
        if name == "timeout" && i < args.len() {
            i += 1;
        }
        if i < args.len() {
            redact_command(&mut args[i..], depth);
        }
        return;
    }
    let prog = program(&name);
    redact_options(args, &name, &prog, depth);
}

/// What the previous argument asked of this one.
enum Pending {
    None,
    Value(Form),
}

fn redact_options(args: &mut [String], name: &str, prog: &Program, depth: usize) {
    let mut pending = Pending::None;
    let mut positionals: Vec<usize> = Vec::new();
    let mut short_active = prog.after.is_none();
    let mut clusters = String::new();
    args[0] = redact_text(&args[0]);
    let mut i = 1;
    while i < args.len() {
        if let Pending::Value(form) = std::mem::replace(&mut pending, Pending::None) {
            args[i] = redact_value(&args[i], form, depth);
            i += 1;
            continue;
        }
        let arg = args[i].clone();
        if arg == "--" {
            // `kubectl exec pod -- cmd ...`, `docker exec c -- cmd`: the rest
            // is a command of its own.
            if i + 1 < args.len() {
                redact_command(&mut args[i + 1..], depth);
            }
            break;
        }
        if let Some(long) = arg.strip_prefix("--").filter(|l| !l.is_empty()) {
            match option_value(long, prog, short_active) {
                Some((flag, Some(value), form)) => {
                    args[i] = format!("--{flag}={}", redact_value(value, form, depth));
                }
                Some((_, None, form)) => pending = Pending::Value(form),
                None => args[i] = redact_text(&arg),
            }
            i += 1;
            continue;
        }
        if let Some(short) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            if short.chars().all(|c| c.is_ascii_alphabetic()) {
                clusters.push_str(short);
            }
            if let Some((flag, value, form)) = short_option(short, prog, short_active) {
                match value {
                    Some(v) => args[i] = format!("-{flag}{}", redact_value(v, form, depth)),
                    None => pending = Pending::Value(form),
                }
            } else if short.chars().count() > 1 {
                // Single-dash long options: `-password=X`, `-passin pass:X`, `-var k=v`.
                match option_value(short, prog, short_active) {
                    Some((flag, Some(value), form)) => {
                        args[i] = format!("-{flag}={}", redact_value(value, form, depth));
                    }
                    Some((_, None, form)) => pending = Pending::Value(form),
                    None => args[i] = redact_text(&arg),
                }
            }
            i += 1;
            continue;
        }
        if prog.after == Some(arg.as_str()) {
            short_active = true;
        }
        if prog.then_command {
            redact_command(&mut args[i..], depth);
            break;
        }
        positionals.push(i);
        args[i] = if prog.remote_shell && depth < MAX_DEPTH {
            redact_shell(&arg, depth + 1)
        } else {
            redact_text(&arg)
        };
        i += 1;
    }
    redact_positionals(args, name, &positionals, &clusters);
}

/// A short option of `prog` that carries a secret: the option letters
/// before the value, the glued value if any, and its form.
fn short_option<'a>(
    short: &'a str,
    prog: &Program,
    active: bool,
) -> Option<(&'a str, Option<&'a str>, Form)> {
    if !active {
        return None;
    }
    let first = short.chars().next()?;
    for &(letter, attached, form) in prog.short {
        match attached {
            Attached::InCluster => {
                if short.contains(letter) && short.chars().all(|c| c.is_ascii_alphabetic()) {
                    return Some((short, None, form));
                }
            }
            _ if first != letter => {}
            Attached::Never => {
                if short.len() == 1 {
                    return Some((short, None, form));
                }
            }
            Attached::Only => {
                return (short.len() > 1).then(|| (&short[..1], Some(&short[1..]), form));
            }
            Attached::Either => {
                let glued = (short.len() > 1).then(|| &short[1..]);
                return Some((&short[..1], glued, form));
            }
        }
    }
    None
}

/// A long option (without its dashes) that carries a secret: its name, the
/// `=` value if any, and the value's form. None when it carries none, or
/// takes no separate value and has none.
fn option_value<'a>(
    option: &'a str,
    prog: &Program,
    active: bool,
) -> Option<(&'a str, Option<&'a str>, Form)> {
    let (flag, value) = match option.split_once('=') {
        Some((f, v)) => (f, Some(v)),
        None => (option, None),
    };
    // A value that starts with dashes (a key block, `-----BEGIN`) is no option.
    if !flag.starts_with(|c: char| c.is_ascii_alphabetic())
        || !flag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return None;
    }
    let special = prog.long.iter().find(|(n, _)| active && *n == flag);
    let form = if let Some(&(_, form)) = special {
        form
    } else if is_credential_name(flag) && !prog.not_secret.contains(&flag) {
        // A single-dash `-auth` could be a cluster of letters to a C tool,
        // but a Go-style credential option is the likelier reading.
        if value.is_none() && (prog.bare.contains(&flag) || BOOLEAN.contains(&flag)) {
            return None;
        }
        Form::Whole
    } else {
        return None;
    };
    Some((flag, value, form))
}

/// Credential-named options that are switches everywhere.
const BOOLEAN: &[&str] = &[
    "pass-credentials",
    "with-token",
    "ask-password",
    "askpass",
    "no-password",
    "password-prompt",
];

fn redact_value(value: &str, form: Form, depth: usize) -> String {
    match form {
        Form::Whole => REDACTED.to_string(),
        Form::AfterColon => match value.split_once(':') {
            Some((user, _)) => format!("{user}:{REDACTED}"),
            None => redact_text(value),
        },
        Form::AfterPercent => match value.split_once('%') {
            Some((user, _)) => format!("{user}%{REDACTED}"),
            None => redact_text(value),
        },
        Form::Header => match value.split_once(':') {
            Some((header, v)) if is_credential_header(header.trim()) => {
                format!("{header}:{}", redact_header_value(v))
            }
            _ => redact_text(value),
        },
        Form::Cookie if value.contains('=') => cookie_pair()
            .replace_all(value, |c: &Captures| format!("{}={REDACTED}", &c[1]))
            .into_owned(),
        Form::Cookie => value.to_string(),
        Form::OpensslPass => match value.strip_prefix("pass:") {
            Some(_) => format!("pass:{REDACTED}"),
            None => value.to_string(),
        },
        Form::Shell if depth < MAX_DEPTH => redact_shell(value, depth + 1),
        Form::Shell => redact_text(value),
    }
}

/// ` Bearer X` -> ` Bearer <redacted>`: the scheme stays, it says what kind
/// of credential went by.
fn redact_header_value(value: &str) -> String {
    let lead = &value[..value.len() - value.trim_start().len()];
    let rest = value.trim_start();
    match rest.split_once(' ') {
        Some((scheme, _)) if AUTH_SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()) => {
            format!("{lead}{scheme} {REDACTED}")
        }
        _ => format!("{lead}{REDACTED}"),
    }
}

const AUTH_SCHEMES: &[&str] = &[
    "basic",
    "bearer",
    "token",
    "digest",
    "negotiate",
    "ntlm",
    "apikey",
    "sso-key",
    "aws4-hmac-sha256",
    "hoba",
    "mutual",
    "splunk",
    "dpop",
];

/// Headers that carry a credential although their name may not say so.
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "private-token",
    "job-token",
    "deploy-token",
    "x-api-key",
    "api-key",
    "apikey",
    "x-auth-token",
    "x-auth-key",
    "x-vault-token",
    "x-consul-token",
    "x-nomad-token",
    "x-registry-auth",
    "x-goog-api-key",
    "x-functions-key",
    "ocp-apim-subscription-key",
    "x-amz-security-token",
    "circle-token",
    "travis-api-token",
    "x-jfrog-art-api",
    "x-figma-token",
    "dd-api-key",
    "dd-application-key",
];

fn is_credential_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    CREDENTIAL_HEADERS.contains(&lower.as_str()) || is_credential_name(&lower)
}

/// Whether an option, key or variable name says its value is a credential:
/// `password`, `db_password`, `api-key`, `clientSecret`, `_authToken`,
/// `X-Amz-Signature`, but not `password-file`, `token-ttl`, `author`,
/// `aws_access_key_id` (a key id names a key), `bypass`.
pub fn is_credential_name(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "pass",
        "auth",
        "sig",
        "signature",
        "credential",
        "credentials",
        "creds",
    ];
    const ENDS: &[&str] = &[
        "password",
        "passwd",
        "passphrase",
        "passwort",
        "secret",
        "token",
        "apikey",
        "accesskey",
        "secretkey",
        "privatekey",
        "accountkey",
        "masterkey",
        "signingkey",
        "sessionkey",
        "unsealkey",
    ];
    const KEY_OWNERS: &[&str] = &[
        "api",
        "access",
        "secret",
        "private",
        "account",
        "master",
        "signing",
        "encryption",
        "shared",
        "storage",
        "subscription",
        "session",
        "unseal",
        "license",
    ];
    // The value points at the secret or tunes its handling, it is not it.
    const NOT_A_VALUE: &[&str] = &[
        "file", "path", "stdin", "env", "prompt", "cmd", "command", "helper", "type", "mode",
        "method", "length", "ttl", "version", "policy", "name", "dir", "url", "endpoint",
        "enabled", "disabled", "required", "expiry", "expires", "header", "source", "ref", "store",
        "id", "ids", "arn", "role", "rotation",
    ];
    let lower = name.trim_start_matches('-').to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let Some(last) = words.last() else {
        return false;
    };
    // `secret_id` (Vault AppRole) is the secret half of a login, unlike `key_id`.
    if words == ["secret", "id"] {
        return true;
    }
    if words[0] == "no"
        || (words.len() > 1 && NOT_A_VALUE.contains(last))
        || last.ends_with("keyid")
    {
        return false;
    }
    // `auth`, `pass`, `sig` name a secret only as the last word:
    // `basic_auth=X` is one, `auth.database=shop` is not.
    EXACT.contains(last)
        || words.iter().enumerate().any(|(i, w)| {
            // `MYSQL_PWD` is one, `PWD` is the working directory.
            (*w == "pwd" && words.len() > 1)
                || ENDS.iter().any(|e| w.ends_with(e))
                || (*w == "key" && i > 0 && KEY_OWNERS.contains(&words[i - 1]))
        })
}

/// Keyword positions: the value after a credential name or command word.
fn redact_positionals(args: &mut [String], name: &str, pos: &[usize], clusters: &str) {
    let word = |k: usize| pos.get(k).map(|&i| args[i].as_str());
    let mut secret: Vec<usize> = Vec::new();
    for k in 0..pos.len() {
        match word(k) {
            // aws configure set, npm/yarn/pnpm config set, and the like.
            Some("set") if word(k + 1).is_some_and(is_credential_name) => {
                secret.extend(pos.get(k + 2))
            }
            Some("config")
                if name == "git" && k == 0 && word(1).is_some_and(is_credential_name) =>
            {
                secret.extend(pos.get(2))
            }
            Some("login") if name == "vault" => {
                if let Some(&i) = pos.get(k + 1).filter(|&&i| !args[i].contains('=')) {
                    secret.push(i)
                }
            }
            Some("unseal") if name == "vault" => secret.extend(pos.get(k + 1)),
            _ => {}
        }
    }
    // htpasswd -b [-c] file user password, htpasswd -nb user password.
    if name == "htpasswd" && clusters.contains('b') {
        secret.extend(pos.get(if clusters.contains('n') { 1 } else { 2 }));
    }
    for i in secret {
        args[i] = REDACTED.to_string();
    }
}

/// The secrets anywhere inside one argument (rule 4 of the module documentation).
fn redact_text(text: &str) -> String {
    let mut out = text.to_string();
    for shape in token_shapes::shapes() {
        for r in shape.find_all(&out).into_iter().rev() {
            out.replace_range(r, REDACTED);
        }
    }
    out = token_shapes::url_userinfo()
        .replace_all(&out, |c: &Captures| {
            format!("{}://{}:{REDACTED}@", &c[1], &c[2])
        })
        .into_owned();
    out = header_in_text()
        .replace_all(&out, |c: &Captures| {
            if is_credential_header(&c[2]) {
                format!("{}{}:{}", &c[1], &c[2], redact_header_value(&c[3]))
            } else {
                c[0].to_string()
            }
        })
        .into_owned();
    out = redact_pairs(&out);
    out = json_pair()
        .replace_all(&out, |c: &Captures| {
            if is_credential_name(&c[2]) {
                format!("{}\"{REDACTED}\"", &c[1])
            } else {
                c[0].to_string()
            }
        })
        .into_owned();
    out
}

/// `password=X`, `db.password=X`, `a=1,auth.password=X`, `-o user=u,password=X`,
/// `host=h password='x y'`: an argument that is one pair keeps nothing of its
/// value (a password may hold `,` or `;`); pairs in a list (another `name=`
/// follows a separator) end at the separator.
fn redact_pairs(text: &str) -> String {
    if let Some((name, value)) = text.split_once('=') {
        if !name.is_empty()
            && !name.contains(char::is_whitespace)
            && !name.starts_with('-')
            && !value.is_empty()
            && is_credential_name(name)
            && value != REDACTED
            && !next_pair().is_match(value)
        {
            return format!("{name}={REDACTED}");
        }
    }
    pair_in_text()
        .replace_all(text, |c: &Captures| {
            if is_credential_name(&c[2]) && &c[3] != REDACTED {
                format!("{}{}={REDACTED}", &c[1], &c[2])
            } else {
                c[0].to_string()
            }
        })
        .into_owned()
}

macro_rules! lazy_regex {
    ($name:ident, $re:expr) => {
        fn $name() -> &'static Regex {
            static RE: OnceLock<Regex> = OnceLock::new();
            RE.get_or_init(|| Regex::new($re).unwrap())
        }
    };
}

lazy_regex!(next_pair, r"[&,;][A-Za-z_][A-Za-z0-9_.]*=");
lazy_regex!(cookie_pair, r"([^=;\s]+)=([^;]*)");
lazy_regex!(
    header_in_text,
    r#"(^|[\s'"=])([A-Za-z][A-Za-z0-9-]*)[ \t]*:([ \t]*\S.*)"#
);
lazy_regex!(
    pair_in_text,
    r#"(^|[\s&;,?'"(=])([A-Za-z_/][A-Za-z0-9_.\-/:@]*)=('[^']*'|"[^"]*"|[^\s&;,'"]+)"#
);
lazy_regex!(
    json_pair,
    r#"("([A-Za-z0-9_.\-]+)"\s*:\s*)"(?:[^"\\]|\\.)*""#
);

/// A word of a shell line and where its text sits in the line.
struct Word {
    text: String,
    span: std::ops::Range<usize>,
}

/// Splits a shell line into commands of words: enough of sh's quoting
/// (`'…'`, `"…"`, `\`) to find arguments, with `;`, `&`, `|`, `(`, `)` and
/// newlines ending a command.
fn shell_commands(line: &str) -> Vec<Vec<Word>> {
    let mut commands = vec![Vec::new()];
    let mut chars = line.char_indices().peekable();
    let mut current: Option<(String, usize)> = None;
    let finish = |current: &mut Option<(String, usize)>, end: usize, cmds: &mut Vec<Vec<Word>>| {
        if let Some((text, start)) = current.take() {
            cmds.last_mut().unwrap().push(Word {
                text,
                span: start..end,
            });
        }
    };
    while let Some((i, c)) = chars.next() {
        match c {
            ' ' | '\t' => finish(&mut current, i, &mut commands),
            ';' | '&' | '|' | '(' | ')' | '\n' => {
                finish(&mut current, i, &mut commands);
                commands.push(Vec::new());
            }
            '\'' => {
                let w = current.get_or_insert_with(|| (String::new(), i));
                for (_, c) in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    w.0.push(c);
                }
            }
            '"' => {
                let w = current.get_or_insert_with(|| (String::new(), i));
                while let Some((_, c)) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' if matches!(chars.peek(), Some((_, '"' | '\\' | '$' | '`'))) => {
                            w.0.push(chars.next().unwrap().1)
                        }
                        c => w.0.push(c),
                    }
                }
            }
            '\\' => {
                let w = current.get_or_insert_with(|| (String::new(), i));
                if let Some((_, c)) = chars.next() {
                    w.0.push(c);
                }
            }
            c => current.get_or_insert_with(|| (String::new(), i)).0.push(c),
        }
    }
    finish(&mut current, line.len(), &mut commands);
    commands.retain(|c| !c.is_empty());
    commands
}

/// Redacts each command of a shell line and rewrites only the words that
/// changed, quoted as they were.
fn redact_shell(line: &str, depth: usize) -> String {
    let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    for words in shell_commands(line) {
        let mut argv: Vec<String> = words.iter().map(|w| w.text.clone()).collect();
        redact_command(&mut argv, depth);
        for (w, new) in words.iter().zip(argv) {
            if new != w.text {
                edits.push((w.span.clone(), requote(&line[w.span.clone()], &new)));
            }
        }
    }
    let mut out = line.to_string();
    for (span, new) in edits.into_iter().rev() {
        out.replace_range(span, &new);
    }
    out
}

fn requote(raw: &str, new: &str) -> String {
    let wrapped = |q: char| raw.len() >= 2 && raw.starts_with(q) && raw.ends_with(q);
    if wrapped('\'') && !new.contains('\'') {
        format!("'{new}'")
    } else if wrapped('"') && !new.contains(['"', '\\', '$', '`']) {
        format!("\"{new}\"")
    } else if new.contains(char::is_whitespace) && !new.contains('\'') {
        format!("'{new}'")
    } else {
        new.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(v: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        redact_args(&mut a);
        a
    }

    /// Command lines as the tools' own manuals write them, and what the
    /// event must show: the secret gone, every other word as it was.
    const REDACTED_LINES: &[(&[&str], &[&str])] = &[
        // mysql(1): "-p[password]: no space between the option and the password".
        (&["mysql", "-uroot", "-pS3cret!", "shop"], &["mysql", "-uroot", "-p<redacted>", "shop"]),
        (&["mysql", "-h", "db.internal", "-u", "app", "--password=S3cret!", "shop"], &["mysql", "-h", "db.internal", "-u", "app", "--password=<redacted>", "shop"]),
        (&["mysqldump", "-u", "backup", "-pS3cret!", "--single-transaction", "shop"], &["mysqldump", "-u", "backup", "-p<redacted>", "--single-transaction", "shop"]),
        (&["mysqladmin", "-u", "root", "-pS3cret!", "status"], &["mysqladmin", "-u", "root", "-p<redacted>", "status"]),
        (&["mariadb", "--user=root", "--password=S3cret!"], &["mariadb", "--user=root", "--password=<redacted>"]),
        (&["mysql", "mysql://app:S3cret!@db.internal:3306/shop"], &["mysql", "mysql://app:<redacted>@db.internal:3306/shop"]),
        // psql(1), pg_dump(1): connection URIs and conninfo strings.
        (&["psql", "postgresql://app:S3cret@db.internal:5432/shop"], &["psql", "postgresql://app:<redacted>@db.internal:5432/shop"]),
        (&["psql", "host=db.internal port=5432 dbname=shop user=app password=S3cret"], &["psql", "host=db.internal port=5432 dbname=shop user=app password=<redacted>"]),
        (&["pg_dump", "--dbname=postgres://app:S3cret@db.internal/shop", "-Fc", "-f", "shop.dump"], &["pg_dump", "--dbname=postgres://app:<redacted>@db.internal/shop", "-Fc", "-f", "shop.dump"]),
        (&["pg_basebackup", "-d", "postgres://replicator:S3cret@primary/postgres", "-D", "/var/lib/pg"], &["pg_basebackup", "-d", "postgres://replicator:<redacted>@primary/postgres", "-D", "/var/lib/pg"]),
        // redis-cli(1): -a <password>, URIs.
        (&["redis-cli", "-h", "cache", "-a", "S3cret", "ping"], &["redis-cli", "-h", "cache", "-a", "<redacted>", "ping"]),
        (&["redis-cli", "-aS3cret", "--no-auth-warning", "info"], &["redis-cli", "-a<redacted>", "--no-auth-warning", "info"]),
        (&["redis-cli", "-u", "redis://:S3cret@cache:6379/0", "ping"], &["redis-cli", "-u", "redis://:<redacted>@cache:6379/0", "ping"]),
        (&["redis-cli", "--user", "app", "--pass", "S3cret", "ping"], &["redis-cli", "--user", "app", "--pass", "<redacted>", "ping"]),
        // curl(1): -u, -H, --header=, --oauth2-bearer, -b, -E, -d.
        (&["curl", "-u", "admin:S3cret", "https://api.example.com/"], &["curl", "-u", "admin:<redacted>", "https://api.example.com/"]),
        (&["curl", "--user=admin:S3cret", "https://api.example.com/"], &["curl", "--user=admin:<redacted>", "https://api.example.com/"]),
        (&["curl", "-uadmin:S3cret", "ftp://ftp.example.com/"], &["curl", "-uadmin:<redacted>", "ftp://ftp.example.com/"]),
        (&["curl", "-H", "Authorization: Bearer abc.def", "https://api.example.com/v1"], &["curl", "-H", "Authorization: Bearer <redacted>", "https://api.example.com/v1"]),
        (&["curl", "--header=Authorization: Basic YWRtaW46czNjcmV0", "https://api.example.com/"], &["curl", "--header=Authorization: Basic <redacted>", "https://api.example.com/"]),
        (&["curl", "--header", "X-Api-Key: 0123abcd", "https://api.example.com/"], &["curl", "--header", "X-Api-Key: <redacted>", "https://api.example.com/"]),
        (&["curl", "-H", "PRIVATE-TOKEN: S3cret", "https://gitlab.example.com/api/v4/projects"], &["curl", "-H", "PRIVATE-TOKEN: <redacted>", "https://gitlab.example.com/api/v4/projects"]),
        (&["curl", "-H", "Cookie: session=S3cret; theme=dark", "https://app.example.com/"], &["curl", "-H", "Cookie: <redacted>", "https://app.example.com/"]),
        (&["curl", "-H", "X-Auth-Token: S3cret", "-H", "Accept: application/json", "https://api.example.com/"], &["curl", "-H", "X-Auth-Token: <redacted>", "-H", "Accept: application/json", "https://api.example.com/"]),
        (&["curl", "--oauth2-bearer", "S3cret", "imap://mail.example.com/"], &["curl", "--oauth2-bearer", "<redacted>", "imap://mail.example.com/"]),
        (&["curl", "-b", "session=S3cret", "https://app.example.com/"], &["curl", "-b", "session=<redacted>", "https://app.example.com/"]),
        (&["curl", "-E", "client.pem:S3cret", "https://mtls.example.com/"], &["curl", "-E", "client.pem:<redacted>", "https://mtls.example.com/"]),
        (&["curl", "-d", "username=u&password=S3cret", "https://app.example.com/login"], &["curl", "-d", "username=u&password=<redacted>", "https://app.example.com/login"]),
        (&["curl", "-d", r#"{"user":"u","password":"S3cret"}"#, "https://app.example.com/login"], &["curl", "-d", r#"{"user":"u","password":"<redacted>"}"#, "https://app.example.com/login"]),
        (&["curl", "https://user:S3cret@example.com/x"], &["curl", "https://user:<redacted>@example.com/x"]),
        (&["curl", "https://api.example.com/v1/items?api_key=S3cret&page=2"], &["curl", "https://api.example.com/v1/items?api_key=<redacted>&page=2"]),
        // wget(1).
        (&["wget", "--user=u", "--password=S3cret", "https://files.example.com/a.tgz"], &["wget", "--user=u", "--password=<redacted>", "https://files.example.com/a.tgz"]),
        (&["wget", "--header=Authorization: Token S3cret", "https://files.example.com/a"], &["wget", "--header=Authorization: Token <redacted>", "https://files.example.com/a"]),
        (&["wget", "--http-password", "S3cret", "https://files.example.com/a"], &["wget", "--http-password", "<redacted>", "https://files.example.com/a"]),
        // aws configure set (the key id names a key: it stays when it is not an AKIA id).
        (&["aws", "configure", "set", "aws_secret_access_key", "wJalrXUtnFEMIK7MDENGbPxRfiCY0123456789ab"], &["aws", "configure", "set", "aws_secret_access_key", "<redacted>"]),
        (&["aws", "configure", "set", "aws_session_token", "IQoJb3JpZ2luX2VjEJr", "--profile", "dev"], &["aws", "configure", "set", "aws_session_token", "<redacted>", "--profile", "dev"]),
        (&["aws", "configure", "set", "default.aws_secret_access_key", "S3cret"], &["aws", "configure", "set", "default.aws_secret_access_key", "<redacted>"]),
        // vault(1).
        (&["vault", "login", "s.S3cretS3cretS3cret"], &["vault", "login", "<redacted>"]),
        (&["vault", "login", "-method=userpass", "username=mitchellh", "password=S3cret"], &["vault", "login", "-method=userpass", "username=mitchellh", "password=<redacted>"]),
        (&["vault", "write", "auth/userpass/users/mitchellh", "password=S3cret", "policies=admins"], &["vault", "write", "auth/userpass/users/mitchellh", "password=<redacted>", "policies=admins"]),
        (&["vault", "write", "auth/approle/login", "role_id=db02de05", "secret_id=6a174c20"], &["vault", "write", "auth/approle/login", "role_id=db02de05", "secret_id=<redacted>"]),
        (&["vault", "kv", "put", "secret/creds", "passcode=my-long-passcode", "db_password=S3cret"], &["vault", "kv", "put", "secret/creds", "passcode=my-long-passcode", "db_password=<redacted>"]),
        (&["vault", "operator", "unseal", "S3cretUnsealKey"], &["vault", "operator", "unseal", "<redacted>"]),
        // docker/podman/helm/az login.
        (&["docker", "login", "-u", "bot", "-p", "S3cret", "registry.example.com"], &["docker", "login", "-u", "bot", "-p", "<redacted>", "registry.example.com"]),
        (&["docker", "login", "--username", "bot", "--password", "S3cret", "ghcr.io"], &["docker", "login", "--username", "bot", "--password", "<redacted>", "ghcr.io"]),
        (&["podman", "login", "-u", "bot", "-p", "S3cret", "quay.io"], &["podman", "login", "-u", "bot", "-p", "<redacted>", "quay.io"]),
        (&["helm", "registry", "login", "registry.example.com", "-u", "bot", "-p", "S3cret"], &["helm", "registry", "login", "registry.example.com", "-u", "bot", "-p", "<redacted>"]),
        (&["helm", "repo", "add", "--username", "bot", "--password", "S3cret", "charts", "https://charts.example.com"], &["helm", "repo", "add", "--username", "bot", "--password", "<redacted>", "charts", "https://charts.example.com"]),
        (&["helm", "install", "db", "bitnami/postgresql", "--set", "auth.postgresPassword=S3cret,auth.database=shop"], &["helm", "install", "db", "bitnami/postgresql", "--set", "auth.postgresPassword=<redacted>,auth.database=shop"]),
        (&["az", "login", "--service-principal", "-u", "http://app", "-p", "S3cret", "--tenant", "contoso.com"], &["az", "login", "--service-principal", "-u", "http://app", "-p", "<redacted>", "--tenant", "contoso.com"]),
        (&["az", "storage", "blob", "list", "--account-name", "acct", "--account-key", "S3cret=="], &["az", "storage", "blob", "list", "--account-name", "acct", "--account-key", "<redacted>"]),
        (&["az", "storage", "container", "list", "--connection-string", "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=S3cret==;EndpointSuffix=core.windows.net"], &["az", "storage", "container", "list", "--connection-string", "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=<redacted>;EndpointSuffix=core.windows.net"]),
        // kubectl(1).
        (&["kubectl", "--token", "S3cret", "get", "pods"], &["kubectl", "--token", "<redacted>", "get", "pods"]),
        (&["kubectl", "--token=S3cret", "get", "pods"], &["kubectl", "--token=<redacted>", "get", "pods"]),
        (&["kubectl", "config", "set-credentials", "admin", "--username=admin", "--password=S3cret"], &["kubectl", "config", "set-credentials", "admin", "--username=admin", "--password=<redacted>"]),
        (&["kubectl", "create", "secret", "generic", "db", "--from-literal=username=app", "--from-literal=password=S3cret"], &["kubectl", "create", "secret", "generic", "db", "--from-literal=username=app", "--from-literal=password=<redacted>"]),
        (&["kubectl", "create", "secret", "docker-registry", "regcred", "--docker-server=ghcr.io", "--docker-username=bot", "--docker-password=S3cret"], &["kubectl", "create", "secret", "docker-registry", "regcred", "--docker-server=ghcr.io", "--docker-username=bot", "--docker-password=<redacted>"]),
        // htpasswd(1), sshpass(1), openssl(1), keytool, ldapsearch, smbclient.
        (&["htpasswd", "-b", "/etc/nginx/.htpasswd", "alice", "S3cret"], &["htpasswd", "-b", "/etc/nginx/.htpasswd", "alice", "<redacted>"]),
        (&["htpasswd", "-cbB", "/etc/nginx/.htpasswd", "alice", "S3cret"], &["htpasswd", "-cbB", "/etc/nginx/.htpasswd", "alice", "<redacted>"]),
        (&["htpasswd", "-nb", "alice", "S3cret"], &["htpasswd", "-nb", "alice", "<redacted>"]),
        (&["sshpass", "-p", "S3cret", "ssh", "-p", "2222", "deploy@host"], &["sshpass", "-p", "<redacted>", "ssh", "-p", "2222", "deploy@host"]),
        (&["sshpass", "-pS3cret", "scp", "a.txt", "host:/tmp"], &["sshpass", "-p<redacted>", "scp", "a.txt", "host:/tmp"]),
        (&["openssl", "pkcs12", "-export", "-in", "c.pem", "-inkey", "k.pem", "-out", "c.p12", "-passout", "pass:S3cret"], &["openssl", "pkcs12", "-export", "-in", "c.pem", "-inkey", "k.pem", "-out", "c.p12", "-passout", "pass:<redacted>"]),
        (&["openssl", "rsa", "-in", "k.pem", "-passin", "pass:S3cret", "-out", "plain.pem"], &["openssl", "rsa", "-in", "k.pem", "-passin", "pass:<redacted>", "-out", "plain.pem"]),
        (&["openssl", "enc", "-aes-256-cbc", "-salt", "-in", "f", "-out", "f.enc", "-k", "S3cret"], &["openssl", "enc", "-aes-256-cbc", "-salt", "-in", "f", "-out", "f.enc", "-k", "<redacted>"]),
        (&["keytool", "-importkeystore", "-srckeystore", "a.p12", "-srcstorepass", "S3cret", "-deststorepass", "S3cret2"], &["keytool", "-importkeystore", "-srckeystore", "a.p12", "-srcstorepass", "<redacted>", "-deststorepass", "<redacted>"]),
        (&["ldapsearch", "-x", "-D", "cn=admin,dc=example,dc=com", "-w", "S3cret", "-b", "dc=example,dc=com"], &["ldapsearch", "-x", "-D", "cn=admin,dc=example,dc=com", "-w", "<redacted>", "-b", "dc=example,dc=com"]),
        (&["smbclient", "//server/share", "-U", "alice%S3cret"], &["smbclient", "//server/share", "-U", "alice%<redacted>"]),
        (&["mount", "-t", "cifs", "//server/share", "/mnt", "-o", "username=alice,password=S3cret,uid=1000"], &["mount", "-t", "cifs", "//server/share", "/mnt", "-o", "username=alice,password=<redacted>,uid=1000"]),
        // git, npm, gh, terraform, gcloud.
        (&["git", "clone", "https://oauth2:S3cret@gitlab.example.com/group/repo.git"], &["git", "clone", "https://oauth2:<redacted>@gitlab.example.com/group/repo.git"]),
        (&["git", "-c", "http.extraHeader=Authorization: Basic S3cret", "clone", "https://example.com/r.git"], &["git", "-c", "http.extraHeader=Authorization: Basic <redacted>", "clone", "https://example.com/r.git"]),
        (&["git", "config", "--global", "user.password", "S3cret"], &["git", "config", "--global", "user.password", "<redacted>"]),
        (&["npm", "config", "set", "//registry.npmjs.org/:_authToken", "S3cret"], &["npm", "config", "set", "//registry.npmjs.org/:_authToken", "<redacted>"]),
        (&["npm", "config", "set", "//npm.example.com/:_authToken=S3cret"], &["npm", "config", "set", "//npm.example.com/:_authToken=<redacted>"]),
        (&["gh", "secret", "set", "DEPLOY_KEY", "--body", "S3cret"], &["gh", "secret", "set", "DEPLOY_KEY", "--body", "<redacted>"]),
        (&["terraform", "apply", "-var", "db_password=S3cret", "-var", "region=eu-west-1"], &["terraform", "apply", "-var", "db_password=<redacted>", "-var", "region=eu-west-1"]),
        (&["terraform", "plan", "-var=api_token=S3cret"], &["terraform", "plan", "-var=api_token=<redacted>"]),
        (&["gcloud", "sql", "users", "set-password", "root", "--host=%", "--instance=db", "--password=S3cret"], &["gcloud", "sql", "users", "set-password", "root", "--host=%", "--instance=db", "--password=<redacted>"]),
        // Generic credential-named options, values starting with `-`.
        (&["cli", "--api-key=abc123", "--token", "t0k", "--verbose"], &["cli", "--api-key=<redacted>", "--token", "<redacted>", "--verbose"]),
        (&["app", "--password", "-dash-start", "--client-secret", "S3cret"], &["app", "--password", "<redacted>", "--client-secret", "<redacted>"]),
        (&["consul", "members", "-token=S3cret"], &["consul", "members", "-token=<redacted>"]),
        (&["mongosh", "mongodb://admin:S3cret@mongo:27017/admin"], &["mongosh", "mongodb://admin:<redacted>@mongo:27017/admin"]),
        (&["mongodump", "-u", "admin", "-p", "S3cret", "--authenticationDatabase", "admin"], &["mongodump", "-u", "admin", "-p", "<redacted>", "--authenticationDatabase", "admin"]),
        // Wrappers and shell strings: the secret goes, the script stays.
        (&["sh", "-c", "tool --password S3cret --verbose"], &["sh", "-c", "tool --password <redacted> --verbose"]),
        (&["bash", "-lc", "mysql -uroot -pS3cret shop < dump.sql && echo done"], &["bash", "-lc", "mysql -uroot -p<redacted> shop < dump.sql && echo done"]),
        (&["/bin/sh", "-c", "curl -H 'Authorization: Bearer S3cret' https://api.example.com | jq ."], &["/bin/sh", "-c", "curl -H 'Authorization: Bearer <redacted>' https://api.example.com | jq ."]),
        (&["su", "-", "postgres", "-c", "PGPASSWORD=S3cret psql -h db -U app"], &["su", "-", "postgres", "-c", "PGPASSWORD=<redacted> psql -h db -U app"]),
        (&["sudo", "-u", "app", "redis-cli", "-a", "S3cret", "ping"], &["sudo", "-u", "app", "redis-cli", "-a", "<redacted>", "ping"]),
        (&["env", "MYSQL_PWD=S3cret", "mysql", "-u", "root"], &["env", "MYSQL_PWD=<redacted>", "mysql", "-u", "root"]),
        (&["kubectl", "exec", "db-0", "--", "sh", "-c", "mysql -uroot -p\"S3cret\" -e 'show databases'"], &["kubectl", "exec", "db-0", "--", "sh", "-c", "mysql -uroot -p<redacted> -e 'show databases'"]),
        (&["ssh", "deploy@host", "redis-cli -a S3cret flushall"], &["ssh", "deploy@host", "redis-cli -a <redacted> flushall"]),
    ];

    #[test]
    fn credentials_in_real_command_lines_are_redacted_and_the_rest_stays() {
        assert!(REDACTED_LINES.len() >= 60);
        let mut failures = Vec::new();
        for (input, expected) in REDACTED_LINES {
            let mut got: Vec<String> = input.iter().map(|s| s.to_string()).collect();
            let changed = redact_args(&mut got);
            let leaked = got.iter().any(|a| a.contains("S3cret"));
            if got != *expected || !changed || leaked {
                failures.push(format!("{input:?}\n   got {got:?}\n  want {expected:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// Command lines with nothing secret: they must come out untouched.
    const UNTOUCHED_LINES: &[&[&str]] = &[
        &["ssh", "-p", "2222", "deploy@host"],
        &["scp", "-P", "2222", "a.txt", "host:/tmp"],
        &["ls", "-la", "/tmp"],
        &["grep", "-r", "password", "src/"],
        &["git", "log", "--author=x"],
        &["tar", "-czf", "x.tgz", "dir"],
        &["kubectl", "get", "secret", "mysecret", "-o", "yaml"],
        &["mysql", "-u", "root", "-p"],
        &["mysql", "-u", "root", "-p", "shop"],
        &["mysql", "--password", "shop"],
        &["psql", "-h", "db", "-p", "5432", "-U", "app", "-W", "shop"],
        &["pg_dump", "-h", "db", "-p", "5432", "--password", "shop"],
        &["docker", "run", "-p", "8080:80", "-u", "1000:1000", "nginx"],
        &[
            "docker",
            "login",
            "--username",
            "bot",
            "--password-stdin",
            "ghcr.io",
        ],
        &[
            "docker",
            "build",
            "--secret",
            "id=npmrc,src=/root/.npmrc",
            ".",
        ],
        &["gh", "auth", "login", "--with-token"],
        &["gh", "pr", "create", "--body", "fixes the flaky test"],
        &[
            "helm",
            "repo",
            "add",
            "--pass-credentials",
            "charts",
            "https://charts.example.com",
        ],
        &["aws", "configure", "set", "aws_access_key_id", "test"],
        &["aws", "configure", "set", "region", "eu-west-1"],
        &["openssl", "rsa", "-in", "k.pem", "-passin", "env:KEY_PASS"],
        &["openssl", "req", "-new", "-key", "k.pem", "-out", "r.csr"],
        &["curl", "-u", "admin", "https://api.example.com/"],
        &[
            "curl",
            "-H",
            "Accept: application/json",
            "https://api.example.com/",
        ],
        &["curl", "-b", "cookies.txt", "https://app.example.com/"],
        &["mkdir", "-p", "/var/lib/app"],
        &["cp", "-p", "a", "b"],
        &["git", "config", "credential.helper", "store"],
        &[
            "gcloud",
            "auth",
            "activate-service-account",
            "--key-file=/etc/sa.json",
        ],
        &["vault", "token", "lookup"],
        &["kubectl", "--token-file", "/var/run/token", "get", "pods"],
        &[
            "app",
            "--password-file",
            "/run/secrets/db",
            "--bypass-cache",
            "x",
        ],
        &["bash", "-c", "echo hello && ls -la"],
        &["env", "PWD=/home/app", "HOME=/home/app", "make"],
        &["redis-cli", "-h", "cache", "ping"],
        &["rsync", "-a", "src/", "host:dst/"],
        &["find", "/", "-name", "*token*", "-type", "f"],
    ];

    #[test]
    fn command_lines_without_credentials_stay_untouched() {
        for input in UNTOUCHED_LINES {
            let mut got: Vec<String> = input.iter().map(|s| s.to_string()).collect();
            assert!(!redact_args(&mut got), "changed: {got:?}");
            assert_eq!(got, *input);
        }
    }

    /// Tokens are assembled at run time so that none sits in the source.
    fn body(len: usize) -> String {
        const ALPHABET: &[u8] = b"FakeTstVau0123456789bcdfghjkmnopqrwxyzABCDEGHIJKLMNOPQRSUWXYZ";
        (0..len)
            .map(|i| ALPHABET[(i * 7 + 3) % ALPHABET.len()] as char)
            .collect()
    }

    #[test]
    fn token_shapes_are_redacted_anywhere_in_an_argument() {
        let upper: String = body(16).to_ascii_uppercase();
        let tokens = [
            format!("AKIA{upper}"),
            format!("hvs.{}", body(24)),
            format!("xoxb-{}", body(24)),
            format!("sk_live_{}", body(24)),
            format!("rk_live_{}", body(24)),
            format!("ghp_{}", body(36)),
            format!("github_pat_{}", body(40)),
            format!("glpat-{}", body(20)),
            format!("sk-{}", body(48)),
            format!("sk-ant-{}", body(40)),
            format!("AIza{}", body(35)),
            format!("eyJ{}.eyJ{}.{}", body(12), body(12), body(20)),
        ];
        for t in &tokens {
            assert_eq!(r(&["echo", t]), ["echo", "<redacted>"], "{t}");
            assert_eq!(
                r(&["app", &format!("--config=x,{t},y")]),
                ["app", "--config=x,<redacted>,y"],
                "{t}"
            );
            assert_eq!(
                r(&["sh", "-c", &format!("deploy {t} now")]),
                ["sh", "-c", "deploy <redacted> now"],
                "{t}"
            );
        }
        let key = format!(
            "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----",
            body(64)
        );
        assert_eq!(
            r(&["app", "--ssh-key-data", &key, "-v"]),
            ["app", "--ssh-key-data", "<redacted>", "-v"]
        );
        assert_eq!(
            r(&[
                "git",
                "clone",
                &format!("https://{}@github.com/o/r.git", tokens[5])
            ]),
            ["git", "clone", "https://<redacted>@github.com/o/r.git"]
        );
    }

    #[test]
    fn credential_names_and_lookalikes() {
        for name in [
            "password",
            "--db-password",
            "clientSecret",
            "_authToken",
            "X-Amz-Signature",
            "api_key",
            "aws_secret_access_key",
            "secret_id",
            "auth",
        ] {
            assert!(is_credential_name(name), "{name}");
        }
        for name in [
            "author",
            "password-file",
            "token-ttl",
            "aws_access_key_id",
            "bypass",
            "compass",
            "no-auth",
            "auth.database",
            "auth-type",
            "client_id",
            "key",
            "PWD",
        ] {
            assert!(!is_credential_name(name), "{name}");
        }
    }
}
