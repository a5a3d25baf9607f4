//! Static secrets: the catalogue of credential files, their discovery and
//! kernel watch lists, credentials in environments, policy, keyed
//! fingerprints, who uses which secret, and the inventory that remembers it.
//! The monitor decides; `kernel_watch` writes the kernel's lists, `read_batch`
//! batches inventory writes, `search` spots credential discovery, `rotation`
//! judges secrets' age, `decoys` plants decoy credentials, `owner_files`
//! follows the files policy names as owners, and `setup` builds a monitor
//! from its config; `kube` names the kubelet's Secret volume files from the
//! pod list.

pub mod catalog;
pub mod decoys;
pub mod env;
pub mod fingerprint;
pub mod inventory;
pub mod kernel_watch;
pub mod kube;
pub mod monitor;
pub mod owner_files;
pub mod policy;
pub mod read_batch;
pub mod rotation;
pub mod search;
pub mod setup;
pub mod usage;
