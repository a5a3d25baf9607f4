//! Where events go. Each sink counts what it delivered and what it could not,
//! so no loss is silent.

pub mod stdout;

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

#[derive(Debug, Default)]
pub struct SinkCounters {
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
}

#[derive(Debug, Serialize)]
pub struct SinkStats {
    pub name: &'static str,
    pub delivered: u64,
    pub failed: u64,
}

impl SinkCounters {
    pub fn snapshot(&self, name: &'static str) -> SinkStats {
        SinkStats {
            name,
            delivered: self.delivered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}
