//! Findings: the builders that fill each rule with evidence, and the connect
//! events the exfiltration rule reads. The rule ids themselves are part of
//! the event contract ([`crate::event::rule`], so that the secret
//! detectors, which build on these builders, name them from the same place).

pub mod connect;
pub mod findings;
