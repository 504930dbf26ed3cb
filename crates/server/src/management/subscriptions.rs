//! Event subscriptions (webhooks): `/lockstep/v1/subscriptions[/{id}]`,
//! their delivery log and test events. The domain is `lockstep_events`;
//! this module only maps HTTP to it.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lockstep_events::{
    DeliveryLogEntry, DeliveryState, EventsError, NewSubscription, Subscription, SubscriptionChange,
};
use lockstep_identity::{actions, Scope};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

use super::{blocking, caller, ApiError};
use crate::audit::AuditHandle;
use crate::state::Shared;

/// Deliveries a log request returns unless `top` says otherwise.
const DEFAULT_LOG: usize = 50;

impl From<EventsError> for ApiError {
    fn from(e: EventsError) -> Self {
        match e {
            EventsError::Invalid(m) => ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", m),
            EventsError::NotFound => ApiError::new(
                StatusCode::NOT_FOUND,
                "SubscriptionNotFound",
                "No such subscription.",
            ),
            EventsError::Disabled => ApiError::new(
                StatusCode::CONFLICT,
                "SubscriptionDisabled",
                "The subscription is disabled; enable it first.",
            ),
            other => ApiError::internal(other),
        }
    }
}

fn subscription_json(s: &Subscription) -> Value {
    json!({
        "id": s.id,
        "name": s.name,
        "endpoint": s.endpoint,
        "eventTypes": s.event_types,
        "subjectPrefix": s.subject_prefix,
        "enabled": s.enabled,
        "createdOn": s.created,
        "updatedOn": s.updated,
    })
}

fn delivery_json(d: &DeliveryLogEntry) -> Value {
    let r = &d.delivery;
    let attempts: Vec<Value> = d
        .attempts
        .iter()
        .map(|a| {
            json!({
                "attempt": a.attempt,
                "time": a.time / 1000,
                "statusCode": a.status_code,
                "error": a.error,
                "durationMs": a.duration_ms,
            })
        })
        .collect();
    json!({
        "id": r.id,
        "eventId": r.event_id,
        "eventType": r.event_type,
        "subject": r.subject,
        "status": r.state.as_str(),
        "attemptCount": r.attempts,
        "nextAttemptOn": (r.state == DeliveryState::Pending).then_some(r.next_attempt_at / 1000),
        "createdOn": r.created / 1000,
        "attempts": attempts,
    })
}

fn body<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("Invalid request body: {e}"),
        )
    })
}

/// Body of `POST /lockstep/v1/subscriptions`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSubscription {
    name: Option<String>,
    endpoint: String,
    #[serde(default)]
    event_types: Vec<String>,
    subject_prefix: Option<String>,
    enabled: Option<bool>,
}

/// `POST /lockstep/v1/subscriptions`: creates a subscription; the response
/// carries its signing secret, which is never shown again.
pub async fn create(
    State(state): State<Shared>,
    headers: HeaderMap,
    audit: AuditHandle,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let p = caller(
        &state,
        &headers,
        &audit,
        actions::SUBSCRIPTION_WRITE,
        Scope::tenant,
    )?;
    let input: CreateSubscription = body(&bytes)?;
    let new = NewSubscription {
        name: input.name,
        endpoint: input.endpoint,
        event_types: input.event_types,
        subject_prefix: input.subject_prefix,
        enabled: input.enabled,
    };
    let (sub, secret) = blocking(&state, move |s| {
        s.events.create_subscription(&p.tenant_id, new)
    })
    .await?;
    let mut value = subscription_json(&sub);
    value["signingSecret"] = Value::String(secret.to_string());
    let mut resp = (StatusCode::CREATED, Json(value)).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// `GET /lockstep/v1/subscriptions`.
pub async fn list(
    State(state): State<Shared>,
    headers: HeaderMap,
    audit: AuditHandle,
) -> Result<Response, ApiError> {
    let p = caller(
        &state,
        &headers,
        &audit,
        actions::SUBSCRIPTION_READ,
        Scope::tenant,
    )?;
    let value: Vec<Value> = state
        .events
        .subscriptions(&p.tenant_id)?
        .iter()
        .map(subscription_json)
        .collect();
    Ok(Json(json!({ "value": value })).into_response())
}

/// `GET /lockstep/v1/subscriptions/{id}`.
pub async fn get(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    audit: AuditHandle,
) -> Result<Response, ApiError> {
    let p = caller(
        &state,
        &headers,
        &audit,
        actions::SUBSCRIPTION_READ,
        Scope::tenant,
    )?;
    let sub = state.events.subscription(&p.tenant_id, &id)?;
    Ok(Json(subscription_json(&sub)).into_response())
}

/// Present (even as `null`) → `Some(value)`; absent → `None` (via `default`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Body of `PATCH /lockstep/v1/subscriptions/{id}`; absent fields stay.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateSubscription {
    name: Option<String>,
    endpoint: Option<String>,
    event_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    subject_prefix: Option<Option<String>>,
    enabled: Option<bool>,
}

/// `PATCH /lockstep/v1/subscriptions/{id}`.
pub async fn update(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    audit: AuditHandle,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let p = caller(
        &state,
        &headers,
        &audit,
        actions::SUBSCRIPTION_WRITE,
        Scope::tenant,
    )?;
    let input: UpdateSubscription = body(&bytes)?;
    let change = SubscriptionChange {
        name: input.name,
        endpoint: input.endpoint,
        event_types: input.event_types,
        subject_prefix: input.subject_prefix,
        enabled: input.enabled,
    };
    let sub = blocking(&state, move |s| {
        s.events.update_subscription(&p.tenant_id, &id, change)
    })
    .await?;
    Ok(Json(subscription_json(&sub)).into_response())
}

/// `DELETE /lockstep/v1/subscriptions/{id}`: also drops its pending
/// deliveries and its delivery log.
pub async fn remove(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    audit: AuditHandle,
) -> Result<Response, ApiError> {
    let p = caller(
        &state,
        &headers,
        &audit,
        actions::SUBSCRIPTION_DELETE,
        Scope::tenant,
    )?;
    blocking(&state, move |s| {
        s.events.delete_subscription(&p.tenant_id, &id)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Query of the delivery log.
#[derive(Deserialize)]
pub struct LogQuery {
    top: Option<usize>,
}

/// `GET /lockstep/v1/subscriptions/{id}/deliveries[?top=N]`: newest first,
/// each with its attempts.
pub async fn deliveries(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
    headers: HeaderMap,
    audit: AuditHandle,
) -> Result<Response, ApiError> {
    let p = caller(
        &state,
        &headers,
        &audit,
        actions::SUBSCRIPTION_READ,
        Scope::tenant,
    )?;
    let limit = q.top.unwrap_or(DEFAULT_LOG);
    if !(1..=lockstep_events::MAX_LOG).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("top must be between 1 and {}.", lockstep_events::MAX_LOG),
        ));
    }
    let log = state.events.deliveries(&p.tenant_id, &id, limit)?;
    let value: Vec<Value> = log.iter().map(delivery_json).collect();
    Ok(Json(json!({ "value": value })).into_response())
}

/// `POST /lockstep/v1/subscriptions/{id}/test`: queues a
/// `Lockstep.SubscriptionTest` event for this subscription only.
pub async fn test(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    audit: AuditHandle,
) -> Result<Response, ApiError> {
    let p = caller(
        &state,
        &headers,
        &audit,
        actions::SUBSCRIPTION_WRITE,
        Scope::tenant,
    )?;
    let event_id = blocking(&state, move |s| s.events.send_test(&p.tenant_id, &id)).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "eventId": event_id }))).into_response())
}
