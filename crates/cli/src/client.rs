//! Connecting to a running server: who to act as (client credentials from
//! flags or environment, a user's saved `lockstep login`, or the data
//! directory's bootstrap admin), the CA to trust, tokens, and the vault
//! host (resolved to the server's address, so no DNS set-up is needed).
//!
//! Precedence of identities, first match wins:
//! 1. `--as-user`: the saved login (an error if there is none, it is for
//!    another server, or it has expired);
//! 2. explicit client credentials (`--client-id`/`--client-secret` or
//!    `LOCKSTEP_CLIENT_ID`/`LOCKSTEP_CLIENT_SECRET`);
//! 3. a saved login for this server (an error once it has expired, rather
//!    than quietly acting as someone else: log in again or log out);
//! 4. the bootstrap admin of `<data-dir>/bootstrap-admin.json`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use lockstep_server::{BootstrapAdmin, BOOTSTRAP_FILE};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::login::{self, SavedLogin};

/// How client commands find and authenticate to the server.
#[derive(Args, Clone)]
pub struct ConnectArgs {
    /// Server URL, e.g. https://localhost:8443 (default: from the bootstrap file).
    #[arg(long, global = true, env = "LOCKSTEP_SERVER")]
    server: Option<String>,
    /// Data directory whose bootstrap-admin.json and CA to use.
    #[arg(
        long,
        global = true,
        env = "LOCKSTEP_DATA_DIR",
        default_value = "./lockstep-data"
    )]
    pub data_dir: PathBuf,
    /// CA certificate (PEM) to trust (default: <data-dir>/tls/ca.pem).
    #[arg(long, global = true, env = "LOCKSTEP_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Tenant id (default: from the bootstrap file).
    #[arg(long, global = true, env = "LOCKSTEP_TENANT")]
    tenant: Option<String>,
    /// Client (application) id (default: the bootstrap admin).
    #[arg(long, global = true, env = "LOCKSTEP_CLIENT_ID")]
    client_id: Option<String>,
    /// Client secret (prefer the environment variable to the flag). It may
    /// start with `-` (secrets are base64url).
    #[arg(
        long,
        global = true,
        env = "LOCKSTEP_CLIENT_SECRET",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    client_secret: Option<String>,
    /// Vault host suffix (default: from the bootstrap file, else vault.localhost).
    #[arg(long, global = true, env = "LOCKSTEP_VAULT_SUFFIX")]
    vault_suffix: Option<String>,
    /// Audience of Graph tokens.
    #[arg(
        long,
        global = true,
        env = "LOCKSTEP_GRAPH_RESOURCE",
        default_value = "https://graph.microsoft.com"
    )]
    graph_resource: String,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Act as the user signed in with `lockstep login` (fail if there is no
    /// valid saved login).
    #[arg(long, global = true)]
    pub as_user: bool,
    /// File of the saved user login (default: <data-dir>/.lockstep-token).
    #[arg(long, global = true, env = "LOCKSTEP_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

/// Audience of management-API tokens.
pub const MANAGEMENT_RESOURCE: &str = "api://lockstep";

/// Who the connection acts as.
enum Identity {
    /// An app, with client credentials.
    Client {
        tenant: String,
        client_id: String,
        client_secret: Zeroizing<String>,
    },
    /// A user, with the tokens of a saved login.
    User(Box<SavedLogin>),
    /// Nobody (for signing in).
    Anonymous,
}

impl ConnectArgs {
    /// The data directory (for files read offline, such as the audit log).
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }
}

/// An authenticated connection to a server.
pub struct Connection {
    http: reqwest::Client,
    server: String,
    port: u16,
    tenant_hint: Option<String>,
    identity: Identity,
    vault_suffix: String,
    graph_resource: String,
    ca: Option<std::path::PathBuf>,
    server_addr: Option<SocketAddr>,
}

/// A failed call, already phrased for the user.
pub type CliResult<T> = Result<T, String>;

/// Settings of the consumer client library (`lockstep-client`) for the
/// identity `args` describe; consumers need client credentials, because a
/// signed-in user's session cannot be renewed unattended.
pub async fn consumer_config(
    args: &ConnectArgs,
    vault: &str,
) -> CliResult<lockstep_client::Config> {
    let conn = Connection::open(args).await?;
    let Identity::Client {
        tenant,
        client_id,
        client_secret,
    } = &conn.identity
    else {
        return Err(
            "the agent needs client credentials (--client-id and LOCKSTEP_CLIENT_SECRET, or the bootstrap file), not a user login".into(),
        );
    };
    let mut config = lockstep_client::Config::new(
        conn.server.clone(),
        tenant.clone(),
        client_id.clone(),
        client_secret.as_str(),
        conn.vault_url(vault),
    );
    config.vault_resource = Some(conn.vault_resource());
    if let Some(ca) = &conn.ca {
        let pem = std::fs::read(ca)
            .map_err(|e| format!("cannot read CA certificate {}: {e}", ca.display()))?;
        config = config.with_ca_pem(pem);
    }
    if let Some(addr) = conn.server_addr {
        config = config.with_resolve_to(addr.ip());
    }
    Ok(config)
}

fn read_bootstrap(dir: &std::path::Path) -> Option<BootstrapAdmin> {
    let text = Zeroizing::new(std::fs::read_to_string(dir.join(BOOTSTRAP_FILE)).ok()?);
    serde_json::from_str(&text).ok()
}

impl Connection {
    /// Connects as described by `args` (see the module documentation for
    /// which identity is used).
    pub async fn open(args: &ConnectArgs) -> CliResult<Self> {
        let mut conn = Self::open_anonymous(args).await?;
        conn.identity = Self::identity(args, &conn.server)?;
        Ok(conn)
    }

    fn identity(args: &ConnectArgs, server: &str) -> CliResult<Identity> {
        let boot = read_bootstrap(&args.data_dir);
        let token_path = login::token_path(args);
        let explicit = args.client_id.is_some() || args.client_secret.is_some();
        // With explicit client credentials the saved login does not matter,
        // not even if it is unreadable.
        let saved = if args.as_user || !explicit {
            SavedLogin::read(&token_path)?
        } else {
            None
        };
        let now = login::now();
        if args.as_user {
            let saved = saved.ok_or_else(|| {
                format!(
                    "--as-user: not signed in (no {}); run `lockstep login --username …` first",
                    token_path.display()
                )
            })?;
            if saved.server != server {
                return Err(format!(
                    "--as-user: the saved login of {} is for {}, not {server}; sign in again",
                    saved.username, saved.server
                ));
            }
            if !saved.is_valid(now) {
                return Err(expired(&saved));
            }
            return Ok(Identity::User(Box::new(saved)));
        }
        if !explicit {
            if let Some(saved) = saved.filter(|s| s.server == server) {
                if !saved.is_valid(now) {
                    return Err(expired(&saved));
                }
                return Ok(Identity::User(Box::new(saved)));
            }
        }
        let missing = |what: &str, flag: &str| {
            format!(
                "no {what}: pass {flag}, or --data-dir pointing at a data directory with {BOOTSTRAP_FILE}"
            )
        };
        let tenant = args
            .tenant
            .clone()
            .or_else(|| boot.as_ref().map(|b| b.tenant_id.clone()))
            .ok_or_else(|| missing("tenant", "--tenant"))?;
        let client_id = args
            .client_id
            .clone()
            .or_else(|| boot.as_ref().map(|b| b.client_id.clone()))
            .ok_or_else(|| missing("client id", "--client-id"))?;
        let client_secret = match (&args.client_secret, &boot) {
            (Some(s), _) => Zeroizing::new(s.clone()),
            (None, Some(b)) if args.client_id.is_none() => b.client_secret.clone(),
            _ => {
                return Err(missing(
                    "client secret",
                    "--client-secret (or LOCKSTEP_CLIENT_SECRET)",
                ))
            }
        };
        Ok(Identity::Client {
            tenant,
            client_id,
            client_secret,
        })
    }

    /// Connects without acting as anyone (to sign in).
    pub async fn open_anonymous(args: &ConnectArgs) -> CliResult<Self> {
        let boot = read_bootstrap(&args.data_dir);
        let server = args
            .server
            .clone()
            .or_else(|| boot.as_ref().map(|b| b.authority.clone()))
            .unwrap_or_else(|| "https://localhost:8443".into())
            .trim_end_matches('/')
            .to_owned();
        let url = reqwest::Url::parse(&server)
            .map_err(|e| format!("invalid server URL '{server}': {e}"))?;
        let host = url.host_str().unwrap_or("localhost").to_owned();
        let port = url.port_or_known_default().unwrap_or(443);
        let vault_suffix = args
            .vault_suffix
            .clone()
            .or_else(|| {
                boot.as_ref().and_then(|b| {
                    let host = reqwest::Url::parse(&b.vault_url)
                        .ok()?
                        .host_str()?
                        .to_owned();
                    host.split_once('.').map(|(_, s)| s.to_owned())
                })
            })
            .unwrap_or_else(|| "vault.localhost".into());
        let tenant_hint = args
            .tenant
            .clone()
            .or_else(|| boot.as_ref().map(|b| b.tenant_id.clone()));
        let ca = args.ca_cert.clone().or_else(|| {
            let p = args.data_dir.join("tls").join("ca.pem");
            p.exists().then_some(p)
        });
        // Vault hosts are `{vault}.{suffix}`; send them to the server's own
        // address so that no DNS entry is needed.
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map(|it| it.collect())
            .unwrap_or_default();
        let http = build_client(ca.as_deref(), &vault_suffix, &addrs)?;
        let server_addr = addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .copied();
        Ok(Self {
            http,
            server,
            port,
            tenant_hint,
            identity: Identity::Anonymous,
            vault_suffix,
            graph_resource: args.graph_resource.clone(),
            ca,
            server_addr,
        })
    }

    /// The tenant given with `--tenant` or found in the bootstrap file.
    pub fn tenant_hint(&self) -> Option<&str> {
        self.tenant_hint.as_deref()
    }

    /// The saved login this connection acts with, if it acts as a user.
    pub fn user(&self) -> Option<&SavedLogin> {
        match &self.identity {
            Identity::User(saved) => Some(saved),
            _ => None,
        }
    }

    /// POSTs JSON with a given bearer token; returns the status and JSON body.
    pub async fn post_with_token(
        &self,
        url: &str,
        token: &str,
        body: &Value,
    ) -> CliResult<(reqwest::StatusCode, Value)> {
        let resp = self
            .http
            .post(url)
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .map_err(|e| connect_error(url, e))?;
        read_response(resp).await
    }

    /// POSTs JSON without a token; returns the status and JSON body.
    pub async fn post_anonymous(
        &self,
        url: &str,
        body: &Value,
    ) -> CliResult<(reqwest::StatusCode, Value)> {
        let resp = self
            .http
            .post(url)
            .json(body)
            .send()
            .await
            .map_err(|e| connect_error(url, e))?;
        read_response(resp).await
    }

    /// The audience of Graph tokens.
    pub fn graph_resource(&self) -> String {
        self.graph_resource.clone()
    }

    /// The base URL of a vault.
    pub fn vault_url(&self, vault: &str) -> String {
        format!(
            "https://{}.{}:{}",
            vault.to_ascii_lowercase(),
            self.vault_suffix,
            self.port
        )
    }

    /// The server's base URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Gets a token for `resource`: from the token endpoint with client
    /// credentials, or from the saved login when acting as a user.
    pub async fn token(&self, resource: &str) -> CliResult<String> {
        let (tenant, client_id, client_secret) = match &self.identity {
            Identity::Client {
                tenant,
                client_id,
                client_secret,
            } => (tenant, client_id, client_secret),
            Identity::User(saved) => return saved.token(resource, login::now()),
            Identity::Anonymous => return Err("not signed in".into()),
        };
        let url = format!("{}/{}/oauth2/v2.0/token", self.server, tenant);
        let scope = format!("{resource}/.default");
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client_id.as_str()),
            ("client_secret", client_secret.as_str()),
            ("scope", scope.as_str()),
        ];
        let resp = self
            .http
            .post(&url)
            .form(&form)
            .send()
            .await
            .map_err(|e| connect_error(&self.server, e))?;
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .map_err(|e| format!("unreadable token response: {e}"))?;
        if !status.is_success() {
            let desc = body["error_description"]
                .as_str()
                .unwrap_or("token request failed");
            let short = desc.split(" Trace ID:").next().unwrap_or(desc);
            return Err(format!("authentication failed: {short}"));
        }
        body["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "the token response has no access_token".into())
    }

    /// Sends a request with a bearer token for `resource`; returns the
    /// status and the JSON body (Null when empty).
    pub async fn call(
        &self,
        resource: &str,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> CliResult<(reqwest::StatusCode, Value)> {
        let token = self.token(resource).await?;
        let mut req = self.http.request(method, url).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| connect_error(url, e))?;
        read_response(resp).await
    }

    /// Like [`call`](Self::call), but turns an error status into an error
    /// message taken from the body's `error.message`.
    pub async fn expect(
        &self,
        resource: &str,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> CliResult<Value> {
        let (status, value) = self.call(resource, method, url, body).await?;
        if status.is_success() {
            Ok(value)
        } else {
            let msg = value["error"]["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string());
            let code = value["error"]["code"].as_str().unwrap_or("");
            Err(format!("{} {code}: {msg}", status.as_u16()))
        }
    }

    /// The audience of vault tokens.
    pub fn vault_resource(&self) -> String {
        format!("https://{}", self.vault_suffix)
    }
}

/// The status and JSON body of a response (Null when empty, a string when
/// not JSON).
async fn read_response(resp: reqwest::Response) -> CliResult<(reqwest::StatusCode, Value)> {
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| format!("unreadable response: {e}"))?;
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Ok((status, value))
}

fn expired(saved: &SavedLogin) -> String {
    format!(
        "the saved login of {} expired at {}: run `lockstep login --username {}` again, \
         or `lockstep logout` to stop acting as this user",
        saved.username,
        crate::output::time(&serde_json::json!(saved.expires_on())),
        saved.username
    )
}

fn build_client(
    ca: Option<&std::path::Path>,
    vault_suffix: &str,
    addrs: &[SocketAddr],
) -> CliResult<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("lockstep-cli/", env!("CARGO_PKG_VERSION")))
        .timeout(std::time::Duration::from_secs(60));
    if let Some(ca) = ca {
        let pem = std::fs::read(ca)
            .map_err(|e| format!("cannot read CA certificate {}: {e}", ca.display()))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| format!("invalid CA certificate {}: {e}", ca.display()))?;
        builder = builder.tls_certs_merge([cert]);
    }
    if let Some(addr) = addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()) {
        builder = builder.dns_resolver(std::sync::Arc::new(VaultResolver {
            suffix: format!(".{}", vault_suffix.to_ascii_lowercase()),
            server: *addr,
        }));
    }
    builder
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Resolves `{vault}.{suffix}` to the server's address and every other
/// name through the system resolver.
struct VaultResolver {
    suffix: String,
    server: SocketAddr,
}

impl reqwest::dns::Resolve for VaultResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let server = self.server;
        let is_vault = host.ends_with(&self.suffix);
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = if is_vault {
                vec![server]
            } else {
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect()
            };
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn connect_error(target: &str, e: reqwest::Error) -> String {
    let mut msg = format!("cannot reach {target}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}
