//! Role definitions and role assignments (`/lockstep/v1/roleDefinitions`,
//! `/lockstep/v1/roleAssignments`), and signing-key rotation.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lockstep_identity::authz::{role, BUILTIN_ROLES};
use lockstep_identity::{actions, Scope};
use lockstep_store::{RoleAssignmentRow, StoreError};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{caller, ApiError};
use crate::audit::AuditHandle;
use crate::state::Shared;

fn assignment_json(ra: &RoleAssignmentRow) -> Value {
    json!({
        "id": ra.id,
        "principalId": ra.principal_id,
        "roleDefinitionName": ra.role,
        "roleDefinitionId": role(&ra.role).map(|r| r.id),
        "scope": ra.scope,
        "createdOn": ra.created,
    })
}

/// `GET /lockstep/v1/roleDefinitions`.
pub async fn definitions(
    State(state): State<Shared>,
    headers: HeaderMap,
    audit: AuditHandle,
) -> Result<Response, ApiError> {
    caller(
        &state,
        &headers,
        &audit,
        actions::ROLE_ASSIGNMENT_READ,
        Scope::tenant,
    )?;
    let value: Vec<Value> = BUILTIN_ROLES
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.name,
                "description": r.description,
                "actions": r.actions,
                "notActions": r.not_actions,
            })
        })
        .collect();
    Ok(Json(json!({ "value": value })).into_response())
}

/// Filters of `GET /lockstep/v1/roleAssignments`.
#[derive(Deserialize)]
pub struct ListQuery {
    scope: Option<String>,
    #[serde(rename = "principalId")]
    principal_id: Option<String>,
}

fn parse_scope(raw: &str, tenant: &str) -> Result<Scope, ApiError> {
    Scope::parse(raw, tenant).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidScope",
            format!(
                "Scope '{}' is invalid: use /, /vaults/{{vault}}[/secrets/{{name}}], /applications/{{objectId}} or /tenants/{{tenant}}/…",
                raw.chars().take(120).collect::<String>()
            ),
        )
    })
}

/// `GET /lockstep/v1/roleAssignments[?scope=…&principalId=…]`.
pub async fn list(
    State(state): State<Shared>,
    headers: HeaderMap,
    audit: AuditHandle,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let p = caller(
        &state,
        &headers,
        &audit,
        actions::ROLE_ASSIGNMENT_READ,
        Scope::tenant,
    )?;
    let scope = parse_scope(q.scope.as_deref().unwrap_or("/"), &p.tenant_id)?;
    if scope.tenant_id() != p.tenant_id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "AuthorizationFailed",
            "The scope is in another tenant.",
        ));
    }
    let mut rows = state.authz.list(&scope).map_err(ApiError::internal)?;
    if let Some(pid) = &q.principal_id {
        rows.retain(|r| r.principal_id.eq_ignore_ascii_case(pid));
    }
    let value: Vec<Value> = rows.iter().map(assignment_json).collect();
    Ok(Json(json!({ "value": value })).into_response())
}

/// Body of `POST /lockstep/v1/roleAssignments`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateAssignment {
    principal_id: String,
    role_definition_name: Option<String>,
    role_definition_id: Option<String>,
    scope: Option<String>,
}

/// `POST /lockstep/v1/roleAssignments`: only a principal allowed to write
/// role assignments at the target scope (Owner) may create one.
pub async fn create(
    State(state): State<Shared>,
    headers: HeaderMap,
    audit: AuditHandle,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let input: CreateAssignment = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("Invalid request body: {e}"),
        )
    })?;
    let raw_scope = input.scope.clone().unwrap_or_else(|| "/".into());
    let mut scope_err = None;
    let p = caller(
        &state,
        &headers,
        &audit,
        actions::ROLE_ASSIGNMENT_WRITE,
        |t| {
            parse_scope(&raw_scope, t).unwrap_or_else(|e| {
                scope_err = Some(e);
                Scope::tenant(t)
            })
        },
    )?;
    if let Some(e) = scope_err {
        return Err(e);
    }
    let scope = parse_scope(&raw_scope, &p.tenant_id)?;
    if scope.tenant_id() != p.tenant_id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "AuthorizationFailed",
            "The scope is in another tenant.",
        ));
    }
    let role_key = input
        .role_definition_name
        .or(input.role_definition_id)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "roleDefinitionName or roleDefinitionId is required.",
            )
        })?;
    let def = role(&role_key).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "RoleDefinitionNotFound",
            format!(
                "No role named '{}'. See GET /lockstep/v1/roleDefinitions.",
                role_key.chars().take(80).collect::<String>()
            ),
        )
    })?;
    let principal = resolve_principal(&state, &input.principal_id, &p.tenant_id)?;
    let row = crate::blocking::in_place(|| state.authz.assign(&principal, def.name, &scope))
        .map_err(ApiError::internal)?;
    Ok((StatusCode::CREATED, Json(assignment_json(&row))).into_response())
}

/// Resolves an assignee (service principal object id or application id,
/// or a user's object id or principal name) to a principal object id in the
/// tenant.
fn resolve_principal(state: &Shared, id: &str, tenant: &str) -> Result<String, ApiError> {
    let sp = state
        .directory
        .find_service_principal(id)
        .map_err(ApiError::internal)?
        .filter(|sp| sp.tenant_id == tenant);
    if let Some(sp) = sp {
        return Ok(sp.object_id);
    }
    match state.users.get(tenant, id) {
        Ok(user) => Ok(user.object_id),
        Err(lockstep_identity::UserError::NotFound(_)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "PrincipalNotFound",
            format!(
                "No principal '{}' in this tenant.",
                id.chars().take(64).collect::<String>()
            ),
        )),
        Err(e) => Err(e.into()),
    }
}

/// `DELETE /lockstep/v1/roleAssignments/{id}`.
pub async fn remove(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    audit: AuditHandle,
) -> Result<Response, ApiError> {
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "RoleAssignmentNotFound",
            "No such role assignment.",
        )
    };
    let existing = state
        .store
        .role_assignment_list()
        .map_err(ApiError::internal)?
        .into_iter()
        .find(|r| r.id.eq_ignore_ascii_case(&id));
    let Some(existing) = existing else {
        caller(
            &state,
            &headers,
            &audit,
            actions::ROLE_ASSIGNMENT_DELETE,
            Scope::tenant,
        )?;
        return Err(not_found());
    };
    let p = caller(
        &state,
        &headers,
        &audit,
        actions::ROLE_ASSIGNMENT_DELETE,
        |t| Scope::parse(&existing.scope, t).unwrap_or_else(|| Scope::tenant(t)),
    )?;
    if !existing
        .scope
        .starts_with(&format!("/tenants/{}", p.tenant_id))
    {
        return Err(not_found());
    }
    match crate::blocking::in_place(|| state.authz.remove(&existing.id)) {
        Ok(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(StoreError::NotFound) => Err(not_found()),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// `POST /lockstep/v1/keys/rotate-signing`: publishes a new token signing
/// key; it signs after the publish delay.
pub async fn rotate_signing_key(
    State(state): State<Shared>,
    headers: HeaderMap,
    audit: AuditHandle,
) -> Result<Response, ApiError> {
    caller(
        &state,
        &headers,
        &audit,
        actions::SIGNING_KEY_ROTATE,
        Scope::tenant,
    )?;
    let (kid, activates) = state
        .tokens
        .rotate_signing_key()
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "kid": kid, "signsFrom": activates })).into_response())
}
