-- Lockstep embedded schema, version 1.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE tenants (
    id           TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    created      INTEGER NOT NULL
);

CREATE TABLE vaults (
    name      TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    created   INTEGER NOT NULL
);

CREATE TABLE secrets (
    vault      TEXT NOT NULL REFERENCES vaults(name) ON DELETE CASCADE,
    name_key   TEXT NOT NULL,
    name       TEXT NOT NULL,
    latest_seq INTEGER NOT NULL,
    deleted_at INTEGER,
    purge_at   INTEGER,
    PRIMARY KEY (vault, name_key)
);

CREATE TABLE secret_versions (
    vault        TEXT NOT NULL,
    name_key     TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    version      TEXT NOT NULL,
    enabled      INTEGER NOT NULL,
    nbf          INTEGER,
    exp          INTEGER,
    created      INTEGER NOT NULL,
    updated      INTEGER NOT NULL,
    content_type TEXT,
    tags         TEXT NOT NULL,
    managed      INTEGER NOT NULL DEFAULT 0,
    previous_version TEXT,
    kek_id       TEXT NOT NULL,
    wrapped_dek  BLOB NOT NULL,
    ciphertext   BLOB NOT NULL,
    PRIMARY KEY (vault, name_key, seq),
    UNIQUE (vault, name_key, version),
    FOREIGN KEY (vault, name_key) REFERENCES secrets(vault, name_key) ON DELETE CASCADE
);

CREATE TABLE apps (
    object_id    TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    app_id       TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    created      INTEGER NOT NULL,
    deleted_at   INTEGER
);
CREATE INDEX apps_by_name ON apps(tenant_id, display_name);

CREATE TABLE service_principals (
    object_id    TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    app_id       TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    created      INTEGER NOT NULL
);

CREATE TABLE password_credentials (
    key_id        TEXT PRIMARY KEY,
    app_object_id TEXT NOT NULL REFERENCES apps(object_id) ON DELETE CASCADE,
    display_name  TEXT,
    hint          TEXT NOT NULL,
    salt          BLOB NOT NULL,
    hash          BLOB NOT NULL,
    start_time    INTEGER NOT NULL,
    end_time      INTEGER NOT NULL,
    created       INTEGER NOT NULL
);
CREATE INDEX password_credentials_by_app ON password_credentials(app_object_id);

CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    created      INTEGER NOT NULL,
    kek_id       TEXT NOT NULL,
    wrapped_dek  BLOB NOT NULL,
    sealed_pkcs8 BLOB NOT NULL,
    retired_at   INTEGER
);

CREATE TABLE role_assignments (
    id           TEXT PRIMARY KEY,
    principal_id TEXT NOT NULL,
    role         TEXT NOT NULL,
    scope        TEXT NOT NULL,
    created      INTEGER NOT NULL
);
CREATE INDEX role_assignments_by_principal ON role_assignments(principal_id);
