//! Tenant users: people who sign in with a user principal name and a
//! password. Passwords are checked against a minimum policy, hashed with
//! argon2id (OWASP's parameters, a random salt per hash, PHC string format),
//! verified with the hash's own constant-time comparison, and never stored
//! or kept in clear longer than the call that needs them. See docs/users.md.

use std::sync::{Arc, OnceLock};

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use lockstep_core::SharedClock;
use lockstep_crypto::random;
use lockstep_store::{Store, StoreError, UserRow};
use zeroize::Zeroizing;

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted, in characters (bounds the work one login costs).
pub const MAX_PASSWORD_CHARS: usize = 256;
/// argon2id memory cost in KiB (19 MiB: OWASP's first recommended setting).
pub const ARGON2_MEMORY_KIB: u32 = 19_456;
/// argon2id passes over memory.
pub const ARGON2_ITERATIONS: u32 = 2;
/// argon2id lanes.
pub const ARGON2_PARALLELISM: u32 = 1;
/// Bytes of random salt per hash.
const SALT_BYTES: usize = 16;
/// Bytes of hash output.
const HASH_BYTES: usize = 32;
/// Longest user principal name part before the `@` (Entra's limit).
const MAX_UPN_LOCAL: usize = 64;
/// Longest display name, in characters.
const MAX_DISPLAY_NAME: usize = 256;

/// Errors of user operations. Every message is safe to show to the caller:
/// none carries a password or a hash.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// No such user in the tenant.
    #[error("user '{0}' was not found")]
    NotFound(String),
    /// The tenant already has a user with this principal name (in any case).
    #[error("a user with principal name '{0}' already exists in this tenant")]
    AlreadyExists(String),
    /// No such tenant.
    #[error("tenant '{0}' was not found")]
    TenantNotFound(String),
    /// A malformed principal name or display name.
    #[error("{0}")]
    Invalid(String),
    /// The new password does not meet the policy.
    #[error("{0}")]
    WeakPassword(String),
    /// Unknown user or wrong password: deliberately one error, so that the
    /// answer does not tell which.
    #[error("the user name or password is incorrect")]
    InvalidCredentials,
    /// The password was right but the account is disabled.
    #[error("the user account is disabled")]
    Disabled,
    /// A password change gave the wrong current password.
    #[error("the current password is incorrect")]
    WrongCurrentPassword,
    /// The password changed while this change was being made.
    #[error("the password was changed by another request at the same time; try again")]
    Conflict,
    /// argon2 failed (never happens with valid parameters).
    #[error("password hashing failed: {0}")]
    Hashing(String),
    /// Storage failure.
    #[error("storage error: {0}")]
    Store(#[from] StoreError),
}

/// What a new user is made of.
pub struct NewUser<'a> {
    /// `alice@contoso.test`.
    pub user_principal_name: &'a str,
    /// `Alice Example`.
    pub display_name: &'a str,
    /// The initial password (checked against the policy, then hashed).
    pub password: &'a str,
    /// Whether the user may sign in at once.
    pub enabled: bool,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct UserPatch {
    /// New display name.
    pub display_name: Option<String>,
    /// Enable or disable the account.
    pub enabled: Option<bool>,
}

// --- passwords ---------------------------------------------------------------

fn hasher() -> Result<Argon2<'static>, UserError> {
    let params = Params::new(
        ARGON2_MEMORY_KIB,
        ARGON2_ITERATIONS,
        ARGON2_PARALLELISM,
        Some(HASH_BYTES),
    )
    .map_err(|e| UserError::Hashing(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password with argon2id and a fresh random salt; returns the PHC
/// string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
pub fn hash_password(password: &str) -> Result<String, UserError> {
    let salt = Zeroizing::new(random::bytes::<SALT_BYTES>());
    hasher()?
        .hash_password_with_salt(password.as_bytes(), salt.as_slice())
        .map(|h| h.to_string())
        .map_err(|e| UserError::Hashing(e.to_string()))
}

/// Whether `password` matches the PHC string `stored`. The parameters and
/// salt come from the stored string; the outputs are compared in constant
/// time by the argon2 crate. A malformed stored hash never matches.
pub fn verify_password(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    if parsed.algorithm != argon2::ARGON2ID_IDENT {
        return false;
    }
    hasher().is_ok_and(|h| h.verify_password(password.as_bytes(), &parsed).is_ok())
}

/// Whether a stored hash was made with other parameters than today's (it is
/// then re-hashed at the next successful sign-in).
pub fn needs_rehash(stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return true;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return true;
    };
    parsed.algorithm != argon2::ARGON2ID_IDENT
        || parsed.version != Some(Version::V0x13.into())
        || params.m_cost() != ARGON2_MEMORY_KIB
        || params.t_cost() != ARGON2_ITERATIONS
        || params.p_cost() != ARGON2_PARALLELISM
}

/// A hash of no one's password, verified against when the user does not
/// exist so that an unknown user takes as long to refuse as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let text = random::client_secret();
        hash_password(&text).unwrap_or_default()
    })
}

/// Passwords that meet the length rule but are among the most common ones
/// in breach lists. A short guard, not a breach corpus.
const COMMON_PASSWORDS: &[&str] = &[
    "password1234",
    "password12345",
    "password123456",
    "passwordpassword",
    "qwertyuiop123",
    "qwertyuiopasdf",
    "qwertyuiopasdfgh",
    "1q2w3e4r5t6y",
    "1qaz2wsx3edc",
    "1qaz2wsx3edc4rfv",
    "iloveyou1234",
    "letmein12345",
    "welcome12345",
    "changeme1234",
    "administrator",
    "administrator1",
    "trustno1trustno1",
    "football1234",
    "baseball1234",
    "superman1234",
    "starwars1234",
    "princess1234",
    "sunshine1234",
    "monkey123456",
    "dragon123456",
    "azertyuiop12",
    "correcthorsebatterystaple",
];

fn is_sequence(chars: &[char]) -> bool {
    let steps: Vec<i64> = chars
        .windows(2)
        .map(|w| i64::from(u32::from(w[1])) - i64::from(u32::from(w[0])))
        .collect();
    steps.iter().all(|s| *s == 1) || steps.iter().all(|s| *s == -1)
}

/// Checks a new password against the policy: 12 to 256 characters, no
/// control characters, at least 5 different characters, not a run like
/// `abcdefghijkl`, not one of the most common passwords, and not containing
/// the user's name. Errors say exactly which rule failed.
pub fn check_password_policy(password: &str, user_principal_name: &str) -> Result<(), UserError> {
    let weak = |m: String| Err(UserError::WeakPassword(m));
    let chars: Zeroizing<Vec<char>> = Zeroizing::new(password.chars().collect());
    if chars.len() < MIN_PASSWORD_CHARS {
        return weak(format!(
            "The password is too short: it must be at least {MIN_PASSWORD_CHARS} characters long."
        ));
    }
    if chars.len() > MAX_PASSWORD_CHARS {
        return weak(format!(
            "The password is too long: it must be at most {MAX_PASSWORD_CHARS} characters long."
        ));
    }
    if chars.iter().any(|c| c.is_control()) {
        return weak(
            "The password must not contain control characters (such as line breaks).".into(),
        );
    }
    let mut distinct: Zeroizing<Vec<char>> = Zeroizing::new(chars.to_vec());
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 5 {
        return weak("The password is too repetitive: use at least 5 different characters.".into());
    }
    if is_sequence(&chars) {
        return weak("The password must not be a simple sequence of characters.".into());
    }
    let lower = Zeroizing::new(password.to_lowercase());
    if COMMON_PASSWORDS.iter().any(|c| *c == lower.as_str()) {
        return weak("The password is too common: choose one that is not on lists of frequently used passwords.".into());
    }
    let local = user_principal_name
        .split('@')
        .next()
        .unwrap_or_default()
        .to_lowercase();
    if local.chars().count() >= 3 && lower.contains(&local) {
        return weak("The password must not contain the user name.".into());
    }
    Ok(())
}

// --- names ---------------------------------------------------------------------

fn is_upn_local_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '\'' | '!' | '#' | '^' | '~' | '+')
}

/// Validates a user principal name (`local@domain`): the local part is 1-64
/// of `A-Z a-z 0-9 . _ - ' ! # ^ ~ +` without leading, trailing or doubled
/// dots; the domain is DNS labels. The name is returned trimmed, case kept.
pub fn parse_upn(raw: &str) -> Result<String, UserError> {
    let upn = raw.trim();
    let invalid = |why: &str| {
        Err(UserError::Invalid(format!(
            "userPrincipalName '{}' is invalid: {why}",
            upn.chars().take(120).collect::<String>()
        )))
    };
    let Some((local, domain)) = upn.split_once('@') else {
        return invalid("it must look like name@domain");
    };
    if local.is_empty() || local.len() > MAX_UPN_LOCAL {
        return invalid("the part before '@' must be 1-64 characters long");
    }
    if !local.chars().all(is_upn_local_char) {
        return invalid(
            "the part before '@' may only contain letters, digits and . _ - ' ! # ^ ~ +",
        );
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return invalid("the part before '@' must not start or end with a dot or contain '..'");
    }
    let labels_ok = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !labels_ok {
        return invalid("the part after '@' must be a domain name such as contoso.test");
    }
    Ok(upn.to_owned())
}

fn parse_display_name(raw: &str) -> Result<String, UserError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_DISPLAY_NAME {
        return Err(UserError::Invalid(format!(
            "displayName must be 1-{MAX_DISPLAY_NAME} characters long."
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(UserError::Invalid(
            "displayName must not contain control characters.".into(),
        ));
    }
    Ok(name.to_owned())
}

// --- the directory of users ----------------------------------------------------

/// Tenant users: create, read, change, delete, and sign-in.
pub struct Users {
    store: Arc<dyn Store>,
    clock: SharedClock,
}

impl Users {
    /// Users kept in `store`.
    pub fn new(store: Arc<dyn Store>, clock: SharedClock) -> Self {
        Self { store, clock }
    }

    /// Creates a user with an initial password.
    pub fn create(&self, tenant_id: &str, new: &NewUser<'_>) -> Result<UserRow, UserError> {
        let upn = parse_upn(new.user_principal_name)?;
        let display_name = parse_display_name(new.display_name)?;
        check_password_policy(new.password, &upn)?;
        if self.store.tenant_get(tenant_id)?.is_none() {
            return Err(UserError::TenantNotFound(tenant_id.to_owned()));
        }
        if self.store.user_by_upn(tenant_id, &upn)?.is_some() {
            return Err(UserError::AlreadyExists(upn));
        }
        let now = self.clock.unix();
        let row = UserRow {
            object_id: random::guid(),
            tenant_id: tenant_id.to_owned(),
            user_principal_name: upn,
            display_name,
            password_hash: hash_password(new.password)?,
            enabled: new.enabled,
            created: now,
            updated: now,
            password_changed: now,
        };
        match self.store.user_insert(&row) {
            Err(StoreError::AlreadyExists) => {
                Err(UserError::AlreadyExists(row.user_principal_name))
            }
            other => other.map(|()| row).map_err(UserError::from),
        }
    }

    /// A user of the tenant by object id or user principal name (any case).
    pub fn get(&self, tenant_id: &str, key: &str) -> Result<UserRow, UserError> {
        let key = key.trim();
        let found = if key.contains('@') {
            self.store.user_by_upn(tenant_id, key)?
        } else {
            self.store.user_get(&key.to_ascii_lowercase())?
        };
        found
            .filter(|u| u.tenant_id == tenant_id)
            .ok_or_else(|| UserError::NotFound(key.chars().take(120).collect()))
    }

    /// Users of a tenant by principal name, after `after`, at most `limit`.
    pub fn list(
        &self,
        tenant_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<UserRow>, UserError> {
        Ok(self.store.user_list(tenant_id, after, limit)?)
    }

    /// Changes a user's display name or enabled flag.
    pub fn update(
        &self,
        tenant_id: &str,
        key: &str,
        patch: &UserPatch,
    ) -> Result<UserRow, UserError> {
        let mut user = self.get(tenant_id, key)?;
        if let Some(name) = &patch.display_name {
            user.display_name = parse_display_name(name)?;
        }
        if let Some(enabled) = patch.enabled {
            user.enabled = enabled;
        }
        user.updated = self.clock.unix();
        match self.store.user_update(&user) {
            Err(StoreError::NotFound) => Err(UserError::NotFound(key.to_owned())),
            other => other.map(|()| user).map_err(UserError::from),
        }
    }

    /// Deletes a user (and its role assignments); its tokens stop working.
    pub fn delete(&self, tenant_id: &str, key: &str) -> Result<UserRow, UserError> {
        let user = self.get(tenant_id, key)?;
        match self.store.user_delete(&user.object_id) {
            Err(StoreError::NotFound) => Err(UserError::NotFound(key.to_owned())),
            other => other.map(|()| user).map_err(UserError::from),
        }
    }

    /// An administrator sets a new password (no current password needed).
    pub fn reset_password(
        &self,
        tenant_id: &str,
        key: &str,
        new_password: &str,
    ) -> Result<UserRow, UserError> {
        let user = self.get(tenant_id, key)?;
        check_password_policy(new_password, &user.user_principal_name)?;
        let hash = hash_password(new_password)?;
        let now = self.clock.unix();
        match self
            .store
            .user_set_password(&user.object_id, None, &hash, Some(now))
        {
            Err(StoreError::NotFound) => return Err(UserError::NotFound(key.to_owned())),
            other => other?,
        }
        Ok(UserRow {
            password_hash: hash,
            updated: now,
            password_changed: now,
            ..user
        })
    }

    /// A user changes their own password, proving the current one.
    pub fn change_password(
        &self,
        tenant_id: &str,
        object_id: &str,
        current: &str,
        new_password: &str,
    ) -> Result<(), UserError> {
        let user = self.get(tenant_id, object_id)?;
        if !verify_password(current, &user.password_hash) {
            return Err(UserError::WrongCurrentPassword);
        }
        if current == new_password {
            return Err(UserError::WeakPassword(
                "The new password must be different from the current one.".into(),
            ));
        }
        check_password_policy(new_password, &user.user_principal_name)?;
        let hash = hash_password(new_password)?;
        match self.store.user_set_password(
            &user.object_id,
            Some(&user.password_hash),
            &hash,
            Some(self.clock.unix()),
        ) {
            Err(StoreError::NotFound) => Err(UserError::Conflict),
            other => Ok(other?),
        }
    }

    /// Signs a user in: the user principal name (any case) and password
    /// must match an existing user of the tenant. An unknown user and a
    /// wrong password give the same error after the same work; a disabled
    /// account is reported only to someone who knows its password.
    pub fn authenticate(
        &self,
        tenant_id: &str,
        user_principal_name: &str,
        password: &str,
    ) -> Result<UserRow, UserError> {
        let upn = user_principal_name.trim();
        let found = if upn.is_empty() || upn.len() > 320 {
            None
        } else {
            self.store.user_by_upn(tenant_id, upn)?
        };
        let Some(user) = found else {
            let _ = verify_password(password, decoy_hash());
            return Err(UserError::InvalidCredentials);
        };
        if !verify_password(password, &user.password_hash) {
            return Err(UserError::InvalidCredentials);
        }
        if !user.enabled {
            return Err(UserError::Disabled);
        }
        if needs_rehash(&user.password_hash) {
            // Upgrade the stored hash to today's parameters; a failure here
            // must not fail the sign-in.
            if let Ok(hash) = hash_password(password) {
                if let Err(e) = self.store.user_set_password(
                    &user.object_id,
                    Some(&user.password_hash),
                    &hash,
                    None,
                ) {
                    tracing::warn!(user = %user.object_id, error = %e, "password rehash not stored");
                }
            }
        }
        Ok(user)
    }

    /// Whether tokens of this user may still be used: the user exists and
    /// is enabled.
    pub fn is_active(&self, object_id: &str) -> Result<bool, UserError> {
        Ok(self.store.user_get(object_id)?.is_some_and(|u| u.enabled))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use lockstep_core::TestClock;
    use lockstep_store::SqliteStore;

    const PW: &str = "correct-horse-battery";

    struct Fixture {
        _dir: tempfile::TempDir,
        users: Users,
        store: Arc<dyn Store>,
        tenant: String,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).unwrap());
        let clock: SharedClock = Arc::new(TestClock::at(1_800_000_000));
        let tenant = "11111111-1111-4111-8111-111111111111".to_owned();
        store
            .tenant_create(&lockstep_store::TenantRow {
                id: tenant.clone(),
                display_name: "t".into(),
                created: 0,
            })
            .unwrap();
        Fixture {
            _dir: dir,
            users: Users::new(store.clone(), clock),
            store,
            tenant,
        }
    }

    fn alice(f: &Fixture) -> UserRow {
        f.users
            .create(
                &f.tenant,
                &NewUser {
                    user_principal_name: "Alice@Contoso.test",
                    display_name: "Alice",
                    password: PW,
                    enabled: true,
                },
            )
            .unwrap()
    }

    #[test]
    fn hashes_are_argon2id_phc_with_owasp_parameters_and_random_salts() {
        let a = hash_password(PW).unwrap();
        let b = hash_password(PW).unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(!a.contains(PW));
        assert!(verify_password(PW, &a));
        assert!(verify_password(PW, &b));
        assert!(!verify_password("correct-horse-batterY", &a));
        assert!(!verify_password(PW, "not a phc string"));
        assert!(!needs_rehash(&a));
    }

    #[test]
    fn hashes_with_other_parameters_still_verify_and_are_flagged_for_rehash() {
        let weaker = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, Some(32)).unwrap(),
        )
        .hash_password_with_salt(PW.as_bytes(), b"0123456789abcdef")
        .unwrap()
        .to_string();
        assert!(verify_password(PW, &weaker));
        assert!(needs_rehash(&weaker));
        let argon2i = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            Params::new(ARGON2_MEMORY_KIB, 2, 1, Some(32)).unwrap(),
        )
        .hash_password_with_salt(PW.as_bytes(), b"0123456789abcdef")
        .unwrap()
        .to_string();
        assert!(!verify_password(PW, &argon2i), "only argon2id is accepted");
    }

    #[test]
    fn policy_names_the_rule_that_failed() {
        let upn = "alice@contoso.test";
        let msg = |pw: &str| match check_password_policy(pw, upn) {
            Err(UserError::WeakPassword(m)) => m,
            other => panic!("{pw:?}: {other:?}"),
        };
        assert!(msg("short-pw1").contains("at least 12 characters"));
        assert!(msg(&"ab1-".repeat(65)).contains("at most 256"));
        assert!(msg("line\nbreak-password").contains("control characters"));
        assert!(msg("aaaaaaaaaaaaaaa").contains("repetitive"));
        assert!(msg("abababab1212").contains("repetitive"));
        assert!(msg("abcdefghijklm").contains("sequence"));
        assert!(msg("zyxwvutsrqpo").contains("sequence"));
        assert!(msg("Password1234").contains("too common"));
        assert!(msg("my-ALICE-password").contains("user name"));
        check_password_policy(PW, upn).unwrap();
        check_password_policy("ünïcødé-pässwörd", upn).unwrap();
        // Twelve characters, not twelve bytes.
        assert!(check_password_policy("ßßßßßß12345", upn).is_err());
        check_password_policy("ßäöü-1234567", upn).unwrap();
    }

    #[test]
    fn user_principal_names_are_validated() {
        assert_eq!(
            parse_upn(" alice@contoso.test ").unwrap(),
            "alice@contoso.test"
        );
        parse_upn("o'brien+ops@sub.contoso-1.test").unwrap();
        parse_upn("bob@localhost").unwrap();
        for bad in [
            "alice",
            "@contoso.test",
            "alice@",
            "al ice@contoso.test",
            ".alice@contoso.test",
            "al..ice@contoso.test",
            "alice@contoso..test",
            "alice@-contoso.test",
            "alice@bob@contoso.test",
            "alicé@contoso.test",
        ] {
            assert!(
                matches!(parse_upn(bad), Err(UserError::Invalid(_))),
                "{bad}"
            );
        }
        assert!(parse_upn(&format!("{}@x.test", "a".repeat(65))).is_err());
    }

    #[test]
    fn users_are_created_unique_per_tenant_ignoring_case() {
        let f = fixture();
        let a = alice(&f);
        assert_eq!(a.user_principal_name, "Alice@Contoso.test");
        assert!(a.password_hash.starts_with("$argon2id$"));
        let dup = f.users.create(
            &f.tenant,
            &NewUser {
                user_principal_name: "alice@contoso.TEST",
                display_name: "Other",
                password: PW,
                enabled: true,
            },
        );
        assert!(matches!(dup, Err(UserError::AlreadyExists(_))));
        assert_eq!(f.users.get(&f.tenant, "ALICE@contoso.test").unwrap(), a);
        assert_eq!(
            f.users.get(&f.tenant, &a.object_id.to_uppercase()).unwrap(),
            a
        );
        assert!(matches!(
            f.users
                .get("22222222-2222-4222-8222-222222222222", &a.object_id),
            Err(UserError::NotFound(_))
        ));
        let weak = f.users.create(
            &f.tenant,
            &NewUser {
                user_principal_name: "bob@contoso.test",
                display_name: "Bob",
                password: "short",
                enabled: true,
            },
        );
        assert!(matches!(weak, Err(UserError::WeakPassword(_))));
        let no_tenant = f.users.create(
            "33333333-3333-4333-8333-333333333333",
            &NewUser {
                user_principal_name: "bob@contoso.test",
                display_name: "Bob",
                password: PW,
                enabled: true,
            },
        );
        assert!(matches!(no_tenant, Err(UserError::TenantNotFound(_))));
    }

    #[test]
    fn list_pages_by_principal_name() {
        let f = fixture();
        for name in ["carol", "Bob", "alice", "dave"] {
            f.users
                .create(
                    &f.tenant,
                    &NewUser {
                        user_principal_name: &format!("{name}@contoso.test"),
                        display_name: name,
                        password: PW,
                        enabled: true,
                    },
                )
                .unwrap();
        }
        let first = f.users.list(&f.tenant, None, 2).unwrap();
        let names: Vec<_> = first.iter().map(|u| u.display_name.as_str()).collect();
        assert_eq!(names, ["alice", "Bob"]);
        let rest = f
            .users
            .list(&f.tenant, Some(&first[1].user_principal_name), 10)
            .unwrap();
        let names: Vec<_> = rest.iter().map(|u| u.display_name.as_str()).collect();
        assert_eq!(names, ["carol", "dave"]);
    }

    #[test]
    fn sign_in_refuses_unknown_users_and_wrong_passwords_alike() {
        let f = fixture();
        let a = alice(&f);
        let ok = f
            .users
            .authenticate(&f.tenant, "alice@CONTOSO.test", PW)
            .unwrap();
        assert_eq!(ok.object_id, a.object_id);
        let wrong = f
            .users
            .authenticate(&f.tenant, "alice@contoso.test", "wrong-password!!");
        let unknown = f.users.authenticate(&f.tenant, "nobody@contoso.test", PW);
        assert_eq!(
            wrong.unwrap_err().to_string(),
            unknown.unwrap_err().to_string()
        );
        let other_tenant = f.users.authenticate(
            "22222222-2222-4222-8222-222222222222",
            "alice@contoso.test",
            PW,
        );
        assert!(matches!(other_tenant, Err(UserError::InvalidCredentials)));
    }

    #[test]
    fn disabled_users_cannot_sign_in_and_are_inactive() {
        let f = fixture();
        let a = alice(&f);
        assert!(f.users.is_active(&a.object_id).unwrap());
        let patch = UserPatch {
            enabled: Some(false),
            ..UserPatch::default()
        };
        let d = f.users.update(&f.tenant, &a.object_id, &patch).unwrap();
        assert!(!d.enabled);
        assert!(!f.users.is_active(&a.object_id).unwrap());
        assert!(matches!(
            f.users.authenticate(&f.tenant, "alice@contoso.test", PW),
            Err(UserError::Disabled)
        ));
        // Disabled is only revealed with the right password.
        assert!(matches!(
            f.users
                .authenticate(&f.tenant, "alice@contoso.test", "wrong-password!!"),
            Err(UserError::InvalidCredentials)
        ));
        f.users.delete(&f.tenant, "alice@contoso.test").unwrap();
        assert!(!f.users.is_active(&a.object_id).unwrap());
        assert!(matches!(
            f.users.get(&f.tenant, &a.object_id),
            Err(UserError::NotFound(_))
        ));
    }

    #[test]
    fn password_change_needs_the_current_password() {
        let f = fixture();
        let a = alice(&f);
        let next = "a-brand-new-passphrase";
        assert!(matches!(
            f.users
                .change_password(&f.tenant, &a.object_id, "not-the-password", next),
            Err(UserError::WrongCurrentPassword)
        ));
        assert!(matches!(
            f.users.change_password(&f.tenant, &a.object_id, PW, PW),
            Err(UserError::WeakPassword(_))
        ));
        assert!(matches!(
            f.users
                .change_password(&f.tenant, &a.object_id, PW, "tooshort"),
            Err(UserError::WeakPassword(_))
        ));
        f.users
            .change_password(&f.tenant, &a.object_id, PW, next)
            .unwrap();
        assert!(matches!(
            f.users.authenticate(&f.tenant, "alice@contoso.test", PW),
            Err(UserError::InvalidCredentials)
        ));
        f.users
            .authenticate(&f.tenant, "alice@contoso.test", next)
            .unwrap();
        // An admin reset needs no current password.
        let reset = "reset-by-the-admin-42";
        f.users
            .reset_password(&f.tenant, "alice@contoso.test", reset)
            .unwrap();
        assert!(f
            .users
            .authenticate(&f.tenant, "alice@contoso.test", next)
            .is_err());
        f.users
            .authenticate(&f.tenant, "alice@contoso.test", reset)
            .unwrap();
    }

    #[test]
    fn a_change_based_on_a_stale_hash_is_refused() {
        let f = fixture();
        let a = alice(&f);
        f.users
            .reset_password(&f.tenant, &a.object_id, "someone-else-set-this")
            .unwrap();
        let stale = f.store.user_set_password(
            &a.object_id,
            Some(&a.password_hash),
            &hash_password("another-password-1").unwrap(),
            Some(1),
        );
        assert!(matches!(stale, Err(StoreError::NotFound)));
    }

    #[test]
    fn old_hashes_are_upgraded_at_sign_in() {
        let f = fixture();
        let a = alice(&f);
        let weaker = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, Some(32)).unwrap(),
        )
        .hash_password_with_salt(PW.as_bytes(), b"0123456789abcdef")
        .unwrap()
        .to_string();
        f.store
            .user_set_password(&a.object_id, None, &weaker, None)
            .unwrap();
        f.users
            .authenticate(&f.tenant, "alice@contoso.test", PW)
            .unwrap();
        let stored = f.store.user_get(&a.object_id).unwrap().unwrap();
        assert!(!needs_rehash(&stored.password_hash));
        assert_eq!(
            stored.password_changed, a.password_changed,
            "a rehash is not a change"
        );
    }
}
