//! Zero-downtime soak: consumers keep calling a protected API (a stand-in for
//! the seed's Operator Connect API, which validates Lockstep's JWTs through
//! the JWKS) while the scheduler rotates their credentials hundreds of times
//! under a shifted clock, in overlap and dual-phase mode, with emergency
//! rotations in between. Bounded in time and count; loopback only.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use lockstep_client::{is_stale_credential_error, Client, SecretCache};
use lockstep_crypto::signing::PublicJwk;
use lockstep_testkit::Server;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::consumers::{client_config, grant};
use crate::rotation::{dev_server, Api};

const API_AUDIENCE: &str = "api://lockstep";
const BINDINGS: usize = 4;
const WORKERS: usize = 8;
const SHIFTS: usize = 52;

/// The protected API: answers 200 to a request whose bearer token is a
/// valid Lockstep JWT for `api://lockstep`, 401 otherwise.
struct ProtectedApi {
    keys: Vec<PublicJwk>,
    issuer: String,
    /// Seconds the server's clock is ahead of the wall clock: while the
    /// test moves it, the API's own clock is somewhere between `lo` and `hi`.
    offset: Arc<(AtomicI64, AtomicI64)>,
}

impl ProtectedApi {
    fn check(&self, token: &str) -> Result<(), &'static str> {
        let parts: Vec<&str> = token.split('.').collect();
        if parts.len() != 3 {
            return Err("malformed");
        }
        let decode = |s: &str| -> Option<Value> {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).ok()?).ok()
        };
        let header = decode(parts[0]).ok_or("malformed")?;
        let claims = decode(parts[1]).ok_or("malformed")?;
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).map_err(|_| "malformed")?;
        let key = self
            .keys
            .iter()
            .find(|k| Some(k.kid.as_str()) == header["kid"].as_str())
            .ok_or("unknown key")?;
        let signed = &token[..parts[0].len() + 1 + parts[1].len()];
        if header["alg"] != "RS256" || !key.verify(signed.as_bytes(), &sig) {
            return Err("bad signature");
        }
        if claims["aud"] != API_AUDIENCE || claims["iss"] != self.issuer.as_str() {
            return Err("wrong audience or issuer");
        }
        let wall = time::OffsetDateTime::now_utc().unix_timestamp();
        let (earliest, latest) = (
            wall + self.offset.0.load(Ordering::SeqCst),
            wall + self.offset.1.load(Ordering::SeqCst),
        );
        if claims["exp"].as_i64().unwrap_or(0) <= earliest {
            return Err("expired");
        }
        if claims["nbf"].as_i64().unwrap_or(i64::MAX) > latest + 300 {
            return Err("not yet valid");
        }
        Ok(())
    }
}

async fn serve_api(api: Arc<ProtectedApi>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let api = api.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf);
                let token = head
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("authorization: Bearer ")
                            .or_else(|| l.strip_prefix("Authorization: Bearer "))
                    })
                    .unwrap_or("")
                    .trim()
                    .to_owned();
                let (status, body) = match api.check(&token) {
                    Ok(()) => ("200 OK", "ok"),
                    Err(why) => ("401 Unauthorized", why),
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    port
}

#[derive(Default)]
struct Counts {
    api_ok: AtomicU64,
    api_failed: AtomicU64,
    refused_after_revocation: AtomicU64,
    token_failed: AtomicU64,
    expired_token_retries: AtomicU64,
}

/// Asks the token endpoint for an `api://lockstep` token with a client secret.
async fn request_token(
    http: &reqwest::Client,
    url: &str,
    app_id: &str,
    secret: &str,
) -> (reqwest::StatusCode, Value) {
    let resp = http
        .post(url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", app_id),
            ("client_secret", secret),
            ("scope", "api://lockstep/.default"),
        ])
        .send()
        .await
        .expect("token endpoint reachable");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// One consumer: read the latest secret through the client crate, get a
/// token with it, call the API.
#[allow(clippy::too_many_arguments)]
async fn consumer(
    server_authority: String,
    tenant: String,
    app_id: String,
    secret_name: String,
    cache: Arc<SecretCache>,
    api_url: String,
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
    ca: Vec<u8>,
) {
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let token_url = format!("{server_authority}/{tenant}/oauth2/v2.0/token");
    while !stop.load(Ordering::SeqCst) {
        // A consumer calls the API now and then, not in a tight loop.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let mut current = cache
            .get_secret(&secret_name)
            .await
            .expect("read the secret");
        let mut token = None;
        for _ in 0..5 {
            let (status, body) = request_token(&http, &token_url, &app_id, &current.value).await;
            if status.is_success() {
                token = body["access_token"].as_str().map(str::to_owned);
                break;
            }
            assert!(
                is_stale_credential_error(&body),
                "unexpected token error: {body}"
            );
            // The credential this consumer held was revoked (emergency):
            // counted separately, then the cache fetches the new version.
            counts
                .refused_after_revocation
                .fetch_add(1, Ordering::Relaxed);
            match cache
                .on_auth_failure_of(&secret_name, &current.version)
                .await
                .expect("refresh")
            {
                Some(newer) => current = newer,
                None => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        let Some(mut token) = token else {
            counts.token_failed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let mut ok = false;
        for attempt in 0..2 {
            let r = http
                .get(&api_url)
                .bearer_auth(&token)
                .send()
                .await
                .expect("api reachable");
            if r.status().is_success() {
                ok = true;
                break;
            }
            let why = r.text().await.unwrap_or_default();
            // A token issued just before the test moved the clock forward
            // is expired afterwards: like any client, get a fresh one once.
            if attempt == 0 && why == "expired" {
                counts.expired_token_retries.fetch_add(1, Ordering::Relaxed);
                let (_, body) = request_token(&http, &token_url, &app_id, &current.value).await;
                match body["access_token"].as_str() {
                    Some(t) => token = t.to_owned(),
                    None => break,
                }
                continue;
            }
            eprintln!("API call refused: {why}");
            break;
        }
        if ok {
            counts.api_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            counts.api_failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consumers_see_no_failures_through_hundreds_of_rotations() {
    let started = Instant::now();
    let server: Server = dev_server().await;
    let api = Api::new(&server).await;
    let tenant = server.admin.tenant_id.clone();

    // Four gateways: two in overlap mode, two in dual-phase mode.
    let mut apps = Vec::new();
    for i in 0..BINDINGS {
        let mode = if i % 2 == 0 { "overlap" } else { "dual-phase" };
        let app = api
            .bound_app(
                &format!("gw{i}"),
                &format!("gw{i}-secret"),
                json!({"interval": "P1D", "mode": mode, "jitter": "PT0S", "gracePeriod": "PT1H"}),
            )
            .await;
        api.settle(&format!("gw{i}"), 1).await;
        apps.push(app);
    }
    // The consumers read with their own identity: Key Vault Secrets User.
    let reader = {
        let (created, secret) = api.app_with_secret("consumers").await;
        let app_id = created["appId"].as_str().unwrap().to_owned();
        grant(
            &server,
            &app_id,
            "Key Vault Secrets User",
            "/vaults/default",
        )
        .await;
        (app_id, secret)
    };

    // The protected API trusts Lockstep's published keys.
    let jwks: Value = {
        let url = format!("{}/{tenant}/discovery/v2.0/keys", server.authority());
        let (_, _, v) = server.send(Method::GET, &url, None, None).await;
        v
    };
    let keys = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| PublicJwk {
            kid: k["kid"].as_str().unwrap().to_owned(),
            n: URL_SAFE_NO_PAD.decode(k["n"].as_str().unwrap()).unwrap(),
            e: URL_SAFE_NO_PAD.decode(k["e"].as_str().unwrap()).unwrap(),
        })
        .collect();
    let offset = Arc::new((AtomicI64::new(0), AtomicI64::new(0)));
    let protected = Arc::new(ProtectedApi {
        keys,
        issuer: format!("{}/{tenant}/v2.0", server.authority()),
        offset: offset.clone(),
    });
    let api_port = serve_api(protected).await;

    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let ca = std::fs::read(&server.admin.ca_cert).unwrap();
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let b = w % BINDINGS;
        let cache = Arc::new(SecretCache::new(
            Client::new(client_config(&server, &reader.0, &reader.1)).unwrap(),
        ));
        workers.push(tokio::spawn(consumer(
            server.authority(),
            tenant.clone(),
            apps[b]["appId"].as_str().unwrap().to_owned(),
            format!("gw{b}-secret"),
            cache,
            format!("http://127.0.0.1:{api_port}/ops"),
            counts.clone(),
            stop.clone(),
            ca.clone(),
        )));
    }

    // Drive the schedule: every shift makes each binding due; every fourth
    // shift one binding also gets an emergency rotation.
    let mut emergencies = 0;
    let mut expected = [1usize; BINDINGS];
    for shift in 0..SHIFTS {
        offset.1.fetch_add(26 * 3_600, Ordering::SeqCst);
        let v = api
            .ok(
                Method::POST,
                "/lockstep/v1/dev/time-shift",
                Some(json!({"by": "P1DT2H"})),
            )
            .await;
        let now = v["now"].as_i64().unwrap() - time::OffsetDateTime::now_utc().unix_timestamp();
        offset.0.store(now, Ordering::SeqCst);
        offset.1.store(now, Ordering::SeqCst);
        for (i, n) in expected.iter_mut().enumerate() {
            *n += 1;
            api.settle(&format!("gw{i}"), *n).await;
        }
        if shift % 4 == 1 {
            let b = (shift / 4) % BINDINGS;
            expected[b] += 1;
            let (s, v) = api
                .call(
                    Method::POST,
                    &format!("/lockstep/v1/rotation/bindings/gw{b}/rotate"),
                    Some(json!({"revokePrevious": "now"})),
                )
                .await;
            assert_eq!(s, 202, "{v}");
            emergencies += 1;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "the soak test is bounded in time"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        tokio::time::timeout(Duration::from_secs(60), w)
            .await
            .expect("workers stop")
            .expect("worker");
    }

    // Count what the scheduler and the emergencies did.
    let mut succeeded = 0;
    let mut emergency_runs = 0;
    let mut dual_phase_runs = 0;
    for i in 0..BINDINGS {
        for r in api.settle(&format!("gw{i}"), 1).await {
            assert_eq!(r["state"], "succeeded", "{r}");
            succeeded += 1;
            if r["trigger"] == "emergency" {
                emergency_runs += 1;
            }
            if i % 2 == 1 {
                dual_phase_runs += 1;
            }
        }
    }
    let ok = counts.api_ok.load(Ordering::SeqCst);
    let failed = counts.api_failed.load(Ordering::SeqCst);
    let refused = counts.refused_after_revocation.load(Ordering::SeqCst);
    let token_failed = counts.token_failed.load(Ordering::SeqCst);
    println!(
        "soak: {succeeded} rotations ({dual_phase_runs} dual-phase, {emergency_runs} emergency), \
         {WORKERS} consumers, {ok} API calls succeeded, {failed} failed; \
         {refused} token requests refused after an emergency revocation (then recovered), \
         {} expired-token retries after clock shifts, {token_failed} consumers without a token; {:.1} s",
        counts.expired_token_retries.load(Ordering::SeqCst),
        started.elapsed().as_secs_f64()
    );
    assert!(succeeded >= 200, "at least 200 rotations: {succeeded}");
    assert!(
        emergency_runs >= 10 && emergencies >= 10,
        "at least 10 emergency rotations: {emergency_runs}"
    );
    assert!(dual_phase_runs >= 50);
    assert!(ok > 0);
    assert_eq!(failed, 0, "no API call failed");
    assert_eq!(token_failed, 0, "every consumer always got a token");
}
