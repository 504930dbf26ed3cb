//! Bearer-token authentication shared by every API. Each API turns an
//! [`AuthFailure`] into its own 401 shape.

use std::sync::Arc;

use axum::http::HeaderMap;
use lockstep_identity::{Claims, Principal, VerifyError};

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

/// Verifies the request's token for one of `audiences`.
pub fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    audiences: &[String],
) -> Result<(Principal, Arc<Claims>), AuthFailure> {
    let token = bearer(headers).ok_or(AuthFailure::Missing)?;
    let mut last = VerifyError::WrongAudience;
    for aud in audiences {
        match state.tokens.verify(token, aud) {
            Ok(claims) => return Ok((claims.principal(), claims)),
            Err(VerifyError::WrongAudience) => continue,
            Err(e) => {
                last = e;
                break;
            }
        }
    }
    Err(AuthFailure::Invalid(last))
}
