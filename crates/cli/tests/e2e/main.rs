//! End-to-end tests: each test starts the real `lockstep serve` (through
//! `lockstep-testkit`) on a free port with its own temporary data directory
//! and talks to it over TLS, as a client would.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod abuse;
mod agent;
mod at_rest;
mod audit;
mod auth;
mod backup;
mod cli;
mod client;
mod consumers;
mod events;
mod management;
mod paging;
mod persistence;
mod rbac;
mod rotation;
mod seed;
mod soak;
mod startup;
mod token_endpoint;
mod users;
mod vault_api;
mod watch;

use std::collections::HashSet;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use lockstep_testkit::Server;
use reqwest::Method;
use serde_json::{json, Value};

/// The api-version the tests use unless they test api-versions.
pub const API: &str = "7.6";

/// A data-plane client of one vault of a server, with a vault token.
pub struct Kv<'a> {
    pub server: &'a Server,
    pub base: String,
    pub token: String,
}

impl<'a> Kv<'a> {
    /// The `default` vault, as the bootstrap admin.
    pub async fn new(server: &'a Server) -> Kv<'a> {
        Self::of(server, "default").await
    }

    /// Vault `vault`, as the bootstrap admin.
    pub async fn of(server: &'a Server, vault: &str) -> Kv<'a> {
        Kv {
            server,
            base: server.vault_url(vault),
            token: server.vault_token().await,
        }
    }

    /// `{base}{path}` with `api-version` appended.
    pub fn url(&self, path: &str) -> String {
        with_api(&format!("{}{path}", self.base))
    }

    /// Sends a request; returns the status and the body.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, _, body) = self
            .server
            .send(method, &self.url(path), Some(&self.token), body.as_ref())
            .await;
        (status, body)
    }

    /// Sends a raw body; returns the status and the body.
    pub async fn call_raw(&self, method: Method, path: &str, body: &[u8]) -> (u16, Value) {
        let (status, _, body) = self
            .server
            .send_bytes(
                method,
                &self.url(path),
                Some(&self.token),
                Some(body.to_vec()),
            )
            .await;
        (status, body)
    }

    /// Sends a request that must succeed with 200; returns the body.
    pub async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method.clone(), path, body).await;
        assert_eq!(status, 200, "{method} {path}: {v}");
        v
    }

    /// Stores a version with just a value.
    pub async fn set(&self, name: &str, value: &str) -> Value {
        self.set_body(name, json!({ "value": value })).await
    }

    /// Stores a version with a full body.
    pub async fn set_body(&self, name: &str, body: Value) -> Value {
        self.ok(Method::PUT, &format!("/secrets/{name}"), Some(body))
            .await
    }

    /// Gets the latest version (`None`) or a given one.
    pub async fn get(&self, name: &str, version: Option<&str>) -> (u16, Value) {
        let path = format!("/secrets/{name}/{}", version.unwrap_or(""));
        self.call(Method::GET, &path, None).await
    }

    /// Gets a version's value, asserting success.
    pub async fn value(&self, name: &str, version: Option<&str>) -> String {
        let (status, v) = self.get(name, version).await;
        assert_eq!(status, 200, "get {name}/{version:?}: {v}");
        v["value"].as_str().unwrap().to_owned()
    }

    /// Lists `path` from the first page to the last, following `nextLink`
    /// (which must be absolute, on this vault's host, and carry the same
    /// `maxresults`); returns every item and the number of pages.
    pub async fn list_all(&self, path: &str, max: Option<usize>) -> (Vec<Value>, usize) {
        let mut url = match max {
            Some(m) => format!("{}&maxresults={m}", self.url(path)),
            None => self.url(path),
        };
        let limit = max.unwrap_or(25);
        let mut items = Vec::new();
        let mut pages = 0;
        loop {
            pages += 1;
            assert!(pages < 1000, "listing {path} does not end");
            let (status, _, page) = self
                .server
                .send(Method::GET, &url, Some(&self.token), None)
                .await;
            assert_eq!(status, 200, "GET {url}: {page}");
            let value = page["value"].as_array().expect("value array");
            assert!(
                value.len() <= limit,
                "page larger than {limit}: {}",
                value.len()
            );
            items.extend(value.iter().cloned());
            match &page["nextLink"] {
                Value::Null => break,
                Value::String(next) => {
                    assert!(
                        next.starts_with(&format!("{}{path}?", self.base)),
                        "nextLink {next} is not absolute on {}{path}",
                        self.base
                    );
                    assert!(next.contains("$skiptoken="), "{next}");
                    assert!(next.contains(&format!("api-version={API}")), "{next}");
                    assert!(next.contains(&format!("maxresults={limit}")), "{next}");
                    assert_eq!(value.len(), limit, "a page before the last must be full");
                    url = next.clone();
                }
                other => panic!("nextLink is {other}"),
            }
        }
        (items, pages)
    }
}

/// `url` with `api-version={API}` appended.
pub fn with_api(url: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}api-version={API}")
}

/// Asserts a Key Vault error: status, `error.code` and `error.innererror.code`.
pub fn assert_kv_error(got: &(u16, Value), status: u16, code: &str, inner: Option<&str>) {
    let (s, body) = got;
    assert_eq!(*s, status, "status; body: {body}");
    assert_eq!(body["error"]["code"], code, "error code; body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "error message; body: {body}"
    );
    match inner {
        Some(i) => assert_eq!(
            body["error"]["innererror"]["code"], i,
            "inner code; body: {body}"
        ),
        None => assert!(
            body["error"]["innererror"].is_null(),
            "unexpected innererror; body: {body}"
        ),
    }
}

/// The last path segment of an id (a version id for version ids).
pub fn last_segment(id: &Value) -> String {
    id.as_str()
        .expect("id string")
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned()
}

/// Asserts that `v` is a version id: 32 lowercase hexadecimal characters.
pub fn assert_version_id(v: &str) {
    assert_eq!(v.len(), 32, "version id {v}");
    assert!(
        v.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "version id {v}"
    );
}

/// Asserts that `ids` has no duplicates and returns them as a set.
pub fn distinct(ids: impl IntoIterator<Item = String>) -> HashSet<String> {
    let mut set = HashSet::new();
    for id in ids {
        assert!(set.insert(id.clone()), "duplicate {id}");
    }
    set
}

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{:x}-{:x}-{}",
        nanos,
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The current Unix time.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Runs a command (a CLI invocation) with a time limit.
pub fn run(cmd: Command) -> Output {
    lockstep_testkit::run_to_exit(cmd, Duration::from_secs(90))
}

/// A JWT's header and claims.
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT has three parts: {token}");
    let decode = |s: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).expect("base64url")).expect("json")
    };
    (decode(parts[0]), decode(parts[1]))
}
