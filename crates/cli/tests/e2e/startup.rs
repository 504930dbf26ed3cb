//! `lockstep serve`: first start, clean shutdown on signals, and start-up
//! errors that are one clear line and a non-zero exit.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use lockstep_testkit::{run_to_exit, serve_command, Options, Server};
use serde_json::Value;

use crate::Kv;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Runs `lockstep serve` expecting it to fail at start-up; returns the one
/// error line.
fn serve_fails(data: &Path, listen: &str, env: &[(&str, &str)]) -> String {
    let mut cmd = serve_command(data, listen);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out: Output = run_to_exit(cmd, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !out.status.success(),
        "serve should fail; stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stdout.contains("Lockstep is listening"), "{stdout}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "exactly one line on stderr expected:\n{stderr}"
    );
    assert!(lines[0].starts_with("lockstep: error: "), "{stderr}");
    lines[0].to_owned()
}

#[tokio::test]
async fn first_start_writes_private_files_and_prints_no_secret() {
    let mut server = Server::start().await;
    let dir = server.data_dir().to_owned();
    let port = server.port();
    let logs = server.logs();
    assert!(
        logs.lines()
            .any(|l| l == format!("Lockstep is listening on https://localhost:{port}")),
        "{logs}"
    );
    assert!(
        logs.contains("bootstrap-admin.json"),
        "the bootstrap file's path is printed: {logs}"
    );
    assert!(
        !logs.contains(&server.admin.client_secret),
        "the secret must never be printed"
    );

    let boot: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("bootstrap-admin.json")).unwrap())
            .unwrap();
    assert_eq!(boot["authority"], format!("https://localhost:{port}"));
    assert_eq!(boot["vault_url"], server.vault_url("default"));
    assert_eq!(boot["tenant_id"], server.admin.tenant_id.as_str());
    assert!(
        boot["client_secret"]
            .as_str()
            .is_some_and(|s| s.len() >= 43),
        "≥ 256-bit secret"
    );
    let ca = Path::new(boot["ca_cert"].as_str().unwrap());
    assert!(ca.is_absolute(), "{}", ca.display());
    assert_eq!(
        ca.canonicalize().unwrap(),
        dir.join("tls").join("ca.pem").canonicalize().unwrap()
    );
    assert!(std::fs::read_to_string(ca)
        .unwrap()
        .contains("BEGIN CERTIFICATE"));

    assert_eq!(mode(&dir.join("bootstrap-admin.json")), 0o600);
    assert_eq!(mode(&dir.join("master.key")), 0o600);
    assert!(dir.join("lockstep.db").exists());

    // Ready to serve: the bootstrap admin can use the default vault.
    let kv = Kv::new(&server).await;
    kv.set("hello", "world").await;
    assert_eq!(kv.value("hello", None).await, "world");

    // SIGTERM is a clean exit with status 0.
    let status = server.stop();
    assert_eq!(status.code(), Some(0), "{status}");
    // A later start prints no new bootstrap credentials and keeps the file.
    server.restart().await;
    assert_eq!(
        server
            .logs()
            .matches("Bootstrap admin credentials written")
            .count(),
        1,
        "{}",
        server.logs()
    );
}

#[tokio::test]
async fn sigint_is_a_clean_exit_too() {
    let mut server = Server::start().await;
    Kv::new(&server).await.set("before-sigint", "v").await;
    let status = server.interrupt();
    assert_eq!(status.code(), Some(0), "{status}");
    server.restart().await;
    assert_eq!(
        Kv::new(&server).await.value("before-sigint", None).await,
        "v"
    );
    let status = server.stop();
    assert_eq!(status.code(), Some(0), "{status}\n{}", server.logs());
}

#[tokio::test]
async fn busy_port_is_one_error_line() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let line = serve_fails(dir.path(), &format!("127.0.0.1:{port}"), &[]);
    assert!(
        line.starts_with(&format!(
            "lockstep: error: cannot listen on 127.0.0.1:{port}"
        )),
        "{line}"
    );
    drop(holder);
}

#[tokio::test]
async fn unusable_data_dirs_are_one_error_line() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let line = serve_fails(&file, "127.0.0.1:0", &[]);
    assert!(line.contains(&file.display().to_string()), "{line}");
    let line = serve_fails(&file.join("below"), "127.0.0.1:0", &[]);
    assert!(line.contains("below"), "{line}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a directory");

    // A directory this user cannot write (meaningless as root, who can).
    let locked = tmp.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
    let probe = locked.join("probe");
    if std::fs::write(&probe, b"").is_err() {
        let line = serve_fails(&locked, "127.0.0.1:0", &[]);
        assert!(line.contains("not writable"), "{line}");
    } else {
        let _ = std::fs::remove_file(&probe);
    }
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
}

#[tokio::test]
async fn wrong_master_key_is_one_error_line_and_harms_nothing() {
    let mut server = Server::start().await;
    Kv::new(&server).await.set("sealed", "still here").await;
    let status = server.stop();
    assert!(status.success(), "{status}\n{}", server.logs());
    let dir = server.data_dir().to_owned();
    let key_before = std::fs::read(dir.join("master.key")).unwrap();

    let other = STANDARD.encode([0x42u8; 32]);
    let line = serve_fails(&dir, "127.0.0.1:0", &[("LOCKSTEP_MASTER_KEY", &other)]);
    assert!(line.contains("master key"), "{line}");
    let line = serve_fails(
        &dir,
        "127.0.0.1:0",
        &[("LOCKSTEP_MASTER_KEY", "not base64!")],
    );
    assert!(line.contains("master key"), "{line}");
    let short = STANDARD.encode([7u8; 16]);
    let line = serve_fails(&dir, "127.0.0.1:0", &[("LOCKSTEP_MASTER_KEY", &short)]);
    assert!(line.contains("master key"), "{line}");

    // Nothing was changed by the failed starts: the key file still opens it.
    assert_eq!(std::fs::read(dir.join("master.key")).unwrap(), key_before);
    server.restart().await;
    assert_eq!(
        Kv::new(&server).await.value("sealed", None).await,
        "still here"
    );
    let status = server.stop();
    assert!(status.success(), "{status}\n{}", server.logs());

    // A master key given in the environment works on a fresh directory.
    let mut with_env = Server::start_with(Options {
        args: vec![],
        env: vec![("LOCKSTEP_MASTER_KEY".into(), STANDARD.encode([0x17u8; 32]))],
    })
    .await;
    Kv::new(&with_env).await.set("env-key", "v").await;
    with_env.restart().await;
    assert_eq!(Kv::new(&with_env).await.value("env-key", None).await, "v");
    let status = with_env.stop();
    assert!(status.success(), "{status}\n{}", with_env.logs());
}
