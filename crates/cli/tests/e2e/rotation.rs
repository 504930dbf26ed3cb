//! Rotation through the real server: bind, rotate on schedule with a
//! shifted clock, emergency rotation, cancel and retry, and crash safety
//! (kill -9 at seeded random moments during rotations).

use std::time::{Duration, Instant};

use lockstep_testkit::{Options, Server};
use reqwest::Method;
use serde_json::{json, Value};

const MGMT: &str = "api://lockstep";
const GRAPH: &str = "https://graph.microsoft.com";

/// A server in development mode with a fast scheduler.
pub async fn dev_server() -> Server {
    Server::start_with(Options {
        args: vec![
            "--dev-time-shift".into(),
            "--scheduler-tick-ms".into(),
            "50".into(),
        ],
        ..Default::default()
    })
    .await
}

/// Management-API helper bound to one server. Its tokens are renewed when
/// the server's clock has been moved past their expiry.
pub struct Api<'a> {
    pub server: &'a Server,
    tokens: std::sync::Mutex<(String, String)>,
}

impl<'a> Api<'a> {
    pub async fn new(server: &'a Server) -> Api<'a> {
        Api {
            server,
            tokens: std::sync::Mutex::new((
                server.admin_token(MGMT).await,
                server.admin_token(GRAPH).await,
            )),
        }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let graph = path.starts_with("/v1.0/");
        let url = format!("{}{path}", self.server.authority());
        let mut renewed = false;
        loop {
            let token = {
                let t = self.tokens.lock().unwrap();
                if graph {
                    t.1.clone()
                } else {
                    t.0.clone()
                }
            };
            let (s, _, v) = self
                .server
                .send(method.clone(), &url, Some(&token), body.as_ref())
                .await;
            if s == 401 && !renewed {
                let fresh = (
                    self.server.admin_token(MGMT).await,
                    self.server.admin_token(GRAPH).await,
                );
                *self.tokens.lock().unwrap() = fresh;
                renewed = true;
                continue;
            }
            return (s, v);
        }
    }

    pub async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self.call(method.clone(), path, body).await;
        assert!((200..300).contains(&s), "{method} {path}: {s} {v}");
        v
    }

    /// Registers an app with one client secret; returns the app and the
    /// secret's text.
    pub async fn app_with_secret(&self, display_name: &str) -> (Value, String) {
        let app = self
            .ok(
                Method::POST,
                "/v1.0/applications",
                Some(json!({ "displayName": display_name })),
            )
            .await;
        let id = app["id"].as_str().unwrap();
        let pw = self
            .ok(
                Method::POST,
                &format!("/v1.0/applications/{id}/addPassword"),
                Some(json!({})),
            )
            .await;
        let secret = pw["secretText"].as_str().unwrap().to_owned();
        (app, secret)
    }

    /// Registers an app and binds it to `secret` in the default vault.
    pub async fn bound_app(&self, binding: &str, secret: &str, policy: Value) -> Value {
        let app = self
            .ok(
                Method::POST,
                "/v1.0/applications",
                Some(json!({"displayName": format!("app {binding}")})),
            )
            .await;
        self.ok(
            Method::POST,
            "/lockstep/v1/rotation/bindings",
            Some(json!({
                "name": binding,
                "source": {"kind": "builtin-app", "appId": app["appId"]},
                "target": {"kind": "builtin-vault", "vault": "default", "secret": secret},
                "policy": policy,
            })),
        )
        .await;
        app
    }

    /// Waits until `binding` has no pending or running run and has at
    /// least `min_runs` runs; returns its runs, newest first.
    pub async fn settle(&self, binding: &str, min_runs: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (s, v) = self
                .call(
                    Method::GET,
                    &format!("/lockstep/v1/rotation/runs?binding={binding}&limit=1000"),
                    None,
                )
                .await;
            if s == 200 {
                let runs = v["value"].as_array().cloned().unwrap_or_default();
                let busy = runs
                    .iter()
                    .any(|r| matches!(r["state"].as_str(), Some("pending" | "running")));
                if !busy && runs.len() >= min_runs {
                    return runs;
                }
            }
            assert!(
                Instant::now() < deadline,
                "runs of {binding} did not settle: {v}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn status_of(&self, binding: &str) -> Value {
        let v = self.ok(Method::GET, "/lockstep/v1/status", None).await;
        v["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == binding)
            .cloned()
            .unwrap()
    }

    pub async fn credentials(&self, app: &Value) -> Vec<Value> {
        let id = app["id"].as_str().unwrap();
        let v = self
            .ok(Method::GET, &format!("/v1.0/applications/{id}"), None)
            .await;
        v["passwordCredentials"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub async fn shift(&self, by: &str) {
        self.ok(
            Method::POST,
            "/lockstep/v1/dev/time-shift",
            Some(json!({ "by": by })),
        )
        .await;
    }
}

/// The latest value of `secret` gets a token for its app.
async fn latest_value_works(server: &Server, app: &Value, secret: &str) -> bool {
    let token = server.vault_token().await;
    let url = format!(
        "{}/secrets/{secret}/?api-version=7.6",
        server.vault_url("default")
    );
    let (s, _, v) = server.send(Method::GET, &url, Some(&token), None).await;
    assert_eq!(s, 200, "latest version readable: {v}");
    let (status, _) = server
        .token_response(
            app["appId"].as_str().unwrap(),
            v["value"].as_str().unwrap(),
            "api://lockstep/.default",
        )
        .await;
    status == 200
}

#[tokio::test]
async fn scheduled_rotation_with_time_shift_overlap_and_grace() {
    let server = dev_server().await;
    let api = Api::new(&server).await;
    let app = api
        .bound_app(
            "acg",
            "acg-client-secret",
            json!({"interval": "P70D", "jitter": "PT0S"}),
        )
        .await;
    // A binding whose secret does not exist yet rotates at once.
    let runs = api.settle("acg", 1).await;
    assert_eq!(runs[0]["state"], "succeeded", "{}", runs[0]);
    assert_eq!(runs[0]["trigger"], "schedule");
    let first_key = runs[0]["credential"]["keyId"].as_str().unwrap().to_owned();
    assert!(latest_value_works(&server, &app, "acg-client-secret").await);
    let name = runs[0]["steps"][0]["detail"]["name"].as_str().unwrap();
    assert!(
        name.starts_with("lockstep 20")
            && name.ends_with(&format!("r-{}", runs[0]["id"].as_str().unwrap())),
        "{name}"
    );
    // The vault version carries the credential's expiry and links to it.
    let status = api.status_of("acg").await;
    assert_eq!(status["currentKeyId"], first_key.as_str());
    assert_eq!(status["problems"], json!([]), "{status}");
    // The metrics' gauges agree with the status report.
    let metrics = server.metrics().await;
    for line in [
        format!(
            "lockstep_credential_expiry_timestamp_seconds{{binding=\"acg\"}} {}",
            status["currentExpires"].as_i64().unwrap()
        ),
        format!(
            "lockstep_rotation_next_due_timestamp_seconds{{binding=\"acg\"}} {}",
            status["nextRotation"].as_i64().unwrap()
        ),
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }

    // 71 days later the scheduler rotates; the previous credential stays
    // valid for the grace period, then is revoked.
    api.shift("P71D").await;
    let runs = api.settle("acg", 2).await;
    assert_eq!(runs[0]["state"], "succeeded", "{}", runs[0]);
    assert_eq!(runs[0]["steps"][4]["state"], "scheduled");
    let keys: Vec<String> = api
        .credentials(&app)
        .await
        .iter()
        .map(|c| c["keyId"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        keys.contains(&first_key),
        "previous credential still valid during the grace period"
    );
    assert_eq!(keys.len(), 2);
    api.shift("P2D").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let keys: Vec<String> = api
            .credentials(&app)
            .await
            .iter()
            .map(|c| c["keyId"].as_str().unwrap().to_owned())
            .collect();
        if !keys.contains(&first_key) {
            assert_eq!(keys.len(), 1);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "previous credential not revoked after the grace period"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(latest_value_works(&server, &app, "acg-client-secret").await);
    // The revocation is recorded on the run right after it took effect.
    let path = format!(
        "/lockstep/v1/rotation/runs/{}",
        runs[0]["id"].as_str().unwrap()
    );
    loop {
        let run = api.ok(Method::GET, &path, None).await;
        if run["steps"][4]["state"] == "done" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the revocation step is not done: {run}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn emergency_rotation_revokes_the_leaked_credential_at_once() {
    let server = dev_server().await;
    let api = Api::new(&server).await;
    let app = api
        .bound_app("leaky", "leaky-secret", json!({"jitter": "PT0S"}))
        .await;
    let runs = api.settle("leaky", 1).await;
    let leaked = runs[0]["credential"]["keyId"].as_str().unwrap().to_owned();
    let token = server.vault_token().await;
    let url = format!(
        "{}/secrets/leaky-secret/?api-version=7.6",
        server.vault_url("default")
    );
    let (_, _, old) = server.send(Method::GET, &url, Some(&token), None).await;
    let old_value = old["value"].as_str().unwrap().to_owned();

    let v = api
        .ok(
            Method::POST,
            "/lockstep/v1/rotation/bindings/leaky/rotate",
            Some(json!({"revokePrevious": "now"})),
        )
        .await;
    let run_id = v["runId"].as_str().unwrap();
    let runs = api.settle("leaky", 2).await;
    let run = runs.iter().find(|r| r["id"] == run_id).unwrap();
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["trigger"], "emergency");
    assert_eq!(run["steps"][4]["state"], "done");
    assert!(
        run["leakedValidForSeconds"].as_i64().is_some(),
        "the run records how long the leaked credential stayed valid"
    );
    let keys: Vec<String> = api
        .credentials(&app)
        .await
        .iter()
        .map(|c| c["keyId"].as_str().unwrap().to_owned())
        .collect();
    assert!(!keys.contains(&leaked), "leaked credential removed");
    let (status, body) = server
        .token_response(
            app["appId"].as_str().unwrap(),
            &old_value,
            "api://lockstep/.default",
        )
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error_codes"][0], 7000215);
    assert!(latest_value_works(&server, &app, "leaky-secret").await);
}

#[tokio::test]
async fn dual_phase_keeps_the_previous_credential_for_a_second_interval() {
    let server = dev_server().await;
    let api = Api::new(&server).await;
    let app = api
        .bound_app(
            "dual",
            "dual-secret",
            json!({"interval": "P30D", "mode": "dual-phase", "jitter": "PT0S"}),
        )
        .await;
    let mut generations = vec![api.settle("dual", 1).await[0]["credential"]["keyId"]
        .as_str()
        .unwrap()
        .to_owned()];
    for n in 2..=4 {
        api.shift("P31D").await;
        let runs = api.settle("dual", n).await;
        assert_eq!(runs[0]["state"], "succeeded", "{}", runs[0]);
        generations.push(runs[0]["credential"]["keyId"].as_str().unwrap().to_owned());
        api.shift("P2D").await; // past the grace period
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let keys: Vec<String> = api
                .credentials(&app)
                .await
                .iter()
                .map(|c| c["keyId"].as_str().unwrap().to_owned())
                .collect();
            // Current and previous are valid; the one before is gone.
            let expected: Vec<String> = generations.iter().rev().take(2).cloned().collect();
            if keys.len() == 2 && expected.iter().all(|k| keys.contains(k)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "generation {n}: {keys:?} vs {generations:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn status_reports_drift() {
    let server = dev_server().await;
    let api = Api::new(&server).await;
    let app = api
        .bound_app("drift", "drift-secret", json!({"jitter": "PT0S"}))
        .await;
    api.settle("drift", 1).await;
    // A secret made by hand and forgotten: referenced by no vault version.
    let id = app["id"].as_str().unwrap();
    let manual = api
        .ok(
            Method::POST,
            &format!("/v1.0/applications/{id}/addPassword"),
            Some(json!({"passwordCredential": {"displayName": "by hand"}})),
        )
        .await;
    let status = api.status_of("drift").await;
    let kinds: Vec<&str> = status["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    // It also lives longer than the policy allows (two years by default).
    assert_eq!(
        kinds,
        vec!["OrphanCredential", "LifetimeOverPolicy"],
        "{status}"
    );
    // The current version's credential removed by hand: the vault points at nothing.
    let current = status["currentKeyId"].as_str().unwrap();
    api.ok(
        Method::POST,
        &format!("/v1.0/applications/{id}/removePassword"),
        Some(json!({"keyId": current})),
    )
    .await;
    let status = api.status_of("drift").await;
    let kinds: Vec<&str> = status["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"CredentialGone"), "{status}");
    assert!(!manual["keyId"].is_null());
}

#[tokio::test]
async fn cancel_cleans_up_and_retry_makes_a_fresh_credential() {
    let server = dev_server().await;
    let api = Api::new(&server).await;
    // A probe that always fails keeps the run in verification.
    let app = api
        .bound_app(
            "probe",
            "probe-secret",
            json!({"jitter": "PT0S", "probeUrl": "http://127.0.0.1:9/never", "verifyTimeout": "PT30S"}),
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let run_id = loop {
        let v = api
            .ok(
                Method::GET,
                "/lockstep/v1/rotation/runs?binding=probe",
                None,
            )
            .await;
        if let Some(r) = v["value"].as_array().unwrap().first() {
            if r["steps"][2]["state"] == "started" {
                break r["id"].as_str().unwrap().to_owned();
            }
        }
        assert!(Instant::now() < deadline, "run never reached verification");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    api.ok(
        Method::POST,
        &format!("/lockstep/v1/rotation/runs/{run_id}/cancel"),
        None,
    )
    .await;
    let runs = api.settle("probe", 1).await;
    assert_eq!(runs[0]["state"], "cancelled", "{}", runs[0]);
    assert!(
        api.credentials(&app).await.is_empty(),
        "the cancelled run's credential was removed"
    );
    let token = server.vault_token().await;
    let url = format!(
        "{}/secrets/probe-secret/versions?api-version=7.6",
        server.vault_url("default")
    );
    let (s, _, _) = server.send(Method::GET, &url, Some(&token), None).await;
    assert_eq!(s, 404, "the staged version was discarded");
    // Retry without the failing probe: a fresh credential.
    api.ok(
        Method::PATCH,
        "/lockstep/v1/rotation/bindings/probe",
        Some(json!({"policy": {"probeUrl": ""}})),
    )
    .await;
    let v = api
        .ok(
            Method::POST,
            &format!("/lockstep/v1/rotation/runs/{run_id}/retry"),
            None,
        )
        .await;
    let retry_id = v["runId"].as_str().unwrap().to_owned();
    let runs = api.settle("probe", 2).await;
    let retry = runs.iter().find(|r| r["id"] == retry_id.as_str()).unwrap();
    assert_eq!(retry["state"], "succeeded", "{retry}");
    assert_eq!(retry["retryOf"], run_id.as_str());
    assert_ne!(
        retry["credential"]["keyId"],
        runs.iter().find(|r| r["id"] == run_id.as_str()).unwrap()["steps"][0]["detail"]["keyId"]
    );
    assert!(latest_value_works(&server, &app, "probe-secret").await);
    // Two runs of one binding never overlap.
    let (s, _) = api
        .call(
            Method::POST,
            "/lockstep/v1/rotation/bindings/probe/rotate",
            None,
        )
        .await;
    let (s2, v2) = api
        .call(
            Method::POST,
            "/lockstep/v1/rotation/bindings/probe/rotate",
            None,
        )
        .await;
    assert_eq!(s, 202);
    assert!(s2 == 409 || s2 == 202, "{v2}");
    api.settle("probe", 3).await;
}

/// A small deterministic generator (xorshift) so crash moments are
/// reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[tokio::test]
async fn crash_at_random_moments_never_loses_or_orphans_a_credential() {
    let seed: u64 = std::env::var("LOCKSTEP_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261127);
    let rounds: usize = std::env::var("LOCKSTEP_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let mut rng = Rng(seed);
    let mut server = dev_server().await;
    let (app, binding) = {
        let api = Api::new(&server).await;
        (
            api.bound_app("crashy", "crashy-secret", json!({"jitter": "PT0S"}))
                .await,
            "crashy",
        )
    };
    let mut states = std::collections::BTreeMap::<String, usize>::new();
    for round in 0..rounds {
        {
            let api = Api::new(&server).await;
            api.settle(binding, 1).await;
            let (s, v) = api
                .call(Method::POST, &format!("/lockstep/v1/rotation/bindings/{binding}/rotate"), Some(json!({"revokePrevious": if round % 3 == 0 { "now" } else { "afterGrace" }})))
                .await;
            assert_eq!(s, 202, "{v}");
        }
        let delay = rng.next() % 40;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        server.kill();
        server.restart().await;
        let api = Api::new(&server).await;
        let runs = api.settle(binding, 1).await;
        assert!(
            runs.iter().all(|r| matches!(
                r["state"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            )),
            "no run is stuck"
        );
        // Invariants after every crash.
        assert!(
            latest_value_works(&server, &app, "crashy-secret").await,
            "round {round}: the latest version's value gets a token"
        );
        let status = api.status_of(binding).await;
        let bad: Vec<&Value> = status["problems"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| {
                matches!(
                    p["kind"].as_str(),
                    Some("OrphanCredential" | "CredentialGone" | "SecretMissing")
                )
            })
            .collect();
        assert!(
            bad.is_empty(),
            "round {round} (seed {seed}, crash after {delay} ms): {status}"
        );
    }
    let api = Api::new(&server).await;
    let mut resumed = 0;
    for r in api.settle(binding, rounds).await {
        *states
            .entry(r["state"].as_str().unwrap().to_owned())
            .or_default() += 1;
        // A step begun twice was interrupted by a crash and resumed.
        let steps = r["steps"].as_array().unwrap();
        if [0, 1, 3, 4]
            .iter()
            .any(|&i| steps[i]["attempts"].as_u64().unwrap_or(0) > 1)
        {
            resumed += 1;
        }
    }
    println!(
        "crash test: seed {seed}, {rounds} crashes, {resumed} runs interrupted mid-step and resumed, runs by final state: {states:?}"
    );
}

#[tokio::test]
async fn downtime_catch_up_rotates_once_and_reschedules_from_now() {
    let server = dev_server().await;
    let api = Api::new(&server).await;
    api.bound_app(
        "late",
        "late-secret",
        json!({"interval": "P30D", "jitter": "PT0S"}),
    )
    .await;
    api.settle("late", 1).await;
    // Five intervals pass at once (a server that was down for months).
    let v = api
        .ok(
            Method::POST,
            "/lockstep/v1/dev/time-shift",
            Some(json!({"by": "P150D"})),
        )
        .await;
    let now = v["now"].as_i64().unwrap();
    let runs = api.settle("late", 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // several scheduler ticks
    let runs_after = api.settle("late", 2).await;
    assert_eq!(
        runs_after.len(),
        2,
        "one catch-up rotation, not one per missed interval: {runs:?}"
    );
    let b = api
        .ok(Method::GET, "/lockstep/v1/rotation/bindings/late", None)
        .await;
    let next = b["nextDue"].as_i64().unwrap();
    assert!(
        next >= now + 30 * 86_400 - 5 && next <= now + 30 * 86_400 + 60,
        "next rotation one interval after the catch-up: {b}"
    );
}

#[tokio::test]
async fn a_failing_binding_raises_one_event_and_backs_off() {
    let server = dev_server().await;
    let api = Api::new(&server).await;
    // Verification calls a probe that refuses; it gives up after a second.
    let app = api
        .bound_app(
            "failing",
            "failing-secret",
            json!({"jitter": "PT0S", "probeUrl": "http://127.0.0.1:9/never", "verifyTimeout": "PT1S"}),
        )
        .await;
    let runs = api.settle("failing", 1).await;
    assert_eq!(runs[0]["state"], "failed", "{}", runs[0]);
    assert!(runs[0]["error"].as_str().unwrap().contains("probe"));
    // What the failed run created is gone; nothing else was touched.
    assert!(api.credentials(&app).await.is_empty());
    // It backs off instead of retrying every tick.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(api.settle("failing", 1).await.len(), 1, "no retry storm");
    let b = api
        .ok(Method::GET, "/lockstep/v1/rotation/bindings/failing", None)
        .await;
    assert_eq!(b["failures"], 1);
    let status = api.ok(Method::GET, "/lockstep/v1/status", None).await;
    assert!(
        b["nextDue"].as_i64().unwrap() > status["now"].as_i64().unwrap() + 60,
        "{b}"
    );
    assert!(server
        .metrics()
        .await
        .contains("lockstep_rotations_total{result=\"failed\"} 1"));
}

#[tokio::test]
async fn time_shift_exists_only_in_development_mode() {
    let server = Server::start().await;
    let api = Api::new(&server).await;
    let (s, v) = api
        .call(
            Method::POST,
            "/lockstep/v1/dev/time-shift",
            Some(json!({"by": "P71D"})),
        )
        .await;
    assert_eq!(s, 404, "{v}");
}

#[tokio::test]
async fn deleted_apps_can_be_restored_within_thirty_days() {
    let server = dev_server().await;
    let api = Api::new(&server).await;
    let (app, secret) = api.app_with_secret("restorable").await;
    let secret = secret.as_str();
    let id = app["id"].as_str().unwrap();
    let app_id = app["appId"].as_str().unwrap();
    api.ok(Method::DELETE, &format!("/v1.0/applications/{id}"), None)
        .await;
    let (s, _) = server
        .token_response(app_id, secret, "api://lockstep/.default")
        .await;
    assert_eq!(
        s, 400,
        "a deleted app's secrets stop working (unknown client)"
    );
    let deleted = api
        .ok(
            Method::GET,
            "/v1.0/directory/deletedItems/microsoft.graph.application",
            None,
        )
        .await;
    assert_eq!(deleted["value"][0]["id"], id);
    api.ok(
        Method::POST,
        &format!("/v1.0/directory/deletedItems/{id}/restore"),
        None,
    )
    .await;
    let (s, _) = server
        .token_response(app_id, secret, "api://lockstep/.default")
        .await;
    assert_eq!(s, 200, "restored with its secrets");
    // After 30 days a deleted app is gone for good.
    api.ok(Method::DELETE, &format!("/v1.0/applications/{id}"), None)
        .await;
    api.shift("P31D").await;
    let (s, v) = api
        .call(
            Method::POST,
            &format!("/v1.0/directory/deletedItems/{id}/restore"),
            None,
        )
        .await;
    assert_eq!(s, 404, "{v}");
}
