//! The redaction table: command lines as the tools' manuals write them,
//! what must come out, and what must stay untouched.

use super::*;

fn r(v: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    redact_args(&mut a);
    a
}

/// Command lines as the tools' own manuals write them, and what the
/// event must show: the secret gone, every other word as it was.
const REDACTED_LINES: &[(&[&str], &[&str])] = &[
        // mysql(1): "-p[password]: no space between the option and the password".
        (&["mysql", "-uroot", "-pS3cret!", "shop"], &["mysql", "-uroot", "-p<redacted>", "shop"]),
        (&["mysql", "-h", "db.internal", "-u", "app", "--password=S3cret!", "shop"], &["mysql", "-h", "db.internal", "-u", "app", "--password=<redacted>", "shop"]),
        (&["mysqldump", "-u", "backup", "-pS3cret!", "--single-transaction", "shop"], &["mysqldump", "-u", "backup", "-p<redacted>", "--single-transaction", "shop"]),
        (&["mysqladmin", "-u", "root", "-pS3cret!", "status"], &["mysqladmin", "-u", "root", "-p<redacted>", "status"]),
        (&["mariadb", "--user=root", "--password=S3cret!"], &["mariadb", "--user=root", "--password=<redacted>"]),
        (&["mysql", "mysql://app:S3cret!@db.internal:3306/shop"], &["mysql", "mysql://app:<redacted>@db.internal:3306/shop"]),
        // psql(1), pg_dump(1): connection URIs and conninfo strings.
        (&["psql", "postgresql://app:S3cret@db.internal:5432/shop"], &["psql", "postgresql://app:<redacted>@db.internal:5432/shop"]),
        (&["psql", "host=db.internal port=5432 dbname=shop user=app password=S3cret"], &["psql", "host=db.internal port=5432 dbname=shop user=app password=<redacted>"]),
        (&["pg_dump", "--dbname=postgres://app:S3cret@db.internal/shop", "-Fc", "-f", "shop.dump"], &["pg_dump", "--dbname=postgres://app:<redacted>@db.internal/shop", "-Fc", "-f", "shop.dump"]),
        (&["pg_basebackup", "-d", "postgres://replicator:S3cret@primary/postgres", "-D", "/var/lib/pg"], &["pg_basebackup", "-d", "postgres://replicator:<redacted>@primary/postgres", "-D", "/var/lib/pg"]),
        // redis-cli(1): -a <password>, URIs.
        (&["redis-cli", "-h", "cache", "-a", "S3cret", "ping"], &["redis-cli", "-h", "cache", "-a", "<redacted>", "ping"]),
        (&["redis-cli", "-aS3cret", "--no-auth-warning", "info"], &["redis-cli", "-a<redacted>", "--no-auth-warning", "info"]),
        (&["redis-cli", "-u", "redis://:S3cret@cache:6379/0", "ping"], &["redis-cli", "-u", "redis://:<redacted>@cache:6379/0", "ping"]),
        (&["redis-cli", "--user", "app", "--pass", "S3cret", "ping"], &["redis-cli", "--user", "app", "--pass", "<redacted>", "ping"]),
        // curl(1): -u, -H, --header=, --oauth2-bearer, -b, -E, -d.
        (&["curl", "-u", "admin:S3cret", "https://api.example.com/"], &["curl", "-u", "admin:<redacted>", "https://api.example.com/"]),
        (&["curl", "--user=admin:S3cret", "https://api.example.com/"], &["curl", "--user=admin:<redacted>", "https://api.example.com/"]),
        (&["curl", "-uadmin:S3cret", "ftp://ftp.example.com/"], &["curl", "-uadmin:<redacted>", "ftp://ftp.example.com/"]),
        (&["curl", "-H", "Authorization: Bearer abc.def", "https://api.example.com/v1"], &["curl", "-H", "Authorization: Bearer <redacted>", "https://api.example.com/v1"]),
        (&["curl", "--header=Authorization: Basic YWRtaW46czNjcmV0", "https://api.example.com/"], &["curl", "--header=Authorization: Basic <redacted>", "https://api.example.com/"]),
        (&["curl", "--header", "X-Api-Key: 0123abcd", "https://api.example.com/"], &["curl", "--header", "X-Api-Key: <redacted>", "https://api.example.com/"]),
        (&["curl", "-H", "PRIVATE-TOKEN: S3cret", "https://gitlab.example.com/api/v4/projects"], &["curl", "-H", "PRIVATE-TOKEN: <redacted>", "https://gitlab.example.com/api/v4/projects"]),
        (&["curl", "-H", "Cookie: session=S3cret; theme=dark", "https://app.example.com/"], &["curl", "-H", "Cookie: <redacted>", "https://app.example.com/"]),
        (&["curl", "-H", "X-Auth-Token: S3cret", "-H", "Accept: application/json", "https://api.example.com/"], &["curl", "-H", "X-Auth-Token: <redacted>", "-H", "Accept: application/json", "https://api.example.com/"]),
        (&["curl", "--oauth2-bearer", "S3cret", "imap://mail.example.com/"], &["curl", "--oauth2-bearer", "<redacted>", "imap://mail.example.com/"]),
        (&["curl", "-b", "session=S3cret", "https://app.example.com/"], &["curl", "-b", "session=<redacted>", "https://app.example.com/"]),
        (&["curl", "-E", "client.pem:S3cret", "https://mtls.example.com/"], &["curl", "-E", "client.pem:<redacted>", "https://mtls.example.com/"]),
        (&["curl", "-d", "username=u&password=S3cret", "https://app.example.com/login"], &["curl", "-d", "username=u&password=<redacted>", "https://app.example.com/login"]),
        (&["curl", "-d", r#"{"user":"u","password":"S3cret"}"#, "https://app.example.com/login"], &["curl", "-d", r#"{"user":"u","password":"<redacted>"}"#, "https://app.example.com/login"]),
        (&["curl", "https://user:S3cret@example.com/x"], &["curl", "https://user:<redacted>@example.com/x"]),
        (&["curl", "https://api.example.com/v1/items?api_key=S3cret&page=2"], &["curl", "https://api.example.com/v1/items?api_key=<redacted>&page=2"]),
        // wget(1).
        (&["wget", "--user=u", "--password=S3cret", "https://files.example.com/a.tgz"], &["wget", "--user=u", "--password=<redacted>", "https://files.example.com/a.tgz"]),
        (&["wget", "--header=Authorization: Token S3cret", "https://files.example.com/a"], &["wget", "--header=Authorization: Token <redacted>", "https://files.example.com/a"]),
        (&["wget", "--http-password", "S3cret", "https://files.example.com/a"], &["wget", "--http-password", "<redacted>", "https://files.example.com/a"]),
        // aws configure set (the key id names a key: it stays when it is not an AKIA id).
        (&["aws", "configure", "set", "aws_secret_access_key", "wJalrXUtnFEMIK7MDENGbPxRfiCY0123456789ab"], &["aws", "configure", "set", "aws_secret_access_key", "<redacted>"]),
        (&["aws", "configure", "set", "aws_session_token", "IQoJb3JpZ2luX2VjEJr", "--profile", "dev"], &["aws", "configure", "set", "aws_session_token", "<redacted>", "--profile", "dev"]),
        (&["aws", "configure", "set", "default.aws_secret_access_key", "S3cret"], &["aws", "configure", "set", "default.aws_secret_access_key", "<redacted>"]),
        // vault(1).
        (&["vault", "login", "s.S3cretS3cretS3cret"], &["vault", "login", "<redacted>"]),
        (&["vault", "login", "-method=userpass", "username=mitchellh", "password=S3cret"], &["vault", "login", "-method=userpass", "username=mitchellh", "password=<redacted>"]),
        (&["vault", "write", "auth/userpass/users/mitchellh", "password=S3cret", "policies=admins"], &["vault", "write", "auth/userpass/users/mitchellh", "password=<redacted>", "policies=admins"]),
        (&["vault", "write", "auth/approle/login", "role_id=db02de05", "secret_id=6a174c20"], &["vault", "write", "auth/approle/login", "role_id=db02de05", "secret_id=<redacted>"]),
        (&["vault", "kv", "put", "secret/creds", "passcode=my-long-passcode", "db_password=S3cret"], &["vault", "kv", "put", "secret/creds", "passcode=my-long-passcode", "db_password=<redacted>"]),
        (&["vault", "operator", "unseal", "S3cretUnsealKey"], &["vault", "operator", "unseal", "<redacted>"]),
        // docker/podman/helm/az login.
        (&["docker", "login", "-u", "bot", "-p", "S3cret", "registry.example.com"], &["docker", "login", "-u", "bot", "-p", "<redacted>", "registry.example.com"]),
        (&["docker", "login", "--username", "bot", "--password", "S3cret", "ghcr.io"], &["docker", "login", "--username", "bot", "--password", "<redacted>", "ghcr.io"]),
        (&["podman", "login", "-u", "bot", "-p", "S3cret", "quay.io"], &["podman", "login", "-u", "bot", "-p", "<redacted>", "quay.io"]),
        (&["helm", "registry", "login", "registry.example.com", "-u", "bot", "-p", "S3cret"], &["helm", "registry", "login", "registry.example.com", "-u", "bot", "-p", "<redacted>"]),
        (&["helm", "repo", "add", "--username", "bot", "--password", "S3cret", "charts", "https://charts.example.com"], &["helm", "repo", "add", "--username", "bot", "--password", "<redacted>", "charts", "https://charts.example.com"]),
        (&["helm", "install", "db", "bitnami/postgresql", "--set", "auth.postgresPassword=S3cret,auth.database=shop"], &["helm", "install", "db", "bitnami/postgresql", "--set", "auth.postgresPassword=<redacted>,auth.database=shop"]),
        (&["az", "login", "--service-principal", "-u", "http://app", "-p", "S3cret", "--tenant", "contoso.com"], &["az", "login", "--service-principal", "-u", "http://app", "-p", "<redacted>", "--tenant", "contoso.com"]),
        (&["az", "storage", "blob", "list", "--account-name", "acct", "--account-key", "S3cret=="], &["az", "storage", "blob", "list", "--account-name", "acct", "--account-key", "<redacted>"]),
        (&["az", "storage", "container", "list", "--connection-string", "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=S3cret==;EndpointSuffix=core.windows.net"], &["az", "storage", "container", "list", "--connection-string", "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=<redacted>;EndpointSuffix=core.windows.net"]),
        // kubectl(1).
        (&["kubectl", "--token", "S3cret", "get", "pods"], &["kubectl", "--token", "<redacted>", "get", "pods"]),
        (&["kubectl", "--token=S3cret", "get", "pods"], &["kubectl", "--token=<redacted>", "get", "pods"]),
        (&["kubectl", "config", "set-credentials", "admin", "--username=admin", "--password=S3cret"], &["kubectl", "config", "set-credentials", "admin", "--username=admin", "--password=<redacted>"]),
        (&["kubectl", "create", "secret", "generic", "db", "--from-literal=username=app", "--from-literal=password=S3cret"], &["kubectl", "create", "secret", "generic", "db", "--from-literal=username=app", "--from-literal=password=<redacted>"]),
        (&["kubectl", "create", "secret", "docker-registry", "regcred", "--docker-server=ghcr.io", "--docker-username=bot", "--docker-password=S3cret"], &["kubectl", "create", "secret", "docker-registry", "regcred", "--docker-server=ghcr.io", "--docker-username=bot", "--docker-password=<redacted>"]),
        // htpasswd(1), sshpass(1), openssl(1), keytool, ldapsearch, smbclient.
        (&["htpasswd", "-b", "/etc/nginx/.htpasswd", "alice", "S3cret"], &["htpasswd", "-b", "/etc/nginx/.htpasswd", "alice", "<redacted>"]),
        (&["htpasswd", "-cbB", "/etc/nginx/.htpasswd", "alice", "S3cret"], &["htpasswd", "-cbB", "/etc/nginx/.htpasswd", "alice", "<redacted>"]),
        (&["htpasswd", "-nb", "alice", "S3cret"], &["htpasswd", "-nb", "alice", "<redacted>"]),
        (&["sshpass", "-p", "S3cret", "ssh", "-p", "2222", "deploy@host"], &["sshpass", "-p", "<redacted>", "ssh", "-p", "2222", "deploy@host"]),
        (&["sshpass", "-pS3cret", "scp", "a.txt", "host:/tmp"], &["sshpass", "-p<redacted>", "scp", "a.txt", "host:/tmp"]),
        (&["openssl", "pkcs12", "-export", "-in", "c.pem", "-inkey", "k.pem", "-out", "c.p12", "-passout", "pass:S3cret"], &["openssl", "pkcs12", "-export", "-in", "c.pem", "-inkey", "k.pem", "-out", "c.p12", "-passout", "pass:<redacted>"]),
        (&["openssl", "rsa", "-in", "k.pem", "-passin", "pass:S3cret", "-out", "plain.pem"], &["openssl", "rsa", "-in", "k.pem", "-passin", "pass:<redacted>", "-out", "plain.pem"]),
        (&["openssl", "enc", "-aes-256-cbc", "-salt", "-in", "f", "-out", "f.enc", "-k", "S3cret"], &["openssl", "enc", "-aes-256-cbc", "-salt", "-in", "f", "-out", "f.enc", "-k", "<redacted>"]),
        (&["keytool", "-importkeystore", "-srckeystore", "a.p12", "-srcstorepass", "S3cret", "-deststorepass", "S3cret2"], &["keytool", "-importkeystore", "-srckeystore", "a.p12", "-srcstorepass", "<redacted>", "-deststorepass", "<redacted>"]),
        (&["ldapsearch", "-x", "-D", "cn=admin,dc=example,dc=com", "-w", "S3cret", "-b", "dc=example,dc=com"], &["ldapsearch", "-x", "-D", "cn=admin,dc=example,dc=com", "-w", "<redacted>", "-b", "dc=example,dc=com"]),
        (&["smbclient", "//server/share", "-U", "alice%S3cret"], &["smbclient", "//server/share", "-U", "alice%<redacted>"]),
        (&["mount", "-t", "cifs", "//server/share", "/mnt", "-o", "username=alice,password=S3cret,uid=1000"], &["mount", "-t", "cifs", "//server/share", "/mnt", "-o", "username=alice,password=<redacted>,uid=1000"]),
        // git, npm, gh, terraform, gcloud.
        (&["git", "clone", "https://oauth2:S3cret@gitlab.example.com/group/repo.git"], &["git", "clone", "https://oauth2:<redacted>@gitlab.example.com/group/repo.git"]),
        (&["git", "-c", "http.extraHeader=Authorization: Basic S3cret", "clone", "https://example.com/r.git"], &["git", "-c", "http.extraHeader=Authorization: Basic <redacted>", "clone", "https://example.com/r.git"]),
        (&["git", "config", "--global", "user.password", "S3cret"], &["git", "config", "--global", "user.password", "<redacted>"]),
        (&["npm", "config", "set", "//registry.npmjs.org/:_authToken", "S3cret"], &["npm", "config", "set", "//registry.npmjs.org/:_authToken", "<redacted>"]),
        (&["npm", "config", "set", "//npm.example.com/:_authToken=S3cret"], &["npm", "config", "set", "//npm.example.com/:_authToken=<redacted>"]),
        (&["gh", "secret", "set", "DEPLOY_KEY", "--body", "S3cret"], &["gh", "secret", "set", "DEPLOY_KEY", "--body", "<redacted>"]),
        (&["terraform", "apply", "-var", "db_password=S3cret", "-var", "region=eu-west-1"], &["terraform", "apply", "-var", "db_password=<redacted>", "-var", "region=eu-west-1"]),
        (&["terraform", "plan", "-var=api_token=S3cret"], &["terraform", "plan", "-var=api_token=<redacted>"]),
        (&["gcloud", "sql", "users", "set-password", "root", "--host=%", "--instance=db", "--password=S3cret"], &["gcloud", "sql", "users", "set-password", "root", "--host=%", "--instance=db", "--password=<redacted>"]),
        // Generic credential-named options, values starting with `-`.
        (&["cli", "--api-key=abc123", "--token", "t0k", "--verbose"], &["cli", "--api-key=<redacted>", "--token", "<redacted>", "--verbose"]),
        (&["app", "--password", "-dash-start", "--client-secret", "S3cret"], &["app", "--password", "<redacted>", "--client-secret", "<redacted>"]),
        (&["consul", "members", "-token=S3cret"], &["consul", "members", "-token=<redacted>"]),
        (&["mongosh", "mongodb://admin:S3cret@mongo:27017/admin"], &["mongosh", "mongodb://admin:<redacted>@mongo:27017/admin"]),
        (&["mongodump", "-u", "admin", "-p", "S3cret", "--authenticationDatabase", "admin"], &["mongodump", "-u", "admin", "-p", "<redacted>", "--authenticationDatabase", "admin"]),
        // Wrappers and shell strings: the secret goes, the script stays.
        (&["sh", "-c", "tool --password S3cret --verbose"], &["sh", "-c", "tool --password <redacted> --verbose"]),
        (&["bash", "-lc", "mysql -uroot -pS3cret shop < dump.sql && echo done"], &["bash", "-lc", "mysql -uroot -p<redacted> shop < dump.sql && echo done"]),
        (&["/bin/sh", "-c", "curl -H 'Authorization: Bearer S3cret' https://api.example.com | jq ."], &["/bin/sh", "-c", "curl -H 'Authorization: Bearer <redacted>' https://api.example.com | jq ."]),
        (&["su", "-", "postgres", "-c", "PGPASSWORD=S3cret psql -h db -U app"], &["su", "-", "postgres", "-c", "PGPASSWORD=<redacted> psql -h db -U app"]),
        (&["sudo", "-u", "app", "redis-cli", "-a", "S3cret", "ping"], &["sudo", "-u", "app", "redis-cli", "-a", "<redacted>", "ping"]),
        (&["env", "MYSQL_PWD=S3cret", "mysql", "-u", "root"], &["env", "MYSQL_PWD=<redacted>", "mysql", "-u", "root"]),
        (&["kubectl", "exec", "db-0", "--", "sh", "-c", "mysql -uroot -p\"S3cret\" -e 'show databases'"], &["kubectl", "exec", "db-0", "--", "sh", "-c", "mysql -uroot -p<redacted> -e 'show databases'"]),
        (&["ssh", "deploy@host", "redis-cli -a S3cret flushall"], &["ssh", "deploy@host", "redis-cli -a <redacted> flushall"]),
    ];

#[test]
fn credentials_in_real_command_lines_are_redacted_and_the_rest_stays() {
    assert!(REDACTED_LINES.len() >= 60);
    let mut failures = Vec::new();
    for (input, expected) in REDACTED_LINES {
        let mut got: Vec<String> = input.iter().map(|s| s.to_string()).collect();
        let changed = redact_args(&mut got);
        let leaked = got.iter().any(|a| a.contains("S3cret"));
        if got != *expected || !changed || leaked {
            failures.push(format!("{input:?}\n   got {got:?}\n  want {expected:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Command lines with nothing secret: they must come out untouched.
const UNTOUCHED_LINES: &[&[&str]] = &[
    &["ssh", "-p", "2222", "deploy@host"],
    &["scp", "-P", "2222", "a.txt", "host:/tmp"],
    &["ls", "-la", "/tmp"],
    &["grep", "-r", "password", "src/"],
    &["git", "log", "--author=x"],
    &["tar", "-czf", "x.tgz", "dir"],
    &["kubectl", "get", "secret", "mysecret", "-o", "yaml"],
    &["mysql", "-u", "root", "-p"],
    &["mysql", "-u", "root", "-p", "shop"],
    &["mysql", "--password", "shop"],
    &["psql", "-h", "db", "-p", "5432", "-U", "app", "-W", "shop"],
    &["pg_dump", "-h", "db", "-p", "5432", "--password", "shop"],
    &["docker", "run", "-p", "8080:80", "-u", "1000:1000", "nginx"],
    &[
        "docker",
        "login",
        "--username",
        "bot",
        "--password-stdin",
        "ghcr.io",
    ],
    &[
        "docker",
        "build",
        "--secret",
        "id=npmrc,src=/root/.npmrc",
        ".",
    ],
    &["gh", "auth", "login", "--with-token"],
    &["gh", "pr", "create", "--body", "fixes the flaky test"],
    &[
        "helm",
        "repo",
        "add",
        "--pass-credentials",
        "charts",
        "https://charts.example.com",
    ],
    &["aws", "configure", "set", "aws_access_key_id", "test"],
    &["aws", "configure", "set", "region", "eu-west-1"],
    &["openssl", "rsa", "-in", "k.pem", "-passin", "env:KEY_PASS"],
    &["openssl", "req", "-new", "-key", "k.pem", "-out", "r.csr"],
    &["curl", "-u", "admin", "https://api.example.com/"],
    &[
        "curl",
        "-H",
        "Accept: application/json",
        "https://api.example.com/",
    ],
    &["curl", "-b", "cookies.txt", "https://app.example.com/"],
    &["mkdir", "-p", "/var/lib/app"],
    &["cp", "-p", "a", "b"],
    &["git", "config", "credential.helper", "store"],
    &[
        "gcloud",
        "auth",
        "activate-service-account",
        "--key-file=/etc/sa.json",
    ],
    &["vault", "token", "lookup"],
    &["kubectl", "--token-file", "/var/run/token", "get", "pods"],
    &[
        "app",
        "--password-file",
        "/run/secrets/db",
        "--bypass-cache",
        "x",
    ],
    &["bash", "-c", "echo hello && ls -la"],
    &["env", "PWD=/home/app", "HOME=/home/app", "make"],
    &["redis-cli", "-h", "cache", "ping"],
    &["rsync", "-a", "src/", "host:dst/"],
    &["find", "/", "-name", "*token*", "-type", "f"],
];

#[test]
fn command_lines_without_credentials_stay_untouched() {
    for input in UNTOUCHED_LINES {
        let mut got: Vec<String> = input.iter().map(|s| s.to_string()).collect();
        assert!(!redact_args(&mut got), "changed: {got:?}");
        assert_eq!(got, *input);
    }
}

/// Tokens are assembled at run time so that none sits in the source.
fn body(len: usize) -> String {
    const ALPHABET: &[u8] = b"FakeTstVau0123456789bcdfghjkmnopqrwxyzABCDEGHIJKLMNOPQRSUWXYZ";
    (0..len)
        .map(|i| ALPHABET[(i * 7 + 3) % ALPHABET.len()] as char)
        .collect()
}

#[test]
fn token_shapes_are_redacted_anywhere_in_an_argument() {
    let upper: String = body(16).to_ascii_uppercase();
    let tokens = [
        format!("AKIA{upper}"),
        format!("hvs.{}", body(24)),
        format!("xoxb-{}", body(24)),
        format!("sk_live_{}", body(24)),
        format!("rk_live_{}", body(24)),
        format!("ghp_{}", body(36)),
        format!("github_pat_{}", body(40)),
        format!("glpat-{}", body(20)),
        format!("sk-{}", body(48)),
        format!("sk-ant-{}", body(40)),
        format!("AIza{}", body(35)),
        format!("eyJ{}.eyJ{}.{}", body(12), body(12), body(20)),
    ];
    for t in &tokens {
        assert_eq!(r(&["echo", t]), ["echo", "<redacted>"], "{t}");
        assert_eq!(
            r(&["app", &format!("--config=x,{t},y")]),
            ["app", "--config=x,<redacted>,y"],
            "{t}"
        );
        assert_eq!(
            r(&["sh", "-c", &format!("deploy {t} now")]),
            ["sh", "-c", "deploy <redacted> now"],
            "{t}"
        );
    }
    let key = format!(
        "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----",
        body(64)
    );
    assert_eq!(
        r(&["app", "--ssh-key-data", &key, "-v"]),
        ["app", "--ssh-key-data", "<redacted>", "-v"]
    );
    assert_eq!(
        r(&[
            "git",
            "clone",
            &format!("https://{}@github.com/o/r.git", tokens[5])
        ]),
        ["git", "clone", "https://<redacted>@github.com/o/r.git"]
    );
}

#[test]
fn credential_names_and_lookalikes() {
    for name in [
        "password",
        "--db-password",
        "clientSecret",
        "_authToken",
        "X-Amz-Signature",
        "api_key",
        "aws_secret_access_key",
        "secret_id",
        "auth",
    ] {
        assert!(is_credential_name(name), "{name}");
    }
    for name in [
        "author",
        "password-file",
        "token-ttl",
        "aws_access_key_id",
        "bypass",
        "compass",
        "no-auth",
        "auth.database",
        "auth-type",
        "client_id",
        "key",
        "PWD",
    ] {
        assert!(!is_credential_name(name), "{name}");
    }
}
