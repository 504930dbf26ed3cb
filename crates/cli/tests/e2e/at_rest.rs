//! Encryption at rest: secret values appear nowhere in the data directory
//! (database, WAL, shared memory, anything else) nor in the logs.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use lockstep_testkit::Server;
use reqwest::Method;
use serde_json::json;

use crate::{last_segment, unique, Kv};

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let ty = entry.file_type().unwrap();
            if ty.is_dir() {
                stack.push(entry.path());
            } else if ty.is_file() {
                out.push(entry.path());
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A deterministic pseudo-random hex string of `len` characters.
fn noise(seed: u64, len: usize) -> String {
    let mut x = seed | 1;
    let mut s = String::with_capacity(len);
    while s.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(&format!("{x:016x}"));
    }
    s.truncate(len);
    s
}

/// The byte strings that must not appear anywhere: each marker, pieces of
/// the large one, and their common encodings.
fn needles(markers: &[&str]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for m in markers {
        let b = m.as_bytes();
        let pieces: Vec<&[u8]> = if b.len() > 64 {
            vec![
                &b[..32],
                &b[b.len() / 2..b.len() / 2 + 32],
                &b[b.len() - 32..],
            ]
        } else {
            vec![b]
        };
        for p in pieces {
            out.push(p.to_vec());
            out.push(STANDARD.encode(p).into_bytes()[..p.len() * 4 / 3 - 4].to_vec());
            out.push(URL_SAFE_NO_PAD.encode(p).into_bytes()[..p.len() * 4 / 3 - 4].to_vec());
        }
    }
    out
}

/// Scans every file under the data directory; returns the files scanned.
fn assert_absent(dir: &Path, needles: &[Vec<u8>], when: &str) -> Vec<PathBuf> {
    let files = files_under(dir);
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for n in needles {
            assert!(
                !contains(&bytes, n),
                "{when}: a secret value appears in plain text in {}",
                f.display()
            );
        }
    }
    files
}

#[tokio::test]
async fn values_are_encrypted_at_rest_and_never_logged() {
    let mut server = Server::start().await;
    let marker = unique("PLAINTEXT-MARKER");
    let seed = marker.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let big = format!("BIG-{marker}-{}", noise(seed, 20 * 1024));
    assert!(big.len() > 20 * 1024 && big.len() <= 25 * 1024);
    let updated = format!("{marker}-v2");
    // A control: secret names are stored in the clear (they are looked up
    // and listed), so the same scan must find this one, which proves that it
    // reads the files where the values would be.
    let control = unique("control-name").replace(['-'], "x");

    {
        let kv = Kv::new(&server).await;
        kv.set(&control, "control value").await;
        let v1 = kv
            .set_body(
                "at-rest",
                json!({"value": marker, "contentType": "text/plain"}),
            )
            .await;
        kv.set("at-rest-big", &big).await;
        kv.set("at-rest", &updated).await;
        // Exercise the other paths that handle values.
        assert_eq!(
            kv.value("at-rest", Some(&last_segment(&v1["id"]))).await,
            marker
        );
        assert_eq!(kv.value("at-rest-big", None).await, big);
        let blob = kv.ok(Method::POST, "/secrets/at-rest/backup", None).await;
        let blob_bytes = URL_SAFE_NO_PAD
            .decode(blob["value"].as_str().unwrap())
            .unwrap();
        assert!(
            !contains(&blob_bytes, marker.as_bytes()),
            "the backup holds the plain value"
        );
        kv.ok(Method::DELETE, "/secrets/at-rest-big", None).await;
        kv.ok(Method::POST, "/deletedsecrets/at-rest-big/recover", None)
            .await;
        kv.set("copy-target", &big).await;
        kv.ok(Method::DELETE, "/secrets/copy-target", None).await;
        let (s, _) = kv
            .call(Method::DELETE, "/deletedsecrets/copy-target", None)
            .await;
        assert_eq!(s, 204);
        // A refused write of the marker (name invalid) must not log it.
        let (s, _) = kv
            .call(
                Method::PUT,
                "/secrets/bad_name",
                Some(json!({"value": marker})),
            )
            .await;
        assert_eq!(s, 400);
    }
    let needles = needles(&[&marker, &updated, &big]);

    // While running: the database, its WAL and shared memory, everything.
    let files = assert_absent(server.data_dir(), &needles, "while running");
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.ends_with(".db")),
        "no database found in {names:?}"
    );
    assert!(
        names.iter().any(|n| n.ends_with("-wal")),
        "no WAL found in {names:?}"
    );
    let found = files
        .iter()
        .any(|f| contains(&std::fs::read(f).unwrap(), control.as_bytes()));
    assert!(found, "the scan does not see the database's contents");
    let wal_len: u64 = files
        .iter()
        .filter(|f| f.to_string_lossy().ends_with("-wal"))
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert!(wal_len > 0, "the WAL is empty, so the scan proved little");

    // After a clean stop (WAL checkpointed into the database).
    let status = server.stop();
    assert!(status.success(), "{status}");
    assert_absent(server.data_dir(), &needles, "after stop");

    // The logs never carry values.
    let logs = server.logs();
    for n in &needles {
        assert!(
            !contains(logs.as_bytes(), n),
            "a secret value appears in the logs"
        );
    }

    // And the values still read back after a restart.
    server.restart().await;
    let kv = Kv::new(&server).await;
    assert_eq!(kv.value("at-rest", None).await, updated);
    assert_eq!(kv.value("at-rest-big", None).await, big);
    assert_absent(server.data_dir(), &needles, "after restart");
    let logs = server.logs();
    for n in &needles {
        assert!(
            !contains(logs.as_bytes(), n),
            "a secret value appears in the logs"
        );
    }
}
