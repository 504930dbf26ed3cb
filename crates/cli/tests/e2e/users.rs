//! Tenant users through the real server and CLI: creation, sign-in, user
//! tokens and what they may do, disabled users, password changes and the
//! policy, and that no password is ever written to a log or a file.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use lockstep_testkit::Server;
use reqwest::Method;
use serde_json::{json, Value};

const MGMT: &str = "api://lockstep";
const ALICE: &str = "alice@contoso.test";
const ALICE_PW: &str = "First-lantern-passphrase-7";

fn url(s: &Server, path: &str) -> String {
    format!("{}/lockstep/v1/{path}", s.authority())
}

async fn create_user(s: &Server, admin: &str, upn: &str, password: &str) -> (u16, Value) {
    let (status, _, body) = s
        .send(
            Method::POST,
            &url(s, "users"),
            Some(admin),
            Some(&json!({"userPrincipalName": upn, "displayName": "Test user", "password": password})),
        )
        .await;
    (status, body)
}

async fn login(s: &Server, body: Value) -> (u16, Value) {
    let (status, headers, body) = s
        .send(Method::POST, &url(s, "login"), None, Some(&body))
        .await;
    if status == 200 {
        assert_eq!(headers["cache-control"], "no-store, no-cache");
    }
    (status, body)
}

async fn login_token(s: &Server, username: &str, password: &str) -> String {
    let (status, body) = login(s, json!({"username": username, "password": password})).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Where `needle` appears: the server's output or a file under its data
/// directory (database, WAL, SHM, keys, saved logins).
fn found_in(s: &Server, needle: &str) -> Option<String> {
    fn walk(dir: &Path, needle: &[u8]) -> Option<String> {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let hit = if path.is_dir() {
                walk(&path, needle)
            } else {
                let bytes = std::fs::read(&path).unwrap();
                bytes
                    .windows(needle.len())
                    .any(|w| w == needle)
                    .then(|| path.display().to_string())
            };
            if hit.is_some() {
                return hit;
            }
        }
        None
    }
    if s.logs().contains(needle) {
        return Some("the server logs".into());
    }
    walk(s.data_dir(), needle.as_bytes())
}

/// Fails if any of `secrets` appears in the server's output or its data
/// directory (the admin's client id, which is stored, shows the search
/// does find what is there).
fn assert_nowhere(s: &Server, secrets: &[&str]) {
    assert!(
        found_in(s, &s.admin.client_id).is_some(),
        "the search finds stored data"
    );
    for secret in secrets {
        if let Some(place) = found_in(s, secret) {
            panic!("a password appears in {place}");
        }
    }
}

#[tokio::test]
async fn a_user_signs_in_and_gets_a_user_token_that_is_limited_by_roles() {
    let s = Server::start().await;
    let admin = s.admin_token(MGMT).await;
    let (status, user) = create_user(&s, &admin, ALICE, ALICE_PW).await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(user["userPrincipalName"], ALICE);
    assert_eq!(user["accountEnabled"], true);
    assert!(user.get("password").is_none() && user.get("passwordHash").is_none());
    let id = user["id"].as_str().unwrap().to_owned();

    let (status, body) = login(&s, json!({"username": ALICE, "password": ALICE_PW})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let token = body["access_token"].as_str().unwrap();
    let c = claims(token);
    assert_eq!(c["idtyp"], "user");
    assert_eq!(c["oid"], id.as_str());
    assert_eq!(c["aud"], MGMT);
    assert_eq!(c["tid"], s.admin.tenant_id.as_str());
    assert_eq!(c["upn"], ALICE);
    assert!(c.get("appid").is_none() && c.get("azp").is_none());
    let admin_claims = claims(&admin);
    assert_eq!(admin_claims["idtyp"], "app");

    // Authenticated, but a fresh user holds no role: 403, not 401.
    for (method, path) in [
        (Method::GET, "vaults"),
        (Method::GET, "users"),
        (Method::GET, "users/alice@contoso.test"),
        (Method::POST, "users"),
        (Method::DELETE, "vaults/default"),
    ] {
        let body = (method == Method::POST).then(|| {
            json!({"userPrincipalName": "mallory@contoso.test", "displayName": "M", "password": "Mallory-passphrase-1"})
        });
        let (status, _, err) = s
            .send(method.clone(), &url(&s, path), Some(token), body.as_ref())
            .await;
        assert_eq!(status, 403, "{method} {path}: {err}");
        assert_eq!(err["error"]["code"], "AuthorizationFailed");
        assert!(err["error"]["message"].as_str().unwrap().contains(&id));
    }

    // A vault token for the user: authenticated by the vault, refused by RBAC.
    let (status, body) = login(
        &s,
        json!({"username": ALICE, "password": ALICE_PW, "resource": "https://vault.localhost"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let vault_token = body["access_token"].as_str().unwrap();
    let (status, _, err) = s
        .send(
            Method::GET,
            &format!("{}/secrets?api-version=7.6", s.vault_url("default")),
            Some(vault_token),
            None,
        )
        .await;
    assert_eq!(status, 403, "{err}");
    assert_eq!(err["error"]["innererror"]["code"], "ForbiddenByRbac");
    // The management token is not a vault token, and the other way round.
    let (status, _, _) = s
        .send(Method::GET, &url(&s, "vaults"), Some(vault_token), None)
        .await;
    assert_eq!(status, 401);

    let (status, body) = login(
        &s,
        json!({"username": ALICE, "password": ALICE_PW, "resource": "https://graph.microsoft.com"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["aud"],
        "https://graph.microsoft.com"
    );
    let (status, body) = login(
        &s,
        json!({"username": ALICE, "password": ALICE_PW, "resource": "https://elsewhere.example"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "InvalidResource");

    // The admin (Owner) can read users; the user row never shows the hash.
    let (status, _, list) = s
        .send(Method::GET, &url(&s, "users"), Some(&admin), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains("argon2"));
    assert_nowhere(&s, &[ALICE_PW]);
}

#[tokio::test]
async fn roles_assigned_to_a_user_are_what_its_token_may_do() {
    let s = Server::start().await;
    let admin = s.admin_token(MGMT).await;
    assert_eq!(create_user(&s, &admin, ALICE, ALICE_PW).await.0, 201);
    let bob_pw = "Quiet-river-passphrase-42";
    let (_, bob) = create_user(&s, &admin, "bob@contoso.test", bob_pw).await;
    let token = login_token(&s, ALICE, ALICE_PW).await;
    let assign = |who: &str, role: &str| {
        let body = json!({"principalId": who, "roleDefinitionName": role, "scope": "/"});
        let (u, s, admin) = (url(&s, "roleAssignments"), &s, admin.clone());
        async move { s.send(Method::POST, &u, Some(&admin), Some(&body)).await }
    };
    assert_eq!(
        s.send(Method::GET, &url(&s, "vaults"), Some(&token), None)
            .await
            .0,
        403
    );

    // Reader, assigned by principal name: reads, never writes.
    let (status, _, ra) = assign(ALICE, "Reader").await;
    assert_eq!(status, 201, "{ra}");
    let (status, _, vaults) = s
        .send(Method::GET, &url(&s, "vaults"), Some(&token), None)
        .await;
    assert_eq!(status, 200, "{vaults}");
    let (status, _, users) = s
        .send(Method::GET, &url(&s, "users"), Some(&token), None)
        .await;
    assert_eq!(status, 200, "{users}");
    assert_eq!(users["value"].as_array().unwrap().len(), 2);
    let bob_url = url(&s, "users/bob@contoso.test");
    let disable = json!({"accountEnabled": false});
    let (status, _, _) = s
        .send(Method::PATCH, &bob_url, Some(&token), Some(&disable))
        .await;
    assert_eq!(status, 403);

    // Contributor may not manage users: resetting an Owner's password
    // would make it Owner.
    assert_eq!(assign(ALICE, "Contributor").await.0, 201);
    let reset = json!({"password": "Taken-over-passphrase-1"});
    let (status, _, err) = s
        .send(Method::PATCH, &bob_url, Some(&token), Some(&reset))
        .await;
    assert_eq!(status, 403, "{err}");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Lockstep/users/write"));
    let (status, _, _) = s
        .send(
            Method::POST,
            &url(&s, "vaults"),
            Some(&token),
            Some(&json!({"name": "alices"})),
        )
        .await;
    assert_eq!(status, 201, "but a Contributor does create vaults");

    // Owner, assigned by object id: manages users.
    assert_eq!(assign(bob["id"].as_str().unwrap(), "Owner").await.0, 201);
    let bob_token = login_token(&s, "bob@contoso.test", bob_pw).await;
    let (status, _, _) = s
        .send(
            Method::PATCH,
            &url(&s, &format!("users/{ALICE}")),
            Some(&bob_token),
            Some(&disable),
        )
        .await;
    assert_eq!(status, 200);
    // ... and Alice's roles no longer help her: her token is cut off.
    let (status, _, _) = s
        .send(Method::GET, &url(&s, "vaults"), Some(&token), None)
        .await;
    assert_eq!(status, 401);
    let (status, _, err) = assign("nobody@contoso.test", "Reader").await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("PrincipalNotFound"))
    );
    assert_nowhere(&s, &[ALICE_PW, bob_pw, "Taken-over-passphrase-1"]);
}

#[tokio::test]
async fn unknown_users_and_wrong_passwords_get_the_same_401() {
    let s = Server::start().await;
    let admin = s.admin_token(MGMT).await;
    assert_eq!(create_user(&s, &admin, ALICE, ALICE_PW).await.0, 201);
    let wrong_pw = "Not-alices-passphrase-9";
    let (s1, wrong) = login(&s, json!({"username": ALICE, "password": wrong_pw})).await;
    let (s2, unknown) = login(
        &s,
        json!({"username": "bob@contoso.test", "password": ALICE_PW}),
    )
    .await;
    let (s3, other_tenant) = login(
        &s,
        json!({"tenant": "00000000-0000-4000-8000-000000000000", "username": ALICE, "password": ALICE_PW}),
    )
    .await;
    assert_eq!((s1, s2, s3), (401, 401, 401));
    assert_eq!(wrong, unknown);
    assert_eq!(wrong, other_tenant);
    assert_eq!(wrong["error"]["code"], "InvalidCredentials");
    assert_eq!(
        wrong["error"]["message"],
        "The user name or password is incorrect."
    );

    // The principal name is matched in any case; the tenant may be named.
    let (status, _) = login(
        &s,
        json!({"tenant": s.admin.tenant_id, "username": "ALICE@Contoso.Test", "password": ALICE_PW}),
    )
    .await;
    assert_eq!(status, 200);

    // Malformed bodies are 400 and do not echo what was sent.
    let (status, body) = login(&s, json!({"username": ALICE})).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("password"));
    let (status, body) = login(
        &s,
        json!({"username": ALICE, "password": ["Secret-in-an-array-1"]}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(!body.to_string().contains("Secret-in-an-array-1"));
    // A password typed into the user-name field is recorded nowhere either
    // (no log line, no audit record carries an attempted name).
    let typo = "Hunter2-typed-in-the-name-field";
    let (status, _) = login(&s, json!({"username": typo, "password": ALICE_PW})).await;
    assert_eq!(status, 401);
    let (status, _) = login(
        &s,
        json!({"username": format!("{typo}@contoso.test"), "password": "x"}),
    )
    .await;
    assert_eq!(status, 401);
    assert_nowhere(&s, &[ALICE_PW, wrong_pw, "Secret-in-an-array-1", typo]);
}

#[tokio::test]
async fn disabled_and_deleted_users_are_refused_at_once() {
    let s = Server::start().await;
    let admin = s.admin_token(MGMT).await;
    let (_, user) = create_user(&s, &admin, ALICE, ALICE_PW).await;
    let id = user["id"].as_str().unwrap().to_owned();
    let token = login_token(&s, ALICE, ALICE_PW).await;
    let change = |t: &str| {
        let body = json!({"currentPassword": ALICE_PW, "newPassword": ALICE_PW});
        let t = t.to_owned();
        let u = url(&s, &format!("users/{id}/changePassword"));
        let s = &s;
        async move { s.send(Method::POST, &u, Some(&t), Some(&body)).await }
    };
    // Before: the token authenticates (400: same password again).
    assert_eq!(change(&token).await.0, 400);

    let (status, _, patched) = s
        .send(
            Method::PATCH,
            &url(&s, &format!("users/{ALICE}")),
            Some(&admin),
            Some(&json!({"accountEnabled": false})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["accountEnabled"], false);

    let (status, body) = login(&s, json!({"username": ALICE, "password": ALICE_PW})).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "UserDisabled");
    // A wrong password does not reveal that the account is disabled.
    let (status, body) = login(
        &s,
        json!({"username": ALICE, "password": "Wrong-passphrase-123"}),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "InvalidCredentials");
    // Tokens issued before are cut off at once.
    let (status, _, err) = change(&token).await;
    assert_eq!(status, 401, "{err}");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("disabled"));

    let (status, _, _) = s
        .send(
            Method::PATCH,
            &url(&s, &format!("users/{id}")),
            Some(&admin),
            Some(&json!({"accountEnabled": true, "displayName": "Alice Example"})),
        )
        .await;
    assert_eq!(status, 200);
    let token = login_token(&s, ALICE, ALICE_PW).await;
    assert_eq!(claims(&token)["name"], "Alice Example");

    let (status, _, _) = s
        .send(
            Method::DELETE,
            &url(&s, &format!("users/{id}")),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(change(&token).await.0, 401);
    let (status, body) = login(&s, json!({"username": ALICE, "password": ALICE_PW})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("InvalidCredentials"))
    );
    let (status, _, err) = s
        .send(
            Method::GET,
            &url(&s, &format!("users/{id}")),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(err["error"]["code"], "UserNotFound");
    assert_nowhere(&s, &[ALICE_PW]);
}

#[tokio::test]
async fn passwords_change_only_with_the_current_one_and_follow_the_policy() {
    let s = Server::start().await;
    let admin = s.admin_token(MGMT).await;
    let weak = "short-pw1";
    let (status, err) = create_user(&s, &admin, ALICE, weak).await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["code"], "PasswordPolicyViolation");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at least 12 characters"));
    let (status, err) = create_user(&s, &admin, ALICE, "Password1234").await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("PasswordPolicyViolation"))
    );
    let (status, err) = create_user(&s, &admin, "not-a-upn", ALICE_PW).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("BadRequest"))
    );

    let (status, user) = create_user(&s, &admin, ALICE, ALICE_PW).await;
    assert_eq!(status, 201);
    let id = user["id"].as_str().unwrap().to_owned();
    let (status, err) = create_user(&s, &admin, "ALICE@contoso.TEST", ALICE_PW).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (409, Some("UserAlreadyExists"))
    );
    let bob_pw = "Quiet-river-passphrase-42";
    assert_eq!(
        create_user(&s, &admin, "bob@contoso.test", bob_pw).await.0,
        201
    );

    let token = login_token(&s, ALICE, ALICE_PW).await;
    let bob = login_token(&s, "bob@contoso.test", bob_pw).await;
    let change_url = url(&s, &format!("users/{id}/changePassword"));
    let new_pw = "Second-staple-passphrase-8";
    let change = |t: &str, current: &str, new: &str| {
        let body = json!({"currentPassword": current, "newPassword": new});
        let (t, u, s) = (t.to_owned(), change_url.clone(), &s);
        async move { s.send(Method::POST, &u, Some(&t), Some(&body)).await }
    };
    let (status, _, err) = change(&token, "Wrong-current-pass-1", new_pw).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("InvalidCurrentPassword"))
    );
    let (status, _, err) = change(&token, ALICE_PW, "tooshort").await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("PasswordPolicyViolation"))
    );
    // Neither another user nor an app (even an Owner) may change it.
    let (status, _, err) = change(&bob, ALICE_PW, new_pw).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (403, Some("AuthorizationFailed"))
    );
    let (status, _, _) = change(&admin, ALICE_PW, new_pw).await;
    assert_eq!(status, 403);
    let (status, _, _) = change(&token, ALICE_PW, new_pw).await;
    assert_eq!(status, 204);

    let (status, _) = login(&s, json!({"username": ALICE, "password": ALICE_PW})).await;
    assert_eq!(status, 401, "the old password stops working");
    let token = login_token(&s, ALICE, new_pw).await;

    // An administrator resets it without the current one (a weak one is refused).
    let reset = "Reset-by-the-admin-2026";
    let user_url = url(&s, &format!("users/{id}"));
    let (status, _, err) = s
        .send(
            Method::PATCH,
            &user_url,
            Some(&admin),
            Some(&json!({"password": "abcdefghijklmn"})),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("PasswordPolicyViolation"))
    );
    let (status, _, _) = s
        .send(
            Method::PATCH,
            &user_url,
            Some(&token),
            Some(&json!({"password": reset})),
        )
        .await;
    assert_eq!(status, 403, "a user without a role cannot reset passwords");
    let (status, _, body) = s
        .send(
            Method::PATCH,
            &user_url,
            Some(&admin),
            Some(&json!({"password": reset})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        login(&s, json!({"username": ALICE, "password": new_pw}))
            .await
            .0,
        401
    );
    login_token(&s, ALICE, reset).await;

    // Listing pages with nextLink.
    let (status, _, page) = s
        .send(
            Method::GET,
            &format!("{}?top=1", url(&s, "users")),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["value"][0]["userPrincipalName"], ALICE);
    let next = page["nextLink"].as_str().unwrap();
    let (_, _, page) = s.send(Method::GET, next, Some(&admin), None).await;
    assert_eq!(page["value"][0]["userPrincipalName"], "bob@contoso.test");
    assert!(page.get("nextLink").is_none());

    // The audit log has the changes, by id, with an intent record before
    // the user's own change (see docs/audit.md).
    let audit = std::fs::read_to_string(s.data_dir().join("audit.log")).unwrap();
    let user_target = format!("/tenants/{}/users/{id}", s.admin.tenant_id);
    for event in ["UserCreated", "UserPasswordChanged", "UserPasswordReset"] {
        assert!(
            audit
                .lines()
                .any(|l| l.contains(event) && l.contains(&user_target)),
            "{event} for {user_target} missing from the audit log"
        );
    }
    assert!(audit
        .lines()
        .any(|l| l.contains("intent") && l.contains("Lockstep/users/changePassword/action")));
    assert_nowhere(
        &s,
        &[
            ALICE_PW,
            new_pw,
            reset,
            bob_pw,
            weak,
            "Wrong-current-pass-1",
            "Password1234",
        ],
    );
}

// --- the CLI ---------------------------------------------------------------------

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn run(mut cmd: Command, args: &[&str], stdin: &str) -> Run {
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(r: Run) -> String {
    assert!(r.ok, "command failed: {}{}", r.stdout, r.stderr);
    r.stdout
}

fn fails(r: Run, needle: &str) {
    assert!(!r.ok, "command should have failed: {}", r.stdout);
    assert!(
        r.stderr.contains(needle),
        "expected {needle:?} in: {}",
        r.stderr
    );
}

#[tokio::test]
async fn the_cli_manages_users_and_signs_them_in() {
    let s = Server::start().await;
    let cli = || s.cli();
    let pw = format!("{ALICE_PW}\n");

    let out = ok(run(
        cli(),
        &["user", "create", ALICE, "--display-name", "Alice", "--json"],
        &pw,
    ));
    let created: Value = serde_json::from_str(&out).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    fails(
        run(
            cli(),
            &["user", "create", "bob@contoso.test"],
            "short-pw1\n",
        ),
        "at least 12 characters",
    );
    fails(
        run(cli(), &["user", "create", "bob@contoso.test"], ""),
        "standard input",
    );
    let list: Value =
        serde_json::from_str(&ok(run(cli(), &["user", "list", "--json"], ""))).unwrap();
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    let table = ok(run(cli(), &["user", "list"], ""));
    assert!(table.contains(ALICE) && table.contains(&id), "{table}");
    let shown: Value = serde_json::from_str(&ok(run(
        cli(),
        &["user", "show", "ALICE@contoso.test", "--json"],
        "",
    )))
    .unwrap();
    assert_eq!(shown["id"], id.as_str());

    // Wrong password: refused, nothing saved.
    let token_file = s.data_dir().join(".lockstep-token");
    fails(
        run(
            cli(),
            &["login", "--username", ALICE, "--password-stdin"],
            "Wrong-passphrase-123\n",
        ),
        "InvalidCredentials",
    );
    assert!(!token_file.exists());

    // Sign in: the token file is the default one, private, and holds user tokens.
    let out = ok(run(
        cli(),
        &["login", "--username", ALICE, "--password-stdin"],
        &pw,
    ));
    assert!(out.contains("Signed in as alice@contoso.test"), "{out}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(&token_file).unwrap()).unwrap();
    assert_eq!(saved["userId"], id.as_str());
    let mgmt = saved["tokens"][MGMT]["accessToken"].as_str().unwrap();
    assert_eq!(claims(mgmt)["idtyp"], "user");
    assert!(saved["tokens"]["https://vault.localhost"]["accessToken"].is_string());

    // Commands now act as Alice, who holds no role.
    fails(
        run(cli(), &["vault", "list"], ""),
        "403 AuthorizationFailed",
    );
    fails(run(cli(), &["user", "list"], ""), "403 AuthorizationFailed");
    fails(run(cli(), &["secret", "list"], ""), "403");
    // Explicit client credentials win over the saved login.
    let admin = s.admin.clone();
    let explicit = ok(run(
        cli(),
        &[
            "user",
            "list",
            "--client-id",
            &admin.client_id,
            "--client-secret",
            &admin.client_secret,
        ],
        "",
    ));
    assert!(explicit.contains(ALICE));

    // With a role (assigned by principal name through the CLI), she may read.
    ok(run(
        cli(),
        &[
            "role",
            "assign",
            "--assignee",
            ALICE,
            "--role",
            "Reader",
            "--client-id",
            &admin.client_id,
            "--client-secret",
            &admin.client_secret,
        ],
        "",
    ));
    ok(run(cli(), &["vault", "list"], ""));
    fails(run(cli(), &["vault", "create", "alices"], ""), "403");

    // Alice changes her own password with the saved login.
    let new_pw = "Second-staple-passphrase-8";
    fails(
        run(
            cli(),
            &["user", "change-password"],
            &format!("Wrong-current-pass-1\n{new_pw}\n"),
        ),
        "InvalidCurrentPassword",
    );
    ok(run(
        cli(),
        &["user", "change-password"],
        &format!("{ALICE_PW}\n{new_pw}\n"),
    ));

    // Log out: back to the bootstrap admin.
    ok(run(cli(), &["logout"], ""));
    assert!(!token_file.exists());
    ok(run(cli(), &["vault", "list"], ""));
    fails(
        run(cli(), &["vault", "list", "--as-user"], ""),
        "not signed in",
    );

    // Change again, signing in with --username (no saved login needed).
    let third_pw = "Third-harbor-passphrase-9";
    fails(
        run(
            cli(),
            &["user", "change-password", "--username", ALICE],
            &format!("{ALICE_PW}\n{third_pw}\n"),
        ),
        "InvalidCredentials",
    );
    ok(run(
        cli(),
        &["user", "change-password", "--username", ALICE],
        &format!("{new_pw}\n{third_pw}\n"),
    ));

    // Disable, enable, admin reset, with a token file chosen by environment.
    let elsewhere = tempfile::tempdir().unwrap();
    let custom = elsewhere.path().join("alice.token");
    let cli_as = || {
        let mut c = s.cli();
        c.env("LOCKSTEP_TOKEN_FILE", &custom);
        c
    };
    ok(run(cli(), &["user", "disable", ALICE], ""));
    fails(
        run(
            cli_as(),
            &["login", "--username", ALICE],
            &format!("{third_pw}\n"),
        ),
        "UserDisabled",
    );
    ok(run(cli(), &["user", "enable", &id], ""));
    let reset = "Reset-by-the-admin-2026";
    ok(run(
        cli(),
        &["user", "set-password", ALICE],
        &format!("{reset}\n"),
    ));
    fails(
        run(
            cli_as(),
            &["login", "--username", ALICE],
            &format!("{third_pw}\n"),
        ),
        "InvalidCredentials",
    );
    ok(run(
        cli_as(),
        &["login", "--username", ALICE, "--json"],
        &format!("{reset}\n"),
    ));
    assert!(custom.exists() && !token_file.exists());
    let saved_login = std::fs::read_to_string(&custom).unwrap();
    assert!(
        !saved_login.contains(reset),
        "the saved login holds the password"
    );
    fails(
        run(cli_as(), &["vault", "create", "alices", "--as-user"], ""),
        "403",
    );
    ok(run(cli_as(), &["vault", "list", "--as-user"], ""));
    ok(run(cli(), &["vault", "list"], ""));

    // An expired saved login is an error, never a silent switch to the admin.
    let mut stale: Value =
        serde_json::from_str(&std::fs::read_to_string(&custom).unwrap()).unwrap();
    for t in stale["tokens"].as_object_mut().unwrap().values_mut() {
        t["expiresOn"] = json!(1_000_000_000);
    }
    std::fs::write(&custom, serde_json::to_vec(&stale).unwrap()).unwrap();
    fails(run(cli_as(), &["vault", "list"], ""), "expired");
    // A damaged saved login stops commands that would use it, and only those.
    std::fs::write(&custom, b"not json").unwrap();
    fails(run(cli_as(), &["vault", "list"], ""), "unreadable");
    let admin = s.admin.clone();
    ok(run(
        cli_as(),
        &[
            "vault",
            "list",
            "--client-id",
            &admin.client_id,
            "--client-secret",
            &admin.client_secret,
        ],
        "",
    ));

    ok(run(cli(), &["user", "delete", ALICE], ""));
    fails(run(cli(), &["user", "show", &id], ""), "404 UserNotFound");

    assert_nowhere(
        &s,
        &[
            ALICE_PW,
            new_pw,
            third_pw,
            reset,
            "Wrong-passphrase-123",
            "Wrong-current-pass-1",
        ],
    );
}
