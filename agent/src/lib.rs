//! proctor: a Linux eBPF agent that records, for every process, what it
//! executed and where it runs, and turns that kernel evidence into workload
//! identity and credential-use findings.

pub mod btf_offsets;
pub mod cgroups;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod decode;
pub mod doctor;
pub mod emitter;
pub mod event;
pub mod exec_id;
pub mod exec_identity;
pub mod hash_cache;
pub mod preflight;
pub mod probes;
pub mod process_table;
pub mod procfs_scan;
pub mod redact;
pub mod sinks;
pub mod snapshot;
