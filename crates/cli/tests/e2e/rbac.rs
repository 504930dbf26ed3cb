//! Every built-in role against every operation of the real server, as
//! `docs/rbac.md` documents them: the table in that file drives the test, so
//! the document, the code and the server cannot drift apart.

use std::collections::BTreeMap;

use lockstep_testkit::Server;
use reqwest::Method;
use serde_json::{json, Value};

const DOC: &str = include_str!("../../../../docs/rbac.md");
const VAULT_RES: &str = "https://vault.localhost";
const MGMT_RES: &str = "api://lockstep";
const GRAPH_RES: &str = "https://graph.microsoft.com";

/// The documented table: action → (role → granted).
fn documented() -> (Vec<String>, Vec<(String, Vec<bool>)>) {
    let body = DOC
        .split("<!-- rbac-table:start -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- rbac-table:end -->").next())
        .expect("docs/rbac.md has the table markers");
    let mut lines = body.lines().map(str::trim).filter(|l| l.starts_with('|'));
    let cells = |l: &str| -> Vec<String> {
        l.trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect()
    };
    let header = cells(lines.next().unwrap());
    lines.next();
    let rows = lines
        .map(|l| {
            let c = cells(l);
            (
                c[0].trim_matches('`').to_owned(),
                c[1..].iter().map(|x| x == "✓").collect(),
            )
        })
        .collect();
    (header[1..].to_vec(), rows)
}

/// A principal holding one role at the tenant.
struct Caller {
    vault: String,
    mgmt: String,
    graph: String,
}

/// Which API answered, to check the shape of a denial.
#[derive(Clone, Copy)]
enum Api {
    Vault,
    Graph,
    Management,
}

struct Admin<'a> {
    server: &'a Server,
    vault: String,
    mgmt: String,
    graph: String,
}

impl Admin<'_> {
    async fn ok(&self, method: Method, url: &str, token: &str, body: Option<Value>) -> Value {
        let (status, _, v) = self
            .server
            .send(method.clone(), url, Some(token), body.as_ref())
            .await;
        assert!(
            (200..300).contains(&status),
            "{method} {url} as admin: {status} {v}"
        );
        v
    }

    fn kv(&self, path: &str) -> String {
        format!("{}{path}?api-version=7.6", self.server.vault_url("default"))
    }

    fn api(&self, path: &str) -> String {
        format!("{}{path}", self.server.authority())
    }

    async fn secret(&self, name: &str) {
        self.ok(
            Method::PUT,
            &self.kv(&format!("/secrets/{name}")),
            &self.vault,
            Some(json!({"value": "v"})),
        )
        .await;
    }

    async fn deleted_secret(&self, name: &str) {
        self.secret(name).await;
        self.ok(
            Method::DELETE,
            &self.kv(&format!("/secrets/{name}")),
            &self.vault,
            None,
        )
        .await;
    }

    async fn app(&self, name: &str) -> Value {
        self.ok(
            Method::POST,
            &self.api("/v1.0/applications"),
            &self.graph,
            Some(json!({"displayName": name})),
        )
        .await
    }

    /// An app with a secret and `role` at the tenant; returns its tokens.
    async fn caller(&self, role: &str) -> Caller {
        let app = self.app(&format!("rbac {role}")).await;
        let id = app["id"].as_str().unwrap();
        let pw = self
            .ok(
                Method::POST,
                &self.api(&format!("/v1.0/applications/{id}/addPassword")),
                &self.graph,
                Some(json!({})),
            )
            .await;
        let app_id = app["appId"].as_str().unwrap();
        self.ok(
            Method::POST,
            &self.api("/lockstep/v1/roleAssignments"),
            &self.mgmt,
            Some(json!({"principalId": app_id, "roleDefinitionName": role, "scope": "/"})),
        )
        .await;
        let secret = pw["secretText"].as_str().unwrap();
        Caller {
            vault: self.server.token_as(app_id, secret, VAULT_RES).await,
            mgmt: self.server.token_as(app_id, secret, MGMT_RES).await,
            graph: self.server.token_as(app_id, secret, GRAPH_RES).await,
        }
    }
}

/// One request that exercises an action, prepared fresh for each caller.
struct Operation {
    api: Api,
    method: Method,
    url: String,
    body: Option<Value>,
}

/// Prepares the request for `action` with fixtures unique to caller `i`.
async fn operation(admin: &Admin<'_>, action: &str, i: usize) -> Operation {
    let op = |api, method, url: String, body| Operation {
        api,
        method,
        url,
        body,
    };
    match action {
        "Microsoft.KeyVault/vaults/secrets/getSecret/action" => {
            admin.secret(&format!("get-{i}")).await;
            op(
                Api::Vault,
                Method::GET,
                admin.kv(&format!("/secrets/get-{i}/")),
                None,
            )
        }
        "Microsoft.KeyVault/vaults/secrets/setSecret/action" => op(
            Api::Vault,
            Method::PUT,
            admin.kv(&format!("/secrets/set-{i}")),
            Some(json!({"value": "x"})),
        ),
        "Microsoft.KeyVault/vaults/secrets/readMetadata/action" => {
            op(Api::Vault, Method::GET, admin.kv("/secrets"), None)
        }
        "Microsoft.KeyVault/vaults/secrets/update/action" => {
            admin.secret(&format!("upd-{i}")).await;
            op(
                Api::Vault,
                Method::PATCH,
                admin.kv(&format!("/secrets/upd-{i}/")),
                Some(json!({"tags": {"a": "b"}})),
            )
        }
        "Microsoft.KeyVault/vaults/secrets/delete" => {
            admin.secret(&format!("del-{i}")).await;
            op(
                Api::Vault,
                Method::DELETE,
                admin.kv(&format!("/secrets/del-{i}")),
                None,
            )
        }
        "Microsoft.KeyVault/vaults/secrets/backup/action" => {
            admin.secret(&format!("bak-{i}")).await;
            op(
                Api::Vault,
                Method::POST,
                admin.kv(&format!("/secrets/bak-{i}/backup")),
                None,
            )
        }
        "Microsoft.KeyVault/vaults/secrets/restore/action" => {
            let name = format!("rst-{i}");
            admin.secret(&name).await;
            let blob = admin
                .ok(
                    Method::POST,
                    &admin.kv(&format!("/secrets/{name}/backup")),
                    &admin.vault,
                    None,
                )
                .await;
            admin
                .ok(
                    Method::DELETE,
                    &admin.kv(&format!("/secrets/{name}")),
                    &admin.vault,
                    None,
                )
                .await;
            admin
                .ok(
                    Method::DELETE,
                    &admin.kv(&format!("/deletedsecrets/{name}")),
                    &admin.vault,
                    None,
                )
                .await;
            op(
                Api::Vault,
                Method::POST,
                admin.kv("/secrets/restore"),
                Some(json!({"value": blob["value"]})),
            )
        }
        "Microsoft.KeyVault/vaults/secrets/recover/action" => {
            admin.deleted_secret(&format!("rec-{i}")).await;
            op(
                Api::Vault,
                Method::POST,
                admin.kv(&format!("/deletedsecrets/rec-{i}/recover")),
                None,
            )
        }
        "Microsoft.KeyVault/vaults/secrets/purge/action" => {
            admin.deleted_secret(&format!("prg-{i}")).await;
            op(
                Api::Vault,
                Method::DELETE,
                admin.kv(&format!("/deletedsecrets/prg-{i}")),
                None,
            )
        }
        "Microsoft.KeyVault/vaults/deletedSecrets/read/action" => {
            op(Api::Vault, Method::GET, admin.kv("/deletedsecrets"), None)
        }
        "Lockstep/vaults/read" => op(
            Api::Management,
            Method::GET,
            admin.api("/lockstep/v1/vaults"),
            None,
        ),
        "Lockstep/vaults/write" => op(
            Api::Management,
            Method::POST,
            admin.api("/lockstep/v1/vaults"),
            Some(json!({"name": format!("new-{i}")})),
        ),
        "Lockstep/vaults/delete" => {
            admin
                .ok(
                    Method::POST,
                    &admin.api("/lockstep/v1/vaults"),
                    &admin.mgmt,
                    Some(json!({"name": format!("gone-{i}")})),
                )
                .await;
            op(
                Api::Management,
                Method::DELETE,
                admin.api(&format!("/lockstep/v1/vaults/gone-{i}")),
                None,
            )
        }
        "microsoft.directory/applications/create" => op(
            Api::Graph,
            Method::POST,
            admin.api("/v1.0/applications"),
            Some(json!({"displayName": format!("created {i}")})),
        ),
        "microsoft.directory/applications/standard/read" => op(
            Api::Graph,
            Method::GET,
            admin.api("/v1.0/applications"),
            None,
        ),
        "microsoft.directory/applications/basic/update" => {
            let app = admin.app(&format!("rename {i}")).await;
            let id = app["id"].as_str().unwrap();
            op(
                Api::Graph,
                Method::PATCH,
                admin.api(&format!("/v1.0/applications/{id}")),
                Some(json!({"displayName": "renamed"})),
            )
        }
        "microsoft.directory/applications/delete" => {
            let app = admin.app(&format!("delete {i}")).await;
            let id = app["id"].as_str().unwrap();
            op(
                Api::Graph,
                Method::DELETE,
                admin.api(&format!("/v1.0/applications/{id}")),
                None,
            )
        }
        "microsoft.directory/applications/credentials/update" => {
            let app = admin.app(&format!("creds {i}")).await;
            let id = app["id"].as_str().unwrap();
            op(
                Api::Graph,
                Method::POST,
                admin.api(&format!("/v1.0/applications/{id}/addPassword")),
                Some(json!({})),
            )
        }
        "microsoft.directory/appManagementPolicies/standard/read" => op(
            Api::Graph,
            Method::GET,
            admin.api("/v1.0/policies/defaultAppManagementPolicy"),
            None,
        ),
        "microsoft.directory/appManagementPolicies/basic/update" => op(
            Api::Graph,
            Method::PATCH,
            admin.api("/v1.0/policies/defaultAppManagementPolicy"),
            Some(json!({"isEnabled": false})),
        ),
        "Microsoft.Authorization/roleAssignments/read" => op(
            Api::Management,
            Method::GET,
            admin.api("/lockstep/v1/roleAssignments"),
            None,
        ),
        "Microsoft.Authorization/roleAssignments/write" => {
            let app = admin.app(&format!("assignee {i}")).await;
            op(
                Api::Management,
                Method::POST,
                admin.api("/lockstep/v1/roleAssignments"),
                Some(
                    json!({"principalId": app["appId"], "roleDefinitionName": "Reader", "scope": "/vaults/default"}),
                ),
            )
        }
        "Microsoft.Authorization/roleAssignments/delete" => {
            let app = admin.app(&format!("unassign {i}")).await;
            let ra = admin
                .ok(
                    Method::POST,
                    &admin.api("/lockstep/v1/roleAssignments"),
                    &admin.mgmt,
                    Some(json!({"principalId": app["appId"], "roleDefinitionName": "Reader", "scope": "/vaults/default"})),
                )
                .await;
            let id = ra["id"].as_str().unwrap();
            op(
                Api::Management,
                Method::DELETE,
                admin.api(&format!("/lockstep/v1/roleAssignments/{id}")),
                None,
            )
        }
        "Lockstep/rotation/read" => op(
            Api::Management,
            Method::GET,
            admin.api("/lockstep/v1/rotation/bindings"),
            None,
        ),
        "Lockstep/rotation/write" => {
            let app = admin.app(&format!("bindable {i}")).await;
            op(
                Api::Management,
                Method::POST,
                admin.api("/lockstep/v1/rotation/bindings"),
                Some(json!({
                    "name": format!("rb-{i}"),
                    "source": {"kind": "builtin-app", "appId": app["appId"]},
                    "target": {"kind": "builtin-vault", "vault": "default", "secret": format!("rbs-{i}")},
                })),
            )
        }
        "Lockstep/rotation/rotate/action" => {
            // The secret exists, so the new binding is not due yet and no
            // scheduled run competes with the manual one.
            admin.secret(&format!("rot-{i}")).await;
            let app = admin.app(&format!("rotatable {i}")).await;
            admin
                .ok(
                    Method::POST,
                    &admin.api("/lockstep/v1/rotation/bindings"),
                    &admin.mgmt,
                    Some(json!({
                        "name": format!("rot-{i}"),
                        "source": {"kind": "builtin-app", "appId": app["appId"]},
                        "target": {"kind": "builtin-vault", "vault": "default", "secret": format!("rot-{i}")},
                    })),
                )
                .await;
            op(
                Api::Management,
                Method::POST,
                admin.api(&format!("/lockstep/v1/rotation/bindings/rot-{i}/rotate")),
                None,
            )
        }
        "Lockstep/dev/timeShift/action" => op(
            Api::Management,
            Method::POST,
            admin.api("/lockstep/v1/dev/time-shift"),
            Some(json!({"by": "PT1S"})),
        ),
        "Lockstep/users/read" => op(
            Api::Management,
            Method::GET,
            admin.api("/lockstep/v1/users"),
            None,
        ),
        "Lockstep/users/write" => op(
            Api::Management,
            Method::POST,
            admin.api("/lockstep/v1/users"),
            Some(
                json!({"userPrincipalName": format!("u{i}@example.test"), "displayName": "U", "password": "correct horse battery staple"}),
            ),
        ),
        "Lockstep/users/delete" => {
            let u = admin
                .ok(
                    Method::POST,
                    &admin.api("/lockstep/v1/users"),
                    &admin.mgmt,
                    Some(json!({"userPrincipalName": format!("gone{i}@example.test"), "displayName": "G", "password": "correct horse battery staple"})),
                )
                .await;
            let id = u["id"].as_str().unwrap();
            op(
                Api::Management,
                Method::DELETE,
                admin.api(&format!("/lockstep/v1/users/{id}")),
                None,
            )
        }
        "Lockstep/subscriptions/read" => op(
            Api::Management,
            Method::GET,
            admin.api("/lockstep/v1/subscriptions"),
            None,
        ),
        "Lockstep/subscriptions/write" => op(
            Api::Management,
            Method::POST,
            admin.api("/lockstep/v1/subscriptions"),
            Some(json!({"endpoint": format!("https://127.0.0.1:1/w{i}")})),
        ),
        "Lockstep/subscriptions/delete" => {
            let sub = admin
                .ok(
                    Method::POST,
                    &admin.api("/lockstep/v1/subscriptions"),
                    &admin.mgmt,
                    Some(json!({"endpoint": format!("https://127.0.0.1:1/d{i}")})),
                )
                .await;
            let id = sub["id"].as_str().unwrap();
            op(
                Api::Management,
                Method::DELETE,
                admin.api(&format!("/lockstep/v1/subscriptions/{id}")),
                None,
            )
        }
        "Lockstep/audit/read" => op(
            Api::Management,
            Method::GET,
            admin.api("/lockstep/v1/audit?limit=1"),
            None,
        ),
        "Lockstep/signingKeys/rotate" => op(
            Api::Management,
            Method::POST,
            admin.api("/lockstep/v1/keys/rotate-signing"),
            None,
        ),
        other => panic!(
            "docs/rbac.md lists action {other}, but the RBAC test has no operation for it: add one"
        ),
    }
}

#[tokio::test]
async fn every_role_against_every_operation() {
    let server = Server::start_with(lockstep_testkit::Options {
        args: vec!["--dev-time-shift".into()],
        ..Default::default()
    })
    .await;
    let admin = Admin {
        server: &server,
        vault: server.admin_token(VAULT_RES).await,
        mgmt: server.admin_token(MGMT_RES).await,
        graph: server.admin_token(GRAPH_RES).await,
    };
    let (roles, rows) = documented();
    let mut callers = BTreeMap::new();
    for role in &roles {
        callers.insert(role.clone(), admin.caller(role).await);
    }
    let mut checked = 0;
    let mut mismatches = Vec::new();
    for (r, role) in roles.iter().enumerate() {
        let caller = &callers[role];
        for (i, (action, grants)) in rows.iter().enumerate() {
            let op = operation(&admin, action, r * 100 + i).await;
            let token = match op.api {
                Api::Vault => &caller.vault,
                Api::Graph => &caller.graph,
                Api::Management => &caller.mgmt,
            };
            let (status, _, body) = server
                .send(op.method.clone(), &op.url, Some(token), op.body.as_ref())
                .await;
            let allowed = grants[r];
            let denied_shape = match op.api {
                Api::Vault => body["error"]["innererror"]["code"] == "ForbiddenByRbac",
                Api::Graph => body["error"]["code"] == "Authorization_RequestDenied",
                Api::Management => body["error"]["code"] == "AuthorizationFailed",
            };
            let ok = if allowed {
                (200..300).contains(&status)
            } else {
                status == 403 && denied_shape
            };
            if !ok {
                mismatches.push(format!(
                    "{role} {} {action}: {} {} -> {status} {body}",
                    if allowed { "may" } else { "may not" },
                    op.method,
                    op.url
                ));
            }
            checked += 1;
        }
    }
    println!(
        "RBAC matrix: {} roles x {} operations = {checked} checks",
        roles.len(),
        rows.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert_eq!(checked, roles.len() * rows.len());
}

#[tokio::test]
async fn assignments_at_a_vault_scope_stay_in_that_vault() {
    let server = Server::start().await;
    let admin = Admin {
        server: &server,
        vault: server.admin_token(VAULT_RES).await,
        mgmt: server.admin_token(MGMT_RES).await,
        graph: server.admin_token(GRAPH_RES).await,
    };
    admin
        .ok(
            Method::POST,
            &admin.api("/lockstep/v1/vaults"),
            &admin.mgmt,
            Some(json!({"name": "other"})),
        )
        .await;
    let app = admin.app("consumer").await;
    let id = app["id"].as_str().unwrap();
    let pw = admin
        .ok(
            Method::POST,
            &admin.api(&format!("/v1.0/applications/{id}/addPassword")),
            &admin.graph,
            Some(json!({})),
        )
        .await;
    let ra = admin
        .ok(
            Method::POST,
            &admin.api("/lockstep/v1/roleAssignments"),
            &admin.mgmt,
            Some(json!({"principalId": app["appId"], "roleDefinitionName": "Key Vault Secrets User", "scope": "/vaults/default/secrets/allowed"})),
        )
        .await;
    admin.secret("allowed").await;
    admin.secret("other-secret").await;
    let token = server
        .token_as(
            app["appId"].as_str().unwrap(),
            pw["secretText"].as_str().unwrap(),
            VAULT_RES,
        )
        .await;
    let get = |url: String| {
        let token = token.clone();
        let server = &server;
        async move { server.send(Method::GET, &url, Some(&token), None).await }
    };
    let (s, _, _) = get(admin.kv("/secrets/allowed/")).await;
    assert_eq!(s, 200, "secret-scoped assignment grants that secret");
    let (s, _, body) = get(admin.kv("/secrets/other-secret/")).await;
    assert_eq!(s, 403, "but not another secret: {body}");
    assert_eq!(body["error"]["innererror"]["code"], "ForbiddenByRbac");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("getSecret/action"),
        "names the action"
    );
    let other = format!(
        "{}/secrets/allowed/?api-version=7.6",
        server.vault_url("other")
    );
    let (s, _, _) = get(other).await;
    assert_eq!(s, 403, "nor the same name in another vault");
    // Removing the assignment takes effect at once.
    let ra_id = ra["id"].as_str().unwrap();
    admin
        .ok(
            Method::DELETE,
            &admin.api(&format!("/lockstep/v1/roleAssignments/{ra_id}")),
            &admin.mgmt,
            None,
        )
        .await;
    let (s, _, _) = get(admin.kv("/secrets/allowed/")).await;
    assert_eq!(s, 403, "a removed assignment stops granting at once");
}
