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
    /// The inventory items as a JSON array.
    pub async fn list_json(&self) -> Result<String, Status> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let store = InventoryStore::open_read_only(&path).map_err(store_status)?;
            let items = store.items(crate::clock::now_ns()).map_err(store_status)?;
            serde_json::to_string(&items)
                .map_err(|e| Status::internal(format!("cannot serialize the inventory: {e}")))
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
    async fn list(&self, _: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        Ok(Response::new(ListResponse {
            json: self.list_json().await?,
        }))
    }
}
