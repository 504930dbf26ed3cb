//! What `lockstep serve` needs to know.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Resolved server settings (flags, environment and file already merged).
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where the database, keys and certificates live.
    pub data_dir: PathBuf,
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// DNS suffix under which vaults are addressed (`{vault}.{suffix}`).
    pub vault_suffix: String,
    /// Public base URL (issuer authority); defaults to `https://localhost:{port}`.
    pub public_url: Option<String>,
    /// Extra DNS names or IPs for the generated server certificate.
    pub extra_names: Vec<String>,
    /// User-supplied certificate chain (PEM) instead of the local CA.
    pub tls_cert: Option<PathBuf>,
    /// User-supplied private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// The master key (base64) from the environment instead of the key file.
    pub master_key: Option<zeroize::Zeroizing<String>>,
    /// Resource (audience) of Microsoft Graph tokens.
    pub graph_resource: String,
    /// Development mode: the clock can be moved forward through the API.
    pub dev_time_shift: bool,
    /// How often the rotation scheduler looks for due work.
    pub scheduler_tick: std::time::Duration,
    /// Delay before the first retry of a failed webhook delivery (it
    /// doubles at each retry); shortened by tests.
    pub webhook_retry_base: Duration,
    /// An extra CA certificate (PEM) to trust for webhook endpoints, beside
    /// the system roots.
    pub webhook_ca: Option<PathBuf>,
    /// How often secret versions are scanned for expiry events.
    pub expiry_scan_interval: Duration,
    /// Token requests per second allowed from one client address (twice as
    /// many at once).
    pub token_rate_per_address: u32,
}

impl ServeConfig {
    /// Defaults for a data directory.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            vault_suffix: "vault.localhost".into(),
            public_url: None,
            extra_names: Vec::new(),
            tls_cert: None,
            tls_key: None,
            master_key: None,
            graph_resource: "https://graph.microsoft.com".into(),
            dev_time_shift: false,
            scheduler_tick: std::time::Duration::from_secs(5),
            webhook_retry_base: Duration::from_secs(1),
            webhook_ca: None,
            expiry_scan_interval: Duration::from_secs(60),
            token_rate_per_address: DEFAULT_TOKEN_RATE_PER_ADDRESS,
        }
    }
}

/// Default of [`ServeConfig::token_rate_per_address`].
pub const DEFAULT_TOKEN_RATE_PER_ADDRESS: u32 = 1_000;

/// The audience of management-API tokens.
pub const MANAGEMENT_RESOURCE: &str = "api://lockstep";
