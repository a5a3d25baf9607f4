//! The kernel side as user space sees it: which hooks this kernel allows,
//! loading and attaching the probes with offsets read from the kernel's BTF,
//! and decoding the records they send.

pub mod btf_offsets;
pub mod connect_sweep;
pub mod decode;
pub mod doctor;
pub mod mounts;
pub mod preflight;
pub mod probes;
