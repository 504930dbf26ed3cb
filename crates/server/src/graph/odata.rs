//! The small part of OData that the Graph subset understands: `$filter`
//! equality, ISO 8601 date-times, and query encoding.

use super::GraphError;

/// Parses `field eq 'value'` (with `''` as an escaped quote).
pub fn parse_filter(raw: &str) -> Result<(String, String), GraphError> {
    let bad = || {
        GraphError::bad(format!(
            "Invalid filter clause: {}",
            raw.chars().take(120).collect::<String>()
        ))
    };
    let (field, rest) = raw.trim().split_once(' ').ok_or_else(bad)?;
    let rest = rest.trim_start();
    let value = rest.strip_prefix("eq").ok_or_else(bad)?.trim();
    let inner = value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .ok_or_else(bad)?;
    if inner.replace("''", "").contains('\'') {
        return Err(bad());
    }
    if !field.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(bad());
    }
    Ok((field.to_owned(), inner.replace("''", "'")))
}

/// Unix seconds as Graph's ISO 8601 (`2026-11-27T04:12:44Z`).
pub fn iso(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// Parses an ISO 8601 date-time (RFC 3339, optional fraction) to Unix seconds.
pub fn parse_iso(raw: &str) -> Option<i64> {
    time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// Percent-decodes a path (OData keys arrive as `(appId=%27…%27)`).
pub fn decode_path(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&raw[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a query value.
pub fn encode(v: &str) -> String {
    serde_urlencoded::to_string([("v", v)])
        .map(|s| s.trim_start_matches("v=").to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse() {
        assert_eq!(
            parse_filter("displayName eq 'Azure Communications Gateway service'").ok(),
            Some((
                "displayName".into(),
                "Azure Communications Gateway service".into()
            ))
        );
        assert_eq!(
            parse_filter("displayName eq 'O''Brien'").ok(),
            Some(("displayName".into(), "O'Brien".into()))
        );
        for bad in [
            "displayName",
            "displayName ne 'x'",
            "displayName eq x",
            "x eq 'a'b'",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_decode() {
        assert_eq!(
            decode_path("applications(appId=%27ab%27)"),
            "applications(appId='ab')"
        );
        assert_eq!(decode_path("a%2"), "a%2");
    }

    #[test]
    fn times_round_trip() {
        assert_eq!(parse_iso(&iso(1_795_752_764)), Some(1_795_752_764));
        assert_eq!(parse_iso("2026-11-27T04:12:44.5Z"), Some(1_795_752_764));
    }
}
