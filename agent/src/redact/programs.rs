//! Per-program knowledge: which options carry a secret, and in which form,
//! where one flag means different things to different tools.

/// How a secret sits in an option's value.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Form {
    /// The whole value.
    Whole,
    /// `user:password` (curl `-u`); a value without `:` names a user only.
    AfterColon,
    /// `user%password` (smbclient `-U`).
    AfterPercent,
    /// `Name: value`, secret when the header name is (curl `-H`).
    Header,
    /// `name=value; ...` (curl `-b`); a value without `=` is a cookie file.
    Cookie,
    /// openssl's `pass:X` (`env:`, `file:`, `fd:`, `stdin` only point at it).
    OpensslPass,
    /// The next argument is a shell script (`sh -c`).
    Shell,
}

/// Whether a short option's value may be glued to it (`-pSECRET`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Attached {
    /// Only glued: mysql's `-p` alone prompts, the next word is a database.
    Only,
    /// Glued or the next word.
    Either,
    /// Never glued: openssl's `-k` is not the `k` of `-key`.
    Never,
    /// A cluster of boolean letters containing it (`bash -lc`).
    InCluster,
}

#[derive(Default)]
pub(super) struct Program {
    pub(super) short: &'static [(char, Attached, Form)],
    /// Options (without dashes) whose value is secret here although the name
    /// says nothing, or whose value has a form.
    pub(super) long: &'static [(&'static str, Form)],
    /// Credential-named options that take no separate value here
    /// (`mysql --password` prompts; `--password=X` is still a secret).
    pub(super) bare: &'static [&'static str],
    /// Credential-named options whose value is not a secret here
    /// (`docker build --secret id=npmrc,src=...`).
    pub(super) not_secret: &'static [&'static str],
    /// The short options only mean a secret after this word
    /// (`docker login -p` but `docker run -p 8080:80`).
    pub(super) after: Option<&'static str>,
    /// The first positional starts a command of its own (`sshpass -p X ssh -p 22 h`).
    pub(super) then_command: bool,
    /// Positionals are a remote shell line (`ssh host 'mysql -pX'`).
    pub(super) remote_shell: bool,
}

pub(super) const MYSQL: &[&str] = &[
    "mysql",
    "mysqldump",
    "mysqladmin",
    "mysqlimport",
    "mysqlcheck",
    "mysqlshow",
    "mysqlpump",
    "mysqlslap",
    "mysqlbinlog",
    "mariadb",
    "mariadb-dump",
    "mariadb-admin",
    "mariadb-import",
    "mariadb-check",
];
pub(super) const POSTGRES: &[&str] = &[
    "psql",
    "pg_dump",
    "pg_dumpall",
    "pg_restore",
    "pg_basebackup",
    "pgbench",
    "createdb",
    "dropdb",
    "createuser",
    "vacuumdb",
    "reindexdb",
    "clusterdb",
];
pub(super) const REGISTRY_LOGIN: &[&str] = &[
    "docker", "podman", "nerdctl", "buildah", "skopeo", "helm", "oras", "crane", "az",
];
pub(super) const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "busybox", "su", "runuser",
];
pub(super) const MONGO: &[&str] = &[
    "mongo",
    "mongosh",
    "mongodump",
    "mongorestore",
    "mongoexport",
    "mongoimport",
    "mongostat",
    "mongotop",
];
pub(super) const LDAP: &[&str] = &[
    "ldapsearch",
    "ldapadd",
    "ldapmodify",
    "ldapdelete",
    "ldapwhoami",
    "ldapmodrdn",
    "ldapcompare",
    "ldapexop",
    "ldappasswd",
];

/// What this program's options mean where it differs from the default.
pub(super) fn program(name: &str) -> Program {
    use Attached::*;
    use Form::*;
    if MYSQL.contains(&name) {
        return Program {
            short: &[('p', Only, Whole)],
            bare: &["password"],
            ..Default::default()
        };
    }
    if POSTGRES.contains(&name) {
        // `-p` is the port, `-W`/`--password` force a prompt.
        return Program {
            bare: &["password"],
            ..Default::default()
        };
    }
    if REGISTRY_LOGIN.contains(&name) {
        return Program {
            short: &[('p', Either, Whole)],
            not_secret: if name == "helm" { &[] } else { &["secret"] },
            after: Some("login"),
            ..Default::default()
        };
    }
    if SHELLS.contains(&name) {
        return Program {
            short: &[('c', InCluster, Shell)],
            long: &[("command", Shell)],
            ..Default::default()
        };
    }
    if MONGO.contains(&name) {
        return Program {
            short: &[('p', Either, Whole)],
            ..Default::default()
        };
    }
    if LDAP.contains(&name) {
        return Program {
            short: if name == "ldappasswd" {
                &[
                    ('w', Either, Whole),
                    ('a', Either, Whole),
                    ('s', Either, Whole),
                ]
            } else {
                &[('w', Either, Whole)]
            },
            ..Default::default()
        };
    }
    match name {
        "sshpass" => Program {
            short: &[('p', Either, Whole)],
            then_command: true,
            ..Default::default()
        },
        "ssh" => Program {
            remote_shell: true,
            ..Default::default()
        },
        "redis-cli" | "valkey-cli" | "keydb-cli" => Program {
            short: &[('a', Either, Whole)],
            bare: &["askpass"],
            ..Default::default()
        },
        "curl" => Program {
            short: &[
                ('u', Either, AfterColon),
                ('U', Either, AfterColon),
                ('H', Either, Header),
                ('b', Either, Cookie),
                ('E', Either, AfterColon),
            ],
            long: &[
                ("user", AfterColon),
                ("proxy-user", AfterColon),
                ("header", Header),
                ("proxy-header", Header),
                ("cookie", Cookie),
                ("cert", AfterColon),
                ("proxy-cert", AfterColon),
                ("oauth2-bearer", Whole),
            ],
            ..Default::default()
        },
        "wget" => Program {
            long: &[("header", Header)],
            ..Default::default()
        },
        "http" | "https" | "httpie" => Program {
            short: &[('a', Either, AfterColon)],
            long: &[("auth", AfterColon)],
            ..Default::default()
        },
        "openssl" => Program {
            short: &[('k', Never, Whole), ('K', Never, Whole)],
            long: &[
                ("passin", OpensslPass),
                ("passout", OpensslPass),
                ("pass", OpensslPass),
                ("password", OpensslPass),
            ],
            ..Default::default()
        },
        "keytool" => Program {
            long: &[
                ("storepass", Whole),
                ("keypass", Whole),
                ("srcstorepass", Whole),
                ("deststorepass", Whole),
                ("srckeypass", Whole),
                ("destkeypass", Whole),
                ("new", Whole),
            ],
            ..Default::default()
        },
        "smbclient" | "rpcclient" | "smbcacls" | "smbget" => Program {
            short: &[('U', Either, AfterPercent)],
            long: &[("user", AfterPercent)],
            ..Default::default()
        },
        "gh" => Program {
            short: &[('b', Either, Whole)],
            long: &[("body", Whole)],
            after: Some("secret"),
            ..Default::default()
        },
        _ => Program::default(),
    }
}

/// Commands that run the rest of their argv as another command, with the
/// options that take a value (skipped with it).
pub(super) fn wrapper(name: &str) -> Option<&'static [&'static str]> {
    Some(match name {
        "sudo" | "doas" => &["-u", "-g", "-h", "-p", "-C", "-D", "-r", "-t", "-U", "-T"],
        "env" => &["-u", "-C", "--unset", "--chdir"],
        "nice" => &["-n"],
        "ionice" => &["-c", "-n", "-p"],
        "timeout" => &["-s", "-k", "--signal", "--kill-after"],
        "nohup" | "time" | "exec" | "command" | "setsid" | "stdbuf" | "unbuffer" | "xargs"
        | "chronic" => &[],
        _ => return None,
    })
}
