//! Searching the log: filters on principal, action, target prefix, time
//! range and tenant, paged by `seq` (`after` + `limit`).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use time::OffsetDateTime;

use crate::record::Record;
use crate::verify::MAX_LINE;

/// Largest page a query returns.
pub const MAX_LIMIT: usize = 1000;

/// What to look for. Empty filters match everything.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Exact principal (object id or client id).
    pub principal: Option<String>,
    /// Action, case-insensitive; a trailing `*` matches a prefix.
    pub action: Option<String>,
    /// Target prefix, on path-segment boundaries (`/tenants/t1/vaults/a`
    /// matches `/tenants/t1/vaults/a/secrets/x`, not `/tenants/t1/vaults/ab`).
    pub target: Option<String>,
    /// Only records at or after this time.
    pub from: Option<OffsetDateTime>,
    /// Only records before this time.
    pub to: Option<OffsetDateTime>,
    /// Only records of this tenant, and records that belong to no tenant.
    pub tenant: Option<String>,
    /// Only records with a larger `seq` (paging).
    pub after: Option<u64>,
    /// Page size (1–[`MAX_LIMIT`]; 0 means 100).
    pub limit: usize,
}

/// One page of results.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// Matching records, in `seq` order.
    pub records: Vec<Record>,
    /// Pass as `after` to get the next page; none on the last page.
    pub next_after: Option<u64>,
}

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The file cannot be read.
    #[error("cannot read the audit log: {0}")]
    Io(#[from] std::io::Error),
    /// A line is not a record.
    #[error("line {0} of the audit log is not a valid record; run `lockstep audit verify`")]
    Unreadable(u64),
}

impl Filter {
    fn limit(&self) -> usize {
        match self.limit {
            0 => 100,
            n => n.min(MAX_LIMIT),
        }
    }

    fn matches(&self, r: &Record) -> bool {
        if self.principal.as_ref().is_some_and(|p| *p != r.principal) {
            return false;
        }
        if let Some(a) = &self.action {
            let ok = match a.strip_suffix('*') {
                Some(prefix) => r
                    .action
                    .get(..prefix.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(prefix)),
                None => r.action.eq_ignore_ascii_case(a),
            };
            if !ok {
                return false;
            }
        }
        if let Some(t) = &self.target {
            let t = t.trim_end_matches('/');
            let ok = t.is_empty()
                || r.target
                    .get(..t.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(t))
                    && matches!(r.target.as_bytes().get(t.len()), None | Some(b'/'));
            if !ok {
                return false;
            }
        }
        if let Some(tenant) = &self.tenant {
            if r.tenant != *tenant && r.tenant != crate::record::NONE {
                return false;
            }
        }
        if self.from.is_some() || self.to.is_some() {
            let Some(t) = r.unix_nanos() else {
                return false;
            };
            if self.from.is_some_and(|f| t < f.unix_timestamp_nanos())
                || self.to.is_some_and(|to| t >= to.unix_timestamp_nanos())
            {
                return false;
            }
        }
        true
    }
}

/// Queries the audit log at `path` (offline).
pub fn query_file(path: &Path, filter: &Filter) -> Result<Page, QueryError> {
    let file = std::fs::File::open(path)?;
    query_reader(BufReader::with_capacity(64 * 1024, file), filter)
}

/// The `seq` at the start of a canonical line, without parsing all of it.
fn leading_seq(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(b"{\"seq\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// Queries an audit log read from `reader`. An incomplete last line (a
/// write in progress, or a crash) is ignored.
pub fn query_reader(mut reader: impl BufRead, filter: &Filter) -> Result<Page, QueryError> {
    let limit = filter.limit();
    let mut page = Page::default();
    let mut buf = Vec::with_capacity(1024);
    let mut line_no = 0u64;
    loop {
        buf.clear();
        (&mut reader)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut buf)?;
        let Some(line) = buf.strip_suffix(b"\n") else {
            return Ok(page);
        };
        line_no += 1;
        if let (Some(after), Some(seq)) = (filter.after, leading_seq(line)) {
            if seq <= after {
                continue;
            }
        }
        let record: Record =
            serde_json::from_slice(line).map_err(|_| QueryError::Unreadable(line_no))?;
        if filter.after.is_some_and(|a| record.seq <= a) || !filter.matches(&record) {
            continue;
        }
        if page.records.len() == limit {
            page.next_after = page.records.last().map(|r| r.seq);
            return Ok(page);
        }
        page.records.push(record);
    }
}
