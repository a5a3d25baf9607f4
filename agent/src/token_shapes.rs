//! The shapes of well-known credentials (cloud keys, vendor tokens, JWTs, private-key blocks, URL passwords), one list shared by argv redaction and the environment scanner.
//!
//! A leaf: it imports nothing from the crate, because `redact` (used by
//! `identity`) and `secrets::env` both read it and a shape written twice drifts.

use std::{ops::Range, sync::OnceLock};

use regex::{Regex, RegexSet, SetMatches};

/// Who issues a shape; the environment scanner turns this into a secret kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    PrivateKey,
    /// An AWS access key id: names a key, cannot sign anything alone.
    AwsKeyId,
    Vault,
    /// GitHub, GitLab.
    Vcs,
    /// SaaS API keys: Slack, Stripe, Anthropic, OpenAI, Google.
    Api,
    /// npm, PyPI.
    PackageRegistry,
    /// Docker Hub.
    ContainerRegistry,
    /// A signed JSON Web Token: short-lived usually, but a bearer credential while it lives.
    Jwt,
}

/// One credential format.
pub struct TokenShape {
    /// Also the environment scanner's detector name, a contract in findings.
    pub name: &'static str,
    pub family: Family,
    /// Capture group 1 is the credential itself.
    regex: Regex,
    /// Its place in [`shapes`] and in [`candidates`]' answer.
    index: usize,
}

impl TokenShape {
    /// Where the first credential of this shape sits in `text`.
    pub fn find(&self, text: &str) -> Option<Range<usize>> {
        self.regex
            .captures(text)
            .and_then(|c| c.get(1))
            .map(|m| m.range())
    }

    /// Its place in the answer of [`candidates`].
    pub fn index(&self) -> usize {
        self.index
    }

    /// [`TokenShape::find`], skipped where `candidates` (of the same text)
    /// already rules this shape out.
    pub fn find_among(&self, text: &str, candidates: &SetMatches) -> Option<Range<usize>> {
        candidates
            .matched(self.index)
            .then(|| self.find(text))
            .flatten()
    }

    /// Where every credential of this shape sits in `text`.
    pub fn find_all(&self, text: &str) -> Vec<Range<usize>> {
        self.regex
            .captures_iter(text)
            .filter_map(|c| c.get(1))
            .map(|m| m.range())
            .collect()
    }
}

/// Every shape, in the order the environment scanner tries them.
pub fn shapes() -> &'static [TokenShape] {
    &table().0
}

/// Which shapes occur in `text`, found in one pass for all of them. A capture
/// per shape allocates its match slots and walks the text again: on every
/// variable of every exec and every argument, that was most of an exec's cost
/// in user space. Most texts match none, and then no capture runs at all.
pub fn candidates(text: &str) -> SetMatches {
    table().1.matches(text)
}

fn table() -> &'static (Vec<TokenShape>, RegexSet) {
    static TABLE: OnceLock<(Vec<TokenShape>, RegexSet)> = OnceLock::new();
    TABLE.get_or_init(|| {
        // A token must not continue a longer word on its left (`desk-...` is not `sk-`).
        let b = r"(?:^|[^A-Za-z0-9_])";
        let shapes = [
            (
                "private-key",
                Family::PrivateKey,
                // Up to the END line, or to the end of the text when it was cut.
                r"(-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?s:.*?)(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|$))",
            ),
            (
                "aws-access-key-id",
                Family::AwsKeyId,
                r"((?:AKIA|ASIA)[A-Z0-9]{16})(?:$|[^A-Za-z0-9])",
            ),
            (
                "vault-token",
                Family::Vault,
                r"(hv[sbr]\.[A-Za-z0-9_-]{20,})",
            ),
            (
                "github-token",
                Family::Vcs,
                r"((?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})",
            ),
            ("gitlab-token", Family::Vcs, r"(glpat-[A-Za-z0-9_-]{20,})"),
            ("slack-token", Family::Api, r"(xox[abposr]-[A-Za-z0-9-]{10,})"),
            ("stripe-key", Family::Api, r"((?:sk|rk)_live_[A-Za-z0-9]{16,})"),
            ("anthropic-api-key", Family::Api, r"(sk-ant-[A-Za-z0-9_-]{32,})"),
            (
                "openai-api-key",
                Family::Api,
                r"(sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}|sk-[A-Za-z0-9]{40,})",
            ),
            (
                "google-api-key",
                Family::Api,
                r"(AIza[0-9A-Za-z_-]{35})(?:$|[^0-9A-Za-z_-])",
            ),
            (
                "npm-token",
                Family::PackageRegistry,
                r"(npm_[A-Za-z0-9]{36})(?:$|[^A-Za-z0-9])",
            ),
            ("pypi-token", Family::PackageRegistry, r"(pypi-[A-Za-z0-9_-]{50,})"),
            (
                "dockerhub-token",
                Family::ContainerRegistry,
                r"(dckr_pat_[A-Za-z0-9_-]{20,})",
            ),
            (
                "jwt",
                Family::Jwt,
                r"(eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})",
            ),
        ]
        .into_iter()
        .enumerate()
        .map(|(index, (name, family, re))| {
            let re = if family == Family::PrivateKey {
                re.to_string()
            } else {
                format!("{b}{re}")
            };
            TokenShape {
                name,
                family,
                regex: Regex::new(&re).unwrap(),
                index,
            }
        })
        .collect::<Vec<_>>();
        let set = RegexSet::new(shapes.iter().map(|s| s.regex.as_str())).unwrap();
        (shapes, set)
    })
}

/// The shape called `name`; panics on a name not in [`shapes`] (a typo in code).
pub fn shape(name: &str) -> &'static TokenShape {
    shapes()
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no token shape {name}"))
}

macro_rules! lazy_regex {
    ($(#[$doc:meta])* $name:ident, $re:expr) => {
        $(#[$doc])*
        pub fn $name() -> &'static Regex {
            static RE: OnceLock<Regex> = OnceLock::new();
            RE.get_or_init(|| Regex::new($re).unwrap())
        }
    };
}

lazy_regex!(
    /// An AWS secret access key: it has no prefix, so it only counts beside
    /// its keyword (a variable or setting naming it).
    aws_secret_key,
    r"^[A-Za-z0-9/+=]{40}$"
);
lazy_regex!(
    /// A legacy Vault service token (`s.` + 24): too plain to trust anywhere
    /// but after its keyword.
    legacy_vault_token,
    r"^[sbr]\.[A-Za-z0-9]{20,}$"
);
lazy_regex!(
    /// `scheme://user:password@`: group 1 the scheme, 2 the user (may be
    /// empty, `redis://:pw@host`), 3 the password.
    url_userinfo,
    r"([A-Za-z][A-Za-z0-9+.-]*)://([^/\s:@]*):([^@\s/]+)@"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_unique_and_findable() {
        for s in shapes() {
            assert!(std::ptr::eq(shape(s.name), s), "{}", s.name);
        }
    }

    #[test]
    fn a_token_inside_a_longer_word_is_not_a_token() {
        let body = "a".repeat(40);
        assert!(shape("openai-api-key")
            .find(&format!("desk-{body}"))
            .is_none());
        assert_eq!(
            shape("openai-api-key").find(&format!("key=sk-{body}")),
            Some(4..47)
        );
    }

    #[test]
    fn a_private_key_block_ends_at_its_end_line_or_at_the_cut() {
        let text = "x -----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY----- y";
        let r = shape("private-key").find(text).unwrap();
        assert_eq!(&text[r.end..], " y");
        let cut = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA";
        assert_eq!(shape("private-key").find(cut), Some(0..cut.len()));
    }

    #[test]
    fn the_one_pass_prefilter_agrees_with_every_shape() {
        let a = |n: usize| "a1B2".repeat(n);
        let texts = [
            "-----BEGIN EC PRIVATE KEY-----\nAAAA".to_string(),
            format!("AKIA{}", "ABCD".repeat(4)),
            format!("AKIA{}x", "ABCD".repeat(4)),
            format!("hvs.{}", a(6)),
            format!("token ghp_{}", a(9)),
            format!("github_pat_{}", a(6)),
            format!("glpat-{}", a(5)),
            format!("xoxb-{}", a(3)),
            format!("rk_live_{}", a(4)),
            format!("sk-ant-{}", a(8)),
            format!("sk-proj-{}", a(10)),
            format!("desk-{}", a(10)),
            format!("AIza{}", "b".repeat(35)),
            format!("npm_{}", a(9)),
            format!("pypi-{}", a(13)),
            format!("dckr_pat_{}", a(5)),
            format!("eyJ{}.{}.{}", a(3), a(3), a(3)),
            "C.UTF-8".to_string(),
            "/usr/local/bin:/usr/bin".to_string(),
        ];
        let mut found = 0;
        for t in &texts {
            let c = candidates(t);
            for s in shapes() {
                assert_eq!(s.find(t), s.find_among(t, &c), "{} in {t:?}", s.name);
                found += usize::from(s.find(t).is_some());
            }
        }
        assert!(
            found >= shapes().len(),
            "every shape has an example: {found}"
        );
    }
}
