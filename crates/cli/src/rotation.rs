//! `lockstep rotation …`, `lockstep rotate`, `lockstep status` and
//! `lockstep dev time-shift`.

use std::time::Duration;

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{CliResult, ConnectArgs, Connection};
use crate::output;

const RESOURCE: &str = "api://lockstep";

/// Rotation binding and run commands.
#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum RotationCommand {
    /// Bind an app registration's client secret to a vault secret.
    Bind {
        /// Binding name.
        name: String,
        /// Application id of the app registration.
        #[arg(long)]
        app: String,
        /// Vault secret that holds the current client secret.
        #[arg(long)]
        secret: String,
        /// Vault.
        #[arg(long, default_value = "default")]
        vault: String,
        /// Rotation interval (ISO 8601, default P70D).
        #[arg(long)]
        interval: Option<String>,
        /// `overlap` (default) or `dual-phase`.
        #[arg(long)]
        mode: Option<String>,
        /// Grace period before the previous credential is revoked (default P1D).
        #[arg(long)]
        grace_period: Option<String>,
        /// Credential lifetime (default: interval + overlap).
        #[arg(long)]
        credential_lifetime: Option<String>,
        /// Upper bound of the per-binding delay (default PT1H).
        #[arg(long)]
        jitter: Option<String>,
        /// URL called with a token from the new credential during verification.
        #[arg(long)]
        probe_url: Option<String>,
    },
    /// List bindings.
    List,
    /// Show a binding.
    Show {
        /// Binding name.
        name: String,
    },
    /// Delete a binding (its credentials and versions stay).
    Unbind {
        /// Binding name.
        name: String,
    },
    /// List recent runs.
    Runs {
        /// Only runs of this binding.
        #[arg(long)]
        binding: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Show a run with its steps.
    Run {
        /// Run id.
        id: String,
    },
    /// Cancel a run; what it created is removed.
    Cancel {
        /// Run id.
        id: String,
    },
    /// Start a fresh run for a failed or cancelled one.
    Retry {
        /// Run id.
        id: String,
    },
}

/// Development commands (need a server started with `--dev-time-shift`).
#[derive(Subcommand)]
pub enum DevCommand {
    /// Move the server's clock forward, e.g. P71D.
    TimeShift {
        /// ISO 8601 duration.
        by: String,
    },
}

fn api(conn: &Connection, path: &str) -> String {
    format!("{}/lockstep/v1{path}", conn.server())
}

/// Runs a rotation command.
pub async fn run(args: ConnectArgs, command: RotationCommand) -> CliResult<()> {
    let conn = Connection::open(&args).await?;
    let v = match command {
        RotationCommand::Bind {
            name,
            app,
            secret,
            vault,
            interval,
            mode,
            grace_period,
            credential_lifetime,
            jitter,
            probe_url,
        } => {
            let mut policy = serde_json::Map::new();
            for (k, v) in [
                ("interval", interval),
                ("mode", mode),
                ("gracePeriod", grace_period),
                ("credentialLifetime", credential_lifetime),
                ("jitter", jitter),
                ("probeUrl", probe_url),
            ] {
                if let Some(v) = v {
                    policy.insert(k.into(), json!(v));
                }
            }
            let body = json!({
                "name": name,
                "source": {"kind": "builtin-app", "appId": app},
                "target": {"kind": "builtin-vault", "vault": vault, "secret": secret},
                "policy": policy,
            });
            let v = conn
                .expect(
                    RESOURCE,
                    Method::POST,
                    &api(&conn, "/rotation/bindings"),
                    Some(&body),
                )
                .await?;
            if !args.json {
                println!(
                    "Bound {} (next rotation {})",
                    output::text(&v["name"]),
                    output::time(&v["nextDue"])
                );
                show_binding(&v);
                return Ok(());
            }
            v
        }
        RotationCommand::List => {
            let v = conn
                .expect(
                    RESOURCE,
                    Method::GET,
                    &api(&conn, "/rotation/bindings"),
                    None,
                )
                .await?;
            if !args.json {
                let rows = v["value"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|b| {
                        vec![
                            output::text(&b["name"]),
                            output::text(&b["source"]["appId"]),
                            format!(
                                "{}/{}",
                                output::text(&b["target"]["vault"]),
                                output::text(&b["target"]["secret"])
                            ),
                            output::text(&b["policy"]["interval"]),
                            output::text(&b["policy"]["mode"]),
                            output::time(&b["nextDue"]),
                        ]
                    })
                    .collect();
                output::table(
                    &["Name", "App", "Secret", "Interval", "Mode", "Next rotation"],
                    rows,
                );
                return Ok(());
            }
            v
        }
        RotationCommand::Show { name } => {
            let v = conn
                .expect(
                    RESOURCE,
                    Method::GET,
                    &api(&conn, &format!("/rotation/bindings/{name}")),
                    None,
                )
                .await?;
            if !args.json {
                show_binding(&v);
                return Ok(());
            }
            v
        }
        RotationCommand::Unbind { name } => {
            conn.expect(
                RESOURCE,
                Method::DELETE,
                &api(&conn, &format!("/rotation/bindings/{name}")),
                None,
            )
            .await?;
            if !args.json {
                println!("Removed binding {name}");
                return Ok(());
            }
            json!({ "unbound": name })
        }
        RotationCommand::Runs { binding, limit } => {
            let mut url =
                reqwest::Url::parse(&api(&conn, "/rotation/runs")).map_err(|e| e.to_string())?;
            url.query_pairs_mut()
                .append_pair("limit", &limit.to_string());
            if let Some(b) = &binding {
                url.query_pairs_mut().append_pair("binding", b);
            }
            let v = conn
                .expect(RESOURCE, Method::GET, url.as_str(), None)
                .await?;
            if !args.json {
                let rows = v["value"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        vec![
                            output::text(&r["id"]),
                            output::text(&r["binding"]),
                            output::text(&r["trigger"]),
                            output::text(&r["state"]),
                            output::time(&r["created"]),
                            output::text(&r["error"]),
                        ]
                    })
                    .collect();
                output::table(
                    &["Run", "Binding", "Trigger", "State", "Created", "Error"],
                    rows,
                );
                return Ok(());
            }
            v
        }
        RotationCommand::Run { id } => {
            let v = conn
                .expect(
                    RESOURCE,
                    Method::GET,
                    &api(&conn, &format!("/rotation/runs/{id}")),
                    None,
                )
                .await?;
            if !args.json {
                show_run(&v);
                return Ok(());
            }
            v
        }
        RotationCommand::Cancel { id } => {
            let v = conn
                .expect(
                    RESOURCE,
                    Method::POST,
                    &api(&conn, &format!("/rotation/runs/{id}/cancel")),
                    None,
                )
                .await?;
            if !args.json {
                show_run(&v);
                return Ok(());
            }
            v
        }
        RotationCommand::Retry { id } => {
            let v = conn
                .expect(
                    RESOURCE,
                    Method::POST,
                    &api(&conn, &format!("/rotation/runs/{id}/retry")),
                    None,
                )
                .await?;
            if !args.json {
                println!("Started run {}", output::text(&v["runId"]));
                return Ok(());
            }
            v
        }
    };
    output::json(&v);
    Ok(())
}

fn show_binding(b: &Value) {
    let p = &b["policy"];
    output::fields(vec![
        ("Name", output::text(&b["name"])),
        ("App", output::text(&b["source"]["appId"])),
        (
            "Secret",
            format!(
                "{}/{}",
                output::text(&b["target"]["vault"]),
                output::text(&b["target"]["secret"])
            ),
        ),
        ("Interval", output::text(&p["interval"])),
        ("Mode", output::text(&p["mode"])),
        (
            "Credential lifetime",
            output::text(&p["credentialLifetime"]),
        ),
        ("Grace period", output::text(&p["gracePeriod"])),
        ("Notify before", output::text(&p["notifyBefore"])),
        ("Jitter", output::text(&p["jitter"])),
        ("Next rotation", output::time(&b["nextDue"])),
        ("Last run", output::text(&b["lastRun"])),
    ]);
}

fn show_run(r: &Value) {
    output::fields(vec![
        ("Run", output::text(&r["id"])),
        ("Binding", output::text(&r["binding"])),
        ("Trigger", output::text(&r["trigger"])),
        ("State", output::text(&r["state"])),
        ("Revoke previous", output::text(&r["revokePrevious"])),
        ("Credential", output::text(&r["credential"]["keyId"])),
        ("Version", output::text(&r["version"])),
        (
            "Leaked credential valid for (s)",
            output::text(&r["leakedValidForSeconds"]),
        ),
        ("Error", output::text(&r["error"])),
    ]);
    let rows = r["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            vec![
                output::text(&s["name"]),
                output::text(&s["state"]),
                output::time(&s["startedAt"]),
                output::time(&s["finishedAt"]),
                output::text(&s["attempts"]),
                output::text(&s["error"]),
            ]
        })
        .collect();
    output::table(
        &["Step", "State", "Started", "Finished", "Attempts", "Error"],
        rows,
    );
}

/// `lockstep rotate NAME [--revoke-previous now] [--leaked KEYID] [--no-wait]`.
pub async fn rotate(
    args: ConnectArgs,
    name: String,
    revoke_previous: String,
    leaked: Option<String>,
    no_wait: bool,
) -> CliResult<()> {
    let conn = Connection::open(&args).await?;
    let mut body = json!({ "revokePrevious": revoke_previous });
    if let Some(k) = leaked {
        body["leakedKeyId"] = json!(k);
    }
    let v = conn
        .expect(
            RESOURCE,
            Method::POST,
            &api(&conn, &format!("/rotation/bindings/{name}/rotate")),
            Some(&body),
        )
        .await?;
    let run_id = output::text(&v["runId"]);
    if no_wait {
        if args.json {
            output::json(&v);
        } else {
            println!("Started run {run_id}");
        }
        return Ok(());
    }
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(5)
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} rotating {prefix} [{bar:20}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(name.clone());
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    let run = loop {
        let r = conn
            .expect(
                RESOURCE,
                Method::GET,
                &api(&conn, &format!("/rotation/runs/{run_id}")),
                None,
            )
            .await?;
        let steps = r["steps"].as_array().cloned().unwrap_or_default();
        let done = steps
            .iter()
            .filter(|s| matches!(s["state"].as_str(), Some("done" | "scheduled" | "skipped")))
            .count();
        bar.set_position(done as u64);
        if let Some(current) = steps.iter().find(|s| s["state"] == "started") {
            bar.set_message(output::text(&current["name"]));
        }
        if matches!(
            r["state"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            break r;
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("run {run_id} did not finish within 10 minutes; see `lockstep rotation run {run_id}`"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    bar.finish_and_clear();
    if args.json {
        output::json(&run);
    } else {
        show_run(&run);
    }
    if run["state"] == "succeeded" {
        Ok(())
    } else {
        Err(format!(
            "rotation {} {}: {}",
            run_id,
            output::text(&run["state"]),
            output::text(&run["error"])
        ))
    }
}

/// `lockstep status`.
pub async fn status(args: ConnectArgs) -> CliResult<()> {
    let conn = Connection::open(&args).await?;
    let v = conn
        .expect(RESOURCE, Method::GET, &api(&conn, "/status"), None)
        .await?;
    if args.json {
        output::json(&v);
        return Ok(());
    }
    let bindings = v["bindings"].as_array().cloned().unwrap_or_default();
    let rows = bindings
        .iter()
        .map(|b| {
            vec![
                output::text(&b["name"]),
                output::text(&b["target"]),
                output::text(&b["currentVersion"]),
                output::text(&b["currentKeyId"]),
                output::time(&b["currentExpires"]),
                output::time(&b["nextRotation"]),
                format!(
                    "{} {}",
                    output::text(&b["lastRun"]["state"]),
                    output::text(&b["lastRun"]["id"])
                ),
                b["problems"].as_array().map_or(0, Vec::len).to_string(),
            ]
        })
        .collect();
    output::table(
        &[
            "Binding",
            "Secret",
            "Version",
            "Credential",
            "Expires",
            "Next rotation",
            "Last run",
            "Problems",
        ],
        rows,
    );
    for b in &bindings {
        for p in b["problems"].as_array().into_iter().flatten() {
            println!(
                "{}: {} — {}",
                output::text(&b["name"]),
                output::text(&p["kind"]),
                output::text(&p["message"])
            );
        }
    }
    Ok(())
}

/// Runs a dev command.
pub async fn dev(args: ConnectArgs, command: DevCommand) -> CliResult<()> {
    let conn = Connection::open(&args).await?;
    match command {
        DevCommand::TimeShift { by } => {
            let v = conn
                .expect(
                    RESOURCE,
                    Method::POST,
                    &api(&conn, "/dev/time-shift"),
                    Some(&json!({ "by": by })),
                )
                .await?;
            if args.json {
                output::json(&v);
            } else {
                println!(
                    "The server's clock now reads {} (shifted by {})",
                    output::time(&v["now"]),
                    output::text(&v["shiftedBy"])
                );
            }
        }
    }
    Ok(())
}
