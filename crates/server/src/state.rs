//! What every handler can reach.

use std::sync::Arc;

use lockstep_core::SharedClock;
use lockstep_identity::{Authorizer, Directory, TokenService, Users};
use lockstep_store::Store;
use lockstep_vault::Vaults;

/// Shared server state.
pub struct AppState {
    /// The store (for readiness checks).
    pub store: Arc<dyn Store>,
    /// The Key Vault secrets service.
    pub vaults: Vaults,
    /// Tenants, apps and credentials.
    pub directory: Arc<Directory>,
    /// Token issuance and verification.
    pub tokens: TokenService,
    /// The authorization check.
    pub authz: Authorizer,
    /// Vault host suffix (`vault.localhost`).
    pub vault_suffix: String,
    /// Audiences a vault accepts: the suffix with and without the port.
    pub vault_audiences: Vec<String>,
    /// Audience of Graph tokens.
    pub graph_resource: String,
    /// The clock.
    pub clock: SharedClock,
    /// Tenant users and their passwords.
    pub users: Users,
    /// The tenant created on first start (sign-in's default).
    pub default_tenant: String,
}

/// State as handlers receive it.
pub type Shared = Arc<AppState>;
