//! `GET /secrets/{name}/watch`: Lockstep's long-poll extension of the data
//! plane.

use std::time::{Duration, Instant};

use lockstep_testkit::Server;
use reqwest::Method;
use serde_json::Value;

use crate::consumers::{eventually, secret_url, set, version_of, watched_secrets};

async fn watch(server: &Server, token: &str, name: &str, query: &str) -> (u16, Value) {
    let url = format!("{}{query}", secret_url(server, name, "/watch"));
    let (status, _, body) = server.send(Method::GET, &url, Some(token), None).await;
    (status, body)
}

#[tokio::test]
async fn a_waiting_watch_returns_the_new_version_when_it_is_set() {
    let server = Server::start().await;
    let token = server.vault_token().await;
    let v1 = set(&server, &token, "db-password", "one").await;

    // The watch may wait up to 60 s; a 200 can only come from the change.
    let waiting = {
        let (http, url, token) = (
            server.http.clone(),
            format!(
                "{}&after={v1}&timeout=60",
                secret_url(&server, "db-password", "/watch")
            ),
            token.clone(),
        );
        tokio::spawn(async move {
            let resp = http.get(url).bearer_auth(token).send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap(), Instant::now())
        })
    };
    // Set the new version only once the watch is parked on the server, so
    // that the wake-up (not the immediate check) is what answers it.
    eventually("the watch is waiting", Duration::from_secs(10), || async {
        (watched_secrets(&server).await == 1).then_some(())
    })
    .await;
    let v2 = set(&server, &token, "db-password", "two").await;
    let set_done = Instant::now();
    let (status, body, returned) = tokio::time::timeout(Duration::from_secs(70), waiting)
        .await
        .expect("the watch answers")
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(version_of(&body), v2);
    assert_eq!(body["value"], "two");
    assert_eq!(body["attributes"]["enabled"], true);
    eprintln!(
        "watch answered {:?} after the set returned (timeout was 60 s)",
        returned.saturating_duration_since(set_done)
    );
    // The waiter is gone, and so is its slot.
    assert_eq!(watched_secrets(&server).await, 0);
}

#[tokio::test]
async fn a_watch_answers_at_once_when_the_caller_is_behind() {
    let server = Server::start().await;
    let token = server.vault_token().await;
    let v1 = set(&server, &token, "api-key", "one").await;
    let v2 = set(&server, &token, "api-key", "two").await;

    // No `after`: the current latest.
    let (status, body) = watch(&server, &token, "api-key", "&timeout=60").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(version_of(&body), v2);
    // An old `after` (any case): the latest.
    let (status, body) = watch(
        &server,
        &token,
        "API-KEY",
        &format!("&after={}&timeout=60", v1.to_ascii_uppercase()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(version_of(&body), v2);
    assert_eq!(body["value"], "two");
}

#[tokio::test]
async fn an_unchanged_secret_gives_204_after_the_timeout() {
    let server = Server::start().await;
    let token = server.vault_token().await;
    let v1 = set(&server, &token, "quiet", "one").await;
    // A write to another secret does not end the wait.
    set(&server, &token, "noisy", "x").await;
    let (status, body) = watch(&server, &token, "quiet", &format!("&after={v1}&timeout=1")).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(body, Value::Null);
    let (status, _) = watch(&server, &token, "quiet", &format!("&after={v1}&timeout=0")).await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn deleting_the_secret_ends_a_watch_with_not_found() {
    let server = Server::start().await;
    let token = server.vault_token().await;
    let v1 = set(&server, &token, "doomed", "one").await;
    let waiting = {
        let (http, url, token) = (
            server.http.clone(),
            format!(
                "{}&after={v1}&timeout=60",
                secret_url(&server, "doomed", "/watch")
            ),
            token.clone(),
        );
        tokio::spawn(async move {
            let resp = http.get(url).bearer_auth(token).send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        })
    };
    eventually("the watch is waiting", Duration::from_secs(10), || async {
        (watched_secrets(&server).await == 1).then_some(())
    })
    .await;
    let (status, _, body) = server
        .send(
            Method::DELETE,
            &secret_url(&server, "doomed", ""),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = tokio::time::timeout(Duration::from_secs(70), waiting)
        .await
        .expect("the watch answers")
        .unwrap();
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "SecretNotFound");
}

#[tokio::test]
async fn watches_are_checked_like_reads() {
    let server = Server::start().await;
    let token = server.vault_token().await;
    let v1 = set(&server, &token, "guarded", "one").await;

    // No token: the challenge, before anything else.
    let url = format!("{}&after={v1}", secret_url(&server, "guarded", "/watch"));
    let (status, headers, _) = server.send(Method::GET, &url, None, None).await;
    assert_eq!(status, 401);
    assert!(headers.contains_key("www-authenticate"));

    // A principal without a data role is refused.
    let app = crate::consumers::app(&server, "no-access").await;
    let outsider = server
        .token_as(&app.app_id, &app.secret, "https://vault.localhost")
        .await;
    let (status, body) = watch(&server, &outsider, "guarded", "&timeout=1").await;
    assert_eq!(status, 403, "{body}");

    // Bad parameters.
    for query in ["&timeout=61", "&timeout=-1", "&timeout=soon", "&after=nope"] {
        let (status, body) = watch(&server, &token, "guarded", query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "BadParameter", "{query}");
    }
    // Unknown secret; wrong method.
    let (status, body) = watch(&server, &token, "missing", "&timeout=1").await;
    assert_eq!(status, 404, "{body}");
    let (status, _, _) = server.send(Method::POST, &url, Some(&token), None).await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn a_server_stopping_ends_waiting_watches_at_once() {
    let mut server = Server::start().await;
    let token = server.vault_token().await;
    let v1 = set(&server, &token, "long", "one").await;
    let waiting = {
        let (http, url, token) = (
            server.http.clone(),
            format!(
                "{}&after={v1}&timeout=60",
                secret_url(&server, "long", "/watch")
            ),
            token.clone(),
        );
        tokio::spawn(async move {
            let resp = http.get(url).bearer_auth(token).send().await.unwrap();
            resp.status().as_u16()
        })
    };
    eventually("the watch is waiting", Duration::from_secs(10), || async {
        (watched_secrets(&server).await == 1).then_some(())
    })
    .await;
    let (status, server) = tokio::task::spawn_blocking(move || {
        let status = server.stop();
        (status, server)
    })
    .await
    .unwrap();
    assert!(status.success(), "{status}");
    let answered = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the watch answers")
        .unwrap();
    assert_eq!(answered, 204);
    // The drain did not have to wait for the watch.
    assert!(
        !server.logs().contains("did not close"),
        "{}",
        server.logs()
    );
}
