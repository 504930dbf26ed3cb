//! One audit record: its fields, its canonical line and its two hashes.
//!
//! A record is one line of compact JSON whose fields always appear in the
//! order of [`Record`]. `hash` is the SHA-256 of the record's canonical
//! content (the same JSON without `hash`); `prev` is the SHA-256 of the
//! previous record's whole line, so editing, removing or inserting any line
//! breaks the chain at that line.

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// `prev` of the first record: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Longest value kept for a caller-influenced text field (longer values are
/// cut, so that one request cannot bloat the log).
pub const MAX_FIELD: usize = 512;

/// Placeholder for "unknown" or "nobody" in text fields.
pub const NONE: &str = "-";

/// What a record describes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RecordType {
    /// One HTTP request, written when its response is known.
    Request,
    /// A state-changing request that passed authorization, written (and
    /// fsync'd) before the change is made.
    Intent,
    /// A credential, secret or system event caused by a request or by the
    /// server itself.
    Event,
}

/// Who the principal of a record is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    /// A service principal authenticated by a bearer token.
    App,
    /// A human user authenticated by a bearer token.
    User,
    /// A client presenting its client id at the token endpoint.
    Client,
    /// No (valid) credentials.
    Anonymous,
    /// The server itself (start, stop, log recovery).
    System,
}

/// How a request ended.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// 1xx–3xx.
    Success,
    /// Not authenticated (401) or not authorized (403).
    Denied,
    /// Any other error.
    Failure,
    /// An intent record: the outcome follows in the request record.
    Pending,
}

impl Outcome {
    /// The outcome of a finished request with HTTP `status`.
    pub fn of_status(status: u16) -> Self {
        match status {
            100..=399 => Outcome::Success,
            401 | 403 => Outcome::Denied,
            _ => Outcome::Failure,
        }
    }
}

/// The `result` field.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RecordResult {
    /// HTTP status (null in intent records).
    pub status: Option<u16>,
    /// Success, denied, failure or pending.
    pub outcome: Outcome,
}

/// What a caller asks to be recorded; the log adds `seq`, `time`, `prev`
/// and `hash`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Request, intent or event.
    pub kind: RecordType,
    /// Tenant the record belongs to, or `-`.
    pub tenant: String,
    /// Object id (or client id at the token endpoint), or `-`.
    pub principal: String,
    /// What kind of principal.
    pub principal_kind: PrincipalKind,
    /// Authorization action, event name, or `METHOD /route/{template}`.
    pub action: String,
    /// Scope or resource path (names, never values).
    pub target: String,
    /// Status and outcome.
    pub result: RecordResult,
    /// The request id (`x-ms-request-id`), or `-`.
    pub request_id: String,
    /// Peer address `ip:port`, or `-`.
    pub client: String,
}

impl Entry {
    /// A system event (no request, no principal).
    pub fn system(action: &str, target: &str) -> Self {
        Self {
            kind: RecordType::Event,
            tenant: NONE.into(),
            principal: NONE.into(),
            principal_kind: PrincipalKind::System,
            action: action.into(),
            target: target.into(),
            result: RecordResult {
                status: None,
                outcome: Outcome::Success,
            },
            request_id: NONE.into(),
            client: NONE.into(),
        }
    }
}

/// One line of the audit log.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// 1, 2, 3, … without gaps.
    pub seq: u64,
    /// RFC 3339 UTC with milliseconds, e.g. `2026-05-01T12:00:00.123Z`.
    pub time: String,
    /// Request, intent or event.
    #[serde(rename = "type")]
    pub kind: RecordType,
    /// Tenant id or `-`.
    pub tenant: String,
    /// Object id / client id or `-`.
    pub principal: String,
    /// Kind of principal.
    pub principal_kind: PrincipalKind,
    /// What was done or attempted.
    pub action: String,
    /// On what.
    pub target: String,
    /// Status and outcome.
    pub result: RecordResult,
    /// Request id or `-`.
    pub request_id: String,
    /// Peer address or `-`.
    pub client: String,
    /// Hex SHA-256 of the previous record's line ([`GENESIS`] for the first).
    pub prev: String,
    /// Hex SHA-256 of this record's canonical content (everything but `hash`).
    pub hash: String,
}

/// The hashed content: [`Record`] without `hash`, fields in the same order.
#[derive(Serialize)]
struct Content<'a> {
    seq: u64,
    #[serde(flatten)]
    middle: Middle<'a>,
    prev: &'a str,
}

/// The fields of [`Content`] between `seq` and `prev`, in the same order.
#[derive(Serialize)]
struct Middle<'a> {
    time: &'a str,
    #[serde(rename = "type")]
    kind: RecordType,
    tenant: &'a str,
    principal: &'a str,
    principal_kind: PrincipalKind,
    action: &'a str,
    target: &'a str,
    result: RecordResult,
    request_id: &'a str,
    client: &'a str,
}

/// A record encoded up to its place in the chain (see [`Record::prepare`]).
pub struct Prepared {
    middle: Vec<u8>,
}

impl Prepared {
    /// The canonical line (without the newline) of this record as number
    /// `seq` chained to `prev` (a hex hash), byte for byte what
    /// [`Record::line`] gives for the sealed record, and the record's hash.
    pub fn line(&self, seq: u64, prev: &str) -> (Vec<u8>, String) {
        let mut line = Vec::with_capacity(self.middle.len() + prev.len() + 128);
        line.extend_from_slice(b"{\"seq\":");
        line.extend_from_slice(seq.to_string().as_bytes());
        line.push(b',');
        line.extend_from_slice(&self.middle);
        line.extend_from_slice(b",\"prev\":\"");
        line.extend_from_slice(prev.as_bytes());
        line.extend_from_slice(b"\"}");
        let hash = sha256_hex(&line);
        line.pop();
        line.extend_from_slice(b",\"hash\":\"");
        line.extend_from_slice(hash.as_bytes());
        line.extend_from_slice(b"\"}");
        (line, hash)
    }
}

impl Record {
    fn content(&self) -> Content<'_> {
        Content {
            seq: self.seq,
            middle: Middle {
                time: &self.time,
                kind: self.kind,
                tenant: &self.tenant,
                principal: &self.principal,
                principal_kind: self.principal_kind,
                action: &self.action,
                target: &self.target,
                result: self.result,
                request_id: &self.request_id,
                client: &self.client,
            },
            prev: &self.prev,
        }
    }

    /// Builds record `seq` from `entry`, chained to `prev`, sealed with its hash.
    pub fn seal(
        entry: &Entry,
        seq: u64,
        time: OffsetDateTime,
        prev: &str,
    ) -> Result<Self, serde_json::Error> {
        let mut record = Record {
            seq,
            time: format_time(time),
            kind: entry.kind,
            tenant: clip(&entry.tenant),
            principal: clip(&entry.principal),
            principal_kind: entry.principal_kind,
            action: clip(&entry.action),
            target: clip(&entry.target),
            result: entry.result,
            request_id: clip(&entry.request_id),
            client: clip(&entry.client),
            prev: prev.to_owned(),
            hash: String::new(),
        };
        record.hash = record.content_hash()?;
        Ok(record)
    }

    /// Prepares the record of `entry` at `time` up to its place in the
    /// chain (`seq` and `prev`), which only the log's writer knows: the
    /// costly part (clipping, time formatting, JSON encoding) is done
    /// before taking the writer's lock.
    pub fn prepare(entry: &Entry, time: OffsetDateTime) -> Result<Prepared, serde_json::Error> {
        let middle = Middle {
            time: &format_time(time),
            kind: entry.kind,
            tenant: &clip(&entry.tenant),
            principal: &clip(&entry.principal),
            principal_kind: entry.principal_kind,
            action: &clip(&entry.action),
            target: &clip(&entry.target),
            result: entry.result,
            request_id: &clip(&entry.request_id),
            client: &clip(&entry.client),
        };
        let mut json = serde_json::to_vec(&middle)?;
        // `{...}` → `...`: the fields between `seq` and `prev`.
        json.pop();
        json.remove(0);
        Ok(Prepared { middle: json })
    }

    /// Hex SHA-256 of the canonical content (what `hash` must equal).
    pub fn content_hash(&self) -> Result<String, serde_json::Error> {
        let content = serde_json::to_vec(&self.content())?;
        Ok(sha256_hex(&content))
    }

    /// The canonical line (without the newline).
    pub fn line(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// The record's time as Unix nanoseconds, if it parses.
    pub fn unix_nanos(&self) -> Option<i128> {
        parse_time(&self.time).map(OffsetDateTime::unix_timestamp_nanos)
    }
}

/// Why one line is not a valid record (chain links are checked by the caller).
pub(crate) fn check_line(line: &[u8]) -> Result<Record, String> {
    let record: Record =
        serde_json::from_slice(line).map_err(|e| format!("not a valid audit record ({e})"))?;
    let canonical = record
        .line()
        .map_err(|e| format!("cannot re-encode the record ({e})"))?;
    if canonical != line {
        return Err("not in canonical form (the line was edited)".into());
    }
    let hash = record
        .content_hash()
        .map_err(|e| format!("cannot hash the record ({e})"))?;
    if hash != record.hash {
        return Err("hash does not match the record's content (the record was edited)".into());
    }
    Ok(record)
}

/// The `seq` a line claims, read leniently (for error reports on lines that
/// are not valid records).
pub(crate) fn claimed_seq(line: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(line)
        .ok()?
        .get("seq")?
        .as_u64()
}

/// Hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = digest::digest(&digest::SHA256, bytes);
    let mut out = String::with_capacity(64);
    for b in d.as_ref() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Formats a time as fixed-width RFC 3339 UTC with milliseconds.
pub fn format_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Parses an RFC 3339 time.
pub fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_FIELD) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn entry() -> Entry {
        Entry {
            kind: RecordType::Request,
            tenant: "t1".into(),
            principal: "oid-1".into(),
            principal_kind: PrincipalKind::App,
            action: "Microsoft.KeyVault/vaults/secrets/getSecret/action".into(),
            target: "/tenants/t1/vaults/default/secrets/db".into(),
            result: RecordResult {
                status: Some(200),
                outcome: Outcome::Success,
            },
            request_id: "r-1".into(),
            client: "127.0.0.1:5000".into(),
        }
    }

    #[test]
    fn prepared_lines_are_the_sealed_records_lines() {
        let t = OffsetDateTime::from_unix_timestamp(1_800_000_123).unwrap();
        let mut odd = entry();
        // Escapes, non-ASCII, a field clipped at its limit, no status.
        odd.target = format!("/a\"b\\c\n\u{1}é{}", "x".repeat(MAX_FIELD * 2));
        odd.principal = "ünïcødé ✓".into();
        odd.result = RecordResult {
            status: None,
            outcome: Outcome::Pending,
        };
        for e in [entry(), odd] {
            for (seq, prev) in [(1, GENESIS), (987_654_321, "ab".repeat(32).as_str())] {
                let record = Record::seal(&e, seq, t, prev).unwrap();
                let sealed = record.line().unwrap();
                let (prepared, hash) = Record::prepare(&e, t).unwrap().line(seq, prev);
                assert_eq!(hash, record.hash);
                assert_eq!(
                    String::from_utf8(prepared.clone()).unwrap(),
                    String::from_utf8(sealed).unwrap()
                );
                check_line(&prepared).unwrap();
            }
        }
    }

    #[test]
    fn sealed_records_check_and_are_canonical() {
        let t = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let r = Record::seal(&entry(), 1, t, GENESIS).unwrap();
        let line = r.line().unwrap();
        assert_eq!(check_line(&line).unwrap(), r);
        let text = String::from_utf8(line).unwrap();
        assert!(text.starts_with(r#"{"seq":1,"time":"2027-01-15T08:00:00.000Z","type":"request","#));
        assert!(text.ends_with(&format!(r#","prev":"{GENESIS}","hash":"{}"}}"#, r.hash)));
    }

    #[test]
    fn any_changed_byte_is_caught_by_the_line_check() {
        let t = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let line = Record::seal(&entry(), 7, t, GENESIS)
            .unwrap()
            .line()
            .unwrap();
        for i in 0..line.len() {
            let mut edited = line.clone();
            edited[i] = if edited[i] == b'x' { b'y' } else { b'x' };
            assert!(check_line(&edited).is_err(), "byte {i} edit not caught");
        }
    }

    #[test]
    fn long_fields_are_clipped_and_control_characters_escaped() {
        let mut e = entry();
        e.target = "a\nb".repeat(400);
        let r = Record::seal(&e, 1, OffsetDateTime::UNIX_EPOCH, GENESIS).unwrap();
        assert_eq!(r.target.chars().count(), MAX_FIELD + 1);
        let line = r.line().unwrap();
        assert!(!line.contains(&b'\n'));
    }

    #[test]
    fn sha256_matches_a_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
