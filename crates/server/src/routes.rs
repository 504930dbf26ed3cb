//! Routing: requests for `{vault}.{vault_suffix}` go to the Key Vault data
//! plane; everything else to the identity, management and operations routes.

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

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
        .route("/v1.0/{*rest}", axum::routing::any(graph::handle))
        .fallback(management::not_found)
        .layer(middleware::from_fn_with_state(state.clone(), by_host))
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

async fn by_host(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    match host.and_then(|h| vault_of_host(&h, &state.vault_suffix)) {
        Some(vault) => keyvault::handle(state, vault, req).await,
        None => next.run(req).await,
    }
}

/// Gives every response an `x-ms-request-id` (echoing the client's
/// `x-ms-client-request-id` as Azure does).
async fn request_id(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let client_id = req.headers().get("x-ms-client-request-id").cloned();
    let id = lockstep_crypto::random::guid();
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
    tracing::info!(
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
    let mut text = state.metrics.render();
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
