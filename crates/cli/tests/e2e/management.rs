//! The management API's vaults, and vaults as separate data planes.

use lockstep_testkit::Server;
use reqwest::Method;
use serde_json::{json, Value};

use crate::{assert_kv_error, now, with_api, Kv};

async fn mgmt(
    server: &Server,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let url = format!("{}/lockstep/v1{path}", server.authority());
    let (status, _, body) = server.send(method, &url, Some(token), body.as_ref()).await;
    (status, body)
}

fn vault_names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn vaults_are_created_listed_and_deleted() {
    let server = Server::start().await;
    let token = server.admin_token("api://lockstep").await;

    let (status, list) = mgmt(&server, &token, Method::GET, "/vaults", None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(vault_names(&list), vec!["default"]);

    let (status, created) = mgmt(
        &server,
        &token,
        Method::POST,
        "/vaults",
        Some(json!({"name": "Team-Vault-1"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "team-vault-1");
    assert_eq!(created["tenantId"], server.admin.tenant_id.as_str());
    assert_eq!(created["vaultUri"], server.vault_url("team-vault-1"));
    let t = created["created"].as_i64().unwrap();
    assert!((now() - 60..=now() + 5).contains(&t));

    let (status, body) = mgmt(
        &server,
        &token,
        Method::POST,
        "/vaults",
        Some(json!({"name": "team-vault-1"})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "VaultAlreadyExists");
    for bad in [
        "ab",
        "1abc",
        "has_underscore",
        "ends-",
        "double--hyphen",
        &"a".repeat(25),
    ] {
        let (status, body) = mgmt(
            &server,
            &token,
            Method::POST,
            "/vaults",
            Some(json!({"name": bad})),
        )
        .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "InvalidVaultName", "{body}");
    }
    for raw in [json!({}), json!({"name": 5}), json!(["x"])] {
        let (status, body) = mgmt(&server, &token, Method::POST, "/vaults", Some(raw)).await;
        assert_eq!(status, 400, "{body}");
    }

    let (status, got) = mgmt(&server, &token, Method::GET, "/vaults/TEAM-vault-1", None).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got, created);
    let (_, list) = mgmt(&server, &token, Method::GET, "/vaults", None).await;
    assert_eq!(vault_names(&list), vec!["default", "team-vault-1"]);

    // The new vault is its own data plane.
    let team = Kv::of(&server, "team-vault-1").await;
    let default = Kv::new(&server).await;
    team.set("shared-name", "team value").await;
    default.set("shared-name", "default value").await;
    team.set("team-only", "t").await;
    assert_eq!(team.value("shared-name", None).await, "team value");
    assert_eq!(default.value("shared-name", None).await, "default value");
    assert_kv_error(
        &default.get("team-only", None).await,
        404,
        "SecretNotFound",
        None,
    );
    let (items, _) = default.list_all("/secrets", None).await;
    assert_eq!(items.len(), 1);

    // Deleting it removes it and its secrets.
    let (status, body) = mgmt(
        &server,
        &token,
        Method::DELETE,
        "/vaults/team-vault-1",
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = mgmt(&server, &token, Method::GET, "/vaults/team-vault-1", None).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "VaultNotFound");
    let (status, body) = mgmt(
        &server,
        &token,
        Method::DELETE,
        "/vaults/team-vault-1",
        None,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, _, body) = server
        .send(
            Method::GET,
            &with_api(&format!(
                "{}/secrets/team-only/",
                server.vault_url("team-vault-1")
            )),
            Some(&team.token),
            None,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "VaultNotFound", "{body}");
    assert_eq!(default.value("shared-name", None).await, "default value");

    // Re-created under the same name, it starts empty.
    let (status, _) = mgmt(
        &server,
        &token,
        Method::POST,
        "/vaults",
        Some(json!({"name": "team-vault-1"})),
    )
    .await;
    assert_eq!(status, 201);
    let (items, _) = team.list_all("/secrets", None).await;
    assert!(items.is_empty(), "{items:?}");
    assert_kv_error(
        &team.get("team-only", None).await,
        404,
        "SecretNotFound",
        None,
    );
}

#[tokio::test]
async fn management_requires_a_management_token() {
    let server = Server::start().await;
    let url = format!("{}/lockstep/v1/vaults", server.authority());
    let vault_token = server.vault_token().await;
    for token in [None, Some(vault_token.as_str()), Some("garbage")] {
        for (method, body) in [
            (Method::GET, None),
            (Method::POST, Some(json!({"name": "sneaky"}))),
        ] {
            let (status, headers, body) = server.send(method, &url, token, body.as_ref()).await;
            assert_eq!(status, 401, "{body}");
            assert_eq!(body["error"]["code"], "Unauthorized", "{body}");
            assert!(headers.contains_key("www-authenticate"));
        }
    }
    let token = server.admin_token("api://lockstep").await;
    let (status, list) = mgmt(&server, &token, Method::GET, "/vaults", None).await;
    assert_eq!(status, 200);
    assert_eq!(vault_names(&list), vec!["default"]);
}
