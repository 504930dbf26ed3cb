//! The Lockstep server: TLS listener, routing by host, the wire APIs (Key
//! Vault data plane, Entra token endpoint, management), and start-up of a
//! data directory. Domain logic lives in the `vault` and `identity` crates;
//! this crate only translates between HTTP and them.

mod audit;
mod auth;
mod blocking;
mod bootstrap;
pub mod config;
mod events;
mod graph;
mod keyvault;
mod listener;
mod management;
mod metrics;
mod oauth;
mod ratelimit;
mod routes;
mod scheduler;
mod state;
mod tls;

pub use bootstrap::{BootstrapAdmin, BOOTSTRAP_FILE};
pub use config::ServeConfig;
pub use listener::{serve, ServeError};
