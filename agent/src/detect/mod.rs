//! Findings: every rule id of the contract and the builders that fill them
//! with evidence, and the connect events the exfiltration rule reads.

pub mod connect;
pub mod findings;
