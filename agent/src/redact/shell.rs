//! Shell strings (`sh -c`, `bash -lc`, `su -c`): split into commands of
//! words, each redacted like an argv, only changed words rewritten.

use super::redact_command;

/// A word of a shell line and where its text sits in the line.
pub(super) struct Word {
    pub(super) text: String,
    pub(super) span: std::ops::Range<usize>,
}

/// Splits a shell line into commands of words: enough of sh's quoting
/// (`'…'`, `"…"`, `\`) to find arguments, with `;`, `&`, `|`, `(`, `)` and
/// newlines ending a command.
pub(super) fn shell_commands(line: &str) -> Vec<Vec<Word>> {
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
pub(super) fn redact_shell(line: &str, depth: usize) -> String {
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

pub(super) fn requote(raw: &str, new: &str) -> String {
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
