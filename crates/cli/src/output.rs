//! Printing results: tables for people, JSON for scripts.

use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
use serde_json::Value;

/// Prints `value` as pretty JSON.
pub fn json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// Prints rows under a header.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    for r in rows {
        t.add_row(r);
    }
    println!("{t}");
}

/// Prints field/value pairs.
pub fn fields(pairs: Vec<(&str, String)>) {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    for (k, v) in pairs {
        t.add_row(vec![k.to_owned(), v]);
    }
    println!("{t}");
}

/// A Unix time as RFC 3339 (or empty).
pub fn time(v: &Value) -> String {
    v.as_i64()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// A JSON string (or empty).
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Tags as `k=v, …`.
pub fn tags(v: &Value) -> String {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// Parses an RFC 3339 time (or `+70d`-style offset from now) to Unix seconds.
pub fn parse_time(raw: &str) -> Result<i64, String> {
    if let Some(days) = raw.strip_prefix('+').and_then(|r| r.strip_suffix('d')) {
        let d: i64 = days.parse().map_err(|_| format!("invalid time '{raw}'"))?;
        return Ok(time::OffsetDateTime::now_utc().unix_timestamp() + d * 86_400);
    }
    if let Ok(t) = time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
    {
        return Ok(t.unix_timestamp());
    }
    if let Ok(d) = time::Date::parse(
        raw,
        &time::macros::format_description!("[year]-[month]-[day]"),
    ) {
        return Ok(d.midnight().assume_utc().unix_timestamp());
    }
    Err(format!(
        "invalid time '{raw}': use RFC 3339 (2027-02-05T00:00:00Z), a date (2027-02-05) or +Nd"
    ))
}
