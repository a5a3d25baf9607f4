//! The built-in catalog entries, one per well-known credential file, with their ATT&CK techniques.

use super::{CatalogEntry, ClientName, ContentCheck, SecretKind};
use crate::event::Severity;

pub(super) const FILES: &str = "T1552.001";
const KEYS: &str = "T1552.004";
const HISTORY: &str = "T1552.003";
const SHADOW: &str = "T1003.008";
const APP_TOKEN: &str = "T1528";
const CONTAINER_API: &str = "T1552.007";
const KERBEROS: &str = "T1558";
const CCACHE: &str = "T1558.005";

// Builder steps, so that the table below stays one block per entry.
impl CatalogEntry {
    pub(super) fn mitre(mut self, ids: &[&str]) -> CatalogEntry {
        self.mitre = ids.iter().map(|s| s.to_string()).collect();
        self
    }

    fn content(mut self, check: ContentCheck) -> CatalogEntry {
        self.content = Some(check);
        self
    }

    /// Names are checked by `ClientName::parse`'s tests on the whole table.
    fn clients(mut self, names: &[&str]) -> CatalogEntry {
        self.expected_clients = names
            .iter()
            .map(|n| ClientName::parse(n).expect("built-in client name"))
            .collect();
        self
    }

    fn exclude(mut self, patterns: &[&str]) -> CatalogEntry {
        self.exclude = patterns.iter().map(|s| s.to_string()).collect();
        self
    }
}

fn any(markers: &[&str]) -> ContentCheck {
    ContentCheck::ContainsAny(markers.iter().map(|s| s.to_string()).collect())
}

fn re(pattern: &str) -> ContentCheck {
    ContentCheck::Regex(pattern.to_string())
}

/// The built-in entries, in catalog order.
// Laid out as a table, one entry per block, which rustfmt would unfold.
#[rustfmt::skip]
pub fn builtin_entries() -> Vec<CatalogEntry> {
    use ContentCheck::ContainsPrivateKeyBlock as PrivateKeyBlock;
    use SecretKind::*;
    use Severity::*;
    let e = CatalogEntry::new;
    let aws_keys = || any(&["aws_secret_access_key", "aws_session_token"]);
    let registry_auth = || any(&["\"auth\"", "\"identitytoken\"", "\"registrytoken\""]);
    let url_userinfo = r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@";
    vec![
        // Cloud provider CLIs and SDKs.
        e("aws-cli-credentials", CloudCredentials, High, &["~/.aws/credentials"],
            "AWS CLI/SDK shared credentials: access key id and secret access key per profile")
            .content(aws_keys()).mitre(&[FILES])
            .clients(&["aws", "terraform", "packer", "eksctl", "aws-vault"]),
        e("aws-cli-config", CloudCredentials, Medium, &["~/.aws/config"],
            "AWS CLI/SDK config file; counts only when it holds keys rather than just profiles and regions")
            .content(aws_keys()).mitre(&[FILES])
            .clients(&["aws", "terraform", "packer", "eksctl", "aws-vault"]),
        e("gcp-application-default-credentials", CloudCredentials, High,
            &["~/.config/gcloud/application_default_credentials.json"],
            "Google application default credentials written by `gcloud auth application-default login` (refresh token or service-account key)")
            .content(any(&["\"private_key\"", "\"refresh_token\""])).mitre(&[FILES])
            .clients(&["gcloud", "gsutil", "bq", "terraform"]),
        e("gcloud-credentials-db", CloudCredentials, High,
            &["~/.config/gcloud/credentials.db", "~/.config/gcloud/access_tokens.db"],
            "gcloud CLI credential store: refresh tokens, service-account keys and cached access tokens")
            .mitre(&[FILES, APP_TOKEN])
            .clients(&["gcloud", "gsutil", "bq"]),
        e("gcloud-legacy-credentials", CloudCredentials, High,
            &["~/.config/gcloud/legacy_credentials/*/adc.json", "~/.config/gcloud/legacy_credentials/*/.boto"],
            "gcloud per-account legacy credential copies")
            .mitre(&[FILES])
            .clients(&["gcloud", "gsutil", "bq"]),
        e("gsutil-boto-config", CloudCredentials, Medium, &["~/.boto"],
            "gsutil/boto configuration; counts when it holds a refresh token, HMAC secret or key file")
            .content(any(&["gs_oauth2_refresh_token", "gs_secret_access_key", "aws_secret_access_key", "gs_service_key_file"]))
            .mitre(&[FILES])
            .clients(&["gsutil", "gcloud"]),
        e("azure-cli-access-tokens", CloudCredentials, High, &["~/.azure/accessTokens.json"],
            "Azure CLI (before 2.30) token cache with access and refresh tokens")
            .mitre(&[APP_TOKEN, FILES])
            .clients(&["az", "terraform"]),
        e("azure-msal-token-cache", CloudCredentials, High, &["~/.azure/msal_token_cache.*"],
            "Azure CLI MSAL token cache with access and refresh tokens")
            .mitre(&[APP_TOKEN, FILES])
            .clients(&["az", "terraform"]),
        e("azure-service-principal", CloudCredentials, High, &["~/.azure/service_principal_entries.*"],
            "Azure CLI store of service-principal client secrets and certificates")
            .mitre(&[FILES])
            .clients(&["az", "terraform"]),
        e("oci-cli-config", CloudCredentials, Medium, &["~/.oci/config"],
            "Oracle Cloud CLI config: user and tenancy OCIDs, key fingerprint, key file and passphrase")
            .mitre(&[FILES])
            .clients(&["oci", "terraform"]),
        e("oci-api-signing-key", PrivateKey, High, &["~/.oci/**/*.pem"],
            "Oracle Cloud API signing private key")
            .content(PrivateKeyBlock).mitre(&[KEYS])
            .clients(&["oci", "terraform"]),
        e("oci-cli-session-token", CloudCredentials, High, &["~/.oci/sessions/*/token"],
            "Oracle Cloud CLI session token written by `oci session authenticate`")
            .mitre(&[APP_TOKEN, FILES])
            .clients(&["oci", "terraform"]),
        e("aws-sso-token-cache", CloudCredentials, High, &["~/.aws/sso/cache/*.json"],
            "AWS IAM Identity Center (SSO) token cache: access and refresh tokens that mint role credentials")
            .content(any(&["accessToken", "refreshToken"])).mitre(&[APP_TOKEN, FILES])
            .clients(&["aws", "terraform", "packer", "eksctl", "aws-vault"]),
        e("aws-cli-credential-cache", CloudCredentials, High, &["~/.aws/cli/cache/*.json"],
            "AWS CLI cache of temporary role credentials (assume-role, SSO, web identity)")
            .content(any(&["SecretAccessKey", "SessionToken"])).mitre(&[FILES])
            .clients(&["aws", "terraform", "packer", "eksctl", "aws-vault"]),
        e("digitalocean-doctl-config", CloudCredentials, High, &["~/.config/doctl/config.yaml"],
            "DigitalOcean doctl config with API access tokens")
            .content(any(&["access-token"])).mitre(&[FILES])
            .clients(&["doctl"]),
        e("alibaba-cloud-cli-config", CloudCredentials, High, &["~/.aliyun/config.json"],
            "Alibaba Cloud CLI profiles with AccessKey secrets or STS tokens")
            .content(any(&["access_key_secret", "sts_token"])).mitre(&[FILES])
            .clients(&["aliyun", "terraform"]),
        e("ibm-cloud-cli-config", CloudCredentials, High, &["~/.bluemix/config.json"],
            "IBM Cloud CLI session with IAM access and refresh tokens")
            .content(any(&["IAMToken", "IAMRefreshToken"])).mitre(&[FILES, APP_TOKEN])
            .clients(&["ibmcloud"]),
        e("linode-cli-config", CloudCredentials, High, &["~/.config/linode-cli"],
            "Linode/Akamai CLI config with personal access tokens")
            .content(any(&["token"])).mitre(&[FILES])
            .clients(&["linode-cli"]),
        e("hetzner-cloud-cli-config", CloudCredentials, High, &["~/.config/hcloud/cli.toml"],
            "Hetzner Cloud CLI contexts with API tokens")
            .content(any(&["token"])).mitre(&[FILES])
            .clients(&["hcloud"]),
        e("openstack-clouds-yaml", CloudCredentials, High,
            &["~/.config/openstack/clouds.yaml", "/etc/openstack/clouds.yaml"],
            "OpenStack client clouds.yaml with passwords or application credential secrets")
            .content(any(&["password", "application_credential_secret", "token"])).mitre(&[FILES])
            .clients(&["openstack", "terraform"]),
        e("rclone-config", CloudCredentials, Medium, &["~/.config/rclone/rclone.conf"],
            "rclone remotes with cloud storage keys and OAuth tokens")
            .mitre(&[FILES])
            .clients(&["rclone"]),
        e("s3cmd-config", CloudCredentials, High, &["~/.s3cfg"],
            "s3cmd config with S3 access and secret keys")
            .content(any(&["secret_key"])).mitre(&[FILES])
            .clients(&["s3cmd"]),
        e("minio-client-config", CloudCredentials, High, &["~/.mc/config.json", "~/.mcli/config.json"],
            "MinIO client aliases with access and secret keys")
            .content(any(&["secretKey"])).mitre(&[FILES])
            .clients(&["mc", "mcli"]),
        // Kubernetes.
        e("k8s-service-account-token", KubernetesToken, High,
            &["/var/run/secrets/kubernetes.io/serviceaccount/**/token",
              "/run/secrets/kubernetes.io/serviceaccount/**/token"],
            "Kubernetes service-account token mounted into a pod (the `**` also covers the `..<timestamp>/` directory the symlink resolves to)")
            .mitre(&[APP_TOKEN, CONTAINER_API]),
        e("kubelet-pod-volume-token", KubernetesToken, High,
            &["/var/lib/kubelet/pods/*/volumes/kubernetes.io~projected/**/token",
              "/var/lib/kubelet/pods/*/volumes/kubernetes.io~secret/**/token"],
            "Host-side copy of pods' service-account tokens; only the kubelet and the pod itself should read it")
            .mitre(&[APP_TOKEN, CONTAINER_API])
            .clients(&["kubelet"]),
        e("eks-irsa-token", KubernetesToken, High,
            &["/var/run/secrets/eks.amazonaws.com/serviceaccount/**/token",
              "/run/secrets/eks.amazonaws.com/serviceaccount/**/token"],
            "EKS IAM Roles for Service Accounts web identity token, exchangeable for AWS credentials")
            .mitre(&[APP_TOKEN]),
        e("eks-pod-identity-token", KubernetesToken, High,
            &["/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/**/eks-pod-identity-token",
              "/run/secrets/pods.eks.amazonaws.com/serviceaccount/**/eks-pod-identity-token"],
            "EKS Pod Identity token, exchangeable for AWS credentials")
            .mitre(&[APP_TOKEN]),
        e("azure-workload-identity-token", KubernetesToken, High,
            &["/var/run/secrets/azure/tokens/**/azure-identity-token",
              "/run/secrets/azure/tokens/**/azure-identity-token"],
            "Azure Workload Identity federated token, exchangeable for Entra ID tokens")
            .mitre(&[APP_TOKEN]),
        e("kubeconfig-user", Kubeconfig, High, &["~/.kube/config"],
            "User kubeconfig; counts when it embeds a client key, token or password rather than an exec plugin")
            .content(any(&["client-key-data", "client-key:", "token:", "password:"])).mitre(&[FILES, CONTAINER_API])
            .clients(&["kubectl", "helm", "k9s", "kustomize", "oc", "kubectx", "kubens", "flux", "argocd", "stern"]),
        e("kubernetes-admin-kubeconfig", Kubeconfig, Critical,
            &["/etc/kubernetes/admin.conf", "/etc/kubernetes/super-admin.conf"],
            "kubeadm cluster-admin kubeconfig")
            .mitre(&[FILES, CONTAINER_API])
            .clients(&["kubectl", "kubeadm", "helm"]),
        e("kubernetes-component-kubeconfig", Kubeconfig, High,
            &["/etc/kubernetes/kubelet.conf", "/etc/kubernetes/bootstrap-kubelet.conf",
              "/etc/kubernetes/controller-manager.conf", "/etc/kubernetes/scheduler.conf",
              "/var/lib/kubelet/kubeconfig"],
            "Kubeconfigs of the kubelet and control-plane components")
            .mitre(&[FILES, CONTAINER_API])
            .clients(&["kubelet", "kube-controller-manager", "kube-scheduler", "kubeadm", "kubectl"]),
        e("k3s-rke2-admin-kubeconfig", Kubeconfig, Critical,
            &["/etc/rancher/k3s/k3s.yaml", "/etc/rancher/rke2/rke2.yaml"],
            "k3s/RKE2 cluster-admin kubeconfig")
            .mitre(&[FILES, CONTAINER_API])
            .clients(&["k3s", "rke2", "kubectl", "helm"]),
        e("k3s-rke2-join-token", KubernetesToken, Critical,
            &["/var/lib/rancher/k3s/server/token", "/var/lib/rancher/k3s/server/node-token",
              "/var/lib/rancher/k3s/server/agent-token", "/var/lib/rancher/rke2/server/token",
              "/var/lib/rancher/rke2/server/node-token", "/var/lib/rancher/rke2/server/agent-token"],
            "k3s/RKE2 server and node join tokens")
            .mitre(&[FILES])
            .clients(&["k3s", "rke2"]),
        e("kubernetes-pki-key", PrivateKey, Critical, &["/etc/kubernetes/pki/**/*.key"],
            "Kubernetes control-plane private keys (cluster CA, API server, service-account signing key)")
            .content(PrivateKeyBlock).mitre(&[KEYS])
            .clients(&["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubeadm", "kubelet", "etcd"]),
        e("etcd-pki-key", PrivateKey, Critical,
            &["/etc/kubernetes/pki/etcd/*.key", "/etc/etcd/**/*.key", "/etc/etcd/**/*-key.pem",
              "/etc/ssl/etcd/**/*-key.pem"],
            "etcd CA, peer and client private keys: whoever holds them reads every cluster secret")
            .content(PrivateKeyBlock).mitre(&[KEYS])
            .clients(&["etcd", "etcdctl", "kube-apiserver", "kubeadm"]),
        e("kubelet-pki-key", PrivateKey, High,
            &["/var/lib/kubelet/pki/*.key", "/var/lib/kubelet/pki/kubelet-*.pem"],
            "Kubelet client and serving private keys")
            .content(PrivateKeyBlock).mitre(&[KEYS])
            .clients(&["kubelet", "kubeadm"]),
        e("kubelet-registry-config", RegistryCredentials, High, &["/var/lib/kubelet/config.json"],
            "Kubelet image-pull credentials")
            .content(registry_auth()).mitre(&[FILES])
            .clients(&["kubelet", "containerd", "crio", "dockerd"]),
        // SSH, GPG and other private keys.
        e("ssh-private-key", PrivateKey, High, &["~/.ssh/id_*", "~/.ssh/*.pem", "~/.ssh/*.key"],
            "User SSH private keys")
            .exclude(&["**/*.pub"]).content(PrivateKeyBlock).mitre(&[KEYS])
            .clients(&["ssh", "ssh-keygen", "ssh-add", "ssh-agent", "scp", "sftp"]),
        e("ssh-host-private-key", PrivateKey, High, &["/etc/ssh/ssh_host_*_key"],
            "SSH server host private keys: whoever holds them can impersonate the host")
            .content(PrivateKeyBlock).mitre(&[KEYS])
            .clients(&["sshd", "sshd-session", "sshd-auth", "ssh-keysign", "ssh-keygen"]),
        e("gpg-private-keys", PrivateKey, High, &["~/.gnupg/private-keys-v1.d/*.key"],
            "GnuPG 2.1+ secret keys")
            .mitre(&[KEYS])
            .clients(&["gpg", "gpg2", "gpg-agent", "gpgsm"]),
        e("gpg-secret-keyring", PrivateKey, High, &["~/.gnupg/secring.gpg"],
            "GnuPG 1.x secret keyring")
            .mitre(&[KEYS])
            .clients(&["gpg", "gpg1", "gpg2", "gpg-agent"]),
        e("sops-age-key", PrivateKey, High, &["~/.config/sops/age/keys.txt"],
            "age identities SOPS decrypts secrets with")
            .content(any(&["AGE-SECRET-KEY-"])).mitre(&[KEYS])
            .clients(&["sops", "age"]),
        // Container registries.
        e("docker-config", RegistryCredentials, High, &["~/.docker/config.json", "~/.dockercfg"],
            "Docker client registry credentials; counts when they are stored inline rather than in a credential helper")
            .content(registry_auth()).mitre(&[FILES])
            .clients(&["docker", "podman", "buildah", "skopeo", "nerdctl", "crane"]),
        e("containers-auth", RegistryCredentials, High,
            &["~/.config/containers/auth.json", "/run/containers/*/auth.json",
              "/run/user/*/containers/auth.json"],
            "Podman/Buildah/Skopeo registry credentials")
            .content(registry_auth()).mitre(&[FILES])
            .clients(&["docker", "podman", "buildah", "skopeo", "nerdctl", "crane"]),
        e("docker-client-tls-key", PrivateKey, High, &["~/.docker/key.pem"],
            "Docker client TLS key for a remote daemon (daemon access is root on that host)")
            .content(PrivateKeyBlock).mitre(&[KEYS])
            .clients(&["docker"]),
        e("helm-registry-config", RegistryCredentials, High, &["~/.config/helm/registry/config.json"],
            "Helm OCI registry credentials")
            .content(registry_auth()).mitre(&[FILES])
            .clients(&["helm"]),
        e("helm-repositories", RegistryCredentials, Medium, &["~/.config/helm/repositories.yaml"],
            "Helm chart repositories; counts when a repository has a password")
            .content(any(&["password:"])).mitre(&[FILES])
            .clients(&["helm"]),
        // Package registries.
        e("npmrc", PackageRegistryToken, High, &["**/.npmrc"],
            "npm registry auth tokens, user or project level")
            .content(any(&["_auth", "_password"])).mitre(&[FILES])
            .clients(&["npm", "yarn", "pnpm", "npx"]),
        e("yarnrc", PackageRegistryToken, High, &["**/.yarnrc.yml"],
            "Yarn Berry registry auth tokens")
            .content(any(&["npmAuthToken", "npmAuthIdent"])).mitre(&[FILES])
            .clients(&["yarn"]),
        e("pypirc", PackageRegistryToken, High, &["~/.pypirc"],
            "PyPI upload credentials")
            .content(any(&["password"])).mitre(&[FILES])
            .clients(&["twine"]),
        e("pip-config-credentials", PackageRegistryToken, Medium,
            &["~/.config/pip/pip.conf", "~/.pip/pip.conf", "/etc/pip.conf"],
            "pip config; counts when an index URL embeds user:password")
            .content(re(url_userinfo)).mitre(&[FILES])
            .clients(&["pip", "pip3"]),
        e("cargo-credentials", PackageRegistryToken, High,
            &["~/.cargo/credentials", "~/.cargo/credentials.toml"],
            "crates.io and alternative registry tokens")
            .content(any(&["token"])).mitre(&[FILES])
            .clients(&["cargo"]),
        e("rubygems-credentials", PackageRegistryToken, High,
            &["~/.gem/credentials", "~/.local/share/gem/credentials"],
            "RubyGems API keys")
            .mitre(&[FILES])
            .clients(&["gem"]),
        e("maven-settings", PackageRegistryToken, Medium,
            &["~/.m2/settings.xml", "~/.m2/settings-security.xml"],
            "Maven server passwords and the master password that decrypts them")
            .content(any(&["<password>", "<privateKey>", "<passphrase>", "<master>"])).mitre(&[FILES])
            .clients(&["mvn"]),
        e("gradle-properties", PackageRegistryToken, Medium, &["~/.gradle/gradle.properties"],
            "Gradle user properties; counts when a property named like a password, token or secret is set")
            .content(re(r"(?im)^[ \t]*[A-Za-z0-9_.-]*(password|passwd|token|secret|apikey|api_key)[A-Za-z0-9_.-]*[ \t]*[=:][ \t]*\S"))
            .mitre(&[FILES])
            .clients(&["gradle"]),
        e("nuget-config", PackageRegistryToken, Medium,
            &["~/.nuget/NuGet/NuGet.Config", "~/.config/NuGet/NuGet.Config"],
            "NuGet package source credentials")
            .content(any(&["Password"])).mitre(&[FILES])
            .clients(&["nuget", "dotnet"]),
        e("composer-auth", PackageRegistryToken, High,
            &["~/.composer/auth.json", "~/.config/composer/auth.json"],
            "PHP Composer repository credentials and OAuth tokens")
            .mitre(&[FILES])
            .clients(&["composer"]),
        // Version control.
        e("git-credentials", VcsCredentials, High, &["~/.git-credentials", "~/.config/git/credentials"],
            "git credential-store passwords and tokens in clear text")
            .mitre(&[FILES])
            .clients(&["git", "git-credential-store", "git-credential-cache", "git-credential-cache--daemon", "git-credential-libsecret", "git-remote-http", "git-remote-https"]),
        e("github-cli-hosts", VcsCredentials, High, &["~/.config/gh/hosts.yml"],
            "GitHub CLI OAuth tokens stored in the file instead of the keyring")
            .content(any(&["oauth_token"])).mitre(&[FILES, APP_TOKEN])
            .clients(&["gh"]),
        e("hub-config", VcsCredentials, High, &["~/.config/hub"],
            "hub (GitHub) CLI OAuth token")
            .content(any(&["oauth_token"])).mitre(&[FILES, APP_TOKEN])
            .clients(&["hub"]),
        e("gitlab-cli-config", VcsCredentials, High, &["~/.config/glab-cli/config.yml"],
            "GitLab CLI tokens")
            .content(any(&["token"])).mitre(&[FILES, APP_TOKEN])
            .clients(&["glab"]),
        e("netrc", GenericCredentials, High, &["~/.netrc", "~/_netrc"],
            "netrc logins used by curl, git, ftp and Go module downloads")
            .content(any(&["password"])).mitre(&[FILES])
            .clients(&["curl", "wget", "git", "git-remote-http", "git-remote-https", "ftp", "lftp", "go"]),
        // Databases.
        e("pgpass", DatabaseCredentials, High, &["~/.pgpass"],
            "PostgreSQL client password file")
            .mitre(&[FILES])
            .clients(&["psql", "pg_dump", "pg_dumpall", "pg_restore", "pg_basebackup", "pg_isready", "pgbench", "createdb", "dropdb", "createuser", "dropuser", "vacuumdb", "reindexdb", "clusterdb"]),
        e("mysql-client-config", DatabaseCredentials, High, &["~/.my.cnf"],
            "MySQL/MariaDB client options; counts when a password is set")
            .content(any(&["password"])).mitre(&[FILES])
            .clients(&["mysql", "mysqldump", "mysqladmin", "mysqlcheck", "mariadb", "mariadb-dump", "mariadb-admin", "mariadb-check"]),
        e("mysql-login-path", DatabaseCredentials, Medium, &["~/.mylogin.cnf"],
            "mysql_config_editor login paths (obfuscated, trivially reversible)")
            .mitre(&[FILES])
            .clients(&["mysql", "mysqldump", "mysqladmin", "mysqlcheck", "mariadb", "mariadb-dump", "mariadb-admin", "mariadb-check", "mysql_config_editor"]),
        e("mysql-debian-maintenance", DatabaseCredentials, High, &["/etc/mysql/debian.cnf"],
            "Debian MySQL/MariaDB maintenance account password")
            .content(any(&["password"])).mitre(&[FILES])
            .clients(&["mysql", "mysqldump", "mysqladmin", "mysqlcheck", "mariadb", "mariadb-dump", "mariadb-admin", "mariadb-check"]),
        e("mongodb-shell-rc", DatabaseCredentials, Medium, &["~/.mongorc.js", "~/.mongoshrc.js"],
            "MongoDB shell start-up script; counts when it authenticates")
            .content(re(r"(?i)(password|pwd\s*:|\.auth\s*\()")).mitre(&[FILES])
            .clients(&["mongo", "mongosh"]),
        e("redis-server-config", DatabaseCredentials, Medium,
            &["/etc/redis/redis.conf", "/etc/redis.conf", "/etc/redis/sentinel.conf"],
            "Redis server config; counts when requirepass or masterauth is set")
            .content(re(r"(?m)^[ \t]*(requirepass|masterauth)[ \t]+\S")).mitre(&[FILES])
            .clients(&["redis-server", "redis-sentinel", "redis-check-rdb", "redis-check-aof"]),
        // Environment files.
        e("dotenv", Dotenv, Medium, &["**/.env", "**/.env.*"],
            "dotenv files in any directory; templates (.env.example and the like) are excluded")
            .exclude(&["**/.env.example", "**/.env.sample", "**/.env.template", "**/.env.dist", "**/.env.*.example"])
            .mitre(&[FILES]),
        e("direnv-envrc", Dotenv, Medium, &["**/.envrc"],
            "direnv files; counts when they set a variable named like a secret")
            .content(re(r"(?i)[A-Z0-9_]*(SECRET|TOKEN|PASSWORD|PASSWD|API_?KEY|ACCESS_KEY|PRIVATE_KEY)[A-Z0-9_]*="))
            .mitre(&[FILES]),
        // Secret managers, infrastructure tools and CI.
        e("vault-token", VaultToken, High, &["~/.vault-token"],
            "HashiCorp Vault token cached by `vault login`")
            .mitre(&[APP_TOKEN, FILES])
            .clients(&["vault", "terraform"]),
        e("terraform-cli-credentials", ApiToken, High, &["~/.terraform.d/credentials.tfrc.json"],
            "Terraform Cloud/Enterprise API tokens written by `terraform login`")
            .mitre(&[APP_TOKEN, FILES])
            .clients(&["terraform"]),
        e("terraform-state", GenericCredentials, Medium, &["**/terraform.tfstate", "**/terraform.tfstate.backup"],
            "Terraform state, which keeps resource attributes (generated passwords, keys) in clear text")
            .mitre(&[FILES]),
        e("pulumi-credentials", ApiToken, High, &["~/.pulumi/credentials.json"],
            "Pulumi Cloud access tokens")
            .content(any(&["accessToken"])).mitre(&[APP_TOKEN, FILES])
            .clients(&["pulumi"]),
        e("databricks-cli-config", ApiToken, High, &["~/.databrickscfg"],
            "Databricks CLI profiles with personal access tokens or passwords")
            .content(any(&["token", "password"])).mitre(&[APP_TOKEN, FILES])
            .clients(&["databricks"]),
        e("huggingface-token", ApiToken, High, &["~/.cache/huggingface/token", "~/.huggingface/token"],
            "Hugging Face Hub access token")
            .mitre(&[APP_TOKEN, FILES])
            .clients(&["huggingface-cli"]),
        e("gitlab-runner-config", CiCredentials, High,
            &["/etc/gitlab-runner/config.toml", "~/.gitlab-runner/config.toml"],
            "GitLab Runner registration and authentication tokens")
            .content(any(&["token"])).mitre(&[FILES])
            .clients(&["gitlab-runner"]),
        e("jenkins-secrets", CiCredentials, Critical,
            &["/var/lib/jenkins/secrets/master.key", "/var/lib/jenkins/secrets/hudson.util.Secret",
              "/var/lib/jenkins/credentials.xml"],
            "Jenkins credential store and the keys that decrypt it")
            .mitre(&[FILES]),
        // Developer platforms, SaaS and AI-provider CLIs.
        e("snowflake-cli-connections", DatabaseCredentials, High,
            &["~/.snowflake/connections.toml", "~/.snowflake/config.toml", "~/.snowsql/config"],
            "Snowflake CLI and SnowSQL connections; counts when one holds a password, token or key passphrase")
            .content(any(&["password", "token", "private_key_passphrase"])).mitre(&[FILES])
            .clients(&["snow", "snowsql"]),
        e("cloudflare-wrangler-config", ApiToken, High,
            &["~/.wrangler/config/default.toml", "~/.config/.wrangler/config/default.toml"],
            "Cloudflare wrangler OAuth or API token")
            .content(any(&["oauth_token", "api_token", "refresh_token"])).mitre(&[APP_TOKEN, FILES])
            .clients(&["wrangler"]),
        e("flyio-config", ApiToken, High, &["~/.fly/config.yml"],
            "Fly.io flyctl access token")
            .content(any(&["access_token"])).mitre(&[APP_TOKEN, FILES])
            .clients(&["flyctl", "fly"]),
        e("ngrok-config", ApiToken, High, &["~/.config/ngrok/ngrok.yml", "~/.ngrok2/ngrok.yml"],
            "ngrok agent authtoken and API key: whoever holds them opens tunnels on the account")
            .content(any(&["authtoken", "api_key"])).mitre(&[APP_TOKEN, FILES])
            .clients(&["ngrok"]),
        e("sentry-cli-config", ApiToken, High, &["~/.sentryclirc"],
            "Sentry CLI auth token")
            .content(any(&["token"])).mitre(&[APP_TOKEN, FILES])
            .clients(&["sentry-cli"]),
        e("kaggle-api-key", ApiToken, High, &["~/.kaggle/kaggle.json", "~/.config/kaggle/kaggle.json"],
            "Kaggle API username and key")
            .content(any(&["\"key\""])).mitre(&[APP_TOKEN, FILES])
            .clients(&["kaggle"]),
        e("firebase-tools-config", ApiToken, High, &["~/.config/configstore/firebase-tools.json"],
            "Firebase CLI login: Google OAuth refresh token")
            .content(any(&["refresh_token"])).mitre(&[APP_TOKEN, FILES])
            .clients(&["firebase"]),
        e("vercel-cli-auth", ApiToken, High,
            &["~/.local/share/com.vercel.cli/auth.json", "~/.config/com.vercel.cli/auth.json"],
            "Vercel CLI access token")
            .content(any(&["token"])).mitre(&[APP_TOKEN, FILES])
            .clients(&["vercel"]),
        e("netlify-cli-config", ApiToken, High, &["~/.config/netlify/config.json", "~/.netlify/config.json"],
            "Netlify CLI user access tokens")
            .content(any(&["token"])).mitre(&[APP_TOKEN, FILES])
            .clients(&["netlify"]),
        e("circleci-cli-config", CiCredentials, High, &["~/.circleci/cli.yml"],
            "CircleCI CLI personal API token")
            .content(any(&["token"])).mitre(&[APP_TOKEN, FILES])
            .clients(&["circleci"]),
        e("stripe-cli-config", ApiToken, High, &["~/.config/stripe/config.toml"],
            "Stripe CLI API keys (test and live mode)")
            .content(any(&["api_key"])).mitre(&[APP_TOKEN, FILES])
            .clients(&["stripe"]),
        e("doppler-cli-config", ApiToken, High, &["~/.doppler/.doppler.yaml"],
            "Doppler CLI tokens, each of which reads a project's secrets")
            .content(any(&["token"])).mitre(&[APP_TOKEN, FILES])
            .clients(&["doppler"]),
        e("github-copilot-tokens", VcsCredentials, High,
            &["~/.config/github-copilot/hosts.json", "~/.config/github-copilot/apps.json"],
            "GitHub Copilot editor plugin OAuth tokens for the GitHub account")
            .content(any(&["oauth_token"])).mitre(&[APP_TOKEN, FILES])
            .clients(&["copilot-language-server"]),
        e("claude-code-credentials", ApiToken, High, &["~/.claude/.credentials.json"],
            "Anthropic Claude Code OAuth access and refresh tokens")
            .mitre(&[APP_TOKEN, FILES])
            .clients(&["claude"]),
        e("openai-codex-auth", ApiToken, High, &["~/.codex/auth.json"],
            "OpenAI Codex CLI API key or ChatGPT OAuth tokens")
            .content(any(&["OPENAI_API_KEY", "refresh_token", "access_token"])).mitre(&[APP_TOKEN, FILES])
            .clients(&["codex"]),
        e("gemini-cli-oauth", ApiToken, High, &["~/.gemini/oauth_creds.json"],
            "Google Gemini CLI OAuth refresh token")
            .content(any(&["refresh_token"])).mitre(&[APP_TOKEN, FILES])
            .clients(&["gemini"]),
        e("llm-cli-keys", ApiToken, High, &["~/.config/io.datasette.llm/keys.json"],
            "API keys of AI providers stored by the `llm` CLI")
            .mitre(&[APP_TOKEN, FILES])
            .clients(&["llm"]),
        e("tailscale-node-state", VpnKey, High, &["/var/lib/tailscale/tailscaled.state"],
            "Tailscale node state with the machine and node private keys: whoever holds it joins the tailnet as this node")
            .mitre(&[KEYS])
            .clients(&["tailscaled"]),
        // Histories.
        e("shell-history", History, Medium,
            &["~/.bash_history", "~/.zsh_history", "~/.history", "~/.sh_history", "~/.ash_history",
              "~/.local/share/fish/fish_history"],
            "Shell histories, where typed passwords and exported tokens end up")
            .mitre(&[HISTORY])
            .clients(&["bash", "zsh", "fish", "ksh", "mksh", "ksh93"]),
        e("database-client-history", History, Medium,
            &["~/.psql_history", "~/.mysql_history", "~/.sqlite_history", "~/.rediscli_history",
              "~/.dbshell", "~/.mongodb/mongosh/mongosh_repl_history"],
            "Database client histories (`ALTER USER ... PASSWORD`, `AUTH`)")
            .mitre(&[HISTORY, FILES])
            .clients(&["psql", "mysql", "mariadb", "sqlite3", "redis-cli", "mongo", "mongosh"]),
        e("repl-history", History, Low, &["~/.python_history", "~/.node_repl_history", "~/.irb_history"],
            "Interactive interpreter histories")
            .mitre(&[HISTORY, FILES]),
        // System password stores.
        e("shadow", PasswordFile, Critical, &["/etc/shadow", "/etc/shadow-"],
            "Local account password hashes")
            .mitre(&[SHADOW])
            .clients(&["su", "sudo", "runuser", "login", "unix_chkpwd", "unix_update", "passwd", "chage", "chpasswd", "chfn", "chsh", "expiry", "useradd", "userdel", "usermod", "newusers", "pwck", "grpck", "vipw", "vigr", "pwconv", "pwunconv", "grpconv", "grpunconv", "gpasswd", "groupadd", "groupdel", "groupmod", "newgrp", "sg", "cron", "sshd", "sshd-session", "sshd-auth"]),
        e("gshadow", PasswordFile, High, &["/etc/gshadow", "/etc/gshadow-"],
            "Group password hashes")
            .mitre(&[SHADOW])
            .clients(&["gpasswd", "groupadd", "groupdel", "groupmod", "grpck", "newgrp", "sg", "useradd", "userdel", "usermod", "vigr", "grpconv", "grpunconv", "chgpasswd", "newusers", "su", "sudo", "runuser", "login", "sshd", "sshd-session", "sshd-auth"]),
        e("security-opasswd", PasswordFile, High, &["/etc/security/opasswd"],
            "Previous password hashes kept by pam_pwhistory/pam_unix")
            .mitre(&[SHADOW])
            .clients(&["passwd", "chpasswd", "unix_chkpwd", "unix_update"]),
        e("htpasswd", PasswordFile, Medium, &["**/.htpasswd"],
            "HTTP basic-auth password hashes")
            .mitre(&[FILES])
            .clients(&["htpasswd", "nginx", "apache2"]),
        e("samba-secrets", PasswordFile, High,
            &["/var/lib/samba/private/secrets.tdb", "/var/lib/samba/private/passdb.tdb"],
            "Samba machine account secret and user password hashes")
            .mitre(&[FILES])
            .clients(&["smbd", "nmbd", "winbindd", "samba", "pdbedit", "net", "smbpasswd"]),
        // TLS, Kerberos, VPN.
        e("tls-private-key", PrivateKey, High,
            &["/etc/**/*.key", "/etc/ssl/private/*.pem", "/etc/pki/tls/private/*.pem"],
            "TLS and other private keys kept under /etc")
            .content(PrivateKeyBlock).mitre(&[KEYS])
            .clients(&["nginx", "apache2", "haproxy", "slapd", "dovecot", "exim4", "smtpd", "postfix"]),
        e("letsencrypt-private-key", PrivateKey, High,
            &["/etc/letsencrypt/live/*/privkey.pem", "/etc/letsencrypt/archive/*/privkey*.pem"],
            "Let's Encrypt certificate private keys")
            .content(PrivateKeyBlock).mitre(&[KEYS])
            .clients(&["certbot", "nginx", "apache2", "haproxy"]),
        e("kerberos-keytab", Keytab, High, &["/etc/krb5.keytab", "/etc/**/*.keytab"],
            "Kerberos keytabs: long-term keys of the host or of services")
            .mitre(&[FILES, KERBEROS])
            .clients(&["kinit", "klist", "ktutil", "sshd", "sshd-session", "sssd", "krb5kdc", "kadmind", "msktutil", "adcli", "gssproxy"]),
        e("kerberos-ticket-cache", Keytab, High, &["/tmp/krb5cc_*"],
            "Kerberos credential caches (ticket-granting tickets)")
            .mitre(&[CCACHE])
            .clients(&["kinit", "klist", "kdestroy", "kvno", "ssh", "sshd", "sshd-session", "gssproxy"]),
        e("wireguard-config", VpnKey, High, &["/etc/wireguard/*.conf"],
            "WireGuard interface config with its private key")
            .content(any(&["PrivateKey"])).mitre(&[KEYS])
            .clients(&["wg", "wg-quick", "wireguard-go"]),
        e("networkmanager-connection-secrets", VpnKey, Medium,
            &["/etc/NetworkManager/system-connections/*.nmconnection"],
            "NetworkManager connections; counts when they hold a Wi-Fi PSK, a password or a VPN secret")
            .content(any(&["psk=", "password=", "private-key=", "secrets="])).mitre(&[FILES])
            .clients(&["NetworkManager", "nmcli"]),
    ]
}

#[cfg(test)]
#[path = "builtin_tests.rs"]
mod tests;
