//! Findings: the builders that fill each rule with evidence, and the connect
//! events the exfiltration rule reads. The rule ids themselves are part of
//! the event contract ([`rule`], defined in `event.rs` so that detectors
//! below this wing can name them too).

pub mod connect;
pub mod findings;

pub use crate::event::rule;
