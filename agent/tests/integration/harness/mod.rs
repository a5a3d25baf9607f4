//! The shared harness of the integration tests: the agent under test as a
//! child process, processes and files to compare its events with, its HTTP
//! endpoint, the test PKI and HTTPS stand-in for the services it calls, and
//! the external tools and repository files the tests check.

mod agent;
mod cgroups;
mod files;
mod home_agent;
mod https;
mod metrics;
mod netns;
mod process;
mod tls;
mod tools;

pub use agent::*;
pub use cgroups::*;
pub use files::*;
pub use home_agent::*;
pub use https::*;
pub use metrics::*;
pub use netns::*;
pub use process::*;
pub use tls::*;
pub use tools::*;
