//! What every handler can reach.

use std::sync::Arc;

use lockstep_audit::AuditLog;
use lockstep_core::SharedClock;
use lockstep_events::Events;
use lockstep_identity::{Authorizer, Directory, TokenService, Users};
use lockstep_store::Store;
use lockstep_vault::Vaults;

/// Shared server state.
pub struct AppState {
    /// The store (for readiness checks).
    pub store: Arc<dyn Store>,
    /// The Key Vault secrets service.
    pub vaults: Arc<Vaults>,
    /// Tenants, apps and credentials.
    pub directory: Arc<Directory>,
    /// Token issuance and verification.
    pub tokens: Arc<TokenService>,
    /// The authorization check.
    pub authz: Authorizer,
    /// Vault host suffix (`vault.localhost`).
    pub vault_suffix: String,
    /// Audiences a vault accepts: the suffix with and without the port.
    pub vault_audiences: Vec<String>,
    /// Audience of Graph tokens.
    pub graph_resource: String,
    /// Counters exported at `/metrics`.
    pub metrics: crate::metrics::Metrics,
    /// Rate limits of the token endpoint.
    pub token_limits: TokenLimits,
    /// The clock.
    pub clock: SharedClock,
    /// The clock's handle for moving it, when `--dev-time-shift` is on.
    pub dev_clock: Option<Arc<lockstep_core::SystemClock>>,
    /// The rotation engine.
    pub engine: Arc<lockstep_rotation::Engine>,
    /// Wakes the scheduler (after a manual rotation or a time shift).
    pub wake_scheduler: tokio::sync::Notify,
    /// The audit log (one record per request; see `routes::audit`).
    pub audit: Arc<AuditLog>,
    /// Tenant users and their passwords.
    pub users: Users,
    /// The tenant created on first start (sign-in's default).
    pub default_tenant: String,
    /// Events and webhook subscriptions.
    pub events: Arc<Events>,
    /// Becomes `true` when the server starts shutting down, so that
    /// long-polling requests (secret watches) end at once instead of holding
    /// the drain open.
    pub stopping: tokio::sync::watch::Sender<bool>,
}

/// State as handlers receive it.
pub type Shared = Arc<AppState>;

/// Rate limits of the token endpoint: every request per client address, and
/// failed secrets per application (which alert but never block the right
/// secret).
pub struct TokenLimits {
    /// All token requests from one address.
    pub per_address: crate::ratelimit::RateLimiter,
    /// Failed secrets for one application.
    pub failures_per_app: crate::ratelimit::RateLimiter,
    /// Sign-in requests from one address.
    pub login_per_address: crate::ratelimit::RateLimiter,
    /// Failed passwords from one address for one user name.
    pub login_failures: crate::ratelimit::RateLimiter,
}

impl TokenLimits {
    /// `per_address` requests per second from one address (a burst of twice
    /// that), and the fixed alerting rate for failed secrets.
    pub fn new(per_address: u32) -> Self {
        let rate = f64::from(per_address.max(1));
        Self {
            per_address: crate::ratelimit::RateLimiter::new(rate, 2.0 * rate),
            failures_per_app: crate::ratelimit::RateLimiter::new(10.0 / 60.0, 10.0),
            login_per_address: crate::ratelimit::RateLimiter::new(20.0, 40.0),
            login_failures: crate::ratelimit::RateLimiter::new(5.0 / 60.0, 10.0),
        }
    }
}

impl Default for TokenLimits {
    fn default() -> Self {
        Self::new(crate::config::DEFAULT_TOKEN_RATE_PER_ADDRESS)
    }
}
