//! Key Vault's error shape, `{"error":{"code","message","innererror"}}`,
//! and the one mapping from domain errors to it.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lockstep_identity::{Denied, VerifyError};
use lockstep_vault::VaultError;
use serde_json::json;

use crate::auth::{AuthFailure, Refusal};

/// A Key Vault error response.
#[derive(Debug)]
pub struct KvError {
    status: StatusCode,
    code: &'static str,
    inner: Option<&'static str>,
    message: String,
    challenge: Option<String>,
}

impl KvError {
    /// 400 BadParameter.
    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadParameter", message)
    }

    /// Any status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            inner: None,
            message: message.into(),
            challenge: None,
        }
    }

    fn inner(mut self, code: &'static str) -> Self {
        self.inner = Some(code);
        self
    }

    /// 401 with the challenge that tells clients where to get a token.
    pub fn unauthorized(failure: &AuthFailure, challenge: String) -> Self {
        let message = match failure {
            AuthFailure::Missing => "AKV10000: Request is missing a Bearer or PoP token.",
            AuthFailure::Invalid(VerifyError::WrongAudience) => "AKV10022: Invalid audience.",
            AuthFailure::Invalid(VerifyError::WrongIssuer) => "AKV10032: Invalid issuer.",
            AuthFailure::Invalid(VerifyError::Expired) => "AKV10017: The token has expired.",
            AuthFailure::Invalid(VerifyError::NotYetValid) => {
                "AKV10018: The token is not yet valid."
            }
            AuthFailure::Invalid(VerifyError::BadSignature) => {
                "AKV10031: The token signature is invalid."
            }
            AuthFailure::Invalid(VerifyError::Malformed) => "AKV10000: The token is malformed.",
            AuthFailure::Invalid(VerifyError::UserDisabled) => {
                "AKV10000: The token's user is disabled or no longer exists."
            }
        };
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", message);
        e.challenge = Some(challenge);
        e
    }

    /// 403 ForbiddenByRbac.
    pub fn denied(d: &Denied) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid={};oid={}\r\nAction: '{}'\r\nResource: '{}'\r\nAssignment: (not found)\r\nVault: {}\r\n",
                d.caller, d.oid, d.action, d.scope, d.scope
            ),
        )
        .inner("ForbiddenByRbac")
    }
}

impl KvError {
    /// 500 when the request's audit record cannot be written.
    pub fn unaudited() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            crate::audit::NOT_RECORDED,
        )
        .inner("AuditLogUnavailable")
    }
}

impl From<Refusal> for KvError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Denied(d) => Self::denied(&d),
            Refusal::Unaudited => Self::unaudited(),
        }
    }
}

impl From<VaultError> for KvError {
    fn from(e: VaultError) -> Self {
        let message = e.to_string();
        match e {
            VaultError::VaultNotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, "VaultNotFound", message)
            }
            VaultError::SecretNotFound(_) | VaultError::DeletedSecretNotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, "SecretNotFound", message)
            }
            VaultError::Disabled(_) => {
                Self::new(StatusCode::FORBIDDEN, "Forbidden", message).inner("SecretDisabled")
            }
            VaultError::DeletedButRecoverable(_) => {
                Self::new(StatusCode::CONFLICT, "Conflict", message)
                    .inner("ObjectIsDeletedButRecoverable")
            }
            VaultError::AlreadyExists(_) => Self::new(StatusCode::CONFLICT, "Conflict", message),
            VaultError::BadParameter(_) => Self::bad(message),
            VaultError::Internal(detail) => {
                tracing::error!(error = %detail, "vault operation failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerError",
                    "An internal error occurred.",
                )
            }
        }
    }
}

impl IntoResponse for KvError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(inner) = self.inner {
            error["innererror"] = json!({"code": inner});
        }
        let mut resp = (self.status, axum::Json(json!({ "error": error }))).into_response();
        if let Some(ch) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, ch);
        }
        resp
    }
}
