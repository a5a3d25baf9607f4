//! The integration tests, one binary: a module per topic, all on the real
//! kernel with the real `proctor` binary, sharing one harness.
//!
//! Topics run in parallel within this binary; a test that needs the machine
//! to itself (a storm measured for drops) takes `harness::exclusive()`.

mod harness;

mod api;
mod clean_day;
mod connect_hooks;
mod deploy;
mod docs;
mod env_capture;
mod evasion;
mod exec_storm;
mod exposure;
mod file_hooks;
mod forgery;
mod host_path;
mod hostile_paths;
mod image_layers;
mod kernel_layouts;
mod kube_secrets;
mod liveness;
mod memory_bounds;
mod network;
mod observability;
mod owners;
mod pod_metadata;
mod process_events;
mod quarantine;
mod reload;
mod ring_wakeup;
mod secret_intel;
mod secret_versions;
mod secrets;
mod sinks;
mod spire_attestation;
mod spire_plugin;
mod tmpfs_reads;
