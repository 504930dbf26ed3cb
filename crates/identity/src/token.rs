//! Access tokens: client-credentials issuance, RS256 signing with rotating
//! keys, the JWKS, and verification with a cache so that a hot token is
//! verified once, not on every request.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use lockstep_core::SharedClock;
use lockstep_crypto::signing::{PublicJwk, SigningKey};
use lockstep_crypto::{random, Kek, WrappedKey};
use lockstep_store::{SigningKeyRow, Store, StoreError, UserRow};
use serde::{Deserialize, Serialize};

use crate::directory::Directory;

/// Default access-token lifetime: one hour, as Entra's default.
pub const DEFAULT_TOKEN_LIFETIME: i64 = 3_600;
/// Clock skew tolerated on `nbf`.
const SKEW: i64 = 300;
/// Most verified tokens remembered.
const VERIFIED_CACHE_CAPACITY: usize = 100_000;

/// The claims Lockstep puts in (and reads from) an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Audience: the resource the token is for.
    pub aud: String,
    /// Issuer: `{authority}/{tid}/v2.0`.
    pub iss: String,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Expiry.
    pub exp: i64,
    /// Tenant id.
    pub tid: String,
    /// Object id of the principal.
    pub oid: String,
    /// Subject (same as `oid` for applications).
    pub sub: String,
    /// Application (client) id, for app tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    /// Authorized party (v2 name of `appid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    /// `app` or `user`.
    pub idtyp: String,
    /// User principal name, for user tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    /// Display name, for user tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Token version.
    pub ver: String,
    /// Unique token id.
    pub uti: String,
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Object id.
    pub object_id: String,
    /// Tenant id.
    pub tenant_id: String,
    /// Application id, for apps.
    pub app_id: Option<String>,
    /// App or user.
    pub kind: PrincipalKind,
}

/// The kind of principal a token was issued to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// A service principal (client credentials).
    App,
    /// A human user.
    User,
}

impl Claims {
    /// The principal these claims describe.
    pub fn principal(&self) -> Principal {
        Principal {
            object_id: self.oid.clone(),
            tenant_id: self.tid.clone(),
            app_id: self.appid.clone(),
            kind: if self.idtyp == "user" {
                PrincipalKind::User
            } else {
                PrincipalKind::App
            },
        }
    }
}

/// A token just issued.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The compact JWT.
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: i64,
}

/// Why the token endpoint refused; each maps to an AADSTS code.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// A required parameter is missing.
    #[error("AADSTS900144: The request body must contain the following parameter: '{0}'.")]
    MissingParameter(&'static str),
    /// The grant type is not supported.
    #[error("AADSTS70003: The app requested an unsupported grant type '{0}'.")]
    UnsupportedGrantType(String),
    /// No such tenant.
    #[error("AADSTS90002: Tenant '{0}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.")]
    UnknownTenant(String),
    /// No such application in the tenant.
    #[error("AADSTS700016: Application with identifier '{client}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.")]
    UnknownClient {
        /// The client id asked for.
        client: String,
        /// The tenant asked for.
        tenant: String,
    },
    /// The secret matches no valid credential of the app.
    #[error("AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{0}'.")]
    InvalidSecret(String),
    /// The secret matches a credential that has expired.
    #[error("AADSTS7000222: The provided client secret keys for app '{0}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.")]
    ExpiredSecret(String),
    /// The scope is not `{resource}/.default`.
    #[error("AADSTS70011: The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {0} is not valid.")]
    InvalidScope(String),
    /// The resource is unknown.
    #[error("AADSTS500011: The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.")]
    InvalidResource {
        /// The resource asked for.
        resource: String,
        /// The tenant asked for.
        tenant: String,
    },
    /// Too many attempts.
    #[error("AADSTS50196: The server terminated an operation because it encountered a client request loop. Please contact your app vendor. Retry after {0} seconds.")]
    Throttled(u64),
    /// A server-side failure.
    #[error("AADSTS50000: There was an error issuing a token.")]
    Internal(String),
}

impl TokenError {
    /// The AADSTS number.
    pub fn code(&self) -> u32 {
        match self {
            TokenError::MissingParameter(_) => 900144,
            TokenError::UnsupportedGrantType(_) => 70003,
            TokenError::UnknownTenant(_) => 90002,
            TokenError::UnknownClient { .. } => 700016,
            TokenError::InvalidSecret(_) => 7000215,
            TokenError::ExpiredSecret(_) => 7000222,
            TokenError::InvalidScope(_) => 70011,
            TokenError::InvalidResource { .. } => 500011,
            TokenError::Throttled(_) => 50196,
            TokenError::Internal(_) => 50000,
        }
    }

    /// The OAuth2 `error` value.
    pub fn error(&self) -> &'static str {
        match self {
            TokenError::MissingParameter(_) | TokenError::UnknownTenant(_) => "invalid_request",
            TokenError::UnsupportedGrantType(_) => "unsupported_grant_type",
            TokenError::UnknownClient { .. } => "unauthorized_client",
            TokenError::InvalidSecret(_) | TokenError::ExpiredSecret(_) => "invalid_client",
            TokenError::InvalidScope(_) => "invalid_scope",
            TokenError::InvalidResource { .. } => "invalid_resource",
            TokenError::Throttled(_) => "temporarily_unavailable",
            TokenError::Internal(_) => "server_error",
        }
    }
}

/// Why a presented token was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not a well-formed RS256 JWT.
    #[error("the token is malformed")]
    Malformed,
    /// Unknown key id or bad signature.
    #[error("the token signature is invalid")]
    BadSignature,
    /// Issued by someone else.
    #[error("the token issuer is invalid")]
    WrongIssuer,
    /// Meant for another resource.
    #[error("the token audience is invalid")]
    WrongAudience,
    /// Past its expiry.
    #[error("the token is expired")]
    Expired,
    /// Before its not-before.
    #[error("the token is not yet valid")]
    NotYetValid,
    /// Issued to a user who has since been disabled or deleted.
    #[error("the token's user is disabled or no longer exists")]
    UserDisabled,
}

/// Default time a new signing key is published in the JWKS before it signs
/// anything, so that relying parties that cache the JWKS see it first.
pub const DEFAULT_KEY_PUBLISH_DELAY: i64 = 600;

struct KeySet {
    /// Signing keys with their publish time and the time they stop signing
    /// (None = not scheduled), oldest first.
    keys: Vec<(Arc<SigningKey>, i64, Option<i64>)>,
}

impl KeySet {
    /// The key that signs at `now`: the newest key published at least
    /// `delay` ago, or the oldest key when none is (a new installation).
    fn active(&self, now: i64, delay: i64) -> Option<Arc<SigningKey>> {
        self.keys
            .iter()
            .rev()
            .find(|(_, created, _)| created + delay <= now)
            .or(self.keys.first())
            .map(|(k, _, _)| k.clone())
    }
}

/// Issues and verifies access tokens.
pub struct TokenService {
    store: Arc<dyn Store>,
    clock: SharedClock,
    kek: Arc<Kek>,
    directory: Arc<Directory>,
    authority: String,
    resources: Vec<String>,
    lifetime: i64,
    publish_delay: i64,
    keys: RwLock<KeySet>,
    verified: RwLock<HashMap<String, Arc<Claims>>>,
}

fn store_err(e: StoreError) -> TokenError {
    TokenError::Internal(e.to_string())
}

fn normalize_resource(r: &str) -> &str {
    r.trim_end_matches('/')
}

impl TokenService {
    /// Loads the signing keys (creating the first one on a new data dir).
    /// `authority` is the public base URL (`https://localhost:8443`);
    /// `resources` are the audiences tokens may be requested for.
    pub fn load(
        store: Arc<dyn Store>,
        clock: SharedClock,
        kek: Arc<Kek>,
        directory: Arc<Directory>,
        authority: String,
        resources: Vec<String>,
    ) -> Result<Self, TokenError> {
        let mut rows = store.signing_key_list().map_err(store_err)?;
        if rows.is_empty() {
            let row = Self::new_key_row(&kek, clock.unix())?;
            store.signing_key_insert(&row).map_err(store_err)?;
            rows.push(row);
        }
        let keys = Self::key_set(&kek, &rows)?;
        Ok(Self {
            store,
            clock,
            kek,
            directory,
            authority: authority.trim_end_matches('/').to_owned(),
            resources: resources
                .iter()
                .map(|r| normalize_resource(r).to_owned())
                .collect(),
            lifetime: DEFAULT_TOKEN_LIFETIME,
            publish_delay: DEFAULT_KEY_PUBLISH_DELAY,
            keys: RwLock::new(keys),
            verified: RwLock::new(HashMap::new()),
        })
    }

    fn new_key_row(kek: &Kek, now: i64) -> Result<SigningKeyRow, TokenError> {
        let kid = random::hex(&random::bytes::<12>());
        let key =
            SigningKey::generate(kid.clone()).map_err(|e| TokenError::Internal(e.to_string()))?;
        let der = key
            .to_pkcs8()
            .map_err(|e| TokenError::Internal(e.to_string()))?;
        let binding = format!("signing/{kid}");
        let (dk, wrapped) = kek
            .new_data_key(&binding)
            .map_err(|e| TokenError::Internal(e.to_string()))?;
        let sealed = dk
            .seal(binding.as_bytes(), &der)
            .map_err(|e| TokenError::Internal(e.to_string()))?;
        Ok(SigningKeyRow {
            kid,
            created: now,
            kek_id: wrapped.kek_id,
            wrapped_dek: wrapped.sealed,
            sealed_pkcs8: sealed,
            retired_at: None,
        })
    }

    fn key_set(kek: &Kek, rows: &[SigningKeyRow]) -> Result<KeySet, TokenError> {
        let mut keys = Vec::new();
        for row in rows {
            let binding = format!("signing/{}", row.kid);
            let wrapped = WrappedKey {
                kek_id: row.kek_id.clone(),
                sealed: row.wrapped_dek.clone(),
            };
            let dk = kek
                .open_data_key(&binding, &wrapped)
                .map_err(|e| TokenError::Internal(e.to_string()))?;
            let der = dk
                .open(binding.as_bytes(), &row.sealed_pkcs8)
                .map_err(|e| TokenError::Internal(e.to_string()))?;
            let key = SigningKey::from_pkcs8(row.kid.clone(), &der)
                .map_err(|e| TokenError::Internal(e.to_string()))?;
            keys.push((Arc::new(key), row.created, row.retired_at));
        }
        if keys.is_empty() {
            return Err(TokenError::Internal("no signing key".into()));
        }
        Ok(KeySet { keys })
    }

    /// Sets how long a new signing key is published before it signs.
    pub fn set_publish_delay(&mut self, seconds: i64) {
        self.publish_delay = seconds.max(0);
    }

    /// The issuer of tokens for a tenant.
    pub fn issuer(&self, tenant_id: &str) -> String {
        format!("{}/{}/v2.0", self.authority, tenant_id)
    }

    /// The public base URL.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// Token lifetime in seconds.
    pub fn lifetime(&self) -> i64 {
        self.lifetime
    }

    /// The keys to publish: the active one and retired ones whose tokens may
    /// still be valid.
    pub fn jwks(&self) -> Vec<PublicJwk> {
        let now = self.clock.unix();
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        keys.keys
            .iter()
            .filter(|(_, _, retired)| retired.is_none_or(|r| r + self.lifetime + SKEW > now))
            .map(|(k, _, _)| k.public().clone())
            .collect()
    }

    /// Resource of a `{resource}/.default` scope, if it names a known resource.
    fn resource_of(&self, tenant: &str, scope: &str) -> Result<String, TokenError> {
        let first = scope
            .split_whitespace()
            .find(|s| s.ends_with("/.default"))
            .ok_or_else(|| TokenError::InvalidScope(scope.chars().take(200).collect()))?;
        let resource = normalize_resource(first.trim_end_matches("/.default"));
        if self.resources.iter().any(|r| r == resource) {
            Ok(resource.to_owned())
        } else {
            Err(TokenError::InvalidResource {
                resource: resource.chars().take(200).collect(),
                tenant: tenant.to_owned(),
            })
        }
    }

    /// The client-credentials grant: authenticates the app by its secret and
    /// issues a token for the resource of `scope`.
    pub fn client_credentials(
        &self,
        tenant: &str,
        client_id: &str,
        client_secret: &str,
        scope: &str,
    ) -> Result<IssuedToken, TokenError> {
        let tenant_row = self
            .directory
            .tenant(tenant)
            .map_err(|e| TokenError::Internal(e.to_string()))?
            .ok_or_else(|| TokenError::UnknownTenant(tenant.chars().take(64).collect()))?;
        let unknown = || TokenError::UnknownClient {
            client: client_id.chars().take(64).collect(),
            tenant: tenant_row.id.clone(),
        };
        let client = self
            .directory
            .client(client_id)
            .map_err(|e| TokenError::Internal(e.to_string()))?
            .filter(|c| c.app.tenant_id == tenant_row.id)
            .ok_or_else(unknown)?;
        let app = &client.app;
        let resource = self.resource_of(&tenant_row.id, scope)?;
        let now = self.clock.unix();
        let hasher = self.directory.hasher();
        let mut matched = None;
        for c in &client.credentials {
            // Every credential is checked so the time taken does not reveal
            // which one matched.
            if hasher.verify(&c.salt, client_secret.as_bytes(), &c.hash) {
                matched = Some(c);
            }
        }
        let cred = matched.ok_or_else(|| TokenError::InvalidSecret(app.app_id.clone()))?;
        if now >= cred.end {
            return Err(TokenError::ExpiredSecret(app.app_id.clone()));
        }
        if now < cred.start {
            return Err(TokenError::InvalidSecret(app.app_id.clone()));
        }
        let sp = client.service_principal.as_ref().ok_or_else(unknown)?;
        let claims = Claims {
            aud: resource,
            iss: self.issuer(&tenant_row.id),
            iat: now,
            nbf: now,
            exp: now + self.lifetime,
            tid: tenant_row.id.clone(),
            oid: sp.object_id.clone(),
            sub: sp.object_id.clone(),
            appid: Some(app.app_id.clone()),
            azp: Some(app.app_id.clone()),
            idtyp: "app".into(),
            upn: None,
            name: None,
            ver: "2.0".into(),
            uti: URL_SAFE_NO_PAD.encode(random::bytes::<16>()),
        };
        self.sign(&claims)
    }

    /// Issues a token to a user who has just proved their password, for
    /// `resource` (one of the audiences this server issues for, e.g.
    /// `api://lockstep`). It carries `idtyp: "user"`, the user's object id
    /// as `oid`/`sub`, `upn` and `name`, and no `appid`/`azp`.
    pub fn user_token(&self, user: &UserRow, resource: &str) -> Result<IssuedToken, TokenError> {
        let wanted = normalize_resource(resource);
        let resource = self
            .resources
            .iter()
            .find(|r| r.as_str() == wanted)
            .cloned()
            .ok_or_else(|| TokenError::InvalidResource {
                resource: wanted.chars().take(200).collect(),
                tenant: user.tenant_id.clone(),
            })?;
        let now = self.clock.unix();
        let claims = Claims {
            aud: resource,
            iss: self.issuer(&user.tenant_id),
            iat: now,
            nbf: now,
            exp: now + self.lifetime,
            tid: user.tenant_id.clone(),
            oid: user.object_id.clone(),
            sub: user.object_id.clone(),
            appid: None,
            azp: None,
            idtyp: "user".into(),
            upn: Some(user.user_principal_name.clone()),
            name: Some(user.display_name.clone()),
            ver: "2.0".into(),
            uti: URL_SAFE_NO_PAD.encode(random::bytes::<16>()),
        };
        self.sign(&claims)
    }

    /// Signs claims with the active key.
    pub fn sign(&self, claims: &Claims) -> Result<IssuedToken, TokenError> {
        let key = self
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .active(claims.iat, self.publish_delay)
            .ok_or_else(|| TokenError::Internal("no signing key".into()))?;
        let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "kid": key.kid()});
        let encode = |v: &serde_json::Value| -> Result<String, TokenError> {
            serde_json::to_vec(v)
                .map(|b| URL_SAFE_NO_PAD.encode(b))
                .map_err(|e| TokenError::Internal(e.to_string()))
        };
        let payload =
            serde_json::to_value(claims).map_err(|e| TokenError::Internal(e.to_string()))?;
        let signing_input = format!("{}.{}", encode(&header)?, encode(&payload)?);
        let sig = key
            .sign(signing_input.as_bytes())
            .map_err(|e| TokenError::Internal(e.to_string()))?;
        Ok(IssuedToken {
            access_token: format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)),
            expires_in: claims.exp - claims.iat,
        })
    }

    /// Verifies a bearer token for `audience`. A token verified before is
    /// answered from the cache (its expiry and audience are still checked).
    pub fn verify(&self, token: &str, audience: &str) -> Result<Arc<Claims>, VerifyError> {
        let now = self.clock.unix();
        let audience = normalize_resource(audience);
        let cached = self
            .verified
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned();
        let claims = match cached {
            Some(c) => c,
            None => {
                let c = Arc::new(self.verify_uncached(token)?);
                let mut cache = self.verified.write().unwrap_or_else(|p| p.into_inner());
                if cache.len() >= VERIFIED_CACHE_CAPACITY {
                    cache.retain(|_, c| c.exp > now);
                    if cache.len() >= VERIFIED_CACHE_CAPACITY {
                        cache.clear();
                    }
                }
                cache.insert(token.to_owned(), c.clone());
                c
            }
        };
        if claims.exp <= now {
            return Err(VerifyError::Expired);
        }
        if claims.nbf > now + SKEW {
            return Err(VerifyError::NotYetValid);
        }
        if normalize_resource(&claims.aud) != audience {
            return Err(VerifyError::WrongAudience);
        }
        Ok(claims)
    }

    fn verify_uncached(&self, token: &str) -> Result<Claims, VerifyError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(VerifyError::Malformed);
        };
        #[derive(Deserialize)]
        struct Header {
            alg: String,
            kid: String,
        }
        let header: Header = URL_SAFE_NO_PAD
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(VerifyError::Malformed)?;
        if header.alg != "RS256" {
            return Err(VerifyError::Malformed);
        }
        let sig = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| VerifyError::Malformed)?;
        let key = self
            .jwks()
            .into_iter()
            .find(|k| k.kid == header.kid)
            .ok_or(VerifyError::BadSignature)?;
        let signing_input = &token[..h.len() + 1 + p.len()];
        if !key.verify(signing_input.as_bytes(), &sig) {
            return Err(VerifyError::BadSignature);
        }
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(VerifyError::Malformed)?;
        if claims.iss != self.issuer(&claims.tid) {
            return Err(VerifyError::WrongIssuer);
        }
        Ok(claims)
    }

    /// Rotates the signing key: the new key is published in the JWKS at
    /// once and signs only after the publish delay; the old key signs until
    /// then and stays published until every token it signed has expired.
    /// Returns the new key id and when it starts signing.
    pub fn rotate_signing_key(&self) -> Result<(String, i64), TokenError> {
        let now = self.clock.unix();
        let row = Self::new_key_row(&self.kek, now)?;
        let kid = row.kid.clone();
        let activates = now + self.publish_delay;
        self.store
            .signing_key_rotate(&row, activates)
            .map_err(store_err)?;
        let rows = self.store.signing_key_list().map_err(store_err)?;
        let set = Self::key_set(&self.kek, &rows)?;
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = set;
        Ok((kid, activates))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use lockstep_core::{Clock, TestClock};
    use lockstep_crypto::hash::SecretHasher;
    use lockstep_crypto::SymmetricKey;
    use lockstep_store::SqliteStore;

    const VAULT: &str = "https://vault.localhost";

    struct Fixture {
        _dir: tempfile::TempDir,
        clock: Arc<TestClock>,
        directory: Arc<Directory>,
        tokens: TokenService,
        tenant: String,
        app_id: String,
        app_object: String,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).unwrap());
        let clock = Arc::new(TestClock::at(1_800_000_000));
        let shared: SharedClock = clock.clone();
        let directory = Arc::new(Directory::new(
            store.clone(),
            shared.clone(),
            SecretHasher::new(&SymmetricKey::generate()),
        ));
        let tenant = directory.create_tenant("t").unwrap().id;
        let (app, _) = directory.create_app(&tenant, "app").unwrap();
        let tokens = TokenService::load(
            store,
            shared,
            Arc::new(Kek::generate()),
            directory.clone(),
            "https://localhost:8443".into(),
            vec![VAULT.into(), "api://lockstep".into()],
        )
        .unwrap();
        Fixture {
            _dir: dir,
            clock,
            directory,
            tokens,
            tenant,
            app_id: app.app_id,
            app_object: app.object_id,
        }
    }

    fn scope() -> String {
        format!("{VAULT}/.default")
    }

    #[test]
    fn token_lifecycle_and_expiry() {
        let f = fixture();
        let pw = f
            .directory
            .add_password(&f.app_object, None, None, None)
            .unwrap();
        let issued = f
            .tokens
            .client_credentials(&f.tenant, &f.app_id, &pw.secret_text, &scope())
            .unwrap();
        let claims = f.tokens.verify(&issued.access_token, VAULT).unwrap();
        assert_eq!(claims.tid, f.tenant);
        assert_eq!(claims.appid.as_deref(), Some(f.app_id.as_str()));
        assert_eq!(claims.exp - claims.iat, DEFAULT_TOKEN_LIFETIME);
        assert_eq!(
            f.tokens
                .verify(&issued.access_token, "api://lockstep")
                .unwrap_err(),
            VerifyError::WrongAudience
        );
        // Cached or not, an expired token is refused.
        f.clock.advance(DEFAULT_TOKEN_LIFETIME);
        assert_eq!(
            f.tokens.verify(&issued.access_token, VAULT).unwrap_err(),
            VerifyError::Expired
        );
    }

    #[test]
    fn tampered_and_foreign_tokens_are_refused() {
        let f = fixture();
        let other = fixture();
        let pw = other
            .directory
            .add_password(&other.app_object, None, None, None)
            .unwrap();
        let foreign = other
            .tokens
            .client_credentials(&other.tenant, &other.app_id, &pw.secret_text, &scope())
            .unwrap()
            .access_token;
        assert_eq!(
            f.tokens.verify(&foreign, VAULT).unwrap_err(),
            VerifyError::BadSignature
        );
        let pw = f
            .directory
            .add_password(&f.app_object, None, None, None)
            .unwrap();
        let token = f
            .tokens
            .client_credentials(&f.tenant, &f.app_id, &pw.secret_text, &scope())
            .unwrap()
            .access_token;
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        claims["oid"] = serde_json::json!("someone-else");
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        assert_eq!(
            f.tokens.verify(&parts.join("."), VAULT).unwrap_err(),
            VerifyError::BadSignature
        );
        assert_eq!(
            f.tokens.verify("not.a.jwt", VAULT).unwrap_err(),
            VerifyError::Malformed
        );
    }

    #[test]
    fn credential_validity_window() {
        let f = fixture();
        let now = f.clock.unix();
        let future = f
            .directory
            .add_password(&f.app_object, None, Some(now + 3_600), Some(now + 7_200))
            .unwrap();
        let err = f
            .tokens
            .client_credentials(&f.tenant, &f.app_id, &future.secret_text, &scope())
            .unwrap_err();
        assert_eq!(err.code(), 7000215, "not yet valid");
        f.clock.advance(3_600);
        assert!(f
            .tokens
            .client_credentials(&f.tenant, &f.app_id, &future.secret_text, &scope())
            .is_ok());
        f.clock.advance(3_600);
        let err = f
            .tokens
            .client_credentials(&f.tenant, &f.app_id, &future.secret_text, &scope())
            .unwrap_err();
        assert_eq!(err.code(), 7000222, "expired");
        assert_eq!(err.error(), "invalid_client");
    }

    #[test]
    fn errors_carry_entra_codes() {
        let f = fixture();
        let pw = f
            .directory
            .add_password(&f.app_object, None, None, None)
            .unwrap();
        let codes = [
            f.tokens
                .client_credentials("nope", &f.app_id, &pw.secret_text, &scope()),
            f.tokens
                .client_credentials(&f.tenant, "nope", &pw.secret_text, &scope()),
            f.tokens
                .client_credentials(&f.tenant, &f.app_id, "wrong", &scope()),
            f.tokens.client_credentials(
                &f.tenant,
                &f.app_id,
                &pw.secret_text,
                "https://other/.default",
            ),
            f.tokens
                .client_credentials(&f.tenant, &f.app_id, &pw.secret_text, "openid"),
        ]
        .map(|r| r.unwrap_err().code());
        assert_eq!(codes, [90002, 700016, 7000215, 500011, 70011]);
        f.directory
            .remove_password(&f.app_object, &pw.credential.key_id)
            .unwrap();
        let err = f
            .tokens
            .client_credentials(&f.tenant, &f.app_id, &pw.secret_text, &scope())
            .unwrap_err();
        assert_eq!(
            err.code(),
            7000215,
            "a removed secret stops working at once"
        );
    }

    #[test]
    fn signing_key_rotation_keeps_old_tokens_valid() {
        let f = fixture();
        let pw = f
            .directory
            .add_password(&f.app_object, None, None, None)
            .unwrap();
        let old = f
            .tokens
            .client_credentials(&f.tenant, &f.app_id, &pw.secret_text, &scope())
            .unwrap()
            .access_token;
        let kid_of = |token: &str| -> String {
            let header: serde_json::Value = serde_json::from_slice(
                &URL_SAFE_NO_PAD
                    .decode(token.split('.').next().unwrap())
                    .unwrap(),
            )
            .unwrap();
            header["kid"].as_str().unwrap().to_owned()
        };
        let old_kid = kid_of(&old);
        let (new_kid, activates) = f.tokens.rotate_signing_key().unwrap();
        assert_eq!(activates, f.clock.unix() + DEFAULT_KEY_PUBLISH_DELAY);
        let published: Vec<String> = f.tokens.jwks().into_iter().map(|k| k.kid).collect();
        assert_eq!(
            published,
            vec![old_kid.clone(), new_kid.clone()],
            "published before it signs"
        );
        let issue = || {
            f.tokens
                .client_credentials(&f.tenant, &f.app_id, &pw.secret_text, &scope())
                .unwrap()
                .access_token
        };
        assert_eq!(
            kid_of(&issue()),
            old_kid,
            "the old key signs during the publish delay"
        );
        f.clock.advance(DEFAULT_KEY_PUBLISH_DELAY);
        let fresh = issue();
        assert_eq!(kid_of(&fresh), new_kid, "the new key signs after the delay");
        assert!(
            f.tokens.verify(&old, VAULT).is_ok(),
            "old tokens stay valid"
        );
        assert!(
            f.tokens.jwks().iter().any(|k| k.kid == old_kid),
            "old key still published"
        );
        f.clock.advance(DEFAULT_TOKEN_LIFETIME + SKEW + 1);
        let later: Vec<String> = f.tokens.jwks().into_iter().map(|k| k.kid).collect();
        assert_eq!(later, vec![new_kid]);
        assert!(f.tokens.verify(&fresh, VAULT).is_err(), "expired by now");
    }

    #[test]
    fn user_tokens_say_user_and_carry_no_app_id() {
        let f = fixture();
        let user = UserRow {
            object_id: random::guid(),
            tenant_id: f.tenant.clone(),
            user_principal_name: "alice@contoso.test".into(),
            display_name: "Alice".into(),
            password_hash: String::new(),
            enabled: true,
            created: 0,
            updated: 0,
            password_changed: 0,
        };
        let issued = f.tokens.user_token(&user, "api://lockstep/").unwrap();
        let claims = f
            .tokens
            .verify(&issued.access_token, "api://lockstep")
            .unwrap();
        assert_eq!(claims.idtyp, "user");
        assert_eq!(claims.oid, user.object_id);
        assert_eq!(claims.sub, user.object_id);
        assert_eq!(claims.appid, None);
        assert_eq!(claims.azp, None);
        assert_eq!(claims.upn.as_deref(), Some("alice@contoso.test"));
        assert_eq!(claims.name.as_deref(), Some("Alice"));
        let p = claims.principal();
        assert_eq!(p.kind, PrincipalKind::User);
        assert_eq!(p.app_id, None);
        assert!(f.tokens.user_token(&user, VAULT).is_ok());
        let err = f.tokens.user_token(&user, "https://elsewhere").unwrap_err();
        assert_eq!(err.code(), 500011);
        // App tokens say app.
        let pw = f
            .directory
            .add_password(&f.app_object, None, None, None)
            .unwrap();
        let app = f
            .tokens
            .client_credentials(&f.tenant, &f.app_id, &pw.secret_text, &scope())
            .unwrap();
        let claims = f.tokens.verify(&app.access_token, VAULT).unwrap();
        assert_eq!(claims.idtyp, "app");
        assert_eq!(claims.upn, None);
    }
}
