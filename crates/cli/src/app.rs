//! `lockstep app …`: app registrations and their client secrets, through
//! the Graph API (the seed's "Certificates & secrets" page).

use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{CliResult, ConnectArgs, Connection};
use crate::output;

/// App commands.
#[derive(Subcommand)]
pub enum AppCommand {
    /// Register an app (with its service principal).
    Create {
        /// Display name.
        name: String,
    },
    /// List app registrations.
    List {
        /// Only apps with exactly this display name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Show an app and its client secrets.
    Show {
        /// Application id, object id, or display name.
        app: String,
    },
    /// Delete an app; its client secrets stop working at once.
    Delete {
        /// Application id, object id, or display name.
        app: String,
    },
    /// Client secrets of an app.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// The tenant's app-management policy (password lifetime limit).
    #[command(subcommand)]
    Policy(PolicyCommand),
}

/// Client-secret commands.
#[derive(Subcommand)]
pub enum SecretCommand {
    /// Add a client secret; its value is printed once and cannot be shown again.
    Add {
        /// Application id, object id, or display name.
        app: String,
        /// Secret name (suggested: include the date).
        #[arg(long)]
        name: Option<String>,
        /// Expiry: RFC 3339, a date, or +Nd (default: 2 years, or the policy limit).
        #[arg(long)]
        expires: Option<String>,
        /// Start of validity (default: now).
        #[arg(long)]
        starts: Option<String>,
    },
    /// List an app's client secrets (hint, key id, validity, status).
    List {
        /// Application id, object id, or display name.
        app: String,
    },
    /// Remove a client secret at once (a leaked secret stops working).
    Revoke {
        /// Application id, object id, or display name.
        app: String,
        /// Key id of the secret.
        key_id: String,
    },
}

/// Policy commands.
#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Show the policy.
    Show,
    /// Limit client-secret lifetimes (ISO 8601, e.g. P70D), or lift the limit.
    Set {
        /// Longest allowed lifetime of a new client secret.
        #[arg(long, conflicts_with = "disable")]
        password_lifetime: Option<String>,
        /// Turn the policy off.
        #[arg(long)]
        disable: bool,
    },
}

struct Graph<'a> {
    conn: &'a Connection,
    resource: String,
}

impl Graph<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}/v1.0/{path}", self.conn.server())
    }

    async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> CliResult<Value> {
        self.conn
            .expect(&self.resource, method, &self.url(path), body)
            .await
    }

    /// Finds an app by application id, object id or display name.
    async fn find(&self, key: &str) -> CliResult<Value> {
        let is_guid = key.len() == 36 && key.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        if is_guid {
            for path in [
                format!("applications/{key}"),
                format!("applications(appId='{key}')"),
            ] {
                let (status, v) = self
                    .conn
                    .call(&self.resource, Method::GET, &self.url(&path), None)
                    .await?;
                if status.is_success() {
                    return Ok(v);
                }
            }
        }
        let filter = format!("displayName eq '{}'", key.replace('\'', "''"));
        let mut url = reqwest::Url::parse(&self.url("applications")).map_err(|e| e.to_string())?;
        url.query_pairs_mut().append_pair("$filter", &filter);
        let v = self
            .conn
            .expect(&self.resource, Method::GET, url.as_str(), None)
            .await?;
        let found = v["value"].as_array().cloned().unwrap_or_default();
        match found.len() {
            1 => Ok(found[0].clone()),
            0 => Err(format!("no app registration named or with id '{key}'")),
            n => Err(format!(
                "{n} app registrations are named '{key}': use the application id"
            )),
        }
    }
}

fn status_of(c: &Value) -> &'static str {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let t = |k: &str| {
        c[k].as_str()
            .and_then(|s| output::parse_time(s).ok())
            .unwrap_or(0)
    };
    if now < t("startDateTime") {
        "not yet valid"
    } else if now >= t("endDateTime") {
        "expired"
    } else {
        "active"
    }
}

/// Runs an app command.
pub async fn run(args: ConnectArgs, command: AppCommand) -> CliResult<()> {
    let conn = Connection::open(&args).await?;
    let graph = Graph {
        conn: &conn,
        resource: conn.graph_resource(),
    };
    let json_out = args.json;
    match command {
        AppCommand::Create { name } => {
            let v = graph
                .send(
                    Method::POST,
                    "applications",
                    Some(&json!({ "displayName": name })),
                )
                .await?;
            if json_out {
                output::json(&v);
                return Ok(());
            }
            println!(
                "Registered {} (application id {}, object id {})",
                output::text(&v["displayName"]),
                output::text(&v["appId"]),
                output::text(&v["id"])
            );
        }
        AppCommand::List { name } => {
            let mut url =
                reqwest::Url::parse(&graph.url("applications")).map_err(|e| e.to_string())?;
            if let Some(n) = &name {
                url.query_pairs_mut().append_pair(
                    "$filter",
                    &format!("displayName eq '{}'", n.replace('\'', "''")),
                );
            }
            let mut apps = Vec::new();
            let mut next = Some(url.to_string());
            while let Some(u) = next {
                let page = conn.expect(&graph.resource, Method::GET, &u, None).await?;
                apps.extend(page["value"].as_array().cloned().unwrap_or_default());
                next = page["@odata.nextLink"].as_str().map(str::to_owned);
            }
            if json_out {
                output::json(&Value::Array(apps));
                return Ok(());
            }
            let rows = apps
                .iter()
                .map(|a| {
                    vec![
                        output::text(&a["displayName"]),
                        output::text(&a["appId"]),
                        output::text(&a["id"]),
                        a["passwordCredentials"]
                            .as_array()
                            .map_or(0, Vec::len)
                            .to_string(),
                    ]
                })
                .collect();
            output::table(&["Name", "Application id", "Object id", "Secrets"], rows);
        }
        AppCommand::Show { app } => {
            let v = graph.find(&app).await?;
            if json_out {
                output::json(&v);
                return Ok(());
            }
            output::fields(vec![
                ("Name", output::text(&v["displayName"])),
                ("Application id", output::text(&v["appId"])),
                ("Object id", output::text(&v["id"])),
                ("Created", output::text(&v["createdDateTime"])),
            ]);
            print_secrets(&v);
        }
        AppCommand::Delete { app } => {
            let v = graph.find(&app).await?;
            let id = output::text(&v["id"]);
            graph
                .send(Method::DELETE, &format!("applications/{id}"), None)
                .await?;
            if json_out {
                output::json(&json!({ "deleted": id }));
                return Ok(());
            }
            println!("Deleted {} ({id})", output::text(&v["displayName"]));
        }
        AppCommand::Secret(SecretCommand::Add {
            app,
            name,
            expires,
            starts,
        }) => {
            let v = graph.find(&app).await?;
            let mut cred = serde_json::Map::new();
            if let Some(n) = name {
                cred.insert("displayName".into(), json!(n));
            }
            for (key, raw) in [("endDateTime", expires), ("startDateTime", starts)] {
                if let Some(raw) = raw {
                    let t = output::parse_time(&raw)?;
                    cred.insert(key.into(), json!(output::time(&json!(t))));
                }
            }
            let id = output::text(&v["id"]);
            let created = graph
                .send(
                    Method::POST,
                    &format!("applications/{id}/addPassword"),
                    Some(&json!({ "passwordCredential": cred })),
                )
                .await?;
            eprintln!("The secret's value is shown now and never again: store it (for example in a vault) before you continue.");
            if json_out {
                output::json(&created);
                return Ok(());
            }
            output::fields(vec![
                ("Name", output::text(&created["displayName"])),
                ("Key id", output::text(&created["keyId"])),
                ("Starts", output::text(&created["startDateTime"])),
                ("Expires", output::text(&created["endDateTime"])),
                ("Value", output::text(&created["secretText"])),
            ]);
        }
        AppCommand::Secret(SecretCommand::List { app }) => {
            let v = graph.find(&app).await?;
            if json_out {
                output::json(&v["passwordCredentials"]);
                return Ok(());
            }
            print_secrets(&v);
        }
        AppCommand::Secret(SecretCommand::Revoke { app, key_id }) => {
            let v = graph.find(&app).await?;
            let id = output::text(&v["id"]);
            graph
                .send(
                    Method::POST,
                    &format!("applications/{id}/removePassword"),
                    Some(&json!({ "keyId": key_id })),
                )
                .await?;
            if json_out {
                output::json(&json!({ "revoked": key_id }));
                return Ok(());
            }
            println!(
                "Revoked client secret {key_id} of {}: it no longer works",
                output::text(&v["displayName"])
            );
        }
        AppCommand::Policy(PolicyCommand::Show) => {
            let v = graph
                .send(Method::GET, "policies/defaultAppManagementPolicy", None)
                .await?;
            if json_out {
                output::json(&v);
                return Ok(());
            }
            let lifetime = v["applicationRestrictions"]["passwordCredentials"]
                .as_array()
                .and_then(|a| a.first())
                .map(|r| output::text(&r["maxLifetime"]))
                .unwrap_or_else(|| "none".into());
            output::fields(vec![
                ("Enabled", output::text(&v["isEnabled"])),
                ("Password lifetime limit", lifetime),
            ]);
        }
        AppCommand::Policy(PolicyCommand::Set {
            password_lifetime,
            disable,
        }) => {
            let body = if disable {
                json!({"isEnabled": false, "applicationRestrictions": {"passwordCredentials": []}})
            } else {
                let l = password_lifetime.ok_or("pass --password-lifetime P70D or --disable")?;
                json!({"isEnabled": true, "applicationRestrictions": {"passwordCredentials": [
                    {"restrictionType": "passwordLifetime", "maxLifetime": l}
                ]}})
            };
            graph
                .send(
                    Method::PATCH,
                    "policies/defaultAppManagementPolicy",
                    Some(&body),
                )
                .await?;
            if json_out {
                output::json(&body);
                return Ok(());
            }
            println!("Updated the app-management policy");
        }
    }
    Ok(())
}

fn print_secrets(app: &Value) {
    let rows = app["passwordCredentials"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            vec![
                output::text(&c["displayName"]),
                output::text(&c["hint"]),
                output::text(&c["keyId"]),
                output::text(&c["startDateTime"]),
                output::text(&c["endDateTime"]),
                status_of(c).to_owned(),
            ]
        })
        .collect();
    output::table(
        &["Name", "Hint", "Key id", "Starts", "Expires", "Status"],
        rows,
    );
}
