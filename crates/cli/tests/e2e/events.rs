//! Events and webhooks through the real server: a local receiver gets
//! signed CloudEvents, retried with backoff, filtered by type and subject;
//! deliveries survive a crash; RBAC and the CLI.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lockstep_testkit::{Options, Server};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const API: &str = "api://lockstep";
const NEW_VERSION: &str = "Microsoft.KeyVault.SecretNewVersionCreated";
const EXPIRED: &str = "Microsoft.KeyVault.SecretExpired";

/// One request the receiver got, and the status it answered.
#[derive(Clone, Debug)]
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    status: u16,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    fn event(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// Checks `X-Lockstep-Signature` independently of Lockstep's code:
    /// `sha256=hex(HMAC-SHA256(secret, timestamp + "." + body))`.
    fn signed_with(&self, secret: &str) -> bool {
        use aws_lc_rs::hmac;
        let mut msg = self.header("x-lockstep-timestamp").as_bytes().to_vec();
        msg.push(b'.');
        msg.extend_from_slice(&self.body);
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        let hex: String = hmac::sign(&key, &msg)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.header("x-lockstep-signature") == format!("sha256={hex}")
    }
}

/// A tiny HTTP/1.1 webhook receiver on 127.0.0.1 that answers the scripted
/// statuses in turn, then 200.
struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(script: &[u16]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(
            script.iter().copied().collect::<VecDeque<u16>>(),
        ));
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (log, script) = (log.clone(), script.clone());
                tokio::spawn(async move {
                    let _ = serve_one(stream, log, script).await;
                });
            }
        });
        Self { url, seen }
    }

    fn seen(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }

    fn types(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .seen()
            .iter()
            .filter(|r| r.status == 200)
            .map(|r| r.event()["type"].as_str().unwrap().to_owned())
            .collect();
        t.sort();
        t
    }
}

async fn serve_one(
    stream: tokio::net::TcpStream,
    log: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.trim_end().split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).await?;
    let status = script.lock().unwrap().pop_front().unwrap_or(200);
    log.lock().unwrap().push(Received {
        headers,
        body,
        status,
    });
    let mut stream = reader.into_inner();
    stream
        .write_all(
            format!("HTTP/1.1 {status} Status\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    stream.shutdown().await
}

/// Polls `probe` until it yields a value, for at most 30 s.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after 30 s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn options(retry_base_ms: u64) -> Options {
    Options {
        env: vec![
            (
                "LOCKSTEP_WEBHOOK_RETRY_BASE_MS".into(),
                retry_base_ms.to_string(),
            ),
            ("LOCKSTEP_EXPIRY_SCAN_INTERVAL_MS".into(), "250".into()),
        ],
        ..Default::default()
    }
}

fn subscriptions(server: &Server) -> String {
    format!("{}/lockstep/v1/subscriptions", server.authority())
}

async fn api(
    server: &Server,
    method: Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (status, _, value) = server.send(method, url, Some(token), body.as_ref()).await;
    (status, value)
}

async fn set_secret(server: &Server, name: &str, body: Value) -> Value {
    let token = server.vault_token().await;
    let url = format!(
        "{}/secrets/{name}?api-version=7.4",
        server.vault_url("default")
    );
    let (status, set) = api(server, Method::PUT, &url, &token, Some(body)).await;
    assert_eq!(status, 200, "{set}");
    set
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_is_delivered_signed_retried_and_filtered() {
    let server = Server::start_with(options(200)).await;
    let token = server.admin_token(API).await;
    let base = subscriptions(&server);
    let flaky = Receiver::start(&[500, 500]).await;
    let everything = Receiver::start(&[]).await;

    let (status, headers, filtered) = server
        .send(
            Method::POST,
            &base,
            Some(&token),
            Some(&json!({
                "name": "new versions",
                "endpoint": flaky.url,
                "eventTypes": ["Microsoft.KeyVault.SecretNewVersionCreated"],
            })),
        )
        .await;
    assert_eq!(status, 201, "{filtered}");
    assert_eq!(headers["cache-control"], "no-store");
    let secret = filtered["signingSecret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 43, "at least 256 bits");
    let id = filtered["id"].as_str().unwrap().to_owned();
    assert_eq!(filtered["eventTypes"], json!([NEW_VERSION]));
    assert_eq!(filtered["enabled"], true);
    let (status, all) = api(
        &server,
        Method::POST,
        &base,
        &token,
        Some(json!({ "endpoint": everything.url })),
    )
    .await;
    assert_eq!(status, 201, "{all}");
    let all_secret = all["signingSecret"].as_str().unwrap().to_owned();

    // The signing secret is never shown again.
    let (status, shown) = api(&server, Method::GET, &format!("{base}/{id}"), &token, None).await;
    assert_eq!(status, 200);
    assert_eq!(shown["name"], "new versions");
    assert!(shown.get("signingSecret").is_none());
    let (_, listed) = api(&server, Method::GET, &base, &token, None).await;
    assert_eq!(listed["value"].as_array().unwrap().len(), 2);
    assert!(!listed.to_string().contains(&secret));

    // One version, already expired: SecretNewVersionCreated at once, then
    // SecretExpired from the expiry scan (which the filter must exclude).
    let exp = now() - 60;
    let set = set_secret(
        &server,
        "db",
        json!({ "value": "s3cret", "attributes": { "exp": exp } }),
    )
    .await;
    let version = set["id"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();

    let log = eventually("the filtered delivery to succeed", || {
        let (s, url, t) = (&server, format!("{base}/{id}/deliveries"), &token);
        async move {
            let (_, log) = api(s, Method::GET, &url, t, None).await;
            (log["value"][0]["status"] == "delivered").then_some(log)
        }
    })
    .await;
    eventually("both event types at the unfiltered receiver", || {
        let r = &everything;
        async move { (r.types() == [EXPIRED, NEW_VERSION]).then_some(()) }
    })
    .await;
    // Give scans and retries time to do anything they should not.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The log: one delivery, three attempts (500, 500, 200).
    let deliveries = log["value"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{log}");
    let d = &deliveries[0];
    assert_eq!(d["eventType"], NEW_VERSION);
    assert_eq!(d["attemptCount"], 3);
    let codes: Vec<&Value> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["statusCode"])
        .collect();
    assert_eq!(codes, [&json!(500), &json!(500), &json!(200)], "{log}");
    for (i, a) in d["attempts"].as_array().unwrap().iter().enumerate() {
        assert_eq!(a["attempt"], i + 1);
        assert!(a["time"].as_i64().unwrap() >= now() - 120);
        assert!(a["durationMs"].as_i64().unwrap() >= 0);
    }

    // The receiver: the same event three times, each validly signed; only
    // the last accepted; no other type ever.
    let got = flaky.seen();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        got.iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    let first = got[0].event();
    for r in &got {
        assert!(r.signed_with(&secret), "bad signature: {r:?}");
        assert!(!r.signed_with(&all_secret));
        let ts: i64 = r.header("x-lockstep-timestamp").parse().unwrap();
        assert!((ts - now()).abs() < 120);
        assert_eq!(
            r.header("content-type"),
            "application/cloudevents+json; charset=utf-8"
        );
        assert_eq!(r.header("x-lockstep-delivery"), d["id"].as_str().unwrap());
        assert_eq!(r.event(), first, "retries resend the same event");
    }
    assert_eq!(flaky.types(), [NEW_VERSION]);

    // The CloudEvent.
    let tenant = &server.admin.tenant_id;
    assert_eq!(first["specversion"], "1.0");
    assert_eq!(first["type"], NEW_VERSION);
    assert_eq!(first["source"], server.authority());
    assert_eq!(first["id"], d["eventId"]);
    assert_eq!(
        first["subject"],
        format!("/tenants/{tenant}/vaults/default/secrets/db")
    );
    assert_eq!(first["datacontenttype"], "application/json");
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        first["data"],
        json!({
            "Id": format!("{}/secrets/db/{version}", server.vault_url("default")),
            "VaultName": "default",
            "ObjectType": "Secret",
            "ObjectName": "db",
            "Version": version,
            "NBF": null,
            "EXP": exp,
        })
    );

    // The unfiltered subscription got exactly one of each, signed with its own secret.
    let all_got = everything.seen();
    assert_eq!(all_got.len(), 2, "{all_got:?}");
    assert!(all_got.iter().all(|r| r.signed_with(&all_secret)));
    let expired = all_got
        .iter()
        .map(Received::event)
        .find(|e| e["type"] == EXPIRED)
        .unwrap();
    assert_eq!(expired["data"]["Version"], version.as_str());
    assert_eq!(expired["data"]["EXP"], exp);
    assert_ne!(expired["id"], first["id"]);

    let metrics = server.metrics().await;
    assert!(
        metrics.contains("lockstep_webhook_attempts_total{outcome=\"delivered\"} 3\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lockstep_webhook_attempts_total{outcome=\"retry\"} 2\n"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_delivery_survives_a_crash() {
    let mut server = Server::start_with(options(1000)).await;
    let token = server.admin_token(API).await;
    let base = subscriptions(&server);

    // An endpoint nobody listens on: attempts fail until it is fixed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let (status, sub) = api(
        &server,
        Method::POST,
        &base,
        &token,
        Some(json!({ "endpoint": closed_url, "eventTypes": ["SecretExpired"] })),
    )
    .await;
    assert_eq!(status, 201, "{sub}");
    let id = sub["id"].as_str().unwrap().to_owned();
    let secret = sub["signingSecret"].as_str().unwrap().to_owned();

    // The test event ignores the type filter.
    let (status, queued) = api(
        &server,
        Method::POST,
        &format!("{base}/{id}/test"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 202, "{queued}");
    let event_id = queued["eventId"].as_str().unwrap().to_owned();
    eventually("the first failed attempt", || {
        let (s, url, t) = (&server, format!("{base}/{id}/deliveries"), &token);
        async move {
            let (_, log) = api(s, Method::GET, &url, t, None).await;
            (log["value"][0]["attemptCount"].as_i64() >= Some(1)).then_some(())
        }
    })
    .await;

    // Crash, bring the receiver up, restart, point the subscription at it.
    server.kill();
    let receiver = Receiver::start(&[]).await;
    server.restart().await;
    let token = server.admin_token(API).await;
    let (status, patched) = api(
        &server,
        Method::PATCH,
        &format!("{base}/{id}"),
        &token,
        Some(json!({ "endpoint": receiver.url })),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        patched["eventTypes"],
        json!([EXPIRED]),
        "PATCH keeps what it does not name"
    );

    let log = eventually("the delivery after the restart", || {
        let (s, url, t) = (&server, format!("{base}/{id}/deliveries"), &token);
        async move {
            let (_, log) = api(s, Method::GET, &url, t, None).await;
            (log["value"][0]["status"] == "delivered").then_some(log)
        }
    })
    .await;
    let attempts = log["value"][0]["attempts"].as_array().unwrap().clone();
    assert!(attempts.len() >= 2, "{log}");
    for (i, a) in attempts.iter().enumerate() {
        assert_eq!(
            a["attempt"],
            i + 1,
            "attempt numbers continue across the restart"
        );
    }
    let (last, failed) = attempts.split_last().unwrap();
    assert_eq!(last["statusCode"], 200);
    for a in failed {
        assert_eq!(a["statusCode"], Value::Null);
        assert!(a["error"].as_str().unwrap().contains("connect"), "{a}");
    }

    let got = receiver.seen();
    assert_eq!(got.len(), 1);
    assert!(
        got[0].signed_with(&secret),
        "the secret survived the restart"
    );
    let ev = got[0].event();
    assert_eq!(ev["id"], event_id.as_str());
    assert_eq!(ev["type"], "Lockstep.SubscriptionTest");
    assert_eq!(ev["data"]["subscriptionId"], id.as_str());

    // Deleting removes the subscription and its log.
    let (status, _) = api(
        &server,
        Method::DELETE,
        &format!("{base}/{id}"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, gone) = api(
        &server,
        Method::GET,
        &format!("{base}/{id}/deliveries"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(gone["error"]["code"], "SubscriptionNotFound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_follow_rbac() {
    let server = Server::start().await;
    let admin = server.admin_token(API).await;
    let base = subscriptions(&server);

    // Bad input is refused in the management API's error shape.
    for (body, needle) in [
        (json!({ "endpoint": "http://example.com/hook" }), "https"),
        (
            json!({ "endpoint": "https://example.com/", "eventTypes": ["Nope"] }),
            "Unknown event type",
        ),
        (
            json!({ "endpoint": "https://example.com/", "subjectPrefix": "/tenants/other/" }),
            "another tenant",
        ),
        (
            json!({ "endpoint": "https://example.com/", "extra": 1 }),
            "unknown field",
        ),
    ] {
        let (status, err) = api(&server, Method::POST, &base, &admin, Some(body)).await;
        assert_eq!(status, 400, "{err}");
        assert_eq!(err["error"]["code"], "BadRequest");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(needle),
            "{err}"
        );
    }
    let (status, sub) = api(
        &server,
        Method::POST,
        &base,
        &admin,
        Some(json!({ "endpoint": "https://hooks.example.com/x", "subjectPrefix": "/vaults/default/" })),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(sub["name"], "hooks.example.com");
    assert_eq!(
        sub["subjectPrefix"],
        format!("/tenants/{}/vaults/default/", server.admin.tenant_id)
    );
    let id = sub["id"].as_str().unwrap().to_owned();

    // A new app with no role may do nothing.
    let graph = server.admin_token("https://graph.microsoft.com").await;
    let (status, app) = api(
        &server,
        Method::POST,
        &format!("{}/v1.0/applications", server.authority()),
        &graph,
        Some(json!({ "displayName": "events reader" })),
    )
    .await;
    assert_eq!(status, 201, "{app}");
    let (status, pw) = api(
        &server,
        Method::POST,
        &format!(
            "{}/v1.0/applications/{}/addPassword",
            server.authority(),
            app["id"].as_str().unwrap()
        ),
        &graph,
        Some(json!({ "passwordCredential": { "displayName": "t" } })),
    )
    .await;
    assert_eq!(status, 200, "{pw}");
    let app_id = app["appId"].as_str().unwrap();
    let token = server
        .token_as(app_id, pw["secretText"].as_str().unwrap(), API)
        .await;
    let (status, denied) = api(&server, Method::GET, &base, &token, None).await;
    assert_eq!(status, 403, "{denied}");
    assert_eq!(denied["error"]["code"], "AuthorizationFailed");
    assert!(denied["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Lockstep/subscriptions/read"));

    let assign =
        |role: &str| json!({ "principalId": app_id, "roleDefinitionName": role, "scope": "/" });
    let roles = format!("{}/lockstep/v1/roleAssignments", server.authority());

    // Reader: reads, never writes or deletes.
    let (status, _) = api(
        &server,
        Method::POST,
        &roles,
        &admin,
        Some(assign("Reader")),
    )
    .await;
    assert_eq!(status, 201);
    let (status, listed) = api(&server, Method::GET, &base, &token, None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["value"].as_array().unwrap().len(), 1);
    for (method, url, action) in [
        (Method::GET, format!("{base}/{id}"), None),
        (Method::GET, format!("{base}/{id}/deliveries"), None),
        (
            Method::POST,
            base.clone(),
            Some("Lockstep/subscriptions/write"),
        ),
        (
            Method::PATCH,
            format!("{base}/{id}"),
            Some("Lockstep/subscriptions/write"),
        ),
        (
            Method::POST,
            format!("{base}/{id}/test"),
            Some("Lockstep/subscriptions/write"),
        ),
        (
            Method::DELETE,
            format!("{base}/{id}"),
            Some("Lockstep/subscriptions/delete"),
        ),
    ] {
        let body = json!({ "endpoint": "https://x.example.com/" });
        let (status, resp) = api(&server, method.clone(), &url, &token, Some(body)).await;
        match action {
            None => assert_eq!(status, 200, "{method} {url}: {resp}"),
            Some(a) => {
                assert_eq!(status, 403, "{method} {url}: {resp}");
                assert!(resp["error"]["message"].as_str().unwrap().contains(a));
            }
        }
    }

    // Contributor: everything.
    let (status, _) = api(
        &server,
        Method::POST,
        &roles,
        &admin,
        Some(assign("Contributor")),
    )
    .await;
    assert_eq!(status, 201);
    let (status, patched) = api(
        &server,
        Method::PATCH,
        &format!("{base}/{id}"),
        &token,
        Some(json!({ "enabled": false, "subjectPrefix": null, "name": "paused" })),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["enabled"], false);
    assert_eq!(patched["subjectPrefix"], Value::Null);
    assert_eq!(patched["name"], "paused");
    let (status, err) = api(
        &server,
        Method::POST,
        &format!("{base}/{id}/test"),
        &token,
        None,
    )
    .await;
    assert_eq!(
        status, 409,
        "a disabled subscription gets no test event: {err}"
    );
    let (status, _) = api(
        &server,
        Method::DELETE,
        &format!("{base}/{id}"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = api(
        &server,
        Method::DELETE,
        &format!("{base}/{id}"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 404);
}

/// Runs the CLI against the server; returns (success, stdout, stderr).
async fn cli(server: &Server, args: &[&str]) -> (bool, String, String) {
    let mut cmd = server.cli();
    cmd.args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_manages_subscriptions() {
    let server = Server::start_with(options(200)).await;
    let receiver = Receiver::start(&[]).await;
    let (ok, out, err) = cli(
        &server,
        &[
            "subscription",
            "create",
            "--endpoint",
            &receiver.url,
            "--event",
            "SecretNewVersionCreated",
            "--subject-prefix",
            "/vaults/default/secrets/app-",
            "--name",
            "cli hook",
        ],
    )
    .await;
    assert!(ok, "{out}{err}");
    assert!(err.contains("shown only now"), "{err}");
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("Signing secret: "))
        .unwrap()
        .trim()
        .to_owned();
    assert!(secret.len() >= 43);

    let (ok, out, err) = cli(&server, &["subscription", "list", "--json"]).await;
    assert!(ok, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    let sub = &listed["value"][0];
    let id = sub["id"].as_str().unwrap().to_owned();
    assert_eq!(sub["name"], "cli hook");
    assert_eq!(sub["eventTypes"], json!([NEW_VERSION]));
    assert_eq!(
        sub["subjectPrefix"],
        format!(
            "/tenants/{}/vaults/default/secrets/app-",
            server.admin.tenant_id
        )
    );
    assert!(!out.contains(&secret));

    // Only the secret under the prefix is delivered.
    set_secret(&server, "other", json!({ "value": "x" })).await;
    set_secret(&server, "app-key", json!({ "value": "y" })).await;
    eventually("the delivery under the prefix", || {
        let r = &receiver;
        async move { (!r.seen().is_empty()).then_some(()) }
    })
    .await;
    let (ok, out, err) = cli(&server, &["subscription", "deliveries", &id]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("delivered") && out.contains("HTTP 200"),
        "{out}"
    );

    let (ok, out, err) = cli(&server, &["subscription", "test", &id]).await;
    assert!(ok, "{err}");
    assert!(out.contains("Queued test event"), "{out}");
    eventually("the test event", || {
        let r = &receiver;
        async move { (r.seen().len() == 2).then_some(()) }
    })
    .await;
    let got = receiver.seen();
    assert!(got.iter().all(|r| r.signed_with(&secret)));
    assert_eq!(
        got[0].event()["subject"],
        format!(
            "/tenants/{}/vaults/default/secrets/app-key",
            server.admin.tenant_id
        )
    );
    assert_eq!(got[1].event()["type"], "Lockstep.SubscriptionTest");

    let (ok, out, err) = cli(
        &server,
        &["subscription", "update", &id, "--disable", "--all-events"],
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("false") && out.contains("all"), "{out}");
    let (ok, out, err) = cli(&server, &["subscription", "show", &id]).await;
    assert!(ok && out.contains("cli hook"), "{out}{err}");
    let (ok, out, err) = cli(&server, &["subscription", "delete", &id]).await;
    assert!(ok && out.contains("Deleted subscription"), "{out}{err}");
    let (ok, _, err) = cli(&server, &["subscription", "show", &id]).await;
    assert!(!ok && err.contains("SubscriptionNotFound"), "{err}");
}
