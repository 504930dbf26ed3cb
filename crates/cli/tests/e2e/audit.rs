//! The audit log through the real server and CLI: one record per request
//! with principal, action and result; no secret value, token or client
//! secret in it or in the server's logs; `lockstep audit verify` names an
//! edited record; a log that cannot be written fails requests with 500;
//! a torn tail left by a crash is moved aside at the next start.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use lockstep_testkit::Server;
use reqwest::Method;
use serde_json::{json, Value};

const API: &str = "api-version=7.6";
const GRAPH: &str = "https://graph.microsoft.com";
const SECRET_GET: &str = "Microsoft.KeyVault/vaults/secrets/getSecret/action";
const SECRET_SET: &str = "Microsoft.KeyVault/vaults/secrets/setSecret/action";
const APP_CREDENTIALS: &str = "microsoft.directory/applications/credentials/update";

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn request_id(headers: &reqwest::header::HeaderMap) -> String {
    headers["x-ms-request-id"].to_str().unwrap().to_owned()
}

/// The records of one request, in order.
fn of_request<'a>(all: &'a [Value], id: &str) -> Vec<&'a Value> {
    all.iter().filter(|r| r["request_id"] == id).collect()
}

/// The `oid` claim of a token (the principal's object id).
fn oid(token: &str) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["oid"].as_str().unwrap().to_owned()
}

fn cli(server: &Server, args: &[&str]) -> std::process::Output {
    server.cli().args(args).output().unwrap()
}

#[tokio::test]
async fn every_request_is_audited_without_secrets_and_edits_are_found() {
    let server = Server::start().await;
    let log = server.data_dir().join("audit.log");
    let marker = format!("marker-{}", lockstep_crypto::random::guid());
    let secret_url = format!("{}/secrets/audited?{API}", server.vault_url("default"));
    let vault_token = server.vault_token().await;
    let admin_oid = oid(&vault_token);

    // A secret whose value is the marker: set, then read.
    let (status, headers, body) = server
        .send(
            Method::PUT,
            &secret_url,
            Some(&vault_token),
            Some(&json!({ "value": marker })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let set_id = request_id(&headers);
    let version = body["id"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let (status, headers, body) = server
        .send(Method::GET, &secret_url, Some(&vault_token), None)
        .await;
    assert_eq!(
        (status, body["value"].as_str()),
        (200, Some(marker.as_str()))
    );
    let get_id = request_id(&headers);

    // No token: 401.
    let (status, headers, _) = server.send(Method::GET, &secret_url, None, None).await;
    assert_eq!(status, 401);
    let anonymous_id = request_id(&headers);

    // Graph: an app and a client secret for it.
    let graph_token = server.admin_token(GRAPH).await;
    let (status, _, app) = server
        .send(
            Method::POST,
            &format!("{}/v1.0/applications", server.authority()),
            Some(&graph_token),
            Some(&json!({ "displayName": "audit e2e" })),
        )
        .await;
    assert_eq!(status, 201, "{app}");
    let (status, headers, password) = server
        .send(
            Method::POST,
            &format!(
                "{}/v1.0/applications/{}/addPassword",
                server.authority(),
                app["id"].as_str().unwrap()
            ),
            Some(&graph_token),
            Some(&json!({ "passwordCredential": { "displayName": "e2e" } })),
        )
        .await;
    assert_eq!(status, 200, "{password}");
    let add_password_id = request_id(&headers);
    let app_secret = password["secretText"].as_str().unwrap().to_owned();
    let key_id = password["keyId"].as_str().unwrap().to_owned();

    // The new app holds no role: reading the secret is denied (403).
    let app_id = app["appId"].as_str().unwrap();
    let app_token = server
        .token_as(app_id, &app_secret, "https://vault.localhost")
        .await;
    let (status, headers, _) = server
        .send(Method::GET, &secret_url, Some(&app_token), None)
        .await;
    assert_eq!(status, 403);
    let denied_id = request_id(&headers);

    // The records, as the file holds them.
    let all = records(&log);
    let set = of_request(&all, &set_id);
    assert_eq!(set.len(), 3, "intent, request, event: {set:?}");
    let (intent, request, event) = (set[0], set[1], set[2]);
    assert_eq!(intent["type"], "intent");
    assert_eq!(
        intent["result"],
        json!({"status": null, "outcome": "pending"})
    );
    assert_eq!(request["type"], "request");
    assert_eq!(request["action"], SECRET_SET);
    assert_eq!(request["principal"], admin_oid.as_str());
    assert_eq!(request["principal_kind"], "app");
    assert_eq!(request["tenant"], server.admin.tenant_id.as_str());
    assert_eq!(
        request["result"],
        json!({"status": 200, "outcome": "success"})
    );
    assert_eq!(
        request["target"],
        format!(
            "/tenants/{}/vaults/default/secrets/audited",
            server.admin.tenant_id
        )
    );
    assert!(request["client"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert_eq!(event["type"], "event");
    assert_eq!(event["action"], "SecretVersionCreated");
    assert!(event["target"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/secrets/audited/versions/{version}")));

    let get = of_request(&all, &get_id);
    assert_eq!(get.len(), 1);
    assert_eq!(get[0]["action"], SECRET_GET);
    assert_eq!(get[0]["principal"], admin_oid.as_str());
    assert_eq!(
        get[0]["result"],
        json!({"status": 200, "outcome": "success"})
    );

    let anonymous = of_request(&all, &anonymous_id);
    assert_eq!(anonymous.len(), 1);
    assert_eq!(anonymous[0]["principal"], "-");
    assert_eq!(anonymous[0]["principal_kind"], "anonymous");
    assert_eq!(anonymous[0]["action"], "GET /secrets/{name}");
    assert_eq!(anonymous[0]["target"], "/vaults/default/secrets/audited");
    assert_eq!(
        anonymous[0]["result"],
        json!({"status": 401, "outcome": "denied"})
    );

    let add = of_request(&all, &add_password_id);
    assert_eq!(add.len(), 3, "{add:?}");
    assert_eq!(add[1]["action"], APP_CREDENTIALS);
    assert_eq!(
        add[1]["result"],
        json!({"status": 200, "outcome": "success"})
    );
    assert_eq!(add[2]["action"], "CredentialAdded");
    assert!(add[2]["target"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/passwordCredentials/{key_id}")));

    let denied = of_request(&all, &denied_id);
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["principal"], oid(&app_token).as_str());
    assert_eq!(denied[0]["action"], SECRET_GET);
    assert_eq!(
        denied[0]["result"],
        json!({"status": 403, "outcome": "denied"})
    );

    // Token requests name the client id, never the secret.
    assert!(all.iter().any(|r| r["principal"] == app_id
        && r["principal_kind"] == "client"
        && r["result"]["status"] == 200));
    assert_eq!(all[0]["action"], "ServerStarted");
    assert_eq!(all[1]["action"], "Bootstrapped");

    // Nothing secret anywhere: not in the log, not in the server's output.
    let text = std::fs::read_to_string(&log).unwrap();
    let logs = server.logs();
    for (what, needle) in [
        ("secret value", marker.as_str()),
        ("vault token", vault_token.as_str()),
        ("graph token", graph_token.as_str()),
        ("app token", app_token.as_str()),
        (
            "bootstrap client secret",
            server.admin.client_secret.as_str(),
        ),
        ("new client secret", app_secret.as_str()),
    ] {
        assert!(!text.contains(needle), "{what} found in audit.log");
        assert!(!logs.contains(needle), "{what} found in the server's logs");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&log).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // The API: filters and paging.
    let mgmt = server.admin_token("api://lockstep").await;
    let url = format!(
        "{}/lockstep/v1/audit?action={SECRET_GET}&limit=1",
        server.authority()
    );
    let (status, _, page) = server.send(Method::GET, &url, Some(&mgmt), None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["value"].as_array().unwrap().len(), 1);
    assert_eq!(page["value"][0]["request_id"], get_id.as_str());
    let next = page["nextLink"].as_str().expect("a second page").to_owned();
    let (_, _, page) = server.send(Method::GET, &next, Some(&mgmt), None).await;
    assert_eq!(page["value"][0]["request_id"], denied_id.as_str());
    let url = format!(
        "{}/lockstep/v1/audit?principal={}&target=/tenants/{}/vaults/default",
        server.authority(),
        oid(&app_token),
        server.admin.tenant_id
    );
    let (_, _, page) = server.send(Method::GET, &url, Some(&mgmt), None).await;
    let found: Vec<&Value> = page["value"].as_array().unwrap().iter().collect();
    assert_eq!(found.len(), 1, "{page}");
    assert!(page.get("nextLink").is_none());
    let (status, _, bad) = server
        .send(
            Method::GET,
            &format!("{}/lockstep/v1/audit?from=yesterday", server.authority()),
            Some(&mgmt),
            None,
        )
        .await;
    assert_eq!(
        (status, bad["error"]["code"].as_str()),
        (400, Some("BadRequest"))
    );
    // Without the management audience: 401.
    let (status, _, _) = server
        .send(
            Method::GET,
            &format!("{}/lockstep/v1/audit", server.authority()),
            Some(&vault_token),
            None,
        )
        .await;
    assert_eq!(status, 401);

    // The CLI: query through the API, verify the file offline.
    let out = cli(
        &server,
        &["audit", "query", "--action", SECRET_SET, "--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<&str> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["intent", "request"]);
    let out = cli(&server, &["audit", "query", "--principal", &admin_oid]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(SECRET_GET));
    let out = cli(&server, &["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("is intact"));
    let out = cli(&server, &["audit", "verify", "--remote"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Edit one byte of one record (the secret read) in place.
    let text = std::fs::read_to_string(&log).unwrap();
    let (index, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains(&get_id) && l.contains("\"type\":\"request\""))
        .unwrap();
    let line_no = index + 1;
    let seq = all
        .iter()
        .find(|r| r["request_id"] == get_id.as_str())
        .unwrap()["seq"]
        .as_u64()
        .unwrap();
    let offset = text.lines().take(index).map(|l| l.len() + 1).sum::<usize>()
        + line.find("\"status\":200").unwrap()
        + "\"status\":".len();
    let mut f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    f.seek(SeekFrom::Start(offset as u64)).unwrap();
    f.write_all(b"4").unwrap();
    drop(f);

    let out = cli(&server, &["audit", "verify"]);
    assert!(!out.status.success(), "verify passed an edited log");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("line {line_no} (seq {seq})")),
        "{stderr}"
    );
    let out = cli(&server, &["audit", "verify", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["brokenAt"]["line"], line_no);
    let (_, _, report) = server
        .send(
            Method::GET,
            &format!("{}/lockstep/v1/audit/verify", server.authority()),
            Some(&mgmt),
            None,
        )
        .await;
    assert_eq!(report["valid"], false);
    assert_eq!(report["brokenAt"]["line"], line_no);
    assert_eq!(report["brokenAt"]["seq"], seq);
}

#[tokio::test]
async fn requests_fail_with_500_while_the_log_cannot_be_written() {
    let server = Server::start().await;
    let log = server.data_dir().join("audit.log");
    let aside = server.data_dir().join("audit.log.aside");
    let secret_url = format!("{}/secrets/kept?{API}", server.vault_url("default"));
    let vault_token = server.vault_token().await;
    let graph_token = server.admin_token(GRAPH).await;
    let mgmt_token = server.admin_token("api://lockstep").await;
    let (status, _, _) = server
        .send(
            Method::PUT,
            &secret_url,
            Some(&vault_token),
            Some(&json!({ "value": "original" })),
        )
        .await;
    assert_eq!(status, 200);

    // The path no longer names the file the server writes to: the server
    // refuses to write records into a file nobody can see.
    std::fs::rename(&log, &aside).unwrap();

    let (status, _, body) = server
        .send(Method::GET, &secret_url, Some(&vault_token), None)
        .await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["innererror"]["code"], "AuditLogUnavailable");
    assert!(
        !body.to_string().contains("original"),
        "value leaked: {body}"
    );

    let (status, _, body) = server
        .send(
            Method::PUT,
            &secret_url,
            Some(&vault_token),
            Some(&json!({ "value": "must-not-be-stored" })),
        )
        .await;
    assert_eq!(status, 500, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not performed"));

    let (status, _, body) = server
        .send(
            Method::GET,
            &format!("{}/v1.0/applications", server.authority()),
            Some(&graph_token),
            None,
        )
        .await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["code"], "InternalServerError");
    assert!(body["error"]["innerError"]["request-id"].is_string());

    let (status, body) = server
        .token_response(
            &server.admin.client_id,
            &server.admin.client_secret,
            "https://vault.localhost/.default",
        )
        .await;
    assert_eq!(status, 500);
    assert_eq!(body["error"], "server_error");
    assert!(body.get("access_token").is_none());

    let (status, _, body) = server
        .send(
            Method::GET,
            &format!("{}/lockstep/v1/vaults", server.authority()),
            Some(&mgmt_token),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (500, Some("AuditLogUnavailable"))
    );
    assert!(server
        .logs()
        .contains("audit record could not be written; request refused"));

    // Put back, the log takes records again; the refused write never happened.
    std::fs::rename(&aside, &log).unwrap();
    let (status, _, body) = server
        .send(Method::GET, &secret_url, Some(&vault_token), None)
        .await;
    assert_eq!((status, body["value"].as_str()), (200, Some("original")));
    let out = cli(&server, &["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&server, &["audit", "verify", "--remote"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_torn_last_record_is_moved_aside_at_the_next_start() {
    let mut server = Server::start().await;
    let log = server.data_dir().join("audit.log");
    let (status, _, _) = server
        .send(
            Method::GET,
            &format!("{}/healthz", server.authority()),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200);
    server.kill();
    let before = records(&log).len();
    let torn = b"{\"seq\":99,\"time\":\"2026-";
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(torn)
        .unwrap();

    let out = cli(&server, &["audit", "verify"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "line {} (seq unreadable): incomplete last line",
            before + 1
        )),
        "{stderr}"
    );

    server.restart().await;
    assert!(server
        .logs()
        .contains("the audit log ended with an incomplete record"));
    let saved: Vec<_> = std::fs::read_dir(server.data_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("audit.log.torn-"))
        .collect();
    assert_eq!(saved.len(), 1);
    assert_eq!(std::fs::read(&saved[0]).unwrap(), torn);
    let all = records(&log);
    assert_eq!(all[before]["action"], "AuditTornTailRecovered");
    assert_eq!(all[before]["seq"], before as u64 + 1);
    let out = cli(&server, &["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
