//! Where events leave the agent: SIEM formats, sinks with their queues and
//! spools, and the Prometheus metrics.

pub mod formats;
pub mod metrics;
pub mod sinks;
