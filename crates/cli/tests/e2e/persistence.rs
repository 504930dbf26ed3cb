//! A restart (clean or after a crash) keeps everything: secrets, versions,
//! deleted state, vaults, credentials, tokens and the CA.

use lockstep_testkit::Server;
use reqwest::Method;
use serde_json::{json, Value};

use crate::{assert_kv_error, last_segment, with_api, Kv};

async fn snapshot(kv: &Kv<'_>, names: &[&str]) -> Value {
    let (mut secrets, _) = kv.list_all("/secrets", Some(5)).await;
    secrets.sort_by_key(|x| x["id"].as_str().unwrap().to_owned());
    let (deleted, _) = kv.list_all("/deletedsecrets", None).await;
    let mut versions = serde_json::Map::new();
    for name in names {
        let (mut v, _) = kv
            .list_all(&format!("/secrets/{name}/versions"), None)
            .await;
        v.sort_by_key(|x| x["id"].as_str().unwrap().to_owned());
        versions.insert((*name).to_owned(), Value::Array(v));
    }
    json!({"secrets": secrets, "deleted": deleted, "versions": versions})
}

#[tokio::test]
async fn restart_keeps_everything() {
    let mut server = Server::start().await;
    let ca_path = server.data_dir().join("tls").join("ca.pem");
    let ca_before = std::fs::read(&ca_path).unwrap();
    let bootstrap_before = std::fs::read(server.data_dir().join("bootstrap-admin.json")).unwrap();
    let port = server.port();

    let (snap, old_vault_token, old_mgmt_token, versions) = {
        let kv = Kv::new(&server).await;
        let mut versions = Vec::new();
        for i in 0..4 {
            let v = kv
                .set_body(
                    "kept",
                    json!({"value": format!("kept-{i}"), "tags": {"i": i.to_string()}, "contentType": "text/plain"}),
                )
                .await;
            versions.push(last_segment(&v["id"]));
        }
        kv.ok(
            Method::PATCH,
            &format!("/secrets/kept/{}", versions[1]),
            Some(json!({"attributes": {"enabled": false}})),
        )
        .await;
        kv.set("soft-deleted", "recover me").await;
        kv.ok(Method::DELETE, "/secrets/soft-deleted", None).await;
        kv.set("purged", "gone").await;
        kv.ok(Method::DELETE, "/secrets/purged", None).await;
        let (s, _) = kv
            .call(Method::DELETE, "/deletedsecrets/purged", None)
            .await;
        assert_eq!(s, 204);
        for i in 0..12 {
            kv.set(&format!("filler-{i}"), "f").await;
        }
        let mgmt = server.admin_token("api://lockstep").await;
        let (status, _, body) = server
            .send(
                Method::POST,
                &format!("{}/lockstep/v1/vaults", server.authority()),
                Some(&mgmt),
                Some(&json!({"name": "extra"})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        Kv::of(&server, "extra")
            .await
            .set("in-extra", "extra value")
            .await;
        let snap = snapshot(&kv, &["kept", "filler-3"]).await;
        (snap, kv.token.clone(), mgmt, versions)
    };

    server.restart().await;
    assert_eq!(server.port(), port, "the restart reuses the port");

    // The CA and bootstrap credentials are unchanged, and still work.
    assert_eq!(std::fs::read(&ca_path).unwrap(), ca_before, "CA changed");
    assert_eq!(
        std::fs::read(server.data_dir().join("bootstrap-admin.json")).unwrap(),
        bootstrap_before
    );
    let (status, body) = server
        .token_response(
            &server.admin.client_id,
            &server.admin.client_secret,
            "https://vault.localhost/.default",
        )
        .await;
    assert_eq!(status, 200, "bootstrap credentials after restart: {body}");

    // A token issued before the restart still works, on both APIs.
    let url = with_api(&format!("{}/secrets/kept/", server.vault_url("default")));
    let (status, _, body) = server
        .send(Method::GET, &url, Some(&old_vault_token), None)
        .await;
    assert_eq!(status, 200, "old token after restart: {body}");
    assert_eq!(body["value"], "kept-3");
    let (status, _, list) = server
        .send(
            Method::GET,
            &format!("{}/lockstep/v1/vaults", server.authority()),
            Some(&old_mgmt_token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["value"].as_array().unwrap().len(), 2);

    let kv = Kv::new(&server).await;
    assert_eq!(snapshot(&kv, &["kept", "filler-3"]).await, snap);
    for (i, v) in versions.iter().enumerate() {
        if i == 1 {
            assert_kv_error(
                &kv.get("kept", Some(v)).await,
                403,
                "Forbidden",
                Some("SecretDisabled"),
            );
        } else {
            assert_eq!(kv.value("kept", Some(v)).await, format!("kept-{i}"));
        }
    }
    let (_, latest) = kv.get("kept", None).await;
    assert_eq!(latest["previousVersion"], versions[2].as_str());
    // Deleted state survives: still deleted, still reserved, recoverable.
    assert_kv_error(
        &kv.get("soft-deleted", None).await,
        404,
        "SecretNotFound",
        None,
    );
    assert_kv_error(
        &kv.call(
            Method::PUT,
            "/secrets/soft-deleted",
            Some(json!({"value": "x"})),
        )
        .await,
        409,
        "Conflict",
        Some("ObjectIsDeletedButRecoverable"),
    );
    kv.ok(Method::POST, "/deletedsecrets/soft-deleted/recover", None)
        .await;
    assert_eq!(kv.value("soft-deleted", None).await, "recover me");
    // Purged stays purged.
    assert_kv_error(
        &kv.call(Method::GET, "/deletedsecrets/purged", None).await,
        404,
        "SecretNotFound",
        None,
    );
    assert_kv_error(&kv.get("purged", None).await, 404, "SecretNotFound", None);
    // The extra vault and its secret.
    assert_eq!(
        Kv::of(&server, "extra").await.value("in-extra", None).await,
        "extra value"
    );
    // Writes keep working, and continue the version chain.
    let v = kv.set("kept", "after restart").await;
    assert_eq!(v["previousVersion"], versions[3].as_str());

    // A second restart, after the writes above.
    server.restart().await;
    let kv = Kv::new(&server).await;
    assert_eq!(kv.value("kept", None).await, "after restart");
    assert_eq!(kv.value("soft-deleted", None).await, "recover me");
    assert_eq!(std::fs::read(&ca_path).unwrap(), ca_before);
}

#[tokio::test]
async fn acknowledged_writes_survive_a_crash() {
    let mut server = Server::start().await;
    let (version, token) = {
        let kv = Kv::new(&server).await;
        kv.set("crash-safe", "one").await;
        let v = kv.set("crash-safe", "two").await;
        kv.set("doomed", "x").await;
        kv.ok(Method::DELETE, "/secrets/doomed", None).await;
        (last_segment(&v["id"]), kv.token.clone())
    };
    server.kill();
    server.restart().await;
    let kv = Kv {
        server: &server,
        base: server.vault_url("default"),
        token,
    };
    let (_, got) = kv.get("crash-safe", None).await;
    assert_eq!(got["value"], "two", "{got}");
    assert_eq!(last_segment(&got["id"]), version);
    let (versions, _) = kv.list_all("/secrets/crash-safe/versions", None).await;
    assert_eq!(versions.len(), 2);
    let deleted = kv.ok(Method::GET, "/deletedsecrets/doomed", None).await;
    assert!(deleted["deletedDate"].is_i64());
}
