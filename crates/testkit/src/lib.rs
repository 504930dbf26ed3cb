//! The one test helper: starts the real `lockstep serve` binary on a free
//! loopback port with a temporary data directory, and gives tests an HTTP
//! client that trusts its CA and reaches its vault hosts without DNS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The bootstrap admin's credentials, read from `bootstrap-admin.json`.
#[derive(Clone, Debug)]
pub struct Admin {
    /// Tenant id.
    pub tenant_id: String,
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
    /// CA certificate path.
    pub ca_cert: PathBuf,
}

/// A running `lockstep serve`.
pub struct Server {
    child: Option<Child>,
    data: DataDir,
    port: u16,
    extra_args: Vec<String>,
    extra_env: Vec<(String, String)>,
    log: Arc<Mutex<String>>,
    /// The bootstrap admin.
    pub admin: Admin,
    /// An HTTP client that trusts the server's CA and resolves every
    /// `*.vault.localhost` name to the server.
    pub http: reqwest::Client,
}

enum DataDir {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl DataDir {
    fn path(&self) -> &Path {
        match self {
            DataDir::Temp(t) => t.path(),
            DataDir::Kept(p) => p,
        }
    }
}

/// Path of the `lockstep` binary: `$LOCKSTEP_BIN`, or next to the test's
/// `deps` directory (where cargo puts the package's binaries).
pub fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("LOCKSTEP_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    dir.join("lockstep")
}

/// Options for starting a server.
#[derive(Default, Clone)]
pub struct Options {
    /// Extra `serve` arguments.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

impl Server {
    /// Starts a server on a fresh temporary data directory.
    pub async fn start() -> Server {
        Self::start_with(Options::default()).await
    }

    /// Starts a server with extra arguments or environment.
    pub async fn start_with(opts: Options) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("lockstep-test-")
            .tempdir()
            .expect("temp dir");
        Self::launch(DataDir::Temp(dir), 0, opts.args, opts.env).await
    }

    async fn launch(
        data: DataDir,
        port: u16,
        extra_args: Vec<String>,
        extra_env: Vec<(String, String)>,
    ) -> Server {
        let log = Arc::new(Mutex::new(String::new()));
        let (child, port) = spawn(data.path(), port, &extra_args, &extra_env, &log);
        let admin = read_admin(data.path());
        let http = client(&admin.ca_cert, port);
        Server {
            child: Some(child),
            data,
            port,
            extra_args,
            extra_env,
            log,
            admin,
            http,
        }
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// `https://localhost:{port}`.
    pub fn authority(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// `https://{vault}.vault.localhost:{port}`.
    pub fn vault_url(&self, vault: &str) -> String {
        format!("https://{vault}.vault.localhost:{}", self.port)
    }

    /// Everything the server printed so far (stdout and stderr).
    pub fn logs(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Gets a token with client credentials; returns the status and body.
    pub async fn token_response(&self, client_id: &str, secret: &str, scope: &str) -> (u16, Value) {
        let url = format!(
            "{}/{}/oauth2/v2.0/token",
            self.authority(),
            self.admin.tenant_id
        );
        let resp = self
            .http
            .post(url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", secret),
                ("scope", scope),
            ])
            .send()
            .await
            .expect("token request");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("token json"))
    }

    /// A token for `resource` with the given credentials (panics on failure).
    pub async fn token_as(&self, client_id: &str, secret: &str, resource: &str) -> String {
        let (status, body) = self
            .token_response(client_id, secret, &format!("{resource}/.default"))
            .await;
        assert_eq!(status, 200, "token request failed: {body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// A token for `resource` as the bootstrap admin.
    pub async fn admin_token(&self, resource: &str) -> String {
        let admin = self.admin.clone();
        self.token_as(&admin.client_id, &admin.client_secret, resource)
            .await
    }

    /// A vault-audience token as the bootstrap admin.
    pub async fn vault_token(&self) -> String {
        self.admin_token("https://vault.localhost").await
    }

    /// The text of `GET /metrics` (which must answer 200).
    pub async fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.authority());
        let (status, _, body) = self.send(reqwest::Method::GET, &url, None, None).await;
        assert_eq!(status, 200, "GET /metrics: {body}");
        body.as_str().unwrap_or_default().to_owned()
    }

    /// Sends a request with a bearer token and optional JSON body; returns
    /// the status, headers and body (Null when empty, a string when not JSON).
    pub async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap());
        self.send_bytes(method, url, token, bytes).await
    }

    /// Like [`send`](Self::send), with a raw body sent as
    /// `application/json` (for malformed or oversized bodies).
    pub async fn send_bytes(
        &self,
        method: reqwest::Method,
        url: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.request(method, url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body");
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, headers, value)
    }

    /// A `lockstep` CLI command pointed at this server's data directory.
    pub fn cli(&self) -> Command {
        let mut cmd = Command::new(binary());
        cmd.env("LOCKSTEP_DATA_DIR", self.data_dir())
            .env("LOCKSTEP_SERVER", self.authority())
            .env_remove("LOCKSTEP_CLIENT_ID")
            .env_remove("LOCKSTEP_CLIENT_SECRET")
            .env_remove("LOCKSTEP_TENANT")
            .env_remove("LOCKSTEP_CA_CERT")
            .env_remove("LOCKSTEP_VAULT")
            .env_remove("LOCKSTEP_VAULT_SUFFIX");
        cmd
    }

    /// Stops the server with SIGTERM and returns its exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.stop_with(libc::SIGTERM)
    }

    /// Stops the server with SIGINT (Ctrl-C) and returns its exit status.
    pub fn interrupt(&mut self) -> ExitStatus {
        self.stop_with(libc::SIGINT)
    }

    fn stop_with(&mut self, signal: libc::c_int) -> ExitStatus {
        let mut child = self.child.take().expect("server running");
        unsafe {
            libc::kill(child.id() as i32, signal);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("server did not stop within 30 s of signal {signal}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server with SIGKILL (a crash).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops (if running) and starts again on the same data directory and
    /// port.
    pub async fn restart(&mut self) {
        if self.child.is_some() {
            let status = self.stop();
            assert!(status.success(), "server exited with {status}");
        }
        let (child, port) = spawn(
            self.data.path(),
            self.port,
            &self.extra_args,
            &self.extra_env,
            &self.log,
        );
        self.child = Some(child);
        self.port = port;
        // A fresh client: pooled connections went down with the old process.
        self.http = client(&self.admin.ca_cert, port);
    }

    /// Keeps the data directory after the test (for debugging).
    pub fn keep_data(&mut self) -> PathBuf {
        let path = self.data.path().to_owned();
        if let DataDir::Temp(t) = std::mem::replace(&mut self.data, DataDir::Kept(path.clone())) {
            let _ = t.keep();
        }
        path
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `lockstep serve --data-dir DATA --listen LISTEN` command with a clean
/// environment (no inherited `LOCKSTEP_*` settings) and piped output. Tests
/// of start-up failures run it with [`run_to_exit`]; [`Server`] uses it too.
pub fn serve_command(data: &Path, listen: &str) -> Command {
    let mut cmd = Command::new(binary());
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(data)
        .arg("--listen")
        .arg(listen)
        .env("LOCKSTEP_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in [
        "LOCKSTEP_CONFIG",
        "LOCKSTEP_MASTER_KEY",
        "LOCKSTEP_LISTEN",
        "LOCKSTEP_VAULT_SUFFIX",
        "LOCKSTEP_DATA_DIR",
        "LOCKSTEP_PUBLIC_URL",
        "LOCKSTEP_TLS_NAMES",
        "LOCKSTEP_TLS_CERT",
        "LOCKSTEP_TLS_KEY",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs `cmd` to completion with piped output; kills it and panics if it
/// has not exited within `timeout`.
pub fn run_to_exit(mut cmd: Command, timeout: Duration) -> std::process::Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.expect("wait for process"),
        Err(_) => {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            panic!("{cmd:?} did not exit within {timeout:?}");
        }
    }
}

fn spawn(
    data: &Path,
    port: u16,
    extra_args: &[String],
    extra_env: &[(String, String)],
    log: &Arc<Mutex<String>>,
) -> (Child, u16) {
    let mut cmd = serve_command(data, &format!("127.0.0.1:{port}"));
    cmd.args(extra_args);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary().display()));
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out_log = log.clone();
    std::thread::spawn(move || {
        for line in lossy_lines(stdout) {
            out_log.lock().unwrap().push_str(&format!("{line}\n"));
            if let Some(url) = line.strip_prefix("Lockstep is listening on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let err_log = log.clone();
    std::thread::spawn(move || {
        for line in lossy_lines(stderr) {
            err_log.lock().unwrap().push_str(&format!("{line}\n"));
        }
    });
    let url = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(url) => url,
        Err(_) => {
            let _ = child.kill();
            std::thread::sleep(Duration::from_millis(100));
            panic!("server did not start; output:\n{}", log.lock().unwrap());
        }
    };
    let port = url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    (child, port)
}

/// The lines of a child's output until it closes, invalid UTF-8 replaced:
/// the pipe is drained to the end, so the child never writes into a closed
/// pipe.
fn lossy_lines(pipe: impl std::io::Read) -> impl Iterator<Item = String> {
    let mut reader = BufReader::new(pipe);
    std::iter::from_fn(move || {
        let mut buf = Vec::new();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                if buf.ends_with(b"\n") {
                    buf.pop();
                }
                Some(String::from_utf8_lossy(&buf).into_owned())
            }
        }
    })
}

fn read_admin(data: &Path) -> Admin {
    let text =
        std::fs::read_to_string(data.join("bootstrap-admin.json")).expect("bootstrap-admin.json");
    let v: Value = serde_json::from_str(&text).unwrap();
    Admin {
        tenant_id: v["tenant_id"].as_str().unwrap().to_owned(),
        client_id: v["client_id"].as_str().unwrap().to_owned(),
        client_secret: v["client_secret"].as_str().unwrap().to_owned(),
        ca_cert: PathBuf::from(v["ca_cert"].as_str().unwrap()),
    }
}

fn client(ca: &Path, _port: u16) -> reqwest::Client {
    let pem = std::fs::read(ca).unwrap();
    let cert = reqwest::Certificate::from_pem(&pem).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([cert])
        .dns_resolver(Arc::new(Loopback))
        // HTTP/1.1 as the Azure SDKs speak it. (An idle HTTP/2 connection
        // would hold up the server's graceful shutdown while a test blocks
        // in `stop()`, since nothing then answers the server's GOAWAY ping.)
        .http1_only()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Resolves every name to 127.0.0.1 (tests only talk to their own server).
struct Loopback;

impl reqwest::dns::Resolve for Loopback {
    fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async {
            let addrs: reqwest::dns::Addrs =
                Box::new(std::iter::once(SocketAddr::from(([127, 0, 0, 1], 0))));
            Ok(addrs)
        })
    }
}
