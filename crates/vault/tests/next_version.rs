//! `Vaults::next_version`: the domain side of the secret watch, on a real
//! SQLite store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use lockstep_core::{SharedClock, TestClock};
use lockstep_crypto::Kek;
use lockstep_store::{SqliteStore, Store, TenantRow, VaultRow};
use lockstep_vault::{SetSecret, VaultRef, Vaults};
use zeroize::Zeroizing;

struct Fixture {
    _dir: tempfile::TempDir,
    vaults: Arc<Vaults>,
    vault: VaultRef,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("db.sqlite")).unwrap();
    store
        .tenant_create(&TenantRow {
            id: "t1".into(),
            display_name: "t".into(),
            created: 0,
        })
        .unwrap();
    store
        .vault_create(&VaultRow {
            name: "default".into(),
            tenant_id: "t1".into(),
            created: 0,
        })
        .unwrap();
    let clock: SharedClock = Arc::new(TestClock::at(1_800_000_000));
    let vaults = Vaults::new(Arc::new(store), Arc::new(Kek::generate()), clock);
    let vault = vaults.vault("default").unwrap();
    Fixture {
        _dir: dir,
        vaults: Arc::new(vaults),
        vault,
    }
}

fn value(v: &str) -> SetSecret {
    SetSecret {
        value: Zeroizing::new(v.into()),
        content_type: None,
        enabled: None,
        nbf: None,
        exp: None,
        tags: None,
        managed: false,
    }
}

const LONG: Duration = Duration::from_secs(30);

/// Waits (bounded) until a waiter has subscribed.
async fn parked(f: &Fixture) {
    tokio::time::timeout(LONG, async {
        while f.vaults.watched_secrets() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the waiter subscribes");
}

#[tokio::test]
async fn returns_at_once_when_the_latest_differs() {
    let f = fixture();
    let v1 = f.vaults.set(&f.vault, "db", value("one")).unwrap();
    let s = f.vaults.next_version(&f.vault, "db", None).await.unwrap();
    assert_eq!(s.meta.version, v1.meta.version);
    let other = "0".repeat(32);
    let s = f
        .vaults
        .next_version(&f.vault, "DB", Some(&other))
        .await
        .unwrap();
    assert_eq!(s.value.as_str(), "one");
}

#[tokio::test]
async fn waits_for_a_new_version_and_frees_its_slot() {
    let f = fixture();
    let v1 = f.vaults.set(&f.vault, "db", value("one")).unwrap();
    let (vaults, vault, after) = (f.vaults.clone(), f.vault.clone(), v1.meta.version.clone());
    let waiter = tokio::spawn(async move {
        vaults
            .next_version(&vault, "db", Some(&after.to_ascii_uppercase()))
            .await
    });
    // The waiter subscribes before it reads; wait until it is parked.
    parked(&f).await;
    assert!(!waiter.is_finished());
    let v2 = f.vaults.set(&f.vault, "db", value("two")).unwrap();
    let got = tokio::time::timeout(LONG, waiter)
        .await
        .expect("woken by set")
        .unwrap()
        .unwrap();
    assert_eq!(got.meta.version, v2.meta.version);
    assert_eq!(got.value.as_str(), "two");
    assert_eq!(f.vaults.watched_secrets(), 0);
}

#[tokio::test]
async fn an_unchanged_secret_keeps_the_waiter_waiting() {
    let f = fixture();
    let v1 = f.vaults.set(&f.vault, "db", value("one")).unwrap();
    f.vaults.set(&f.vault, "other", value("x")).unwrap();
    let wait = f
        .vaults
        .next_version(&f.vault, "db", Some(&v1.meta.version));
    // A change to another secret, and an explicit notify without a change,
    // do not end the wait.
    let poke = async {
        f.vaults.set(&f.vault, "other", value("y")).unwrap();
        f.vaults.notify(&f.vault, "db");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    tokio::select! {
        r = wait => panic!("returned without a change: {:?}", r.map(|s| s.meta.version)),
        _ = poke => {}
    }
    assert_eq!(
        f.vaults.watched_secrets(),
        0,
        "dropping the wait unsubscribes"
    );
}

#[tokio::test]
async fn deleting_the_secret_ends_the_wait_with_not_found() {
    let f = fixture();
    let v1 = f.vaults.set(&f.vault, "db", value("one")).unwrap();
    let (vaults, vault, after) = (f.vaults.clone(), f.vault.clone(), v1.meta.version.clone());
    let waiter = tokio::spawn(async move { vaults.next_version(&vault, "db", Some(&after)).await });
    parked(&f).await;
    f.vaults.delete(&f.vault, "db").unwrap();
    let err = tokio::time::timeout(LONG, waiter)
        .await
        .expect("woken by delete")
        .unwrap()
        .err()
        .expect("not found");
    assert!(
        matches!(err, lockstep_vault::VaultError::SecretNotFound(_)),
        "{err}"
    );
}

#[tokio::test]
async fn a_disabled_new_version_is_refused_like_get() {
    let f = fixture();
    let v1 = f.vaults.set(&f.vault, "db", value("one")).unwrap();
    let mut off = value("two");
    off.enabled = Some(false);
    f.vaults.set(&f.vault, "db", off).unwrap();
    let err = f
        .vaults
        .next_version(&f.vault, "db", Some(&v1.meta.version))
        .await
        .err()
        .expect("disabled");
    assert!(
        matches!(err, lockstep_vault::VaultError::Disabled(_)),
        "{err}"
    );
}
