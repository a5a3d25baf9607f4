//! The event contract (`proctor.event/v1`): what every sink writes.
//!
//! Field names here are a public contract (docs/event-contract.md); renaming one
//! breaks every SIEM query built on it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub const SCHEMA: &str = "proctor.event/v1";

/// `metadata.product.name`, CEF Device Product, ECS `agent.type`.
pub const PRODUCT: &str = "proctor";
/// `metadata.product.vendor_name`, CEF Device Vendor.
pub const VENDOR: &str = "proctor";
/// The agent's version, as every format reports it.
pub const PRODUCT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// How bad a finding is (`finding.severity`): a contract value, shared by
/// the detectors that set it and the sinks that filter on it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// What a summary says about the events it stands for.
#[derive(Debug, Clone, Serialize)]
pub struct Suppressed {
    pub count: u64,
    /// The identity the events were limited by: `sha256:<hex>` or `path:<exe>`.
    pub identity: String,
    pub kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'static str>,
    /// Times of the first and the last suppressed event.
    pub first_time: String,
    pub last_time: String,
    pub summary: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    ProcessExec,
    ProcessExit,
    FileOpen,
    NetConnect,
    Finding,
    AgentStatus,
    /// The hash of an exec whose `process_exec` went out with
    /// `hash_status: "pending"` (see `hash.emit_wait`).
    ProcessHash,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ProcessExec => "process_exec",
            Kind::ProcessExit => "process_exit",
            Kind::FileOpen => "file_open",
            Kind::NetConnect => "net_connect",
            Kind::Finding => "finding",
            Kind::AgentStatus => "agent_status",
            Kind::ProcessHash => "process_hash",
        }
    }
}

/// The JSON of the shared parts of events lately written, reused while the
/// next events carry the same ones.
///
/// Every event of a process holds the same `Arc<Process>` until something
/// about the process changes (see `identity::snapshot`), and the process is
/// most of an event's JSON. A secret read is a `file_open` and a finding
/// about one view and one `Arc<FileInfo>`; the finding's `Arc<SecretInfo>`
/// is the one every read of that content shares. Only
/// [`reused_json::write_event`] uses the cached text; every other serializer
/// sees the plain structs.
pub mod reused_json {
    use std::{cell::RefCell, sync::Arc, thread::LocalKey};

    use super::{Event, Evidence, FileInfo, Finding, Process, SecretInfo};

    /// Values of one kind lately written and their texts, each kept with
    /// its `Arc` so the value cannot be freed and another land at the same
    /// address while its text is cached. A few, not one: a process reading
    /// five files in turn interleaves five secrets.
    struct Recent<T> {
        slots: [Option<(Arc<T>, Vec<u8>)>; SLOTS],
        /// The slot the next new value takes (oldest first).
        next: usize,
    }

    const SLOTS: usize = 8;
    /// The largest buffer an evicted text leaves for the next one.
    const KEEP_BUFFER: usize = 16 * 1024;

    impl<T> Recent<T> {
        const fn new() -> Self {
            Self {
                slots: [const { None }; SLOTS],
                next: 0,
            }
        }

        /// The text of `v`, written by `write` unless it is cached. A new
        /// text goes into the buffer of the one it evicts (unless that grew
        /// large, for a process with long arguments): every secret read has
        /// a file of its own, and a buffer per file was an allocation and a
        /// free per read.
        fn text<E>(
            &mut self,
            v: &Arc<T>,
            write: impl FnOnce(&T, &mut Vec<u8>) -> Result<(), E>,
        ) -> Result<&[u8], E> {
            let hit = self
                .slots
                .iter()
                .position(|e| e.as_ref().is_some_and(|(q, _)| Arc::ptr_eq(q, v)));
            let at = match hit {
                Some(at) => at,
                None => {
                    let at = self.next;
                    let mut buf = match self.slots[at].take() {
                        Some((_, mut old)) if old.capacity() <= KEEP_BUFFER => {
                            old.clear();
                            old
                        }
                        _ => Vec::with_capacity(256),
                    };
                    write(v, &mut buf)?;
                    self.slots[at] = Some((v.clone(), buf));
                    self.next = (at + 1) % SLOTS;
                    at
                }
            };
            Ok(&self.slots[at].as_ref().expect("the slot was just filled").1)
        }
    }

    type Texts<T> = RefCell<Recent<T>>;

    thread_local! {
        static PROCESS: Texts<Process> = const { RefCell::new(Recent::new()) };
        static FILE: Texts<FileInfo> = const { RefCell::new(Recent::new()) };
        static SECRET: Texts<SecretInfo> = const { RefCell::new(Recent::new()) };
    }

    /// An event as a JSON object into `out`: the same bytes as
    /// `serde_json::to_writer` (the field order of [`Event`]), with the
    /// shared parts from the cache. The head (schema, time, node, kind,
    /// seq), the file and the finding are written as text: keys and values
    /// serde_json would scan for escapes one byte at a time, for every
    /// event.
    pub fn write_event(out: &mut Vec<u8>, ev: &Event) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"schema\":");
        write_own(out, ev.schema);
        out.extend_from_slice(b",\"time\":");
        // Digits and separators: nothing to escape.
        quoted(out, ev.time.as_bytes());
        out.extend_from_slice(b",\"node\":");
        write_str(out, &ev.node)?;
        out.extend_from_slice(b",\"kind\":\"");
        out.extend_from_slice(ev.kind.as_str().as_bytes());
        out.extend_from_slice(b"\",\"seq\":");
        out.extend_from_slice(itoa::Buffer::new().format(ev.seq).as_bytes());
        out.extend_from_slice(b",\"process\":");
        append(&PROCESS, &ev.process, out, |p, b| {
            serde_json::to_writer(b, p)
        })?;
        by_serde(out, b",\"exit\":", &ev.exit)?;
        by_serde(out, b",\"status\":", &ev.status)?;
        if let Some(file) = &ev.file {
            out.extend_from_slice(b",\"file\":");
            append(&FILE, file, out, write_file)?;
        }
        if let Some(finding) = &ev.finding {
            out.extend_from_slice(b",\"finding\":");
            write_finding(finding, out)?;
        }
        by_serde(out, b",\"net\":", &ev.net)?;
        by_serde(out, b",\"suppressed\":", &ev.suppressed)?;
        out.push(b'}');
        Ok(())
    }

    /// `key` and the value as serde_json writes it, when there is one.
    fn by_serde<T: serde::Serialize>(
        out: &mut Vec<u8>,
        key: &[u8],
        v: &Option<T>,
    ) -> serde_json::Result<()> {
        if let Some(v) = v {
            out.extend_from_slice(key);
            serde_json::to_writer(&mut *out, v)?;
        }
        Ok(())
    }

    /// Appends the cached text of `v`, written by `write` unless cached.
    fn append<T>(
        cache: &'static LocalKey<Texts<T>>,
        v: &Arc<T>,
        out: &mut Vec<u8>,
        write: impl FnOnce(&T, &mut Vec<u8>) -> serde_json::Result<()>,
    ) -> serde_json::Result<()> {
        cache.with_borrow_mut(|c| {
            let text = c.text(v, write)?;
            out.extend_from_slice(text);
            Ok(())
        })
    }

    /// A file as serde_json writes [`FileInfo`], field by field. The
    /// writers below follow their structs' fields and `skip_serializing_if`
    /// rules: a new field goes into both (the tests compare the texts).
    fn write_file(f: &FileInfo, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let mut n = itoa::Buffer::new();
        out.extend_from_slice(b"{\"path\":");
        write_str(out, &f.path)?;
        out.extend_from_slice(b",\"inode\":");
        out.extend_from_slice(n.format(f.inode).as_bytes());
        out.extend_from_slice(b",\"dev\":");
        out.extend_from_slice(n.format(f.dev).as_bytes());
        out.extend_from_slice(b",\"flags\":");
        out.extend_from_slice(n.format(f.flags).as_bytes());
        out.extend_from_slice(b",\"access\":");
        write_own(out, f.access);
        out.extend_from_slice(b",\"requested_path\":");
        write_str(out, &f.requested_path)?;
        if let Some(via) = f.via {
            out.extend_from_slice(b",\"via\":");
            write_own(out, via);
        }
        if let Some(id) = &f.secret_id {
            out.extend_from_slice(b",\"secret_id\":");
            write_str(out, id)?;
        }
        if let Some(r) = f.repeats {
            out.extend_from_slice(b",\"repeats\":");
            out.extend_from_slice(n.format(r).as_bytes());
        }
        out.push(b'}');
        Ok(())
    }

    fn write_finding(f: &Finding, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"rule\":");
        write_own(out, f.rule);
        out.extend_from_slice(b",\"severity\":\"");
        out.extend_from_slice(f.severity.as_str().as_bytes());
        out.extend_from_slice(b"\",\"summary\":");
        write_str(out, &f.summary)?;
        out.extend_from_slice(b",\"mitre\":");
        write_strs(out, &f.mitre)?;
        if let Some(secret) = &f.secret {
            out.extend_from_slice(b",\"secret\":");
            append(&SECRET, secret, out, |s, b| serde_json::to_writer(b, s))?;
        }
        out.extend_from_slice(b",\"evidence\":");
        write_evidence(&f.evidence, out)?;
        if let Some(action) = f.action {
            out.extend_from_slice(b",\"action\":");
            write_own(out, action);
        }
        out.push(b'}');
        Ok(())
    }

    fn write_evidence(e: &Evidence, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"exec_ids\":");
        write_strs(out, &e.exec_ids)?;
        if !e.event_seqs.is_empty() {
            out.extend_from_slice(b",\"event_seqs\":[");
            let mut n = itoa::Buffer::new();
            for (i, seq) in e.event_seqs.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(n.format(*seq).as_bytes());
            }
            out.push(b']');
        }
        write_list(out, b",\"paths\":", &e.paths)?;
        write_list(out, b",\"identities\":", &e.identities)?;
        write_list(out, b",\"destinations\":", &e.destinations)?;
        for (key, text) in [
            (&b",\"escalation\":"[..], &e.escalation),
            (b",\"reason\":", &e.reason),
            (b",\"expected_client\":", &e.expected_client),
        ] {
            if let Some(text) = text {
                out.extend_from_slice(key);
                write_str(out, text)?;
            }
        }
        out.push(b'}');
        Ok(())
    }

    /// Whether `b` holds a byte JSON escapes (a control character, `"`
    /// or `\\`), eight bytes at a time: whether a word holds a byte below
    /// 0x20, or equal to a given one, is two subtractions and masks.
    fn needs_escape(b: &[u8]) -> bool {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        // Non-zero iff some byte of `x` is below `n` (n <= 0x80).
        let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
        let escapes = |w: &[u8]| {
            let x = u64::from_le_bytes(w.try_into().expect("eight bytes"));
            below(x, 0x20)
                | below(x ^ (ONES * u64::from(b'"')), 1)
                | below(x ^ (ONES * u64::from(b'\\')), 1)
                != 0
        };
        // No byte-at-a-time tail: a short string is padded to a word with
        // spaces, a longer one's tail is the last eight bytes (overlapping
        // the word before).
        if b.len() < 8 {
            let mut w = [b' '; 8];
            w[..b.len()].copy_from_slice(b);
            return escapes(&w);
        }
        let mut words = b.chunks_exact(8);
        if words.any(escapes) {
            return true;
        }
        !words.remainder().is_empty() && escapes(&b[b.len() - 8..])
    }

    /// A string of the agent's own (a rule id, an access mode, the schema):
    /// nothing in it to escape or to scan for.
    fn write_own(out: &mut Vec<u8>, s: &'static str) {
        debug_assert!(!needs_escape(s.as_bytes()), "{s}");
        quoted(out, s.as_bytes());
    }

    /// `text` between quotes, as it is: for text known to need no escape.
    fn quoted(out: &mut Vec<u8>, text: &[u8]) {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text);
        out.push(b'"');
    }

    /// `key` and the list, when it has entries (an empty one is left out).
    fn write_list<S: AsRef<str>>(
        out: &mut Vec<u8>,
        key: &[u8],
        list: &[S],
    ) -> serde_json::Result<()> {
        if list.is_empty() {
            return Ok(());
        }
        out.extend_from_slice(key);
        write_strs(out, list)
    }

    fn write_strs<S: AsRef<str>>(out: &mut Vec<u8>, list: &[S]) -> serde_json::Result<()> {
        out.push(b'[');
        for (i, s) in list.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, s.as_ref())?;
        }
        out.push(b']');
        Ok(())
    }

    /// A JSON string: copied between quotes when nothing in it needs an
    /// escape (nearly always), else serde_json's escaping, which looks at
    /// each byte in turn and costs some 200 instructions even for a short
    /// string.
    fn write_str(out: &mut Vec<u8>, s: &str) -> serde_json::Result<()> {
        if needs_escape(s.as_bytes()) {
            return serde_json::to_writer(&mut *out, s);
        }
        quoted(out, s.as_bytes());
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub schema: &'static str,
    /// RFC 3339 with nanoseconds, UTC.
    pub time: EventTime,
    pub node: Arc<str>,
    pub kind: Kind,
    /// Per-node sequence number: strictly increasing, never reused on a node
    /// (it continues across restarts, see `seq_store`).
    pub seq: u64,
    pub process: Arc<Process>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<Arc<FileInfo>>,
    // Boxed, as the finding and the connection are: most events have
    // neither, and an event (and the pending one before it) is moved and
    // copied whole several times on its way; inline they made it 700 bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding: Option<Box<Finding>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net: Option<Box<NetInfo>>,
    /// Set on a rate-limit summary: how many events like this one were
    /// suppressed (see `rate_limit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<Suppressed>,
}

/// A connection attempt (`net_connect`).
#[derive(Debug, Clone, Serialize)]
pub struct NetInfo {
    /// inet | inet6 | unix
    pub family: &'static str,
    /// tcp | udp | icmp | raw | stream | dgram | seqpacket | other
    pub protocol: &'static str,
    pub dst_ip: Option<String>,
    pub dst_port: Option<u16>,
    /// Unix socket path (`@name` for abstract sockets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_path: Option<String>,
    /// success | in_progress | refused | timed_out | unreachable | denied |
    /// error | failed_before_handshake (a TCP connect that never started its
    /// handshake, found by the agent's sweep where no syscall tracepoint
    /// reports connects: errno unknown)
    pub result: &'static str,
    /// The errno when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno: Option<i32>,
    /// The outcome came from the TCP handshake of a non-blocking connect.
    pub async_result: bool,
    /// connect | sendmsg (a datagram sent to an explicit address: UDP
    /// `sendto`; its `result` says whether it was let out, not delivered).
    pub operation: &'static str,
    /// syscall (the connect(2) tracepoints) | socket_hook (the cgroup socket
    /// hooks: datagrams, connects made without connect(2) such as io_uring's,
    /// and every inet connect on the hook sets without syscall tracepoints;
    /// a TCP connect's result comes from its handshake, a UDP one's is
    /// success (attempted) or denied) | lsm (unix-socket connects and
    /// datagrams from the BPF LSM hooks).
    pub observed_by: &'static str,
}

/// A file, for `file_open` events and findings about files.
#[derive(Debug, Clone, Serialize)]
pub struct FileInfo {
    /// Absolute and normalised, as the kernel resolved it for the opener
    /// (symlinks followed, `..` gone). Shared with the watch table where
    /// the hook sees an inode, not a path.
    pub path: Arc<str>,
    pub inode: u64,
    pub dev: u64,
    /// `O_*` flags of the open file description.
    pub flags: u32,
    /// read | write | read_write
    pub access: &'static str,
    /// The path argument exactly as the process passed it. Empty for an open
    /// the LSM hook refused: that record comes from the hook, not the syscall.
    pub requested_path: String,
    /// `io_uring` when the file was opened by an io_uring request
    /// (`IORING_OP_OPENAT[2]`; `requested_path` is then empty), `page_cache`
    /// when a read or mmap fault of a watched file was seen by the page-cache
    /// hooks (no open: `requested_path` empty, `path` the catalogued one),
    /// `fanotify` when a read(2) of a watched file on tmpfs was seen by that
    /// set's fanotify mark (the same); absent for the open syscalls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<&'static str>,
    /// For a file of a pod's Secret or projected volume: the Kubernetes
    /// Secret key it holds (`k8s:<namespace>/<secret>/<key>`), so that the
    /// open names the Secret even where no finding follows (a write).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_id: Option<String>,
    /// Accesses of this file by this process image the kernel counted but did
    /// not report since the previous `file_open` of the pair (repeat
    /// suppression, `kernel.repeat_window`); absent when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeats: Option<u32>,
}

/// Finding rule ids (a contract, see DESIGN.md). They live with the event
/// rather than in `detect` because detectors below `detect` (secret usage)
/// name them too, and the contract depends on no detector.
pub mod rule {
    pub const SECRET_READ: &str = "secret-read";
    pub const SECRET_ENV: &str = "secret-env";
    pub const SECRET_REPLAY: &str = "secret-replay";
    pub const SECRET_EXFIL: &str = "secret-exfil";
    pub const SECRET_SEARCH: &str = "secret-search";
    pub const UNTRUSTED_BINARY: &str = "untrusted-binary";
    pub const IDENTITY_FORGERY: &str = "identity-forgery";
    pub const SECRET_STALE: &str = "secret-stale";
    pub const SECRET_DECOY: &str = "secret-decoy";
    pub const SECRET_IO_URING: &str = "secret-io-uring";

    /// Every rule id, in the order DESIGN.md lists them (additions last).
    pub const ALL: [&str; 10] = [
        SECRET_READ,
        SECRET_ENV,
        SECRET_REPLAY,
        SECRET_EXFIL,
        SECRET_SEARCH,
        UNTRUSTED_BINARY,
        IDENTITY_FORGERY,
        SECRET_STALE,
        SECRET_DECOY,
        SECRET_IO_URING,
    ];
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Rule id, one of [`rule`].
    pub rule: &'static str,
    pub severity: Severity,
    pub summary: String,
    /// MITRE ATT&CK technique ids.
    pub mitre: Arc<[String]>,
    /// Shared: a read's finding and the exfiltration taint it leaves hold
    /// the same one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<Arc<SecretInfo>>,
    pub evidence: Evidence,
    /// What enforcement did about it: `killed` (the reader got SIGKILL before
    /// its open returned), `denied` (the LSM hook refused the open: EPERM) or
    /// `egress_blocked` (the process may not connect).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'static str>,
}

/// A secret, by name and keyed fingerprint; never its value.
#[derive(Debug, Clone, Serialize)]
pub struct SecretInfo {
    /// Catalog id (or `env:<detector>` for environment secrets).
    pub id: String,
    pub kind: String,
    /// `hmac-sha256:<hex>`; null when the content could not be read.
    pub fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Environment variable name, for secret-env.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variable: Option<String>,
    /// The Kubernetes Secret (or service-account token) it is, for files of
    /// the kubelet's Secret and projected volumes and `secretKeyRef` variables.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k8s: Option<K8sSecretRef>,
}

/// A Kubernetes Secret key as a pod receives it; never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct K8sSecretRef {
    pub namespace: Option<String>,
    /// The Secret's name; for a service-account token, the service account's.
    pub name: String,
    pub key: String,
    /// The pod the file or variable belongs to.
    pub pod_uid: String,
    pub pod: Option<String>,
    /// The pod's volume holding the file (none for a variable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    /// Where containers see the file: `<container>:<mount path>/<key>`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub in_pod_paths: Vec<String>,
}

impl SecretInfo {
    /// The secret's path as a finding's evidence lists it (none for a variable).
    pub fn evidence_paths(&self) -> Few<Arc<str>> {
        self.path.iter().map(|p| Arc::from(p.as_str())).collect()
    }
}

/// What the finding rests on: identifiers of the events and processes involved.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Evidence {
    /// Shared with the processes' views: one finding per watched read.
    pub exec_ids: Few<Arc<str>>,
    /// `seq` of the events (file_open, process_exec) that triggered it, when emitted.
    #[serde(skip_serializing_if = "Few::is_empty")]
    pub event_seqs: Few<u64>,
    #[serde(skip_serializing_if = "Few::is_empty")]
    pub paths: Few<Arc<str>>,
    /// Workload identities involved (secret-replay: the bound ones, then the new one).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub identities: Vec<String>,
    /// Network destinations involved (secret-exfil), `ip:port`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<String>,
    /// Why severity was raised above the rule's default, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalation: Option<String>,
    /// Why the finding was raised where the rule has more than one cause
    /// (identity-forgery: why the claim was refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// secret-read by an expected client: `package:path` of the installed
    /// program the exec'd file was proven to be.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_client: Option<String>,
}

/// A list of evidence that nearly always has one or two entries, kept
/// inline: a vector each was an allocation (and a free) per finding.
pub type Few<T> = smallvec::SmallVec<[T; 2]>;

#[derive(Debug, Clone, Serialize)]
pub struct Process {
    pub pid: u32,
    pub ppid: u32,
    pub exec_id: Arc<str>,
    pub parent_exec_id: Option<Arc<str>>,
    /// Process start, ns since the Unix epoch.
    pub start_time_ns: u64,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    pub comm: String,
    pub args: Vec<String>,
    pub args_truncated: bool,
    /// Some credential in `args` was replaced by `<redacted>` (see `redact`).
    pub args_redacted: bool,
    pub exe: Exe,
    pub interpreter: Option<Interpreter>,
    pub cgroup: Cgroup,
    pub container: Option<serde_json::Value>,
    pub pod: Option<serde_json::Value>,
    pub attestation: Attestation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Attestation {
    KernelExec,
    ProcfsScan,
}

#[derive(Debug, Clone, Serialize)]
pub struct Exe {
    pub path: String,
    pub sha256: Option<String>,
    /// ok | too_large | unverified | unavailable | modified
    pub hash_status: &'static str,
    pub inode: u64,
    /// Device number as `stat(2)` reports it (st_dev).
    pub dev: u64,
    pub size: u64,
    pub fileless: bool,
    pub deleted: bool,
    pub modified_after_exec: bool,
    /// `host` when `path` leads to this very file (dev, inode) in the
    /// agent's mount namespace, `process` when it is only the process's own
    /// name for it (another mount namespace, replaced, deleted, fileless),
    /// `pending` while the check runs (`identity::host_path`).
    pub path_namespace: &'static str,
}

/// For `#!` scripts: `exe` is the interpreter binary the kernel ran; the
/// script the user named gets its own identity here.
#[derive(Debug, Clone, Serialize)]
pub struct Interpreter {
    /// The interpreter as written in the shebang line (e.g. `/bin/sh`).
    pub path: String,
    pub script: ScriptIdentity,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScriptIdentity {
    pub path: String,
    pub sha256: Option<String>,
    pub hash_status: &'static str,
    pub inode: Option<u64>,
    pub dev: Option<u64>,
    pub size: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cgroup {
    pub id: u64,
    pub path: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExitInfo {
    /// Exit status for a normal exit, null when killed by a signal.
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub core_dumped: bool,
    /// Time since exec (or start, for processes found at start-up).
    pub duration_ns: u64,
}

/// RFC 3339 UTC with nanoseconds, e.g. `2026-11-23T15:04:05.123456789Z`.
pub fn rfc3339_ns(epoch_ns: u64) -> String {
    EventTime::at(epoch_ns).as_str().to_string()
}

/// An event's time: ns since the Unix epoch and its RFC 3339 text, held
/// inline. The text in an `Arc` of its own was an allocation per kernel
/// record, and the formats that want the number read it here instead of
/// parsing the text back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EventTime {
    epoch_ns: u64,
    text: [u8; 30],
}

impl EventTime {
    /// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`, the text humantime's
    /// `format_rfc3339_nanos` writes (the tests hold the two together),
    /// built from the date's numbers directly: going through `fmt` was some
    /// 900 instructions of each watched read. Always 30 bytes: a u64 of ns
    /// ends in the year 2554.
    pub fn at(epoch_ns: u64) -> Self {
        let secs = epoch_ns / 1_000_000_000;
        let (year, month, day) = civil_from_days(secs / 86_400);
        let of_day = secs % 86_400;
        let mut text = *b"0000-00-00T00:00:00.000000000Z";
        put_digits(&mut text[0..4], year);
        put_digits(&mut text[5..7], month);
        put_digits(&mut text[8..10], day);
        put_digits(&mut text[11..13], of_day / 3600);
        put_digits(&mut text[14..16], of_day / 60 % 60);
        put_digits(&mut text[17..19], of_day % 60);
        put_digits(&mut text[20..29], epoch_ns % 1_000_000_000);
        Self { epoch_ns, text }
    }

    /// The time `epoch_ns`, written from `prev`'s text where both fall in
    /// the same second (only the nanoseconds differ): events come in time
    /// order, thousands a second, and the date was most of the work.
    pub fn after(prev: &EventTime, epoch_ns: u64) -> Self {
        const SEC: u64 = 1_000_000_000;
        if epoch_ns / SEC != prev.epoch_ns / SEC {
            return Self::at(epoch_ns);
        }
        let mut text = prev.text;
        put_digits(&mut text[20..29], epoch_ns % SEC);
        Self { epoch_ns, text }
    }

    pub fn epoch_ns(&self) -> u64 {
        self.epoch_ns
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits were written over an ASCII template.
        std::str::from_utf8(&self.text).unwrap_or_default()
    }

    /// The text's bytes, for writers that want no UTF-8 check.
    pub fn as_bytes(&self) -> &[u8] {
        &self.text
    }
}

impl std::ops::Deref for EventTime {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Debug for EventTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for EventTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// `v` in decimal, right-aligned in `out` (zero-padded, as the template is).
fn put_digits(out: &mut [u8], mut v: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// The proleptic Gregorian (year, month, day) of a day counted from
/// 1970-01-01: Howard Hinnant's `civil_from_days`, over 400-year eras
/// of 146,097 days that start on a March 1st.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(e: &Event) -> String {
        serde_json::to_string(e).unwrap()
    }

    /// What the sinks' event writer writes.
    fn reused(e: &Event) -> String {
        let mut out = Vec::new();
        reused_json::write_event(&mut out, e).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn event_times_are_the_text_humantime_writes() {
        let day = 86_400 * 1_000_000_000u64;
        // Epoch, leap days and century rules, year ends, the far future.
        let mut at = vec![
            0,
            1,
            999_999_999,
            day - 1,
            951_782_400 * 1_000_000_000,        // 2000-02-29
            4_107_542_400 * 1_000_000_000,      // 2100-03-01
            1_709_164_799 * 1_000_000_000 + 5,  // 2024-02-28T23:59:59
            1_735_689_599 * 1_000_000_000 + 7,  // 2024-12-31T23:59:59
            16_725_225_599 * 1_000_000_000 + 9, // 2499-12-31T23:59:59
        ];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Up to the year 2500.
            at.push(x % (16_725_225_600 * 1_000_000_000));
        }
        let mut prev = EventTime::at(0);
        for ns in at {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns);
            let want = humantime::format_rfc3339_nanos(t).to_string();
            // Each instant alone, after the one before, and after an
            // instant of the same second (a neighbour a few ns away).
            let neighbour = EventTime::at(ns ^ 1);
            for time in [
                EventTime::at(ns),
                EventTime::after(&prev, ns),
                EventTime::after(&neighbour, ns),
            ] {
                assert_eq!(time.as_str(), want, "{ns}");
                assert_eq!(time.epoch_ns(), ns);
            }
            prev = EventTime::at(ns);
        }
    }

    #[test]
    fn a_string_is_escaped_exactly_when_serde_json_would_escape_it() {
        // Every byte value at every offset of a word and of the tail.
        for len in [1usize, 2, 7, 8, 9, 15, 16, 17, 23] {
            for at in 0..len {
                for b in 0u8..=0x7f {
                    let mut s = vec![b'a'; len];
                    s[at] = b;
                    let s = String::from_utf8(s).unwrap();
                    let ev = Event {
                        node: Arc::from(s.as_str()),
                        ..crate::testdata::event(Kind::ProcessExit)
                    };
                    assert_eq!(reused(&ev), plain(&ev), "{s:?}");
                }
            }
        }
    }

    #[test]
    fn time_format_has_nanoseconds() {
        assert_eq!(
            rfc3339_ns(1_000_000_000_123),
            "1970-01-01T00:16:40.000000123Z"
        );
    }

    #[test]
    fn a_reused_process_text_is_the_text_of_that_very_view() {
        let a = crate::testdata::event(Kind::FileOpen);
        assert_eq!(reused(&a), plain(&a));
        // The same view again: the cached text, the same bytes.
        let mut b = a.clone();
        b.kind = Kind::Finding;
        assert_eq!(reused(&b), plain(&b));
        // Another view with another pid: never the cached text.
        let mut p = (*a.process).clone();
        p.pid += 1;
        let c = Event {
            process: Arc::new(p),
            ..a.clone()
        };
        assert_eq!(reused(&c), plain(&c));
        assert_ne!(reused(&c), reused(&a));
        // Other serializers see the struct itself.
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["process"]["pid"], c.process.pid);
    }

    #[test]
    fn an_event_written_with_its_head_as_text_is_the_serde_json_of_it() {
        let mut events = crate::testdata::all_kinds();
        // Text that needs escaping wherever the head holds text.
        let mut odd = crate::testdata::event(Kind::Finding);
        odd.node = Arc::from("node \"a\"\\b\n");
        odd.seq = u64::MAX;
        events.push(odd);
        // A file with every optional field, and text that needs escaping.
        let mut open = crate::testdata::event(Kind::FileOpen);
        let mut f = (**open.file.as_ref().unwrap()).clone();
        f.path = "/srv/a \"b\"\\c\t.env".into();
        f.requested_path = "../a\u{7f}\u{1f}".into();
        f.via = Some("page_cache");
        f.secret_id = Some("k8s:ns/s/key\n".into());
        f.repeats = Some(u32::MAX);
        f.inode = u64::MAX;
        open.file = Some(Arc::new(f));
        events.push(open);
        // A finding with every optional field of it and its evidence.
        let mut full = crate::testdata::event(Kind::Finding);
        let mut finding = full.finding.clone().unwrap();
        finding.summary = "read \"x\"\n".into();
        finding.mitre = Arc::from(vec![]);
        finding.action = Some("killed");
        finding.evidence = Evidence {
            exec_ids: smallvec::smallvec!["a".into(), "b\\".into()],
            event_seqs: smallvec::smallvec![1, u64::MAX],
            paths: smallvec::smallvec!["/p".into()],
            identities: vec!["i1".into(), "i2".into()],
            destinations: vec!["10.0.0.1:443".into()],
            escalation: Some("e".into()),
            reason: Some("r\u{0}".into()),
            expected_client: Some("c".into()),
        };
        full.finding = Some(finding.clone());
        events.push(full.clone());
        finding.secret = None;
        finding.evidence = Evidence::default();
        full.finding = Some(finding);
        events.push(full);
        for ev in &events {
            let mut out = Vec::new();
            reused_json::write_event(&mut out, ev).unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(ev).unwrap(),
                "{:?}",
                ev.kind
            );
        }
        // Serializers other than write_event still write the whole event.
        let v = serde_json::to_value(&events[0]).unwrap();
        assert_eq!(v["schema"], SCHEMA);
        assert!(v["seq"].is_u64() && v["time"].is_string());
    }

    #[test]
    fn more_values_than_the_cache_holds_each_get_their_own_text() {
        let base = crate::testdata::event(Kind::Finding);
        // Twenty findings, each with its own process, file and secret,
        // written in turn three times over: evicted or kept, every text is
        // the value's own.
        let events: Vec<Event> = (0..20u32)
            .map(|i| {
                let mut p = (*base.process).clone();
                p.pid += i;
                let mut f = (**base.file.as_ref().unwrap()).clone();
                f.path = format!("/home/u{i}/.netrc").into();
                let mut finding = base.finding.clone().unwrap();
                let mut secret = (**finding.secret.as_ref().unwrap()).clone();
                secret.id = format!("netrc-{i}");
                finding.secret = Some(Arc::new(secret));
                Event {
                    process: Arc::new(p),
                    file: Some(Arc::new(f)),
                    finding: Some(finding),
                    ..base.clone()
                }
            })
            .collect();
        for _ in 0..3 {
            for (i, e) in events.iter().enumerate() {
                let text = reused(e);
                assert_eq!(text, plain(e));
                assert!(text.contains(&format!("\"netrc-{i}\"")), "{text}");
            }
        }
    }

    #[test]
    fn a_reused_file_text_is_the_text_of_that_very_file() {
        let a = crate::testdata::event(Kind::FileOpen);
        assert_eq!(reused(&a), plain(&a));
        // The finding of the same access shares the file: the same bytes.
        let b = Event {
            kind: Kind::Finding,
            finding: Some(Box::new(crate::testdata::finding(
                "secret-read",
                Severity::High,
            ))),
            ..a.clone()
        };
        assert_eq!(reused(&b), plain(&b));
        // Another access of another file: never the cached text.
        let mut f = (**a.file.as_ref().unwrap()).clone();
        f.path = "/home/bob/.netrc".into();
        let c = Event {
            file: Some(Arc::new(f)),
            ..a.clone()
        };
        assert!(reused(&c).contains("/home/bob/.netrc"));
        assert_eq!(reused(&c), plain(&c));
        // An event without a file has none, whatever is cached.
        let d = Event {
            file: None,
            ..a.clone()
        };
        assert_eq!(reused(&d), plain(&d));
        assert!(!reused(&d).contains("\"file\""));
    }
}
