//! The Key Vault secrets data plane: every operation, its JSON shape, and
//! its validation errors.

use lockstep_testkit::Server;
use reqwest::Method;
use serde_json::{json, Value};

use crate::{assert_kv_error, assert_version_id, last_segment, now, Kv, API};

fn assert_attributes(v: &Value, enabled: bool) {
    let a = &v["attributes"];
    assert_eq!(a["enabled"], enabled, "{v}");
    assert_eq!(a["recoveryLevel"], "Recoverable+Purgeable", "{v}");
    assert_eq!(a["recoverableDays"], 90, "{v}");
    let t = now();
    for key in ["created", "updated"] {
        let at = a[key].as_i64().unwrap_or_else(|| panic!("{key} in {v}"));
        assert!((t - 600..=t + 5).contains(&at), "{key} = {at}, now {t}");
    }
}

#[tokio::test]
async fn set_and_get_latest_and_by_version() {
    let server = Server::start().await;
    let kv = Kv::new(&server).await;
    let exp = now() + 70 * 86_400;
    let nbf = now() - 60;

    let v1 = kv
        .set_body(
            "app-password",
            json!({
                "value": "first-value",
                "contentType": "text/plain",
                "tags": {"owner": "team-a", "env": "test"},
                "attributes": {"enabled": true, "exp": exp, "nbf": nbf},
            }),
        )
        .await;
    assert_eq!(v1["value"], "first-value");
    assert_eq!(v1["contentType"], "text/plain");
    assert_eq!(v1["tags"], json!({"owner": "team-a", "env": "test"}));
    assert_eq!(v1["attributes"]["exp"], exp);
    assert_eq!(v1["attributes"]["nbf"], nbf);
    assert_attributes(&v1, true);
    assert!(
        v1.get("previousVersion").is_none(),
        "first version has no previousVersion: {v1}"
    );
    let id1 = v1["id"].as_str().unwrap().to_owned();
    let version1 = last_segment(&v1["id"]);
    assert_version_id(&version1);
    assert_eq!(
        id1,
        format!(
            "{}/secrets/app-password/{version1}",
            server.vault_url("default")
        )
    );

    let v2 = kv.set("app-password", "second-value").await;
    let version2 = last_segment(&v2["id"]);
    assert_version_id(&version2);
    assert_ne!(version1, version2);
    assert_eq!(v2["previousVersion"], version1.as_str(), "{v2}");
    assert!(
        v2.get("contentType").is_none(),
        "a new version starts fresh: {v2}"
    );
    assert!(v2.get("tags").is_none(), "a new version starts fresh: {v2}");
    assert!(v2["attributes"].get("exp").is_none(), "{v2}");
    assert_attributes(&v2, true);

    let v3 = kv.set("app-password", "third-value").await;
    let version3 = last_segment(&v3["id"]);
    assert_eq!(v3["previousVersion"], version2.as_str());

    // Latest: with and without the trailing slash, and with another case.
    let (status, latest) = kv.get("app-password", None).await;
    assert_eq!(status, 200, "{latest}");
    assert_eq!(latest["value"], "third-value");
    assert_eq!(last_segment(&latest["id"]), version3);
    assert_eq!(latest["previousVersion"], version2.as_str());
    let no_slash = kv.ok(Method::GET, "/secrets/app-password", None).await;
    assert_eq!(no_slash["value"], "third-value");
    assert_eq!(kv.value("APP-Password", None).await, "third-value");

    // By version.
    let (status, old) = kv.get("app-password", Some(&version1)).await;
    assert_eq!(status, 200, "{old}");
    assert_eq!(old["value"], "first-value");
    assert_eq!(old["id"], id1.as_str());
    assert_eq!(old["tags"]["owner"], "team-a");
    assert_eq!(old["contentType"], "text/plain");
    assert_eq!(
        kv.value("app-password", Some(&version2)).await,
        "second-value"
    );

    // Values are returned byte for byte.
    let odd = "line1\nline2\t\"quoted\" \\ ünïcødé 🔑 \u{0}end";
    kv.set("odd-value", odd).await;
    assert_eq!(kv.value("odd-value", None).await, odd);
    kv.set("empty-value", "").await;
    assert_eq!(kv.value("empty-value", None).await, "");

    // Unknown secret, unknown version, malformed version.
    assert_kv_error(
        &kv.get("no-such-secret", None).await,
        404,
        "SecretNotFound",
        None,
    );
    assert_kv_error(
        &kv.get("app-password", Some("0123456789abcdef0123456789abcdef"))
            .await,
        404,
        "SecretNotFound",
        None,
    );
    assert_kv_error(
        &kv.get("app-password", Some("not-a-version")).await,
        404,
        "SecretNotFound",
        None,
    );
}

#[tokio::test]
async fn update_changes_attributes_tags_and_content_type() {
    let server = Server::start().await;
    let kv = Kv::new(&server).await;
    let v1 = kv
        .set_body("conn", json!({"value": "v-one", "tags": {"a": "1"}}))
        .await;
    let version1 = last_segment(&v1["id"]);
    let v2 = kv.set("conn", "v-two").await;
    let version2 = last_segment(&v2["id"]);

    // PATCH of the latest version (empty version segment).
    let exp = now() + 86_400;
    let patched = kv
        .ok(
            Method::PATCH,
            "/secrets/conn/",
            Some(json!({
                "contentType": "application/x-password",
                "tags": {"rotated": "yes", "by": "test"},
                "attributes": {"exp": exp},
            })),
        )
        .await;
    assert!(
        patched.get("value").is_none(),
        "update returns no value: {patched}"
    );
    assert_eq!(last_segment(&patched["id"]), version2);
    assert_eq!(patched["contentType"], "application/x-password");
    assert_eq!(patched["tags"], json!({"rotated": "yes", "by": "test"}));
    assert_eq!(patched["attributes"]["exp"], exp);
    assert_attributes(&patched, true);

    let (_, got) = kv.get("conn", None).await;
    assert_eq!(got["value"], "v-two");
    assert_eq!(got["contentType"], "application/x-password");
    assert_eq!(got["tags"]["rotated"], "yes");
    assert_eq!(got["attributes"]["exp"], exp);

    // PATCH of a given version leaves the others alone; null clears exp.
    let p1 = kv
        .ok(
            Method::PATCH,
            &format!("/secrets/conn/{version1}"),
            Some(json!({"tags": {"old": "true"}})),
        )
        .await;
    assert_eq!(last_segment(&p1["id"]), version1);
    assert_eq!(p1["tags"], json!({"old": "true"}));
    let (_, got1) = kv.get("conn", Some(&version1)).await;
    assert_eq!(got1["tags"], json!({"old": "true"}));
    assert_eq!(got1["value"], "v-one");
    let cleared = kv
        .ok(
            Method::PATCH,
            &format!("/secrets/conn/{version2}"),
            Some(json!({"attributes": {"exp": null}})),
        )
        .await;
    assert!(cleared["attributes"].get("exp").is_none(), "{cleared}");
    assert_eq!(
        cleared["tags"]["rotated"], "yes",
        "unchanged tags stay: {cleared}"
    );

    // nbf later than exp is refused.
    assert_kv_error(
        &kv.call(
            Method::PATCH,
            "/secrets/conn",
            Some(json!({"attributes": {"nbf": exp + 10, "exp": exp}})),
        )
        .await,
        400,
        "BadParameter",
        None,
    );
    // Unknown secret or version.
    assert_kv_error(
        &kv.call(Method::PATCH, "/secrets/nope/", Some(json!({"tags": {}})))
            .await,
        404,
        "SecretNotFound",
        None,
    );
    assert_kv_error(
        &kv.call(
            Method::PATCH,
            "/secrets/conn/0123456789abcdef0123456789abcdef",
            Some(json!({"tags": {}})),
        )
        .await,
        404,
        "SecretNotFound",
        None,
    );
}

#[tokio::test]
async fn disabled_secret_cannot_be_read() {
    let server = Server::start().await;
    let kv = Kv::new(&server).await;
    let v1 = kv.set("flag", "enabled-value").await;
    let version1 = last_segment(&v1["id"]);

    let off = kv
        .ok(
            Method::PATCH,
            "/secrets/flag/",
            Some(json!({"attributes": {"enabled": false}})),
        )
        .await;
    assert_eq!(off["attributes"]["enabled"], false);
    assert_kv_error(
        &kv.get("flag", None).await,
        403,
        "Forbidden",
        Some("SecretDisabled"),
    );
    assert_kv_error(
        &kv.get("flag", Some(&version1)).await,
        403,
        "Forbidden",
        Some("SecretDisabled"),
    );
    let forbidden = kv.get("flag", None).await;
    assert!(
        !forbidden.1.to_string().contains("enabled-value"),
        "a disabled value must not leak: {}",
        forbidden.1
    );
    // Still listed, as disabled.
    let (items, _) = kv.list_all("/secrets/flag/versions", None).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["attributes"]["enabled"], false);

    // A new version is readable while the old stays disabled.
    let v2 = kv.set("flag", "new-value").await;
    assert_eq!(kv.value("flag", None).await, "new-value");
    assert_kv_error(
        &kv.get("flag", Some(&version1)).await,
        403,
        "Forbidden",
        Some("SecretDisabled"),
    );
    // Re-enabling makes it readable again.
    kv.ok(
        Method::PATCH,
        &format!("/secrets/flag/{version1}"),
        Some(json!({"attributes": {"enabled": true}})),
    )
    .await;
    assert_eq!(kv.value("flag", Some(&version1)).await, "enabled-value");

    // A version created disabled.
    let d = kv
        .set_body(
            "born-disabled",
            json!({"value": "x", "attributes": {"enabled": false}}),
        )
        .await;
    assert_eq!(d["attributes"]["enabled"], false);
    assert_kv_error(
        &kv.get("born-disabled", None).await,
        403,
        "Forbidden",
        Some("SecretDisabled"),
    );
    assert_eq!(last_segment(&v2["id"]).len(), 32);
}

#[tokio::test]
async fn soft_delete_conflict_recover_and_purge() {
    let server = Server::start().await;
    let kv = Kv::new(&server).await;
    let v1 = kv.set("db-pass", "one").await;
    let v2 = kv
        .set_body("db-pass", json!({"value": "two", "tags": {"k": "v"}}))
        .await;
    let version1 = last_segment(&v1["id"]);
    let version2 = last_segment(&v2["id"]);
    kv.set("bystander", "stays").await;

    let deleted = kv.ok(Method::DELETE, "/secrets/db-pass", None).await;
    let base = server.vault_url("default");
    assert_eq!(
        deleted["recoveryId"],
        format!("{base}/deletedsecrets/db-pass")
    );
    assert_eq!(deleted["id"], format!("{base}/secrets/db-pass/{version2}"));
    assert!(deleted.get("value").is_none(), "{deleted}");
    assert_eq!(deleted["tags"]["k"], "v");
    let deleted_date = deleted["deletedDate"].as_i64().unwrap();
    assert!((now() - 60..=now() + 5).contains(&deleted_date));
    assert_eq!(
        deleted["scheduledPurgeDate"].as_i64().unwrap(),
        deleted_date + 90 * 86_400
    );
    assert_attributes(&deleted, true);

    // Gone from the live views.
    assert_kv_error(&kv.get("db-pass", None).await, 404, "SecretNotFound", None);
    assert_kv_error(
        &kv.get("db-pass", Some(&version1)).await,
        404,
        "SecretNotFound",
        None,
    );
    assert_kv_error(
        &kv.call(Method::GET, "/secrets/db-pass/versions", None)
            .await,
        404,
        "SecretNotFound",
        None,
    );
    let (live, _) = kv.list_all("/secrets", None).await;
    let live_ids: Vec<&str> = live.iter().map(|x| x["id"].as_str().unwrap()).collect();
    assert_eq!(live_ids, vec![format!("{base}/secrets/bystander").as_str()]);
    // Deleting again, or updating, finds nothing.
    assert_kv_error(
        &kv.call(Method::DELETE, "/secrets/db-pass", None).await,
        404,
        "SecretNotFound",
        None,
    );

    // The name is reserved while recoverable.
    assert_kv_error(
        &kv.call(
            Method::PUT,
            "/secrets/db-pass",
            Some(json!({"value": "three"})),
        )
        .await,
        409,
        "Conflict",
        Some("ObjectIsDeletedButRecoverable"),
    );
    assert_kv_error(
        &kv.call(
            Method::PUT,
            "/secrets/DB-PASS",
            Some(json!({"value": "three"})),
        )
        .await,
        409,
        "Conflict",
        Some("ObjectIsDeletedButRecoverable"),
    );

    // Deleted views.
    let got = kv.ok(Method::GET, "/deletedsecrets/db-pass", None).await;
    assert_eq!(got["recoveryId"], deleted["recoveryId"]);
    assert_eq!(got["deletedDate"], deleted_date);
    assert_eq!(got["id"], deleted["id"]);
    let (listed, _) = kv.list_all("/deletedsecrets", None).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["recoveryId"], deleted["recoveryId"]);
    assert_eq!(listed[0]["id"], format!("{base}/secrets/db-pass"));
    assert_eq!(
        listed[0]["scheduledPurgeDate"],
        deleted["scheduledPurgeDate"]
    );
    assert_kv_error(
        &kv.call(Method::GET, "/deletedsecrets/bystander", None)
            .await,
        404,
        "SecretNotFound",
        None,
    );

    // Recover: every version comes back.
    let recovered = kv
        .ok(Method::POST, "/deletedsecrets/db-pass/recover", None)
        .await;
    assert_eq!(
        recovered["id"],
        format!("{base}/secrets/db-pass/{version2}")
    );
    assert!(recovered.get("value").is_none(), "{recovered}");
    assert_eq!(kv.value("db-pass", None).await, "two");
    assert_eq!(kv.value("db-pass", Some(&version1)).await, "one");
    let (versions, _) = kv.list_all("/secrets/db-pass/versions", None).await;
    assert_eq!(versions.len(), 2);
    assert_kv_error(
        &kv.call(Method::GET, "/deletedsecrets/db-pass", None).await,
        404,
        "SecretNotFound",
        None,
    );
    assert_kv_error(
        &kv.call(Method::POST, "/deletedsecrets/db-pass/recover", None)
            .await,
        404,
        "SecretNotFound",
        None,
    );
    // Purging a live secret is refused.
    assert_kv_error(
        &kv.call(Method::DELETE, "/deletedsecrets/db-pass", None)
            .await,
        404,
        "SecretNotFound",
        None,
    );
    assert_eq!(kv.value("db-pass", None).await, "two");

    // Delete and purge: gone for good, and the name is free again.
    kv.ok(Method::DELETE, "/secrets/db-pass", None).await;
    let (status, body) = kv
        .call(Method::DELETE, "/deletedsecrets/db-pass", None)
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(body, Value::Null);
    assert_kv_error(
        &kv.call(Method::GET, "/deletedsecrets/db-pass", None).await,
        404,
        "SecretNotFound",
        None,
    );
    assert_kv_error(
        &kv.call(Method::POST, "/deletedsecrets/db-pass/recover", None)
            .await,
        404,
        "SecretNotFound",
        None,
    );
    assert_kv_error(
        &kv.get("db-pass", Some(&version1)).await,
        404,
        "SecretNotFound",
        None,
    );
    let fresh = kv.set("db-pass", "four").await;
    assert!(fresh.get("previousVersion").is_none(), "{fresh}");
    let (versions, _) = kv.list_all("/secrets/db-pass/versions", None).await;
    assert_eq!(versions.len(), 1);
    assert_eq!(kv.value("db-pass", None).await, "four");
    assert_eq!(kv.value("bystander", None).await, "stays");
}

#[tokio::test]
async fn bad_names_are_rejected() {
    let server = Server::start().await;
    let kv = Kv::new(&server).await;
    let max = "a".repeat(127);
    kv.set(&max, "x").await;
    assert_eq!(kv.value(&max, None).await, "x");
    kv.set("0-Aa-9", "x").await;

    let long = "a".repeat(128);
    for bad in [
        long.as_str(),
        "under_score",
        "dot.name",
        "space%20name",
        "%C3%A9t%C3%A9",
        "semi%3Bcolon",
        "",
    ] {
        let got = kv
            .call(
                Method::PUT,
                &format!("/secrets/{bad}"),
                Some(json!({"value": "x"})),
            )
            .await;
        assert_kv_error(&got, 400, "BadParameter", None);
        if !bad.is_empty() {
            assert_kv_error(&kv.get(bad, None).await, 400, "BadParameter", None);
        }
    }
    let (names, _) = kv.list_all("/secrets", None).await;
    assert_eq!(names.len(), 2, "{names:?}");
}

#[tokio::test]
async fn sizes_and_counts_are_limited() {
    let server = Server::start().await;
    let kv = Kv::new(&server).await;
    let kv = &kv;
    let put = |body: Value| kv_put(kv, "sized", body);

    // Value: 25 KB exactly is fine, one byte more is not; bytes, not chars.
    let limit = 25 * 1024;
    let at_limit = "v".repeat(limit);
    assert_eq!(put(json!({"value": at_limit})).await.0, 200);
    assert_eq!(kv.value("sized", None).await.len(), limit);
    assert_kv_error(
        &put(json!({"value": "v".repeat(limit + 1)})).await,
        400,
        "BadParameter",
        None,
    );
    assert_eq!(put(json!({"value": "é".repeat(limit / 2)})).await.0, 200);
    assert_kv_error(
        &put(json!({"value": "é".repeat(limit / 2 + 1)})).await,
        400,
        "BadParameter",
        None,
    );

    // Tags: 15, names and values up to 256 characters.
    let tags = |n: usize| -> Value {
        Value::Object((0..n).map(|i| (format!("t{i}"), json!("v"))).collect())
    };
    assert_eq!(put(json!({"value": "x", "tags": tags(15)})).await.0, 200);
    assert_kv_error(
        &put(json!({"value": "x", "tags": tags(16)})).await,
        400,
        "BadParameter",
        None,
    );
    let k256 = "k".repeat(256);
    let k257 = "k".repeat(257);
    assert_eq!(
        put(json!({"value": "x", "tags": {k256.clone(): "v"}}))
            .await
            .0,
        200
    );
    assert_kv_error(
        &put(json!({"value": "x", "tags": {k257.clone(): "v"}})).await,
        400,
        "BadParameter",
        None,
    );
    assert_eq!(
        put(json!({"value": "x", "tags": {"k": k256.clone()}}))
            .await
            .0,
        200
    );
    assert_kv_error(
        &put(json!({"value": "x", "tags": {"k": k257.clone()}})).await,
        400,
        "BadParameter",
        None,
    );

    // Content type: up to 255 characters.
    assert_eq!(
        put(json!({"value": "x", "contentType": "c".repeat(255)}))
            .await
            .0,
        200
    );
    assert_kv_error(
        &put(json!({"value": "x", "contentType": "c".repeat(256)})).await,
        400,
        "BadParameter",
        None,
    );

    // The same limits on update.
    for body in [
        json!({"tags": tags(16)}),
        json!({"tags": {k257.clone(): "v"}}),
        json!({"tags": {"k": k257.clone()}}),
        json!({"contentType": "c".repeat(256)}),
    ] {
        assert_kv_error(
            &kv.call(Method::PATCH, "/secrets/sized", Some(body)).await,
            400,
            "BadParameter",
            None,
        );
    }
    // Nothing refused was stored: the latest is the 255-char content type.
    let (_, latest) = kv.get("sized", None).await;
    assert_eq!(latest["contentType"].as_str().unwrap().len(), 255);
    let (versions, _) = kv.list_all("/secrets/sized/versions", None).await;
    assert_eq!(versions.len(), 6);
}

async fn kv_put(kv: &Kv<'_>, name: &str, body: Value) -> (u16, Value) {
    kv.call(Method::PUT, &format!("/secrets/{name}"), Some(body))
        .await
}

#[tokio::test]
async fn api_version_is_required_and_checked() {
    let server = Server::start().await;
    let kv = Kv::new(&server).await;
    kv.set("versioned", "v").await;
    let token = kv.token.clone();
    let base = server.vault_url("default");

    for accepted in [
        "7.0",
        "7.1",
        "7.2",
        "7.3",
        "7.4",
        "7.5",
        "7.6",
        "2025-07-01",
        "2026-04-01",
    ] {
        let url = format!("{base}/secrets/versioned/?api-version={accepted}");
        let (status, _, body) = server.send(Method::GET, &url, Some(&token), None).await;
        assert_eq!(status, 200, "api-version {accepted}: {body}");
        assert_eq!(body["value"], "v");
    }
    let missing = format!("{base}/secrets/versioned/");
    for url in [
        missing.clone(),
        format!("{base}/secrets"),
        format!("{base}/secrets/versioned/?api-version="),
        format!("{base}/secrets/versioned/?api-version=7.7"),
        format!("{base}/secrets/versioned/?api-version=6.0"),
        format!("{base}/secrets/versioned/?api-version=2016-10-01"),
        format!("{base}/secrets/versioned/?api-version=latest"),
        format!("{base}/secrets/versioned/?Api-Version={API}"),
    ] {
        let (status, _, body) = server.send(Method::GET, &url, Some(&token), None).await;
        assert_kv_error(&(status, body), 400, "BadParameter", None);
    }
    // Writes are refused too, and nothing is written.
    let (status, _, body) = server
        .send(
            Method::PUT,
            &format!("{base}/secrets/unversioned"),
            Some(&token),
            Some(&json!({"value": "x"})),
        )
        .await;
    assert_kv_error(&(status, body), 400, "BadParameter", None);
    assert_kv_error(
        &kv.get("unversioned", None).await,
        404,
        "SecretNotFound",
        None,
    );
}

#[tokio::test]
async fn malformed_bodies_are_bad_parameters() {
    let server = Server::start().await;
    let kv = Kv::new(&server).await;
    kv.set("target", "original").await;
    let raw_cases: [&[u8]; 7] = [
        b"{not json",
        b"",
        b"[]",
        b"\"value\"",
        b"{\"value\": \"x\"",
        b"{\"value\": \"x\"} trailing",
        &[0xff, 0xfe, 0x00],
    ];
    for body in raw_cases {
        let got = kv.call_raw(Method::PUT, "/secrets/target", body).await;
        assert_kv_error(&got, 400, "BadParameter", None);
        let got = kv.call_raw(Method::PATCH, "/secrets/target", body).await;
        assert_kv_error(&got, 400, "BadParameter", None);
        let got = kv.call_raw(Method::POST, "/secrets/restore", body).await;
        assert_kv_error(&got, 400, "BadParameter", None);
    }
    for body in [
        json!({}),
        json!({"value": 5}),
        json!({"value": null}),
        json!({"value": ["a"]}),
        json!({"value": "x", "tags": "not-an-object"}),
        json!({"value": "x", "tags": {"k": 1}}),
        json!({"value": "x", "contentType": 7}),
        json!({"value": "x", "attributes": "yes"}),
        json!({"value": "x", "attributes": {"enabled": "true"}}),
        json!({"value": "x", "attributes": {"exp": "tomorrow"}}),
        json!({"value": "x", "attributes": {"exp": 1.5}}),
        json!({"value": "x", "attributes": {"nbf": 2_000_000_000, "exp": 1_900_000_000}}),
    ] {
        let got = kv.call(Method::PUT, "/secrets/target", Some(body)).await;
        assert_kv_error(&got, 400, "BadParameter", None);
    }
    // None of it changed the secret.
    let (versions, _) = kv.list_all("/secrets/target/versions", None).await;
    assert_eq!(versions.len(), 1);
    assert_eq!(kv.value("target", None).await, "original");
}

#[tokio::test]
async fn unknown_vaults_routes_and_methods() {
    let server = Server::start().await;
    let kv = Kv::new(&server).await;
    let token = kv.token.clone();
    let (status, _, body) = server
        .send(
            Method::GET,
            &crate::with_api(&format!("{}/secrets", server.vault_url("nosuchvault"))),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "VaultNotFound", "{body}");
    assert_kv_error(
        &kv.call(Method::GET, "/keys", None).await,
        404,
        "NotFound",
        None,
    );
    assert_kv_error(
        &kv.call(Method::POST, "/secrets/x", Some(json!({"value": "x"})))
            .await,
        405,
        "MethodNotAllowed",
        None,
    );
}

/// The latest version of a secret that was just read is answered from
/// memory: every kind of change must still be seen by the next read.
#[tokio::test]
async fn a_read_after_any_change_sees_the_change() {
    let server = Server::start().await;
    let kv = Kv::new(&server).await;
    kv.set("hot", "one").await;
    assert_eq!(kv.value("hot", None).await, "one");

    // A new version.
    kv.set("hot", "two").await;
    assert_eq!(kv.value("hot", None).await, "two");

    // Attributes of the latest version.
    kv.ok(
        Method::PATCH,
        "/secrets/hot/",
        Some(json!({"attributes": {"enabled": false}})),
    )
    .await;
    assert_kv_error(
        &kv.get("hot", None).await,
        403,
        "Forbidden",
        Some("SecretDisabled"),
    );
    kv.ok(
        Method::PATCH,
        "/secrets/hot/",
        Some(json!({"attributes": {"enabled": true}, "tags": {"t": "1"}})),
    )
    .await;
    let (status, got) = kv.get("hot", None).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["tags"]["t"], "1");

    // Delete, recover.
    let backup = kv.ok(Method::POST, "/secrets/hot/backup", None).await;
    kv.ok(Method::DELETE, "/secrets/hot", None).await;
    assert_kv_error(&kv.get("hot", None).await, 404, "SecretNotFound", None);
    kv.ok(Method::POST, "/deletedsecrets/hot/recover", None)
        .await;
    assert_eq!(kv.value("hot", None).await, "two");

    // Delete, purge, restore from the backup.
    kv.ok(Method::DELETE, "/secrets/hot", None).await;
    let (status, body) = kv.call(Method::DELETE, "/deletedsecrets/hot", None).await;
    assert_eq!(status, 204, "{body}");
    assert_kv_error(&kv.get("hot", None).await, 404, "SecretNotFound", None);
    kv.ok(
        Method::POST,
        "/secrets/restore",
        Some(json!({"value": backup["value"]})),
    )
    .await;
    assert_eq!(kv.value("hot", None).await, "two");
}
