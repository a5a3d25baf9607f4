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
//!
//! Public are the binary's entry (`cli`) and what the integration tests and
//! examples drive directly (the API and its client, the event contract, the
//! identity and secret parts they build by hand); the rest is the crate's own.

pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
mod daemon;
mod detect;
mod duration;
pub mod event;
mod export;
mod heap;
pub mod identity;
pub mod kernel;
mod net;
mod paths;
mod pipeline;
mod private_files;
mod redact;
mod safe_open;
pub mod secrets;
mod sync;
#[cfg(test)]
mod testdata;
mod token_shapes;
mod unix_names;
