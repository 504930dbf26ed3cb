//! A secret version's attributes and the limits Key Vault puts on them.

use std::collections::BTreeMap;

/// Tags on a secret version (Key Vault allows at most 15).
pub type Tags = BTreeMap<String, String>;

/// The Key Vault limits that Lockstep enforces on every write.
pub struct SecretLimits;

impl SecretLimits {
    /// Largest secret value, in bytes.
    pub const MAX_VALUE_BYTES: usize = 25 * 1024;
    /// Most tags on one version.
    pub const MAX_TAGS: usize = 15;
    /// Longest tag name or value, in characters.
    pub const MAX_TAG_CHARS: usize = 256;
    /// Longest content type, in characters.
    pub const MAX_CONTENT_TYPE_CHARS: usize = 255;
    /// Days a deleted secret stays recoverable.
    pub const RECOVERABLE_DAYS: i64 = 90;

    /// Checks tags against the limits; the error is a client-facing message.
    pub fn check_tags(tags: &Tags) -> Result<(), String> {
        if tags.len() > Self::MAX_TAGS {
            return Err(format!(
                "Tags may have at most {} entries, got {}.",
                Self::MAX_TAGS,
                tags.len()
            ));
        }
        for (k, v) in tags {
            if k.is_empty() || k.chars().count() > Self::MAX_TAG_CHARS {
                return Err(format!(
                    "Tag names must be 1-{} characters long.",
                    Self::MAX_TAG_CHARS
                ));
            }
            if v.chars().count() > Self::MAX_TAG_CHARS {
                return Err(format!(
                    "Tag values must be at most {} characters long.",
                    Self::MAX_TAG_CHARS
                ));
            }
        }
        Ok(())
    }

    /// Checks a content type against the limit.
    pub fn check_content_type(ct: &str) -> Result<(), String> {
        if ct.chars().count() > Self::MAX_CONTENT_TYPE_CHARS {
            return Err(format!(
                "contentType must be at most {} characters long.",
                Self::MAX_CONTENT_TYPE_CHARS
            ));
        }
        Ok(())
    }
}

/// The attributes of one secret version; times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretAttributes {
    /// Whether the value may be read.
    pub enabled: bool,
    /// Not valid before (informational, as in Key Vault).
    pub nbf: Option<i64>,
    /// Expiry (informational, as in Key Vault).
    pub exp: Option<i64>,
    /// When the version was created.
    pub created: i64,
    /// When the version was last updated.
    pub updated: i64,
}
