//! `lockstep-client` against the real server: the cache follows new
//! versions through its watch, refetches on an auth failure, and keeps
//! working across a server restart.

use std::time::Duration;

use lockstep_client::{is_stale_credential_error, Client, SecretCache};
use lockstep_testkit::Server;

use crate::consumers::{
    add_password, app, cli_set, client_config, eventually, grant, remove_password, set, App,
};

const NAME: &str = "acg-client-secret";
const SCOPE: &str = "https://vault.localhost/.default";

/// The gateway's app (whose secret is rotated and stored in the vault) and
/// a reader app allowed to read that one secret.
async fn setup(server: &Server) -> (App, App, String) {
    let token = server.vault_token().await;
    let gateway = app(server, "gateway").await;
    let v1 = set(server, &token, NAME, &gateway.secret).await;
    let reader = app(server, "gateway-reader").await;
    grant(
        server,
        &reader.app_id,
        "Key Vault Secrets User",
        &format!("/vaults/default/secrets/{NAME}"),
    )
    .await;
    (gateway, reader, v1)
}

#[tokio::test]
async fn the_cache_sees_new_versions_through_its_watch() {
    let server = Server::start().await;
    let (gateway, reader, v1) = setup(&server).await;
    let cache = SecretCache::new(
        Client::new(client_config(&server, &reader.app_id, &reader.secret)).unwrap(),
    );

    let first = cache.get_secret(NAME).await.unwrap();
    assert_eq!(first.version, v1);
    assert_eq!(first.value.as_str(), gateway.secret);
    assert!(cache.is_watching(NAME));
    let (status, body) = server
        .token_response(&gateway.app_id, &cache.get(NAME).await.unwrap(), SCOPE)
        .await;
    assert_eq!(status, 200, "{body}");

    // The reader may read this secret only.
    let token = server.vault_token().await;
    set(&server, &token, "other", "x").await;
    let err = cache.get("other").await.unwrap_err();
    assert!(
        matches!(err, lockstep_client::Error::Vault { status: 403, .. }),
        "{err}"
    );
    assert!(!err.is_transient());

    // Rotation: a new credential, stored as a new version.
    let mut changes = cache.subscribe(NAME).await.unwrap();
    let (second, _) = add_password(&server, &gateway.object_id).await;
    let v2 = set(&server, &token, NAME, &second).await;
    tokio::time::timeout(Duration::from_secs(10), changes.changed())
        .await
        .expect("the watch delivers the new version")
        .unwrap();
    assert_eq!(changes.borrow().as_ref().unwrap().version, v2);
    assert_eq!(cache.get(NAME).await.unwrap().as_str(), second);
}

#[tokio::test]
async fn an_auth_failure_fetches_the_value_that_replaced_a_revoked_one() {
    let server = Server::start().await;
    let (gateway, reader, v1) = setup(&server).await;
    // No background watch: only the auth failure can refresh the value.
    let cache = SecretCache::new(
        Client::new(client_config(&server, &reader.app_id, &reader.secret).with_watch(false))
            .unwrap(),
    );
    let used = cache.get(NAME).await.unwrap();
    assert!(!cache.is_watching(NAME));

    // Emergency rotation: a new credential stored, the old one revoked.
    let (second, _) = add_password(&server, &gateway.object_id).await;
    let token = server.vault_token().await;
    let v2 = set(&server, &token, NAME, &second).await;
    remove_password(&server, &gateway.object_id, &gateway.key_id).await;

    // The consumer's next token request with the cached value fails...
    assert_eq!(cache.get(NAME).await.unwrap(), used, "not refreshed yet");
    let (status, body) = server.token_response(&gateway.app_id, &used, SCOPE).await;
    assert_eq!(status, 401, "{body}");
    assert!(is_stale_credential_error(&body), "{body}");
    // ...and on_auth_failure hands it the new value, which works.
    let newer = cache
        .on_auth_failure(NAME)
        .await
        .unwrap()
        .expect("a newer value");
    assert_eq!(newer.as_str(), second);
    let (status, body) = server.token_response(&gateway.app_id, &newer, SCOPE).await;
    assert_eq!(status, 200, "{body}");
    // Nothing newer now.
    assert!(cache.on_auth_failure(NAME).await.unwrap().is_none());
    // A task that still used the revoked version gets the new one from
    // memory.
    let again = cache.on_auth_failure_of(NAME, &v1).await.unwrap().unwrap();
    assert_eq!(again.version, v2);
    assert!(cache.on_auth_failure_of(NAME, &v2).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_serves_through_a_restart_and_resumes_watching() {
    let mut server = Server::start().await;
    let (gateway, reader, _) = setup(&server).await;
    let cache = SecretCache::new(
        Client::new(client_config(&server, &reader.app_id, &reader.secret)).unwrap(),
    );
    assert_eq!(cache.get(NAME).await.unwrap().as_str(), gateway.secret);

    server.restart().await;
    // Served from memory, whatever the state of the connection.
    assert_eq!(cache.get(NAME).await.unwrap().as_str(), gateway.secret);

    let v2 = cli_set(&server, NAME, "after-the-restart");
    let seen = eventually(
        "the cache sees the version set after the restart",
        Duration::from_secs(30),
        || async {
            let s = cache.get_secret(NAME).await.unwrap();
            (s.version == v2).then_some(s)
        },
    )
    .await;
    assert_eq!(seen.value.as_str(), "after-the-restart");
}
