//! `lockstep audit …`: check the audit log's hash chain (offline, on the
//! file) and search it through the management API.

use std::path::PathBuf;

use clap::Subcommand;
use lockstep_audit::{VerifyError, AUDIT_FILE};
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{CliResult, ConnectArgs, Connection};
use crate::output;

const RESOURCE: &str = "api://lockstep";

/// Audit commands.
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of an audit log file; fails naming the first
    /// broken record. Works offline (no server needed).
    Verify {
        /// The log file (default: <data-dir>/audit.log).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Ask the running server to verify the file it writes to instead
        /// (this also detects records removed from the end).
        #[arg(long, conflicts_with = "file")]
        remote: bool,
    },
    /// Search the audit log through the server's API.
    Query {
        /// Principal: object id (or client id for token requests).
        #[arg(long)]
        principal: Option<String>,
        /// Action, e.g. Microsoft.KeyVault/vaults/secrets/getSecret/action;
        /// a trailing * matches a prefix.
        #[arg(long)]
        action: Option<String>,
        /// Target prefix, e.g. /tenants/<id>/vaults/default.
        #[arg(long)]
        target: Option<String>,
        /// From: RFC 3339, a date, or a time ago (30m, 12h, 7d).
        #[arg(long)]
        since: Option<String>,
        /// Until (exclusive): RFC 3339, a date, or a time ago.
        #[arg(long)]
        until: Option<String>,
        /// Only records after this sequence number.
        #[arg(long)]
        after: Option<u64>,
        /// Most records to show.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

/// Runs an audit command.
pub async fn run(args: ConnectArgs, command: AuditCommand) -> CliResult<()> {
    match command {
        AuditCommand::Verify {
            file: _,
            remote: true,
        } => verify_remote(&args).await,
        AuditCommand::Verify {
            file,
            remote: false,
        } => {
            let path = file.unwrap_or_else(|| args.data_dir().join(AUDIT_FILE));
            verify_file(&path, args.json)
        }
        AuditCommand::Query {
            principal,
            action,
            target,
            since,
            until,
            after,
            limit,
        } => {
            let mut params: Vec<(&str, String)> = Vec::new();
            for (key, value) in [
                ("principal", principal),
                ("action", action),
                ("target", target),
            ] {
                if let Some(v) = value {
                    params.push((key, v));
                }
            }
            if let Some(s) = since {
                params.push(("from", time_arg(&s)?));
            }
            if let Some(u) = until {
                params.push(("to", time_arg(&u)?));
            }
            query(&args, params, after, limit).await
        }
    }
}

fn verify_file(path: &std::path::Path, json: bool) -> CliResult<()> {
    match lockstep_audit::verify(path) {
        Ok(r) => {
            if json {
                output::json(&json!({
                    "valid": true,
                    "file": path.display().to_string(),
                    "records": r.records,
                    "lastSeq": r.last_seq,
                    "lastHash": r.last_hash,
                }));
            } else {
                let last = match (r.last_seq, &r.last_hash) {
                    (Some(seq), Some(hash)) => format!(", last seq {seq}, last hash {hash}"),
                    _ => String::new(),
                };
                println!(
                    "Audit log {} is intact: {} records{last}.",
                    path.display(),
                    r.records
                );
            }
            Ok(())
        }
        Err(VerifyError::Broken(b)) => {
            if json {
                output::json(&json!({
                    "valid": false,
                    "file": path.display().to_string(),
                    "brokenAt": {"line": b.line, "seq": b.seq, "reason": b.reason},
                }));
            }
            Err(format!("audit log {} is broken at {b}", path.display()))
        }
        Err(VerifyError::Io(e)) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

async fn verify_remote(args: &ConnectArgs) -> CliResult<()> {
    let conn = Connection::open(args).await?;
    let url = format!("{}/lockstep/v1/audit/verify", conn.server());
    let v = conn.expect(RESOURCE, Method::GET, &url, None).await?;
    if args.json {
        output::json(&v);
    }
    if v["valid"].as_bool() == Some(true) {
        if !args.json {
            println!(
                "The server's audit log is intact: {} records, last seq {}, last hash {}.",
                output::text(&v["records"]),
                output::text(&v["lastSeq"]),
                output::text(&v["lastHash"])
            );
        }
        Ok(())
    } else {
        let b = &v["brokenAt"];
        let seq = b["seq"]
            .as_u64()
            .map_or_else(|| "unreadable".to_owned(), |s| s.to_string());
        Err(format!(
            "the server's audit log is broken at line {} (seq {seq}): {}",
            output::text(&b["line"]),
            output::text(&b["reason"])
        ))
    }
}

async fn query(
    args: &ConnectArgs,
    params: Vec<(&str, String)>,
    after: Option<u64>,
    limit: usize,
) -> CliResult<()> {
    if limit == 0 {
        return Err("--limit must be at least 1".into());
    }
    let conn = Connection::open(args).await?;
    let mut first = params;
    if let Some(a) = after {
        first.push(("after", a.to_string()));
    }
    first.push(("limit", limit.min(lockstep_audit::MAX_LIMIT).to_string()));
    let mut url =
        reqwest::Url::parse_with_params(&format!("{}/lockstep/v1/audit", conn.server()), &first)
            .map_err(|e| format!("invalid query: {e}"))?
            .to_string();
    let mut records: Vec<Value> = Vec::new();
    let has_next = loop {
        let page = conn.expect(RESOURCE, Method::GET, &url, None).await?;
        records.extend(page["value"].as_array().into_iter().flatten().cloned());
        match page["nextLink"].as_str() {
            Some(next) if records.len() < limit => url = next.to_owned(),
            Some(_) => break true,
            None => break false,
        }
    };
    let truncated = records.len() > limit;
    records.truncate(limit);
    let more = (has_next || truncated)
        .then(|| records.last().and_then(|r| r["seq"].as_u64()))
        .flatten();
    if args.json {
        let mut out = json!({ "value": records });
        if let Some(seq) = more {
            out["nextAfter"] = json!(seq);
        }
        output::json(&out);
        return Ok(());
    }
    let rows = records
        .iter()
        .map(|r| {
            vec![
                output::text(&r["seq"]),
                output::text(&r["time"]),
                output::text(&r["type"]),
                format!(
                    "{} ({})",
                    output::text(&r["principal"]),
                    output::text(&r["principal_kind"])
                ),
                output::text(&r["action"]),
                output::text(&r["target"]),
                match r["result"]["status"].as_u64() {
                    Some(s) => format!("{s} {}", output::text(&r["result"]["outcome"])),
                    None => output::text(&r["result"]["outcome"]),
                },
            ]
        })
        .collect();
    output::table(
        &[
            "Seq",
            "Time",
            "Type",
            "Principal",
            "Action",
            "Target",
            "Result",
        ],
        rows,
    );
    if let Some(seq) = more {
        println!("More records follow: add --after {seq}.");
    }
    Ok(())
}

/// An RFC 3339 time from RFC 3339, a date, or `<n>m|h|d` ago.
fn time_arg(raw: &str) -> CliResult<String> {
    let ago = raw
        .strip_suffix('m')
        .map(|n| (n, 60))
        .or_else(|| raw.strip_suffix('h').map(|n| (n, 3600)))
        .or_else(|| raw.strip_suffix('d').map(|n| (n, 86_400)))
        .and_then(|(n, unit)| n.parse::<i64>().ok().map(|n| n * unit));
    let unix = match ago {
        Some(secs) => time::OffsetDateTime::now_utc().unix_timestamp() - secs,
        None => output::parse_time(raw).map_err(|_| {
            format!(
                "invalid time '{raw}': use RFC 3339 (2026-05-01T12:00:00Z), a date (2026-05-01) or a time ago (30m, 12h, 7d)"
            )
        })?,
    };
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .ok_or_else(|| format!("invalid time '{raw}'"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::time_arg;

    #[test]
    fn times_are_absolute_dates_or_ago() {
        assert_eq!(time_arg("2026-05-01").unwrap(), "2026-05-01T00:00:00Z");
        assert_eq!(
            time_arg("2026-05-01T12:30:00Z").unwrap(),
            "2026-05-01T12:30:00Z"
        );
        let ago = time::OffsetDateTime::parse(
            &time_arg("2d").unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let diff = time::OffsetDateTime::now_utc() - ago;
        assert!((diff.whole_seconds() - 2 * 86_400).abs() < 5);
        assert!(time_arg("yesterday").is_err());
    }
}
