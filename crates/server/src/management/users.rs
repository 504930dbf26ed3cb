//! Tenant users on the management API: sign-in (`POST /lockstep/v1/login`),
//! `…/users` create/list/show/update/delete, and a user's own
//! `…/users/{id}/changePassword`. Passwords arrive only in request bodies,
//! are wiped after use, are hashed off the async runtime with a bounded
//! number of hashes at once, and never reach a log line or an error message.

use std::sync::OnceLock;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use lockstep_identity::{actions, NewUser, PrincipalKind, Scope, TokenError, UserError, UserPatch};
use lockstep_store::UserRow;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Semaphore;
use zeroize::{Zeroize, Zeroizing};

use super::{authenticated, caller, ApiError};
use crate::audit::AuditHandle;
use crate::config::MANAGEMENT_RESOURCE;
use crate::state::Shared;

/// The action recorded in the audit log for a user changing their own
/// password. Not an RBAC action: no role grants it, only being the user.
const CHANGE_PASSWORD_ACTION: &str = "Lockstep/users/changePassword/action";

/// The audit target of a user.
fn user_target(u: &UserRow) -> String {
    format!("/tenants/{}/users/{}", u.tenant_id, u.object_id)
}

/// Default and largest page of `GET /lockstep/v1/users`.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

impl From<UserError> for ApiError {
    fn from(e: UserError) -> Self {
        let message = e.to_string();
        match e {
            UserError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "UserNotFound", message),
            UserError::AlreadyExists(_) => {
                ApiError::new(StatusCode::CONFLICT, "UserAlreadyExists", message)
            }
            UserError::TenantNotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "TenantNotFound", message)
            }
            UserError::Invalid(m) => ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", m),
            UserError::WeakPassword(m) => {
                ApiError::new(StatusCode::BAD_REQUEST, "PasswordPolicyViolation", m)
            }
            UserError::InvalidCredentials => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "InvalidCredentials",
                "The user name or password is incorrect.",
            ),
            UserError::Disabled => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "UserDisabled",
                "The user account is disabled. Ask an administrator to enable it.",
            ),
            UserError::WrongCurrentPassword => ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidCurrentPassword",
                "The current password is incorrect.",
            ),
            UserError::Conflict => ApiError::new(StatusCode::CONFLICT, "Conflict", message),
            UserError::Hashing(_) | UserError::Store(_) => ApiError::internal(message),
        }
    }
}

/// Parses a JSON body, then wipes the body (it may hold a password). Parse
/// errors name a missing or unknown field but never echo a value.
fn parse_body<T: DeserializeOwned>(body: Bytes) -> Result<T, ApiError> {
    let parsed = serde_json::from_slice::<T>(&body);
    if let Ok(mut owned) = body.try_into_mut() {
        owned.as_mut().zeroize();
    }
    parsed.map_err(|e| {
        let text = e.to_string();
        let detail = if text.starts_with("missing field") || text.starts_with("unknown field") {
            text.split(" at line").next().unwrap_or_default().to_owned()
        } else {
            "expected a JSON object with the documented fields and types".to_owned()
        };
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("Invalid request body: {detail}."),
        )
    })
}

/// At most this many password hashes run at once: each takes 19 MiB and a
/// core for tens of milliseconds, so unbounded parallel sign-ins would be a
/// memory and CPU exhaustion lever.
fn hashing_slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Semaphore::new(cores.clamp(2, 16))
    })
}

/// Runs password work (hashing, verifying) on the blocking pool under a slot.
async fn with_hashing<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, UserError> + Send + 'static,
) -> Result<T, ApiError> {
    let _slot = hashing_slots()
        .acquire()
        .await
        .map_err(ApiError::internal)?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::from)
}

fn user_json(u: &UserRow) -> serde_json::Value {
    json!({
        "id": u.object_id,
        "tenantId": u.tenant_id,
        "userPrincipalName": u.user_principal_name,
        "displayName": u.display_name,
        "accountEnabled": u.enabled,
        "created": u.created,
        "updated": u.updated,
        "passwordChanged": u.password_changed,
    })
}

fn no_store(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    resp
}

/// Body of `POST /lockstep/v1/login`.
#[derive(Deserialize)]
pub struct LoginRequest {
    /// Tenant id (default: the tenant created on first start).
    tenant: Option<String>,
    /// User principal name.
    username: String,
    /// The password.
    password: Zeroizing<String>,
    /// Audience of the token (default `api://lockstep`).
    resource: Option<String>,
}

/// `POST /lockstep/v1/login`: a user signs in with their principal name and
/// password and receives an access token (`idtyp: "user"`) for `resource`.
/// An unknown user and a wrong password get the same 401; a disabled user
/// gets 401 `UserDisabled`. No attempted name or password is logged.
pub async fn login(
    State(state): State<Shared>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    audit: AuditHandle,
    body: Bytes,
) -> Result<Response, ApiError> {
    let address = peer.ip().to_string();
    let throttled = |retry: u64| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            format!("Too many sign-in attempts; retry after {retry} seconds."),
        )
    };
    if let Err(t) = state.token_limits.login_per_address.check(&address) {
        let retry = t.retry_after;
        state
            .metrics
            .inc("lockstep_login_requests_total", &[("result", "throttled")]);
        return Err(throttled(retry));
    }
    let input: LoginRequest = parse_body(body)?;
    // Failed passwords are limited per address and user name, so that an
    // attacker elsewhere cannot lock the real user out.
    let failure_key = format!("{address}/{}", input.username.to_ascii_lowercase());
    if let Err(t) = state.token_limits.login_failures.peek(&failure_key) {
        if t.first {
            state.metrics.inc("lockstep_login_lockouts_total", &[]);
            audit.event(
                "RepeatedFailedSignIns",
                format!("/users/{}", failure_key.rsplit('/').next().unwrap_or("")),
            );
        }
        state
            .metrics
            .inc("lockstep_login_requests_total", &[("result", "throttled")]);
        return Err(throttled(t.retry_after));
    }
    let tenant = input
        .tenant
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or(state.default_tenant.as_str())
        .to_ascii_lowercase();
    let resource = input
        .resource
        .clone()
        .unwrap_or_else(|| MANAGEMENT_RESOURCE.to_owned());
    let s = state.clone();
    let (username, password) = (input.username, input.password);
    let result = with_hashing(move || s.users.authenticate(&tenant, &username, &password)).await;
    let user = match result {
        Ok(user) => user,
        Err(e) => {
            tracing::info!(code = e.code, "user sign-in refused");
            state
                .metrics
                .inc("lockstep_login_requests_total", &[("result", "refused")]);
            // Counts the failure; the next attempt is refused up front
            // once the allowance is used up.
            let _ = state.token_limits.login_failures.check(&failure_key);
            return Err(e);
        }
    };
    state
        .metrics
        .inc("lockstep_login_requests_total", &[("result", "signed_in")]);
    let issued = state
        .tokens
        .user_token(&user, &resource)
        .map_err(|e| match e {
            TokenError::InvalidResource { .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidResource",
                format!(
                    "Tokens cannot be issued for resource '{}'.",
                    resource.chars().take(200).collect::<String>()
                ),
            ),
            other => ApiError::internal(other),
        })?;
    // Recorded only now: an attempted name (which may be a mistyped
    // password) never reaches the audit log, only a signed-in user's id.
    audit.authenticated(&lockstep_identity::Principal {
        object_id: user.object_id.clone(),
        tenant_id: user.tenant_id.clone(),
        app_id: None,
        kind: PrincipalKind::User,
    });
    tracing::info!(user = %user.object_id, tenant = %user.tenant_id, "user signed in");
    Ok(no_store(
        Json(json!({
            "access_token": issued.access_token,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
        }))
        .into_response(),
    ))
}

/// Body of `POST /lockstep/v1/users`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateUser {
    user_principal_name: String,
    display_name: String,
    password: Zeroizing<String>,
    account_enabled: Option<bool>,
}

/// `POST /lockstep/v1/users` (needs `Lockstep/users/write`).
pub async fn create(
    State(state): State<Shared>,
    headers: HeaderMap,
    audit: AuditHandle,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = caller(&state, &headers, &audit, actions::USER_WRITE, Scope::tenant)?;
    let input: CreateUser = parse_body(body)?;
    let s = state.clone();
    let user = with_hashing(move || {
        s.users.create(
            &p.tenant_id,
            &NewUser {
                user_principal_name: &input.user_principal_name,
                display_name: &input.display_name,
                password: &input.password,
                enabled: input.account_enabled.unwrap_or(true),
            },
        )
    })
    .await?;
    audit.event("UserCreated", user_target(&user));
    tracing::info!(user = %user.object_id, "user created");
    Ok((StatusCode::CREATED, Json(user_json(&user))).into_response())
}

/// Query of `GET /lockstep/v1/users`.
#[derive(Deserialize)]
pub struct ListQuery {
    /// Page size (1-1000, default 100).
    top: Option<usize>,
    /// Where the previous page ended (from `nextLink`).
    skiptoken: Option<String>,
}

/// `GET /lockstep/v1/users` (needs `Lockstep/users/read`): users of the
/// caller's tenant by principal name, paged with `top` and `nextLink`.
pub async fn list(
    State(state): State<Shared>,
    headers: HeaderMap,
    audit: AuditHandle,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let p = caller(&state, &headers, &audit, actions::USER_READ, Scope::tenant)?;
    let top = q.top.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&top) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("top must be between 1 and {MAX_PAGE}."),
        ));
    }
    let after = match &q.skiptoken {
        Some(t) => Some(
            URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", "Invalid skiptoken.")
                })?,
        ),
        None => None,
    };
    let mut rows = state.users.list(&p.tenant_id, after.as_deref(), top + 1)?;
    let more = rows.len() > top;
    rows.truncate(top);
    let mut body = json!({ "value": rows.iter().map(user_json).collect::<Vec<_>>() });
    if let (true, Some(last)) = (more, rows.last()) {
        body["nextLink"] = json!(format!(
            "{}/lockstep/v1/users?top={top}&skiptoken={}",
            state.tokens.authority(),
            URL_SAFE_NO_PAD.encode(last.user_principal_name.as_bytes())
        ));
    }
    Ok(Json(body).into_response())
}

/// `GET /lockstep/v1/users/{id or userPrincipalName}` (needs `Lockstep/users/read`).
pub async fn show(
    State(state): State<Shared>,
    Path(key): Path<String>,
    headers: HeaderMap,
    audit: AuditHandle,
) -> Result<Response, ApiError> {
    let p = caller(&state, &headers, &audit, actions::USER_READ, Scope::tenant)?;
    let user = state.users.get(&p.tenant_id, &key)?;
    Ok(Json(user_json(&user)).into_response())
}

/// Body of `PATCH /lockstep/v1/users/{id}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateUser {
    display_name: Option<String>,
    account_enabled: Option<bool>,
    /// A new password set by an administrator (no current password needed).
    password: Option<Zeroizing<String>>,
}

/// `PATCH /lockstep/v1/users/{id or userPrincipalName}` (needs
/// `Lockstep/users/write`): change `displayName`, `accountEnabled`, or
/// reset the `password`. Disabling a user stops its tokens at once.
pub async fn update(
    State(state): State<Shared>,
    Path(key): Path<String>,
    headers: HeaderMap,
    audit: AuditHandle,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = caller(&state, &headers, &audit, actions::USER_WRITE, Scope::tenant)?;
    let input: UpdateUser = parse_body(body)?;
    if input.display_name.is_none() && input.account_enabled.is_none() && input.password.is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Nothing to change: give displayName, accountEnabled or password.",
        ));
    }
    let mut user = state.users.get(&p.tenant_id, &key)?;
    if let Some(password) = input.password {
        let s = state.clone();
        let (tenant, id) = (p.tenant_id.clone(), user.object_id.clone());
        user = with_hashing(move || s.users.reset_password(&tenant, &id, &password)).await?;
        audit.event("UserPasswordReset", user_target(&user));
        tracing::info!(user = %user.object_id, "user password reset by an administrator");
    }
    if input.display_name.is_some() || input.account_enabled.is_some() {
        let patch = UserPatch {
            display_name: input.display_name,
            enabled: input.account_enabled,
        };
        user = crate::blocking::in_place(|| {
            state.users.update(&p.tenant_id, &user.object_id, &patch)
        })?;
        if patch.display_name.is_some() {
            audit.event("UserUpdated", user_target(&user));
        }
        match patch.enabled {
            Some(true) => audit.event("UserEnabled", user_target(&user)),
            Some(false) => audit.event("UserDisabled", user_target(&user)),
            None => {}
        }
        tracing::info!(user = %user.object_id, enabled = user.enabled, "user updated");
    }
    Ok(Json(user_json(&user)).into_response())
}

/// `DELETE /lockstep/v1/users/{id or userPrincipalName}` (needs
/// `Lockstep/users/delete`): removes the user and its role assignments.
pub async fn delete(
    State(state): State<Shared>,
    Path(key): Path<String>,
    headers: HeaderMap,
    audit: AuditHandle,
) -> Result<Response, ApiError> {
    let p = caller(
        &state,
        &headers,
        &audit,
        actions::USER_DELETE,
        Scope::tenant,
    )?;
    let user = crate::blocking::in_place(|| state.users.delete(&p.tenant_id, &key))?;
    audit.event("UserDeleted", user_target(&user));
    tracing::info!(user = %user.object_id, "user deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Body of `POST /lockstep/v1/users/{id}/changePassword`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangePassword {
    current_password: Zeroizing<String>,
    new_password: Zeroizing<String>,
}

/// `POST /lockstep/v1/users/{id or userPrincipalName}/changePassword`: the
/// signed-in user changes their own password (no role needed, the current
/// password is). Anyone else gets 403; administrators reset passwords with
/// `PATCH`.
pub async fn change_password(
    State(state): State<Shared>,
    Path(key): Path<String>,
    headers: HeaderMap,
    audit: AuditHandle,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = authenticated(&state, &headers, &audit)?;
    let not_self = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "AuthorizationFailed",
            "Only the signed-in user can change their own password; administrators reset \
             passwords with PATCH /lockstep/v1/users/{id} {\"password\": …}.",
        )
    };
    if p.kind != PrincipalKind::User {
        return Err(not_self());
    }
    let user = match state.users.get(&p.tenant_id, &key) {
        Ok(u) if u.object_id == p.object_id => u,
        Ok(_) | Err(UserError::NotFound(_)) => return Err(not_self()),
        Err(e) => return Err(e.into()),
    };
    let input: ChangePassword = parse_body(body)?;
    // Allowed (it is the user themself): record that, and the intent,
    // before changing anything, as every authorized change does.
    audit.checked(CHANGE_PASSWORD_ACTION, &user_target(&user), true);
    if let Err(e) = audit.intent(&state.audit) {
        crate::audit::report(&e, &audit.request_id());
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "AuditLogUnavailable",
            crate::audit::NOT_RECORDED,
        ));
    }
    let s = state.clone();
    let (tenant, id) = (user.tenant_id.clone(), user.object_id.clone());
    with_hashing(move || {
        s.users
            .change_password(&tenant, &id, &input.current_password, &input.new_password)
    })
    .await?;
    audit.event("UserPasswordChanged", user_target(&user));
    tracing::info!(user = %user.object_id, "user changed their password");
    Ok(StatusCode::NO_CONTENT.into_response())
}
