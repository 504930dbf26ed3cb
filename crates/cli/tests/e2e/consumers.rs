//! Fixtures shared by the consumer tests (`watch`, `client`, `agent`): apps
//! with client secrets, role assignments, secret writes, bounded polling.

use std::future::Future;
use std::time::{Duration, Instant};

use lockstep_testkit::Server;
use reqwest::Method;
use serde_json::{json, Value};

/// The api-version the consumer tests use.
pub const API: &str = "7.6";

/// `{vault_url}/secrets/{name}{tail}?api-version=…`.
pub fn secret_url(server: &Server, name: &str, tail: &str) -> String {
    format!(
        "{}/secrets/{name}{tail}?api-version={API}",
        server.vault_url("default")
    )
}

/// Stores a version through the data plane; returns its version id.
pub async fn set(server: &Server, token: &str, name: &str, value: &str) -> String {
    let (status, _, body) = server
        .send(
            Method::PUT,
            &secret_url(server, name, ""),
            Some(token),
            Some(&json!({ "value": value })),
        )
        .await;
    assert_eq!(status, 200, "set {name}: {body}");
    version_of(&body)
}

/// Stores a version with the CLI (a fresh process: works across server
/// restarts without pooled connections); returns its version id.
pub fn cli_set(server: &Server, name: &str, value: &str) -> String {
    let out = server
        .cli()
        .args(["secret", "set", name, "--value", value, "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "secret set: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    version_of(&v)
}

/// The version id at the end of a bundle's `id`.
pub fn version_of(bundle: &Value) -> String {
    bundle["id"]
        .as_str()
        .and_then(|id| id.rsplit('/').next())
        .unwrap_or_else(|| panic!("no id in {bundle}"))
        .to_owned()
}

/// An app registration with one client secret.
pub struct App {
    pub app_id: String,
    pub object_id: String,
    pub secret: String,
    pub key_id: String,
}

async fn graph(server: &Server, method: Method, path: &str, body: Value) -> Value {
    let token = server.admin_token("https://graph.microsoft.com").await;
    let url = format!("{}/v1.0/{path}", server.authority());
    let (status, _, v) = server.send(method, &url, Some(&token), Some(&body)).await;
    assert!((200..300).contains(&status), "{path}: {status} {v}");
    v
}

/// Registers an app and gives it a client secret.
pub async fn app(server: &Server, name: &str) -> App {
    let created = graph(
        server,
        Method::POST,
        "applications",
        json!({ "displayName": name }),
    )
    .await;
    let object_id = created["id"].as_str().unwrap().to_owned();
    let (secret, key_id) = add_password(server, &object_id).await;
    App {
        app_id: created["appId"].as_str().unwrap().to_owned(),
        object_id,
        secret,
        key_id,
    }
}

/// Adds a client secret to an app; returns its value and key id.
pub async fn add_password(server: &Server, object_id: &str) -> (String, String) {
    let v = graph(
        server,
        Method::POST,
        &format!("applications/{object_id}/addPassword"),
        json!({ "passwordCredential": { "displayName": "consumer test" } }),
    )
    .await;
    (
        v["secretText"].as_str().unwrap().to_owned(),
        v["keyId"].as_str().unwrap().to_owned(),
    )
}

/// Removes a client secret at once.
pub async fn remove_password(server: &Server, object_id: &str, key_id: &str) {
    graph(
        server,
        Method::POST,
        &format!("applications/{object_id}/removePassword"),
        json!({ "keyId": key_id }),
    )
    .await;
}

/// Assigns `role` to a principal at `scope`.
pub async fn grant(server: &Server, principal: &str, role: &str, scope: &str) {
    let token = server.admin_token("api://lockstep").await;
    let url = format!("{}/lockstep/v1/roleAssignments", server.authority());
    let body = json!({ "principalId": principal, "roleDefinitionName": role, "scope": scope });
    let (status, _, v) = server
        .send(Method::POST, &url, Some(&token), Some(&body))
        .await;
    assert!((200..300).contains(&status), "grant: {status} {v}");
}

/// A `lockstep-client` configuration for this server's default vault.
pub fn client_config(server: &Server, client_id: &str, secret: &str) -> lockstep_client::Config {
    lockstep_client::Config::new(
        server.authority(),
        server.admin.tenant_id.clone(),
        client_id,
        secret,
        server.vault_url("default"),
    )
    .with_ca_pem(std::fs::read(&server.admin.ca_cert).unwrap())
    .with_resolve_to([127, 0, 0, 1].into())
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `lockstep_watched_secrets` gauge.
pub async fn watched_secrets(server: &Server) -> u64 {
    server
        .metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix("lockstep_watched_secrets "))
        .and_then(|n| n.trim().parse().ok())
        .expect("lockstep_watched_secrets in /metrics")
}
