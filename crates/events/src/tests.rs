//! The events service against a real SQLite store: publishing, filters and
//! tenants, the expiry scan, and delivery to a local receiver across a
//! restart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lockstep_core::{Clock, SharedClock, SystemClock, TestClock};
use lockstep_crypto::Kek;
use lockstep_store::{DeliveryState, SqliteStore, Store, VaultRow, VersionRow};
use serde_json::{json, Value};

use crate::*;

const T1: &str = "t1";
const NOW: i64 = 1_800_000_000;
const DAY: i64 = 86_400;

struct Fixture {
    dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    kek: Arc<Kek>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).unwrap());
        Self {
            dir,
            store,
            kek: Arc::new(Kek::generate()),
        }
    }

    fn events(&self, clock: SharedClock, retry_base: Duration) -> Arc<Events> {
        let mut config = EventsConfig::new(
            "https://localhost:8443".into(),
            "https://{vault}.vault.localhost:8443".into(),
        );
        config.retry = RetryPolicy::with_base(retry_base);
        config.timeout = Duration::from_secs(5);
        Arc::new(Events::new(self.store.clone(), self.kek.clone(), clock, config).unwrap())
    }

    /// Reopens the database file, as a restarted server would.
    fn reopen(&self) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(&self.dir.path().join("db")).unwrap())
    }
}

fn hook(types: &[&str], prefix: Option<&str>) -> NewSubscription {
    NewSubscription {
        name: None,
        endpoint: "https://hooks.example.com/lockstep".into(),
        event_types: types.iter().map(|t| (*t).to_owned()).collect(),
        subject_prefix: prefix.map(str::to_owned),
        enabled: None,
    }
}

fn subject(name: &str) -> String {
    event::secret_subject(T1, "default", name)
}

fn delivered_types(events: &Events, tenant: &str, sub: &str) -> Vec<String> {
    let mut types: Vec<String> = events
        .deliveries(tenant, sub, 100)
        .unwrap()
        .into_iter()
        .map(|d| d.delivery.event_type)
        .collect();
    types.sort();
    types
}

#[test]
fn publish_fans_out_to_matching_subscriptions_only() {
    let f = Fixture::new();
    let events = f.events(Arc::new(TestClock::at(NOW)), Duration::from_secs(1));
    let (all, secret) = events.create_subscription(T1, hook(&[], None)).unwrap();
    assert_eq!(secret.len(), 43, "a 256-bit secret, base64url");
    let (new_versions, _) = events
        .create_subscription(T1, hook(&["SecretNewVersionCreated"], None))
        .unwrap();
    let (db_only, _) = events
        .create_subscription(T1, hook(&[], Some("/vaults/default/secrets/db")))
        .unwrap();
    assert_eq!(
        db_only.subject_prefix.as_deref(),
        Some("/tenants/t1/vaults/default/secrets/db")
    );
    let (other_tenant, _) = events.create_subscription("t2", hook(&[], None)).unwrap();
    let (mut disabled, _) = events.create_subscription(T1, hook(&[], None)).unwrap();
    disabled = events
        .update_subscription(
            T1,
            &disabled.id,
            SubscriptionChange {
                enabled: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(!disabled.enabled);

    let data = events.secret_data("default", "db", "v1", None, None);
    events
        .publish(
            EventType::SecretNewVersionCreated,
            &subject("db"),
            data.clone(),
        )
        .unwrap();
    events
        .publish(EventType::SecretExpired, &subject("api-key"), data)
        .unwrap();
    events
        .publish(
            EventType::RotationSucceeded,
            "/rotation/runs/r1",
            json!({"run": "r1"}),
        )
        .unwrap();

    assert_eq!(
        delivered_types(&events, T1, &all.id),
        [
            "Lockstep.RotationSucceeded",
            "Microsoft.KeyVault.SecretExpired",
            "Microsoft.KeyVault.SecretNewVersionCreated"
        ]
    );
    assert_eq!(
        delivered_types(&events, T1, &new_versions.id),
        ["Microsoft.KeyVault.SecretNewVersionCreated"]
    );
    assert_eq!(
        delivered_types(&events, T1, &db_only.id),
        ["Microsoft.KeyVault.SecretNewVersionCreated"]
    );
    // Tenant-less subjects go to every tenant; tenant subjects only to theirs.
    assert_eq!(
        delivered_types(&events, "t2", &other_tenant.id),
        ["Lockstep.RotationSucceeded"]
    );
    assert!(delivered_types(&events, T1, &disabled.id).is_empty());
    assert_eq!(events.stats().published, 3);

    // Every delivery is pending, due now, with no attempt yet.
    let log = events.deliveries(T1, &all.id, 10).unwrap();
    assert!(log
        .iter()
        .all(|d| d.delivery.state == DeliveryState::Pending
            && d.delivery.attempts == 0
            && d.attempts.is_empty()
            && d.delivery.next_attempt_at == NOW * 1000));
}

#[test]
fn subscriptions_belong_to_their_tenant() {
    let f = Fixture::new();
    let events = f.events(Arc::new(TestClock::at(NOW)), Duration::from_secs(1));
    let (s, _) = events.create_subscription(T1, hook(&[], None)).unwrap();
    assert!(matches!(
        events.subscription("t2", &s.id),
        Err(EventsError::NotFound)
    ));
    assert!(matches!(
        events.delete_subscription("t2", &s.id),
        Err(EventsError::NotFound)
    ));
    assert!(matches!(
        events.send_test("t2", &s.id),
        Err(EventsError::NotFound)
    ));
    assert!(events.subscriptions("t2").unwrap().is_empty());
    assert_eq!(events.subscriptions(T1).unwrap().len(), 1);
    assert_eq!(events.subscription(T1, &s.id.to_uppercase()).unwrap(), s);
    assert!(matches!(
        events.create_subscription(
            T1,
            NewSubscription {
                endpoint: "http://example.com/".into(),
                ..Default::default()
            }
        ),
        Err(EventsError::Invalid(_))
    ));
    events.delete_subscription(T1, &s.id).unwrap();
    assert!(matches!(
        events.subscription(T1, &s.id),
        Err(EventsError::NotFound)
    ));
}

#[test]
fn the_test_event_ignores_filters_but_not_disabling() {
    let f = Fixture::new();
    let events = f.events(Arc::new(TestClock::at(NOW)), Duration::from_secs(1));
    let (s, _) = events
        .create_subscription(T1, hook(&["SecretExpired"], Some("/vaults/x/")))
        .unwrap();
    let id = events.send_test(T1, &s.id).unwrap();
    let log = events.deliveries(T1, &s.id, 10).unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].delivery.event_id, id);
    assert_eq!(log[0].delivery.event_type, "Lockstep.SubscriptionTest");
    let body: Value =
        serde_json::from_slice(&f.store.event_get(&id).unwrap().unwrap().body).unwrap();
    assert_eq!(body["data"]["subscriptionId"], s.id.as_str());
    events
        .update_subscription(
            T1,
            &s.id,
            SubscriptionChange {
                enabled: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(matches!(
        events.send_test(T1, &s.id),
        Err(EventsError::Disabled)
    ));
}

fn put_version(store: &dyn Store, name: &str, version: &str, exp: Option<i64>) {
    store
        .version_insert(&VersionRow {
            vault: "default".into(),
            name_key: name.to_ascii_lowercase(),
            name: name.into(),
            seq: 0,
            version: version.into(),
            enabled: true,
            nbf: None,
            exp,
            created: NOW,
            updated: NOW,
            content_type: None,
            tags: Default::default(),
            managed: false,
            previous_version: None,
            kek_id: "k".into(),
            wrapped_dek: vec![1],
            ciphertext: vec![2],
        })
        .unwrap();
}

#[test]
fn expiry_notices_are_published_once_per_version_and_expiry() {
    let f = Fixture::new();
    let clock = Arc::new(TestClock::at(NOW));
    let events = f.events(clock.clone(), Duration::from_secs(1));
    f.store
        .tenant_create(&lockstep_store::TenantRow {
            id: T1.into(),
            display_name: "t".into(),
            created: NOW,
        })
        .unwrap();
    f.store
        .vault_create(&VaultRow {
            name: "default".into(),
            tenant_id: T1.into(),
            created: NOW,
        })
        .unwrap();
    let (s, _) = events.create_subscription(T1, hook(&[], None)).unwrap();
    put_version(&*f.store, "soon", "v-soon", Some(NOW + 10 * DAY));
    put_version(&*f.store, "later", "v-later", Some(NOW + 40 * DAY));
    put_version(&*f.store, "gone", "v-gone", Some(NOW - DAY));
    put_version(&*f.store, "never", "v-never", None);

    // Now: "soon" is near expiry, "gone" has expired (and gets no near notice).
    assert_eq!(events.scan_expiry().unwrap(), 2);
    assert_eq!(events.scan_expiry().unwrap(), 0, "nothing twice");
    assert_eq!(
        delivered_types(&events, T1, &s.id),
        [
            "Microsoft.KeyVault.SecretExpired",
            "Microsoft.KeyVault.SecretNearExpiry"
        ]
    );
    let near = events
        .deliveries(T1, &s.id, 10)
        .unwrap()
        .into_iter()
        .find(|d| d.delivery.event_type.ends_with("NearExpiry"))
        .unwrap();
    assert_eq!(near.delivery.subject, subject("soon"));
    let body: Value = serde_json::from_slice(
        &f.store
            .event_get(&near.delivery.event_id)
            .unwrap()
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(body["data"]["ObjectName"], "soon");
    assert_eq!(body["data"]["Version"], "v-soon");
    assert_eq!(body["data"]["EXP"], NOW + 10 * DAY);
    assert_eq!(
        body["data"]["Id"],
        "https://default.vault.localhost:8443/secrets/soon/v-soon"
    );

    // A restart (a new service on the reopened database) repeats nothing.
    let again = Events::new(
        f.reopen(),
        f.kek.clone(),
        clock.clone(),
        EventsConfig::new("https://localhost:8443".into(), "https://{vault}".into()),
    )
    .unwrap();
    assert_eq!(again.scan_expiry().unwrap(), 0);

    // Eleven days on: "soon" expired; "later" is now within 30 days.
    clock.advance(11 * DAY);
    assert_eq!(events.scan_expiry().unwrap(), 2);
    assert_eq!(events.scan_expiry().unwrap(), 0);
    assert_eq!(events.deliveries(T1, &s.id, 100).unwrap().len(), 4);

    // Moving a version's expiry makes it due again.
    let mut v = f
        .store
        .version_get("default", "soon", "v-soon")
        .unwrap()
        .unwrap();
    v.exp = Some(clock.unix() + 5 * DAY);
    f.store.version_update(&v).unwrap();
    assert_eq!(events.scan_expiry().unwrap(), 1);

    // Deleted secrets are not reported.
    f.store
        .secret_delete("default", "later", clock.unix(), clock.unix() + DAY)
        .unwrap();
    clock.advance(60 * DAY);
    assert_eq!(events.scan_expiry().unwrap(), 1, "only soon's new expiry");
}

#[test]
fn claims_lease_deliveries_and_disabled_subscriptions_wait() {
    let f = Fixture::new();
    let events = f.events(Arc::new(TestClock::at(NOW)), Duration::from_secs(1));
    let (s, _) = events.create_subscription(T1, hook(&[], None)).unwrap();
    events
        .publish(EventType::RotationFailed, "/x", json!({}))
        .unwrap();
    let now = NOW * 1000;
    assert_eq!(f.store.delivery_next_due().unwrap(), Some(now));
    let claimed = f.store.delivery_claim(now, now + 15_000, 10).unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(f
        .store
        .delivery_claim(now + 14_999, now + 30_000, 10)
        .unwrap()
        .is_empty());
    assert_eq!(f.store.delivery_next_due().unwrap(), Some(now + 15_000));
    events
        .update_subscription(
            T1,
            &s.id,
            SubscriptionChange {
                enabled: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(f
        .store
        .delivery_claim(now + 20_000, now + 40_000, 10)
        .unwrap()
        .is_empty());
    assert_eq!(f.store.delivery_next_due().unwrap(), None);
}

/// What the local receiver saw.
#[derive(Clone, Debug)]
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A tiny HTTP/1.1 receiver on 127.0.0.1 that answers the given statuses
/// in turn, then 200.
fn receiver(statuses: Vec<u16>) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        let mut statuses = statuses.into_iter();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = Vec::new();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap() == 0 || line.trim().is_empty() {
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
            reader.read_exact(&mut body).unwrap();
            log.lock().unwrap().push(Received { headers, body });
            let status = statuses.next().unwrap_or(200);
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (url, seen)
}

async fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_signed_retried_and_survive_a_restart() {
    let f = Fixture::new();
    let clock: SharedClock = Arc::new(SystemClock::new());
    let events = f.events(clock.clone(), Duration::from_millis(300));

    // An endpoint nobody listens on: the first attempt cannot connect.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let (s, secret) = events
        .create_subscription(
            T1,
            NewSubscription {
                endpoint: closed_url,
                ..Default::default()
            },
        )
        .unwrap();
    let worker = tokio::spawn(events.clone().run_deliveries());
    let event_id = events
        .publish(
            EventType::SecretNewVersionCreated,
            &subject("db"),
            json!({"a": 1}),
        )
        .unwrap();
    let first = wait_for("the first attempt", || {
        let log = events.deliveries(T1, &s.id, 10).unwrap();
        log.first().filter(|d| d.delivery.attempts == 1).cloned()
    })
    .await;
    // "Restart": stop the worker and drop the service before the retry.
    worker.abort();
    let _ = worker.await;
    assert_eq!(first.delivery.state, DeliveryState::Pending);
    assert_eq!(first.attempts.len(), 1);
    assert_eq!(first.attempts[0].status_code, None);
    assert!(first.attempts[0]
        .error
        .as_deref()
        .unwrap_or("")
        .contains("connect"));
    assert!(first.delivery.next_attempt_at >= first.attempts[0].time + 300);
    assert_eq!(events.stats().retried, 1);
    drop(events);

    // The receiver fails once more with 500, then accepts.
    let (url, seen) = receiver(vec![500]);
    let mut config = EventsConfig::new("https://localhost:8443".into(), "https://{vault}".into());
    config.retry = RetryPolicy::with_base(Duration::from_millis(300));
    let restarted = Arc::new(Events::new(f.reopen(), f.kek.clone(), clock, config).unwrap());
    restarted
        .update_subscription(
            T1,
            &s.id,
            SubscriptionChange {
                endpoint: Some(url),
                ..Default::default()
            },
        )
        .unwrap();
    let worker = tokio::spawn(restarted.clone().run_deliveries());
    let done = wait_for("the delivery", || {
        let log = restarted.deliveries(T1, &s.id, 10).unwrap();
        log.first()
            .filter(|d| d.delivery.state == DeliveryState::Delivered)
            .cloned()
    })
    .await;
    worker.abort();
    let codes: Vec<Option<u16>> = done.attempts.iter().map(|a| a.status_code).collect();
    assert_eq!(codes, [None, Some(500), Some(200)]);
    assert_eq!(done.delivery.attempts, 3);

    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    for r in &got {
        assert_eq!(
            r.header("content-type"),
            Some("application/cloudevents+json; charset=utf-8")
        );
        assert_eq!(
            r.header("x-lockstep-delivery"),
            Some(done.delivery.id.as_str())
        );
        let ts: i64 = r.header("x-lockstep-timestamp").unwrap().parse().unwrap();
        let sig = r.header("x-lockstep-signature").unwrap();
        assert!(signature::verify(secret.as_bytes(), ts, &r.body, sig));
        assert!(!signature::verify(b"wrong", ts, &r.body, sig));
        let ev: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(ev["id"], event_id.as_str());
        assert_eq!(ev["type"], "Microsoft.KeyVault.SecretNewVersionCreated");
        assert_eq!(ev["data"], json!({"a": 1}));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_fails_after_its_last_attempt() {
    let f = Fixture::new();
    let mut config = EventsConfig::new("https://localhost:8443".into(), "https://{vault}".into());
    config.retry = RetryPolicy {
        base: Duration::from_millis(10),
        cap: Duration::from_millis(20),
        max_attempts: 3,
    };
    let events = Arc::new(
        Events::new(
            f.store.clone(),
            f.kek.clone(),
            Arc::new(SystemClock::new()),
            config,
        )
        .unwrap(),
    );
    let (url, seen) = receiver(vec![503, 503, 503, 503]);
    let (s, _) = events
        .create_subscription(
            T1,
            NewSubscription {
                endpoint: url,
                ..Default::default()
            },
        )
        .unwrap();
    let worker = tokio::spawn(events.clone().run_deliveries());
    events
        .publish(EventType::RotationFailed, "/r", json!({}))
        .unwrap();
    let done = wait_for("the delivery to fail", || {
        let log = events.deliveries(T1, &s.id, 10).unwrap();
        log.first()
            .filter(|d| d.delivery.state == DeliveryState::Failed)
            .cloned()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    worker.abort();
    assert_eq!(done.attempts.len(), 3);
    assert_eq!(seen.lock().unwrap().len(), 3, "no attempt after the last");
    assert_eq!(events.stats().failed, 1);
}
