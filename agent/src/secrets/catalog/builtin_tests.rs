//! The built-in catalog checked against concrete paths: each entry matches its own files, not near misses, and passes the kernel filter.

use std::{collections::BTreeSet, path::Path};

use crate::secrets::catalog::{Catalog, MAX_BASENAME_LEN};

#[test]
fn builtin_has_enough_unique_entries_with_mitre_ids() {
    let catalog = Catalog::builtin();
    assert!(catalog.entries().len() >= 45, "{}", catalog.entries().len());
    let technique = regex::Regex::new(r"^T[0-9]{4}(\.[0-9]{3})?$").unwrap();
    let mut ids = BTreeSet::new();
    for entry in catalog.entries() {
        assert!(ids.insert(entry.id.clone()), "duplicate id {}", entry.id);
        assert!(!entry.mitre.is_empty(), "{} has no MITRE id", entry.id);
        for id in entry.mitre.iter() {
            assert!(technique.is_match(id), "{}: {id}", entry.id);
        }
        assert!(!entry.description.is_empty(), "{}", entry.id);
        assert!(catalog.entry(&entry.id).is_some());
    }
    assert!(catalog.entry("no-such-entry").is_none());
}

const MATCHES: &[(&str, &str)] = &[
    ("/home/alice/.aws/credentials", "aws-cli-credentials"),
    ("/root/.aws/config", "aws-cli-config"),
    (
        "/home/bob/.config/gcloud/application_default_credentials.json",
        "gcp-application-default-credentials",
    ),
    (
        "/home/bob/.config/gcloud/credentials.db",
        "gcloud-credentials-db",
    ),
    (
        "/home/bob/.config/gcloud/legacy_credentials/bob@example.com/adc.json",
        "gcloud-legacy-credentials",
    ),
    ("/home/bob/.boto", "gsutil-boto-config"),
    ("/root/.azure/accessTokens.json", "azure-cli-access-tokens"),
    (
        "/home/carol/.azure/msal_token_cache.json",
        "azure-msal-token-cache",
    ),
    (
        "/home/carol/.azure/msal_token_cache.bin",
        "azure-msal-token-cache",
    ),
    (
        "/home/carol/.azure/service_principal_entries.json",
        "azure-service-principal",
    ),
    ("/root/.oci/config", "oci-cli-config"),
    ("/root/.oci/oci_api_key.pem", "oci-api-signing-key"),
    (
        "/root/.oci/sessions/DEFAULT/oci_api_key.pem",
        "oci-api-signing-key",
    ),
    (
        "/home/dave/.config/doctl/config.yaml",
        "digitalocean-doctl-config",
    ),
    ("/root/.oci/sessions/DEFAULT/token", "oci-cli-session-token"),
    (
        "/home/alice/.aws/sso/cache/0b8f5c4b3e1d2a6f9c7e8d1b2a3c4d5e6f7a8b9c.json",
        "aws-sso-token-cache",
    ),
    (
        "/home/alice/.aws/cli/cache/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b.json",
        "aws-cli-credential-cache",
    ),
    (
        "/home/alice/.snowflake/connections.toml",
        "snowflake-cli-connections",
    ),
    ("/home/alice/.snowsql/config", "snowflake-cli-connections"),
    (
        "/home/alice/.wrangler/config/default.toml",
        "cloudflare-wrangler-config",
    ),
    (
        "/home/alice/.config/.wrangler/config/default.toml",
        "cloudflare-wrangler-config",
    ),
    ("/home/alice/.fly/config.yml", "flyio-config"),
    ("/home/alice/.config/ngrok/ngrok.yml", "ngrok-config"),
    ("/root/.ngrok2/ngrok.yml", "ngrok-config"),
    ("/home/alice/.sentryclirc", "sentry-cli-config"),
    ("/home/alice/.kaggle/kaggle.json", "kaggle-api-key"),
    (
        "/home/alice/.config/configstore/firebase-tools.json",
        "firebase-tools-config",
    ),
    (
        "/home/alice/.local/share/com.vercel.cli/auth.json",
        "vercel-cli-auth",
    ),
    (
        "/home/alice/.config/netlify/config.json",
        "netlify-cli-config",
    ),
    ("/home/alice/.circleci/cli.yml", "circleci-cli-config"),
    (
        "/home/alice/.config/stripe/config.toml",
        "stripe-cli-config",
    ),
    ("/home/alice/.doppler/.doppler.yaml", "doppler-cli-config"),
    (
        "/home/alice/.config/github-copilot/hosts.json",
        "github-copilot-tokens",
    ),
    (
        "/home/alice/.config/github-copilot/apps.json",
        "github-copilot-tokens",
    ),
    (
        "/home/alice/.claude/.credentials.json",
        "claude-code-credentials",
    ),
    ("/home/alice/.codex/auth.json", "openai-codex-auth"),
    ("/home/alice/.gemini/oauth_creds.json", "gemini-cli-oauth"),
    (
        "/home/alice/.config/io.datasette.llm/keys.json",
        "llm-cli-keys",
    ),
    (
        "/var/lib/tailscale/tailscaled.state",
        "tailscale-node-state",
    ),
    ("/home/dave/.aliyun/config.json", "alibaba-cloud-cli-config"),
    ("/home/dave/.bluemix/config.json", "ibm-cloud-cli-config"),
    ("/home/dave/.config/linode-cli", "linode-cli-config"),
    ("/etc/openstack/clouds.yaml", "openstack-clouds-yaml"),
    (
        "/var/run/secrets/kubernetes.io/serviceaccount/token",
        "k8s-service-account-token",
    ),
    (
        "/run/secrets/kubernetes.io/serviceaccount/..2024_01_01_00_00_00.000000001/token",
        "k8s-service-account-token",
    ),
    (
        "/var/lib/kubelet/pods/0d1c5e/volumes/kubernetes.io~projected/kube-api-access-x7k2p/token",
        "kubelet-pod-volume-token",
    ),
    (
        "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
        "eks-irsa-token",
    ),
    (
        "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token",
        "eks-pod-identity-token",
    ),
    (
        "/run/secrets/azure/tokens/azure-identity-token",
        "azure-workload-identity-token",
    ),
    ("/home/alice/.kube/config", "kubeconfig-user"),
    ("/etc/kubernetes/admin.conf", "kubernetes-admin-kubeconfig"),
    (
        "/etc/kubernetes/kubelet.conf",
        "kubernetes-component-kubeconfig",
    ),
    ("/etc/rancher/k3s/k3s.yaml", "k3s-rke2-admin-kubeconfig"),
    (
        "/var/lib/rancher/k3s/server/node-token",
        "k3s-rke2-join-token",
    ),
    ("/etc/kubernetes/pki/ca.key", "kubernetes-pki-key"),
    ("/etc/kubernetes/pki/sa.key", "kubernetes-pki-key"),
    ("/etc/kubernetes/pki/etcd/server.key", "etcd-pki-key"),
    ("/var/lib/kubelet/pki/kubelet.key", "kubelet-pki-key"),
    (
        "/var/lib/kubelet/pki/kubelet-client-current.pem",
        "kubelet-pki-key",
    ),
    ("/var/lib/kubelet/config.json", "kubelet-registry-config"),
    ("/root/.ssh/id_ed25519", "ssh-private-key"),
    ("/home/alice/.ssh/id_rsa", "ssh-private-key"),
    ("/home/alice/.ssh/deploy.pem", "ssh-private-key"),
    ("/etc/ssh/ssh_host_ed25519_key", "ssh-host-private-key"),
    (
        "/home/alice/.gnupg/private-keys-v1.d/0123456789ABCDEF0123456789ABCDEF01234567.key",
        "gpg-private-keys",
    ),
    ("/home/alice/.gnupg/secring.gpg", "gpg-secret-keyring"),
    ("/home/alice/.config/sops/age/keys.txt", "sops-age-key"),
    ("/home/alice/.docker/config.json", "docker-config"),
    (
        "/home/alice/.config/containers/auth.json",
        "containers-auth",
    ),
    ("/run/containers/0/auth.json", "containers-auth"),
    ("/run/user/1000/containers/auth.json", "containers-auth"),
    ("/home/alice/.npmrc", "npmrc"),
    ("/srv/web/.npmrc", "npmrc"),
    ("/home/alice/.pypirc", "pypirc"),
    ("/etc/pip.conf", "pip-config-credentials"),
    ("/home/alice/.cargo/credentials.toml", "cargo-credentials"),
    ("/home/alice/.cargo/credentials", "cargo-credentials"),
    ("/home/alice/.gem/credentials", "rubygems-credentials"),
    ("/home/alice/.m2/settings.xml", "maven-settings"),
    ("/home/alice/.gradle/gradle.properties", "gradle-properties"),
    ("/home/alice/.nuget/NuGet/NuGet.Config", "nuget-config"),
    ("/home/alice/.config/composer/auth.json", "composer-auth"),
    ("/home/alice/.git-credentials", "git-credentials"),
    ("/home/alice/.config/gh/hosts.yml", "github-cli-hosts"),
    ("/home/alice/.config/hub", "hub-config"),
    ("/home/alice/.netrc", "netrc"),
    ("/home/alice/.pgpass", "pgpass"),
    ("/root/.my.cnf", "mysql-client-config"),
    ("/home/alice/.mongorc.js", "mongodb-shell-rc"),
    ("/etc/redis/redis.conf", "redis-server-config"),
    ("/srv/app/.env.production", "dotenv"),
    ("/home/alice/project/.env", "dotenv"),
    ("/app/.env", "dotenv"),
    ("/home/alice/project/.envrc", "direnv-envrc"),
    ("/root/.vault-token", "vault-token"),
    (
        "/home/alice/.terraform.d/credentials.tfrc.json",
        "terraform-cli-credentials",
    ),
    ("/opt/infra/prod/terraform.tfstate", "terraform-state"),
    ("/home/alice/.cache/huggingface/token", "huggingface-token"),
    ("/etc/gitlab-runner/config.toml", "gitlab-runner-config"),
    ("/var/lib/jenkins/secrets/master.key", "jenkins-secrets"),
    ("/home/alice/.bash_history", "shell-history"),
    ("/root/.zsh_history", "shell-history"),
    (
        "/home/alice/.local/share/fish/fish_history",
        "shell-history",
    ),
    ("/home/alice/.psql_history", "database-client-history"),
    ("/root/.mysql_history", "database-client-history"),
    ("/home/alice/.python_history", "repl-history"),
    ("/etc/shadow", "shadow"),
    ("/etc/../etc/shadow", "shadow"),
    ("//etc/./shadow", "shadow"),
    ("/etc/gshadow", "gshadow"),
    ("/etc/security/opasswd", "security-opasswd"),
    ("/var/www/site/.htpasswd", "htpasswd"),
    ("/etc/ssl/private/ssl-cert-snakeoil.key", "tls-private-key"),
    ("/etc/nginx/tls/site.key", "tls-private-key"),
    (
        "/etc/letsencrypt/live/example.org/privkey.pem",
        "letsencrypt-private-key",
    ),
    (
        "/etc/letsencrypt/archive/example.org/privkey3.pem",
        "letsencrypt-private-key",
    ),
    ("/etc/krb5.keytab", "kerberos-keytab"),
    ("/etc/httpd/conf/http.keytab", "kerberos-keytab"),
    ("/tmp/krb5cc_1000", "kerberos-ticket-cache"),
    ("/etc/wireguard/wg0.conf", "wireguard-config"),
    (
        "/etc/NetworkManager/system-connections/home.nmconnection",
        "networkmanager-connection-secrets",
    ),
];

const NO_MATCH: &[&str] = &[
    "/home/alice/.ssh/id_ed25519.pub",
    "/root/.ssh/id_rsa-cert.pub",
    "/home/alice/.ssh/known_hosts",
    "/home/alice/.ssh/authorized_keys",
    "/etc/passwd",
    "/etc/group",
    "/home/alice/notes.txt",
    "/etc/../etc/hosts",
    "/etc/ssl/certs/ca-certificates.crt",
    "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace",
    "/srv/app/.env.example",
    "/srv/app/.env.sample",
    "/srv/app/.env.production.example",
    "/home/alice/.environment",
    "/root/.oci/sessions/DEFAULT/token.bak",
    "/root/.oci/token",
    "/home/alice/.aws/sso/cache/kiro-auth-token.json.tmp",
    "/home/alice/.aws/sso/cache/nested/abc.json",
    "/home/alice/.aws/cli/history/history.db",
    "/home/alice/.snowflake/logs/snowflake-cli.log",
    "/home/alice/.wrangler/config/other.toml",
    "/home/alice/.fly/state.yml",
    "/home/alice/.config/ngrok/ngrok.yml.bak",
    "/home/alice/.sentryclirc.example",
    "/home/alice/.kaggle/kaggle.json.old",
    "/home/alice/.config/configstore/update-notifier-npm.json",
    "/home/alice/.config/github-copilot/versions.json",
    "/home/alice/.claude/settings.json",
    "/home/alice/.claude/credentials.json",
    "/home/alice/.codex/config.toml",
    "/home/alice/.gemini/settings.json",
    "/var/lib/tailscale/derpmap.cached.json",
    "/home/alice/sub/.aws/credentials",
    "/home/alice/.aws/credentials/backup",
    "/var/lib/postgresql/.pgpass",
    "home/alice/.aws/credentials",
    "",
    "/",
];

#[test]
fn concrete_paths_match_their_entries() {
    let catalog = Catalog::builtin();
    assert!(MATCHES.len() >= 40);
    for (path, id) in MATCHES {
        let got = catalog.match_path(Path::new(path)).map(|e| e.id.as_str());
        assert_eq!(got, Some(*id), "{path}");
    }
}

#[test]
fn unrelated_paths_do_not_match() {
    let catalog = Catalog::builtin();
    for path in NO_MATCH {
        let got = catalog.match_path(Path::new(path)).map(|e| e.id.as_str());
        assert_eq!(got, None, "{path}");
    }
}

#[test]
fn every_matching_path_passes_the_kernel_basename_filter() {
    let catalog = Catalog::builtin();
    let exact = catalog.basenames();
    let prefixes = catalog.basename_prefixes();
    let suffixes = catalog.basename_suffixes();
    for set in [&exact, &prefixes, &suffixes] {
        assert!(set
            .iter()
            .all(|s| !s.is_empty() && s.len() <= MAX_BASENAME_LEN));
    }
    for (path, _) in MATCHES {
        let name = Path::new(path).file_name().unwrap().to_str().unwrap();
        let passes = exact.contains(name)
            || prefixes.iter().any(|p| name.starts_with(p.as_str()))
            || suffixes.iter().any(|s| name.ends_with(s.as_str()));
        assert!(passes, "{path}: basename {name} escapes the kernel filter");
    }
    for name in ["credentials", "config", "token", ".env", "shadow", ".npmrc"] {
        assert!(exact.contains(name), "{name}");
    }
    for prefix in ["id_", ".env.", "ssh_host_", "krb5cc_", "msal_token_cache."] {
        assert!(prefixes.contains(prefix), "{prefix}");
    }
    for suffix in [".key", ".pem", ".keytab", ".nmconnection"] {
        assert!(suffixes.contains(suffix), "{suffix}");
    }
    assert!(catalog.unfiltered_patterns().is_empty());
}
