//! Every `yaml` example in docs/ and the README is a valid configuration:
//! `proctor policy check` accepts it, so documentation cannot drift from the
//! parser.

use std::{io::Write, process::Command};

use crate::harness::{proctor_bin, repo_root};

fn yaml_blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match &mut current {
            None if line.trim_start() == "```yaml" => current = Some(String::new()),
            Some(block) if line.trim_start() == "```" => {
                out.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    out
}

#[test]
fn every_yaml_example_in_the_docs_passes_policy_check() {
    let root = repo_root();
    let mut docs: Vec<_> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.push(root.join("README.md"));
    let mut checked = 0;
    for doc in docs {
        let text = std::fs::read_to_string(&doc).unwrap();
        for (i, block) in yaml_blocks(&text).into_iter().enumerate() {
            let mut f = tempfile::NamedTempFile::new().unwrap();
            f.write_all(block.as_bytes()).unwrap();
            let out = Command::new(proctor_bin())
                .args(["policy", "check"])
                .arg(f.path())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "yaml example #{} in {} is not a valid config:\n{}\n{}",
                i + 1,
                doc.display(),
                block,
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "expected yaml examples in docs/, found {checked}"
    );
}
