//! Rotation bindings, runs, status and the development clock
//! (`/lockstep/v1/rotation/…`, `/lockstep/v1/status`, `/lockstep/v1/dev/time-shift`).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lockstep_core::duration::IsoDuration;
use lockstep_identity::{actions, Scope};
use lockstep_rotation::{Binding, BindingInput, PolicyInput, RevokeMode, RotationError, Trigger};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{blocking, caller, ApiError};
use crate::audit::AuditHandle;
use crate::state::Shared;

impl From<RotationError> for ApiError {
    fn from(e: RotationError) -> Self {
        match e {
            RotationError::Invalid(m) => {
                ApiError::new(StatusCode::BAD_REQUEST, "InvalidRequest", m)
            }
            RotationError::NotFound(m) => {
                ApiError::new(StatusCode::NOT_FOUND, "NotFound", format!("{m} not found"))
            }
            RotationError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "Conflict", m),
            RotationError::Internal(m) => ApiError::internal(m),
        }
    }
}

fn binding_json(b: &Binding) -> Value {
    json!({
        "name": b.name,
        "source": b.source,
        "target": b.target,
        "policy": b.policy.to_json(),
        "created": b.created,
        "updated": b.updated,
        "nextDue": b.next_due,
        "failures": b.failures,
        "lastRun": b.last_run,
    })
}

fn body<T: serde::de::DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(raw).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            format!("Invalid request body: {e}"),
        )
    })
}

fn owned_binding(state: &Shared, name: &str, tenant: &str) -> Result<Binding, ApiError> {
    let b = state.engine.binding(name)?;
    if b.tenant_id != tenant {
        return Err(RotationError::NotFound(format!("binding '{name}'")).into());
    }
    Ok(b)
}

/// `POST /lockstep/v1/rotation/bindings`.
pub async fn create_binding(
    State(state): State<Shared>,
    headers: HeaderMap,
    audit: AuditHandle,
    raw: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let p = caller(
        &state,
        &headers,
        &audit,
        actions::ROTATION_WRITE,
        Scope::tenant,
    )?;
    let input: BindingInput = body(&raw)?;
    let tenant = p.tenant_id.clone();
    let b = blocking(&state, move |s| s.engine.bind(&tenant, input)).await?;
    Ok((StatusCode::CREATED, Json(binding_json(&b))).into_response())
}

/// `GET /lockstep/v1/rotation/bindings`.
pub async fn list_bindings(
    State(state): State<Shared>,
    headers: HeaderMap,
    audit: AuditHandle,
) -> Result<Response, ApiError> {
    let p = caller(
        &state,
        &headers,
        &audit,
        actions::ROTATION_READ,
        Scope::tenant,
    )?;
    let value: Vec<Value> = state
        .engine
        .bindings(&p.tenant_id)?
        .iter()
        .map(binding_json)
        .collect();
    Ok(Json(json!({ "value": value })).into_response())
}

/// `GET /lockstep/v1/rotation/bindings/{name}`.
pub async fn get_binding(
    State(state): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    audit: AuditHandle,
) -> Result<Response, ApiError> {
    let p = caller(
        &state,
        &headers,
        &audit,
        actions::ROTATION_READ,
        Scope::tenant,
    )?;
    Ok(Json(binding_json(&owned_binding(&state, &name, &p.tenant_id)?)).into_response())
}

/// Body of `PATCH /lockstep/v1/rotation/bindings/{name}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBinding {
    policy: PolicyInput,
}

/// `PATCH /lockstep/v1/rotation/bindings/{name}`: changes the policy.
pub async fn patch_binding(
    State(state): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    audit: AuditHandle,
    raw: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let p = caller(
        &state,
        &headers,
        &audit,
        actions::ROTATION_WRITE,
        Scope::tenant,
    )?;
    owned_binding(&state, &name, &p.tenant_id)?;
    let patch: PatchBinding = body(&raw)?;
    let b = blocking(&state, move |s| {
        s.engine.update_policy(&name, &patch.policy)
    })
    .await?;
    Ok(Json(binding_json(&b)).into_response())
}

/// `DELETE /lockstep/v1/rotation/bindings/{name}`.
pub async fn delete_binding(
    State(state): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    audit: AuditHandle,
) -> Result<Response, ApiError> {
    let p = caller(
        &state,
        &headers,
        &audit,
        actions::ROTATION_WRITE,
        Scope::tenant,
    )?;
    owned_binding(&state, &name, &p.tenant_id)?;
    blocking(&state, move |s| s.engine.unbind(&name)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Body of `POST …/rotate`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateRequest {
    /// `afterGrace` (default) or `now`.
    revoke_previous: Option<String>,
    /// A credential reported leaked: revoked at once once the new one works.
    leaked_key_id: Option<String>,
}

/// `POST /lockstep/v1/rotation/bindings/{name}/rotate` → 202 `{"runId"}`.
pub async fn rotate(
    State(state): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    audit: AuditHandle,
    raw: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let p = caller(
        &state,
        &headers,
        &audit,
        actions::ROTATION_ROTATE,
        Scope::tenant,
    )?;
    owned_binding(&state, &name, &p.tenant_id)?;
    let req: RotateRequest = if raw.is_empty() {
        RotateRequest::default()
    } else {
        body(&raw)?
    };
    let revoke = match req.revoke_previous.as_deref() {
        None | Some("afterGrace") => RevokeMode::AfterGrace,
        Some("now") => RevokeMode::Now,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                format!("revokePrevious must be \"afterGrace\" or \"now\", not \"{other}\""),
            ))
        }
    };
    let revoke = if req.leaked_key_id.is_some() {
        RevokeMode::Now
    } else {
        revoke
    };
    let id = blocking(&state, move |s| {
        s.engine
            .request(&name, Trigger::Manual, revoke, req.leaked_key_id)
    })
    .await?;
    state.wake_scheduler.notify_one();
    Ok((StatusCode::ACCEPTED, Json(json!({ "runId": id }))).into_response())
}

/// Filters of `GET /lockstep/v1/rotation/runs`.
#[derive(Deserialize)]
pub struct RunsQuery {
    binding: Option<String>,
    limit: Option<usize>,
}

/// `GET /lockstep/v1/rotation/runs`.
pub async fn list_runs(
    State(state): State<Shared>,
    headers: HeaderMap,
    audit: AuditHandle,
    Query(q): Query<RunsQuery>,
) -> Result<Response, ApiError> {
    let p = caller(
        &state,
        &headers,
        &audit,
        actions::ROTATION_READ,
        Scope::tenant,
    )?;
    let mine: Vec<String> = state
        .engine
        .bindings(&p.tenant_id)?
        .into_iter()
        .map(|b| b.name)
        .collect();
    let runs = state
        .engine
        .runs(q.binding.as_deref(), q.limit.unwrap_or(50).clamp(1, 1000))?;
    let value: Vec<Value> = runs
        .iter()
        .filter(|r| mine.contains(&r.binding))
        .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
        .collect();
    Ok(Json(json!({ "value": value })).into_response())
}

fn owned_run(state: &Shared, id: &str, tenant: &str) -> Result<lockstep_rotation::Run, ApiError> {
    let run = state.engine.run(id)?;
    owned_binding(state, &run.binding, tenant)
        .map_err(|_| ApiError::from(RotationError::NotFound(format!("run '{id}'"))))?;
    Ok(run)
}

/// `GET /lockstep/v1/rotation/runs/{id}`.
pub async fn get_run(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    audit: AuditHandle,
) -> Result<Response, ApiError> {
    let p = caller(
        &state,
        &headers,
        &audit,
        actions::ROTATION_READ,
        Scope::tenant,
    )?;
    let run = owned_run(&state, &id, &p.tenant_id)?;
    Ok(Json(serde_json::to_value(&run).map_err(ApiError::internal)?).into_response())
}

/// `POST /lockstep/v1/rotation/runs/{id}/cancel`.
pub async fn cancel_run(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    audit: AuditHandle,
) -> Result<Response, ApiError> {
    let p = caller(
        &state,
        &headers,
        &audit,
        actions::ROTATION_ROTATE,
        Scope::tenant,
    )?;
    owned_run(&state, &id, &p.tenant_id)?;
    let run = blocking(&state, move |s| s.engine.cancel(&id)).await?;
    Ok(Json(serde_json::to_value(&run).map_err(ApiError::internal)?).into_response())
}

/// `POST /lockstep/v1/rotation/runs/{id}/retry` → 202 `{"runId"}` of a fresh run.
pub async fn retry_run(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    audit: AuditHandle,
) -> Result<Response, ApiError> {
    let p = caller(
        &state,
        &headers,
        &audit,
        actions::ROTATION_ROTATE,
        Scope::tenant,
    )?;
    owned_run(&state, &id, &p.tenant_id)?;
    let new_id = blocking(&state, move |s| s.engine.retry(&id)).await?;
    state.wake_scheduler.notify_one();
    Ok((StatusCode::ACCEPTED, Json(json!({ "runId": new_id }))).into_response())
}

/// `GET /lockstep/v1/status`.
pub async fn status(
    State(state): State<Shared>,
    headers: HeaderMap,
    audit: AuditHandle,
) -> Result<Response, ApiError> {
    let p = caller(
        &state,
        &headers,
        &audit,
        actions::ROTATION_READ,
        Scope::tenant,
    )?;
    let tenant = p.tenant_id.clone();
    let list = blocking(&state, move |s| s.engine.status(&tenant)).await?;
    Ok(Json(json!({ "now": state.clock.unix(), "bindings": list })).into_response())
}

/// Body of `POST /lockstep/v1/dev/time-shift`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeShift {
    by: String,
}

/// `POST /lockstep/v1/dev/time-shift` `{"by":"P71D"}`: moves the server's
/// clock forward. Exists only when the server runs with `--dev-time-shift`.
pub async fn time_shift(
    State(state): State<Shared>,
    headers: HeaderMap,
    audit: AuditHandle,
    raw: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let Some(clock) = state.dev_clock.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "No such endpoint.",
        ));
    };
    caller(
        &state,
        &headers,
        &audit,
        actions::DEV_TIME_SHIFT,
        Scope::tenant,
    )?;
    let req: TimeShift = body(&raw)?;
    let by = IsoDuration::parse(&req.by)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "InvalidRequest", e.to_string()))?;
    clock.shift_forward(by.seconds());
    tracing::warn!(by = %req.by, "development clock moved forward");
    state.wake_scheduler.notify_one();
    Ok(Json(json!({ "now": state.clock.unix(), "shiftedBy": IsoDuration(clock.shifted_by()).to_string() })).into_response())
}
