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
use lockstep_core::{SharedClock, SystemClock};
use lockstep_crypto::hash::SecretHasher;
use lockstep_identity::{Authorizer, Directory, TokenService};
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
}

/// Runs the server until it is told to stop.
pub async fn serve(config: ServeConfig) -> Result<(), ServeError> {
    let clock: SharedClock = Arc::new(SystemClock::new());
    let opened = bootstrap::open(
        &config.data_dir,
        config.master_key.as_ref().map(|k| k.as_str()),
    )?;
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
    let tokens = TokenService::load(
        opened.store.clone(),
        clock.clone(),
        opened.kek.clone(),
        directory.clone(),
        authority.clone(),
        resources,
    )
    .map_err(|e| ServeError::Identity(e.to_string()))?;

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

    let state = Arc::new(AppState {
        store: opened.store.clone(),
        vaults: Vaults::new(opened.store.clone(), opened.kek.clone(), clock.clone()),
        directory,
        tokens,
        authz,
        vault_suffix: config.vault_suffix.to_ascii_lowercase(),
        vault_audiences,
        graph_resource: config.graph_resource.clone(),
        metrics: crate::metrics::Metrics::new(),
        token_limits: Default::default(),
        clock: clock.clone(),
        stopping: tokio::sync::watch::Sender::new(false),
    });
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

    let purge_state = state.clone();
    let purger = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let s = purge_state.clone();
            match tokio::task::spawn_blocking(move || s.vaults.purge_expired()).await {
                Ok(Ok(n)) if n > 0 => tracing::info!(
                    purged = n,
                    "purged deleted secrets past their recovery period"
                ),
                Ok(Err(e)) => tracing::warn!(error = %e, "scheduled purge failed"),
                _ => {}
            }
        }
    });

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
    drop(listener);
    state.stopping.send_replace(true);
    tracing::info!("shutting down: draining connections");
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close within 10 s");
    }
    println!("Lockstep stopped.");
    Ok(())
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
