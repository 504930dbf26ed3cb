//! `lockstep role …` and `lockstep keys …`: role assignments and signing keys.

use clap::Subcommand;
use reqwest::Method;
use serde_json::json;

use crate::client::{CliResult, ConnectArgs, Connection};
use crate::output;

const RESOURCE: &str = "api://lockstep";

/// Role commands.
#[derive(Subcommand)]
pub enum RoleCommand {
    /// List the built-in roles.
    Definitions,
    /// Assign a role to a principal at a scope.
    Assign {
        /// Principal: service principal object id or application (client) id,
        /// or a user's object id or principal name.
        #[arg(long)]
        assignee: String,
        /// Role name, e.g. "Key Vault Secrets User".
        #[arg(long)]
        role: String,
        /// Scope: /, /vaults/NAME, /vaults/NAME/secrets/NAME, /applications/OBJECT_ID.
        #[arg(long, default_value = "/")]
        scope: String,
    },
    /// List role assignments at or under a scope.
    List {
        /// Scope (default: the whole tenant).
        #[arg(long, default_value = "/")]
        scope: String,
        /// Only this principal's assignments.
        #[arg(long)]
        assignee: Option<String>,
    },
    /// Remove a role assignment.
    Remove {
        /// Assignment id.
        id: String,
    },
}

/// Signing-key commands.
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Publish a new token signing key (it signs after the publish delay).
    RotateSigning,
}

/// Runs a role command.
pub async fn run(args: ConnectArgs, command: RoleCommand) -> CliResult<()> {
    let conn = Connection::open(&args).await?;
    let base = format!("{}/lockstep/v1", conn.server());
    match command {
        RoleCommand::Definitions => {
            let v = conn
                .expect(
                    RESOURCE,
                    Method::GET,
                    &format!("{base}/roleDefinitions"),
                    None,
                )
                .await?;
            if args.json {
                output::json(&v);
                return Ok(());
            }
            let rows = v["value"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| vec![output::text(&r["name"]), output::text(&r["description"])])
                .collect();
            output::table(&["Role", "Description"], rows);
        }
        RoleCommand::Assign {
            assignee,
            role,
            scope,
        } => {
            let body = json!({"principalId": assignee, "roleDefinitionName": role, "scope": scope});
            let v = conn
                .expect(
                    RESOURCE,
                    Method::POST,
                    &format!("{base}/roleAssignments"),
                    Some(&body),
                )
                .await?;
            if args.json {
                output::json(&v);
                return Ok(());
            }
            println!(
                "Assigned {} to {} at {} (assignment {})",
                output::text(&v["roleDefinitionName"]),
                output::text(&v["principalId"]),
                output::text(&v["scope"]),
                output::text(&v["id"])
            );
        }
        RoleCommand::List { scope, assignee } => {
            let mut url = reqwest::Url::parse(&format!("{base}/roleAssignments"))
                .map_err(|e| e.to_string())?;
            url.query_pairs_mut().append_pair("scope", &scope);
            if let Some(a) = &assignee {
                url.query_pairs_mut().append_pair("principalId", a);
            }
            let v = conn
                .expect(RESOURCE, Method::GET, url.as_str(), None)
                .await?;
            if args.json {
                output::json(&v);
                return Ok(());
            }
            let rows = v["value"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    vec![
                        output::text(&r["id"]),
                        output::text(&r["principalId"]),
                        output::text(&r["roleDefinitionName"]),
                        output::text(&r["scope"]),
                        output::time(&r["createdOn"]),
                    ]
                })
                .collect();
            output::table(&["Id", "Principal", "Role", "Scope", "Created"], rows);
        }
        RoleCommand::Remove { id } => {
            conn.expect(
                RESOURCE,
                Method::DELETE,
                &format!("{base}/roleAssignments/{id}"),
                None,
            )
            .await?;
            if args.json {
                output::json(&json!({ "removed": id }));
                return Ok(());
            }
            println!("Removed role assignment {id}");
        }
    }
    Ok(())
}

/// Runs a keys command.
pub async fn run_keys(args: ConnectArgs, command: KeysCommand) -> CliResult<()> {
    let conn = Connection::open(&args).await?;
    match command {
        KeysCommand::RotateSigning => {
            let url = format!("{}/lockstep/v1/keys/rotate-signing", conn.server());
            let v = conn.expect(RESOURCE, Method::POST, &url, None).await?;
            if args.json {
                output::json(&v);
                return Ok(());
            }
            println!(
                "Published signing key {}; it signs from {} (the previous key stays published until its tokens expire)",
                output::text(&v["kid"]),
                output::time(&v["signsFrom"])
            );
        }
    }
    Ok(())
}
