//! `lockstep serve`: flags, `LOCKSTEP_*` environment variables and an
//! optional TOML file, merged in that order of precedence.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use lockstep_server::ServeConfig;
use serde::Deserialize;

/// Options of `lockstep serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// Data directory (database, keys, certificates).
    #[arg(long, env = "LOCKSTEP_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "LOCKSTEP_LISTEN")]
    listen: Option<SocketAddr>,
    /// DNS suffix of vault hosts: vaults are `https://{vault}.{suffix}:{port}`.
    #[arg(long, env = "LOCKSTEP_VAULT_SUFFIX")]
    vault_suffix: Option<String>,
    /// Public base URL (token issuer); default `https://localhost:{port}`.
    #[arg(long, env = "LOCKSTEP_PUBLIC_URL")]
    public_url: Option<String>,
    /// Extra DNS name or IP for the generated certificate (repeatable).
    #[arg(long = "tls-name", env = "LOCKSTEP_TLS_NAMES", value_delimiter = ',')]
    tls_names: Vec<String>,
    /// Use this certificate chain (PEM) instead of the local CA.
    #[arg(long, env = "LOCKSTEP_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) for --tls-cert.
    #[arg(long, env = "LOCKSTEP_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Resource (audience) of Graph tokens.
    #[arg(long, env = "LOCKSTEP_GRAPH_RESOURCE")]
    graph_resource: Option<String>,
    /// Development mode: allow moving the clock forward through the API
    /// (`lockstep dev time-shift`). Never use in production.
    #[arg(long, env = "LOCKSTEP_DEV_TIME_SHIFT")]
    dev_time_shift: bool,
    /// How often the rotation scheduler looks for due work, in milliseconds.
    #[arg(long, env = "LOCKSTEP_SCHEDULER_TICK_MS")]
    scheduler_tick_ms: Option<u64>,
    /// Extra CA certificate (PEM) to trust for webhook endpoints, beside the system roots.
    #[arg(long, env = "LOCKSTEP_WEBHOOK_CA")]
    webhook_ca: Option<PathBuf>,
    /// Delay before the first retry of a failed webhook delivery, in
    /// milliseconds; it doubles at each retry (default 1000; a test and
    /// operations knob).
    #[arg(long, env = "LOCKSTEP_WEBHOOK_RETRY_BASE_MS")]
    webhook_retry_base_ms: Option<u64>,
    /// How often secret versions are scanned for near-expiry and expired
    /// events, in milliseconds (default 60000; a test and operations knob).
    #[arg(long, env = "LOCKSTEP_EXPIRY_SCAN_INTERVAL_MS")]
    expiry_scan_interval_ms: Option<u64>,
    /// Token requests per second accepted from one client address (a burst
    /// of twice as many); more are answered 429 with Retry-After.
    #[arg(long, env = "LOCKSTEP_TOKEN_RATE_LIMIT", value_parser = clap::value_parser!(u32).range(1..))]
    token_rate_limit: Option<u32>,
    /// TOML configuration file with the same settings (snake_case keys).
    #[arg(long, env = "LOCKSTEP_CONFIG")]
    config: Option<PathBuf>,
}

/// The TOML file's shape.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    vault_suffix: Option<String>,
    public_url: Option<String>,
    tls_names: Option<Vec<String>>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    graph_resource: Option<String>,
    dev_time_shift: Option<bool>,
    scheduler_tick_ms: Option<u64>,
    webhook_ca: Option<PathBuf>,
    webhook_retry_base_ms: Option<u64>,
    expiry_scan_interval_ms: Option<u64>,
    token_rate_limit: Option<u32>,
}

fn resolve(args: ServeArgs) -> Result<ServeConfig, String> {
    let file = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
            toml::from_str::<FileConfig>(&text)
                .map_err(|e| format!("invalid config file {}: {}", path.display(), e.message()))?
        }
        None => FileConfig::default(),
    };
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("./lockstep-data"));
    let mut config = ServeConfig::new(data_dir);
    if let Some(l) = args.listen.or(file.listen) {
        config.listen = l;
    }
    if let Some(s) = args.vault_suffix.or(file.vault_suffix) {
        let s = s.trim().trim_start_matches('.').to_ascii_lowercase();
        if s.is_empty() || s.contains(['/', ':', ' ']) {
            return Err(format!(
                "invalid vault suffix '{s}': expected a DNS name such as vault.localhost"
            ));
        }
        config.vault_suffix = s;
    }
    config.public_url = args.public_url.or(file.public_url);
    if let Some(url) = &config.public_url {
        if !url.starts_with("https://") {
            return Err(format!(
                "invalid public URL '{url}': it must start with https://"
            ));
        }
    }
    config.extra_names = if args.tls_names.is_empty() {
        file.tls_names.unwrap_or_default()
    } else {
        args.tls_names
    };
    config.tls_cert = args.tls_cert.or(file.tls_cert);
    config.tls_key = args.tls_key.or(file.tls_key);
    if let Some(g) = args.graph_resource.or(file.graph_resource) {
        config.graph_resource = g;
    }
    config.dev_time_shift = args.dev_time_shift || file.dev_time_shift.unwrap_or(false);
    if let Some(ms) = args.scheduler_tick_ms.or(file.scheduler_tick_ms) {
        config.scheduler_tick = std::time::Duration::from_millis(ms.max(10));
    }
    config.webhook_ca = args.webhook_ca.or(file.webhook_ca);
    let millis = |name: &str, v: Option<u64>| -> Result<Option<Duration>, String> {
        match v {
            Some(0) => Err(format!(
                "invalid {name}: it must be at least 1 (milliseconds)"
            )),
            Some(ms) => Ok(Some(Duration::from_millis(ms))),
            None => Ok(None),
        }
    };
    if let Some(d) = millis(
        "webhook retry base",
        args.webhook_retry_base_ms.or(file.webhook_retry_base_ms),
    )? {
        config.webhook_retry_base = d;
    }
    if let Some(d) = millis(
        "expiry scan interval",
        args.expiry_scan_interval_ms
            .or(file.expiry_scan_interval_ms),
    )? {
        config.expiry_scan_interval = d;
    }
    if let Some(rate) = args.token_rate_limit.or(file.token_rate_limit) {
        if rate == 0 {
            return Err("invalid token_rate_limit 0: it must be at least 1".into());
        }
        config.token_rate_per_address = rate;
    }
    config.master_key = std::env::var("LOCKSTEP_MASTER_KEY")
        .ok()
        .map(zeroize::Zeroizing::new);
    Ok(config)
}

/// Runs the server.
pub async fn run(args: ServeArgs) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOCKSTEP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let config = resolve(args)?;
    lockstep_server::serve(config)
        .await
        .map_err(|e| e.to_string())
}
