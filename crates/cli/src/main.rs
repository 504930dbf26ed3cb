//! `lockstep`: the server (`lockstep serve`) and the client commands that
//! talk to a running server.

mod agent;
mod app;
mod client;
mod output;
mod role;
mod secret;
mod serve;
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
    /// Manage secrets in a vault.
    Secret {
        #[command(flatten)]
        conn: client::ConnectArgs,
        #[command(subcommand)]
        command: secret::SecretCommand,
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
            Command::Role { conn, command } => role::run(conn, command).await,
            Command::Keys { conn, command } => role::run_keys(conn, command).await,
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
