//! Where the server is and who the client is.

use std::net::IpAddr;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::Backoff;

/// Longest watch the server accepts, in seconds.
pub(crate) const MAX_WATCH_SECONDS: u64 = 60;

/// How a [`Client`](crate::Client) reaches and authenticates to Lockstep.
#[derive(Clone)]
pub struct Config {
    /// The identity authority, e.g. `https://localhost:8443` (the token
    /// endpoint is `{authority}/{tenant}/oauth2/v2.0/token`).
    pub authority: String,
    /// Tenant id.
    pub tenant: String,
    /// Client (application) id of the reader.
    pub client_id: String,
    /// The reader's client secret.
    pub client_secret: Zeroizing<String>,
    /// The vault's URL, e.g. `https://default.vault.localhost:8443`.
    pub vault_url: String,
    /// A CA certificate (PEM, one or more) to trust in addition to the
    /// system's roots, e.g. Lockstep's `tls/ca.pem`.
    pub ca_pem: Option<Vec<u8>>,
    /// Connect to this address for the vault's host instead of resolving
    /// it (so `*.vault.localhost` works without any DNS set-up).
    pub resolve_to: Option<IpAddr>,
    /// Audience of vault tokens (default: `https://` + the vault host
    /// without its first label, e.g. `https://vault.localhost`).
    pub vault_resource: Option<String>,
    /// How long one watch request waits on the server (at most 60 s).
    pub watch_timeout: Duration,
    /// Delays between retries while the server cannot be reached.
    pub retry: Backoff,
    /// Whether [`SecretCache`](crate::SecretCache) watches each secret in
    /// the background (default). Without it, values change only through
    /// [`refresh`](crate::SecretCache::refresh) and
    /// [`on_auth_failure`](crate::SecretCache::on_auth_failure).
    pub watch: bool,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("authority", &self.authority)
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("vault_url", &self.vault_url)
            .field("ca_pem", &self.ca_pem.as_ref().map(|p| p.len()))
            .field("resolve_to", &self.resolve_to)
            .field("vault_resource", &self.vault_resource)
            .field("watch_timeout", &self.watch_timeout)
            .field("retry", &self.retry)
            .field("watch", &self.watch)
            .finish()
    }
}

impl Config {
    /// A configuration with the required settings and defaults for the
    /// rest (system roots, system DNS, 30 s watches, retries from 250 ms up
    /// to 10 s).
    pub fn new(
        authority: impl Into<String>,
        tenant: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        vault_url: impl Into<String>,
    ) -> Self {
        Self {
            authority: authority.into().trim_end_matches('/').to_owned(),
            tenant: tenant.into(),
            client_id: client_id.into(),
            client_secret: Zeroizing::new(client_secret.into()),
            vault_url: vault_url.into().trim_end_matches('/').to_owned(),
            ca_pem: None,
            resolve_to: None,
            vault_resource: None,
            watch_timeout: Duration::from_secs(30),
            retry: Backoff::default(),
            watch: true,
        }
    }

    /// Trusts this CA (PEM) too.
    pub fn with_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Connects to `addr` for the vault host.
    pub fn with_resolve_to(mut self, addr: IpAddr) -> Self {
        self.resolve_to = Some(addr);
        self
    }

    /// Sets how long one watch request waits (clamped to 1–60 s).
    pub fn with_watch_timeout(mut self, timeout: Duration) -> Self {
        self.watch_timeout = timeout;
        self
    }

    /// Turns the background watch on (default) or off.
    pub fn with_watch(mut self, watch: bool) -> Self {
        self.watch = watch;
        self
    }

    /// Sets the retry delays.
    pub fn with_retry(mut self, retry: Backoff) -> Self {
        self.retry = retry;
        self
    }

    /// Whole seconds one watch waits, within what the server accepts.
    pub(crate) fn watch_seconds(&self) -> u64 {
        self.watch_timeout.as_secs().clamp(1, MAX_WATCH_SECONDS)
    }
}

/// The host of a URL (`https://host:port/...` → `host`), lower-cased.
pub(crate) fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split_once(']')?.0
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// The default vault audience: `https://` + the vault host without its
/// first label (`default.vault.localhost` → `https://vault.localhost`).
pub(crate) fn default_vault_resource(vault_url: &str) -> Option<String> {
    let host = host_of(vault_url)?;
    let (_, suffix) = host.split_once('.')?;
    Some(format!("https://{suffix}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn hosts_are_taken_from_urls() {
        assert_eq!(
            host_of("https://Default.Vault.localhost:8443/").as_deref(),
            Some("default.vault.localhost")
        );
        assert_eq!(
            host_of("https://kv.example.com").as_deref(),
            Some("kv.example.com")
        );
        assert_eq!(host_of("https://[::1]:8443").as_deref(), Some("::1"));
        assert_eq!(host_of("https://").as_deref(), None);
    }

    #[test]
    fn the_vault_audience_is_the_suffix_without_port() {
        assert_eq!(
            default_vault_resource("https://default.vault.localhost:8443").as_deref(),
            Some("https://vault.localhost")
        );
        assert_eq!(
            default_vault_resource("https://prod.vault.azure.net/").as_deref(),
            Some("https://vault.azure.net")
        );
        assert_eq!(default_vault_resource("https://localhost:8443"), None);
    }

    #[test]
    fn watch_timeouts_stay_within_what_the_server_accepts() {
        let c = Config::new("https://a/", "t", "c", "s", "https://v.x/");
        assert_eq!(c.authority, "https://a");
        assert_eq!(c.vault_url, "https://v.x");
        assert_eq!(c.watch_seconds(), 30);
        let c = c.with_watch_timeout(Duration::from_secs(600));
        assert_eq!(c.watch_seconds(), 60);
        let c = c.with_watch_timeout(Duration::from_millis(10));
        assert_eq!(c.watch_seconds(), 1);
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let c = Config::new("https://a", "t", "c", "very-secret-value", "https://v.x");
        assert!(!format!("{c:?}").contains("very-secret-value"));
    }
}
