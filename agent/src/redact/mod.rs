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

use std::{borrow::Cow, sync::OnceLock};

use regex::{Captures, Regex, Replacer};

use crate::token_shapes;

mod programs;
mod shell;
#[cfg(test)]
mod tests;

use programs::*;
use shell::*;

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
    let mut candidates = token_shapes::candidates(&out);
    for shape in token_shapes::shapes() {
        if !candidates.matched(shape.index()) {
            continue;
        }
        let found = shape.find_all(&out);
        for r in found.iter().rev() {
            out.replace_range(r.clone(), REDACTED);
        }
        // A redaction can end a word and so put a later token at a boundary.
        if !found.is_empty() {
            candidates = token_shapes::candidates(&out);
        }
    }
    replace_in(&mut out, token_shapes::url_userinfo(), |c: &Captures| {
        format!("{}://{}:{REDACTED}@", &c[1], &c[2])
    });
    replace_in(&mut out, header_in_text(), |c: &Captures| {
        if is_credential_header(&c[2]) {
            format!("{}{}:{}", &c[1], &c[2], redact_header_value(&c[3]))
        } else {
            c[0].to_string()
        }
    });
    if let Some(pairs) = redact_pairs(&out) {
        out = pairs;
    }
    replace_in(&mut out, json_pair(), |c: &Captures| {
        if is_credential_name(&c[2]) {
            format!("{}\"{REDACTED}\"", &c[1])
        } else {
            c[0].to_string()
        }
    });
    out
}

/// `password=X`, `db.password=X`, `a=1,auth.password=X`, `-o user=u,password=X`,
/// `host=h password='x y'`: an argument that is one pair keeps nothing of its
/// value (a password may hold `,` or `;`); pairs in a list (another `name=`
/// follows a separator) end at the separator.
/// `text` with its credential pairs redacted; `None` when it has none (most
/// arguments: no copy is made for them).
fn redact_pairs(text: &str) -> Option<String> {
    if let Some((name, value)) = text.split_once('=') {
        if !name.is_empty()
            && !name.contains(char::is_whitespace)
            && !name.starts_with('-')
            && !value.is_empty()
            && is_credential_name(name)
            && value != REDACTED
            && !next_pair().is_match(value)
        {
            return Some(format!("{name}={REDACTED}"));
        }
    }
    let replaced = pair_in_text().replace_all(text, |c: &Captures| {
        if is_credential_name(&c[2]) && &c[3] != REDACTED {
            format!("{}{}={REDACTED}", &c[1], &c[2])
        } else {
            c[0].to_string()
        }
    });
    match replaced {
        Cow::Owned(s) => Some(s),
        Cow::Borrowed(_) => None,
    }
}

/// Replaces `re`'s matches in `out`; most arguments have none, and then
/// nothing is copied.
fn replace_in(out: &mut String, re: &Regex, rep: impl Replacer) {
    if let Cow::Owned(s) = re.replace_all(out, rep) {
        *out = s;
    }
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
