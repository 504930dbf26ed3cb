//! What can go wrong talking to Lockstep.

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot be used (bad URL, unreadable CA...).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The server could not be reached, or the connection broke.
    #[error("cannot reach {target}: {detail}")]
    Unreachable {
        /// The URL.
        target: String,
        /// What the transport said.
        detail: String,
    },
    /// The token endpoint refused the reader's credentials or request.
    #[error("token request refused ({status} {error}): {description}")]
    Token {
        /// HTTP status.
        status: u16,
        /// OAuth error (`invalid_client`, ...).
        error: String,
        /// Entra error codes (`7000215`, ...).
        codes: Vec<u64>,
        /// The description, without its trace and correlation ids.
        description: String,
    },
    /// The vault answered with an error.
    #[error("vault error {status} {code}: {message}")]
    Vault {
        /// HTTP status.
        status: u16,
        /// Key Vault error code (`SecretNotFound`, `Forbidden`, ...).
        code: String,
        /// The message.
        message: String,
    },
    /// The server answered something this client does not understand.
    #[error("unexpected response from {target}: {detail}")]
    Protocol {
        /// The URL.
        target: String,
        /// What was wrong.
        detail: String,
    },
}

impl Error {
    /// Whether retrying later can help (network trouble, server errors,
    /// throttling, a secret that does not exist yet), as opposed to a
    /// configuration or permission problem.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. } | Error::Protocol { .. } => true,
            Error::Token { status, .. } => *status >= 500 || *status == 429,
            Error::Vault { status, .. } => *status >= 500 || *status == 429 || *status == 404,
            Error::Config(_) => false,
        }
    }

    /// Whether the vault said the secret does not exist (or is deleted).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Vault { status: 404, .. })
    }

    pub(crate) fn unreachable(target: &str, e: &reqwest::Error) -> Self {
        // reqwest's own message repeats the URL; the causes say what failed.
        let mut causes = Vec::new();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            causes.push(s.to_string());
            source = s.source();
        }
        let detail = if causes.is_empty() {
            e.to_string()
        } else {
            causes.join(": ")
        };
        Error::Unreachable {
            target: target.split('?').next().unwrap_or(target).to_owned(),
            detail,
        }
    }

    pub(crate) fn protocol(target: &str, detail: impl Into<String>) -> Self {
        Error::Protocol {
            target: target.to_owned(),
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_errors_are_worth_retrying() {
        let vault = |status| Error::Vault {
            status,
            code: String::new(),
            message: String::new(),
        };
        assert!(vault(503).is_transient());
        assert!(vault(429).is_transient());
        assert!(vault(404).is_transient());
        assert!(vault(404).is_not_found());
        assert!(!vault(403).is_transient());
        assert!(!Error::Config("x".into()).is_transient());
        let token = Error::Token {
            status: 401,
            error: "invalid_client".into(),
            codes: vec![7000215],
            description: String::new(),
        };
        assert!(!token.is_transient());
    }
}
