//! `lockstep`: the server (`lockstep serve`) and the client commands that
//! talk to a running server.

mod client;
mod login;
mod output;
mod secret;
mod serve;
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
    /// Manage secrets in a vault.
    Secret {
        #[command(flatten)]
        conn: client::ConnectArgs,
        #[command(subcommand)]
        command: secret::SecretCommand,
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
            Command::Login { conn, args } => login::run(conn, args).await,
            Command::Logout { conn } => login::logout(&conn),
            Command::User { conn, command } => user::run(conn, command).await,
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
