//! The Key Vault secrets data plane, served on `{vault}.{vault_suffix}`.
//! Authentication happens before the body is read, so that an SDK's first,
//! unauthenticated request gets its challenge at once.

mod error;
mod wire;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use lockstep_events::EventType;
use lockstep_identity::{actions, Principal, Scope};
use lockstep_vault::{Page, PageMarker, SecretUpdate, SecretVersion, SetSecret, VaultRef};
use serde::Serialize;
use zeroize::{Zeroize, Zeroizing};

use crate::audit::AuditHandle;
use crate::auth::{authenticate, authorize, AuthFailure};
use crate::state::Shared;
use error::KvError;
use wire::*;

/// Largest request body the data plane reads (restore blobs included).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Serves one data-plane request for vault `vault_name`.
pub async fn handle(state: Shared, vault_name: String, req: Request) -> Response {
    let Some(audit) = req.extensions().get::<AuditHandle>().cloned() else {
        tracing::error!("data-plane request without an audit context");
        return KvError::unaudited().into_response();
    };
    match serve(state, vault_name, audit, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// The route template of a data-plane request, for the audit records of
/// requests that end before an authorization check names their action.
pub fn route_template(method: &Method, path: &str) -> &'static str {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (_, ["secrets"] | ["secrets", ""]) => "/secrets",
        (&Method::POST, ["secrets", "restore"]) => "/secrets/restore",
        (_, ["secrets", _] | ["secrets", _, ""]) => "/secrets/{name}",
        (_, ["secrets", _, "versions"]) => "/secrets/{name}/versions",
        (&Method::POST, ["secrets", _, "backup"]) => "/secrets/{name}/backup",
        (_, ["secrets", _, _]) => "/secrets/{name}/{version}",
        (_, ["deletedsecrets"] | ["deletedsecrets", ""]) => "/deletedsecrets",
        (_, ["deletedsecrets", _]) => "/deletedsecrets/{name}",
        (_, ["deletedsecrets", _, "recover"]) => "/deletedsecrets/{name}/recover",
        _ => "(no route)",
    }
}

/// The parts of a request every operation needs.
struct Call {
    state: Shared,
    audit: AuditHandle,
    vault: VaultRef,
    principal: Principal,
    base: String,
    api_version: String,
    query: Vec<(String, String)>,
    body: Body,
}

fn host_of(req: &Request) -> String {
    req.headers()
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default()
        .to_ascii_lowercase()
}

fn challenge(state: &Shared, host: &str, vault: &VaultRef) -> String {
    let port = host
        .rsplit_once(':')
        .map(|(_, p)| p)
        .filter(|p| *p != "443");
    let resource = match port {
        Some(p) => format!("https://{}:{p}", state.vault_suffix),
        None => format!("https://{}", state.vault_suffix),
    };
    format!(
        "Bearer authorization=\"{}/{}\", resource=\"{}\"",
        state.tokens.authority(),
        vault.tenant_id,
        resource
    )
}

fn query_value<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

async fn serve(
    state: Shared,
    vault_name: String,
    audit: AuditHandle,
    req: Request,
) -> Result<Response, KvError> {
    let host = host_of(&req);
    let vault = state.vaults.vault(&vault_name)?;
    audit.tenant(&vault.tenant_id);
    let principal = match authenticate(&state, req.headers(), &state.vault_audiences, &audit) {
        Ok((p, _)) if p.tenant_id == vault.tenant_id => p,
        Ok(_) => {
            let f = AuthFailure::Invalid(lockstep_identity::VerifyError::WrongIssuer);
            return Err(KvError::unauthorized(&f, challenge(&state, &host, &vault)));
        }
        Err(f) => return Err(KvError::unauthorized(&f, challenge(&state, &host, &vault))),
    };
    let query: Vec<(String, String)> = serde_urlencoded::from_str(req.uri().query().unwrap_or(""))
        .map_err(|_| KvError::bad("The query string is malformed."))?;
    let api_version = match query_value(&query, "api-version") {
        None => return Err(KvError::bad("The 'api-version' query parameter is missing.")),
        Some(v) if API_VERSIONS.contains(&v) => v.to_owned(),
        Some(v) => {
            return Err(KvError::bad(format!(
                "The specified version ({}) is not recognized. Consider using the latest supported version ({}).",
                v.chars().take(32).collect::<String>(),
                API_VERSIONS[API_VERSIONS.len() - 1]
            )))
        }
    };
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let call = Call {
        state,
        audit,
        vault,
        principal,
        base: format!("https://{host}"),
        api_version,
        query,
        body: req.into_body(),
    };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["secrets"] | ["secrets", ""]) => list_secrets(call).await,
        (&Method::POST, ["secrets", "restore"]) => restore(call).await,
        (&Method::PUT, ["secrets", name]) => set(call, name).await,
        (&Method::GET, ["secrets", name] | ["secrets", name, ""]) => get(call, name, None).await,
        (&Method::GET, ["secrets", name, "versions"]) => list_versions(call, name).await,
        (&Method::GET, ["secrets", name, "watch"]) => watch(call, name).await,
        (&Method::GET, ["secrets", name, version]) => get(call, name, Some(version)).await,
        (&Method::PATCH, ["secrets", name] | ["secrets", name, ""]) => {
            update(call, name, None).await
        }
        (&Method::PATCH, ["secrets", name, version]) => update(call, name, Some(version)).await,
        (&Method::DELETE, ["secrets", name]) => delete(call, name).await,
        (&Method::POST, ["secrets", name, "backup"]) => backup(call, name).await,
        (&Method::GET, ["deletedsecrets"] | ["deletedsecrets", ""]) => list_deleted(call).await,
        (&Method::GET, ["deletedsecrets", name]) => get_deleted(call, name).await,
        (&Method::DELETE, ["deletedsecrets", name]) => purge(call, name).await,
        (&Method::POST, ["deletedsecrets", name, "recover"]) => recover(call, name).await,
        (_, ["secrets" | "deletedsecrets", ..]) => Err(KvError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("The requested resource does not support http method '{method}'."),
        )),
        _ => Err(KvError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "The requested resource was not found.",
        )),
    }
}

impl Call {
    fn allow(&self, action: &str, scope: Scope) -> Result<(), KvError> {
        authorize(&self.state, &self.audit, &self.principal, action, &scope).map_err(KvError::from)
    }

    /// Records a secret event on `name` (and a version, if any).
    fn event(&self, event: &str, name: &str, version: Option<&str>) {
        let mut target = Scope::secret(
            &self.vault.tenant_id,
            &self.vault.name,
            &name.to_ascii_lowercase(),
        )
        .as_str()
        .to_owned();
        if let Some(v) = version {
            target.push_str("/versions/");
            target.push_str(v);
        }
        self.audit.event(event, target);
    }

    fn allow_secret(&self, action: &str, name: &str) -> Result<(), KvError> {
        let scope = Scope::secret(
            &self.vault.tenant_id,
            &self.vault.name,
            &name.to_ascii_lowercase(),
        );
        self.allow(action, scope)
    }

    fn allow_vault(&self, action: &str) -> Result<(), KvError> {
        self.allow(
            action,
            Scope::vault(&self.vault.tenant_id, &self.vault.name),
        )
    }

    fn marker(&self) -> Result<Option<PageMarker>, KvError> {
        query_value(&self.query, "$skiptoken")
            .map(PageMarker::decode)
            .transpose()
            .map_err(KvError::from)
    }

    fn max_results(&self) -> Result<usize, KvError> {
        match query_value(&self.query, "maxresults") {
            None => Ok(lockstep_vault::MAX_PAGE),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=lockstep_vault::MAX_PAGE).contains(&n) => Ok(n),
                _ => Err(KvError::bad(format!(
                    "Invalid maxresults: must be an integer between 1 and {}.",
                    lockstep_vault::MAX_PAGE
                ))),
            },
        }
    }

    fn next_link(&self, path: &str, next: Option<PageMarker>, max: usize) -> Option<String> {
        next.map(|m| {
            format!(
                "{}{path}?api-version={}&$skiptoken={}&maxresults={max}",
                self.base,
                self.api_version,
                m.encode()
            )
        })
    }
}

/// Runs a (possibly fsync-ing) vault operation off the async workers.
async fn run_blocking<T: Send + 'static>(
    state: Shared,
    f: impl FnOnce(&Shared) -> Result<T, lockstep_vault::VaultError> + Send + 'static,
) -> Result<T, KvError> {
    tokio::task::spawn_blocking(move || f(&state))
        .await
        .map_err(|e| KvError::from(lockstep_vault::VaultError::Internal(e.to_string())))?
        .map_err(KvError::from)
}

fn wipe(bytes: Bytes) {
    if let Ok(mut owned) = bytes.try_into_mut() {
        owned.as_mut().zeroize();
    }
}

fn ok<T: Serialize>(value: &T) -> Result<Response, KvError> {
    Ok((StatusCode::OK, axum::Json(value)).into_response())
}

async fn read_body(call: &mut Call) -> Result<Bytes, KvError> {
    let body = std::mem::replace(&mut call.body, Body::empty());
    axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| KvError::bad("The request body is too large or could not be read."))
}

async fn set(mut call: Call, name: &str) -> Result<Response, KvError> {
    call.allow_secret(actions::SECRET_SET, name)?;
    let bytes = read_body(&mut call).await?;
    let parsed = (|| {
        let mut map = object(&bytes)?;
        let value = match map.remove("value") {
            Some(serde_json::Value::String(s)) => Zeroizing::new(s),
            Some(_) => return Err(KvError::bad("Property 'value' must be a string.")),
            None => return Err(KvError::bad("Property 'value' is required.")),
        };
        let attrs = opt_attributes(&map)?;
        Ok(SetSecret {
            value,
            content_type: opt_string(&map, "contentType")?,
            enabled: attrs.enabled,
            nbf: attrs.nbf.flatten(),
            exp: attrs.exp.flatten(),
            tags: opt_tags(&map)?,
            managed: false,
        })
    })();
    wipe(bytes);
    let input = parsed?;
    let vault = call.vault.clone();
    let name = name.to_owned();
    let secret = run_blocking(call.state.clone(), move |s| {
        let secret = s.vaults.set(&vault, &name, input)?;
        publish_new_version(s, &vault, &secret.meta);
        Ok(secret)
    })
    .await?;
    call.event(
        "SecretVersionCreated",
        &secret.meta.name,
        Some(&secret.meta.version),
    );
    ok(&SecretBundle::new(
        &call.base,
        &secret.meta,
        Some(&secret.value),
    ))
}

/// Publishes `Microsoft.KeyVault.SecretNewVersionCreated` for a stored
/// version. The version is stored whatever happens here, so a failure is
/// logged, not returned.
fn publish_new_version(state: &Shared, vault: &VaultRef, meta: &SecretVersion) {
    let published = state.events.publish_secret(
        EventType::SecretNewVersionCreated,
        &vault.tenant_id,
        &vault.name,
        &meta.name,
        &meta.version,
        meta.attributes.nbf,
        meta.attributes.exp,
    );
    if let Err(e) = published {
        tracing::warn!(vault = %vault.name, secret = %meta.name, error = %e, "cannot publish SecretNewVersionCreated");
    }
}

async fn get(call: Call, name: &str, version: Option<&str>) -> Result<Response, KvError> {
    call.allow_secret(actions::SECRET_GET, name)?;
    let secret = call.state.vaults.get(&call.vault, name, version)?;
    ok(&SecretBundle::new(
        &call.base,
        &secret.meta,
        Some(&secret.value),
    ))
}

/// Longest wait a watch accepts, in seconds.
const WATCH_MAX_SECONDS: u64 = 60;
/// Wait of a watch without `timeout`, in seconds.
const WATCH_DEFAULT_SECONDS: u64 = 30;

/// `GET /secrets/{name}/watch?after={version}&timeout={seconds}`, a
/// Lockstep extension: the latest version (as `GET /secrets/{name}/` returns
/// it) as soon as it is not `after`, or 204 when `timeout` passes first (or
/// the server is stopping).
async fn watch(call: Call, name: &str) -> Result<Response, KvError> {
    call.allow_secret(actions::SECRET_GET, name)?;
    let after = match query_value(&call.query, "after").filter(|a| !a.is_empty()) {
        None => None,
        Some(a) => Some(
            lockstep_core::VersionId::parse(a)
                .map_err(|_| KvError::bad("Query parameter 'after' is not a secret version."))?
                .as_str()
                .to_owned(),
        ),
    };
    let timeout = match query_value(&call.query, "timeout") {
        None => WATCH_DEFAULT_SECONDS,
        Some(t) => match t.parse::<u64>() {
            Ok(n) if n <= WATCH_MAX_SECONDS => n,
            _ => {
                return Err(KvError::bad(format!(
                    "Query parameter 'timeout' must be an integer number of seconds from 0 to {WATCH_MAX_SECONDS}."
                )))
            }
        },
    };
    let mut stopping = call.state.stopping.subscribe();
    let waited = tokio::select! {
        r = tokio::time::timeout(
            std::time::Duration::from_secs(timeout),
            call.state.vaults.next_version(&call.vault, name, after.as_deref()),
        ) => r.ok(),
        _ = stopping.wait_for(|s| *s) => None,
    };
    match waited {
        None => Ok(StatusCode::NO_CONTENT.into_response()),
        Some(secret) => {
            let secret = secret?;
            // Access may have been revoked while the request waited.
            call.allow_secret(actions::SECRET_GET, name)?;
            ok(&SecretBundle::new(
                &call.base,
                &secret.meta,
                Some(&secret.value),
            ))
        }
    }
}

async fn update(mut call: Call, name: &str, version: Option<&str>) -> Result<Response, KvError> {
    call.allow_secret(actions::SECRET_UPDATE, name)?;
    let bytes = read_body(&mut call).await?;
    let map = object(&bytes)?;
    let attrs = opt_attributes(&map)?;
    let change = SecretUpdate {
        content_type: opt_string(&map, "contentType")?,
        enabled: attrs.enabled,
        nbf: attrs.nbf,
        exp: attrs.exp,
        tags: opt_tags(&map)?,
    };
    let (vault, name, version) = (
        call.vault.clone(),
        name.to_owned(),
        version.map(str::to_owned),
    );
    let meta = run_blocking(call.state.clone(), move |s| {
        s.vaults.update(&vault, &name, version.as_deref(), change)
    })
    .await?;
    call.event("SecretVersionUpdated", &meta.name, Some(&meta.version));
    ok(&SecretBundle::new(&call.base, &meta, None))
}

async fn delete(call: Call, name: &str) -> Result<Response, KvError> {
    call.allow_secret(actions::SECRET_DELETE, name)?;
    let (vault, n) = (call.vault.clone(), name.to_owned());
    let deleted = run_blocking(call.state.clone(), move |s| s.vaults.delete(&vault, &n)).await?;
    call.event("SecretDeleted", name, None);
    ok(&DeletedSecretBundle::new(&call.base, &deleted))
}

async fn get_deleted(call: Call, name: &str) -> Result<Response, KvError> {
    call.allow_secret(actions::DELETED_SECRET_READ, name)?;
    let deleted = call.state.vaults.get_deleted(&call.vault, name)?;
    ok(&DeletedSecretBundle::new(&call.base, &deleted))
}

async fn recover(call: Call, name: &str) -> Result<Response, KvError> {
    call.allow_secret(actions::SECRET_RECOVER, name)?;
    let (vault, n) = (call.vault.clone(), name.to_owned());
    let meta = run_blocking(call.state.clone(), move |s| s.vaults.recover(&vault, &n)).await?;
    call.event("SecretRecovered", name, None);
    ok(&SecretBundle::new(&call.base, &meta, None))
}

async fn purge(call: Call, name: &str) -> Result<Response, KvError> {
    call.allow_secret(actions::SECRET_PURGE, name)?;
    let (vault, n) = (call.vault.clone(), name.to_owned());
    run_blocking(call.state.clone(), move |s| s.vaults.purge(&vault, &n)).await?;
    call.event("SecretPurged", name, None);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_secrets(call: Call) -> Result<Response, KvError> {
    call.allow_vault(actions::SECRET_READ_METADATA)?;
    let (marker, max) = (call.marker()?, call.max_results()?);
    let page: Page<_> = call.state.vaults.list(&call.vault, marker.as_ref(), max)?;
    let value = page
        .items
        .iter()
        .map(|m| SecretItem::new(&call.base, m, false))
        .collect();
    ok(&ListResult {
        value,
        next_link: call.next_link("/secrets", page.next, max),
    })
}

async fn list_versions(call: Call, name: &str) -> Result<Response, KvError> {
    call.allow_secret(actions::SECRET_READ_METADATA, name)?;
    let (marker, max) = (call.marker()?, call.max_results()?);
    let page = call
        .state
        .vaults
        .versions(&call.vault, name, marker.as_ref(), max)?;
    let value = page
        .items
        .iter()
        .map(|m| SecretItem::new(&call.base, m, true))
        .collect();
    ok(&ListResult {
        value,
        next_link: call.next_link(&format!("/secrets/{name}/versions"), page.next, max),
    })
}

async fn list_deleted(call: Call) -> Result<Response, KvError> {
    call.allow_vault(actions::DELETED_SECRET_READ)?;
    let (marker, max) = (call.marker()?, call.max_results()?);
    let page = call
        .state
        .vaults
        .list_deleted(&call.vault, marker.as_ref(), max)?;
    let value = page
        .items
        .iter()
        .map(|d| DeletedSecretItem::new(&call.base, d))
        .collect();
    ok(&ListResult {
        value,
        next_link: call.next_link("/deletedsecrets", page.next, max),
    })
}

async fn backup(call: Call, name: &str) -> Result<Response, KvError> {
    call.allow_secret(actions::SECRET_BACKUP, name)?;
    let (vault, n) = (call.vault.clone(), name.to_owned());
    let blob = run_blocking(call.state.clone(), move |s| s.vaults.backup(&vault, &n)).await?;
    ok(&serde_json::json!({ "value": URL_SAFE_NO_PAD.encode(blob) }))
}

async fn restore(mut call: Call) -> Result<Response, KvError> {
    call.allow_vault(actions::SECRET_RESTORE)?;
    let bytes = read_body(&mut call).await?;
    let map = object(&bytes)?;
    let text =
        opt_string(&map, "value")?.ok_or_else(|| KvError::bad("Property 'value' is required."))?;
    let normalized: String = text
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    let blob = URL_SAFE_NO_PAD
        .decode(normalized)
        .map_err(|_| KvError::bad("Property 'value' is not a valid base64url backup blob."))?;
    let vault = call.vault.clone();
    let meta = run_blocking(call.state.clone(), move |s| s.vaults.restore(&vault, &blob)).await?;
    call.event("SecretRestored", &meta.name, None);
    ok(&SecretBundle::new(&call.base, &meta, None))
}
