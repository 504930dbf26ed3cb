//! Routing: requests for `{vault}.{vault_suffix}` go to the Key Vault data
//! plane; everything else to the identity, management and operations routes.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::audit::{unaudited, Api, AuditHandle, RequestId};
use crate::state::Shared;
use crate::{graph, keyvault, management, oauth};

/// The whole HTTP application.
pub fn app(state: Shared) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(oauth::token))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(oauth::openid_configuration),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(oauth::jwks))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz))
        .route(
            "/lockstep/v1/vaults",
            get(management::list_vaults).post(management::create_vault),
        )
        .route(
            "/lockstep/v1/vaults/{name}",
            get(management::get_vault).delete(management::delete_vault),
        )
        .route(
            "/lockstep/v1/roleDefinitions",
            get(management::roles::definitions),
        )
        .route(
            "/lockstep/v1/roleAssignments",
            get(management::roles::list).post(management::roles::create),
        )
        .route(
            "/lockstep/v1/roleAssignments/{id}",
            axum::routing::delete(management::roles::remove),
        )
        .route(
            "/lockstep/v1/keys/rotate-signing",
            post(management::roles::rotate_signing_key),
        )
        .route(
            "/lockstep/v1/rotation/bindings",
            get(management::rotation::list_bindings).post(management::rotation::create_binding),
        )
        .route(
            "/lockstep/v1/rotation/bindings/{name}",
            get(management::rotation::get_binding)
                .patch(management::rotation::patch_binding)
                .delete(management::rotation::delete_binding),
        )
        .route(
            "/lockstep/v1/rotation/bindings/{name}/rotate",
            post(management::rotation::rotate),
        )
        .route(
            "/lockstep/v1/rotation/runs",
            get(management::rotation::list_runs),
        )
        .route(
            "/lockstep/v1/rotation/runs/{id}",
            get(management::rotation::get_run),
        )
        .route(
            "/lockstep/v1/rotation/runs/{id}/cancel",
            post(management::rotation::cancel_run),
        )
        .route(
            "/lockstep/v1/rotation/runs/{id}/retry",
            post(management::rotation::retry_run),
        )
        .route("/lockstep/v1/status", get(management::rotation::status))
        .route(
            "/lockstep/v1/dev/time-shift",
            post(management::rotation::time_shift),
        )
        .route("/lockstep/v1/audit", get(management::audit::query))
        .route("/lockstep/v1/audit/verify", get(management::audit::verify))
        .route("/lockstep/v1/login", post(management::users::login))
        .route(
            "/lockstep/v1/users",
            get(management::users::list).post(management::users::create),
        )
        .route(
            "/lockstep/v1/users/{id}",
            get(management::users::show)
                .patch(management::users::update)
                .delete(management::users::delete),
        )
        .route(
            "/lockstep/v1/users/{id}/changePassword",
            post(management::users::change_password),
        )
        .route(
            "/lockstep/v1/subscriptions",
            get(management::subscriptions::list).post(management::subscriptions::create),
        )
        .route(
            "/lockstep/v1/subscriptions/{id}",
            get(management::subscriptions::get)
                .patch(management::subscriptions::update)
                .delete(management::subscriptions::remove),
        )
        .route(
            "/lockstep/v1/subscriptions/{id}/deliveries",
            get(management::subscriptions::deliveries),
        )
        .route(
            "/lockstep/v1/subscriptions/{id}/test",
            post(management::subscriptions::test),
        )
        .route("/v1.0/{*rest}", axum::routing::any(graph::handle))
        .fallback(management::not_found)
        .layer(middleware::from_fn_with_state(state.clone(), by_host))
        .layer(middleware::from_fn_with_state(state.clone(), audit))
        .layer(middleware::from_fn_with_state(state.clone(), request_id))
        .with_state(state)
}

/// The vault a host name addresses, if it is `{vault}.{suffix}[:port]`.
fn vault_of_host(host: &str, suffix: &str) -> Option<String> {
    let host = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let host = host.to_ascii_lowercase();
    let label = host.strip_suffix(suffix)?.strip_suffix('.')?;
    (!label.is_empty() && !label.contains('.')).then(|| label.to_owned())
}

/// The `Host` (or `:authority`) of a request.
fn host(req: &Request) -> Option<String> {
    req.headers()
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
}

async fn by_host(State(state): State<Shared>, req: Request, next: Next) -> Response {
    match host(&req).and_then(|h| vault_of_host(&h, &state.vault_suffix)) {
        Some(vault) => keyvault::handle(state, vault, req).await,
        None => next.run(req).await,
    }
}

/// Gives every response an `x-ms-request-id` (echoing the client's
/// `x-ms-client-request-id` as Azure does); the id is also handed to the
/// audit middleware as a [`RequestId`] extension.
async fn request_id(State(state): State<Shared>, mut req: Request, next: Next) -> Response {
    let client_id = req.headers().get("x-ms-client-request-id").cloned();
    let id = lockstep_crypto::random::request_guid();
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = std::time::Instant::now();
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-ms-request-id", v);
    }
    if let Some(c) = client_id {
        resp.headers_mut().insert("x-ms-client-request-id", c);
    }
    let class = match resp.status().as_u16() {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    state
        .metrics
        .inc("lockstep_http_requests_total", &[("status", class)]);
    // Every request is already recorded in the audit log; this line is for
    // debugging (at `info` it cost a write to stderr per request).
    tracing::debug!(
        request_id = %id,
        %method,
        path = %path,
        status = resp.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    resp
}

async fn metrics(State(state): State<Shared>) -> Response {
    let s = state.clone();
    let rotation = tokio::task::spawn_blocking(move || crate::metrics::rotation(&s))
        .await
        .unwrap_or_default();
    let mut text = state.metrics.render();
    text.push_str(&rotation);
    text.push_str(&crate::metrics::render_events(&state.events.stats()));
    text.push_str(&format!(
        "# HELP lockstep_watched_secrets Secrets with at least one waiting watch request.\n# TYPE lockstep_watched_secrets gauge\nlockstep_watched_secrets {}\n",
        state.vaults.watched_secrets()
    ));
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    )
        .into_response()
}

/// Writes one audit record per request (plus its events) once the response
/// is known, from what authentication, authorization and the handler put
/// in the request's [`AuditHandle`]. If the record cannot be written, the
/// response is replaced by a 500 in the API's error shape: no request
/// succeeds unaudited. A request abandoned by its client is recorded with
/// status 499 when its handler is dropped. See docs/audit.md.
async fn audit(State(state): State<Shared>, mut req: Request, next: Next) -> Response {
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_else(lockstep_crypto::random::guid);
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "-".to_owned(), |c| c.0.to_string());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let vault = host(&req).and_then(|h| vault_of_host(&h, &state.vault_suffix));
    let (route, target) = match &vault {
        Some(v) => (
            keyvault::route_template(&method, &path).to_owned(),
            format!("/vaults/{v}{path}"),
        ),
        None => (
            req.extensions()
                .get::<MatchedPath>()
                .map_or_else(|| "(no route)".to_owned(), |m| m.as_str().to_owned()),
            path.clone(),
        ),
    };
    let api = Api::of(vault.is_some(), &path);
    let handle = AuditHandle::new(
        &request_id,
        &client,
        &method,
        format!("{method} {route}"),
        target,
    );
    req.extensions_mut().insert(handle.clone());
    let mut pending = Pending {
        state: state.clone(),
        handle: Some(handle.clone()),
    };
    let resp = next.run(req).await;
    pending.handle = None;
    let status = resp.status();
    match handle.finish(&state.audit, Some(status)) {
        Ok(()) => resp,
        Err(e) => {
            crate::audit::report(&e, &request_id);
            let changed = handle.may_have_changed() && status.is_success();
            unaudited(api, &request_id, changed)
        }
    }
}

/// Records a request whose handler was dropped before it answered (the
/// client went away).
struct Pending {
    state: Shared,
    handle: Option<AuditHandle>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            if let Err(e) = h.finish(&self.state.audit, None) {
                crate::audit::report(&e, &h.request_id());
            }
        }
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<Shared>) -> Response {
    match state.store.tenant_list() {
        Ok(_) => "ready".into_response(),
        Err(e) => {
            tracing::error!(error = %e, "readiness check failed");
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "store unavailable",
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::vault_of_host;

    #[test]
    fn hosts_select_vaults() {
        let s = "vault.localhost";
        assert_eq!(
            vault_of_host("default.vault.localhost:8443", s),
            Some("default".into())
        );
        assert_eq!(
            vault_of_host("Prod.Vault.Localhost", s),
            Some("prod".into())
        );
        assert_eq!(vault_of_host("localhost:8443", s), None);
        assert_eq!(vault_of_host("vault.localhost", s), None);
        assert_eq!(vault_of_host("a.b.vault.localhost", s), None);
        assert_eq!(vault_of_host("xvault.localhost", s), None);
    }
}
