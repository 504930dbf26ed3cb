//! Connecting to a running server: credentials (from flags, environment or
//! the data directory's bootstrap file), the CA to trust, tokens, and the
//! vault host (resolved to the server's address, so no DNS set-up is needed).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use lockstep_server::{BootstrapAdmin, BOOTSTRAP_FILE};
use serde_json::Value;
use zeroize::Zeroizing;

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
    data_dir: PathBuf,
    /// CA certificate (PEM) to trust (default: <data-dir>/tls/ca.pem).
    #[arg(long, global = true, env = "LOCKSTEP_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Tenant id (default: from the bootstrap file).
    #[arg(long, global = true, env = "LOCKSTEP_TENANT")]
    tenant: Option<String>,
    /// Client (application) id (default: the bootstrap admin).
    #[arg(long, global = true, env = "LOCKSTEP_CLIENT_ID")]
    client_id: Option<String>,
    /// Client secret (prefer the environment variable to the flag).
    #[arg(
        long,
        global = true,
        env = "LOCKSTEP_CLIENT_SECRET",
        hide_env_values = true
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
}

/// An authenticated connection to a server.
pub struct Connection {
    http: reqwest::Client,
    server: String,
    port: u16,
    tenant: String,
    client_id: String,
    client_secret: Zeroizing<String>,
    vault_suffix: String,
    graph_resource: String,
}

/// A failed call, already phrased for the user.
pub type CliResult<T> = Result<T, String>;

fn read_bootstrap(dir: &std::path::Path) -> Option<BootstrapAdmin> {
    let text = Zeroizing::new(std::fs::read_to_string(dir.join(BOOTSTRAP_FILE)).ok()?);
    serde_json::from_str(&text).ok()
}

/// Where the server is and who to be, resolved from flags, environment and
/// the bootstrap file.
struct Target {
    server: String,
    host: String,
    port: u16,
    tenant: String,
    client_id: String,
    client_secret: Zeroizing<String>,
    vault_suffix: String,
    ca: Option<PathBuf>,
}

impl Target {
    fn resolve(args: &ConnectArgs) -> CliResult<Self> {
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
        let ca = args.ca_cert.clone().or_else(|| {
            let p = args.data_dir.join("tls").join("ca.pem");
            p.exists().then_some(p)
        });
        Ok(Self {
            server,
            host,
            port,
            tenant,
            client_id,
            client_secret,
            vault_suffix,
            ca,
        })
    }

    /// The server's addresses (vault hosts are sent there, so that no DNS
    /// entry is needed).
    async fn addresses(&self) -> Vec<SocketAddr> {
        tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map(|it| it.collect())
            .unwrap_or_default()
    }

    fn vault_url(&self, vault: &str) -> String {
        format!(
            "https://{}.{}:{}",
            vault.to_ascii_lowercase(),
            self.vault_suffix,
            self.port
        )
    }
}

/// A [`lockstep_client::Config`] for reading secrets of `vault`, with the
/// same server, credentials and CA as every other client command.
pub async fn consumer_config(
    args: &ConnectArgs,
    vault: &str,
) -> CliResult<lockstep_client::Config> {
    let t = Target::resolve(args)?;
    let addrs = t.addresses().await;
    let mut config = lockstep_client::Config::new(
        t.server.clone(),
        t.tenant.clone(),
        t.client_id.clone(),
        t.client_secret.as_str(),
        t.vault_url(vault),
    );
    config.vault_resource = Some(format!("https://{}", t.vault_suffix));
    if let Some(ca) = &t.ca {
        let pem = std::fs::read(ca)
            .map_err(|e| format!("cannot read CA certificate {}: {e}", ca.display()))?;
        config = config.with_ca_pem(pem);
    }
    if let Some(addr) = addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()) {
        config = config.with_resolve_to(addr.ip());
    }
    Ok(config)
}

impl Connection {
    /// Connects as described by `args`.
    pub async fn open(args: &ConnectArgs) -> CliResult<Self> {
        let t = Target::resolve(args)?;
        let addrs = t.addresses().await;
        let http = build_client(t.ca.as_deref(), &t.vault_suffix, &addrs)?;
        Ok(Self {
            http,
            server: t.server,
            port: t.port,
            tenant: t.tenant,
            client_id: t.client_id,
            client_secret: t.client_secret,
            vault_suffix: t.vault_suffix,
            graph_resource: args.graph_resource.clone(),
        })
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

    /// Gets a token for `resource`.
    pub async fn token(&self, resource: &str) -> CliResult<String> {
        let url = format!("{}/{}/oauth2/v2.0/token", self.server, self.tenant);
        let scope = format!("{resource}/.default");
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.as_str()),
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
