//! `lockstep-client`: what an application needs to consume a secret that
//! Lockstep rotates, without ever using a stale value for long.
//!
//! - [`Client`] talks to a Lockstep server: it gets vault tokens with client
//!   credentials (cached, refreshed before expiry and after a 401) and reads
//!   or long-poll watches secrets on the Key Vault-compatible data plane.
//! - [`SecretCache`] keeps the latest value of each secret it was asked for,
//!   and a background watch per secret that replaces the value as soon as a
//!   new version is stored. When the value it handed out is refused
//!   (`invalid_client`, AADSTS7000215/7000222: see
//!   [`is_stale_credential_error`]), [`SecretCache::on_auth_failure`]
//!   refetches the latest version at once.
//!
//! ```no_run
//! # async fn demo() -> Result<(), lockstep_client::Error> {
//! use lockstep_client::{Client, Config, SecretCache};
//!
//! let config = Config::new(
//!     "https://localhost:8443",
//!     "<tenant id>",
//!     "<reader client id>",
//!     std::env::var("READER_SECRET").unwrap_or_default(),
//!     "https://default.vault.localhost:8443",
//! )
//! .with_ca_pem(std::fs::read("lockstep-data/tls/ca.pem").unwrap_or_default())
//! .with_resolve_to([127, 0, 0, 1].into());
//! let secrets = SecretCache::new(Client::new(config)?);
//!
//! let value = secrets.get("acg-client-secret").await?;
//! // ... use `value`; if the token endpoint answers invalid_client:
//! if let Some(newer) = secrets.on_auth_failure("acg-client-secret").await? {
//!     // retry once with `newer`
//! #   drop(newer);
//! }
//! # drop(value);
//! # Ok(()) }
//! ```

mod backoff;
mod cache;
mod client;
mod config;
mod entra;
mod error;
mod resolve;
mod token;

pub use backoff::Backoff;
pub use cache::{CachedSecret, SecretCache};
pub use client::Client;
pub use config::Config;
pub use entra::is_stale_credential_error;
pub use error::Error;
