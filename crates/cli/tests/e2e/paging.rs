//! Listings of more than one page: `maxresults`, absolute `nextLink`s
//! followed to the end, nothing duplicated and nothing missing.

use std::collections::HashSet;

use lockstep_testkit::Server;
use reqwest::Method;
use serde_json::Value;

use crate::{assert_kv_error, distinct, last_segment, Kv};

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn skiptoken_of(kv: &Kv<'_>, path: &str) -> String {
    let page = kv
        .ok(Method::GET, &format!("{path}?maxresults=1"), None)
        .await;
    let next = page["nextLink"].as_str().expect("a nextLink").to_owned();
    let token = next
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("$skiptoken="))
        .expect("$skiptoken in nextLink")
        .to_owned();
    token
}

#[tokio::test]
async fn secrets_and_deleted_secrets_page_past_25() {
    let server = Server::start().await;
    let kv = Kv::new(&server).await;
    let base = server.vault_url("default");
    let names: Vec<String> = (0..31).map(|i| format!("Page-Secret-{i:02}")).collect();
    for (i, name) in names.iter().enumerate() {
        kv.set(name, &format!("value-{i}")).await;
        if i % 10 == 0 {
            // A second version must not make a secret appear twice.
            kv.set(name, &format!("value-{i}-b")).await;
        }
    }
    let expected: HashSet<String> = names
        .iter()
        .map(|n| format!("{base}/secrets/{n}"))
        .collect();

    for (max, pages) in [
        (None, 2),
        (Some(25), 2),
        (Some(7), 5),
        (Some(1), 31),
        (Some(31 / 2), 3),
    ] {
        let (items, n) = kv.list_all("/secrets", max).await;
        assert_eq!(n, pages, "pages with maxresults {max:?}");
        assert_eq!(distinct(ids(&items)), expected, "maxresults {max:?}");
        for item in &items {
            assert!(
                item.get("value").is_none(),
                "listings carry no values: {item}"
            );
            assert_eq!(item["attributes"]["enabled"], true);
            assert_eq!(item["attributes"]["recoveryLevel"], "Recoverable+Purgeable");
        }
    }

    // Bad maxresults and skiptokens.
    for bad in ["0", "26", "-1", "abc", "1.5", "", "100000000000000000000"] {
        assert_kv_error(
            &kv.call(Method::GET, &format!("/secrets?maxresults={bad}"), None)
                .await,
            400,
            "BadParameter",
            None,
        );
    }
    for bad in ["garbage!", "eDox", "bjpiYWQgbmFtZQ"] {
        assert_kv_error(
            &kv.call(Method::GET, &format!("/secrets?$skiptoken={bad}"), None)
                .await,
            400,
            "BadParameter",
            None,
        );
    }

    // Deleted secrets page the same way.
    let (gone, kept) = names.split_at(27);
    for name in gone {
        kv.ok(Method::DELETE, &format!("/secrets/{name}"), None)
            .await;
    }
    let (items, n) = kv.list_all("/deletedsecrets", None).await;
    assert_eq!(n, 2);
    let got = distinct(
        items
            .iter()
            .map(|x| x["recoveryId"].as_str().unwrap().to_owned()),
    );
    let want: HashSet<String> = gone
        .iter()
        .map(|n| format!("{base}/deletedsecrets/{n}"))
        .collect();
    assert_eq!(got, want);
    for item in &items {
        assert!(item["deletedDate"].is_i64(), "{item}");
        assert!(item["scheduledPurgeDate"].is_i64(), "{item}");
    }
    let (items, n) = kv.list_all("/deletedsecrets", Some(4)).await;
    assert_eq!((items.len(), n), (27, 7));
    let (live, n) = kv.list_all("/secrets", None).await;
    assert_eq!(n, 1);
    let want: HashSet<String> = kept.iter().map(|n| format!("{base}/secrets/{n}")).collect();
    assert_eq!(distinct(ids(&live)), want);
}

#[tokio::test]
async fn versions_page_past_25() {
    let server = Server::start().await;
    let kv = Kv::new(&server).await;
    let base = server.vault_url("default");
    kv.set("other", "o1").await;
    let mut versions = Vec::new();
    let mut previous: Option<String> = None;
    for i in 0..30 {
        let v = kv.set("many-versions", &format!("value-{i}")).await;
        let version = last_segment(&v["id"]);
        match &previous {
            None => assert!(v.get("previousVersion").is_none(), "{v}"),
            Some(p) => assert_eq!(v["previousVersion"], p.as_str(), "{v}"),
        }
        previous = Some(version.clone());
        versions.push(version);
    }
    kv.set("other", "o2").await;
    let expected: HashSet<String> = versions
        .iter()
        .map(|v| format!("{base}/secrets/many-versions/{v}"))
        .collect();
    assert_eq!(expected.len(), 30);

    for (max, pages) in [(None, 2), (Some(10), 3), (Some(7), 5), (Some(25), 2)] {
        let (items, n) = kv.list_all("/secrets/many-versions/versions", max).await;
        assert_eq!(n, pages, "pages with maxresults {max:?}");
        assert_eq!(distinct(ids(&items)), expected, "maxresults {max:?}");
        for item in &items {
            assert!(item.get("value").is_none(), "{item}");
        }
    }
    // Every listed version reads back its own value.
    for (i, v) in versions.iter().enumerate() {
        assert_eq!(
            kv.value("many-versions", Some(v)).await,
            format!("value-{i}")
        );
    }
    let (other, _) = kv.list_all("/secrets/other/versions", None).await;
    assert_eq!(other.len(), 2);

    assert_kv_error(
        &kv.call(
            Method::GET,
            "/secrets/many-versions/versions?maxresults=26",
            None,
        )
        .await,
        400,
        "BadParameter",
        None,
    );
    // A secrets-listing marker is not a versions marker.
    let token = skiptoken_of(&kv, "/secrets").await;
    assert_kv_error(
        &kv.call(
            Method::GET,
            &format!("/secrets/many-versions/versions?$skiptoken={token}"),
            None,
        )
        .await,
        400,
        "BadParameter",
        None,
    );
    assert_kv_error(
        &kv.call(Method::GET, "/secrets/never-set/versions", None)
            .await,
        404,
        "SecretNotFound",
        None,
    );
}
