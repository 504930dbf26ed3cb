//! `GET /lockstep/v1/audit` (query) and `GET /lockstep/v1/audit/verify`.
//! Both need `Lockstep/audit/read` at the caller's tenant. A tenant sees
//! its own records and those that belong to no tenant (anonymous requests
//! to unknown routes, server start and stop).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lockstep_audit::{parse_time, Filter, QueryError, Record, VerifyError, MAX_LIMIT};
use lockstep_identity::{actions, Scope};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{caller, ApiError};
use crate::audit::AuditHandle;
use crate::state::Shared;

/// Query parameters of `GET /lockstep/v1/audit`.
#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Exact principal (object id, or client id for token requests).
    #[serde(skip_serializing_if = "Option::is_none")]
    principal: Option<String>,
    /// Action (case-insensitive; a trailing `*` matches a prefix).
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<String>,
    /// Target prefix on path-segment boundaries.
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    /// RFC 3339; records at or after.
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    /// RFC 3339; records before.
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<String>,
    /// Only records with a larger seq (paging).
    #[serde(skip_serializing_if = "Option::is_none")]
    after: Option<u64>,
    /// Page size, 1–1000 (default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<usize>,
}

/// A page of records (typed, so that each record keeps the field order of
/// its line).
#[derive(Serialize)]
struct PageBody {
    value: Vec<Record>,
    #[serde(rename = "nextLink", skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
}

fn time_param(name: &str, value: Option<&str>) -> Result<Option<time::OffsetDateTime>, ApiError> {
    value
        .map(|v| {
            parse_time(v).ok_or_else(|| {
                bad(format!(
                    "Parameter '{name}' must be an RFC 3339 time such as 2026-05-01T00:00:00Z."
                ))
            })
        })
        .transpose()
}

/// `GET /lockstep/v1/audit`: `{"value":[records], "nextLink": …}`.
pub async fn query(
    State(state): State<Shared>,
    audit: AuditHandle,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let p = caller(&state, &headers, &audit, actions::AUDIT_READ, Scope::tenant)?;
    let mut params: AuditParams = serde_urlencoded::from_str(uri.query().unwrap_or(""))
        .map_err(|e| bad(format!("Invalid query parameters: {e}.")))?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(bad(format!(
            "Parameter 'limit' must be between 1 and {MAX_LIMIT}."
        )));
    }
    let filter = Filter {
        principal: params.principal.clone().filter(|s| !s.is_empty()),
        action: params.action.clone().filter(|s| !s.is_empty()),
        target: params.target.clone().filter(|s| !s.is_empty()),
        from: time_param("from", params.from.as_deref())?,
        to: time_param("to", params.to.as_deref())?,
        tenant: Some(p.tenant_id.clone()),
        after: params.after,
        limit,
    };
    let log = state.audit.clone();
    let page = tokio::task::spawn_blocking(move || log.query(&filter))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| match e {
            QueryError::Unreadable(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "AuditLogCorrupt",
                e.to_string(),
            ),
            QueryError::Io(e) => ApiError::internal(e),
        })?;
    let next_link = match page.next_after {
        Some(after) => {
            params.after = Some(after);
            params.limit = Some(limit);
            let query = serde_urlencoded::to_string(&params).map_err(ApiError::internal)?;
            Some(format!(
                "{}/lockstep/v1/audit?{query}",
                state.tokens.authority()
            ))
        }
        None => None,
    };
    Ok(Json(PageBody {
        value: page.records,
        next_link,
    })
    .into_response())
}

/// `GET /lockstep/v1/audit/verify`: walks the whole chain of the file the
/// server writes to, and checks that it still ends with the last record
/// written. `{"valid": true, "records", "lastSeq", "lastHash", "bytes"}` or
/// `{"valid": false, "brokenAt": {"line", "seq", "reason"}}`.
pub async fn verify(
    State(state): State<Shared>,
    audit: AuditHandle,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller(&state, &headers, &audit, actions::AUDIT_READ, Scope::tenant)?;
    let log = state.audit.clone();
    let result = tokio::task::spawn_blocking(move || log.verify())
        .await
        .map_err(ApiError::internal)?;
    let body = match result {
        Ok(r) => json!({
            "valid": true,
            "records": r.records,
            "lastSeq": r.last_seq,
            "lastHash": r.last_hash,
            "bytes": r.bytes,
        }),
        Err(VerifyError::Broken(b)) => json!({
            "valid": false,
            "brokenAt": {"line": b.line, "seq": b.seq, "reason": b.reason},
        }),
        Err(VerifyError::Io(e)) => return Err(ApiError::internal(e)),
    };
    Ok(Json(body).into_response())
}
