//! `lockstep agent`: a sidecar that keeps one secret fresh for a program
//! that cannot use the client library. It holds the latest value in a file
//! (mode 0600, replaced atomically) and/or serves it on a Unix socket (mode
//! 0600; each connection receives the value, then is closed), runs a
//! command after every change, and learns about new versions by a
//! long-poll watch rather than by polling on a timer.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use lockstep_client::{Backoff, CachedSecret, Client, SecretCache};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use crate::client::{consumer_config, CliResult, ConnectArgs};

/// What the agent keeps fresh, and where.
#[derive(Args)]
#[command(group(
    clap::ArgGroup::new("output")
        .required(true)
        .multiple(true)
        .args(["file", "socket", "exec"])
))]
pub struct AgentArgs {
    /// The secret to keep fresh.
    #[arg(long)]
    secret: String,
    /// Vault name.
    #[arg(long, default_value = "default", env = "LOCKSTEP_VAULT")]
    vault: String,
    /// Keep the value in this file (mode 0600, replaced atomically).
    #[arg(long)]
    file: Option<PathBuf>,
    /// Serve the value on this Unix socket (mode 0600): each connection
    /// receives the current value, then is closed.
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Run this command (with `sh -c`) once the value is first in place and
    /// after each change; it gets LOCKSTEP_SECRET_NAME,
    /// LOCKSTEP_SECRET_VERSION and, with --file, LOCKSTEP_SECRET_FILE.
    #[arg(long)]
    exec: Option<String>,
}

type Latest = watch::Receiver<Option<Arc<CachedSecret>>>;

/// Runs the agent until SIGTERM or SIGINT.
pub async fn run(conn: ConnectArgs, args: AgentArgs) -> CliResult<()> {
    init_logging();
    let config = consumer_config(&conn, &args.vault).await?;
    let retry = config.retry;
    let cache = SecretCache::new(Client::new(config).map_err(|e| e.to_string())?);
    let mut stop = stop_signal()?;

    let Some(mut latest) = first_value(&cache, &args.secret, retry, &mut stop).await? else {
        return Ok(());
    };
    let listener = match &args.socket {
        Some(path) => Some(
            bind_private(path)
                .map_err(|e| format!("cannot serve on socket {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let server = listener.map(|l| tokio::spawn(serve_socket(l, latest.clone())));

    let mut applied: Option<String> = None;
    let mut first = true;
    let result = loop {
        let current = latest.borrow_and_update().clone();
        if let Some(secret) = current {
            if applied.as_deref() != Some(secret.version.as_str()) {
                match apply(&args, &secret, &mut stop).await {
                    Ok(()) => applied = Some(secret.version.clone()),
                    // A file that cannot be written at start is a
                    // configuration error; later, the next change retries.
                    Err(e) if first => break Err(e),
                    Err(e) => tracing::error!(secret = %args.secret, "{e}"),
                }
                first = false;
            }
        }
        tokio::select! {
            changed = latest.changed() => {
                if changed.is_err() {
                    break Err("the secret cache stopped".to_owned());
                }
            }
            _ = stop.wait_for(|s| *s) => break Ok(()),
        }
    };
    if let Some(task) = server {
        task.abort();
    }
    if let Some(path) = &args.socket {
        let _ = std::fs::remove_file(path);
    }
    if result.is_ok() {
        tracing::info!(secret = %args.secret, "agent stopped");
    }
    result
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOCKSTEP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// A flag that becomes true on SIGTERM or SIGINT.
fn stop_signal() -> CliResult<watch::Receiver<bool>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        let _ = tx.send(true);
    });
    Ok(rx)
}

/// Reads the secret the first time, retrying (with one log line) while the
/// server is unreachable or the secret does not exist yet; `None` when
/// stopped first. Refused credentials or permissions end the agent.
async fn first_value(
    cache: &SecretCache,
    name: &str,
    retry: Backoff,
    stop: &mut watch::Receiver<bool>,
) -> CliResult<Option<Latest>> {
    let mut attempt = 0u32;
    let mut reported = false;
    loop {
        let outcome = tokio::select! {
            r = cache.subscribe(name) => r,
            _ = stop.wait_for(|s| *s) => return Ok(None),
        };
        match outcome {
            Ok(rx) => {
                if reported {
                    tracing::info!(secret = %name, "secret read");
                }
                return Ok(Some(rx));
            }
            Err(e) if !e.is_transient() => return Err(format!("cannot read secret {name}: {e}")),
            Err(e) => {
                if !reported {
                    tracing::warn!(secret = %name, error = %e, "cannot read the secret yet; retrying");
                    reported = true;
                }
                tokio::select! {
                    _ = tokio::time::sleep(retry.delay(attempt)) => {},
                    _ = stop.wait_for(|s| *s) => return Ok(None),
                }
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

/// Puts a new version in place: the file, then the command.
async fn apply(
    args: &AgentArgs,
    secret: &Arc<CachedSecret>,
    stop: &mut watch::Receiver<bool>,
) -> CliResult<()> {
    if let Some(path) = &args.file {
        let (path, secret) = (path.clone(), Arc::clone(secret));
        tokio::task::spawn_blocking(move || write_atomically(&path, secret.value.as_bytes()))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| {
                format!(
                    "cannot write {}: {e}",
                    args.file.as_deref().unwrap_or(Path::new("")).display()
                )
            })?;
    }
    tracing::info!(secret = %args.secret, version = %secret.version, "version in place");
    if let Some(command) = &args.exec {
        run_command(command, args, &secret.version, stop).await;
    }
    Ok(())
}

/// Runs `--exec` and waits for it (so runs never overlap), unless the
/// agent is told to stop first.
async fn run_command(
    command: &str,
    args: &AgentArgs,
    version: &str,
    stop: &mut watch::Receiver<bool>,
) {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .env("LOCKSTEP_SECRET_NAME", &args.secret)
        .env("LOCKSTEP_SECRET_VERSION", version)
        .env_remove("LOCKSTEP_CLIENT_SECRET")
        .stdin(std::process::Stdio::null());
    if let Some(file) = &args.file {
        cmd.env(
            "LOCKSTEP_SECRET_FILE",
            std::path::absolute(file).unwrap_or(file.clone()),
        );
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot run the --exec command");
            return;
        }
    };
    tokio::select! {
        status = child.wait() => match status {
            Ok(s) if s.success() => {}
            Ok(s) => tracing::warn!(%version, status = %s, "the --exec command failed"),
            Err(e) => tracing::warn!(%version, error = %e, "the --exec command failed"),
        },
        _ = stop.wait_for(|s| *s) => {}
    }
}

/// A name no other writer picks: `.{name}.lockstep-{pid}-{nanos}`.
fn temp_name(base: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(".{base}.lockstep-{}-{nanos}", std::process::id())
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Replaces `path` with `value` so that readers see the old or the new
/// content, never a mix: a temporary file (mode 0600) in the same
/// directory, written and fsync'd, renamed over `path`, then the directory
/// fsync'd so the rename survives a crash.
pub fn write_atomically(path: &Path, value: &[u8]) -> std::io::Result<()> {
    let dir = parent_dir(path);
    let base = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the path names no file"))?
        .to_string_lossy();
    let tmp = dir.join(temp_name(&base));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(value)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Binds a Unix socket at `path` that only this user can connect to: it is
/// bound inside a fresh private (0700) directory, set to 0600, then renamed
/// into place, so it is never reachable with wider permissions. A stale
/// socket left by a dead agent is replaced; a live one is an error.
pub fn bind_private(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    "another process is serving this socket",
                ));
            }
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the path exists and is not a socket",
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let private = parent_dir(path).join(temp_name("agent"));
    std::fs::DirBuilder::new().mode(0o700).create(&private)?;
    let bound = (|| {
        let tmp = private.join("s");
        let listener = std::os::unix::net::UnixListener::bind(&tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&tmp, path)?;
        listener.set_nonblocking(true)?;
        tokio::net::UnixListener::from_std(listener)
    })();
    let _ = std::fs::remove_dir_all(&private);
    bound
}

/// Answers each connection with the current value, then closes it.
async fn serve_socket(listener: tokio::net::UnixListener, latest: Latest) {
    loop {
        let mut stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let current = latest.borrow().clone();
        tokio::spawn(async move {
            if let Some(secret) = current {
                let send = async {
                    stream.write_all(secret.value.as_bytes()).await?;
                    stream.shutdown().await
                };
                let _ = tokio::time::timeout(Duration::from_secs(5), send).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use std::io::Read;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn files_are_replaced_whole_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_atomically(&path, b"new value").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new value");
        assert_eq!(mode(&path), 0o600);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a non-empty directory: rename fails.
        let path = dir.path().join("taken");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("x"), "").unwrap();
        assert!(write_atomically(&path, b"v").is_err());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "temporary file removed");
    }

    #[tokio::test]
    async fn sockets_are_private_and_serve_the_current_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let listener = bind_private(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        let (tx, rx) = watch::channel(Some(Arc::new(CachedSecret {
            version: "a".into(),
            value: zeroize::Zeroizing::new("v1".into()),
            content_type: None,
            expires: None,
        })));
        let task = tokio::spawn(serve_socket(listener, rx));
        let read = |p: PathBuf| {
            tokio::task::spawn_blocking(move || {
                let mut s = std::os::unix::net::UnixStream::connect(p).unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).unwrap();
                out
            })
        };
        assert_eq!(read(path.clone()).await.unwrap(), "v1");
        tx.send_modify(|s| {
            *s = Some(Arc::new(CachedSecret {
                version: "b".into(),
                value: zeroize::Zeroizing::new("v2".into()),
                content_type: None,
                expires: None,
            }))
        });
        assert_eq!(read(path.clone()).await.unwrap(), "v2");
        // A second agent may not take over a live socket...
        assert!(bind_private(&path).is_err());
        task.abort();
        let _ = task.await;
        // ...but replaces a stale one.
        let again = bind_private(&path);
        assert!(again.is_ok(), "{:?}", again.err());
        // Only the socket is left: the private directory is gone.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn other_files_are_never_replaced_by_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        std::fs::write(&path, "keep").unwrap();
        assert!(bind_private(&path).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep");
    }
}
