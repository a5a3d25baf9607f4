//! `proctor.v1.Inventory`: the static-secret inventory, read from the
//! agent's store (opened read-only, as `proctor inventory` does).

use std::path::PathBuf;

use tonic::{Request, Response, Status};

use crate::{
    api::pb::{inventory_server, ListRequest, ListResponse},
    secrets::inventory::{InventoryStore, StoreError},
};

/// The Inventory service.
#[derive(Clone)]
pub struct InventoryService {
    pub path: PathBuf,
}

impl InventoryService {
    /// The inventory items as a JSON array; with `secret`, the blast radius
    /// of the secrets it names (path, catalog id or fingerprint).
    pub async fn list_json(&self, secret: Option<String>) -> Result<String, Status> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let store = InventoryStore::open_read_only(&path).map_err(store_status)?;
            let now = crate::clock::now_ns();
            let json = match secret {
                Some(key) => store
                    .blast_radius(&key, now)
                    .map_err(store_status)
                    .map(|found| serde_json::to_string(&found))?,
                None => store
                    .items(now)
                    .map_err(store_status)
                    .map(|items| serde_json::to_string(&items))?,
            };
            json.map_err(|e| Status::internal(format!("cannot serialize the inventory: {e}")))
        })
        .await
        .map_err(|e| Status::internal(format!("inventory reader failed: {e}")))?
    }
}

fn store_status(e: StoreError) -> Status {
    match e {
        StoreError::Missing { .. } => Status::not_found(e.to_string()),
        StoreError::NewerSchema { .. } | StoreError::NotMigrated { .. } => {
            Status::failed_precondition(e.to_string())
        }
        _ => Status::unavailable(e.to_string()),
    }
}

#[tonic::async_trait]
impl inventory_server::Inventory for InventoryService {
    async fn list(&self, req: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let secret = Some(req.into_inner().secret).filter(|s| !s.is_empty());
        Ok(Response::new(ListResponse {
            json: self.list_json(secret).await?,
        }))
    }
}
