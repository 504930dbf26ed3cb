//! Auditing requests: the per-request [`AuditHandle`] that authentication,
//! authorization and handlers fill in, and the records the `routes::audit`
//! middleware writes from it. See docs/audit.md.
//!
//! What goes in is chosen here, field by field: ids, action names, scope
//! paths, status codes and peer addresses. Request bodies, query strings,
//! headers, tokens, client secrets and secret values never do.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lockstep_audit::{
    AuditError, AuditLog, Durability, Entry, Outcome, PrincipalKind, RecordResult, RecordType, NONE,
};
use lockstep_identity::{Principal, PrincipalKind as IdentityKind};
use serde_json::json;

/// The request id given to every request (the `x-ms-request-id` header).
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Message of a request refused because its intent could not be recorded.
pub const NOT_RECORDED: &str =
    "The request could not be recorded in the audit log, so it was not performed.";

/// Message of a change that was made but whose outcome could not be recorded.
pub const OUTCOME_NOT_RECORDED: &str = "The request was performed and its intent was recorded, \
     but its outcome could not be recorded in the audit log, so its response is withheld. \
     Check the resource before retrying.";

/// What the middleware learns about one request.
#[derive(Debug)]
struct AuditContext {
    request_id: String,
    client: String,
    mutating: bool,
    tenant: Option<String>,
    principal: Option<(String, PrincipalKind)>,
    action: String,
    target: String,
    denied: bool,
    intent_written: bool,
    finished: bool,
    events: Vec<(String, String)>,
}

/// The audit context of one request, shared by the middleware and the
/// handler (cheap to clone).
#[derive(Clone, Debug)]
pub struct AuditHandle(Arc<Mutex<AuditContext>>);

impl AuditHandle {
    /// A context for a request; `action` and `target` are what is recorded
    /// when no authorization check names better ones.
    pub fn new(
        request_id: &str,
        client: &str,
        method: &Method,
        action: String,
        target: String,
    ) -> Self {
        Self(Arc::new(Mutex::new(AuditContext {
            request_id: request_id.to_owned(),
            client: client.to_owned(),
            mutating: !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS),
            tenant: None,
            principal: None,
            action,
            target,
            denied: false,
            intent_written: false,
            finished: false,
            events: Vec::new(),
        })))
    }

    fn lock(&self) -> MutexGuard<'_, AuditContext> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the tenant the request concerns (first one wins).
    pub fn tenant(&self, tenant_id: &str) {
        let mut c = self.lock();
        if c.tenant.is_none() {
            c.tenant = Some(tenant_id.to_owned());
        }
    }

    /// Records the authenticated principal (and its tenant).
    pub fn authenticated(&self, p: &Principal) {
        let kind = match p.kind {
            IdentityKind::App => PrincipalKind::App,
            IdentityKind::User => PrincipalKind::User,
        };
        let mut c = self.lock();
        c.principal = Some((p.object_id.clone(), kind));
        if c.tenant.is_none() {
            c.tenant = Some(p.tenant_id.clone());
        }
    }

    /// Records the client id presented at the token endpoint. Anything that
    /// is not shaped like a client id (a GUID) is not recorded, so that a
    /// secret pasted into the wrong field never reaches the log.
    pub fn client_id(&self, client_id: &str) {
        let shown = if is_guid(client_id) {
            client_id.to_ascii_lowercase()
        } else {
            "(not a client id)".to_owned()
        };
        self.lock().principal = Some((shown, PrincipalKind::Client));
    }

    /// Records an authorization check; a denial marks the request denied.
    pub fn checked(&self, action: &str, scope: &str, allowed: bool) {
        let mut c = self.lock();
        c.action = action.to_owned();
        c.target = scope.to_owned();
        c.denied |= !allowed;
    }

    /// Records a credential or secret event, written after the request's
    /// record. `target` names the object (ids and names, never values).
    pub fn event(&self, name: &str, target: String) {
        self.lock().events.push((name.to_owned(), target));
    }

    fn entry(
        c: &AuditContext,
        kind: RecordType,
        action: &str,
        target: &str,
        result: RecordResult,
    ) -> Entry {
        let (principal, principal_kind) = c
            .principal
            .clone()
            .unwrap_or_else(|| (NONE.to_owned(), PrincipalKind::Anonymous));
        Entry {
            kind,
            tenant: c.tenant.clone().unwrap_or_else(|| NONE.to_owned()),
            principal,
            principal_kind,
            action: action.to_owned(),
            target: target.to_owned(),
            result,
            request_id: c.request_id.clone(),
            client: c.client.clone(),
        }
    }

    /// For a state-changing request that passed authorization: writes (and
    /// syncs) an intent record before the change is made. Once per request.
    pub fn intent(&self, log: &AuditLog) -> Result<(), AuditError> {
        let mut c = self.lock();
        if !c.mutating || c.intent_written {
            return Ok(());
        }
        let pending = RecordResult {
            status: None,
            outcome: Outcome::Pending,
        };
        let entry = Self::entry(&c, RecordType::Intent, &c.action, &c.target, pending);
        crate::blocking::in_place(|| log.append(&[entry], Durability::Synced))?;
        c.intent_written = true;
        Ok(())
    }

    /// Writes the request's record (and its events) for the final `status`.
    pub fn finish(&self, log: &AuditLog, status: Option<StatusCode>) -> Result<(), AuditError> {
        let mut c = self.lock();
        if c.finished {
            return Ok(());
        }
        c.finished = true;
        let result = match status {
            Some(s) => RecordResult {
                status: Some(s.as_u16()),
                outcome: if c.denied {
                    Outcome::Denied
                } else {
                    Outcome::of_status(s.as_u16())
                },
            },
            // The client went away before the handler finished (nginx's 499).
            None => RecordResult {
                status: Some(499),
                outcome: Outcome::Failure,
            },
        };
        let mut entries = vec![Self::entry(
            &c,
            RecordType::Request,
            &c.action,
            &c.target,
            result,
        )];
        let event_result = RecordResult {
            status: result.status,
            outcome: Outcome::Success,
        };
        for (name, target) in &c.events {
            entries.push(Self::entry(
                &c,
                RecordType::Event,
                name,
                target,
                event_result,
            ));
        }
        log.append(&entries, Durability::Flushed).map(|_| ())
    }

    /// The request id.
    pub fn request_id(&self) -> String {
        self.lock().request_id.clone()
    }

    /// Whether a change may have been made: a state-changing request whose
    /// intent was recorded.
    pub fn may_have_changed(&self) -> bool {
        let c = self.lock();
        c.mutating && c.intent_written
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AuditHandle {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<AuditHandle>()
            .cloned()
            .ok_or_else(|| {
                tracing::error!("request reached a handler without an audit context");
                unaudited(Api::Management, "-", false)
            })
    }
}

fn is_guid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Which API a request addressed (for the shape of the middleware's own
/// error responses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// The Key Vault data plane.
    KeyVault,
    /// The Graph subset.
    Graph,
    /// The token endpoint, discovery, JWKS.
    Entra,
    /// The management API and everything else.
    Management,
}

impl Api {
    /// The API of a request for a vault host (or not) and `path`.
    pub fn of(vault_host: bool, path: &str) -> Self {
        if vault_host {
            Api::KeyVault
        } else if path.starts_with("/v1.0/") {
            Api::Graph
        } else if path.contains("/oauth2/")
            || path.contains("/discovery/")
            || path.contains("/v2.0/.well-known/")
        {
            Api::Entra
        } else {
            Api::Management
        }
    }
}

/// The 500 answered when a request's record cannot be written, in the
/// shape of the API it addressed. `changed`: the change may have been made.
pub fn unaudited(api: Api, request_id: &str, changed: bool) -> Response {
    let message = if changed {
        OUTCOME_NOT_RECORDED
    } else {
        NOT_RECORDED
    };
    let body = match api {
        Api::KeyVault => json!({"error": {
            "code": "InternalServerError",
            "message": message,
            "innererror": {"code": "AuditLogUnavailable"},
        }}),
        Api::Graph => json!({"error": {
            "code": "InternalServerError",
            "message": message,
            "innerError": {
                "date": lockstep_audit::format_time(time::OffsetDateTime::now_utc()),
                "request-id": request_id,
                "client-request-id": "",
            },
        }}),
        Api::Entra => json!({
            "error": "server_error",
            "error_description": message,
            "error_codes": [],
        }),
        Api::Management => json!({"error": {
            "code": "AuditLogUnavailable",
            "message": message,
        }}),
    };
    (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
}

/// Logs a failed audit write once per request, without request data.
pub fn report(e: &AuditError, request_id: &str) {
    tracing::error!(error = %e, request_id, "audit record could not be written; request refused");
}

#[cfg(test)]
mod tests {
    use super::is_guid;

    #[test]
    fn only_guids_are_client_ids() {
        assert!(is_guid("0f8fad5b-d9cb-469f-a165-70867728950e"));
        assert!(!is_guid("0f8fad5b-d9cb-469f-a165-70867728950"));
        assert!(!is_guid("q9Z~secretlooking.value_1234567890abcdefghijk"));
        assert!(!is_guid("0f8fad5bxd9cb-469f-a165-70867728950e"));
    }
}
