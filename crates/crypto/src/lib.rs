//! Lockstep's cryptography: the key hierarchy that seals secret values,
//! random identifiers and client secrets, keyed hashing of client secrets,
//! and RS256 signing keys. Every primitive comes from aws-lc-rs.

pub mod hash;
pub mod keyring;
pub mod random;
pub mod seal;
pub mod signing;

pub use keyring::{DataKey, Kek, KeyringError, MasterKey, WrappedKey};
pub use seal::{open, seal, SealError, SymmetricKey};

/// A secret value in memory, wiped when dropped.
pub type SecretBytes = zeroize::Zeroizing<Vec<u8>>;
