//! Content checks: an entry's check compiled into one byte regex, and the private-key test.

use std::sync::OnceLock;

use regex::bytes::Regex as BytesRegex;

use super::{CatalogError, ContentCheck};

/// Whether `content` holds a private key block (see
/// [`ContentCheck::ContainsPrivateKeyBlock`]).
pub fn contains_private_key_block(content: &[u8]) -> bool {
    private_key_regex().is_match(content)
}

fn private_key_regex() -> &'static BytesRegex {
    static RE: OnceLock<BytesRegex> = OnceLock::new();
    RE.get_or_init(|| {
        BytesRegex::new(
            r"-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----|PuTTY-User-Key-File-[0-9]+:",
        )
        .unwrap()
    })
}

/// The regex that decides `check` for entry `id`; `None` when there is no check.
pub(super) fn compile_check(
    id: &str,
    check: Option<&ContentCheck>,
) -> Result<Option<BytesRegex>, CatalogError> {
    let bad = |reason: String| CatalogError::BadContentCheck {
        id: id.to_string(),
        reason,
    };
    match check {
        None => Ok(None),
        Some(ContentCheck::ContainsPrivateKeyBlock) => Ok(Some(private_key_regex().clone())),
        Some(ContentCheck::ContainsAny(markers)) => {
            if markers.is_empty() || markers.iter().any(|m| m.is_empty()) {
                return Err(bad(
                    "contains_any needs at least one marker and no empty ones".into(),
                ));
            }
            let alternation: Vec<String> = markers.iter().map(|m| regex::escape(m)).collect();
            BytesRegex::new(&alternation.join("|"))
                .map(Some)
                .map_err(|e| bad(e.to_string()))
        }
        Some(ContentCheck::Regex(re)) => BytesRegex::new(re)
            .map(Some)
            .map_err(|e| bad(format!("regex {re:?} does not compile: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::catalog::{
        testkeys::{pem, private_pem},
        Catalog,
    };

    #[test]
    fn content_checks() {
        let catalog = Catalog::builtin();
        let entry = |id| catalog.entry(id).unwrap();
        let ssh = entry("ssh-private-key");
        for label in ["OPENSSH ", "RSA ", "EC ", "ENCRYPTED ", ""] {
            assert!(
                catalog.content_matches(ssh, private_pem(label).as_bytes()),
                "{label}"
            );
        }
        assert!(catalog.content_matches(ssh, pem("PGP ", "PRIVATE KEY BLOCK").as_bytes()));
        assert!(catalog.content_matches(ssh, b"PuTTY-User-Key-File-3: ssh-ed25519\n"));
        assert!(!catalog.content_matches(ssh, pem("", "PUBLIC KEY").as_bytes()));
        assert!(!catalog.content_matches(ssh, pem("", "CERTIFICATE").as_bytes()));
        assert!(!catalog.content_matches(ssh, b"ssh-ed25519 AAAAC3Nza alice@laptop\n"));

        let aws = entry("aws-cli-config");
        assert!(!catalog.content_matches(aws, b"[default]\nregion = eu-west-1\n"));
        assert!(catalog.content_matches(aws, b"[prod]\naws_secret_access_key = not-a-real-value\n"));

        let redis = entry("redis-server-config");
        assert!(catalog.content_matches(redis, b"port 6379\nrequirepass example-not-real\n"));
        assert!(!catalog.content_matches(redis, b"port 6379\n# requirepass foobared\n"));

        let pip = entry("pip-config-credentials");
        assert!(catalog.content_matches(
            pip,
            b"[global]\nindex-url = https://ci:pw@pypi.example.org/simple\n"
        ));
        assert!(!catalog.content_matches(
            pip,
            b"[global]\nindex-url = https://pypi.example.org/simple\n"
        ));

        let docker = entry("docker-config");
        assert!(catalog.content_matches(
            docker,
            br#"{"auths":{"r.example":{"auth":"dXNlcjpwdw=="}}}"#
        ));
        assert!(
            !catalog.content_matches(docker, br#"{"auths":{"r.example":{}},"credsStore":"pass"}"#)
        );

        // No check: any content counts, even none.
        assert!(catalog.content_matches(entry("shadow"), b""));

        // An entry that is not (or no longer) the catalog's own is checked by its own rule.
        let mut foreign = entry("aws-cli-config").clone();
        foreign.content = Some(ContentCheck::ContainsAny(vec!["region".into()]));
        assert!(catalog.content_matches(&foreign, b"[default]\nregion = eu-west-1\n"));
        foreign.content = Some(ContentCheck::Regex("(".into()));
        assert!(!catalog.content_matches(&foreign, b"anything"));
    }
}
