-- Alerting: cases, analyst accounts and sessions, the audit trail, label and webhook outboxes.

-- A case groups the alerts of one account while it is open; at most one open case per account.
-- The queue reads cases, so the alert aggregates it sorts and filters on are kept on the row.
CREATE TABLE cases (
    case_id       text PRIMARY KEY,
    account_id    text NOT NULL,
    status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    assignee      text,
    label         text CHECK (label IN ('fraud', 'legitimate', 'unsure')),
    label_note    text NOT NULL DEFAULT '',
    top_action    text NOT NULL CHECK (top_action IN ('review', 'decline')),
    max_score     double precision NOT NULL,
    alert_count   int NOT NULL DEFAULT 0,
    version       bigint NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    closed_at     timestamptz
);
CREATE UNIQUE INDEX cases_open_account_idx ON cases (account_id) WHERE status = 'open';
CREATE INDEX cases_account_idx ON cases (account_id, created_at DESC);
-- Queue orderings: by score and by age within a status; assignee filters use their own index.
CREATE INDEX cases_status_score_idx ON cases (status, max_score DESC, case_id);
CREATE INDEX cases_status_created_idx ON cases (status, created_at, case_id);
CREATE INDEX cases_assignee_idx ON cases (assignee, status, max_score DESC) WHERE assignee IS NOT NULL;
-- Age filters across statuses ("everything from the last hour").
CREATE INDEX cases_created_idx ON cases (created_at);

ALTER TABLE alerts ADD COLUMN case_id text REFERENCES cases (case_id);
CREATE INDEX alerts_case_idx ON alerts (case_id, created_at);
-- GET /v1/alerts: open alerts by score without sorting every open alert.
CREATE INDEX alerts_open_score_idx ON alerts (score DESC, created_at) WHERE status = 'open';

-- Append-only: the service's role never updates or deletes here (enforced by the trigger).
CREATE TABLE audit_log (
    audit_id   bigserial PRIMARY KEY,
    actor      text NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    action     text NOT NULL,
    entity     text NOT NULL,
    entity_id  text NOT NULL,
    before     jsonb,
    after      jsonb
);
CREATE INDEX audit_log_entity_idx ON audit_log (entity, entity_id, audit_id);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

CREATE TABLE users (
    user_id       text PRIMARY KEY,
    email         text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    role          text NOT NULL CHECK (role IN ('analyst', 'admin')),
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Only a hash of the session token is stored: a read of this table cannot be replayed as a login.
CREATE TABLE sessions (
    token_hash  bytea PRIMARY KEY,
    user_id     text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    csrf_token  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX sessions_expiry_idx ON sessions (expires_at);

-- Every label given, one row per labelled transaction and change; export-labels reads the latest.
CREATE TABLE labels (
    label_id         text PRIMARY KEY,
    case_id          text NOT NULL REFERENCES cases (case_id),
    case_version     bigint NOT NULL,
    transaction_id   text NOT NULL,
    account_id       text NOT NULL,
    value            text NOT NULL CHECK (value IN ('fraud', 'legitimate', 'unsure')),
    analyst          text NOT NULL,
    note             text NOT NULL DEFAULT '',
    transaction_time timestamptz NOT NULL,
    labelled_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX labels_transaction_idx ON labels (transaction_id, labelled_at DESC);

-- Outbox of labels.v1: written with the label, relayed to Kafka. batch_id is set when the relay
-- claims a row, before it publishes, so a restart can ask Kafka whether that batch committed.
CREATE TABLE label_outbox (
    outbox_id  bigserial PRIMARY KEY,
    label_id   text NOT NULL UNIQUE REFERENCES labels (label_id),
    account_id text NOT NULL,
    payload    bytea NOT NULL,
    batch_id   text,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz
);
CREATE INDEX label_outbox_pending_idx ON label_outbox (outbox_id) WHERE sent_at IS NULL;

CREATE TABLE webhook_subscriptions (
    subscription_id text PRIMARY KEY,
    url             text NOT NULL,
    secret          text NOT NULL,
    event_types     text[] NOT NULL,
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_deliveries (
    delivery_id     text PRIMARY KEY,
    subscription_id text NOT NULL REFERENCES webhook_subscriptions (subscription_id) ON DELETE CASCADE,
    event_type      text NOT NULL,
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';

CREATE TABLE webhook_attempts (
    delivery_id  text NOT NULL REFERENCES webhook_deliveries (delivery_id) ON DELETE CASCADE,
    attempt      int NOT NULL,
    at           timestamptz NOT NULL DEFAULT now(),
    status_code  int,
    error        text,
    duration_ms  int NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
