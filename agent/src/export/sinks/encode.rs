//! One event -> the bytes one sink sends for it: a line, an RFC 5424
//! syslog message, a HEC event object, an OTLP log record.
//!
//! Batching envelopes (OTLP's resourceLogs, HEC's concatenation, syslog's
//! octet counting) are added by the destinations; what is encoded here is
//! what the spool keeps.

use serde_json::{json, Value};

use super::config::{facility_code, SinkConfig, SinkFormat, SinkType};
use crate::{
    event::Severity,
    event::{reused_json, Event, Kind},
    export::formats::{self, cef, Format},
};

#[derive(Debug, Clone)]
pub enum Framing {
    /// The rendered event and a newline (stdout, file).
    Line,
    Syslog {
        facility: u8,
        app_name: String,
    },
    Hec {
        index: Option<String>,
        source: String,
        sourcetype: String,
    },
    Otlp,
}

#[derive(Debug, Clone)]
pub struct Encoder {
    pub format: SinkFormat,
    pub framing: Framing,
}

/// RFC 5424 severity (0 emergency .. 7 debug) of an event.
fn syslog_severity(ev: &Event) -> u8 {
    match ev.finding.as_ref().map(|f| f.severity) {
        Some(Severity::Critical) => 2,
        Some(Severity::High) => 3,
        Some(Severity::Medium) => 4,
        Some(Severity::Low) => 5,
        Some(Severity::Info) | None => 6,
    }
}

/// OTLP SeverityNumber and text.
pub fn otlp_severity(ev: &Event) -> (u8, &'static str) {
    match ev.finding.as_ref().map(|f| f.severity) {
        Some(Severity::Critical) => (21, "FATAL"),
        Some(Severity::High) => (17, "ERROR"),
        Some(Severity::Medium) => (13, "WARN"),
        Some(Severity::Low) => (10, "INFO2"),
        Some(Severity::Info) | None => (9, "INFO"),
    }
}

/// An SD-PARAM value: `"`, `\` and `]` escaped (RFC 5424 6.3.3).
fn sd_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A header field: printable US-ASCII without spaces, at most `max` long;
/// `-` (NILVALUE) when nothing is left.
fn header_field(s: &str, max: usize) -> String {
    let v: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if v.is_empty() {
        "-".into()
    } else {
        v
    }
}

/// RFC 5424 allows at most 6 fraction digits; event times have 9.
fn syslog_time(rfc3339_ns: &str) -> String {
    match rfc3339_ns.split_once('.') {
        Some((secs, frac)) => {
            let digits: String = frac
                .chars()
                .take_while(char::is_ascii_digit)
                .take(6)
                .collect();
            format!("{secs}.{digits}Z")
        }
        None => rfc3339_ns.to_string(),
    }
}

/// The private SD-ID: `proctor@32473` (32473 is the enterprise number RFC 5612
/// reserves for examples; proctor has none of its own).
pub const SD_ID: &str = "proctor@32473";

impl Encoder {
    pub fn new(cfg: &SinkConfig) -> Self {
        let framing = match cfg.kind {
            SinkType::Stdout | SinkType::File => Framing::Line,
            SinkType::Syslog => Framing::Syslog {
                facility: cfg
                    .facility
                    .as_deref()
                    .and_then(facility_code)
                    .unwrap_or(10),
                app_name: cfg.app_name().to_string(),
            },
            SinkType::Hec => Framing::Hec {
                index: cfg.index.clone(),
                source: cfg.source.clone().unwrap_or_else(|| "proctor".into()),
                sourcetype: cfg
                    .sourcetype
                    .clone()
                    .unwrap_or_else(|| format!("proctor:{}", cfg.format().as_str())),
            },
            SinkType::Otlp => Framing::Otlp,
        };
        Self {
            format: cfg.format(),
            framing,
        }
    }

    fn json(&self, ev: &Event) -> Option<Value> {
        let f = match self.format {
            SinkFormat::Json => Format::Native,
            SinkFormat::Ocsf => Format::Ocsf,
            SinkFormat::Ecs => Format::Ecs,
            SinkFormat::Cef => return Some(Value::String(cef::to_cef(ev))),
        };
        formats::render_json(f, ev)
    }

    /// The event as text in the sink's format (a JSON document or a CEF line).
    fn text(&self, ev: &Event) -> Option<String> {
        match self.format {
            SinkFormat::Cef => Some(cef::to_cef(ev)),
            SinkFormat::Json => String::from_utf8(native_json(ev)?).ok(),
            _ => self.json(ev).map(|v| v.to_string()),
        }
    }

    /// `None`: the format has no place for this event (counted as skipped).
    pub fn encode(&self, ev: &Event) -> Option<Vec<u8>> {
        match &self.framing {
            // JSON lines straight to bytes: serde_json writes UTF-8, so the
            // check a `String` makes of every byte is skipped.
            Framing::Line if self.format == SinkFormat::Json => {
                let mut b = native_json(ev)?;
                b.push(b'\n');
                Some(b)
            }
            Framing::Line => {
                let mut b = self.text(ev)?.into_bytes();
                b.push(b'\n');
                Some(b)
            }
            Framing::Syslog { facility, app_name } => {
                let msg = self.text(ev)?;
                let pri = u16::from(*facility) * 8 + u16::from(syslog_severity(ev));
                let mut sd = format!("[{SD_ID} seq=\"{}\" kind=\"{}\"", ev.seq, ev.kind.as_str());
                if let Some(f) = &ev.finding {
                    sd.push_str(&format!(
                        " rule=\"{}\" severity=\"{}\"",
                        sd_escape(f.rule),
                        f.severity.as_str()
                    ));
                }
                sd.push_str(&format!(" execId=\"{}\"]", sd_escape(&ev.process.exec_id)));
                Some(
                    format!(
                        "<{pri}>1 {} {} {} {} {} {sd} {msg}",
                        syslog_time(&ev.time),
                        header_field(&ev.node, 255),
                        header_field(app_name, 48),
                        ev.process.pid,
                        header_field(ev.kind.as_str(), 32),
                    )
                    .into_bytes(),
                )
            }
            Framing::Hec {
                index,
                source,
                sourcetype,
            } => {
                let event = self.json(ev)?;
                let ms = formats::epoch_ms(ev);
                let mut o = json!({
                    "time": ms as f64 / 1000.0,
                    "host": &*ev.node,
                    "source": source,
                    "sourcetype": sourcetype,
                    "event": event,
                    "fields": {"seq": ev.seq, "kind": ev.kind.as_str()},
                });
                if let Some(i) = index {
                    o["index"] = json!(i);
                }
                Some(o.to_string().into_bytes())
            }
            Framing::Otlp => {
                let body = self.text(ev)?;
                let (number, text) = otlp_severity(ev);
                let ns = formats::epoch_ns(ev).to_string();
                let mut attrs = vec![
                    json!({"key": "proctor.seq", "value": {"intValue": ev.seq.to_string()}}),
                    json!({"key": "proctor.kind", "value": {"stringValue": ev.kind.as_str()}}),
                    json!({"key": "process.pid", "value": {"intValue": ev.process.pid.to_string()}}),
                ];
                if let (Kind::Finding, Some(f)) = (ev.kind, &ev.finding) {
                    attrs.push(json!({"key": "proctor.rule", "value": {"stringValue": f.rule}}));
                }
                Some(
                    json!({
                        "timeUnixNano": ns,
                        "observedTimeUnixNano": ns,
                        "severityNumber": number,
                        "severityText": text,
                        "body": {"stringValue": body},
                        "attributes": attrs,
                    })
                    .to_string()
                    .into_bytes(),
                )
            }
        }
    }
}

/// The event in the native JSON format, from the event model (building a
/// `Value` first cost a map node per field and a third of the agent's CPU
/// at 10k events/s). Into a spare buffer, else one sized for a typical
/// event and the newline a line adds, so it is not grown and copied.
fn native_json(ev: &Event) -> Option<Vec<u8>> {
    let mut b = SPARE
        .with_borrow_mut(Vec::pop)
        .unwrap_or_else(|| Vec::with_capacity(2048));
    reused_json::write_event(&mut b, ev).ok()?;
    Some(b)
}

thread_local! {
    /// The buffers of records their sink delivered, for the next records
    /// this thread encodes. A sink delivers up to a thousand records at a
    /// time and frees them together, and glibc took the 2 KiB buffers back
    /// and handed them out again through its bins' slow path (~630
    /// instructions an allocation in callgrind, and the free on top).
    static SPARE: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Buffers kept at most (a sink's largest batch), and only those of an
/// ordinary event's size: some 2-4 MiB held after a burst.
const SPARE_BUFFERS: usize = 1024;
const SPARE_CAPACITY: std::ops::RangeInclusive<usize> = 1024..=4096;

/// Keeps the buffer of a delivered record for [`native_json`].
pub fn recycle(mut bytes: Vec<u8>) {
    if !SPARE_CAPACITY.contains(&bytes.capacity()) {
        return;
    }
    SPARE.with_borrow_mut(|spare| {
        if spare.len() < SPARE_BUFFERS {
            bytes.clear();
            spare.push(bytes);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    fn enc(yaml: &str) -> Encoder {
        Encoder::new(&serde_yaml_ng::from_str(yaml).unwrap())
    }

    #[test]
    fn syslog_message_is_rfc5424_with_cef() {
        let e = enc("type: syslog\ntransport: udp\naddress: h:514");
        let ev = testdata::event(Kind::Finding);
        let m = String::from_utf8(e.encode(&ev).unwrap()).unwrap();
        // authpriv (10) * 8 + err (3)
        assert!(m.starts_with("<83>1 2026-11-23T15:04:05.123456Z node-a proctor 4242 finding [proctor@32473 seq=\"42\" kind=\"finding\" rule=\"secret-read\" severity=\"high\""), "{m}");
        assert!(m.contains("] CEF:0|proctor|proctor|"), "{m}");
    }

    #[test]
    fn ocsf_cannot_carry_agent_status() {
        let e = enc("type: file\npath: /x\nformat: ocsf");
        assert!(e.encode(&testdata::event(Kind::AgentStatus)).is_none());
        assert!(e.encode(&testdata::event(Kind::ProcessExec)).is_some());
    }

    #[test]
    fn hec_and_otlp_objects() {
        let ev = testdata::event(Kind::Finding);
        let h: Value = serde_json::from_slice(
            &enc("type: hec\nurl: https://h/\ntoken: t")
                .encode(&ev)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(h["host"], "node-a");
        assert_eq!(h["sourcetype"], "proctor:json");
        assert_eq!(h["event"]["seq"], 42);
        assert!((h["time"].as_f64().unwrap() - 1_795_446_245.123).abs() < 0.001);
        let o: Value = serde_json::from_slice(
            &enc("type: otlp\nurl: http://h/v1/logs")
                .encode(&ev)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(o["severityNumber"], 17);
        assert_eq!(o["timeUnixNano"], testdata::T_NS.to_string());
        let body: Value = serde_json::from_str(o["body"]["stringValue"].as_str().unwrap()).unwrap();
        assert_eq!(body["kind"], "finding");
    }

    #[test]
    fn a_delivered_records_buffer_carries_the_next_record() {
        let e = enc("type: stdout");
        let a = e.encode(&testdata::event(Kind::FileOpen)).unwrap();
        let (at, text) = (a.as_ptr(), a.clone());
        recycle(a);
        let b = e.encode(&testdata::event(Kind::FileOpen)).unwrap();
        assert_eq!(b.as_ptr(), at);
        // Cleared first: the same bytes as a fresh buffer's.
        assert_eq!(b, text);
        // A buffer far from an event's size is not kept.
        recycle(Vec::with_capacity(1 << 20));
        let c = e.encode(&testdata::event(Kind::FileOpen)).unwrap();
        assert!(c.capacity() < 1 << 20);
    }

    #[test]
    fn sd_values_are_escaped() {
        assert_eq!(sd_escape(r#"a"b\c]d"#), r#"a\"b\\c\]d"#);
        assert_eq!(
            syslog_time("2026-11-23T15:04:05.123456789Z"),
            "2026-11-23T15:04:05.123456Z"
        );
    }
}
