//! The `sinks:` section: one entry per destination.
//!
//! One flat mapping per sink, keyed by `type`, so that every key is
//! documented once. Keys that belong to another sink type are rejected by
//! [`SinkConfig::validate`] with the sink named, rather than ignored.

use std::{path::PathBuf, sync::Arc, time::Duration};

use serde::Deserialize;

use crate::{
    event::Kind,
    event::Severity,
    net::http_client::Target,
    net::tls_client::{client_config, ClientTls},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkType {
    Stdout,
    File,
    Syslog,
    Hec,
    Otlp,
}

impl SinkType {
    pub fn as_str(self) -> &'static str {
        match self {
            SinkType::Stdout => "stdout",
            SinkType::File => "file",
            SinkType::Syslog => "syslog",
            SinkType::Hec => "hec",
            SinkType::Otlp => "otlp",
        }
    }
}

/// How one event is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkFormat {
    /// The native `proctor.event/v1` JSON contract.
    Json,
    Ocsf,
    Ecs,
    /// An ArcSight CEF line (syslog and file sinks).
    Cef,
}

impl SinkFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            SinkFormat::Json => "json",
            SinkFormat::Ocsf => "ocsf",
            SinkFormat::Ecs => "ecs",
            SinkFormat::Cef => "cef",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

/// TLS client settings (syslog over TLS, HEC and OTLP over https).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM file of the CA(s) that signed the server's certificate. Unset:
    /// the certificate must chain to a CA in /etc/ssl/certs.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs `key_file`.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// The name the server's certificate must carry; default: the host of
    /// `address` / `url`.
    pub server_name: Option<String>,
}

/// The rustls client configuration of a sink's `tls` settings (none set:
/// the system CAs, no client certificate).
pub fn client_tls(tls: Option<&TlsConfig>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let default = TlsConfig::default();
    let tls = tls.unwrap_or(&default);
    client_config(&ClientTls {
        section: "tls",
        ca_file: tls.ca_file.as_deref(),
        cert_file: tls.cert_file.as_deref(),
        key_file: tls.key_file.as_deref(),
        insecure_skip_verify: false,
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    #[serde(rename = "type")]
    pub kind: SinkType,
    /// Names the sink in agent_status, metrics and its spool directory;
    /// default: the type (`syslog`, `hec`, ...), numbered when repeated.
    #[serde(default)]
    pub name: Option<String>,
    /// Default: `cef` for syslog, `json` otherwise.
    #[serde(default)]
    pub format: Option<SinkFormat>,
    /// Event kinds sent; empty: all.
    #[serde(default)]
    pub kinds: Vec<Kind>,
    /// Findings below this severity are not sent (other kinds are).
    #[serde(default)]
    pub min_severity: Option<Severity>,
    /// Events held in memory while the destination is slow or down.
    #[serde(default)]
    pub queue_events: Option<usize>,
    /// Bytes of the on-disk spool (under `state_dir/spool/<name>`) that takes
    /// over when the queue is full. 0: no spool (overflow is dropped and counted).
    #[serde(default)]
    pub spool_bytes: Option<u64>,
    /// First and longest wait between delivery attempts (doubling in between).
    #[serde(default, deserialize_with = "crate::duration::deserialize_opt")]
    pub retry_initial: Option<Duration>,
    #[serde(default, deserialize_with = "crate::duration::deserialize_opt")]
    pub retry_max: Option<Duration>,
    /// file: the file written; rotated to `<path>.1` .. `<path>.<keep>`.
    #[serde(default)]
    pub path: Option<PathBuf>,
    #[serde(default)]
    pub max_bytes: Option<u64>,
    #[serde(default)]
    pub keep: Option<usize>,
    /// file: a group (name or number) that may read the file, e.g. the log
    /// shipper's `adm`: the file is then mode 0640 and owned by that group
    /// (its directory, when the agent creates it, 0750). Unset: 0600.
    #[serde(default)]
    pub group: Option<String>,
    /// syslog: udp, tcp (octet counting, RFC 6587) or tls.
    #[serde(default)]
    pub transport: Option<Transport>,
    /// syslog: `host:port` of the receiver.
    #[serde(default)]
    pub address: Option<String>,
    /// syslog: APP-NAME of every message.
    #[serde(default)]
    pub app_name: Option<String>,
    /// syslog: facility name (`auth`, `authpriv`, `daemon`, `local0`..`local7`, ...).
    #[serde(default)]
    pub facility: Option<String>,
    /// hec, otlp: the endpoint (`https://host:8088/services/collector/event`,
    /// `http://host:4318/v1/logs`).
    #[serde(default)]
    pub url: Option<String>,
    /// hec: the HEC token, inline or from a file (e.g. a mounted Secret).
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// hec: index, source and sourcetype of every event.
    #[serde(default)]
    pub index: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub sourcetype: Option<String>,
    /// hec, otlp: events per request.
    #[serde(default)]
    pub batch_events: Option<usize>,
    /// hec, otlp: gzip the request body.
    #[serde(default)]
    pub gzip: Option<bool>,
    /// otlp: extra HTTP headers (e.g. an API key header of the collector).
    #[serde(default)]
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    /// syslog (tls), hec, otlp (https).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// hec, otlp: how long one request may take.
    #[serde(default, deserialize_with = "crate::duration::deserialize_opt")]
    pub timeout: Option<Duration>,
}

impl SinkConfig {
    /// `address` split into host and port (syslog sinks).
    pub fn host_port(&self) -> anyhow::Result<(String, u16)> {
        let address = self
            .address
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("syslog sink without address"))?;
        split_host_port(address).map_err(anyhow::Error::msg)
    }

    pub fn stdout() -> Self {
        Self::of(SinkType::Stdout)
    }

    pub fn of(kind: SinkType) -> Self {
        Self {
            kind,
            name: None,
            format: None,
            kinds: Vec::new(),
            min_severity: None,
            queue_events: None,
            spool_bytes: None,
            retry_initial: None,
            retry_max: None,
            path: None,
            max_bytes: None,
            keep: None,
            group: None,
            transport: None,
            address: None,
            app_name: None,
            facility: None,
            url: None,
            token: None,
            token_file: None,
            index: None,
            source: None,
            sourcetype: None,
            batch_events: None,
            gzip: None,
            headers: None,
            tls: None,
            timeout: None,
        }
    }

    pub fn format(&self) -> SinkFormat {
        self.format.unwrap_or(match self.kind {
            SinkType::Syslog => SinkFormat::Cef,
            _ => SinkFormat::Json,
        })
    }

    pub fn queue_events(&self) -> usize {
        self.queue_events.unwrap_or(match self.kind {
            // stdout has no spool: a deep queue rides out a slow reader.
            SinkType::Stdout => 65536,
            _ => 10000,
        })
    }

    pub fn spool_bytes(&self) -> u64 {
        self.spool_bytes.unwrap_or(match self.kind {
            SinkType::Stdout => 0,
            _ => 64 << 20,
        })
    }

    pub fn retry_initial(&self) -> Duration {
        self.retry_initial.unwrap_or(Duration::from_millis(500))
    }

    pub fn retry_max(&self) -> Duration {
        self.retry_max.unwrap_or(Duration::from_secs(30))
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes.unwrap_or(100 << 20)
    }

    pub fn keep(&self) -> usize {
        self.keep.unwrap_or(5)
    }

    /// file: the gid of `group`, `None` when unset.
    pub fn group_id(&self) -> Result<Option<u32>, String> {
        let Some(g) = &self.group else {
            return Ok(None);
        };
        crate::unix_names::resolve_group(g)
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "group \"{g}\" is not a group on this host (/etc/group); create it, \
                 fix the name, or remove `group` to keep the file 0600"
                )
            })
    }

    pub fn app_name(&self) -> &str {
        self.app_name.as_deref().unwrap_or("proctor")
    }

    pub fn batch_events(&self) -> usize {
        self.batch_events.unwrap_or(100)
    }

    pub fn gzip(&self) -> bool {
        self.gzip.unwrap_or(true)
    }

    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(Duration::from_secs(10))
    }

    /// The keys set in this entry that only another sink type takes.
    fn foreign_keys(&self) -> Vec<&'static str> {
        use SinkType::*;
        let set: [(&str, bool, &[SinkType]); 20] = [
            ("path", self.path.is_some(), &[File]),
            ("max_bytes", self.max_bytes.is_some(), &[File]),
            ("keep", self.keep.is_some(), &[File]),
            ("group", self.group.is_some(), &[File]),
            ("transport", self.transport.is_some(), &[Syslog]),
            ("address", self.address.is_some(), &[Syslog]),
            ("app_name", self.app_name.is_some(), &[Syslog]),
            ("facility", self.facility.is_some(), &[Syslog]),
            ("url", self.url.is_some(), &[Hec, Otlp]),
            ("token", self.token.is_some(), &[Hec]),
            ("token_file", self.token_file.is_some(), &[Hec]),
            ("index", self.index.is_some(), &[Hec]),
            ("source", self.source.is_some(), &[Hec]),
            ("sourcetype", self.sourcetype.is_some(), &[Hec]),
            ("batch_events", self.batch_events.is_some(), &[Hec, Otlp]),
            ("gzip", self.gzip.is_some(), &[Hec, Otlp]),
            ("headers", self.headers.is_some(), &[Otlp]),
            ("tls", self.tls.is_some(), &[Syslog, Hec, Otlp]),
            ("timeout", self.timeout.is_some(), &[Hec, Otlp]),
            (
                "spool_bytes",
                self.spool_bytes.is_some_and(|b| b > 0),
                &[File, Syslog, Hec, Otlp],
            ),
        ];
        set.iter()
            .filter(|(_, present, types)| *present && !types.contains(&self.kind))
            .map(|(k, _, _)| *k)
            .collect()
    }

    /// Checks one entry; `name` is its resolved name. Errors quote the
    /// offending value so `proctor policy check` can point at its line.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        let t = self.kind.as_str();
        let it = format!("sink \"{name}\" (type {t})");
        if let Some(k) = self.foreign_keys().first() {
            return Err(format!(
                "{it}: key \"{k}\" does not apply to a {t} sink; remove it (see docs/configuration.md#sinks)"
            ));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            || name.is_empty()
        {
            return Err(format!(
                "sink name \"{name}\" may only use letters, digits, '-' and '_' (it names a spool directory and a metrics label)"
            ));
        }
        let format = self.format();
        let allowed: &[SinkFormat] = match self.kind {
            SinkType::Stdout | SinkType::File => &[
                SinkFormat::Json,
                SinkFormat::Ocsf,
                SinkFormat::Ecs,
                SinkFormat::Cef,
            ],
            SinkType::Syslog => &[SinkFormat::Cef, SinkFormat::Json],
            SinkType::Hec | SinkType::Otlp => {
                &[SinkFormat::Json, SinkFormat::Ocsf, SinkFormat::Ecs]
            }
        };
        if !allowed.contains(&format) {
            let names: Vec<_> = allowed.iter().map(|f| f.as_str()).collect();
            return Err(format!(
                "{it}: format \"{}\" is not available here; use one of {}",
                format.as_str(),
                names.join(", ")
            ));
        }
        if self.queue_events() == 0 {
            return Err(format!("{it}: queue_events must be at least 1"));
        }
        if self.retry_initial() < Duration::from_millis(10)
            || self.retry_max() < self.retry_initial()
        {
            return Err(format!(
                "{it}: retry_initial must be at least 10ms and retry_max at least retry_initial"
            ));
        }
        match self.kind {
            SinkType::Stdout => {}
            SinkType::File => {
                let Some(p) = &self.path else {
                    return Err(format!("{it}: `path` is required (the file to write)"));
                };
                if !p.is_absolute() {
                    return Err(format!("{it}: path \"{}\" must be absolute", p.display()));
                }
                if self.max_bytes() < 4096 {
                    return Err(format!("{it}: max_bytes must be at least 4096"));
                }
                self.group_id().map_err(|e| format!("{it}: {e}"))?;
            }
            SinkType::Syslog => {
                if self.transport.is_none() {
                    return Err(format!("{it}: `transport` is required: udp, tcp or tls"));
                }
                let Some(a) = &self.address else {
                    return Err(format!(
                        "{it}: `address` is required (host:port of the syslog receiver)"
                    ));
                };
                split_host_port(a).map_err(|e| format!("{it}: address \"{a}\": {e}"))?;
                if let Some(f) = &self.facility {
                    facility_code(f).ok_or_else(|| {
                        format!("{it}: facility \"{f}\" is not a syslog facility (e.g. auth, authpriv, daemon, local0..local7)")
                    })?;
                }
                let app = self.app_name();
                if app.is_empty() || app.len() > 48 || !app.bytes().all(|b| (33..=126).contains(&b))
                {
                    return Err(format!(
                        "{it}: app_name \"{app}\" must be 1-48 printable ASCII characters without spaces (RFC 5424)"
                    ));
                }
                if self.tls.is_some() && self.transport != Some(Transport::Tls) {
                    return Err(format!("{it}: `tls` settings need `transport: tls`"));
                }
            }
            SinkType::Hec | SinkType::Otlp => {
                let Some(u) = &self.url else {
                    return Err(format!("{it}: `url` is required"));
                };
                let url = Target::parse(u).map_err(|e| {
                    format!("{it}: url \"{u}\" must be http:// or https:// with a host ({e})")
                })?;
                if self.tls.is_some() && !url.tls {
                    return Err(format!("{it}: `tls` settings need an https:// url"));
                }
                if self.batch_events() == 0 || self.batch_events() > 10000 {
                    return Err(format!("{it}: batch_events must be between 1 and 10000"));
                }
                if self.kind == SinkType::Hec {
                    match (&self.token, &self.token_file) {
                        (None, None) => {
                            return Err(format!(
                                "{it}: a HEC token is required: set `token` or `token_file`"
                            ))
                        }
                        (Some(_), Some(_)) => {
                            return Err(format!("{it}: set `token` or `token_file`, not both"))
                        }
                        (Some(t), None) if t.trim().is_empty() => {
                            return Err(format!("{it}: `token` is empty"))
                        }
                        _ => {}
                    }
                }
            }
        }
        if let Some(tls) = &self.tls {
            if tls.cert_file.is_some() != tls.key_file.is_some() {
                return Err(format!(
                    "{it}: tls.cert_file and tls.key_file go together (client certificate and its key)"
                ));
            }
        }
        Ok(())
    }
}

/// `host:port` (IPv6 in brackets) -> (host, port).
pub fn split_host_port(a: &str) -> Result<(String, u16), String> {
    let (host, port) = a
        .rsplit_once(':')
        .ok_or("expected host:port (e.g. 127.0.0.1:514)")?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("port {port:?} is not a number from 1 to 65535"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || port == 0 {
        return Err("expected host:port (e.g. 127.0.0.1:514)".into());
    }
    Ok((host.to_string(), port))
}

/// RFC 5424 facility numbers.
pub fn facility_code(name: &str) -> Option<u8> {
    const NAMES: [&str; 24] = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
        "authpriv", "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2",
        "local3", "local4", "local5", "local6", "local7",
    ];
    NAMES.iter().position(|n| *n == name).map(|i| i as u8)
}

/// Resolves each sink's name: the configured one, else the type, numbered
/// from the second sink of the same type on (`syslog`, `syslog-2`).
pub fn resolve_names(sinks: &[SinkConfig]) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = Vec::with_capacity(sinks.len());
    for s in sinks {
        let name = match &s.name {
            Some(n) => n.clone(),
            None => {
                let base = s.kind.as_str();
                let mut n = base.to_string();
                let mut i = 1;
                while names.contains(&n) {
                    i += 1;
                    n = format!("{base}-{i}");
                }
                n
            }
        };
        if names.contains(&name) {
            return Err(format!(
                "two sinks are named \"{name}\"; give each a distinct `name`"
            ));
        }
        names.push(name);
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> SinkConfig {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn names_are_resolved_and_unique() {
        let s = vec![
            parse("type: stdout"),
            parse("type: syslog\ntransport: udp\naddress: 127.0.0.1:514"),
            parse("type: syslog\ntransport: tcp\naddress: 127.0.0.1:514"),
        ];
        assert_eq!(resolve_names(&s).unwrap(), ["stdout", "syslog", "syslog-2"]);
        let dup = vec![
            parse("type: stdout\nname: a"),
            parse("type: file\nname: a\npath: /x"),
        ];
        assert!(resolve_names(&dup).unwrap_err().contains("\"a\""));
    }

    #[test]
    fn bad_entries_are_named() {
        let cases = [
            (
                "type: hec\nurl: https://h:8088/services/collector/event",
                "token",
            ),
            ("type: hec\nurl: not a url\ntoken: x", "not a URL"),
            ("type: otlp\nurl: ftp://h/v1/logs", "http:// or https://"),
            ("type: syslog\naddress: h:514", "transport"),
            ("type: syslog\ntransport: tcp\naddress: h", "host:port"),
            (
                "type: syslog\ntransport: tcp\naddress: h:514\nformat: ocsf",
                "format \"ocsf\"",
            ),
            (
                "type: syslog\ntransport: udp\naddress: h:514\nfacility: nope",
                "facility",
            ),
            ("type: stdout\ntoken: x", "\"token\" does not apply"),
            ("type: file\npath: rel.jsonl", "absolute"),
            ("type: file", "`path` is required"),
            (
                "type: hec\nurl: http://h/\ntoken: x\ntls: {ca_file: /ca.pem}",
                "https://",
            ),
            ("type: stdout\nname: a/b", "letters"),
            (
                "type: file\npath: /x.jsonl\ngroup: no-such-group-proctor",
                "group \"no-such-group-proctor\" is not a group",
            ),
            ("type: stdout\ngroup: adm", "\"group\" does not apply"),
        ];
        for (yaml, want) in cases {
            let s = parse(yaml);
            let names = resolve_names(std::slice::from_ref(&s)).unwrap();
            let err = s.validate(&names[0]).unwrap_err();
            assert!(err.contains(want), "{yaml}: {err}");
        }
        let err = serde_yaml_ng::from_str::<SinkConfig>("type: stdout\nformat: xml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("xml"), "{err}");
    }

    #[test]
    fn file_group_resolves_by_name_or_number() {
        let root = parse("type: file\npath: /x.jsonl\ngroup: root");
        assert_eq!(root.validate("file"), Ok(()));
        assert_eq!(root.group_id(), Ok(Some(0)));
        assert_eq!(
            parse("type: file\npath: /x.jsonl\ngroup: \"4\"").group_id(),
            Ok(Some(4))
        );
        assert_eq!(parse("type: file\npath: /x.jsonl").group_id(), Ok(None));
    }

    #[test]
    fn facilities() {
        assert_eq!(facility_code("kern"), Some(0));
        assert_eq!(facility_code("authpriv"), Some(10));
        assert_eq!(facility_code("local7"), Some(23));
        assert_eq!(facility_code("x"), None);
    }
}
