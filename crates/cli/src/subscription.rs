//! `lockstep subscription …`: event subscriptions (webhooks), their delivery
//! log and test events.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::client::{CliResult, ConnectArgs, Connection};
use crate::output;

const RESOURCE: &str = "api://lockstep";

/// Subscription commands.
#[derive(Subcommand)]
pub enum SubscriptionCommand {
    /// Subscribe a webhook endpoint to events; prints its signing secret once.
    Create {
        /// Endpoint URL (https; http only to a loopback address).
        #[arg(long)]
        endpoint: String,
        /// Event type to deliver, full or short name, e.g. SecretNewVersionCreated
        /// (repeatable; default: every type).
        #[arg(long = "event", value_name = "TYPE")]
        events: Vec<String>,
        /// Only events whose subject starts with this, e.g. /vaults/default/secrets/db.
        #[arg(long, value_name = "PREFIX")]
        subject_prefix: Option<String>,
        /// Display name (default: the endpoint's host).
        #[arg(long)]
        name: Option<String>,
        /// Create it disabled (no events are delivered until it is enabled).
        #[arg(long)]
        disabled: bool,
    },
    /// List subscriptions.
    List,
    /// Show one subscription.
    Show {
        /// Subscription id.
        id: String,
    },
    /// Change a subscription (its signing secret stays the same).
    Update {
        /// Subscription id.
        id: String,
        /// New endpoint URL.
        #[arg(long)]
        endpoint: Option<String>,
        /// New event types (repeatable; replaces the list).
        #[arg(long = "event", value_name = "TYPE", conflicts_with = "all_events")]
        events: Vec<String>,
        /// Deliver every event type.
        #[arg(long)]
        all_events: bool,
        /// New subject prefix.
        #[arg(long, value_name = "PREFIX", conflicts_with = "no_subject_prefix")]
        subject_prefix: Option<String>,
        /// Remove the subject prefix.
        #[arg(long)]
        no_subject_prefix: bool,
        /// New display name.
        #[arg(long)]
        name: Option<String>,
        /// Resume deliveries.
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Pause deliveries (pending ones wait).
        #[arg(long)]
        disable: bool,
    },
    /// Delete a subscription with its pending deliveries and log.
    Delete {
        /// Subscription id.
        id: String,
    },
    /// Show the delivery log: each delivery's attempts, newest first.
    Deliveries {
        /// Subscription id.
        id: String,
        /// How many deliveries (1-500).
        #[arg(long, default_value_t = 20)]
        top: usize,
    },
    /// Send a test event (Lockstep.SubscriptionTest) to this subscription.
    Test {
        /// Subscription id.
        id: String,
    },
}

fn types(v: &Value) -> String {
    match v.as_array() {
        Some(a) if !a.is_empty() => a.iter().map(output::text).collect::<Vec<_>>().join(", "),
        _ => "all".into(),
    }
}

fn show(v: &Value) {
    output::fields(vec![
        ("Id", output::text(&v["id"])),
        ("Name", output::text(&v["name"])),
        ("Endpoint", output::text(&v["endpoint"])),
        ("Events", types(&v["eventTypes"])),
        ("Subject prefix", output::text(&v["subjectPrefix"])),
        ("Enabled", output::text(&v["enabled"])),
        ("Created", output::time(&v["createdOn"])),
        ("Updated", output::time(&v["updatedOn"])),
    ]);
}

/// Runs a subscription command.
pub async fn run(args: ConnectArgs, command: SubscriptionCommand) -> CliResult<()> {
    let conn = Connection::open(&args).await?;
    let base = format!("{}/lockstep/v1/subscriptions", conn.server());
    match command {
        SubscriptionCommand::Create {
            endpoint,
            events,
            subject_prefix,
            name,
            disabled,
        } => {
            let mut body = json!({ "endpoint": endpoint, "eventTypes": events });
            if let Some(p) = subject_prefix {
                body["subjectPrefix"] = json!(p);
            }
            if let Some(n) = name {
                body["name"] = json!(n);
            }
            if disabled {
                body["enabled"] = json!(false);
            }
            let v = conn
                .expect(RESOURCE, Method::POST, &base, Some(&body))
                .await?;
            if args.json {
                output::json(&v);
                return Ok(());
            }
            show(&v);
            eprintln!(
                "The signing secret below is shown only now: give it to the receiver, which \
                 verifies X-Lockstep-Signature with it (see docs/events.md)."
            );
            println!("Signing secret: {}", output::text(&v["signingSecret"]));
        }
        SubscriptionCommand::List => {
            let v = conn.expect(RESOURCE, Method::GET, &base, None).await?;
            if args.json {
                output::json(&v);
                return Ok(());
            }
            let rows = v["value"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    vec![
                        output::text(&s["id"]),
                        output::text(&s["name"]),
                        output::text(&s["endpoint"]),
                        types(&s["eventTypes"]),
                        output::text(&s["subjectPrefix"]),
                        output::text(&s["enabled"]),
                    ]
                })
                .collect();
            output::table(
                &[
                    "Id",
                    "Name",
                    "Endpoint",
                    "Events",
                    "Subject prefix",
                    "Enabled",
                ],
                rows,
            );
        }
        SubscriptionCommand::Show { id } => {
            let v = conn
                .expect(RESOURCE, Method::GET, &format!("{base}/{id}"), None)
                .await?;
            if args.json {
                output::json(&v);
                return Ok(());
            }
            show(&v);
        }
        SubscriptionCommand::Update {
            id,
            endpoint,
            events,
            all_events,
            subject_prefix,
            no_subject_prefix,
            name,
            enable,
            disable,
        } => {
            let mut body = Map::new();
            if let Some(e) = endpoint {
                body.insert("endpoint".into(), json!(e));
            }
            if all_events || !events.is_empty() {
                body.insert("eventTypes".into(), json!(events));
            }
            if let Some(p) = subject_prefix {
                body.insert("subjectPrefix".into(), json!(p));
            } else if no_subject_prefix {
                body.insert("subjectPrefix".into(), Value::Null);
            }
            if let Some(n) = name {
                body.insert("name".into(), json!(n));
            }
            if enable || disable {
                body.insert("enabled".into(), json!(enable));
            }
            if body.is_empty() {
                return Err("nothing to change: pass at least one option (see --help)".into());
            }
            let v = conn
                .expect(
                    RESOURCE,
                    Method::PATCH,
                    &format!("{base}/{id}"),
                    Some(&Value::Object(body)),
                )
                .await?;
            if args.json {
                output::json(&v);
                return Ok(());
            }
            show(&v);
        }
        SubscriptionCommand::Delete { id } => {
            conn.expect(RESOURCE, Method::DELETE, &format!("{base}/{id}"), None)
                .await?;
            if args.json {
                output::json(&json!({ "deleted": id }));
                return Ok(());
            }
            println!("Deleted subscription {id}");
        }
        SubscriptionCommand::Deliveries { id, top } => {
            let v = conn
                .expect(
                    RESOURCE,
                    Method::GET,
                    &format!("{base}/{id}/deliveries?top={top}"),
                    None,
                )
                .await?;
            if args.json {
                output::json(&v);
                return Ok(());
            }
            let mut rows = Vec::new();
            for d in v["value"].as_array().into_iter().flatten() {
                let head = vec![output::text(&d["eventType"]), output::text(&d["status"])];
                let attempts = d["attempts"].as_array().cloned().unwrap_or_default();
                if attempts.is_empty() {
                    let mut row = head.clone();
                    row.extend([
                        String::new(),
                        output::time(&d["createdOn"]),
                        "not attempted yet".into(),
                        String::new(),
                    ]);
                    rows.push(row);
                }
                for a in &attempts {
                    let result = match (&a["statusCode"], &a["error"]) {
                        (Value::Number(n), _) => format!("HTTP {n}"),
                        (_, e) => output::text(e),
                    };
                    let mut row = head.clone();
                    row.extend([
                        output::text(&a["attempt"]),
                        output::time(&a["time"]),
                        result,
                        output::text(&a["durationMs"]),
                    ]);
                    rows.push(row);
                }
            }
            output::table(
                &["Event", "Status", "Attempt", "Time", "Result", "ms"],
                rows,
            );
        }
        SubscriptionCommand::Test { id } => {
            let v = conn
                .expect(RESOURCE, Method::POST, &format!("{base}/{id}/test"), None)
                .await?;
            if args.json {
                output::json(&v);
                return Ok(());
            }
            println!(
                "Queued test event {}; see `lockstep subscription deliveries {id}`",
                output::text(&v["eventId"])
            );
        }
    }
    Ok(())
}
