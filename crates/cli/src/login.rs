//! `lockstep login` / `lockstep logout`: a user signs in with a password
//! read from standard input; the tokens obtained are saved (mode 0600) in
//! `$LOCKSTEP_TOKEN_FILE` or `<data-dir>/.lockstep-token`, and later
//! commands act as that user (see `client::Connection::open` for the
//! precedence). The password itself is never saved.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::client::{CliResult, ConnectArgs, Connection, MANAGEMENT_RESOURCE};
use crate::output;

/// File name of the saved login inside the data directory.
pub const TOKEN_FILE: &str = ".lockstep-token";
/// A saved token this close to its expiry counts as expired.
const EXPIRY_MARGIN: i64 = 60;

/// Options of `lockstep login`.
#[derive(Args)]
pub struct LoginArgs {
    /// User principal name, e.g. alice@contoso.test.
    #[arg(long)]
    username: String,
    /// Read the password from standard input (the only way it is read; the
    /// flag makes scripts say so explicitly).
    #[arg(long)]
    password_stdin: bool,
    /// Also get a token for this resource (repeatable); the management API
    /// and the vaults are always included.
    #[arg(long = "resource")]
    resources: Vec<String>,
}

/// One saved access token.
#[derive(Serialize, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct SavedToken {
    /// The JWT.
    pub access_token: String,
    /// Expiry (Unix seconds).
    pub expires_on: i64,
}

/// What `lockstep login` leaves on disk.
#[derive(Serialize, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct SavedLogin {
    /// Server the tokens are from.
    pub server: String,
    /// Tenant id.
    pub tenant: String,
    /// User principal name.
    pub username: String,
    /// User object id.
    pub user_id: String,
    /// Tokens by resource (without a trailing slash).
    pub tokens: BTreeMap<String, SavedToken>,
}

impl SavedLogin {
    /// Reads a saved login; `None` when the file does not exist.
    pub fn read(path: &Path) -> CliResult<Option<Self>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => Zeroizing::new(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(format!(
                    "cannot read the saved login {}: {e}",
                    path.display()
                ))
            }
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            format!(
                "the saved login {} is unreadable ({e}); run `lockstep logout` and sign in again",
                path.display()
            )
        })
    }

    /// Writes the login readable by its owner only (via a temporary file,
    /// so a reader never sees half a file).
    pub fn write(&self, path: &Path) -> CliResult<()> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let json = Zeroizing::new(
            serde_json::to_vec_pretty(self).map_err(|e| format!("cannot encode the login: {e}"))?,
        );
        let tmp = path.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(fail)?;
        f.write_all(&json)
            .and_then(|_| f.sync_all())
            .map_err(fail)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
        std::fs::rename(&tmp, path).map_err(fail)
    }

    /// When the first of the saved tokens expires.
    pub fn expires_on(&self) -> i64 {
        self.tokens
            .values()
            .map(|t| t.expires_on)
            .min()
            .unwrap_or(0)
    }

    /// Whether every token is still usable at `now`.
    pub fn is_valid(&self, now: i64) -> bool {
        !self.tokens.is_empty() && self.expires_on() > now + EXPIRY_MARGIN
    }

    /// The token for `resource`, if saved and not expired.
    pub fn token(&self, resource: &str, now: i64) -> CliResult<String> {
        let key = resource.trim_end_matches('/');
        match self.tokens.get(key) {
            Some(t) if t.expires_on > now + EXPIRY_MARGIN => Ok(t.access_token.clone()),
            Some(_) => Err(format!(
                "the saved login of {} has expired: run `lockstep login --username {}` again",
                self.username, self.username
            )),
            None => Err(format!(
                "the saved login of {} has no token for {key}: run `lockstep login --username {} --resource {key}`",
                self.username, self.username
            )),
        }
    }
}

/// Where the saved login lives: `--token-file`/`$LOCKSTEP_TOKEN_FILE`, or
/// `<data-dir>/.lockstep-token`.
pub fn token_path(args: &ConnectArgs) -> PathBuf {
    args.token_file
        .clone()
        .unwrap_or_else(|| args.data_dir.join(TOKEN_FILE))
}

/// Now, in Unix seconds.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The claims of a JWT, read without verifying it (the CLI only displays
/// them; the server verifies every token it is given).
pub fn claims_of(token: &str) -> Value {
    token
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

/// Reads `count` lines from standard input (passwords: never echoed, never
/// prompted for). Refuses a terminal, where the password would be shown.
pub fn read_stdin_lines(count: usize, what: &str) -> CliResult<Vec<Zeroizing<String>>> {
    if std::io::stdin().is_terminal() {
        return Err(format!(
            "{what} must be given on standard input, not typed at a terminal (it would be shown): \
             e.g. `printf '%s\\n' \"$PASSWORD\" | lockstep …` or `lockstep … < file`"
        ));
    }
    let mut buf = Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut buf)
        .map_err(|e| format!("cannot read {what} from standard input: {e}"))?;
    let lines: Vec<Zeroizing<String>> = buf
        .split('\n')
        .map(|l| Zeroizing::new(l.strip_suffix('\r').unwrap_or(l).to_owned()))
        .take(count)
        .collect();
    if lines.len() < count || lines.iter().any(|l| l.is_empty()) {
        return Err(format!(
            "expected {what} on standard input ({count} line{})",
            if count == 1 { "" } else { "s" }
        ));
    }
    Ok(lines)
}

/// Signs `username` in with `password` for each resource; returns the login.
pub async fn sign_in(
    conn: &Connection,
    tenant: Option<&str>,
    username: &str,
    password: &str,
    resources: &[String],
) -> CliResult<SavedLogin> {
    let url = format!("{}/lockstep/v1/login", conn.server());
    let mut tokens = BTreeMap::new();
    let mut claims = Value::Null;
    for resource in resources {
        let mut body = json!({ "username": username, "password": password, "resource": resource });
        if let Some(t) = tenant {
            body["tenant"] = json!(t);
        }
        let result = conn.post_anonymous(&url, &body).await;
        wipe_password(&mut body);
        let (status, value) = result?;
        if !status.is_success() {
            let msg = value["error"]["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string());
            let code = value["error"]["code"].as_str().unwrap_or("");
            return Err(format!("sign-in failed: {} {code}: {msg}", status.as_u16()));
        }
        let token = value["access_token"]
            .as_str()
            .ok_or("the sign-in response has no access_token")?
            .to_owned();
        let expires_in = value["expires_in"].as_i64().unwrap_or(0);
        claims = claims_of(&token);
        tokens.insert(
            resource.trim_end_matches('/').to_owned(),
            SavedToken {
                access_token: token,
                expires_on: now() + expires_in,
            },
        );
    }
    Ok(SavedLogin {
        server: conn.server().to_owned(),
        tenant: output::text(&claims["tid"]),
        username: claims["upn"]
            .as_str()
            .map_or_else(|| username.to_owned(), str::to_owned),
        user_id: output::text(&claims["oid"]),
        tokens,
    })
}

/// Runs `lockstep login`.
pub async fn run(conn_args: ConnectArgs, args: LoginArgs) -> CliResult<()> {
    let _ = args.password_stdin;
    let password = read_stdin_lines(1, "the password")?.remove(0);
    let conn = Connection::open_anonymous(&conn_args).await?;
    let mut resources = vec![MANAGEMENT_RESOURCE.to_owned(), conn.vault_resource()];
    for r in args.resources {
        let r = r
            .trim_end_matches('/')
            .trim_end_matches("/.default")
            .to_owned();
        if !resources.contains(&r) {
            resources.push(r);
        }
    }
    let login = sign_in(
        &conn,
        conn.tenant_hint(),
        &args.username,
        &password,
        &resources,
    )
    .await?;
    let path = token_path(&conn_args);
    login.write(&path)?;
    let expires = output::time(&json!(login.expires_on()));
    if conn_args.json {
        output::json(&json!({
            "username": login.username,
            "userId": login.user_id,
            "tenant": login.tenant,
            "expiresOn": expires,
            "resources": login.tokens.keys().collect::<Vec<_>>(),
            "tokenFile": path.display().to_string(),
        }));
    } else {
        println!(
            "Signed in as {} ({}). Token saved to {} (valid until {}).",
            login.username,
            login.user_id,
            path.display(),
            expires
        );
        println!("Commands now act as this user; `lockstep logout` to stop.");
    }
    Ok(())
}

/// Runs `lockstep logout`: deletes the saved login.
pub fn logout(conn_args: &ConnectArgs) -> CliResult<()> {
    let path = token_path(conn_args);
    match std::fs::remove_file(&path) {
        Ok(()) => {
            if conn_args.json {
                output::json(
                    &json!({ "loggedOut": true, "tokenFile": path.display().to_string() }),
                );
            } else {
                println!("Signed out: removed {}.", path.display());
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if conn_args.json {
                output::json(&json!({ "loggedOut": false }));
            } else {
                println!("Not signed in (no {}).", path.display());
            }
            Ok(())
        }
        Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
    }
}

/// Overwrites the password fields of a JSON request body before it is
/// dropped (serde_json has no zeroizing string).
pub fn wipe_password(body: &mut Value) {
    if let Some(map) = body.as_object_mut() {
        for key in ["password", "currentPassword", "newPassword"] {
            if let Some(Value::String(s)) = map.get_mut(key) {
                zeroize::Zeroize::zeroize(s);
            }
        }
    }
}
