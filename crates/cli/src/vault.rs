//! `lockstep vault …`: the management API's vaults.

use clap::Subcommand;
use reqwest::Method;
use serde_json::json;

use crate::client::{CliResult, ConnectArgs, Connection};
use crate::output;

const RESOURCE: &str = "api://lockstep";

/// Vault commands.
#[derive(Subcommand)]
pub enum VaultCommand {
    /// Create a vault.
    Create {
        /// Vault name (3-24 characters: letters, digits, hyphens).
        name: String,
    },
    /// List vaults.
    List,
    /// Delete a vault and every secret in it.
    Delete {
        /// Vault name.
        name: String,
    },
}

/// Runs a vault command.
pub async fn run(args: ConnectArgs, command: VaultCommand) -> CliResult<()> {
    let conn = Connection::open(&args).await?;
    let base = format!("{}/lockstep/v1/vaults", conn.server());
    match command {
        VaultCommand::Create { name } => {
            let v = conn
                .expect(
                    RESOURCE,
                    Method::POST,
                    &base,
                    Some(&json!({ "name": name })),
                )
                .await?;
            if args.json {
                output::json(&v);
            } else {
                println!(
                    "Created vault {} at {}",
                    output::text(&v["name"]),
                    output::text(&v["vaultUri"])
                );
            }
        }
        VaultCommand::List => {
            let v = conn.expect(RESOURCE, Method::GET, &base, None).await?;
            if args.json {
                output::json(&v);
            } else {
                let rows = v["value"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|x| {
                        vec![
                            output::text(&x["name"]),
                            output::text(&x["vaultUri"]),
                            output::time(&x["created"]),
                        ]
                    })
                    .collect();
                output::table(&["Name", "URI", "Created"], rows);
            }
        }
        VaultCommand::Delete { name } => {
            conn.expect(RESOURCE, Method::DELETE, &format!("{base}/{name}"), None)
                .await?;
            if args.json {
                output::json(&json!({ "deleted": name }));
            } else {
                println!("Deleted vault {name}");
            }
        }
    }
    Ok(())
}
