//! What a guest of `cargo xtask vm-test` prints on its serial console, and how
//! the host reads it back. Shared by the host side (xtask) and the guest
//! driver (`vm-guest`), so both agree on the scenario list and line format.

/// `PROCTOR-VM-RESULT <scenario> PASS|FAIL <detail>`
pub const RESULT: &str = "PROCTOR-VM-RESULT";
/// `PROCTOR-VM-DONE <passed> <failed>`: the driver finished every scenario.
pub const DONE: &str = "PROCTOR-VM-DONE";

/// Every scenario a guest runs, in order. The host requires a PASS line for
/// each: a scenario that never reported is a failure, not a skip.
pub const SCENARIOS: &[&str] = &[
    "doctor",
    "agent-start",
    "hook-selection",
    "exec-sha256",
    "script",
    "memfd",
    "secret-read",
    "secret-replay",
    "net-connect",
    "attest",
    "enforce-kill",
    "no-secret-leak",
];

/// What guests of another architecture run by default (emulating a whole
/// arm64 machine is slow): the agent loads, picks its hooks, each hook kind
/// fires (an exec event, a secret read), and attestation answers.
/// `cargo xtask vm-test --all` runs every scenario there too.
pub const LOAD_AND_ATTEST: &[&str] = &[
    "doctor",
    "agent-start",
    "hook-selection",
    "exec-sha256",
    "secret-read",
    "net-connect",
    "attest",
];

/// The scenarios the kernel command line asks for (`proctor.scenarios=a,b`),
/// every one when it names none. Unknown names are kept: the host then
/// reports them missing rather than the guest silently running less.
/// Only the guest driver calls it.
#[allow(dead_code)]
pub fn selected(cmdline: &str) -> Vec<String> {
    match cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("proctor.scenarios="))
    {
        Some(list) => list.split(',').map(str::to_string).collect(),
        None => SCENARIOS.iter().map(|s| s.to_string()).collect(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub scenario: String,
    pub pass: bool,
    pub detail: String,
}

impl Outcome {
    /// One console line; the detail is flattened so the line stays one line.
    pub fn line(&self) -> String {
        let detail: String = self
            .detail
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        format!(
            "{RESULT} {} {} {}",
            self.scenario,
            if self.pass { "PASS" } else { "FAIL" },
            detail
        )
    }

    /// Parses a console line (serial consoles add `\r`, kernels may print
    /// before it on the same line: the marker is searched, not anchored).
    pub fn parse(line: &str) -> Option<Outcome> {
        let rest = &line[line.find(RESULT)? + RESULT.len()..];
        let mut parts = rest.trim().splitn(3, ' ');
        let scenario = parts.next()?.to_string();
        let pass = match parts.next()? {
            "PASS" => true,
            "FAIL" => false,
            _ => return None,
        };
        let detail = parts.next().unwrap_or("").trim().to_string();
        Some(Outcome {
            scenario,
            pass,
            detail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_round_trip() {
        let o = Outcome {
            scenario: "exec-sha256".into(),
            pass: false,
            detail: "want abc\ngot def".into(),
        };
        let line = o.line();
        assert!(!line.contains('\n'));
        let back = Outcome::parse(&format!("[  3.1] {line}\r")).unwrap();
        assert_eq!(back.scenario, "exec-sha256");
        assert!(!back.pass);
        assert_eq!(back.detail, "want abc got def");
        assert_eq!(Outcome::parse("PROCTOR-VM-RESULT x MAYBE y"), None);
        assert_eq!(Outcome::parse("unrelated"), None);
    }

    #[test]
    fn the_command_line_selects_scenarios() {
        assert_eq!(selected("quiet proctor.hooks=lsm").len(), SCENARIOS.len());
        assert_eq!(
            selected("quiet proctor.scenarios=doctor,attest panic=-1"),
            vec!["doctor", "attest"]
        );
        assert!(LOAD_AND_ATTEST.iter().all(|s| SCENARIOS.contains(s)));
    }
}
