//! Bearer-token authentication and the authorization check shared by every
//! API. Each API turns an [`AuthFailure`] into its own 401 shape and a
//! [`Refusal`] into its own 403 (or 500). Both record what they decided in
//! the request's [`AuditHandle`].

use std::sync::Arc;

use axum::http::HeaderMap;
use lockstep_identity::{Claims, Denied, Principal, PrincipalKind, Scope, VerifyError};

use crate::audit::AuditHandle;
use crate::state::AppState;

/// Why a request is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization: Bearer …` header.
    Missing,
    /// A token that does not verify.
    Invalid(VerifyError),
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Verifies the request's token for one of `audiences`, and records the
/// principal in the request's audit context.
pub fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    audiences: &[String],
    audit: &AuditHandle,
) -> Result<(Principal, Arc<Claims>), AuthFailure> {
    let token = bearer(headers).ok_or(AuthFailure::Missing)?;
    let mut last = VerifyError::WrongAudience;
    for aud in audiences {
        match state.tokens.verify(token, aud) {
            Ok(claims) => {
                let principal = claims.principal();
                audit.authenticated(&principal);
                if principal.kind == PrincipalKind::User {
                    user_still_active(state, &principal)?;
                }
                return Ok((principal, claims));
            }
            Err(VerifyError::WrongAudience) => continue,
            Err(e) => {
                last = e;
                break;
            }
        }
    }
    Err(AuthFailure::Invalid(last))
}

/// Why [`authorize`] refused.
#[derive(Debug)]
pub enum Refusal {
    /// The principal may not perform the action (403).
    Denied(Denied),
    /// Allowed, but the intent record of this state-changing request could
    /// not be written (already logged), so it must not be performed (500).
    Unaudited,
}

/// The one authorization check: may `principal` perform `action` at
/// `scope`? Records the action, scope and decision in the audit context,
/// and for a state-changing request writes its intent record before the
/// handler makes the change.
pub fn authorize(
    state: &AppState,
    audit: &AuditHandle,
    principal: &Principal,
    action: &str,
    scope: &Scope,
) -> Result<(), Refusal> {
    let decision = state.authz.check(principal, action, scope);
    audit.checked(action, scope.as_str(), decision.is_ok());
    decision.map_err(Refusal::Denied)?;
    audit.intent(&state.audit).map_err(|e| {
        crate::audit::report(&e, &audit.request_id());
        Refusal::Unaudited
    })
}

/// A user's token is honoured only while the user exists and is enabled:
/// disabling or deleting a user cuts its sessions off at once (one indexed
/// read per request, for user tokens only). Fails closed on a store error.
fn user_still_active(state: &AppState, principal: &Principal) -> Result<(), AuthFailure> {
    match state.users.is_active(&principal.object_id) {
        Ok(true) => Ok(()),
        Ok(false) => Err(AuthFailure::Invalid(VerifyError::UserDisabled)),
        Err(e) => {
            tracing::error!(error = %e, "cannot check whether a user is enabled");
            Err(AuthFailure::Invalid(VerifyError::UserDisabled))
        }
    }
}
