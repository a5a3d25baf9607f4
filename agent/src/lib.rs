//! proctor: a Linux eBPF agent that records, for every process, what it
//! executed and where it runs, and turns that kernel evidence into workload
//! identity and credential-use findings.

pub mod api;
pub mod btf_offsets;
pub mod cgroups;
pub mod cli;
pub mod clock;
pub mod config;
pub mod container;
pub mod daemon;
pub mod decode;
pub mod doctor;
pub mod duration;
pub mod emitter;
pub mod event;
pub mod exec_id;
pub mod exec_identity;
pub mod findings;
pub mod fingerprint;
pub mod formats;
pub mod hash_cache;
pub mod http_client;
pub mod inventory_store;
pub mod metrics;
pub mod net_connect;
pub mod paths;
pub mod pod_metadata;
pub mod policy;
pub mod policy_check;
pub mod preflight;
pub mod probes;
pub mod process_table;
pub mod procfs_scan;
pub mod rate_limit;
pub mod redact;
pub mod secret_catalog;
pub mod secret_env;
pub mod secret_monitor;
pub mod secret_usage;
pub mod seq_store;
pub mod sinks;
pub mod snapshot;
pub mod spire_plugin;
#[cfg(test)]
mod testdata;
pub mod tls_client;
