//! The `lockstep` CLI against a running server: every secret and vault
//! command, with `--json` and with the human output.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};

use lockstep_testkit::Server;
use serde_json::Value;

use crate::{last_segment, now, run, Kv};

/// Runs `lockstep ARGS` against `server`; asserts success; returns stdout.
fn ok(server: &Server, args: &[&str]) -> String {
    let out = run(with_args(server.cli(), args));
    assert!(
        out.status.success(),
        "lockstep {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `lockstep ARGS --json`; returns the parsed output.
fn json(server: &Server, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = ok(server, &all);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("lockstep {args:?}: not JSON ({e}): {out}"))
}

/// Runs `lockstep ARGS`, which must fail with one `lockstep: error:` line;
/// returns that line.
fn fails(cmd: Command, args: &[&str]) -> String {
    let out = run(with_args(cmd, args));
    assert_failed(&out, args)
}

fn assert_failed(out: &Output, args: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "lockstep {args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one error line expected: {stderr}");
    assert!(lines[0].starts_with("lockstep: error: "), "{stderr}");
    lines[0].to_owned()
}

fn with_args(mut cmd: Command, args: &[&str]) -> Command {
    cmd.args(args);
    cmd
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn secret_commands_end_to_end() {
    let server = Server::start().await;
    let base = server.vault_url("default");

    // set, with tags and a relative expiry; the value is never printed.
    let v1 = json(
        &server,
        &[
            "secret",
            "set",
            "db-password",
            "--value",
            "s3cret-value-one",
            "--tag",
            "env=test",
            "--tag",
            "owner=ops",
            "--expires",
            "+70d",
            "--content-type",
            "text/plain",
        ],
    );
    assert!(!v1.to_string().contains("s3cret-value-one"), "{v1}");
    assert_eq!(v1["tags"]["env"], "test");
    assert_eq!(v1["tags"]["owner"], "ops");
    assert_eq!(v1["contentType"], "text/plain");
    let exp = v1["attributes"]["exp"].as_i64().unwrap();
    assert!((exp - (now() + 70 * 86_400)).abs() < 300, "exp {exp}");
    let version1 = last_segment(&v1["id"]);

    // set from a file, and from standard input (human output).
    let dir = tempfile::tempdir().unwrap();
    let value_file = dir.path().join("value.txt");
    std::fs::write(&value_file, "s3cret-value-two").unwrap();
    let out = ok(
        &server,
        &[
            "secret",
            "set",
            "db-password",
            "--file",
            value_file.to_str().unwrap(),
        ],
    );
    assert!(out.starts_with("Stored db-password version "), "{out}");
    assert!(!out.contains("s3cret-value-two"));
    let version2 = out.trim().rsplit(' ').next().unwrap().to_owned();
    let mut child = with_args(server.cli(), &["secret", "set", "from-stdin", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"piped value\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // get: value only, a version, JSON, table.
    assert_eq!(
        ok(&server, &["secret", "get", "db-password", "--value-only"]),
        "s3cret-value-two\n"
    );
    assert_eq!(
        ok(
            &server,
            &[
                "secret",
                "get",
                "db-password",
                "--version",
                &version1,
                "--value-only"
            ]
        ),
        "s3cret-value-one\n"
    );
    assert_eq!(
        ok(&server, &["secret", "get", "from-stdin", "--value-only"]),
        "piped value\n"
    );
    let latest = json(&server, &["secret", "get", "db-password"]);
    assert_eq!(latest["value"], "s3cret-value-two");
    assert_eq!(last_segment(&latest["id"]), version2);
    assert_eq!(latest["previousVersion"], version1.as_str());
    let table = ok(&server, &["secret", "get", "db-password"]);
    for needle in [
        "db-password",
        version2.as_str(),
        "s3cret-value-two",
        "Enabled",
    ] {
        assert!(table.contains(needle), "{needle} not in\n{table}");
    }
    // The CLI agrees with the HTTP API.
    let kv = Kv::new(&server).await;
    assert_eq!(
        kv.value("db-password", Some(&version1)).await,
        "s3cret-value-one"
    );

    // versions and list.
    let versions = json(&server, &["secret", "versions", "db-password"]);
    let mut got = ids(&versions);
    got.sort();
    let mut want = vec![
        format!("{base}/secrets/db-password/{version1}"),
        format!("{base}/secrets/db-password/{version2}"),
    ];
    want.sort();
    assert_eq!(got, want);
    let table = ok(&server, &["secret", "versions", "db-password"]);
    assert!(
        table.contains(&version1) && table.contains(&version2),
        "{table}"
    );
    let list = json(&server, &["secret", "list"]);
    let mut got = ids(&list);
    got.sort();
    assert_eq!(
        got,
        vec![
            format!("{base}/secrets/db-password"),
            format!("{base}/secrets/from-stdin")
        ]
    );
    assert!(ok(&server, &["secret", "list"]).contains("from-stdin"));

    // update: disable, read refused, enable; tags and content type of a version.
    let off = json(
        &server,
        &["secret", "update", "db-password", "--enabled", "false"],
    );
    assert_eq!(off["attributes"]["enabled"], false);
    let err = fails(server.cli(), &["secret", "get", "db-password"]);
    assert!(err.contains("403 Forbidden"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
    json(
        &server,
        &["secret", "update", "db-password", "--enabled", "true"],
    );
    let tagged = json(
        &server,
        &[
            "secret",
            "update",
            "db-password",
            "--version",
            &version1,
            "--tag",
            "rotated=yes",
            "--content-type",
            "application/x-old",
        ],
    );
    assert_eq!(tagged["tags"], serde_json::json!({"rotated": "yes"}));
    assert_eq!(tagged["contentType"], "application/x-old");
    assert_eq!(last_segment(&tagged["id"]), version1);

    // backup to a new private file; an existing file is not overwritten.
    let backup_file = dir.path().join("db-password.backup");
    let b = json(
        &server,
        &[
            "secret",
            "backup",
            "db-password",
            "--out",
            backup_file.to_str().unwrap(),
        ],
    );
    assert_eq!(b["backup"], backup_file.to_str().unwrap());
    let mode = std::fs::metadata(&backup_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "backup file mode {mode:o}");
    let err = fails(
        server.cli(),
        &[
            "secret",
            "backup",
            "db-password",
            "--out",
            backup_file.to_str().unwrap(),
        ],
    );
    assert!(err.contains("cannot write"), "{err}");

    // delete, deleted, conflict, recover.
    let deleted = json(&server, &["secret", "delete", "db-password"]);
    assert_eq!(
        deleted["recoveryId"],
        format!("{base}/deletedsecrets/db-password")
    );
    let listed = json(&server, &["secret", "deleted"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["recoveryId"], deleted["recoveryId"]);
    assert!(ok(&server, &["secret", "deleted"]).contains("db-password"));
    let err = fails(
        server.cli(),
        &["secret", "set", "db-password", "--value", "x"],
    );
    assert!(err.contains("409 Conflict"), "{err}");
    let err = fails(server.cli(), &["secret", "get", "db-password"]);
    assert!(err.contains("404 SecretNotFound"), "{err}");
    let out = ok(&server, &["secret", "recover", "db-password"]);
    assert_eq!(out.trim(), "Recovered db-password");
    assert_eq!(
        ok(&server, &["secret", "get", "db-password", "--value-only"]),
        "s3cret-value-two\n"
    );

    // delete and purge, then restore from the backup.
    let out = ok(&server, &["secret", "delete", "db-password"]);
    assert!(
        out.starts_with("Deleted db-password; recoverable until 20"),
        "{out}"
    );
    let purged = json(&server, &["secret", "purge", "db-password"]);
    assert_eq!(purged, serde_json::json!({"purged": "db-password"}));
    assert_eq!(json(&server, &["secret", "deleted"]), serde_json::json!([]));
    let restored = json(
        &server,
        &["secret", "restore", "--in", backup_file.to_str().unwrap()],
    );
    assert_eq!(last_segment(&restored["id"]), version2);
    assert_eq!(
        ok(&server, &["secret", "get", "db-password", "--value-only"]),
        "s3cret-value-two\n"
    );
    assert_eq!(
        ids(&json(&server, &["secret", "versions", "db-password"])).len(),
        2
    );
    ok(&server, &["secret", "delete", "db-password"]);
    ok(&server, &["secret", "purge", "db-password"]);
    let out = ok(
        &server,
        &["secret", "restore", "--in", backup_file.to_str().unwrap()],
    );
    assert_eq!(
        out.trim(),
        format!("Restored db-password (latest version {version2})")
    );

    // list follows nextLink past one page.
    for i in 0..26 {
        kv.set(&format!("bulk-{i:02}"), "b").await;
    }
    let list = json(&server, &["secret", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 28);
}

#[tokio::test]
async fn vault_commands_end_to_end() {
    let server = Server::start().await;
    let created = json(&server, &["vault", "create", "team-a"]);
    assert_eq!(created["name"], "team-a");
    assert_eq!(created["vaultUri"], server.vault_url("team-a"));
    let out = ok(&server, &["vault", "create", "team-b"]);
    assert_eq!(
        out.trim(),
        format!("Created vault team-b at {}", server.vault_url("team-b"))
    );
    let err = fails(server.cli(), &["vault", "create", "team-a"]);
    assert!(err.contains("409 VaultAlreadyExists"), "{err}");
    let err = fails(server.cli(), &["vault", "create", "x_y"]);
    assert!(err.contains("400 InvalidVaultName"), "{err}");

    let list = json(&server, &["vault", "list"]);
    let mut names: Vec<&str> = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["default", "team-a", "team-b"]);
    let table = ok(&server, &["vault", "list"]);
    assert!(
        table.contains("team-a") && table.contains(&server.vault_url("team-b")),
        "{table}"
    );

    // Secrets in a named vault, by flag and by environment.
    ok(
        &server,
        &[
            "secret",
            "set",
            "api-key",
            "--value",
            "in-team-a",
            "--vault",
            "team-a",
        ],
    );
    assert_eq!(
        ok(
            &server,
            &[
                "secret",
                "get",
                "api-key",
                "--vault",
                "team-a",
                "--value-only"
            ]
        ),
        "in-team-a\n"
    );
    let mut cmd = server.cli();
    cmd.env("LOCKSTEP_VAULT", "team-a");
    let out = run(with_args(
        cmd,
        &["secret", "get", "api-key", "--value-only"],
    ));
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "in-team-a\n");
    let err = fails(server.cli(), &["secret", "get", "api-key"]);
    assert!(err.contains("404 SecretNotFound"), "{err}");
    let kv = Kv::of(&server, "team-a").await;
    assert_eq!(kv.value("api-key", None).await, "in-team-a");

    let deleted = json(&server, &["vault", "delete", "team-a"]);
    assert_eq!(deleted, serde_json::json!({"deleted": "team-a"}));
    assert_eq!(
        ok(&server, &["vault", "delete", "team-b"]).trim(),
        "Deleted vault team-b"
    );
    let err = fails(server.cli(), &["vault", "delete", "team-a"]);
    assert!(err.contains("404 VaultNotFound"), "{err}");
    let err = fails(
        server.cli(),
        &["secret", "get", "api-key", "--vault", "team-a"],
    );
    assert!(err.contains("404"), "{err}");
    let list = json(&server, &["vault", "list"]);
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn cli_errors_are_one_clear_line() {
    let mut server = Server::start().await;
    let err = fails(server.cli(), &["secret", "get", "missing-secret"]);
    assert!(
        err.starts_with("lockstep: error: 404 SecretNotFound: "),
        "{err}"
    );
    let err = fails(server.cli(), &["secret", "set", "bad_name", "--value", "v"]);
    assert!(
        err.starts_with("lockstep: error: 400 BadParameter: "),
        "{err}"
    );
    let err = fails(
        server.cli(),
        &["secret", "set", "x", "--value", "v", "--expires", "someday"],
    );
    assert!(err.contains("invalid time"), "{err}");

    // Explicit credentials: a wrong secret is refused and not echoed.
    let mut cmd = server.cli();
    cmd.env("LOCKSTEP_CLIENT_ID", &server.admin.client_id)
        .env("LOCKSTEP_CLIENT_SECRET", "definitely-wrong-secret");
    let err = fails(cmd, &["secret", "list"]);
    assert!(
        err.contains("authentication failed: AADSTS7000215"),
        "{err}"
    );
    assert!(!err.contains("definitely-wrong-secret"), "{err}");

    // Without the data directory: credentials and CA by flags.
    let empty = tempfile::tempdir().unwrap();
    let bare = || {
        let mut cmd = server.cli();
        cmd.env("LOCKSTEP_DATA_DIR", empty.path());
        cmd
    };
    let err = fails(bare(), &["secret", "list"]);
    assert!(err.contains("no tenant"), "{err}");
    let creds = [
        "--tenant",
        server.admin.tenant_id.as_str(),
        "--client-id",
        server.admin.client_id.as_str(),
    ];
    let mut cmd = bare();
    cmd.env("LOCKSTEP_CLIENT_SECRET", &server.admin.client_secret);
    let mut args = vec!["secret", "list"];
    args.extend(creds);
    // The server's certificate is not trusted without its CA.
    let err = fails(cmd, &args);
    assert!(err.contains("cannot reach"), "{err}");
    let mut cmd = bare();
    cmd.env("LOCKSTEP_CLIENT_SECRET", &server.admin.client_secret);
    let ca = server.admin.ca_cert.to_str().unwrap().to_owned();
    args.extend(["--ca-cert", ca.as_str(), "--json"]);
    let out = run(with_args(cmd, &args));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");

    // A stopped server.
    let status = server.stop();
    assert!(status.success(), "{status}\n{}", server.logs());
    let err = fails(server.cli(), &["secret", "list"]);
    assert!(err.contains("cannot reach"), "{err}");
}
