//! The Lockstep management API (`/lockstep/v1/…`). Tokens must be issued for
//! `api://lockstep`. Errors: `{"error":{"code","message"}}`.

pub mod audit;
pub mod roles;
pub mod rotation;
pub mod subscriptions;
pub mod users;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lockstep_core::VaultName;
use lockstep_identity::{actions, Principal, Scope};
use lockstep_store::{StoreError, VaultRow};
use serde::Deserialize;
use serde_json::json;

use crate::audit::AuditHandle;
use crate::auth::{authenticate, authorize, AuthFailure, Refusal};
use crate::config::MANAGEMENT_RESOURCE;
use crate::state::Shared;

/// A management-API error.
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "management request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "An internal error occurred.",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer resource=\"api://lockstep\""),
            );
        }
        resp
    }
}

/// The caller, authenticated by a token for `api://lockstep` (no
/// authorization yet); recorded in the request's audit context.
pub(crate) fn authenticated(
    state: &Shared,
    headers: &HeaderMap,
    audit: &AuditHandle,
) -> Result<Principal, ApiError> {
    let (principal, _) = authenticate(state, headers, &[MANAGEMENT_RESOURCE.to_owned()], audit)
        .map_err(|f| {
            let message = match f {
                AuthFailure::Missing => "A bearer token for api://lockstep is required.".to_owned(),
                AuthFailure::Invalid(e) => format!("The bearer token was rejected: {e}."),
            };
            ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
        })?;
    Ok(principal)
}

/// Runs domain work that may wait for the disk on the blocking pool, and
/// maps its error to the management API's shape.
pub(crate) async fn blocking<T, E>(
    state: &Shared,
    f: impl FnOnce(&Shared) -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
{
    let s = state.clone();
    tokio::task::spawn_blocking(move || f(&s))
        .await
        .map_err(ApiError::internal)?
        .map_err(Into::into)
}

/// Authenticates the caller and checks `action` at the scope built from its
/// tenant; both are recorded in the request's audit context.
pub(crate) fn caller(
    state: &Shared,
    headers: &HeaderMap,
    audit: &AuditHandle,
    action: &str,
    scope: impl FnOnce(&str) -> Scope,
) -> Result<Principal, ApiError> {
    let principal = authenticated(state, headers, audit)?;
    authorize(
        state,
        audit,
        &principal,
        action,
        &scope(&principal.tenant_id),
    )
    .map_err(|r| match r {
        Refusal::Denied(d) => {
            ApiError::new(StatusCode::FORBIDDEN, "AuthorizationFailed", d.to_string())
        }
        Refusal::Unaudited => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "AuditLogUnavailable",
            crate::audit::NOT_RECORDED,
        ),
    })?;
    Ok(principal)
}

fn vault_json(state: &Shared, v: &VaultRow) -> serde_json::Value {
    let port = state
        .tokens
        .authority()
        .rsplit_once(':')
        .map(|(_, p)| format!(":{p}"))
        .unwrap_or_default();
    json!({
        "name": v.name,
        "tenantId": v.tenant_id,
        "created": v.created,
        "vaultUri": format!("https://{}.{}{}", v.name, state.vault_suffix, port),
    })
}

/// `GET /lockstep/v1/vaults`.
pub async fn list_vaults(
    State(state): State<Shared>,
    audit: AuditHandle,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let p = caller(&state, &headers, &audit, actions::VAULT_READ, Scope::tenant)?;
    let vaults = state.store.vault_list().map_err(ApiError::internal)?;
    let value: Vec<_> = vaults
        .iter()
        .filter(|v| v.tenant_id == p.tenant_id)
        .map(|v| vault_json(&state, v))
        .collect();
    Ok(Json(json!({ "value": value })).into_response())
}

/// Body of `POST /lockstep/v1/vaults`.
#[derive(Deserialize)]
pub struct CreateVault {
    name: String,
}

/// `POST /lockstep/v1/vaults`.
pub async fn create_vault(
    State(state): State<Shared>,
    audit: AuditHandle,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let p = caller(
        &state,
        &headers,
        &audit,
        actions::VAULT_WRITE,
        Scope::tenant,
    )?;
    let input: CreateVault = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("Invalid request body: {e}"),
        )
    })?;
    let name = VaultName::parse(&input.name)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "InvalidVaultName", e.to_string()))?;
    let row = VaultRow {
        name: name.as_str().to_owned(),
        tenant_id: p.tenant_id,
        created: state.clock.unix(),
    };
    match crate::blocking::in_place(|| state.store.vault_create(&row)) {
        Ok(()) => {
            audit.event(
                "VaultCreated",
                Scope::vault(&row.tenant_id, &row.name).as_str().to_owned(),
            );
            Ok((StatusCode::CREATED, Json(vault_json(&state, &row))).into_response())
        }
        Err(StoreError::AlreadyExists) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "VaultAlreadyExists",
            format!("A vault named '{}' already exists.", row.name),
        )),
        Err(e) => Err(ApiError::internal(e)),
    }
}

fn found_vault(state: &Shared, name: &str, tenant: &str) -> Result<VaultRow, ApiError> {
    state
        .store
        .vault_get(&name.to_ascii_lowercase())
        .map_err(ApiError::internal)?
        .filter(|v| v.tenant_id == tenant)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "VaultNotFound",
                format!(
                    "Vault '{}' was not found.",
                    name.chars().take(64).collect::<String>()
                ),
            )
        })
}

/// `GET /lockstep/v1/vaults/{name}`.
pub async fn get_vault(
    State(state): State<Shared>,
    Path(name): Path<String>,
    audit: AuditHandle,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let p = caller(&state, &headers, &audit, actions::VAULT_READ, |t| {
        Scope::vault(t, &name.to_ascii_lowercase())
    })?;
    let v = found_vault(&state, &name, &p.tenant_id)?;
    Ok(Json(vault_json(&state, &v)).into_response())
}

/// `DELETE /lockstep/v1/vaults/{name}`: removes the vault and all its secrets.
pub async fn delete_vault(
    State(state): State<Shared>,
    Path(name): Path<String>,
    audit: AuditHandle,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let p = caller(&state, &headers, &audit, actions::VAULT_DELETE, |t| {
        Scope::vault(t, &name.to_ascii_lowercase())
    })?;
    let v = found_vault(&state, &name, &p.tenant_id)?;
    crate::blocking::in_place(|| state.store.vault_delete(&v.name)).map_err(ApiError::internal)?;
    state.vaults.forget(&v.name);
    audit.event(
        "VaultDeleted",
        Scope::vault(&v.tenant_id, &v.name).as_str().to_owned(),
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Unknown management paths.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NotFound", "No such endpoint.")
}
