//! SIEM output formats.
//!
//! The native form of an event is the `proctor.event/v1` contract (see
//! docs/event-contract.md and [`crate::event`]). For SIEMs that want a standard schema the
//! same event can be rendered as:
//!
//! - [OCSF](ocsf) 1.3.0 JSON ([`Format::Ocsf`]),
//! - [Elastic Common Schema](ecs) 8.x JSON ([`Format::Ecs`]),
//! - an ArcSight [CEF](cef) line, for syslog consumers ([`cef::to_cef`]).
//!
//! What the formats read off an event alike (times, names, the process,
//! container and pod blocks) is in `common`, the one-line message per kind
//! and the rule titles in `summary`; each format file holds only its own
//! field names. The field-by-field mapping is documented in
//! `docs/siem-mappings.md`; keep the two in step.
//!
//! Renderers never fail and never panic: a field the event lacks is left
//! out, and the only event a format cannot carry at all (`agent_status` in
//! OCSF) comes back as `None`, for the sink to count.

pub mod cef;
mod common;
pub mod ecs;
pub mod ocsf;
mod summary;

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub(crate) use common::{epoch_ms, epoch_ns};

use crate::event::Event;

/// A JSON output format, as a sink's configuration names it
/// (`format: native | ocsf | ecs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The `proctor.event/v1` contract, unchanged.
    #[default]
    Native,
    /// OCSF 1.3.0.
    Ocsf,
    /// Elastic Common Schema 8.x.
    Ecs,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Native, Format::Ocsf, Format::Ecs];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Native => "native",
            Format::Ocsf => "ocsf",
            Format::Ecs => "ecs",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| format!("unknown format {s:?} (expected native, ocsf or ecs)"))
    }
}

/// The event as one JSON document in `format`.
///
/// `None` means the format has no place for this kind of event (today only
/// `agent_status` in OCSF, see [`ocsf::to_ocsf`]); a sink must count such
/// events as skipped, not drop them silently.
pub fn render_json(format: Format, event: &Event) -> Option<Value> {
    match format {
        // Serializing the event model cannot fail: every map key is a string.
        Format::Native => serde_json::to_value(event).ok(),
        Format::Ocsf => ocsf::to_ocsf(event),
        Format::Ecs => Some(ecs::to_ecs(event)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Kind;
    use crate::testdata::*;

    #[test]
    fn format_names_round_trip_through_serde_and_from_str() {
        for f in Format::ALL {
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(json, format!("\"{}\"", f.as_str()));
            let back: Format = serde_json::from_str(&json).unwrap();
            assert_eq!(back, f);
            assert_eq!(f.as_str().parse::<Format>().unwrap(), f);
        }
        assert_eq!(Format::default(), Format::Native);
        assert!("OCSF".parse::<Format>().is_err());
        assert!(serde_json::from_str::<Format>("\"cef\"").is_err());
    }

    #[test]
    fn native_is_the_contract_unchanged() {
        for ev in all_kinds() {
            let v = render_json(Format::Native, &ev).unwrap();
            assert_eq!(v, serde_json::to_value(&ev).unwrap());
            assert_eq!(v["schema"], "proctor.event/v1");
            assert_eq!(v["kind"], ev.kind.as_str());
        }
    }

    #[test]
    fn every_format_renders_every_kind_except_ocsf_agent_status() {
        for ev in all_kinds() {
            for f in Format::ALL {
                let out = render_json(f, &ev);
                // OCSF: no class for agent_status; Network Activity requires
                // a destination, which a net_connect without `net` lacks.
                let unmappable = matches!(ev.kind, Kind::AgentStatus | Kind::ProcessHash)
                    || (ev.kind == Kind::NetConnect && ev.net.is_none());
                let expect_none = f == Format::Ocsf && unmappable;
                assert_eq!(out.is_none(), expect_none, "{f} {:?}", ev.kind);
                if let Some(v) = out {
                    assert!(v.is_object(), "{f} {:?}", ev.kind);
                }
            }
        }
    }
}
