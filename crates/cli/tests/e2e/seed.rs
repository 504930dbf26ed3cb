//! The seed's manual procedure, done by a signed-in person holding each of
//! the roles the seed names (and by a Reader, who is stopped at the first
//! write): find the app registration by name, add a client secret named
//! with today's date and an expiry 70 days out, store its value as a new
//! version of the vault secret with the same expiry, get a token with the
//! new secret, revoke the old secret, and see the old one fail.

use lockstep_testkit::Server;
use reqwest::Method;
use serde_json::json;

const APP_NAME: &str = "Azure Communications Gateway service";
const VAULT: &str = "https://vault.localhost";
const GRAPH: &str = "https://graph.microsoft.com";
const MGMT: &str = "api://lockstep";
const PASSWORD: &str = "a long and unguessable passphrase 42";

async fn login(server: &Server, user: &str, resource: &str) -> String {
    let url = format!("{}/lockstep/v1/login", server.authority());
    let body = json!({"username": user, "password": PASSWORD, "resource": resource});
    let (s, _, v) = server.send(Method::POST, &url, None, Some(&body)).await;
    assert_eq!(s, 200, "login {user}: {v}");
    v["access_token"].as_str().unwrap().to_owned()
}

fn iso(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

async fn procedure(role: &str) {
    let server = Server::start().await;
    let api = |p: &str| format!("{}{p}", server.authority());
    let kv = |p: &str| format!("{}{p}?api-version=7.6", server.vault_url("default"));
    let admin_graph = server.admin_token(GRAPH).await;
    let admin_mgmt = server.admin_token(MGMT).await;
    let admin_vault = server.vault_token().await;

    // What exists before the operator starts: the app with its first secret,
    // stored in the vault (as "Prepare to deploy" left it).
    let (_, _, app) = server
        .send(
            Method::POST,
            &api("/v1.0/applications"),
            Some(&admin_graph),
            Some(&json!({"displayName": APP_NAME})),
        )
        .await;
    let app_id = app["appId"].as_str().unwrap().to_owned();
    let (_, _, old) = server
        .send(
            Method::POST,
            &api(&format!(
                "/v1.0/applications/{}/addPassword",
                app["id"].as_str().unwrap()
            )),
            Some(&admin_graph),
            Some(&json!({"passwordCredential": {"displayName": "initial"}})),
        )
        .await;
    let old_secret = old["secretText"].as_str().unwrap().to_owned();
    let (s, _, _) = server
        .send(
            Method::PUT,
            &kv("/secrets/acg-client-secret"),
            Some(&admin_vault),
            Some(&json!({"value": old_secret})),
        )
        .await;
    assert_eq!(s, 200);

    // The operator: a user holding `role` at the tenant.
    let upn = "operator@contoso.test".to_owned();
    let (s, _, user) = server
        .send(
            Method::POST,
            &api("/lockstep/v1/users"),
            Some(&admin_mgmt),
            Some(
                &json!({"userPrincipalName": upn, "displayName": "Operator", "password": PASSWORD}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{user}");
    let (s, _, ra) = server
        .send(
            Method::POST,
            &api("/lockstep/v1/roleAssignments"),
            Some(&admin_mgmt),
            Some(&json!({"principalId": user["id"], "roleDefinitionName": role, "scope": "/"})),
        )
        .await;
    assert_eq!(s, 201, "{ra}");
    let graph = login(&server, &upn, GRAPH).await;
    let vault = login(&server, &upn, VAULT).await;

    // 1. Find the app registration by name.
    let filter = format!("displayName eq '{APP_NAME}'");
    let mut url = reqwest::Url::parse(&api("/v1.0/applications")).unwrap();
    url.query_pairs_mut().append_pair("$filter", &filter);
    let (s, _, found) = server
        .send(Method::GET, url.as_str(), Some(&graph), None)
        .await;
    assert_eq!(s, 200, "{role} finds the app: {found}");
    let found = &found["value"][0];
    assert_eq!(found["appId"], app_id.as_str());
    let object_id = found["id"].as_str().unwrap().to_owned();
    let old_key = found["passwordCredentials"][0]["keyId"]
        .as_str()
        .unwrap()
        .to_owned();

    // 2. New client secret: named with today's date, expiring in 70 days.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let today = iso(now)[..10].to_owned();
    let end = now + 70 * 86_400;
    let (s, _, new) = server
        .send(
            Method::POST,
            &api(&format!("/v1.0/applications/{object_id}/addPassword")),
            Some(&graph),
            Some(&json!({"passwordCredential": {"displayName": format!("ACG secret {today}"), "endDateTime": iso(end)}})),
        )
        .await;
    if role == "Reader" {
        assert_eq!(s, 403, "a Reader is stopped at the first write: {new}");
        assert_eq!(new["error"]["code"], "Authorization_RequestDenied");
        let (s, _, v) = server
            .send(
                Method::PUT,
                &kv("/secrets/acg-client-secret"),
                Some(&vault),
                Some(&json!({"value": "x"})),
            )
            .await;
        assert_eq!(s, 403, "nor may a Reader write the vault: {v}");
        assert_eq!(v["error"]["innererror"]["code"], "ForbiddenByRbac");
        return;
    }
    assert_eq!(s, 200, "{role} adds a client secret: {new}");
    let new_secret = new["secretText"].as_str().unwrap().to_owned();
    assert_eq!(new["displayName"], format!("ACG secret {today}").as_str());
    assert_eq!(new["endDateTime"], iso(end).as_str());

    // 3. Store its value as a new version of the vault secret, same expiry.
    let (s, _, version) = server
        .send(
            Method::PUT,
            &kv("/secrets/acg-client-secret"),
            Some(&vault),
            Some(&json!({"value": new_secret, "attributes": {"exp": end}})),
        )
        .await;
    assert_eq!(s, 200, "{role} stores the new version: {version}");
    assert_eq!(version["attributes"]["exp"], end);
    assert!(version["previousVersion"].is_string());

    // 4. A consumer reading the latest version gets a token with it.
    let (s, _, latest) = server
        .send(
            Method::GET,
            &kv("/secrets/acg-client-secret/"),
            Some(&admin_vault),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, body) = server
        .token_response(
            &app_id,
            latest["value"].as_str().unwrap(),
            "api://lockstep/.default",
        )
        .await;
    assert_eq!(s, 200, "the new secret works: {body}");

    // 5. Revoke the old secret (the bin icon); 6. it fails at once.
    let (s, _, v) = server
        .send(
            Method::POST,
            &api(&format!("/v1.0/applications/{object_id}/removePassword")),
            Some(&graph),
            Some(&json!({"keyId": old_key})),
        )
        .await;
    assert_eq!(s, 204, "{role} revokes the old secret: {v}");
    let (s, body) = server
        .token_response(&app_id, &old_secret, "api://lockstep/.default")
        .await;
    assert_eq!(s, 401, "{body}");
    assert_eq!(body["error_codes"][0], 7000215);
}

#[tokio::test]
async fn seed_procedure_as_storage_account_key_operator() {
    procedure("Storage Account Key Operator").await;
}

#[tokio::test]
async fn seed_procedure_as_contributor() {
    procedure("Contributor").await;
}

#[tokio::test]
async fn seed_procedure_as_owner() {
    procedure("Owner").await;
}

#[tokio::test]
async fn seed_procedure_as_reader_is_denied_at_the_first_write() {
    procedure("Reader").await;
}
