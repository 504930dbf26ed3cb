//! `lockstep user …`: tenant users on the management API. Passwords are
//! read from standard input only (never from flags, which shells record).

use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{CliResult, ConnectArgs, Connection, MANAGEMENT_RESOURCE};
use crate::login::{self, read_stdin_lines, wipe_password};
use crate::output;

/// User commands.
#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user; the initial password is read from standard input.
    Create {
        /// User principal name, e.g. alice@contoso.test.
        user_principal_name: String,
        /// Display name (default: the part of the name before '@').
        #[arg(long)]
        display_name: Option<String>,
        /// Create the account disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// List the users of the tenant.
    List,
    /// Show a user.
    Show {
        /// Object id or user principal name.
        user: String,
    },
    /// Disable a user: sign-in is refused and its tokens stop working.
    Disable {
        /// Object id or user principal name.
        user: String,
    },
    /// Enable a user.
    Enable {
        /// Object id or user principal name.
        user: String,
    },
    /// Delete a user and its role assignments.
    Delete {
        /// Object id or user principal name.
        user: String,
    },
    /// Set a user's password as an administrator (new password on standard input).
    SetPassword {
        /// Object id or user principal name.
        user: String,
    },
    /// Change your own password: the current and the new password on two
    /// lines of standard input. Acts as the signed-in user, or signs in
    /// first with --username.
    ChangePassword {
        /// Sign in as this user (with the current password) instead of
        /// using the saved login.
        #[arg(long)]
        username: Option<String>,
    },
}

fn users_url(conn: &Connection) -> String {
    format!("{}/lockstep/v1/users", conn.server())
}

fn user_url(conn: &Connection, user: &str) -> String {
    let encoded: String = url_path_segment(user);
    format!("{}/{encoded}", users_url(conn))
}

/// Percent-encodes one path segment.
fn url_path_segment(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn print_user(json_out: bool, v: &Value) {
    if json_out {
        output::json(v);
    } else {
        output::fields(vec![
            ("User principal name", output::text(&v["userPrincipalName"])),
            ("Display name", output::text(&v["displayName"])),
            ("Id", output::text(&v["id"])),
            ("Tenant", output::text(&v["tenantId"])),
            (
                "Enabled",
                if v["accountEnabled"].as_bool() == Some(true) {
                    "yes".into()
                } else {
                    "no".into()
                },
            ),
            ("Created", output::time(&v["created"])),
            ("Updated", output::time(&v["updated"])),
            ("Password changed", output::time(&v["passwordChanged"])),
        ]);
    }
}

/// Runs a user command.
pub async fn run(args: ConnectArgs, command: UserCommand) -> CliResult<()> {
    if let UserCommand::ChangePassword { username } = command {
        return change_password(&args, username).await;
    }
    let conn = Connection::open(&args).await?;
    match command {
        UserCommand::Create {
            user_principal_name,
            display_name,
            disabled,
        } => {
            let password = read_stdin_lines(1, "the initial password")?.remove(0);
            let display_name = display_name.unwrap_or_else(|| {
                user_principal_name
                    .split('@')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            });
            let mut body = json!({
                "userPrincipalName": user_principal_name,
                "displayName": display_name,
                "password": password.as_str(),
                "accountEnabled": !disabled,
            });
            let result = conn
                .expect(
                    MANAGEMENT_RESOURCE,
                    Method::POST,
                    &users_url(&conn),
                    Some(&body),
                )
                .await;
            wipe_password(&mut body);
            let v = result?;
            if args.json {
                output::json(&v);
            } else {
                println!(
                    "Created user {} ({})",
                    output::text(&v["userPrincipalName"]),
                    output::text(&v["id"])
                );
            }
        }
        UserCommand::List => {
            let mut all = Vec::new();
            let mut url = Some(users_url(&conn));
            while let Some(u) = url {
                let page = conn
                    .expect(MANAGEMENT_RESOURCE, Method::GET, &u, None)
                    .await?;
                all.extend(page["value"].as_array().cloned().unwrap_or_default());
                url = page["nextLink"].as_str().map(str::to_owned);
            }
            if args.json {
                output::json(&json!({ "value": all }));
            } else {
                let rows = all
                    .iter()
                    .map(|u| {
                        vec![
                            output::text(&u["userPrincipalName"]),
                            output::text(&u["displayName"]),
                            if u["accountEnabled"].as_bool() == Some(true) {
                                "yes".into()
                            } else {
                                "no".into()
                            },
                            output::text(&u["id"]),
                            output::time(&u["created"]),
                        ]
                    })
                    .collect();
                output::table(
                    &[
                        "User principal name",
                        "Display name",
                        "Enabled",
                        "Id",
                        "Created",
                    ],
                    rows,
                );
            }
        }
        UserCommand::Show { user } => {
            let v = conn
                .expect(
                    MANAGEMENT_RESOURCE,
                    Method::GET,
                    &user_url(&conn, &user),
                    None,
                )
                .await?;
            print_user(args.json, &v);
        }
        UserCommand::Disable { user } => set_enabled(&conn, &args, &user, false).await?,
        UserCommand::Enable { user } => set_enabled(&conn, &args, &user, true).await?,
        UserCommand::Delete { user } => {
            conn.expect(
                MANAGEMENT_RESOURCE,
                Method::DELETE,
                &user_url(&conn, &user),
                None,
            )
            .await?;
            if args.json {
                output::json(&json!({ "deleted": user }));
            } else {
                println!("Deleted user {user}");
            }
        }
        UserCommand::SetPassword { user } => {
            let password = read_stdin_lines(1, "the new password")?.remove(0);
            let mut body = json!({ "password": password.as_str() });
            let result = conn
                .expect(
                    MANAGEMENT_RESOURCE,
                    Method::PATCH,
                    &user_url(&conn, &user),
                    Some(&body),
                )
                .await;
            wipe_password(&mut body);
            let v = result?;
            if args.json {
                output::json(&v);
            } else {
                println!(
                    "Set a new password for {}",
                    output::text(&v["userPrincipalName"])
                );
            }
        }
        UserCommand::ChangePassword { .. } => {}
    }
    Ok(())
}

async fn set_enabled(
    conn: &Connection,
    args: &ConnectArgs,
    user: &str,
    enable: bool,
) -> CliResult<()> {
    let v = conn
        .expect(
            MANAGEMENT_RESOURCE,
            Method::PATCH,
            &user_url(conn, user),
            Some(&json!({ "accountEnabled": enable })),
        )
        .await?;
    if args.json {
        output::json(&v);
    } else {
        println!(
            "{} user {}",
            if enable { "Enabled" } else { "Disabled" },
            output::text(&v["userPrincipalName"])
        );
    }
    Ok(())
}

/// `lockstep user change-password`: as the saved login's user, or after
/// signing in as `username` with the current password.
async fn change_password(args: &ConnectArgs, username: Option<String>) -> CliResult<()> {
    let lines = read_stdin_lines(2, "the current and the new password")?;
    let (current, new) = (&lines[0], &lines[1]);
    let (conn, token, user_id, name) = match username {
        Some(username) => {
            let conn = Connection::open_anonymous(args).await?;
            let login = login::sign_in(
                &conn,
                conn.tenant_hint(),
                &username,
                current,
                &[MANAGEMENT_RESOURCE.to_owned()],
            )
            .await?;
            let token = login.token(MANAGEMENT_RESOURCE, login::now())?;
            (conn, token, login.user_id, login.username)
        }
        None => {
            let mut as_user = args.clone();
            as_user.as_user = true;
            let conn = Connection::open(&as_user).await?;
            let saved = conn
                .user()
                .ok_or("change-password needs a signed-in user")?
                .clone();
            let token = saved.token(MANAGEMENT_RESOURCE, login::now())?;
            (conn, token, saved.user_id, saved.username)
        }
    };
    let url = format!("{}/changePassword", user_url(&conn, &user_id));
    let mut body = json!({
        "currentPassword": current.as_str(),
        "newPassword": new.as_str(),
    });
    let result = conn.post_with_token(&url, &token, &body).await;
    wipe_password(&mut body);
    let (status, value) = result?;
    if !status.is_success() {
        let msg = value["error"]["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| value.to_string());
        let code = value["error"]["code"].as_str().unwrap_or("");
        return Err(format!("{} {code}: {msg}", status.as_u16()));
    }
    if args.json {
        output::json(&json!({ "passwordChanged": true, "username": name }));
    } else {
        println!("Changed the password of {name}");
    }
    Ok(())
}
