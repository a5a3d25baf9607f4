//! The Markdown table of the catalog in docs/secret-catalog.md, kept in step by a test.

use std::fmt::Write as _;

use super::{Catalog, ContentCheck};

impl Catalog {
    /// A Markdown table of the catalog, for docs/secret-catalog.md.
    pub fn markdown_table(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "| ID | Kind | Severity | Paths | Content check | MITRE ATT&CK | Expected clients | Description |\n",
        );
        out.push_str("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
        for e in self.entries() {
            let mut paths: Vec<String> = e.paths.iter().map(|p| code(p)).collect();
            if !e.exclude.is_empty() {
                let ex: Vec<String> = e.exclude.iter().map(|p| code(p)).collect();
                paths.push(format!("excluding {}", ex.join(", ")));
            }
            let check = match &e.content {
                None => "none".to_string(),
                Some(ContentCheck::ContainsPrivateKeyBlock) => "private key block".to_string(),
                Some(ContentCheck::ContainsAny(markers)) => {
                    let m: Vec<String> = markers.iter().map(|s| code(s)).collect();
                    format!("contains any of {}", m.join(", "))
                }
                Some(ContentCheck::Regex(re)) => format!("matches {}", code(re)),
            };
            let clients: Vec<String> = e
                .expected_clients
                .iter()
                .map(|c| code(c.as_str()))
                .collect();
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} | {} | {} |",
                e.id,
                e.kind.as_str(),
                e.severity.as_str(),
                paths.join("<br>"),
                check,
                e.mitre.join(", "),
                if clients.is_empty() {
                    "none".to_string()
                } else {
                    clients.join(" ")
                },
                cell(&e.description),
            );
        }
        out
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn code(s: &str) -> String {
    format!("`{}`", cell(s))
}

#[cfg(test)]
mod tests {
    use std::{
        fs,
        path::{Path, PathBuf},
    };

    use super::*;

    const DOC_BEGIN: &str =
        "<!-- catalog-table:begin (generated from Catalog::builtin().markdown_table(); do not edit by hand) -->\n";
    const DOC_END: &str = "<!-- catalog-table:end -->\n";
    const DOC_INTRO: &str = "# Built-in secret catalog\n\n\
proctor watches the files below as static secrets. A read of one of them by a process that is \
not among the secret's declared owners or expected clients (packaged programs proven by their \
exec'd file, see detections.md) produces a `secret-read` finding with the entry's id, \
kind, severity and MITRE ATT&CK techniques; `proctor inventory` lists every catalogued file found \
on the node. Path patterns are globs over absolute, normalised paths: `~/` stands for every \
home directory (`/root`, `/home/<user>` and the homes in `/etc/passwd`), `**/` for any \
directory, and `*` never crosses a `/`. When a path matches several entries, the entry whose \
pattern has the most literal characters wins, then the one listed first. A content check, where \
present, must also pass for the file to count as a secret (an `~/.aws/config` holding only a \
region is not one). Policy can add entries or replace these by id. This table is generated from \
the code (`agent/src/secrets/catalog/`); a unit test fails when it drifts.\n\n";

    fn doc_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/secret-catalog.md")
    }

    fn generated_section() -> String {
        format!(
            "{DOC_BEGIN}{}{DOC_END}",
            Catalog::builtin().markdown_table()
        )
    }

    /// The generated part of `doc`, from the begin marker through the end marker.
    fn section_of(doc: &str) -> Option<&str> {
        let start = doc.find(DOC_BEGIN)?;
        let end = doc[start..].find(DOC_END)? + start + DOC_END.len();
        Some(&doc[start..end])
    }

    #[test]
    fn catalog_doc_is_up_to_date() {
        let doc = fs::read_to_string(doc_path()).unwrap_or_default();
        assert!(
            section_of(&doc) == Some(generated_section().as_str()),
            "docs/secret-catalog.md is out of date with the built-in catalog; regenerate it with \
             `cargo test -p proctor --lib -- regenerate_catalog_doc --ignored`"
        );
    }

    /// Rewrites the generated table of docs/secret-catalog.md and keeps the
    /// hand-written text around it; writes the whole file when it is missing.
    #[test]
    #[ignore = "rewrites docs/secret-catalog.md; run on purpose after changing the catalog"]
    fn regenerate_catalog_doc() {
        let doc = fs::read_to_string(doc_path()).unwrap_or_default();
        let new = match section_of(&doc) {
            Some(old) => doc.replacen(old, &generated_section(), 1),
            None => format!("{DOC_INTRO}{}", generated_section()),
        };
        fs::write(doc_path(), new).unwrap();
    }
}
