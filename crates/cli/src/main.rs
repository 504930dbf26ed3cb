//! `lockstep`: the server (`lockstep serve`) and the client commands that
//! talk to a running server.

mod agent;
mod app;
mod audit;
mod client;
mod login;
mod output;
mod role;
mod rotation;
mod secret;
mod serve;
mod subscription;
mod user;
mod vault;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Lockstep keeps application credentials and the vault that serves them in lockstep.
#[derive(Parser)]
#[command(name = "lockstep", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Lockstep server.
    Serve(serve::ServeArgs),
    /// Manage vaults.
    Vault {
        #[command(flatten)]
        conn: client::ConnectArgs,
        #[command(subcommand)]
        command: vault::VaultCommand,
    },
    /// Manage app registrations and their client secrets.
    App {
        #[command(flatten)]
        conn: client::ConnectArgs,
        #[command(subcommand)]
        command: app::AppCommand,
    },
    /// Manage role assignments.
    Role {
        #[command(flatten)]
        conn: client::ConnectArgs,
        #[command(subcommand)]
        command: role::RoleCommand,
    },
    /// Manage token signing keys.
    Keys {
        #[command(flatten)]
        conn: client::ConnectArgs,
        #[command(subcommand)]
        command: role::KeysCommand,
    },
    /// Manage rotation bindings and runs.
    Rotation {
        #[command(flatten)]
        conn: client::ConnectArgs,
        #[command(subcommand)]
        command: rotation::RotationCommand,
    },
    /// Rotate a binding now (the app's client secret and its vault secret together).
    Rotate {
        #[command(flatten)]
        conn: client::ConnectArgs,
        /// Binding name.
        name: String,
        /// `afterGrace` (default) or `now` (emergency: revoke the previous credential at once).
        #[arg(long, default_value = "afterGrace")]
        revoke_previous: String,
        /// Key id of a leaked credential to revoke at once (implies --revoke-previous now).
        #[arg(long)]
        leaked: Option<String>,
        /// Return the run id without waiting.
        #[arg(long)]
        no_wait: bool,
    },
    /// What is current, what is due, and what has drifted.
    Status {
        #[command(flatten)]
        conn: client::ConnectArgs,
    },
    /// Development helpers (server started with --dev-time-shift).
    Dev {
        #[command(flatten)]
        conn: client::ConnectArgs,
        #[command(subcommand)]
        command: rotation::DevCommand,
    },
    /// Manage secrets in a vault.
    Secret {
        #[command(flatten)]
        conn: client::ConnectArgs,
        #[command(subcommand)]
        command: secret::SecretCommand,
    },
    /// Verify and search the audit log.
    Audit {
        #[command(flatten)]
        conn: client::ConnectArgs,
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Sign in as a user (password on standard input); later commands act as that user.
    Login {
        #[command(flatten)]
        conn: client::ConnectArgs,
        #[command(flatten)]
        args: login::LoginArgs,
    },
    /// Forget the saved user login.
    Logout {
        #[command(flatten)]
        conn: client::ConnectArgs,
    },
    /// Manage the tenant's users.
    User {
        #[command(flatten)]
        conn: client::ConnectArgs,
        #[command(subcommand)]
        command: user::UserCommand,
    },
    /// Manage event subscriptions (webhooks) and see their deliveries.
    Subscription {
        #[command(flatten)]
        conn: client::ConnectArgs,
        #[command(subcommand)]
        command: subscription::SubscriptionCommand,
    },
    /// Keep a secret fresh in a file and/or on a Unix socket, and run a
    /// command when it changes (a sidecar for programs that cannot use the
    /// client library).
    Agent {
        #[command(flatten)]
        conn: client::ConnectArgs,
        #[command(flatten)]
        args: agent::AgentArgs,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lockstep: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Vault { conn, command } => vault::run(conn, command).await,
            Command::Secret { conn, command } => secret::run(conn, command).await,
            Command::App { conn, command } => app::run(conn, command).await,
            Command::Rotation { conn, command } => rotation::run(conn, command).await,
            Command::Rotate {
                conn,
                name,
                revoke_previous,
                leaked,
                no_wait,
            } => rotation::rotate(conn, name, revoke_previous, leaked, no_wait).await,
            Command::Status { conn } => rotation::status(conn).await,
            Command::Dev { conn, command } => rotation::dev(conn, command).await,
            Command::Role { conn, command } => role::run(conn, command).await,
            Command::Keys { conn, command } => role::run_keys(conn, command).await,
            Command::Audit { conn, command } => audit::run(conn, command).await,
            Command::Login { conn, args } => login::run(conn, args).await,
            Command::Logout { conn } => login::logout(&conn),
            Command::User { conn, command } => user::run(conn, command).await,
            Command::Subscription { conn, command } => subscription::run(conn, command).await,
            Command::Agent { conn, args } => agent::run(conn, args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lockstep: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Cli;

    #[test]
    fn a_client_secret_may_start_with_a_hyphen() {
        // Client secrets are base64url: one in 64 starts with `-`.
        let parsed = Cli::try_parse_from([
            "lockstep",
            "vault",
            "list",
            "--client-id",
            "00000000-0000-0000-0000-000000000000",
            "--client-secret",
            "-3abcDEF_ghi",
        ]);
        assert!(parsed.is_ok(), "{:?}", parsed.err().map(|e| e.to_string()));
    }
}
