//! Who a process is: its exec as the kernel recorded it (binary, hash,
//! interpreter), where it runs (cgroup, container, pod) and the table of live
//! and recently exited processes that answers "who is PID N".

pub mod cgroups;
pub mod container;
pub mod exec_id;
pub mod exec_identity;
pub mod hash_cache;
pub mod host_path;
pub mod image_layers;
pub mod liveness;
pub mod package_index;
pub mod packages;
pub mod per_process;
pub mod pods;
pub mod process_table;
pub mod procfs_seed;
pub mod rpmdb;
pub mod snapshot;
