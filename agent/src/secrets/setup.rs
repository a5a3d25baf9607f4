//! Builds the secret monitor's parts (catalog with the node's homes, inventory
//! store, discovery roots, kernel watch lists) from the `secrets:` section and
//! the few values it needs from elsewhere.

use std::{path::Path, sync::Arc};

use anyhow::{Context, Result};

use crate::{
    kernel::{
        probes::{EnforcementMaps, OpenFilter},
        tmpfs_watch::TmpfsWatch,
    },
    secrets::catalog::{passwd_homes, Catalog, DiscoverRoots},
    secrets::decoys,
    secrets::fingerprint::Fingerprinter,
    secrets::inventory::{self, InventoryStore},
    secrets::kernel_watch::KernelMaps,
    secrets::monitor::{MonitorParts, SecretMonitor},
    secrets::policy::SecretsConfig,
};

/// What the monitor needs beyond the maps: its config section and the
/// values other sections own.
pub struct Inputs<'a> {
    /// The `secrets:` section.
    pub secrets: &'a SecretsConfig,
    /// The configured catalog (built-in, minus `disable`, plus `catalog`).
    pub catalog: Catalog,
    /// The cluster's fingerprint key.
    pub fingerprinter: Fingerprinter,
    /// Where the inventory lives.
    pub state_dir: &'a Path,
}

/// The monitor of this host, writing the probes' open filter and enforcement maps.
pub fn build(
    inputs: Inputs<'_>,
    filter: OpenFilter,
    enforcement: EnforcementMaps,
    tmpfs: Option<Arc<TmpfsWatch>>,
) -> Result<SecretMonitor> {
    let Inputs {
        secrets,
        catalog,
        fingerprinter,
        state_dir,
    } = inputs;
    let catalog = node_catalog(secrets, catalog, &fingerprinter)?;
    let store = InventoryStore::open(&inventory::default_path(state_dir))?;
    SecretMonitor::new(
        secrets.clone(),
        MonitorParts {
            catalog,
            fingerprinter,
            store,
            kernel: KernelMaps::new(filter, enforcement, tmpfs),
            discover: discover_roots(secrets),
        },
    )
}

/// The configured catalog as this node needs it: the decoys planted (and
/// catalogued), `~/` expanded to the node's homes. At start-up and on reload.
pub fn node_catalog(
    secrets: &SecretsConfig,
    catalog: Catalog,
    fingerprinter: &Fingerprinter,
) -> Result<Catalog> {
    let planted = decoys::plant(&secrets.decoys, fingerprinter);
    for (path, why) in &planted.skipped {
        tracing::warn!("decoy {} not planted: {why}", path.display());
    }
    let catalog = catalog
        .extend(decoys::catalog_entries(&planted.decoys))
        .context("secrets.decoys")?;
    let mut homes = passwd_homes(Path::new("/"));
    homes.extend(secrets.extra_homes.iter().cloned());
    catalog
        .with_homes(&homes)
        .context("home directories (/etc/passwd and secrets.extra_homes)")
}

/// Where discovery looks on this host, with the section's extra places.
pub fn discover_roots(secrets: &SecretsConfig) -> DiscoverRoots {
    let mut discover = DiscoverRoots::host();
    discover.anywhere_dirs = secrets.search_dirs.clone();
    discover.extra_homes = secrets.extra_homes.clone();
    discover
}
