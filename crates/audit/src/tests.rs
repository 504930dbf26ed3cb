//! Unit tests of the log: chain, tamper detection, torn tails, queries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lockstep_core::{SharedClock, TestClock};

use crate::*;

const T0: i64 = 1_800_000_000;

fn clock() -> (Arc<TestClock>, SharedClock) {
    let c = Arc::new(TestClock::at(T0));
    (c.clone(), c)
}

fn entry(principal: &str, action: &str, target: &str, status: u16) -> Entry {
    Entry {
        kind: RecordType::Request,
        tenant: "t1".into(),
        principal: principal.into(),
        principal_kind: PrincipalKind::App,
        action: action.into(),
        target: target.into(),
        result: RecordResult {
            status: Some(status),
            outcome: Outcome::of_status(status),
        },
        request_id: "req".into(),
        client: "127.0.0.1:1".into(),
    }
}

fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(AUDIT_FILE);
    (dir, path)
}

/// Writes `n` records: principals p0/p1 alternate, actions read/write.
fn fill(log: &AuditLog, tick: &TestClock, n: usize) {
    for i in 0..n {
        let action = if i % 3 == 0 {
            "Lockstep/write"
        } else {
            "Lockstep/read"
        };
        let target = format!("/tenants/t1/vaults/v{}/secrets/s{i}", i % 2);
        log.append(
            &[entry(&format!("p{}", i % 2), action, &target, 200)],
            Durability::Flushed,
        )
        .unwrap();
        tick.advance(60);
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn broken(path: &Path) -> BrokenAt {
    match verify(path) {
        Err(VerifyError::Broken(b)) => b,
        other => panic!("expected a broken chain, got {other:?}"),
    }
}

#[test]
fn records_chain_from_genesis_and_verify() {
    let (_d, path) = temp();
    let (tick, clock) = clock();
    let (log, report) = AuditLog::open(&path, clock).unwrap();
    assert_eq!(report, OpenReport::default());
    fill(&log, &tick, 5);
    log.sync().unwrap();

    let recs: Vec<Record> = lines(&path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 5);
    assert_eq!(recs[0].seq, 1);
    assert_eq!(recs[0].prev, GENESIS);
    assert_eq!(recs[0].time, "2027-01-15T08:00:00.000Z");
    for w in lines(&path).windows(2) {
        let next: Record = serde_json::from_str(&w[1]).unwrap();
        assert_eq!(next.prev, sha256_hex(w[0].as_bytes()));
    }
    let report = verify(&path).unwrap();
    assert_eq!(report.records, 5);
    assert_eq!(report.last_seq, Some(5));
    assert_eq!(report.last_hash.as_deref(), Some(recs[4].hash.as_str()));
    assert_eq!(log.verify().unwrap(), report);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn reopening_continues_the_chain() {
    let (_d, path) = temp();
    let (tick, clock) = clock();
    {
        let (log, _) = AuditLog::open(&path, clock.clone()).unwrap();
        fill(&log, &tick, 3);
    }
    let (log, report) = AuditLog::open(&path, clock).unwrap();
    assert_eq!(report.records, 3);
    assert_eq!(log.last_seq(), 3);
    fill(&log, &tick, 2);
    assert_eq!(verify(&path).unwrap().records, 5);
}

#[test]
fn several_entries_in_one_append_are_consecutive() {
    let (_d, path) = temp();
    let (_, clock) = clock();
    let (log, _) = AuditLog::open(&path, clock).unwrap();
    let seq = log
        .append(
            &[
                entry("p", "a", "/x", 200),
                Entry::system("SecretVersionCreated", "/x/versions/1"),
            ],
            Durability::Synced,
        )
        .unwrap();
    assert_eq!(seq, 2);
    assert_eq!(verify(&path).unwrap().records, 2);
}

#[test]
fn editing_one_byte_of_one_record_names_that_record() {
    let (_d, path) = temp();
    let (tick, clock) = clock();
    let (log, _) = AuditLog::open(&path, clock).unwrap();
    fill(&log, &tick, 10);
    let original = std::fs::read(&path).unwrap();
    let starts: Vec<usize> = std::iter::once(0)
        .chain(
            original
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .collect();
    // Every byte of record 7 except its newline: the edit is named at line 7.
    let (from, to) = (starts[6], starts[7] - 1);
    for i in from..to {
        let mut edited = original.clone();
        edited[i] = if edited[i] == b'0' { b'1' } else { b'0' };
        std::fs::write(&path, &edited).unwrap();
        let b = broken(&path);
        assert_eq!(b.line, 7, "edit at byte {i}: {b}");
    }
    // A value edit keeps the seq readable and reports it.
    let text = String::from_utf8(original.clone()).unwrap();
    let edited = text.replacen(
        "\"target\":\"/tenants/t1/vaults/v0/secrets/s6\"",
        "\"target\":\"/tenants/t1/vaults/v0/secrets/s9\"",
        1,
    );
    assert_ne!(edited, text);
    std::fs::write(&path, edited).unwrap();
    let b = broken(&path);
    assert_eq!((b.line, b.seq), (7, Some(7)));
    assert!(b.reason.contains("hash does not match"), "{}", b.reason);
    // The running log's own verify sees the same.
    assert!(matches!(
        log.verify(),
        Err(VerifyError::Broken(BrokenAt { line: 7, .. }))
    ));
}

#[test]
fn removed_inserted_and_reordered_records_are_named() {
    let (_d, path) = temp();
    let (tick, clock) = clock();
    let (log, _) = AuditLog::open(&path, clock).unwrap();
    fill(&log, &tick, 6);
    let orig = lines(&path);
    let write = |ls: &[String]| std::fs::write(&path, ls.join("\n") + "\n").unwrap();

    let mut removed = orig.clone();
    removed.remove(3);
    write(&removed);
    let b = broken(&path);
    assert_eq!((b.line, b.seq), (4, Some(5)));

    let mut swapped = orig.clone();
    swapped.swap(1, 2);
    write(&swapped);
    assert_eq!(broken(&path).line, 2);

    let mut first_removed = orig.clone();
    first_removed.remove(0);
    write(&first_removed);
    assert_eq!(broken(&path).line, 1);

    // A forged record with a correct own hash still breaks the next link.
    let mut forged: Record = serde_json::from_str(&orig[2]).unwrap();
    forged.principal = "someone-else".into();
    forged.hash = forged.content_hash().unwrap();
    let mut rewritten = orig.clone();
    rewritten[2] = String::from_utf8(forged.line().unwrap()).unwrap();
    write(&rewritten);
    let b = broken(&path);
    assert_eq!((b.line, b.seq), (4, Some(4)));
    assert!(b.reason.contains("prev"), "{}", b.reason);

    // Truncating the tail is invisible offline but not to the running log.
    write(&orig[..5]);
    assert_eq!(verify(&path).unwrap().records, 5);
    assert!(matches!(log.verify(), Err(VerifyError::Broken(_))));
}

#[test]
fn a_torn_tail_is_reported_moved_aside_and_the_chain_continues() {
    let (dir, path) = temp();
    let (tick, clock) = clock();
    {
        let (log, _) = AuditLog::open(&path, clock.clone()).unwrap();
        fill(&log, &tick, 3);
    }
    let torn = b"{\"seq\":4,\"time\":\"2027-01-15T08:0";
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(torn)
        .unwrap();
    let b = broken(&path);
    assert_eq!((b.line, b.seq), (4, None));
    assert!(b.reason.contains("incomplete last line"), "{}", b.reason);

    let (log, report) = AuditLog::open(&path, clock.clone()).unwrap();
    let t = report.torn_tail.clone().unwrap();
    assert_eq!(t.bytes, torn.len() as u64);
    assert_eq!(
        t.saved_to,
        dir.path().join(format!("audit.log.torn-{}", T0 + 180))
    );
    assert_eq!(std::fs::read(&t.saved_to).unwrap(), torn);
    assert_eq!(report.records, 3);
    // The recovery itself is the next record.
    let page = log.query(&Filter::default()).unwrap();
    let last = page.records.last().unwrap();
    assert_eq!(last.seq, 4);
    assert_eq!(last.action, "AuditTornTailRecovered");
    assert_eq!(last.principal_kind, PrincipalKind::System);
    fill(&log, &tick, 1);
    assert_eq!(verify(&path).unwrap().records, 5);
}

#[test]
fn an_invalid_complete_last_record_refuses_to_open() {
    let (_d, path) = temp();
    let (tick, clock) = clock();
    {
        let (log, _) = AuditLog::open(&path, clock.clone()).unwrap();
        fill(&log, &tick, 2);
    }
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("\"seq\":2,", "\"seq\":3,")).unwrap();
    let before = std::fs::read(&path).unwrap();
    match AuditLog::open(&path, clock) {
        Err(AuditError::Corrupt { reason, .. }) => assert!(reason.contains("seq 3"), "{reason}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("opened a log whose last record is invalid"),
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the log was modified"
    );
}

#[test]
fn wider_permissions_are_narrowed() {
    let (_d, path) = temp();
    std::fs::write(&path, b"").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (_, clock) = clock();
    let (_log, report) = AuditLog::open(&path, clock).unwrap();
    assert!(report.narrowed_permissions);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_moved_or_replaced_file_refuses_writes_until_restored() {
    let (dir, path) = temp();
    let (tick, clock) = clock();
    let (log, _) = AuditLog::open(&path, clock).unwrap();
    fill(&log, &tick, 2);
    let aside = dir.path().join("moved");
    std::fs::rename(&path, &aside).unwrap();
    let err = log
        .append(&[entry("p", "a", "/x", 200)], Durability::Flushed)
        .unwrap_err();
    assert!(matches!(err, AuditError::Replaced { .. }), "{err}");
    std::fs::create_dir(&path).unwrap();
    assert!(log
        .append(&[entry("p", "a", "/x", 200)], Durability::Flushed)
        .is_err());
    std::fs::remove_dir(&path).unwrap();
    std::fs::rename(&aside, &path).unwrap();
    fill(&log, &tick, 1);
    assert_eq!(verify(&path).unwrap().records, 3);
}

#[test]
fn a_failing_device_fails_the_append_and_does_not_advance_the_chain() {
    if !Path::new("/dev/full").exists() {
        return;
    }
    let (_d, path) = temp();
    std::os::unix::fs::symlink("/dev/full", &path).unwrap();
    let (_, clock) = clock();
    let (log, report) = AuditLog::open(&path, clock).unwrap();
    assert_eq!(report.records, 0);
    let err = log
        .append(&[entry("p", "a", "/x", 200)], Durability::Flushed)
        .unwrap_err();
    assert!(matches!(err, AuditError::Write { .. }), "{err}");
    assert_eq!(log.last_seq(), 0);
}

#[test]
fn concurrent_appends_keep_one_chain() {
    let (_d, path) = temp();
    let (_, clock) = clock();
    let (log, _) = AuditLog::open(&path, clock).unwrap();
    let log = Arc::new(log);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let d = if i % 10 == 0 {
                        Durability::Synced
                    } else {
                        Durability::Flushed
                    };
                    log.append(&[entry(&format!("p{t}"), "a", "/x", 200)], d)
                        .unwrap();
                    if i % 7 == 0 {
                        log.sync().unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(verify(&path).unwrap().records, 200);
    assert_eq!(log.verify().unwrap().records, 200);
}

#[test]
fn queries_filter_and_page() {
    let (_d, path) = temp();
    let (tick, clock) = clock();
    let (log, _) = AuditLog::open(&path, clock).unwrap();
    fill(&log, &tick, 12);
    let seqs = |p: &Page| p.records.iter().map(|r| r.seq).collect::<Vec<_>>();

    let all = log.query(&Filter::default()).unwrap();
    assert_eq!(all.records.len(), 12);
    assert_eq!(all.next_after, None);

    let by_principal = Filter {
        principal: Some("p1".into()),
        ..Filter::default()
    };
    assert_eq!(
        seqs(&log.query(&by_principal).unwrap()),
        [2, 4, 6, 8, 10, 12]
    );

    let by_action = Filter {
        action: Some("lockstep/WRITE".into()),
        ..Filter::default()
    };
    assert_eq!(seqs(&log.query(&by_action).unwrap()), [1, 4, 7, 10]);
    let by_prefix = Filter {
        action: Some("Lockstep/*".into()),
        ..Filter::default()
    };
    assert_eq!(log.query(&by_prefix).unwrap().records.len(), 12);

    let by_target = Filter {
        target: Some("/tenants/t1/vaults/v0".into()),
        ..Filter::default()
    };
    assert_eq!(seqs(&log.query(&by_target).unwrap()), [1, 3, 5, 7, 9, 11]);
    let not_a_segment = Filter {
        target: Some("/tenants/t1/vaults/v".into()),
        ..Filter::default()
    };
    assert!(log.query(&not_a_segment).unwrap().records.is_empty());

    // Records are one minute apart from T0: [T0+2m, T0+5m) is seq 3, 4, 5.
    let t = |m: i64| time::OffsetDateTime::from_unix_timestamp(T0 + m * 60).unwrap();
    let window = Filter {
        from: Some(t(2)),
        to: Some(t(5)),
        ..Filter::default()
    };
    assert_eq!(seqs(&log.query(&window).unwrap()), [3, 4, 5]);

    // Paging with a filter: 6 records of p1, pages of 4.
    let mut page_filter = Filter {
        principal: Some("p1".into()),
        limit: 4,
        ..Filter::default()
    };
    let first = log.query(&page_filter).unwrap();
    assert_eq!(seqs(&first), [2, 4, 6, 8]);
    assert_eq!(first.next_after, Some(8));
    page_filter.after = first.next_after;
    let second = log.query(&page_filter).unwrap();
    assert_eq!(seqs(&second), [10, 12]);
    assert_eq!(second.next_after, None);

    // Exactly a full last page has no next page.
    let exact = Filter {
        principal: Some("p1".into()),
        limit: 6,
        ..Filter::default()
    };
    assert_eq!(log.query(&exact).unwrap().next_after, None);

    // Offline queries read the same.
    assert_eq!(
        query_file(&path, &by_action).unwrap(),
        log.query(&by_action).unwrap()
    );
}

#[test]
fn queries_show_a_tenant_its_own_and_unattributed_records() {
    let (_d, path) = temp();
    let (_, clock) = clock();
    let (log, _) = AuditLog::open(&path, clock).unwrap();
    let mut other = entry("p", "a", "/tenants/t2", 200);
    other.tenant = "t2".into();
    log.append(
        &[
            entry("p", "a", "/tenants/t1", 200),
            other,
            Entry::system("ServerStarted", "-"),
        ],
        Durability::Flushed,
    )
    .unwrap();
    let f = Filter {
        tenant: Some("t1".into()),
        ..Filter::default()
    };
    let seqs: Vec<u64> = log
        .query(&f)
        .unwrap()
        .records
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(seqs, [1, 3]);
}

#[test]
fn outcomes_follow_the_status() {
    assert_eq!(Outcome::of_status(200), Outcome::Success);
    assert_eq!(Outcome::of_status(204), Outcome::Success);
    assert_eq!(Outcome::of_status(401), Outcome::Denied);
    assert_eq!(Outcome::of_status(403), Outcome::Denied);
    assert_eq!(Outcome::of_status(404), Outcome::Failure);
    assert_eq!(Outcome::of_status(500), Outcome::Failure);
}
