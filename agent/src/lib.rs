//! proctor: a Linux eBPF agent that records, for every process, what it
//! executed and where it runs, and turns that kernel evidence into workload
//! identity and credential-use findings.
//!
//! One folder per wing, lower wings first: `kernel` (probes, BTF offsets,
//! decode), `identity` (process table, exec identity, cgroups, pods),
//! `secrets` (catalogue, monitor, policy, inventory), `detect` (findings),
//! `pipeline` (ordering, rate limits), `export` (formats, sinks, metrics),
//! `api` (gRPC, SPIRE plugin), `daemon` (wiring) and `cli`. The event contract
//! (`event`) and the small leaves beside it depend on no wing.

pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod detect;
pub mod duration;
pub mod event;
pub mod export;
pub mod identity;
pub mod kernel;
pub mod net;
pub mod paths;
pub mod pipeline;
pub mod redact;
pub mod secrets;
#[cfg(test)]
mod testdata;
pub mod token_shapes;
