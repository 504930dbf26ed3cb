//! `lockstep agent` against the real server: the file (0600, replaced
//! atomically), the socket, the command, restarts, and a clean stop.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lockstep_testkit::Server;

use crate::consumers::{cli_set, eventually};

const NAME: &str = "acg-client-secret";

/// A running agent, killed if the test fails before stopping it.
struct Agent {
    child: Option<Child>,
    log: PathBuf,
}

impl Agent {
    fn start(server: &Server, dir: &Path, args: &[&str]) -> Agent {
        let log = dir.join("agent.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = server
            .cli()
            .arg("agent")
            .args(args)
            .env("LOCKSTEP_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Agent {
            child: Some(child),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` and waits (bounded) for the agent to exit.
    async fn stop_with(&mut self, signal: &str) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let sent = std::process::Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        eventually("the agent exits", Duration::from_secs(10), || {
            let status = child.try_wait().unwrap();
            async move { status }
        })
        .await
    }

    /// Waits (bounded) for the agent to exit on its own.
    async fn exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        eventually("the agent exits", Duration::from_secs(30), || {
            let status = child.try_wait().unwrap();
            async move { status }
        })
        .await
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn read_socket(path: &Path) -> Option<String> {
    let mut s = std::os::unix::net::UnixStream::connect(path).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Waits until the file holds `value`.
async fn file_holds(path: &Path, value: &str) {
    eventually(
        &format!("{} holds {value}", path.display()),
        Duration::from_secs(10),
        || {
            let now = std::fs::read_to_string(path).ok();
            async move { (now.as_deref() == Some(value)).then_some(()) }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_keeps_file_socket_and_command_fresh_across_a_restart() {
    let mut server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (file, socket, marker) = (
        dir.path().join("secret"),
        dir.path().join("agent.sock"),
        dir.path().join("versions.log"),
    );
    let v1 = cli_set(&server, NAME, "value-one");
    let exec = format!(
        "echo \"$LOCKSTEP_SECRET_VERSION\" >> '{}'",
        marker.display()
    );
    let mut agent = Agent::start(
        &server,
        dir.path(),
        &[
            "--secret",
            NAME,
            "--file",
            file.to_str().unwrap(),
            "--socket",
            socket.to_str().unwrap(),
            "--exec",
            &exec,
        ],
    );

    // First value: file, command, socket.
    file_holds(&file, "value-one").await;
    assert_eq!(mode(&file), 0o600);
    eventually("the command ran", Duration::from_secs(10), || {
        let l = lines(&marker);
        async move { (!l.is_empty()).then_some(()) }
    })
    .await;
    assert_eq!(lines(&marker), std::slice::from_ref(&v1));
    let served = eventually("the socket serves", Duration::from_secs(10), || {
        let v = read_socket(&socket);
        async move { v }
    })
    .await;
    assert_eq!(served, "value-one");
    assert_eq!(mode(&socket), 0o600);

    // A new version replaces the file atomically: a reader racing the
    // change sees the old or the new value, never anything else.
    let inode = std::fs::metadata(&file).unwrap().ino();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (file, stop) = (file.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let seen = std::fs::read_to_string(&file).unwrap();
                assert!(
                    seen == "value-one" || seen == "value-two",
                    "torn read: {seen:?}"
                );
                reads += 1;
            }
            reads
        })
    };
    let v2 = cli_set(&server, NAME, "value-two");
    file_holds(&file, "value-two").await;
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().expect("no torn read");
    eprintln!("{reads} reads raced the replacement");
    assert_ne!(std::fs::metadata(&file).unwrap().ino(), inode, "renamed");
    assert_eq!(mode(&file), 0o600);
    eventually("the command ran again", Duration::from_secs(10), || {
        let l = lines(&marker);
        async move { (l.len() >= 2).then_some(()) }
    })
    .await;
    assert_eq!(lines(&marker), [v1.clone(), v2.clone()]);
    assert_eq!(read_socket(&socket).as_deref(), Some("value-two"));

    // The server goes away for a while (long enough for several retries),
    // then comes back; the agent keeps serving meanwhile and then sees a
    // version set after the restart.
    let stopped = server.stop();
    assert!(stopped.success());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(read_socket(&socket).as_deref(), Some("value-two"));
    server.restart().await;
    let v3 = cli_set(&server, NAME, "value-three");
    eventually(
        "the version set after the restart arrives",
        Duration::from_secs(30),
        || {
            let now = std::fs::read_to_string(&file).ok();
            async move { (now.as_deref() == Some("value-three")).then_some(()) }
        },
    )
    .await;
    eventually(
        "the command ran a third time",
        Duration::from_secs(10),
        || {
            let l = lines(&marker);
            async move { (l.len() >= 3).then_some(()) }
        },
    )
    .await;
    assert_eq!(lines(&marker), [v1, v2, v3]);
    assert_eq!(read_socket(&socket).as_deref(), Some("value-three"));

    // SIGTERM: a clean exit that removes the socket and keeps the file.
    let status = agent.stop_with("-TERM").await;
    let log = agent.log();
    assert!(status.success(), "{status}\n{log}");
    assert!(!socket.exists(), "socket removed");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "value-three");
    // One line per outage, not one per retry.
    let outages = log.matches("cannot watch the secret").count();
    let restored = log.matches("watch of the secret restored").count();
    eprintln!("agent log:\n{log}");
    assert_eq!(outages, 1, "{log}");
    assert_eq!(restored, 1, "{log}");
    assert!(!log.contains("value-"), "values never logged:\n{log}");
}

#[tokio::test]
async fn the_agent_waits_for_a_missing_secret_and_stops_on_sigint() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("later");
    let mut agent = Agent::start(
        &server,
        dir.path(),
        &["--secret", "not-yet", "--file", file.to_str().unwrap()],
    );
    eventually(
        "the agent reports the missing secret",
        Duration::from_secs(10),
        || {
            let log = agent.log();
            async move { log.contains("cannot read the secret yet").then_some(()) }
        },
    )
    .await;
    assert!(!file.exists());
    cli_set(&server, "not-yet", "here-now");
    eventually("the file appears", Duration::from_secs(20), || {
        let now = std::fs::read_to_string(&file).ok();
        async move { (now.as_deref() == Some("here-now")).then_some(()) }
    })
    .await;
    let status = agent.stop_with("-INT").await;
    assert!(status.success(), "{status}\n{}", agent.log());
    let log = agent.log();
    assert_eq!(
        log.matches("cannot read the secret yet").count(),
        1,
        "{log}"
    );
}

#[tokio::test]
async fn the_agent_refuses_to_start_with_bad_credentials() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("never");
    let mut agent = Agent::start(
        &server,
        dir.path(),
        &[
            "--secret",
            NAME,
            "--file",
            file.to_str().unwrap(),
            "--client-id",
            "00000000-0000-0000-0000-000000000000",
            "--client-secret",
            "wrong",
        ],
    );
    let status = agent.exit().await;
    assert!(!status.success());
    assert!(
        agent.log().contains("cannot read secret"),
        "{}",
        agent.log()
    );
    assert!(!file.exists());
}
