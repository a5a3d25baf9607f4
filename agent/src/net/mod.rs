//! Outbound connections the agent itself makes: one HTTP(S) client and one
//! TLS client configuration (sinks, the kubelet's pod list).

pub mod http_client;
pub mod tls_client;
