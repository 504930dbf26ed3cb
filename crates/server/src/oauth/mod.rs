//! The Microsoft identity platform endpoints: the OAuth2 token endpoint
//! (client credentials), OpenID Connect discovery and the JWKS. Errors use
//! Entra's JSON shape with AADSTS codes.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use lockstep_identity::TokenError;
use serde_json::json;
use zeroize::{Zeroize, Zeroizing};

use crate::audit::AuditHandle;
use crate::state::Shared;

/// Entra's error body for a token-endpoint failure.
struct EntraError(TokenError);

impl IntoResponse for EntraError {
    fn into_response(self) -> Response {
        let e = self.0;
        if let TokenError::Internal(detail) = &e {
            tracing::error!(error = %detail, "token issuance failed");
        }
        let now = time::OffsetDateTime::now_utc();
        let timestamp = now
            .format(&time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]Z"
            ))
            .unwrap_or_default();
        let trace_id = lockstep_crypto::random::guid();
        let correlation_id = lockstep_crypto::random::guid();
        let status = match &e {
            TokenError::InvalidSecret(_) | TokenError::ExpiredSecret(_) => StatusCode::UNAUTHORIZED,
            TokenError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            TokenError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        let body = json!({
            "error": e.error(),
            "error_description": format!("{e} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {timestamp}"),
            "error_codes": [e.code()],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", e.code()),
        });
        let mut resp = (status, Json(body)).into_response();
        if let TokenError::Throttled(secs) = e {
            if let Ok(v) = secs.to_string().parse() {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

/// Client id and secret from HTTP Basic authentication, if present.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, Zeroizing<String>)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = Zeroizing::new(STANDARD.decode(encoded.trim()).ok()?);
    let text = std::str::from_utf8(&decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let decode = |s: &str| percent_decode(s);
    Some((decode(id), Zeroizing::new(decode(secret))))
}

/// RFC 6749 §2.3.1: Basic credentials are form-urlencoded first.
fn percent_decode(s: &str) -> String {
    serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={s}"))
        .ok()
        .and_then(|mut v| v.pop())
        .map(|(_, v)| v)
        .unwrap_or_else(|| s.to_owned())
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub async fn token(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    audit: AuditHandle,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let address = peer.ip().to_string();
    if let Err(t) = state.token_limits.per_address.check(&address) {
        let retry = t.retry_after;
        state
            .metrics
            .inc("lockstep_token_requests_total", &[("result", "throttled")]);
        return EntraError(TokenError::Throttled(retry)).into_response();
    }
    let mut form: Vec<(String, String)> = match serde_urlencoded::from_bytes(&body) {
        Ok(f) => f,
        Err(_) => return EntraError(TokenError::MissingParameter("grant_type")).into_response(),
    };
    if let Ok(mut owned) = body.try_into_mut() {
        owned.as_mut().zeroize();
    }
    let take = |form: &mut Vec<(String, String)>, key: &str| -> Option<String> {
        let i = form.iter().position(|(k, _)| k == key)?;
        Some(std::mem::take(&mut form[i].1))
    };
    let grant = take(&mut form, "grant_type");
    let form_id = take(&mut form, "client_id");
    let form_secret = take(&mut form, "client_secret").map(Zeroizing::new);
    let scope = take(&mut form, "scope");
    for (_, v) in form.iter_mut() {
        v.zeroize();
    }
    let result = (|| {
        let grant = grant.ok_or(TokenError::MissingParameter("grant_type"))?;
        if grant != "client_credentials" {
            return Err(TokenError::UnsupportedGrantType(
                grant.chars().take(64).collect(),
            ));
        }
        let (client_id, secret) = match (basic_credentials(&headers), form_id, form_secret) {
            (Some((id, secret)), _, _) => (id, secret),
            (None, Some(id), Some(secret)) => (id, secret),
            (None, None, _) => return Err(TokenError::MissingParameter("client_id")),
            (None, Some(_), None) => {
                return Err(TokenError::MissingParameter(
                    "client_assertion' or 'client_secret",
                ))
            }
        };
        audit.client_id(&client_id);
        let scope = scope.ok_or(TokenError::MissingParameter("scope"))?;
        state
            .tokens
            .client_credentials(&tenant, &client_id, &secret, &scope)
    })();
    let result = result.map_err(|e| failed_secret(&state, &audit, e, &address));
    let outcome = match &result {
        Ok(_) => "issued",
        Err(TokenError::Throttled(_)) => "throttled",
        Err(TokenError::InvalidSecret(_) | TokenError::ExpiredSecret(_)) => "bad_secret",
        Err(_) => "refused",
    };
    state
        .metrics
        .inc("lockstep_token_requests_total", &[("result", outcome)]);
    if let Ok(Some(t)) = state.directory.tenant(&tenant) {
        audit.tenant(&t.id);
    }
    match result {
        Ok(issued) => {
            let mut resp = Json(json!({
                "token_type": "Bearer",
                "expires_in": issued.expires_in,
                "ext_expires_in": issued.expires_in,
                "access_token": issued.access_token,
            }))
            .into_response();
            resp.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store, no-cache"),
            );
            resp
        }
        Err(e) => EntraError(e).into_response(),
    }
}

/// Accounts for a failed secret: past the per-application allowance the
/// failure is answered with 429 and raises one alert per window. The right
/// secret is never refused on these grounds, so an attacker cannot lock a
/// legitimate client out.
fn failed_secret(state: &Shared, audit: &AuditHandle, e: TokenError, address: &str) -> TokenError {
    let app = match &e {
        TokenError::InvalidSecret(app) | TokenError::ExpiredSecret(app) => app.clone(),
        _ => return e,
    };
    match state.token_limits.failures_per_app.check(&app) {
        Ok(()) => e,
        Err(t) => {
            if t.first {
                state
                    .metrics
                    .inc("lockstep_token_bad_secret_alerts_total", &[]);
                tracing::warn!(app_id = %app, %address, "repeated bad client secrets for this application");
                audit.event(
                    "RepeatedBadClientSecrets",
                    format!("/applications(appId={app})"),
                );
            }
            TokenError::Throttled(t.retry_after)
        }
    }
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`.
pub async fn openid_configuration(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
) -> Response {
    match state.directory.tenant(&tenant) {
        Ok(Some(t)) => {
            let base = state.tokens.authority();
            Json(json!({
                "issuer": state.tokens.issuer(&t.id),
                "token_endpoint": format!("{base}/{}/oauth2/v2.0/token", t.id),
                "authorization_endpoint": format!("{base}/{}/oauth2/v2.0/authorize", t.id),
                "jwks_uri": format!("{base}/{}/discovery/v2.0/keys", t.id),
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                "grant_types_supported": ["client_credentials"],
                "response_types_supported": ["token"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": [".default"],
                "claims_supported": ["aud", "iss", "iat", "nbf", "exp", "tid", "oid", "sub", "appid", "azp", "idtyp", "ver"],
                "tenant_region_scope": null,
                "cloud_instance_name": "lockstep",
            }))
            .into_response()
        }
        Ok(None) => {
            EntraError(TokenError::UnknownTenant(tenant.chars().take(64).collect())).into_response()
        }
        Err(e) => EntraError(TokenError::Internal(e.to_string())).into_response(),
    }
}

/// `GET /{tenant}/discovery/v2.0/keys`: the published signing keys.
pub async fn jwks(State(state): State<Shared>) -> Response {
    let keys: Vec<_> = state
        .tokens
        .jwks()
        .into_iter()
        .map(|k| {
            json!({
                "kty": "RSA",
                "use": "sig",
                "alg": "RS256",
                "kid": k.kid,
                "n": URL_SAFE_NO_PAD.encode(&k.n),
                "e": URL_SAFE_NO_PAD.encode(&k.e),
            })
        })
        .collect();
    Json(json!({ "keys": keys })).into_response()
}
