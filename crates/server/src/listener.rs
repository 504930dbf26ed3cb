//! `lockstep serve`: open the data directory, bind, and serve HTTPS until
//! SIGTERM or SIGINT, then drain connections and exit cleanly.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use lockstep_audit::{AuditLog, Durability, Entry};
use lockstep_core::{SharedClock, SystemClock};
use lockstep_crypto::hash::SecretHasher;
use lockstep_events::{Events, EventsConfig, RetryPolicy};
use lockstep_identity::Users;
use lockstep_identity::{Authorizer, Directory, Scope, TokenService};
use lockstep_vault::Vaults;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::bootstrap::{self, BootstrapAdmin, BOOTSTRAP_FILE};
use crate::config::{ServeConfig, MANAGEMENT_RESOURCE};
use crate::state::AppState;

/// Why the server could not start (each is one line for the operator).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Unusable configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The data directory cannot be used.
    #[error("{0}")]
    DataDir(String),
    /// The master key is missing, malformed or wrong.
    #[error("master key: {0}")]
    MasterKey(String),
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Certificates or keys cannot be created or loaded.
    #[error("TLS: {0}")]
    Tls(String),
    /// Identity could not start.
    #[error("identity: {0}")]
    Identity(String),
    /// The audit log cannot be opened or written.
    #[error("{0}")]
    Audit(String),
}

/// How often audit records are fsync'd (they reach the OS at once).
const AUDIT_SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// Runs the server until it is told to stop.
pub async fn serve(config: ServeConfig) -> Result<(), ServeError> {
    let system_clock = Arc::new(SystemClock::new());
    let clock: SharedClock = system_clock.clone();
    let opened = bootstrap::open(
        &config.data_dir,
        config.master_key.as_ref().map(|k| k.as_str()),
    )?;
    let audit = Arc::new(bootstrap::open_audit(&config.data_dir, clock.clone())?);
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: config.listen,
        source,
    })?;
    let port = local.port();
    let authority = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("https://localhost:{port}"))
        .trim_end_matches('/')
        .to_owned();

    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
        config.vault_suffix.clone(),
        format!("*.{}", config.vault_suffix),
    ];
    if let Some(host) = authority
        .strip_prefix("https://")
        .map(|h| h.rsplit_once(':').map_or(h, |(h, _)| h).to_owned())
    {
        if !names.contains(&host) {
            names.push(host);
        }
    }
    names.extend(config.extra_names.iter().cloned());
    let (tls, ca_path) = crate::tls::server_config(
        &config.data_dir,
        &names,
        config.tls_cert.as_deref(),
        config.tls_key.as_deref(),
    )?;

    let hasher = SecretHasher::new(&opened.master.derive("client-secret-hash/v1"));
    let directory = Arc::new(Directory::new(opened.store.clone(), clock.clone(), hasher));
    let authz = Authorizer::new(opened.store.clone(), clock.clone());
    let vault_audiences = vec![
        format!("https://{}", config.vault_suffix),
        format!("https://{}:{port}", config.vault_suffix),
    ];
    let mut resources = vault_audiences.clone();
    resources.push(MANAGEMENT_RESOURCE.to_owned());
    resources.push(config.graph_resource.clone());
    let tokens = Arc::new(
        TokenService::load(
            opened.store.clone(),
            clock.clone(),
            opened.kek.clone(),
            directory.clone(),
            authority.clone(),
            resources,
        )
        .map_err(|e| ServeError::Identity(e.to_string()))?,
    );

    let vault_url = format!("https://default.{}:{port}", config.vault_suffix);
    let admin_path = config.data_dir.join(BOOTSTRAP_FILE);
    let (installation, first_start) = bootstrap::install(
        &opened.store,
        &directory,
        &authz,
        &clock,
        |admin: BootstrapAdmin| {
            let json = serde_json::to_vec_pretty(&admin)
                .map_err(|e| ServeError::DataDir(e.to_string()))?;
            bootstrap::write_private_file(&admin_path, &json)
        },
        (
            &authority,
            &vault_url,
            ca_path.clone().map(|p| absolute(&p)),
        ),
    )?;

    let vaults = Arc::new(Vaults::new(
        opened.store.clone(),
        opened.kek.clone(),
        clock.clone(),
    ));
    let events = Arc::new(events_service(
        &config,
        &opened,
        &clock,
        &authority,
        &format!("https://{{vault}}.{}:{port}", config.vault_suffix),
    )?);
    let engine = Arc::new(lockstep_rotation::Engine::new(
        opened.store.clone(),
        vaults.clone(),
        directory.clone(),
        tokens.clone(),
        clock.clone(),
        Arc::new(crate::events::EngineEvents(events.clone())),
    ));
    let state = Arc::new(AppState {
        store: opened.store.clone(),
        vaults,
        directory,
        tokens,
        authz,
        vault_suffix: config.vault_suffix.to_ascii_lowercase(),
        vault_audiences,
        graph_resource: config.graph_resource.clone(),
        metrics: crate::metrics::Metrics::new(),
        token_limits: crate::state::TokenLimits::new(config.token_rate_per_address),
        clock: clock.clone(),
        dev_clock: config.dev_time_shift.then(|| system_clock.clone()),
        engine,
        wake_scheduler: tokio::sync::Notify::new(),
        audit: audit.clone(),
        users: Users::new(opened.store.clone(), clock.clone()),
        default_tenant: installation.tenant_id.clone(),
        events: events.clone(),
        stopping: tokio::sync::watch::Sender::new(false),
    });
    if config.dev_time_shift {
        tracing::warn!(
            "development mode: the clock can be moved forward through /lockstep/v1/dev/time-shift"
        );
    }
    let mut started = vec![Entry::system("ServerStarted", &authority)];
    if first_start {
        let mut e = Entry::system(
            "Bootstrapped",
            Scope::tenant(&installation.tenant_id).as_str(),
        );
        e.tenant = installation.tenant_id.clone();
        started.push(e);
    }
    audit
        .append(&started, Durability::Synced)
        .map_err(|e| ServeError::Audit(e.to_string()))?;
    let app = crate::routes::app(state.clone());

    if first_start {
        println!(
            "Bootstrap admin credentials written to {} (readable by this user only).",
            absolute(&admin_path).display()
        );
    }
    if let Some(ca) = &ca_path {
        println!(
            "Clients should trust the CA certificate at {}.",
            absolute(ca).display()
        );
    }
    println!(
        "Tenant {}; default vault at {vault_url}",
        installation.tenant_id
    );
    println!("Lockstep is listening on {authority}");
    let _ = std::io::stdout().flush();
    tracing::info!(%local, "listening");

    let syncer = tokio::spawn(sync_audit(audit.clone()));
    let purge_state = state.clone();
    let purger = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let s = purge_state.clone();
            match tokio::task::spawn_blocking(move || s.vaults.purge_expired()).await {
                Ok(Ok(n)) if n > 0 => {
                    tracing::info!(
                        purged = n,
                        "purged deleted secrets past their recovery period"
                    );
                    let event = Entry::system(
                        "DeletedSecretsPurged",
                        &format!("{n} deleted secrets past their recovery period"),
                    );
                    if let Err(e) = purge_state.audit.append(&[event], Durability::Flushed) {
                        tracing::error!(error = %e, "cannot record the scheduled purge");
                    }
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "scheduled purge failed"),
                _ => {}
            }
        }
    });

    let scheduler = tokio::spawn(crate::scheduler::run(state.clone(), config.scheduler_tick));
    let deliveries = tokio::spawn(events.clone().run_deliveries());
    let expiry_scan = tokio::spawn(events.run_expiry_scanner(config.expiry_scan_interval));

    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let builder = Builder::new(TokioExecutor::new());
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let app = app.clone();
                let watcher = graceful.watcher();
                let builder = builder.clone();
                tokio::spawn(async move {
                    let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let svc = tower::ServiceExt::map_request(app, move |mut req: axum::http::Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                        req.map(axum::body::Body::new)
                    });
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), TowerToHyperService::new(svc));
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    purger.abort();
    scheduler.abort();
    deliveries.abort();
    expiry_scan.abort();
    drop(listener);
    state.stopping.send_replace(true);
    tracing::info!("shutting down: draining connections");
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close within 10 s");
    }
    syncer.abort();
    let stopped = Entry::system("ServerStopped", &authority);
    if let Err(e) = audit
        .append(&[stopped], Durability::Synced)
        .and_then(|_| audit.sync())
    {
        tracing::error!(error = %e, "cannot record the shutdown in the audit log");
    }
    println!("Lockstep stopped.");
    Ok(())
}

/// Makes audit records durable every [`AUDIT_SYNC_INTERVAL`]. A failed sync
/// makes the log refuse further records (and so requests) until restart.
async fn sync_audit(log: Arc<AuditLog>) {
    let mut tick = tokio::time::interval(AUDIT_SYNC_INTERVAL);
    loop {
        tick.tick().await;
        let l = log.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || l.sync()).await {
            tracing::error!(error = %e, "audit log sync failed; requests are refused until restart");
            return;
        }
    }
}

/// The events service: CloudEvents `source` is the server's public URL;
/// webhook endpoints are trusted by the system roots plus `--webhook-ca`.
fn events_service(
    config: &ServeConfig,
    opened: &bootstrap::Opened,
    clock: &SharedClock,
    authority: &str,
    vault_url: &str,
) -> Result<Events, ServeError> {
    let mut settings = EventsConfig::new(authority.to_owned(), vault_url.to_owned());
    settings.retry = RetryPolicy::with_base(config.webhook_retry_base);
    if let Some(path) = &config.webhook_ca {
        settings.extra_ca_pem = Some(std::fs::read(path).map_err(|e| {
            ServeError::Config(format!("cannot read webhook CA {}: {e}", path.display()))
        })?);
    }
    Events::new(
        opened.store.clone(),
        opened.kek.clone(),
        clock.clone(),
        settings,
    )
    .map_err(|e| ServeError::Config(e.to_string()))
}

fn absolute(p: &std::path::Path) -> std::path::PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
