//! Entra's token-endpoint error body, and which errors mean "this client
//! secret is no longer (or not yet) the right one".

use serde_json::Value;

/// AADSTS code: invalid client secret.
pub(crate) const INVALID_SECRET: u64 = 7_000_215;
/// AADSTS code: the client secret has expired.
pub(crate) const EXPIRED_SECRET: u64 = 7_000_222;

/// Whether a token endpoint's JSON error body says the client secret used
/// was refused (`invalid_client` with AADSTS7000215 or AADSTS7000222): the
/// case where a consumer should call
/// [`SecretCache::on_auth_failure`](crate::SecretCache::on_auth_failure)
/// and retry with the newer value.
pub fn is_stale_credential_error(body: &Value) -> bool {
    if body["error"].as_str() != Some("invalid_client") {
        return false;
    }
    let by_code = body["error_codes"].as_array().is_some_and(|codes| {
        codes
            .iter()
            .filter_map(Value::as_u64)
            .any(|c| c == INVALID_SECRET || c == EXPIRED_SECRET)
    });
    let by_text = body["error_description"]
        .as_str()
        .is_some_and(|d| d.starts_with("AADSTS7000215") || d.starts_with("AADSTS7000222"));
    by_code || by_text
}

/// An Entra error description without the trace, correlation and
/// timestamp tail.
pub(crate) fn short_description(desc: &str) -> &str {
    desc.split(" Trace ID:").next().unwrap_or(desc).trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bad_and_expired_secrets_are_stale_credentials() {
        for code in [7000215, 7000222] {
            let body = json!({
                "error": "invalid_client",
                "error_description": format!("AADSTS{code}: ... Trace ID: x"),
                "error_codes": [code],
            });
            assert!(is_stale_credential_error(&body), "{code}");
        }
        // Codes alone (some SDKs drop the description) or text alone.
        assert!(is_stale_credential_error(
            &json!({"error": "invalid_client", "error_codes": [7000222]})
        ));
        assert!(is_stale_credential_error(
            &json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."})
        ));
    }

    #[test]
    fn other_errors_are_not() {
        // Unknown application: a new secret would not help.
        assert!(!is_stale_credential_error(&json!({
            "error": "unauthorized_client", "error_codes": [700016]
        })));
        assert!(!is_stale_credential_error(&json!({
            "error": "invalid_client", "error_codes": [7000216]
        })));
        assert!(!is_stale_credential_error(&json!({
            "error": "invalid_request", "error_codes": [7000215]
        })));
        assert!(!is_stale_credential_error(&Value::Null));
    }

    #[test]
    fn descriptions_lose_their_trace_ids() {
        assert_eq!(
            short_description("AADSTS7000215: Invalid. Trace ID: a Correlation ID: b"),
            "AADSTS7000215: Invalid."
        );
        assert_eq!(short_description("plain"), "plain");
    }
}
