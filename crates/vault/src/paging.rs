//! Opaque continuation markers for list operations.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// One page of results and the marker for the next, if any.
#[derive(Debug)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<PageMarker>,
}

/// Where a listing resumes: after a secret name key or a version sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageMarker {
    /// Resume after this (lowercased) secret name.
    AfterName(String),
    /// Resume after this version sequence number.
    AfterSeq(i64),
}

impl PageMarker {
    /// Encodes the marker as an opaque `$skiptoken`.
    pub fn encode(&self) -> String {
        let raw = match self {
            PageMarker::AfterName(n) => format!("n:{n}"),
            PageMarker::AfterSeq(s) => format!("s:{s}"),
        };
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Decodes a `$skiptoken`; a token that Lockstep did not produce is a
    /// client error.
    pub fn decode(token: &str) -> Result<Self, crate::VaultError> {
        let bad = || crate::VaultError::BadParameter("The $skiptoken is invalid.".into());
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        match raw.split_once(':') {
            Some(("n", name)) if lockstep_core::SecretName::parse(name).is_ok() => {
                Ok(PageMarker::AfterName(name.to_owned()))
            }
            Some(("s", seq)) => seq.parse().map(PageMarker::AfterSeq).map_err(|_| bad()),
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_reject_garbage() {
        for m in [
            PageMarker::AfterName("abc-1".into()),
            PageMarker::AfterSeq(42),
        ] {
            assert_eq!(PageMarker::decode(&m.encode()).ok(), Some(m));
        }
        assert!(PageMarker::decode("!!").is_err());
        assert!(PageMarker::decode(&URL_SAFE_NO_PAD.encode("x:1")).is_err());
        assert!(PageMarker::decode(&URL_SAFE_NO_PAD.encode("n:bad name")).is_err());
    }
}
