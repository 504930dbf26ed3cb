//! What can go wrong in the vault, in domain terms.

/// A vault operation failed.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// No vault with this name.
    #[error("Vault '{0}' was not found")]
    VaultNotFound(String),
    /// No live secret (or version) with this name.
    #[error("A secret with (name/id) {0} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182")]
    SecretNotFound(String),
    /// No deleted secret with this name.
    #[error("Deleted Secret not found: {0}")]
    DeletedSecretNotFound(String),
    /// The version is disabled; its value cannot be read.
    #[error("Operation {0} is not allowed on a disabled secret.")]
    Disabled(&'static str),
    /// The name belongs to a deleted secret that can still be recovered.
    #[error("Secret {0} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.")]
    DeletedButRecoverable(String),
    /// Restore into a name that already holds a secret.
    #[error(
        "Secret {0} already exists: a backup can only be restored to a name that is not in use."
    )]
    AlreadyExists(String),
    /// Invalid input; the message is safe to show to the client.
    #[error("{0}")]
    BadParameter(String),
    /// A storage or crypto failure; details go to the log, not the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<lockstep_store::StoreError> for VaultError {
    fn from(e: lockstep_store::StoreError) -> Self {
        VaultError::Internal(e.to_string())
    }
}

impl From<lockstep_crypto::KeyringError> for VaultError {
    fn from(e: lockstep_crypto::KeyringError) -> Self {
        VaultError::Internal(e.to_string())
    }
}

impl From<lockstep_core::NameError> for VaultError {
    fn from(e: lockstep_core::NameError) -> Self {
        VaultError::BadParameter(e.to_string())
    }
}
