//! `proctor policy check FILE`: validates a config/policy file and points at
//! the line of every error it can place.

use std::path::Path;

use crate::config::Config;

/// Line (1-based) of the first occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> Option<usize> {
    let at = text.find(needle)?;
    Some(text[..at].matches('\n').count() + 1)
}

/// Strings quoted in an error message (`"..."`), longest first: the values a
/// semantic error is about, to be found in the file.
fn quoted(msg: &str) -> Vec<String> {
    let mut out: Vec<String> = msg
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.len() >= 2)
        .map(str::to_string)
        .collect();
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out
}

/// Checks `file`; prints the verdict; returns the exit code.
pub fn run(file: &Path) -> i32 {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("proctor: cannot read {}: {e}", file.display());
            return 2;
        }
    };
    let origin = file.display().to_string();
    match Config::parse(&text, &origin) {
        Ok(cfg) => {
            let catalog_len = cfg.catalog().map(|c| c.entries().len()).unwrap_or(0);
            println!(
                "{origin}: ok ({} catalog entries, {} secret rules, {} exceptions, {} sinks)",
                catalog_len,
                cfg.secrets.rules.len(),
                cfg.secrets.exceptions.len(),
                cfg.sinks.len()
            );
            0
        }
        Err(e) => {
            let msg = format!("{e:#}");
            // Syntax and type errors already carry FILE:LINE:COL; semantic ones
            // get the line of the value they quote.
            let prefix = format!("{origin}:");
            let placed = msg
                .match_indices(&prefix)
                .any(|(i, _)| msg[i + prefix.len()..].starts_with(|c: char| c.is_ascii_digit()));
            let line = (!placed)
                .then(|| quoted(&msg).iter().find_map(|q| line_of(&text, q)))
                .flatten();
            match line {
                Some(l) => eprintln!("{origin}:{l}: {msg}"),
                None => eprintln!("{msg}"),
            }
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_quoted_values() {
        assert_eq!(
            quoted(r#"entry "x-y": pattern "a/**b" bad"#),
            ["a/**b", "x-y"]
        );
        assert_eq!(line_of("a\nb\nc", "c"), Some(3));
    }
}
