//! Bearer-token authentication of the data plane: the challenge for a
//! missing or bad token (sent before the body is read), wrong audiences,
//! tampered tokens and tokens of another Lockstep server.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use lockstep_testkit::Server;
use reqwest::Method;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{jwt_parts, with_api, Kv};

fn expected_challenge(server: &Server) -> String {
    format!(
        "Bearer authorization=\"https://localhost:{port}/{tenant}\", resource=\"https://vault.localhost:{port}\"",
        port = server.port(),
        tenant = server.admin.tenant_id
    )
}

/// Sends a request and asserts a 401 with the vault's challenge and
/// Key Vault's `Unauthorized` error.
async fn assert_challenged(
    server: &Server,
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) {
    let (status, headers, got) = server.send(method.clone(), url, token, body).await;
    assert_eq!(status, 401, "{method} {url}: {got}");
    let challenges: Vec<_> = headers.get_all("www-authenticate").iter().collect();
    assert_eq!(challenges.len(), 1, "{method} {url}: {challenges:?}");
    assert_eq!(
        challenges[0].to_str().unwrap(),
        expected_challenge(server),
        "{method} {url}"
    );
    assert_eq!(got["error"]["code"], "Unauthorized", "{got}");
    assert!(
        got["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{got}"
    );
}

#[tokio::test]
async fn missing_token_gets_the_challenge_on_every_route() {
    let server = Server::start().await;
    let kv = Kv::new(&server).await;
    kv.set("exists", "value").await;
    let base = server.vault_url("default");
    let body = json!({"value": "x"});
    let cases: Vec<(Method, String, Option<&Value>)> = vec![
        (Method::GET, with_api(&format!("{base}/secrets")), None),
        (
            Method::GET,
            with_api(&format!("{base}/secrets/exists/")),
            None,
        ),
        (
            Method::GET,
            with_api(&format!("{base}/secrets/exists/versions")),
            None,
        ),
        (
            Method::PUT,
            with_api(&format!("{base}/secrets/new")),
            Some(&body),
        ),
        (
            Method::PATCH,
            with_api(&format!("{base}/secrets/exists")),
            Some(&body),
        ),
        (
            Method::DELETE,
            with_api(&format!("{base}/secrets/exists")),
            None,
        ),
        (
            Method::POST,
            with_api(&format!("{base}/secrets/exists/backup")),
            None,
        ),
        (
            Method::POST,
            with_api(&format!("{base}/secrets/restore")),
            Some(&body),
        ),
        (
            Method::GET,
            with_api(&format!("{base}/deletedsecrets")),
            None,
        ),
        (
            Method::DELETE,
            with_api(&format!("{base}/deletedsecrets/exists")),
            None,
        ),
        // Authentication comes before any other check.
        (Method::GET, format!("{base}/secrets/exists/"), None),
        (
            Method::GET,
            with_api(&format!("{base}/secrets/bad_name/")),
            None,
        ),
        (Method::GET, with_api(&format!("{base}/nowhere")), None),
    ];
    for (method, url, body) in cases {
        assert_challenged(&server, method, &url, None, body).await;
    }
    // Not bearer tokens.
    let url = with_api(&format!("{base}/secrets/exists/"));
    for header in [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        "bearer",
        "Token abc",
    ] {
        let resp = server
            .http
            .get(&url)
            .header("Authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{header}");
        assert_eq!(
            resp.headers()["www-authenticate"].to_str().unwrap(),
            expected_challenge(&server)
        );
    }
    // Nothing was changed by the refused writes.
    assert_eq!(kv.value("exists", None).await, "value");
    let (items, _) = kv.list_all("/secrets", None).await;
    assert_eq!(items.len(), 1);
}

#[tokio::test]
async fn unauthenticated_large_put_is_refused_before_the_body_is_read() {
    let server = Server::start().await;
    let base = server.vault_url("default");
    let url = with_api(&format!("{base}/secrets/big"));

    // A body larger than the server would ever read still gets the 401.
    // (Over HTTP/2, where a client can take a response that arrives before
    // it has finished sending; an HTTP/1.1 client without `Expect:
    // 100-continue` may instead see its connection close mid-body.)
    let pem = std::fs::read(&server.admin.ca_cert).unwrap();
    let h2 = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .resolve(
            "default.vault.localhost",
            std::net::SocketAddr::from(([127, 0, 0, 1], server.port())),
        )
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let big = format!("{{\"value\":\"{}\"}}", "a".repeat(20 * 1024 * 1024));
    let resp = h2
        .put(&url)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"].to_str().unwrap(),
        expected_challenge(&server)
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "Unauthorized");

    // A request whose body never finishes arriving is answered at once:
    // the server does not wait for the body before challenging.
    let head = raw_put_without_body(&server, "/secrets/big").await;
    let status_line = head.lines().next().unwrap_or_default();
    assert!(status_line.starts_with("HTTP/1.1 401"), "{head}");
    let challenge = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("www-authenticate")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no challenge in {head}"));
    assert_eq!(challenge, expected_challenge(&server));

    let kv = Kv::new(&server).await;
    let (items, _) = kv.list_all("/secrets", None).await;
    assert!(items.is_empty(), "{items:?}");
}

/// Sends the head of a PUT announcing 100 MB and only the first bytes of
/// its body over HTTP/1.1, and returns the response head the server sends
/// while the rest of the body is still outstanding.
async fn raw_put_without_body(server: &Server, path: &str) -> String {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&server.admin.ca_cert).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .unwrap();
    let host = "default.vault.localhost";
    let mut tls = connector
        .connect(ServerName::try_from(host).unwrap(), tcp)
        .await
        .unwrap();
    let head = format!(
        "PUT {path}?api-version={api} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\n\r\n{{\"value\":\"aaaaaaaaaaaaaaaa",
        api = crate::API,
        port = server.port()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.flush().await.unwrap();
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tls.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed without a response");
            got.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(15), read)
        .await
        .expect("no response while the body was outstanding: the server waited for the body");
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn wrong_audience_tokens_are_refused() {
    let server = Server::start().await;
    let kv = Kv::new(&server).await;
    kv.set("s", "v").await;
    let url = with_api(&format!("{}/secrets/s/", server.vault_url("default")));

    let management = server.admin_token("api://lockstep").await;
    assert_eq!(jwt_parts(&management).1["aud"], "api://lockstep");
    assert_challenged(&server, Method::GET, &url, Some(&management), None).await;
    let graph = server.admin_token("https://graph.microsoft.com").await;
    assert_challenged(&server, Method::GET, &url, Some(&graph), None).await;

    // Both vault audiences the server advertises are accepted: the bare
    // suffix and the challenge's resource (with the port).
    let bare = server.vault_token().await;
    assert_eq!(jwt_parts(&bare).1["aud"], "https://vault.localhost");
    let with_port = server
        .admin_token(&format!("https://vault.localhost:{}", server.port()))
        .await;
    for token in [&bare, &with_port] {
        let (status, _, body) = server.send(Method::GET, &url, Some(token), None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["value"], "v");
    }
    // A vault token is not a management token.
    let mgmt_url = format!("{}/lockstep/v1/vaults", server.authority());
    let (status, headers, body) = server.send(Method::GET, &mgmt_url, Some(&bare), None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "Unauthorized");
    assert!(headers.contains_key("www-authenticate"));
}

fn flip(c: char) -> char {
    if c == 'A' {
        'B'
    } else {
        'A'
    }
}

#[tokio::test]
async fn tampered_tokens_are_refused() {
    let server = Server::start().await;
    let kv = Kv::new(&server).await;
    kv.set("s", "v").await;
    let url = with_api(&format!("{}/secrets/s/", server.vault_url("default")));
    let token = kv.token.clone();
    let parts: Vec<&str> = token.split('.').collect();

    // One character of the signature changed (away from the final
    // character, whose low bits base64url may ignore).
    let sig: Vec<char> = parts[2].chars().collect();
    for i in [0, sig.len() / 2, sig.len() - 2] {
        let mut s = sig.clone();
        s[i] = flip(s[i]);
        let forged = format!("{}.{}.{}", parts[0], parts[1], s.iter().collect::<String>());
        assert_challenged(&server, Method::GET, &url, Some(&forged), None).await;
    }
    // Claims changed under the original signature.
    let (_, mut claims) = jwt_parts(&token);
    claims["exp"] = json!(claims["exp"].as_i64().unwrap() + 86_400);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    let forged = format!("{}.{payload}.{}", parts[0], parts[2]);
    assert_challenged(&server, Method::GET, &url, Some(&forged), None).await;
    // Algorithm downgrade to "none", signature dropped.
    let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    for forged in [
        format!("{none}.{}.", parts[1]),
        format!("{none}.{}", parts[1]),
    ] {
        assert_challenged(&server, Method::GET, &url, Some(&forged), None).await;
    }
    // Garbage.
    for forged in ["abc", "a.b.c", &token[..token.len() - 10]] {
        assert_challenged(&server, Method::GET, &url, Some(forged), None).await;
    }
    // The genuine token still works (no state was poisoned).
    let (status, _, body) = server.send(Method::GET, &url, Some(&token), None).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn tokens_of_another_server_are_refused() {
    let (a, b) = tokio::join!(Server::start(), Server::start());
    let kv_a = Kv::new(&a).await;
    kv_a.set("s", "v").await;
    let url = with_api(&format!("{}/secrets/s/", a.vault_url("default")));

    let foreign = b.vault_token().await;
    assert_challenged(&a, Method::GET, &url, Some(&foreign), None).await;
    // And the other way round: a's token on b's vault.
    let b_url = with_api(&format!("{}/secrets", b.vault_url("default")));
    assert_challenged(&b, Method::GET, &b_url, Some(&kv_a.token), None).await;
    // b's management token on a's management API.
    let foreign_mgmt = b.admin_token("api://lockstep").await;
    let (status, _, body) = a
        .send(
            Method::GET,
            &format!("{}/lockstep/v1/vaults", a.authority()),
            Some(&foreign_mgmt),
            None,
        )
        .await;
    assert_eq!(status, 401, "{body}");
    // a's credentials are not b's.
    let (status, body) = b
        .token_response(
            &a.admin.client_id,
            &a.admin.client_secret,
            "https://vault.localhost/.default",
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error_codes"],
        json!([700016]),
        "a's app is unknown to b: {body}"
    );

    let (status, _, body) = a.send(Method::GET, &url, Some(&kv_a.token), None).await;
    assert_eq!(status, 200, "{body}");
}
