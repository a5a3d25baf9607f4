//! Static secrets: the catalogue of credential files, their discovery and
//! kernel watch lists, credentials in environments, policy, keyed
//! fingerprints, who uses which secret, and the inventory that remembers it.

pub mod catalog;
pub mod env;
pub mod fingerprint;
pub mod inventory;
pub mod monitor;
pub mod policy;
pub mod usage;
