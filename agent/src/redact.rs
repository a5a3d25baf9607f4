//! Redaction of credentials passed on command lines.
//!
//! argv is world-readable in /proc, so tools still put passwords there. The
//! event keeps the shape of the command line and drops the value.

use std::sync::OnceLock;

use regex::Regex;

pub const REDACTED: &str = "<redacted>";

fn sensitive_name() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?i)(pass(word|wd|phrase)?|secret|token|api[-_]?key|access[-_]?key|private[-_]?key|credential|auth)",
        )
        .unwrap()
    })
}

/// Values that are credentials whatever flag precedes them.
fn credential_value() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(concat!(
            r"(AKIA|ASIA)[A-Z0-9]{16}",
            r"|gh[pousr]_[A-Za-z0-9]{36,}",
            r"|github_pat_[A-Za-z0-9_]{40,}",
            r"|glpat-[A-Za-z0-9_-]{20,}",
            r"|xox[abprs]-[A-Za-z0-9-]{10,}",
            r"|sk_live_[A-Za-z0-9]{16,}",
            r"|sk-[A-Za-z0-9_-]{20,}",
            r"|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}",
            r"|://[^/\s:@]+:[^/\s@]+@",
        ))
        .unwrap()
    })
}

/// Redacts `--password=x`, `--token x`, `-p x` style arguments and any
/// argument containing a well-known credential format.
pub fn redact_args(args: &mut [String]) {
    let mut redact_next = false;
    for arg in args.iter_mut() {
        if redact_next {
            redact_next = false;
            if !arg.starts_with('-') {
                *arg = REDACTED.to_string();
                continue;
            }
        }
        if let Some((name, _)) = arg.split_once('=') {
            if sensitive_name().is_match(name) {
                *arg = format!("{name}={REDACTED}");
                continue;
            }
        } else if arg.starts_with('-') && (sensitive_name().is_match(arg) || arg == "-p") {
            redact_next = true;
            continue;
        }
        if credential_value().is_match(arg) {
            *arg = REDACTED.to_string();
        }
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

    #[test]
    fn redacts_values_not_shape() {
        assert_eq!(
            r(&["mysql", "-u", "root", "-p", "hunter2", "db"]),
            ["mysql", "-u", "root", "-p", "<redacted>", "db"]
        );
        assert_eq!(
            r(&["cli", "--api-key=abc123", "--token", "t0k", "--verbose"]),
            [
                "cli",
                "--api-key=<redacted>",
                "--token",
                "<redacted>",
                "--verbose"
            ]
        );
        assert_eq!(
            r(&["curl", "https://user:pw@example.invalid/x"]),
            ["curl", "<redacted>"]
        );
        assert_eq!(r(&["echo", "AKIAABCDEFGHIJKLMNOP"]), ["echo", "<redacted>"]);
        assert_eq!(r(&["ls", "-la", "/tmp"]), ["ls", "-la", "/tmp"]);
    }
}
