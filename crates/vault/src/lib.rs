//! The Key Vault secrets service: the domain behind the Key Vault-compatible
//! data plane. It validates input, seals and opens values through the key
//! hierarchy, and talks to the [`Store`](lockstep_store::Store). It knows
//! nothing about HTTP; the server maps [`VaultError`] to Key Vault's wire
//! errors in one place.

mod backup;
mod datakeys;
mod error;
mod generations;
mod latest;
mod paging;
mod service;
mod watch;

pub use error::VaultError;
pub use paging::{Page, PageMarker};
pub use service::{
    DeletedSecret, Secret, SecretUpdate, SecretVersion, SetSecret, VaultRef, Vaults, MAX_PAGE,
};
pub use watch::SecretWatch;
