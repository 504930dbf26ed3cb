//! `lockstep secret …`: the Key Vault data plane of one vault.

use std::io::Read;
use std::path::PathBuf;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use crate::client::{CliResult, ConnectArgs, Connection};
use crate::output;

const API_VERSION: &str = "7.6";

/// Secret commands.
#[derive(Subcommand)]
pub enum SecretCommand {
    /// Store a new version of a secret (value from --value, --file or standard input).
    Set {
        /// Secret name.
        name: String,
        #[command(flatten)]
        vault: VaultArg,
        /// The value (visible in shell history: prefer --file or standard input).
        #[arg(long, conflicts_with = "file")]
        value: Option<String>,
        /// Read the value from a file.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Content type.
        #[arg(long)]
        content_type: Option<String>,
        /// Expiry: RFC 3339, a date, or +Nd.
        #[arg(long)]
        expires: Option<String>,
        /// Not valid before: RFC 3339, a date, or +Nd.
        #[arg(long)]
        not_before: Option<String>,
        /// Tag as key=value (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Store the version disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// Show a secret's latest (or a given) version, with its value.
    Get {
        /// Secret name.
        name: String,
        #[command(flatten)]
        vault: VaultArg,
        /// A specific version.
        #[arg(long)]
        version: Option<String>,
        /// Print only the value.
        #[arg(long)]
        value_only: bool,
    },
    /// List the secrets of a vault.
    List {
        #[command(flatten)]
        vault: VaultArg,
    },
    /// List the versions of a secret.
    Versions {
        /// Secret name.
        name: String,
        #[command(flatten)]
        vault: VaultArg,
    },
    /// Change a version's attributes, content type or tags.
    Update {
        /// Secret name.
        name: String,
        #[command(flatten)]
        vault: VaultArg,
        /// Version (default: latest).
        #[arg(long)]
        version: Option<String>,
        /// Enable or disable.
        #[arg(long)]
        enabled: Option<bool>,
        /// Expiry: RFC 3339, a date, or +Nd.
        #[arg(long)]
        expires: Option<String>,
        /// Content type.
        #[arg(long)]
        content_type: Option<String>,
        /// Replace the tags with these key=value pairs (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// Soft-delete a secret (recoverable for 90 days).
    Delete {
        /// Secret name.
        name: String,
        #[command(flatten)]
        vault: VaultArg,
    },
    /// List deleted secrets.
    Deleted {
        #[command(flatten)]
        vault: VaultArg,
    },
    /// Recover a deleted secret.
    Recover {
        /// Secret name.
        name: String,
        #[command(flatten)]
        vault: VaultArg,
    },
    /// Permanently remove a deleted secret.
    Purge {
        /// Secret name.
        name: String,
        #[command(flatten)]
        vault: VaultArg,
    },
    /// Write an encrypted backup of every version of a secret to a file.
    Backup {
        /// Secret name.
        name: String,
        #[command(flatten)]
        vault: VaultArg,
        /// Output file.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Restore a secret from a backup file.
    Restore {
        #[command(flatten)]
        vault: VaultArg,
        /// Backup file.
        #[arg(long = "in", short)]
        input: PathBuf,
    },
}

/// Which vault a command addresses.
#[derive(clap::Args)]
pub struct VaultArg {
    /// Vault name.
    #[arg(long, default_value = "default", env = "LOCKSTEP_VAULT")]
    vault: String,
}

fn tag_map(tags: &[String]) -> CliResult<Map<String, Value>> {
    tags.iter()
        .map(|t| {
            t.split_once('=')
                .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
                .ok_or_else(|| format!("invalid tag '{t}': expected key=value"))
        })
        .collect()
}

struct Vault<'a> {
    conn: &'a Connection,
    base: String,
    resource: String,
}

impl Vault<'_> {
    fn url(&self, path: &str, query: &str) -> String {
        format!("{}{path}?api-version={API_VERSION}{query}", self.base)
    }

    async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> CliResult<Value> {
        self.conn
            .expect(&self.resource, method, &self.url(path, ""), body)
            .await
    }

    /// Follows `nextLink` to the end of a listing.
    async fn all(&self, path: &str) -> CliResult<Vec<Value>> {
        let mut out = Vec::new();
        let mut url = Some(self.url(path, ""));
        while let Some(u) = url {
            let page = self
                .conn
                .expect(&self.resource, Method::GET, &u, None)
                .await?;
            out.extend(page["value"].as_array().cloned().unwrap_or_default());
            url = page["nextLink"].as_str().map(str::to_owned);
        }
        Ok(out)
    }
}

fn read_value(value: Option<String>, file: Option<PathBuf>) -> CliResult<Zeroizing<String>> {
    match (value, file) {
        (Some(v), _) => Ok(Zeroizing::new(v)),
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map(Zeroizing::new)
            .map_err(|e| format!("cannot read {}: {e}", path.display())),
        (None, None) => {
            let mut buf = Zeroizing::new(String::new());
            std::io::stdin()
                .read_to_string(&mut buf)
                .map_err(|e| format!("cannot read the value from standard input: {e}"))?;
            if buf.ends_with('\n') {
                buf.pop();
                if buf.ends_with('\r') {
                    buf.pop();
                }
            }
            Ok(buf)
        }
    }
}

fn name_of(v: &Value) -> String {
    let id = output::text(&v["id"]);
    id.split("/secrets/")
        .nth(1)
        .map(|rest| rest.split('/').next().unwrap_or(rest).to_owned())
        .unwrap_or(id)
}

fn version_of(v: &Value) -> String {
    output::text(&v["id"])
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_owned()
}

fn show_bundle(v: &Value, with_value: bool) {
    let a = &v["attributes"];
    let mut pairs = vec![
        ("Name", name_of(v)),
        ("Version", version_of(v)),
        ("Enabled", output::text(&a["enabled"])),
        ("Created", output::time(&a["created"])),
        ("Updated", output::time(&a["updated"])),
        ("Not before", output::time(&a["nbf"])),
        ("Expires", output::time(&a["exp"])),
        ("Content type", output::text(&v["contentType"])),
        ("Tags", output::tags(&v["tags"])),
    ];
    if with_value {
        pairs.push(("Value", output::text(&v["value"])));
    }
    output::fields(pairs);
}

/// Runs a secret command.
pub async fn run(args: ConnectArgs, command: SecretCommand) -> CliResult<()> {
    let conn = Connection::open(&args).await?;
    let vault_name = match &command {
        SecretCommand::Set { vault, .. }
        | SecretCommand::Get { vault, .. }
        | SecretCommand::List { vault }
        | SecretCommand::Versions { vault, .. }
        | SecretCommand::Update { vault, .. }
        | SecretCommand::Delete { vault, .. }
        | SecretCommand::Deleted { vault }
        | SecretCommand::Recover { vault, .. }
        | SecretCommand::Purge { vault, .. }
        | SecretCommand::Backup { vault, .. }
        | SecretCommand::Restore { vault, .. } => vault.vault.clone(),
    };
    let vault = Vault {
        conn: &conn,
        base: conn.vault_url(&vault_name),
        resource: conn.vault_resource(),
    };
    let json_out = args.json;
    match command {
        SecretCommand::Set {
            name,
            value,
            file,
            content_type,
            expires,
            not_before,
            tags,
            disabled,
            ..
        } => {
            let value = read_value(value, file)?;
            let mut attributes = Map::new();
            if disabled {
                attributes.insert("enabled".into(), json!(false));
            }
            if let Some(e) = expires {
                attributes.insert("exp".into(), json!(output::parse_time(&e)?));
            }
            if let Some(n) = not_before {
                attributes.insert("nbf".into(), json!(output::parse_time(&n)?));
            }
            let mut body = json!({ "value": value.as_str(), "attributes": attributes });
            if let Some(ct) = content_type {
                body["contentType"] = json!(ct);
            }
            if !tags.is_empty() {
                body["tags"] = Value::Object(tag_map(&tags)?);
            }
            let result = vault
                .send(Method::PUT, &format!("/secrets/{name}"), Some(&body))
                .await;
            if let Some(v) = body.get_mut("value") {
                *v = Value::Null;
            }
            let mut v = result?;
            v["value"] = Value::Null;
            if json_out {
                output::json(&v);
            } else {
                println!("Stored {} version {}", name_of(&v), version_of(&v));
            }
        }
        SecretCommand::Get {
            name,
            version,
            value_only,
            ..
        } => {
            let path = format!("/secrets/{name}/{}", version.unwrap_or_default());
            let v = vault.send(Method::GET, &path, None).await?;
            if value_only {
                println!("{}", output::text(&v["value"]));
            } else if json_out {
                output::json(&v);
            } else {
                show_bundle(&v, true);
            }
        }
        SecretCommand::List { .. } => {
            let items = vault.all("/secrets").await?;
            list_items(&items, json_out, false);
        }
        SecretCommand::Versions { name, .. } => {
            let items = vault.all(&format!("/secrets/{name}/versions")).await?;
            list_items(&items, json_out, true);
        }
        SecretCommand::Update {
            name,
            version,
            enabled,
            expires,
            content_type,
            tags,
            ..
        } => {
            let mut body = Map::new();
            let mut attributes = Map::new();
            if let Some(e) = enabled {
                attributes.insert("enabled".into(), json!(e));
            }
            if let Some(e) = expires {
                attributes.insert("exp".into(), json!(output::parse_time(&e)?));
            }
            if !attributes.is_empty() {
                body.insert("attributes".into(), Value::Object(attributes));
            }
            if let Some(ct) = content_type {
                body.insert("contentType".into(), json!(ct));
            }
            if !tags.is_empty() {
                body.insert("tags".into(), Value::Object(tag_map(&tags)?));
            }
            let path = format!("/secrets/{name}/{}", version.unwrap_or_default());
            let v = vault
                .send(Method::PATCH, &path, Some(&Value::Object(body)))
                .await?;
            if json_out {
                output::json(&v);
            } else {
                show_bundle(&v, false);
            }
        }
        SecretCommand::Delete { name, .. } => {
            let v = vault
                .send(Method::DELETE, &format!("/secrets/{name}"), None)
                .await?;
            if json_out {
                output::json(&v);
            } else {
                println!(
                    "Deleted {name}; recoverable until {}",
                    output::time(&v["scheduledPurgeDate"])
                );
            }
        }
        SecretCommand::Deleted { .. } => {
            let items = vault.all("/deletedsecrets").await?;
            if json_out {
                output::json(&Value::Array(items));
            } else {
                let rows = items
                    .iter()
                    .map(|x| {
                        vec![
                            name_of(x),
                            output::time(&x["deletedDate"]),
                            output::time(&x["scheduledPurgeDate"]),
                        ]
                    })
                    .collect();
                output::table(&["Name", "Deleted", "Purge scheduled"], rows);
            }
        }
        SecretCommand::Recover { name, .. } => {
            let v = vault
                .send(
                    Method::POST,
                    &format!("/deletedsecrets/{name}/recover"),
                    None,
                )
                .await?;
            if json_out {
                output::json(&v);
            } else {
                println!("Recovered {name}");
            }
        }
        SecretCommand::Purge { name, .. } => {
            vault
                .send(Method::DELETE, &format!("/deletedsecrets/{name}"), None)
                .await?;
            if json_out {
                output::json(&json!({ "purged": name }));
            } else {
                println!("Purged {name}");
            }
        }
        SecretCommand::Backup { name, out, .. } => {
            let v = vault
                .send(Method::POST, &format!("/secrets/{name}/backup"), None)
                .await?;
            let blob = output::text(&v["value"]);
            write_new_file(&out, blob.as_bytes())?;
            if json_out {
                output::json(&json!({ "backup": out.display().to_string() }));
            } else {
                println!("Wrote the backup of {name} to {}", out.display());
            }
        }
        SecretCommand::Restore { input, .. } => {
            let blob = std::fs::read_to_string(&input)
                .map_err(|e| format!("cannot read {}: {e}", input.display()))?;
            let v = vault
                .send(
                    Method::POST,
                    "/secrets/restore",
                    Some(&json!({ "value": blob.trim() })),
                )
                .await?;
            if json_out {
                output::json(&v);
            } else {
                println!(
                    "Restored {} (latest version {})",
                    name_of(&v),
                    version_of(&v)
                );
            }
        }
    }
    Ok(())
}

fn write_new_file(path: &std::path::Path, contents: &[u8]) -> CliResult<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(contents))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn list_items(items: &[Value], json_out: bool, versions: bool) {
    if json_out {
        output::json(&Value::Array(items.to_vec()));
        return;
    }
    let rows = items
        .iter()
        .map(|x| {
            let a = &x["attributes"];
            let mut row = vec![name_of(x)];
            if versions {
                row.push(version_of(x));
            }
            row.extend([
                output::text(&a["enabled"]),
                output::time(&a["updated"]),
                output::time(&a["exp"]),
                output::text(&x["contentType"]),
            ]);
            row
        })
        .collect();
    let header: &[&str] = if versions {
        &[
            "Name",
            "Version",
            "Enabled",
            "Updated",
            "Expires",
            "Content type",
        ]
    } else {
        &["Name", "Enabled", "Updated", "Expires", "Content type"]
    };
    output::table(header, rows);
}
