//! hclog-style JSON log lines for plugin mode, which go-plugin parses off the plugin's stderr and re-logs at their own level.
//!
//! go-plugin relays any stderr line that is not JSON at debug level, so a
//! plain-text warning from the plugin would be invisible in a SPIRE agent
//! logging at info. A JSON object with `@level`, `@message` and `@timestamp`
//! (hclog's keys; the timestamp exactly as hclog writes it, since go-plugin
//! parses it with that one layout and drops lines that do not match) is
//! re-logged at its level with the other keys as fields.

use std::{fmt, time::SystemTime};

use serde_json::{Map, Value};
use tracing::{
    field::{Field, Visit},
    Event, Level, Subscriber,
};
use tracing_subscriber::{
    fmt::{format::Writer, FmtContext, FormatEvent, FormatFields},
    registry::LookupSpan,
};

/// The `@module` every line carries: the host names the plugin after its binary.
const MODULE: &str = "proctor";

/// A `tracing_subscriber::fmt` event format writing one hclog JSON object per line.
pub struct HclogJson;

impl<S, N> FormatEvent<S, N> for HclogJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        writeln!(
            writer,
            "{}",
            line(
                meta.level(),
                meta.target(),
                fields.message,
                fields.rest,
                SystemTime::now()
            )
        )
    }
}

/// The event's `message` and its other fields as JSON values.
#[derive(Default)]
struct Fields {
    message: String,
    rest: Map<String, Value>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
        } else {
            self.rest.insert(field.name().to_string(), value);
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
}

/// hclog's name for a level (`hclog.LevelFromString` reads these).
fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

/// One log line: the event's own fields, then hclog's keys over them.
fn line(
    level: &Level,
    target: &str,
    message: String,
    mut fields: Map<String, Value>,
    at: SystemTime,
) -> String {
    fields.insert("@level".into(), level_name(level).into());
    fields.insert("@message".into(), message.into());
    // hclog's layout "2006-01-02T15:04:05.000000Z07:00": exactly six digits.
    fields.insert(
        "@timestamp".into(),
        humantime::format_rfc3339_micros(at).to_string().into(),
    );
    fields.insert("@module".into(), MODULE.into());
    fields.insert("target".into(), target.into());
    Value::Object(fields).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_carries_hclogs_keys_at_the_right_level_on_one_line() {
        let mut f = Map::new();
        f.insert("pid".into(), 42.into());
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(1_700_000_000_123_456);
        let l = line(
            &Level::WARN,
            "proctor::api",
            "agent socket \"x\"\nnot answering".into(),
            f,
            at,
        );
        assert!(!l.contains('\n'), "{l}");
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["@level"], "warn", "{l}");
        assert_eq!(v["@message"], "agent socket \"x\"\nnot answering", "{l}");
        assert_eq!(v["@timestamp"], "2023-11-14T22:13:20.123456Z", "{l}");
        assert_eq!(v["@module"], "proctor", "{l}");
        assert_eq!(v["pid"], 42, "{l}");
        for (lv, name) in [
            (Level::TRACE, "trace"),
            (Level::DEBUG, "debug"),
            (Level::INFO, "info"),
            (Level::ERROR, "error"),
        ] {
            let v: Value =
                serde_json::from_str(&line(&lv, "t", "m".into(), Map::new(), at)).unwrap();
            assert_eq!(v["@level"], name);
        }
    }
}
