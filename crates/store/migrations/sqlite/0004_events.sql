-- Lockstep embedded schema: event subscriptions (webhooks), the events
-- published to them, one delivery per (event, subscription) with its retry
-- state, and the log of every delivery attempt. Times in milliseconds since
-- the Unix epoch unless noted.

CREATE TABLE event_subscriptions (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    name           TEXT NOT NULL,
    endpoint       TEXT NOT NULL,
    -- JSON array of event types; empty = every type.
    event_types    TEXT NOT NULL,
    subject_prefix TEXT,
    -- The signing secret, sealed like a secret value (data key wrapped by the KEK).
    kek_id         TEXT NOT NULL,
    wrapped_dek    BLOB NOT NULL,
    sealed_secret  BLOB NOT NULL,
    enabled        INTEGER NOT NULL,
    created        INTEGER NOT NULL, -- Unix seconds
    updated        INTEGER NOT NULL  -- Unix seconds
);
CREATE INDEX event_subscriptions_by_tenant ON event_subscriptions(tenant_id);

CREATE TABLE events (
    id         TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    subject    TEXT NOT NULL,
    time       INTEGER NOT NULL,
    -- The CloudEvent exactly as it is POSTed (the signature covers these bytes).
    body       BLOB NOT NULL
);
CREATE INDEX events_by_time ON events(time);

CREATE TABLE event_deliveries (
    id              TEXT PRIMARY KEY,
    event_id        TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    subscription_id TEXT NOT NULL REFERENCES event_subscriptions(id) ON DELETE CASCADE,
    state           TEXT NOT NULL, -- pending | delivered | failed
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    created         INTEGER NOT NULL,
    updated         INTEGER NOT NULL
);
CREATE INDEX event_deliveries_due ON event_deliveries(next_attempt_at) WHERE state = 'pending';
CREATE INDEX event_deliveries_by_subscription ON event_deliveries(subscription_id, created);
CREATE INDEX event_deliveries_by_event ON event_deliveries(event_id);

CREATE TABLE event_delivery_attempts (
    delivery_id TEXT NOT NULL REFERENCES event_deliveries(id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    time        INTEGER NOT NULL,
    status_code INTEGER,
    error       TEXT,
    duration_ms INTEGER NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);

-- Events that must be published at most once (expiry notices), by key.
CREATE TABLE event_once (
    key     TEXT PRIMARY KEY,
    created INTEGER NOT NULL
);

-- The expiry scanner looks versions up by expiry.
CREATE INDEX secret_versions_by_exp ON secret_versions(exp) WHERE exp IS NOT NULL;
