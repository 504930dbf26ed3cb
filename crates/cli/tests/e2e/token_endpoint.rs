//! The Entra-style token endpoint, OpenID discovery and JWKS.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use lockstep_testkit::Server;
use reqwest::Method;
use serde_json::{json, Value};

use crate::{jwt_parts, now, with_api};

const VAULT_SCOPE: &str = "https://vault.localhost/.default";

/// A token request's form fields.
type Form<'a> = Vec<(&'a str, &'a str)>;

fn token_url(server: &Server, tenant: &str) -> String {
    format!("{}/{tenant}/oauth2/v2.0/token", server.authority())
}

async fn post_form(
    server: &Server,
    tenant: &str,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (u16, Value) {
    let mut req = server.http.post(token_url(server, tenant)).form(form);
    if let Some((id, secret)) = basic {
        req = req.header(
            "Authorization",
            format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))),
        );
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    (status, resp.json().await.unwrap())
}

fn assert_guid(v: &Value) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("guid expected, got {v}"));
    assert_eq!(s.len(), 36, "{s}");
    assert_eq!(s.matches('-').count(), 4, "{s}");
}

fn assert_entra_error(got: &(u16, Value), status: u16, error: &str, code: u32) {
    let (s, body) = got;
    assert_eq!(*s, status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    let desc = body["error_description"].as_str().unwrap();
    assert!(desc.starts_with(&format!("AADSTS{code}:")), "{desc}");
    assert_eq!(body["error_codes"], json!([code]), "{body}");
    assert!(
        body["timestamp"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert_guid(&body["trace_id"]);
    assert_guid(&body["correlation_id"]);
    assert!(body.get("access_token").is_none());
}

#[tokio::test]
async fn client_credentials_issue_verifiable_tokens() {
    let server = Server::start().await;
    let admin = server.admin.clone();
    let tenant = admin.tenant_id.as_str();
    let resp = server
        .http
        .post(token_url(&server, tenant))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", admin.client_id.as_str()),
            ("client_secret", admin.client_secret.as_str()),
            ("scope", VAULT_SCOPE),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("no-store"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    let expires_in = body["expires_in"].as_i64().unwrap();
    assert!((60..=86_400).contains(&expires_in), "{body}");
    let token = body["access_token"].as_str().unwrap();

    let (header, claims) = jwt_parts(token);
    assert_eq!(header["alg"], "RS256");
    let kid = header["kid"].as_str().expect("kid").to_owned();
    assert_eq!(claims["aud"], "https://vault.localhost");
    let issuer = format!("{}/{tenant}/v2.0", server.authority());
    assert_eq!(claims["iss"], issuer.as_str());
    assert_eq!(claims["tid"], tenant);
    assert_eq!(claims["appid"], admin.client_id.as_str());
    assert!(
        claims["oid"].as_str().is_some_and(|o| !o.is_empty()),
        "{claims}"
    );
    let (iat, nbf, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["nbf"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert!((now() - 60..=now() + 5).contains(&iat), "{claims}");
    assert!(nbf <= iat + 1 && exp > iat, "{claims}");
    assert_eq!(exp - iat, expires_in, "{claims}");

    // Discovery points at the JWKS that holds the token's key.
    let (status, _, config) = server
        .send(
            Method::GET,
            &format!(
                "{}/{tenant}/v2.0/.well-known/openid-configuration",
                server.authority()
            ),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{config}");
    assert_eq!(config["issuer"], issuer.as_str());
    assert_eq!(config["token_endpoint"], token_url(&server, tenant));
    let jwks_uri = config["jwks_uri"].as_str().unwrap().to_owned();
    assert_eq!(
        jwks_uri,
        format!("{}/{tenant}/discovery/v2.0/keys", server.authority())
    );
    let (status, _, jwks) = server.send(Method::GET, &jwks_uri, None, None).await;
    assert_eq!(status, 200, "{jwks}");
    let keys = jwks["keys"].as_array().unwrap();
    let key = keys
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap_or_else(|| panic!("kid {kid} not in {jwks}"));
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["use"], "sig");
    assert!(
        key["n"].as_str().is_some_and(|n| n.len() >= 342),
        "2048-bit modulus: {key}"
    );
    assert_eq!(key["e"], "AQAB");
    // Unknown tenant: Entra's error.
    let (status, _, body) = server
        .send(
            Method::GET,
            &format!(
                "{}/00000000-0000-4000-8000-000000000000/v2.0/.well-known/openid-configuration",
                server.authority()
            ),
            None,
            None,
        )
        .await;
    assert_entra_error(&(status, body), 400, "invalid_request", 90002);

    // The token works on the vault.
    let url = with_api(&format!("{}/secrets", server.vault_url("default")));
    let (status, _, body) = server.send(Method::GET, &url, Some(token), None).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn http_basic_client_authentication() {
    let server = Server::start().await;
    let admin = server.admin.clone();
    let tenant = admin.tenant_id.as_str();
    let form = [("grant_type", "client_credentials"), ("scope", VAULT_SCOPE)];

    let (status, body) = post_form(
        &server,
        tenant,
        &form,
        Some((&admin.client_id, &admin.client_secret)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(jwt_parts(token).1["appid"], admin.client_id.as_str());
    let url = with_api(&format!("{}/secrets", server.vault_url("default")));
    let (status, _, body) = server.send(Method::GET, &url, Some(token), None).await;
    assert_eq!(status, 200, "{body}");

    let wrong = post_form(
        &server,
        tenant,
        &form,
        Some((&admin.client_id, "not-the-secret")),
    )
    .await;
    assert_entra_error(&wrong, 401, "invalid_client", 7000215);
    let unknown = post_form(
        &server,
        tenant,
        &form,
        Some(("11111111-1111-4111-8111-111111111111", &admin.client_secret)),
    )
    .await;
    assert_entra_error(&unknown, 400, "unauthorized_client", 700016);
}

#[tokio::test]
async fn token_errors_have_entra_codes() {
    let server = Server::start().await;
    let admin = server.admin.clone();
    let tenant = admin.tenant_id.as_str();
    let id = admin.client_id.as_str();
    let secret = admin.client_secret.as_str();
    let cc = "client_credentials";

    let cases: Vec<(&str, Form, u16, &str, u32)> = vec![
        (
            "00000000-0000-4000-8000-000000000000",
            vec![
                ("grant_type", cc),
                ("client_id", id),
                ("client_secret", secret),
                ("scope", VAULT_SCOPE),
            ],
            400,
            "invalid_request",
            90002,
        ),
        (
            "not-a-tenant",
            vec![
                ("grant_type", cc),
                ("client_id", id),
                ("client_secret", secret),
                ("scope", VAULT_SCOPE),
            ],
            400,
            "invalid_request",
            90002,
        ),
        (
            tenant,
            vec![
                ("grant_type", cc),
                ("client_id", "22222222-2222-4222-8222-222222222222"),
                ("client_secret", secret),
                ("scope", VAULT_SCOPE),
            ],
            400,
            "unauthorized_client",
            700016,
        ),
        (
            tenant,
            vec![
                ("grant_type", cc),
                ("client_id", id),
                ("client_secret", "wrong-secret-value"),
                ("scope", VAULT_SCOPE),
            ],
            401,
            "invalid_client",
            7000215,
        ),
        (
            tenant,
            vec![
                ("grant_type", "password"),
                ("client_id", id),
                ("client_secret", secret),
                ("scope", VAULT_SCOPE),
            ],
            400,
            "unsupported_grant_type",
            70003,
        ),
        (
            tenant,
            vec![
                ("client_id", id),
                ("client_secret", secret),
                ("scope", VAULT_SCOPE),
            ],
            400,
            "invalid_request",
            900144,
        ),
        (
            tenant,
            vec![
                ("grant_type", cc),
                ("client_id", id),
                ("client_secret", secret),
            ],
            400,
            "invalid_request",
            900144,
        ),
        (
            tenant,
            vec![
                ("grant_type", cc),
                ("client_secret", secret),
                ("scope", VAULT_SCOPE),
            ],
            400,
            "invalid_request",
            900144,
        ),
        (
            tenant,
            vec![
                ("grant_type", cc),
                ("client_id", id),
                ("scope", VAULT_SCOPE),
            ],
            400,
            "invalid_request",
            900144,
        ),
        (
            tenant,
            vec![
                ("grant_type", cc),
                ("client_id", id),
                ("client_secret", secret),
                ("scope", "https://unknown.example.com/.default"),
            ],
            400,
            "invalid_resource",
            500011,
        ),
    ];
    for (tenant, form, status, error, code) in cases {
        let got = post_form(&server, tenant, &form, None).await;
        assert_entra_error(&got, status, error, code);
        let text = got.1.to_string();
        assert!(!text.contains(secret), "the secret is echoed: {text}");
    }
    // The admin's credentials still work after the failures.
    let (status, body) = server.token_response(id, secret, VAULT_SCOPE).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn per_address_rate_limit_is_configurable() {
    // One request per second from an address, two at once.
    let server = Server::start_with(lockstep_testkit::Options {
        args: vec!["--token-rate-limit".into(), "1".into()],
        ..Default::default()
    })
    .await;
    let admin = server.admin.clone();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", admin.client_id.as_str()),
        ("client_secret", admin.client_secret.as_str()),
        ("scope", VAULT_SCOPE),
    ];
    for _ in 0..2 {
        let (status, body) = post_form(&server, &admin.tenant_id, &form, None).await;
        assert_eq!(status, 200, "{body}");
    }
    let resp = server
        .http
        .post(token_url(&server, &admin.tenant_id))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error_codes"][0], 50196, "{body}");
}

/// What the token endpoint knows about an app is answered from memory once
/// read: deleting the app, removing its secret or restoring it must still
/// take effect at the next request.
#[tokio::test]
async fn app_changes_take_effect_at_the_next_token_request() {
    let server = Server::start().await;
    let graph = server.admin_token("https://graph.microsoft.com").await;
    let url = |path: &str| format!("{}/v1.0{path}", server.authority());
    let (status, _, app) = server
        .send(
            Method::POST,
            &url("/applications"),
            Some(&graph),
            Some(&json!({ "displayName": "cached" })),
        )
        .await;
    assert_eq!(status, 201, "{app}");
    let object_id = app["id"].as_str().unwrap();
    let app_id = app["appId"].as_str().unwrap();
    let mut secrets = Vec::new();
    for _ in 0..2 {
        let (status, _, password) = server
            .send(
                Method::POST,
                &url(&format!("/applications/{object_id}/addPassword")),
                Some(&graph),
                Some(&json!({ "passwordCredential": {} })),
            )
            .await;
        assert_eq!(status, 200, "{password}");
        secrets.push((
            password["keyId"].as_str().unwrap().to_owned(),
            password["secretText"].as_str().unwrap().to_owned(),
        ));
    }
    let token = |secret: String| {
        let server = &server;
        async move { server.token_response(app_id, &secret, VAULT_SCOPE).await }
    };
    assert_eq!(token(secrets[0].1.clone()).await.0, 200);
    assert_eq!(token(secrets[1].1.clone()).await.0, 200);

    // A removed secret is refused at once; the other still works.
    let (status, _, _) = server
        .send(
            Method::POST,
            &url(&format!("/applications/{object_id}/removePassword")),
            Some(&graph),
            Some(&json!({ "keyId": secrets[0].0 })),
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = token(secrets[0].1.clone()).await;
    assert_eq!(
        (status, &body["error_codes"][0]),
        (401, &json!(7000215)),
        "{body}"
    );
    assert_eq!(token(secrets[1].1.clone()).await.0, 200);

    // A deleted app gets no token; restored, it does again.
    let (status, _, _) = server
        .send(
            Method::DELETE,
            &url(&format!("/applications/{object_id}")),
            Some(&graph),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = token(secrets[1].1.clone()).await;
    assert_eq!(
        (status, &body["error_codes"][0]),
        (400, &json!(700016)),
        "{body}"
    );
    let (status, _, restored) = server
        .send(
            Method::POST,
            &url(&format!("/directory/deletedItems/{object_id}/restore")),
            Some(&graph),
            None,
        )
        .await;
    assert_eq!(status, 200, "{restored}");
    assert_eq!(token(secrets[1].1.clone()).await.0, 200);
}
