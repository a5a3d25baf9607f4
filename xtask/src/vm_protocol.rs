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
}
