//! The connection to one Lockstep server and vault: tokens, reads and
//! watches.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::cache::CachedSecret;
use crate::config::{default_vault_resource, host_of, Config};
use crate::entra::short_description;
use crate::resolve::ResolveTo;
use crate::token::{Token, TokenSlot};
use crate::Error;

/// The data-plane api-version this client speaks.
const API_VERSION: &str = "7.6";
/// Timeout of ordinary requests (a watch adds its own wait to it).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of one Lockstep vault, authenticated with client credentials.
/// Cheap to clone (clones share the connection pool and the token).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    http: reqwest::Client,
    token_url: String,
    scope: String,
    token: TokenSlot,
}

/// A secret version as the vault returns it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    value: Option<Zeroizing<String>>,
    id: String,
    content_type: Option<String>,
    #[serde(default)]
    attributes: BundleAttributes,
}

#[derive(Deserialize, Default)]
struct BundleAttributes {
    exp: Option<i64>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Zeroizing<String>,
    expires_in: Option<Value>,
}

/// Secret names as Key Vault accepts them: `^[0-9a-zA-Z-]{1,127}$`.
fn check_name(name: &str) -> Result<(), Error> {
    if (1..=127).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "'{}' is not a secret name (1-127 letters, digits and dashes)",
            name.chars().take(130).collect::<String>()
        )))
    }
}

impl Client {
    /// A client for `config` (no request is made yet).
    pub fn new(config: Config) -> Result<Self, Error> {
        let vault_host = host_of(&config.vault_url)
            .ok_or_else(|| Error::Config(format!("invalid vault URL '{}'", config.vault_url)))?;
        if host_of(&config.authority).is_none() {
            return Err(Error::Config(format!(
                "invalid authority URL '{}'",
                config.authority
            )));
        }
        let resource = match &config.vault_resource {
            Some(r) => r.trim_end_matches('/').to_owned(),
            None => default_vault_resource(&config.vault_url).ok_or_else(|| {
                Error::Config(format!(
                    "cannot derive the vault audience from '{}': set vault_resource",
                    config.vault_url
                ))
            })?,
        };
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("lockstep-client/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(REQUEST_TIMEOUT);
        if let Some(pem) = &config.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| Error::Config(format!("invalid CA certificate: {e}")))?;
            if certs.is_empty() {
                return Err(Error::Config("the CA PEM holds no certificate".into()));
            }
            builder = builder.tls_certs_merge(certs);
        }
        if let Some(addr) = config.resolve_to {
            builder = builder.dns_resolver(Arc::new(ResolveTo {
                host: vault_host,
                addr,
            }));
        }
        let http = builder
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                token_url: format!("{}/{}/oauth2/v2.0/token", config.authority, config.tenant),
                scope: format!("{resource}/.default"),
                config,
                http,
                token: TokenSlot::default(),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// A vault access token: the cached one while it is fresh, else a new
    /// one from the token endpoint.
    pub async fn token(&self) -> Result<Zeroizing<String>, Error> {
        let mut slot = self.inner.token.current.lock().await;
        if let Some(t) = slot.as_ref().filter(|t| t.is_fresh(Instant::now())) {
            return Ok(t.value.clone());
        }
        let started = Instant::now();
        let (value, lifetime) = self.request_token().await?;
        *slot = Some(Token::new(value.clone(), started, lifetime));
        Ok(value)
    }

    async fn request_token(&self) -> Result<(Zeroizing<String>, Duration), Error> {
        let c = &self.inner.config;
        let url = &self.inner.token_url;
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.as_str()),
            ("scope", self.inner.scope.as_str()),
        ];
        let resp = self
            .inner
            .http
            .post(url)
            .form(&form)
            .send()
            .await
            .map_err(|e| Error::unreachable(url, &e))?;
        let status = resp.status();
        let body = Zeroizing::new(Vec::from(
            resp.bytes()
                .await
                .map_err(|e| Error::unreachable(url, &e))?,
        ));
        if !status.is_success() {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            return Err(Error::Token {
                status: status.as_u16(),
                error: v["error"].as_str().unwrap_or("unknown_error").to_owned(),
                codes: v["error_codes"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default(),
                description: short_description(v["error_description"].as_str().unwrap_or(""))
                    .to_owned(),
            });
        }
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| Error::protocol(url, format!("token response: {e}")))?;
        let seconds = match &parsed.expires_in {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        }
        .unwrap_or(300);
        Ok((parsed.access_token, Duration::from_secs(seconds)))
    }

    /// GETs `url` on the vault with a bearer token; after a 401, gets a new
    /// token and tries once more.
    async fn vault_get(&self, url: &str, timeout: Duration) -> Result<reqwest::Response, Error> {
        let mut retried = false;
        loop {
            let token = self.token().await?;
            let resp = self
                .inner
                .http
                .get(url)
                .bearer_auth(token.as_str())
                .timeout(timeout)
                .send()
                .await
                .map_err(|e| Error::unreachable(url, &e))?;
            if resp.status() == reqwest::StatusCode::UNAUTHORIZED && !retried {
                self.inner.token.invalidate(&token).await;
                retried = true;
                continue;
            }
            return Ok(resp);
        }
    }

    fn secret_url(&self, name: &str, tail: &str) -> String {
        format!(
            "{}/secrets/{name}/{tail}?api-version={API_VERSION}",
            self.inner.config.vault_url
        )
    }

    /// The latest version of a secret, with its value.
    pub async fn get_secret(&self, name: &str) -> Result<CachedSecret, Error> {
        check_name(name)?;
        let url = self.secret_url(name, "");
        let resp = self.vault_get(&url, REQUEST_TIMEOUT).await?;
        match read_bundle(&url, resp).await? {
            Some(s) => Ok(s),
            None => Err(Error::protocol(&url, "204 No Content from a read")),
        }
    }

    /// Waits (server-side, up to the configured watch timeout) for the
    /// latest version of `name` to differ from `after`: `Some` with it as
    /// soon as it does (at once when `after` is `None`), `None` when the
    /// wait ended without a change. Lockstep's watch extension of the data
    /// plane.
    pub async fn watch_secret(
        &self,
        name: &str,
        after: Option<&str>,
    ) -> Result<Option<CachedSecret>, Error> {
        check_name(name)?;
        let seconds = self.inner.config.watch_seconds();
        let mut url = format!("{}&timeout={seconds}", self.secret_url(name, "watch"));
        if let Some(a) = after {
            if !a.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::Config(format!("'{a}' is not a secret version")));
            }
            url.push_str("&after=");
            url.push_str(a);
        }
        let resp = self
            .vault_get(&url, REQUEST_TIMEOUT + Duration::from_secs(seconds))
            .await?;
        read_bundle(&url, resp).await
    }
}

/// Reads a 200 bundle (`Some`), a 204 (`None`) or a Key Vault error.
async fn read_bundle(url: &str, resp: reqwest::Response) -> Result<Option<CachedSecret>, Error> {
    let status = resp.status();
    if status == reqwest::StatusCode::NO_CONTENT {
        return Ok(None);
    }
    let body = Zeroizing::new(Vec::from(
        resp.bytes()
            .await
            .map_err(|e| Error::unreachable(url, &e))?,
    ));
    if !status.is_success() {
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        return Err(Error::Vault {
            status: status.as_u16(),
            code: v["error"]["code"].as_str().unwrap_or("").to_owned(),
            message: v["error"]["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect()),
        });
    }
    parse_bundle(url, &body).map(Some)
}

/// The secret in a 200 bundle: its version (the last segment of `id`),
/// value, content type and expiry.
fn parse_bundle(url: &str, body: &[u8]) -> Result<CachedSecret, Error> {
    let bundle: Bundle = serde_json::from_slice(body)
        .map_err(|e| Error::protocol(url, format!("secret bundle: {e}")))?;
    let value = bundle
        .value
        .ok_or_else(|| Error::protocol(url, "the secret bundle has no value"))?;
    let version = bundle
        .id
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| Error::protocol(url, "the secret id has no version"))?
        .to_ascii_lowercase();
    Ok(CachedSecret {
        version,
        value,
        content_type: bundle.content_type,
        expires: bundle.attributes.exp,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn secret_names_are_checked_before_they_reach_a_url() {
        assert!(check_name("acg-client-secret").is_ok());
        assert!(check_name(&"a".repeat(127)).is_ok());
        for bad in ["", "a/b", "../x", "a?b", "a b", "ä", &"a".repeat(128)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn clients_need_usable_urls() {
        let ok = Config::new(
            "https://localhost:8443",
            "t",
            "c",
            "s",
            "https://default.vault.localhost:8443",
        );
        assert!(Client::new(ok.clone()).is_ok());
        let mut bad = ok.clone();
        bad.vault_url = "https://".into();
        assert!(matches!(Client::new(bad), Err(Error::Config(_))));
        let no_suffix = Config::new("https://localhost", "t", "c", "s", "https://localhost:8443");
        assert!(matches!(Client::new(no_suffix), Err(Error::Config(_))));
        let bad_ca = ok.with_ca_pem(b"not a certificate".to_vec());
        assert!(matches!(Client::new(bad_ca), Err(Error::Config(_))));
    }

    #[test]
    fn bundles_give_version_value_and_expiry() {
        let body = serde_json::json!({
            "value": "s3cret",
            "id": "https://default.vault.localhost:8443/secrets/acg/0123456789ABCDEF0123456789abcdef",
            "contentType": "text/plain",
            "attributes": {"enabled": true, "exp": 1_900_000_000},
        })
        .to_string();
        let s = parse_bundle("u", body.as_bytes()).unwrap();
        assert_eq!(s.version, "0123456789abcdef0123456789abcdef");
        assert_eq!(s.value.as_str(), "s3cret");
        assert_eq!(s.expires, Some(1_900_000_000));
        assert_eq!(s.content_type.as_deref(), Some("text/plain"));
    }

    #[test]
    fn bundles_without_value_or_version_are_refused() {
        let no_value = r#"{"id":"https://v/secrets/a/0123456789abcdef0123456789abcdef"}"#;
        assert!(matches!(
            parse_bundle("u", no_value.as_bytes()),
            Err(Error::Protocol { .. })
        ));
        let no_version = r#"{"value":"x","id":"https://v/secrets/a"}"#;
        assert!(matches!(
            parse_bundle("u", no_version.as_bytes()),
            Err(Error::Protocol { .. })
        ));
    }
}
