-- Rotation: bindings, runs, scheduled revocations.
CREATE TABLE rotation_bindings (
    name          TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    source        TEXT NOT NULL,
    target        TEXT NOT NULL,
    policy        TEXT NOT NULL,
    created       INTEGER NOT NULL,
    updated       INTEGER NOT NULL,
    next_due      INTEGER NOT NULL,
    failures      INTEGER NOT NULL DEFAULT 0,
    last_run      TEXT
);

CREATE TABLE rotation_runs (
    id          TEXT PRIMARY KEY,
    binding     TEXT NOT NULL,
    state       TEXT NOT NULL,
    created     INTEGER NOT NULL,
    updated     INTEGER NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX rotation_runs_by_binding ON rotation_runs(binding, created);
CREATE INDEX rotation_runs_by_state ON rotation_runs(state);

CREATE TABLE rotation_revocations (
    key_id        TEXT PRIMARY KEY,
    app_object_id TEXT NOT NULL,
    binding       TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    due_at        INTEGER NOT NULL,
    done_at       INTEGER
);
CREATE INDEX rotation_revocations_due ON rotation_revocations(done_at, due_at);
