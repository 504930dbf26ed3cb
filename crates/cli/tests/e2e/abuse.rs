//! Abuse resistance: repeated bad client secrets for one app are throttled
//! and raise an audit record and a metric without locking out the right
//! secret; repeated wrong passwords are throttled per address and user name
//! without locking the user out from elsewhere.

use std::time::Duration;

use lockstep_testkit::Server;
use reqwest::Method;
use serde_json::json;

const SCOPE: &str = "api://lockstep/.default";

#[tokio::test]
async fn repeated_bad_secrets_alert_but_never_lock_out_the_right_secret() {
    let server = Server::start().await;
    let graph = server.admin_token("https://graph.microsoft.com").await;
    let url = |p: &str| format!("{}/v1.0/{p}", server.authority());
    let (_, _, app) = server
        .send(
            Method::POST,
            &url("applications"),
            Some(&graph),
            Some(&json!({"displayName": "victim"})),
        )
        .await;
    let id = app["id"].as_str().unwrap();
    let (_, _, pw) = server
        .send(
            Method::POST,
            &url(&format!("applications/{id}/addPassword")),
            Some(&graph),
            Some(&json!({})),
        )
        .await;
    let app_id = app["appId"].as_str().unwrap();
    let mut codes = Vec::new();
    for i in 0..15 {
        let (status, body) = server
            .token_response(app_id, &format!("guess-{i}"), SCOPE)
            .await;
        codes.push(status);
        if status == 401 {
            assert_eq!(body["error_codes"][0], 7000215);
        }
    }
    assert_eq!(&codes[..10], &[401; 10], "{codes:?}");
    assert!(
        codes[10..].iter().all(|c| *c == 429),
        "past the allowance: {codes:?}"
    );
    let (status, body) = server
        .token_response(app_id, pw["secretText"].as_str().unwrap(), SCOPE)
        .await;
    assert_eq!(status, 200, "the right secret still works: {body}");
    let m = server.metrics().await;
    assert!(
        m.contains("lockstep_token_bad_secret_alerts_total 1"),
        "{m}"
    );
    let audit = std::fs::read_to_string(server.data_dir().join("audit.log")).unwrap();
    assert_eq!(
        audit.matches("RepeatedBadClientSecrets").count(),
        1,
        "one audit record, not one per attempt"
    );
    assert!(
        !audit.contains("guess-"),
        "attempted secrets are never recorded"
    );
}

#[tokio::test]
async fn repeated_wrong_passwords_are_throttled_per_address_and_user() {
    let server = Server::start().await;
    let mgmt = server.admin_token("api://lockstep").await;
    let password = "a long and unguessable passphrase 42";
    let (s, _, v) = server
        .send(
            Method::POST,
            &format!("{}/lockstep/v1/users", server.authority()),
            Some(&mgmt),
            Some(&json!({"userPrincipalName": "alice@contoso.test", "displayName": "Alice", "password": password})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let login = format!("{}/lockstep/v1/login", server.authority());
    let mut codes = Vec::new();
    for i in 0..13 {
        let body = json!({"username": "alice@contoso.test", "password": format!("wrong password number {i}")});
        let (s, _, _) = server.send(Method::POST, &login, None, Some(&body)).await;
        codes.push(s);
    }
    assert_eq!(&codes[..10], &[401; 10], "{codes:?}");
    assert!(codes[10..].iter().all(|c| *c == 429), "{codes:?}");
    // The same user signs in from another address.
    let ca = std::fs::read(&server.admin.ca_cert).unwrap();
    let elsewhere = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let resp = elsewhere
        .post(&login)
        .json(&json!({"username": "alice@contoso.test", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        200,
        "not locked out from another address"
    );
    let m = server.metrics().await;
    assert!(m.contains("lockstep_login_lockouts_total 1"), "{m}");
    let audit = std::fs::read_to_string(server.data_dir().join("audit.log")).unwrap();
    assert!(audit.contains("RepeatedFailedSignIns"));
    assert!(!audit.contains("wrong password number"));
}
