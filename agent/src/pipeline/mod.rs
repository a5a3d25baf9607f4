//! From detector output to the sinks: ordering, per-node sequence numbers and
//! per-identity rate limits.

pub mod emitter;
pub mod feed;
pub mod rate_limit;
pub mod seq_store;
