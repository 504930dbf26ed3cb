//! Backup and restore: every version round-trips; blobs that were changed,
//! or made by another server, are refused.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use lockstep_testkit::Server;
use reqwest::Method;
use serde_json::{json, Value};

use crate::{assert_kv_error, last_segment, Kv};

/// Three versions with distinct metadata; the middle one disabled.
async fn three_versions(kv: &Kv<'_>, name: &str) -> Vec<Value> {
    let v1 = kv
        .set_body(
            name,
            json!({"value": "first", "contentType": "text/plain", "tags": {"n": "1"}}),
        )
        .await;
    let v2 = kv
        .set_body(
            name,
            json!({"value": "second", "tags": {"n": "2"}, "attributes": {"enabled": false}}),
        )
        .await;
    let v3 = kv
        .set_body(
            name,
            json!({"value": "third ✓", "attributes": {"exp": 4_102_444_800_i64}}),
        )
        .await;
    vec![v1, v2, v3]
}

async fn backup(kv: &Kv<'_>, name: &str) -> String {
    let b = kv
        .ok(Method::POST, &format!("/secrets/{name}/backup"), None)
        .await;
    let blob = b["value"].as_str().unwrap().to_owned();
    assert!(
        blob.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
        "backup is unpadded base64url"
    );
    blob
}

async fn versions_metadata(kv: &Kv<'_>, name: &str) -> Vec<Value> {
    let (mut items, _) = kv
        .list_all(&format!("/secrets/{name}/versions"), None)
        .await;
    items.sort_by_key(|x| x["id"].as_str().unwrap().to_owned());
    items
}

#[tokio::test]
async fn backup_and_restore_round_trip_every_version() {
    let server = Server::start().await;
    let kv = Kv::new(&server).await;
    let set = three_versions(&kv, "round-trip").await;
    let ids: Vec<String> = set.iter().map(|v| last_segment(&v["id"])).collect();
    let before = versions_metadata(&kv, "round-trip").await;
    let blob = backup(&kv, "round-trip").await;
    assert!(!String::from_utf8_lossy(&URL_SAFE_NO_PAD.decode(&blob).unwrap()).contains("first"));

    // Restoring over a live secret, or a deleted one, is a conflict.
    assert_kv_error(
        &kv.call(
            Method::POST,
            "/secrets/restore",
            Some(json!({"value": blob})),
        )
        .await,
        409,
        "Conflict",
        None,
    );
    kv.ok(Method::DELETE, "/secrets/round-trip", None).await;
    assert_kv_error(
        &kv.call(
            Method::POST,
            "/secrets/restore",
            Some(json!({"value": blob})),
        )
        .await,
        409,
        "Conflict",
        Some("ObjectIsDeletedButRecoverable"),
    );
    let (status, _) = kv
        .call(Method::DELETE, "/deletedsecrets/round-trip", None)
        .await;
    assert_eq!(status, 204);
    assert_kv_error(
        &kv.get("round-trip", None).await,
        404,
        "SecretNotFound",
        None,
    );

    let restored = kv
        .ok(
            Method::POST,
            "/secrets/restore",
            Some(json!({"value": blob})),
        )
        .await;
    assert_eq!(
        restored["id"],
        format!(
            "{}/secrets/round-trip/{}",
            server.vault_url("default"),
            ids[2]
        )
    );
    assert!(restored.get("value").is_none(), "{restored}");

    // The same versions, with the same metadata and values.
    assert_eq!(versions_metadata(&kv, "round-trip").await, before);
    assert_eq!(kv.value("round-trip", None).await, "third ✓");
    assert_eq!(kv.value("round-trip", Some(&ids[0])).await, "first");
    let (_, v1) = kv.get("round-trip", Some(&ids[0])).await;
    assert_eq!(v1["contentType"], "text/plain");
    assert_eq!(v1["tags"], json!({"n": "1"}));
    assert_kv_error(
        &kv.get("round-trip", Some(&ids[1])).await,
        403,
        "Forbidden",
        Some("SecretDisabled"),
    );
    kv.ok(
        Method::PATCH,
        &format!("/secrets/round-trip/{}", ids[1]),
        Some(json!({"attributes": {"enabled": true}})),
    )
    .await;
    assert_eq!(kv.value("round-trip", Some(&ids[1])).await, "second");
    let (_, latest) = kv.get("round-trip", None).await;
    assert_eq!(latest["previousVersion"], ids[1].as_str());
    assert_eq!(latest["attributes"]["exp"], 4_102_444_800_i64);

    // New versions continue the history.
    let v4 = kv.set("round-trip", "fourth").await;
    assert_eq!(v4["previousVersion"], ids[2].as_str());
    assert_eq!(versions_metadata(&kv, "round-trip").await.len(), 4);

    // Padded standard base64 of the same bytes is accepted too.
    let padded =
        base64::engine::general_purpose::STANDARD.encode(URL_SAFE_NO_PAD.decode(&blob).unwrap());
    kv.ok(Method::DELETE, "/secrets/round-trip", None).await;
    let (status, _) = kv
        .call(Method::DELETE, "/deletedsecrets/round-trip", None)
        .await;
    assert_eq!(status, 204);
    kv.ok(
        Method::POST,
        "/secrets/restore",
        Some(json!({"value": padded})),
    )
    .await;
    assert_eq!(versions_metadata(&kv, "round-trip").await.len(), 3);

    assert_kv_error(
        &kv.call(Method::POST, "/secrets/never-existed/backup", None)
            .await,
        404,
        "SecretNotFound",
        None,
    );
}

#[tokio::test]
async fn restore_into_another_vault_of_the_same_server() {
    let server = Server::start().await;
    let kv = Kv::new(&server).await;
    let set = three_versions(&kv, "copied").await;
    let ids: Vec<String> = set.iter().map(|v| last_segment(&v["id"])).collect();
    // Read every value first, so that any cached keys are warm.
    assert_eq!(kv.value("copied", Some(&ids[0])).await, "first");
    assert_eq!(kv.value("copied", None).await, "third ✓");
    let blob = backup(&kv, "copied").await;

    let token = server.admin_token("api://lockstep").await;
    let (status, _, body) = server
        .send(
            Method::POST,
            &format!("{}/lockstep/v1/vaults", server.authority()),
            Some(&token),
            Some(&json!({"name": "second-vault"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let other = Kv::of(&server, "second-vault").await;
    let restored = other
        .ok(
            Method::POST,
            "/secrets/restore",
            Some(json!({"value": blob})),
        )
        .await;
    assert_eq!(last_segment(&restored["id"]), ids[2]);
    assert_eq!(other.value("copied", None).await, "third ✓");
    assert_eq!(other.value("copied", Some(&ids[0])).await, "first");
    // Both copies stay readable and independent.
    assert_eq!(kv.value("copied", Some(&ids[0])).await, "first");
    other.set("copied", "only in second").await;
    assert_eq!(kv.value("copied", None).await, "third ✓");
    assert_eq!(other.value("copied", None).await, "only in second");

    // A vault deleted and re-created under the same name takes the same
    // backup again (same version ids, new data keys).
    let vault_url = format!("{}/lockstep/v1/vaults/second-vault", server.authority());
    let (status, _, _) = server
        .send(Method::DELETE, &vault_url, Some(&token), None)
        .await;
    assert_eq!(status, 204);
    let (status, _, _) = server
        .send(
            Method::POST,
            &format!("{}/lockstep/v1/vaults", server.authority()),
            Some(&token),
            Some(&json!({"name": "second-vault"})),
        )
        .await;
    assert_eq!(status, 201);
    other
        .ok(
            Method::POST,
            "/secrets/restore",
            Some(json!({"value": blob})),
        )
        .await;
    assert_eq!(other.value("copied", Some(&ids[0])).await, "first");
    assert_eq!(other.value("copied", None).await, "third ✓");
    assert_eq!(kv.value("copied", None).await, "third ✓");
}

#[tokio::test]
async fn tampered_and_foreign_backups_are_refused() {
    let (a, b) = tokio::join!(Server::start(), Server::start());
    let kv_a = Kv::new(&a).await;
    let kv_b = Kv::new(&b).await;
    three_versions(&kv_a, "guarded").await;
    three_versions(&kv_b, "guarded-b").await;
    let blob = backup(&kv_a, "guarded").await;
    let foreign = backup(&kv_b, "guarded-b").await;

    // Make room for a restore on a: only the blob decides.
    kv_a.ok(Method::DELETE, "/secrets/guarded", None).await;
    let (status, _) = kv_a
        .call(Method::DELETE, "/deletedsecrets/guarded", None)
        .await;
    assert_eq!(status, 204);

    let mut bytes = URL_SAFE_NO_PAD.decode(&blob).unwrap();
    let mut tampered = Vec::new();
    for i in [0, 8, bytes.len() / 2, bytes.len() - 3] {
        let mut b = bytes.clone();
        b[i] ^= 0x01;
        tampered.push(URL_SAFE_NO_PAD.encode(b));
    }
    bytes.truncate(bytes.len() - 5);
    tampered.push(URL_SAFE_NO_PAD.encode(&bytes));
    for bad in tampered.iter().map(String::as_str).chain([
        foreign.as_str(),
        "",
        "AAAA",
        "not base64 !!",
        "LSBK1",
    ]) {
        assert_kv_error(
            &kv_a
                .call(
                    Method::POST,
                    "/secrets/restore",
                    Some(json!({"value": bad})),
                )
                .await,
            400,
            "BadParameter",
            None,
        );
    }
    for body in [json!({}), json!({"value": 1}), json!({"value": null})] {
        assert_kv_error(
            &kv_a
                .call(Method::POST, "/secrets/restore", Some(body))
                .await,
            400,
            "BadParameter",
            None,
        );
    }
    // Nothing was restored by the refused blobs.
    let (items, _) = kv_a.list_all("/secrets", None).await;
    assert!(items.is_empty(), "{items:?}");
    let (items, _) = kv_a.list_all("/deletedsecrets", None).await;
    assert!(items.is_empty(), "{items:?}");
    // The genuine blob still restores.
    kv_a.ok(
        Method::POST,
        "/secrets/restore",
        Some(json!({"value": blob})),
    )
    .await;
    assert_eq!(kv_a.value("guarded", None).await, "third ✓");
}
