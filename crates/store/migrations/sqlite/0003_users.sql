-- Lockstep embedded schema, version 3: tenant users.
-- A user principal name is unique within its tenant regardless of case
-- (UPNs are ASCII, so SQLite's NOCASE collation is exact for them).
-- Only the argon2id PHC string of a password is stored, never the password.
CREATE TABLE users (
    object_id           TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL REFERENCES tenants(id),
    user_principal_name TEXT NOT NULL COLLATE NOCASE,
    display_name        TEXT NOT NULL,
    password_hash       TEXT NOT NULL,
    enabled             INTEGER NOT NULL,
    created             INTEGER NOT NULL,
    updated             INTEGER NOT NULL,
    password_changed    INTEGER NOT NULL,
    UNIQUE (tenant_id, user_principal_name)
);
